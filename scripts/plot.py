#!/usr/bin/env python
"""`theorygrpo-plot` (theorygrpo_jax/plotting.py) from a checkout; needs `pip install -e .` (make venv)."""
import sys

from theorygrpo_jax.plotting import main

if __name__ == "__main__":
    sys.exit(main())
