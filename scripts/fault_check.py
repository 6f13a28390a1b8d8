#!/usr/bin/env python
"""The randomised crash-consistency check (minutes to hours, by --rounds):

    python scripts/fault_check.py --rounds 5 --steps 12 --seed 0

Each round trains a tiny run, faults it again and again (SIGKILL at a random named point and
step, or after a random wall time; SIGTERM; a corrupted newest checkpoint), resumes it, and
checks that it ends equal to an uninterrupted run (state, best model, statistics history,
metrics, catalogue). tests/faults/ is the short version that runs in CI.
"""

import sys

from theorygrpo_jax.faults import main

if __name__ == "__main__":
    sys.exit(main())
