#!/usr/bin/env python
"""Plot a training run: PNGs from its metrics.jsonl.

    python scripts/plot.py RUN_DIR_or_metrics.jsonl [--out DIR]

Writes reward.png, success.png, kl_entropy.png, loss.png and, when logged,
curriculum.png and replay.png into DIR (default: the run's plots/).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from theorygrpo_jax.plotting import plot_metrics  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a run directory or its metrics.jsonl")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: RUN_DIR/plots)")
    args = parser.parse_args(argv)
    try:
        written = plot_metrics(args.source, args.out)
    except (OSError, ValueError) as e:
        print(f"plot.py: error: {e}", file=sys.stderr)
        return 1
    if not written:
        print(f"plot.py: error: {args.source}: none of the plotted metrics was logged",
              file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
