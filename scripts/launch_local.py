#!/usr/bin/env python
"""N training processes on this machine as one run (CPU collectives over a loopback coordinator):

    python scripts/launch_local.py --num_processes 2 -- --config smoke --output_dir runs/two

Starts `scripts/train.py <train args> --coordinator_address 127.0.0.1:<port>
--num_processes N --process_id i` for i = 0..N-1 (each with JAX_PLATFORMS=cpu unless set,
and --devices_per_process forced host devices), forwards SIGINT and SIGTERM to all of
them (a preemption: each saves at the next step boundary, together), and exits with the
worst exit status (a signal's 128 + n counts as worse than any error code below it). Process
0's output is shown as it is; the others' goes to stderr prefixed with [i]. This is how to
try multi-process behaviour without a cluster; under SLURM use scripts/slurm/train.sbatch.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _relay(index: int, stream, out) -> None:
    for line in iter(stream.readline, ""):
        out.write(line if index == 0 else f"[{index}] {line}")
        out.flush()


def worst(codes: list[int]) -> int:
    """The exit status of the whole launch: the worst of the processes' (0 only if all are 0)."""
    bad = [c for c in codes if c != 0]
    if not bad:
        return 0
    return max((c if c > 0 else 128 - c) for c in bad)   # a signal's death -n reads as 128+n


def launch(num_processes: int, train_args: list[str], devices_per_process: int = 1,
           port: int | None = None, program: str | Path = ROOT / "scripts" / "train.py",
           python: str = sys.executable) -> int:
    """Run `program` (any script taking the three distributed flags) in the processes to their
    end; returns `worst` of their exit statuses."""
    port = port or free_port()
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    if devices_per_process > 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count="
                            f"{devices_per_process}").strip()
    procs = []
    for i in range(num_processes):
        cmd = [python, str(program), *train_args,
               "--coordinator_address", f"127.0.0.1:{port}", "--num_processes",
               str(num_processes), "--process_id", str(i)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, bufsize=1))
    relays = [threading.Thread(target=_relay, args=(i, stream, out), daemon=True)
              for i, p in enumerate(procs)
              for stream, out in ((p.stdout, sys.stdout if i == 0 else sys.stderr),
                                  (p.stderr, sys.stderr))]
    for t in relays:
        t.start()

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    for t in relays:
        t.join(timeout=5)
    return worst(codes)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, train_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv \
        else (argv, [])
    parser = argparse.ArgumentParser(
        prog="launch_local.py", usage="%(prog)s --num_processes N [--devices_per_process D] "
        "-- <scripts/train.py arguments>",
        description="Start N local training processes as one multi-process run.")
    parser.add_argument("--num_processes", type=int, required=True)
    parser.add_argument("--devices_per_process", type=int, default=1,
                        help="forced host (CPU) devices per process (default 1)")
    parser.add_argument("--port", type=int, help="the coordinator's port (default: a free one)")
    parser.add_argument("--program", default=str(ROOT / "scripts" / "train.py"),
                        help="the script each process runs (default scripts/train.py)")
    args = parser.parse_args(ours)
    if args.num_processes < 1:
        parser.error(f"--num_processes must be at least 1, not {args.num_processes}")
    if args.devices_per_process < 1:
        parser.error(f"--devices_per_process must be at least 1, not {args.devices_per_process}")
    if not Path(args.program).is_file():
        parser.error(f"--program {args.program}: no such file")
    return launch(args.num_processes, train_args, args.devices_per_process, args.port,
                  args.program)


if __name__ == "__main__":
    sys.exit(main())
