#!/usr/bin/env python
"""Discovery check: the GRPO policy, the untrained policy and a uniform random grammar walker,
each for the same wall time, judged by the same catalogue code (distinct models, chiral models,
models adding SM-charged matter, dark U(1)' charge sets), with their finds plotted against
wall time.

    python scripts/discovery_check.py --config dark_u1 --minutes 10 [--out DIR] [--json]

Writes DIR/<arm>/ (each arm's catalogue), DIR/discovery_check.json and
DIR/discovery_vs_time.png. See benchmarks/discovery_check.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from datetime import datetime
from pathlib import Path


def _table(result: dict) -> str:
    """A readable table of the arms, then the ratios and notes."""
    arms = result["arms"]
    rows = [("samples", "samples", "d"), ("seconds", "seconds", ".1f"),
            ("compile_seconds", "compile s (approx)", ".1f"), ("models", "models", "d"),
            ("chiral", "chiral", "d"), ("sm_charged", "SM-charged", "d"),
            ("vector_like", "vector-like", "d")]
    width = 20
    lines = [f"{'':{width}s}" + "".join(f"{a:>12s}" for a in arms)]
    for key, label, fmt in rows:
        cells = [arms[a][key] for a in arms]
        lines.append(f"{label:{width}s}" + "".join(
            f"{'-':>12s}" if c is None else f"{c:>12{fmt}}" for c in cells))
    for key in ("models", "chiral"):
        lines.append(f"{key + ' / min':{width}s}"
                     + "".join(f"{arms[a]['per_minute'][key]:>12.4g}" for a in arms))
    ns = sorted({n for a in arms.values() for n in a["dark_sets"]})
    for n in ns:
        lines.append(f"{f'dark sets n={n}':{width}s}"
                     + "".join(f"{arms[a]['dark_sets'].get(n, 0):>12d}" for a in arms))
    for n in sorted(next(iter(arms.values())).get("coverage", {})):
        lines.append(f"{f'coverage n={n}':{width}s}" + "".join(
            f"{arms[a]['coverage'][n]['found']:>6d}/{arms[a]['coverage'][n]['total']:<5d}"
            for a in arms))
    for count, ratios in result["ratios"].items():
        for key, value in ratios.items():
            shown = "none (denominator found none)" if value is None else f"{value:.4g}"
            lines.append(f"{count} {key}: {shown}")
    lines += [f"note: {n}" for n in result["notes"]]
    lines.append(f"figure: {result['plot']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="default",
                        help="a YAML file, or a packaged config's name (default: %(default)s)")
    parser.add_argument("--minutes", type=float, required=True,
                        help="wall time of EACH arm, compilation included")
    parser.add_argument("--out", help="output folder (default: "
                                      "runs/discovery_check-<config>-<timestamp>)")
    parser.add_argument("--checkpoint", help="start GRPO from this pretrained policy (e.g. "
                                             "runs/pretrained), and also sample it without RL")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (without the per-batch curves)")
    args = parser.parse_args(argv)
    from theorygrpo_jax.cli import fail, use_compilation_cache, user_errors

    with user_errors():
        if not (math.isfinite(args.minutes) and args.minutes > 0):
            fail(f"--minutes must be a positive number, got {args.minutes}")
        from theorygrpo_jax.config import load_config
        from theorygrpo_jax.resources import config_path

        name = Path(str(args.config)).stem
        config = load_config(config_path(args.config), {"train.progress_bar": False})
        out = Path(args.out or f"runs/discovery_check-{name}-{datetime.now():%Y%m%d-%H%M%S}")
        if out.exists() and not out.is_dir():
            fail(f"--out {out}: not a folder")
        use_compilation_cache()
        from benchmarks.discovery_check import discovery_check, without_curves

        # With --json, stdout holds the one JSON object: the run's logs go to stderr.
        to_stderr = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
        with to_stderr:
            result = discovery_check(config, args.minutes, out, name=name,
                                     log=lambda m: print(m, flush=True),
                                     checkpoint=args.checkpoint)
    print(json.dumps(without_curves(result)) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
