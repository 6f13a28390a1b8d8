#!/usr/bin/env python
"""Train TheoryGPT with GRPO:  python scripts/train.py --config configs/default.yaml [overrides]

The same as `theorygrpo-train` and `python -m theorygrpo_jax.train`.
"""

import sys

from theorygrpo_jax.train import main

if __name__ == "__main__":
    sys.exit(main())
