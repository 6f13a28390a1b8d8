#!/usr/bin/env python
"""Step time against devices and processes (1, 2, 4 forced host devices; 2 processes):

    python scripts/bench_scaling.py [--prompts 4 --group 4 --warmup 2 --steps 5]
                                    [--param_sharding fsdp] [--json]

See benchmarks/scaling.py; the numbers are in docs/scaling.md.
"""

import sys

from benchmarks.scaling import main

if __name__ == "__main__":
    sys.exit(main())
