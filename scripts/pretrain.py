#!/usr/bin/env python
"""`theorygrpo-pretrain` (theorygrpo_jax/pretrain.py) from a checkout; needs `pip install -e .` (make venv)."""
import sys

from theorygrpo_jax.pretrain import main

if __name__ == "__main__":
    sys.exit(main())
