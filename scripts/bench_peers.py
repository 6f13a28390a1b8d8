#!/usr/bin/env python
"""This project's GRPO step and sampler against a hand-written PyTorch GRPO step and TRL's
GRPOTrainer (HF generate with the grammar as a LogitsProcessor), same CPU, shapes, weights,
grammar and reward, in one process.

    .venv-peers/bin/python scripts/bench_peers.py --preset cpu_default --groups 64 8 --repeats 3 --json
    .venv-peers/bin/python scripts/bench_peers.py --preset original --matmul-dtype bfloat16 --json
    python scripts/bench_peers.py --from-json a.json b.json --plot peers.png   # no torch needed

Needs the `[peers]` extra (torch, transformers, trl) in its own virtual environment:
    python3 -m venv .venv-peers && .venv-peers/bin/pip install "torch==2.13.0+cpu" -e '.[peers,test]'
See benchmarks/peers/run.py for what is timed and how.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from theorygrpo_jax.config import DTYPE_NAMES   # JAX-free

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=("cpu_default", "original"), default="cpu_default")
    p.add_argument("--groups", type=int, nargs="+", default=[64, 8], help="group sizes")
    p.add_argument("--task", choices=("from_scratch", "sm_extension", "dark_u1"),
                   default="from_scratch", help="the prompt every side continues")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per side (medians)")
    p.add_argument("--tries", type=int, default=3, help="timings of each sampler batch")
    p.add_argument("--sampler-batch", type=int, default=64)
    p.add_argument("--sampler-keys", type=int, default=3, help="sampler batches (RNG keys)")
    p.add_argument("--no-trl", action="store_true", help="leave TRL out")
    p.add_argument("--torch-threads", type=int, help="torch's threads (default: the usable cores)")
    p.add_argument("--matmul-dtype", choices=DTYPE_NAMES, default="float32",
                   help="every side's weight matmuls: bfloat16 operands summed in float32 "
                        "(this project's matmul options, torch's CPU autocast, TRL's bf16)")
    p.add_argument("--json", action="store_true", help="one JSON object (the table under 'table')")
    p.add_argument("--plot", metavar="PNG", help="also draw the step times side by side (PNG)")
    p.add_argument("--from-json", nargs="+", metavar="JSON",
                   help="no benchmark: draw --plot from earlier --json outputs (needs no torch)")
    args = p.parse_args(argv)
    if args.from_json:
        if not args.plot:
            p.error("--from-json draws a figure: give --plot PNG")
        return _plot_saved(args.from_json, args.plot)
    bad = [f"--groups {g}" for g in args.groups if g < 2]
    bad += [f"--sampler-batch {args.sampler_batch}"] if args.sampler_batch < 2 else []
    bad += [f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k in ("repeats", "tries", "sampler_keys", "torch_threads")
            and v is not None and v < 1]
    if bad:
        p.error(f"{', '.join(bad)}: group sizes and --sampler-batch must be at least 2, "
                f"the counts at least 1")

    from benchmarks.peers import INSTALL_HINT, missing_peers

    missing = missing_peers()
    if missing:
        print(f"error: the peer benchmark needs {', '.join(missing)} (the [peers] extra), in "
              f"its own virtual environment: {INSTALL_HINT}", file=sys.stderr)
        return 2
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from theorygrpo_jax.cli import user_errors

    with user_errors():
        from benchmarks.peers import run

        result = run.run(args.preset, tuple(args.groups), args.repeats, args.task,
                         args.sampler_batch, args.sampler_keys, args.tries, not args.no_trl,
                         args.torch_threads, args.matmul_dtype)
        text = run.table(result)
    print(json.dumps({**result, "table": text}) if args.json else text)
    if args.plot:
        from benchmarks.peers.figure import figure

        print(f"figure: {figure([result], args.plot)}", file=sys.stderr)
    return 0


def _plot_saved(paths: list[str], out: str) -> int:
    """The figure of earlier `--json` outputs; a one-line error for a file that is not one."""
    from benchmarks.peers.figure import figure, step_rows

    results = []
    for path in paths:
        try:
            with open(path) as f:
                result = json.load(f)
            step_rows([result])
        except (OSError, ValueError, KeyError, TypeError) as e:
            what = (f"no {e} in it" if isinstance(e, KeyError) else "not a JSON object"
                    if isinstance(e, TypeError) else str(e))
            print(f"error: {path}: not a bench_peers --json output ({what})", file=sys.stderr)
            return 2
        results.append(result)
    print(f"figure: {figure(results, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
