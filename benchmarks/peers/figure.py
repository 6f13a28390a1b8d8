"""The peer benchmark as a figure: step seconds of each side, per preset, precision and group
size, from one or more results of `run.run` (or their JSON). Matplotlib's Agg canvas on an
explicit Figure (no pyplot state, no display); torch-free.

    figure([json.load(open(p)) for p in paths], "docs/figures/peers.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SIDES = (("project", "this project"), ("torch", "hand-written PyTorch"), ("trl", "TRL GRPOTrainer"))
COLOURS = {"project": "#1f77b4", "torch": "#ff7f0e", "trl": "#2ca02c"}


def step_rows(results: list[dict[str, Any]]) -> list[tuple[str, dict[str, float]]]:
    """(label, {side: median step seconds}) for every group size of every result, in order;
    a peer the run left out (TRL with --no-trl) is absent; KeyError when a result lacks this
    project's step or a field."""
    rows = []
    for r in results:
        for g, entry in r["groups"].items():
            label = f"{r['preset']}, {r.get('matmul_dtype', 'float32')}, group {g}"
            steps = {"project": entry["project"]["step_s"]["median"]}   # always there
            steps.update({side: entry[side]["step_s"]["median"]
                          for side, _ in SIDES[1:] if side in entry})
            rows.append((label, steps))
    return rows


def figure(results: list[dict[str, Any]], path: str | Path) -> Path:
    """Horizontal bars of step seconds (log axis), one cluster per row of `step_rows`, each
    peer's bar labelled with its ratio to this project's step; writes a PNG at `path`."""
    rows = step_rows(results)
    if not rows:
        raise ValueError("no group in these results: nothing to plot")
    fig = Figure(figsize=(8.5, 0.9 + 0.75 * len(rows)), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    height = 0.8 / len(SIDES)
    for i, (label, steps) in enumerate(rows):
        ours = steps["project"]
        for j, (side, name) in enumerate(SIDES):
            if side not in steps:
                continue
            y = i + (j - 1) * height
            ax.barh(y, steps[side], height=height * 0.9, color=COLOURS[side],
                    label=name if i == 0 else None)
            text = f"{steps[side]:.3g} s" + ("" if side == "project"
                                            else f"  ({steps[side] / ours:.1f}×)")
            ax.text(steps[side] * 1.04, y, text, va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    longest = max(max(steps.values()) for _, steps in rows)
    ax.set_xlim(right=longest * 4)
    ax.set_xlabel("seconds per GRPO step (median; log scale)")
    ax.set_title("One GRPO step against the peers, same CPU (ratio: peer ÷ this project)",
                 fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    FigureCanvasAgg(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
