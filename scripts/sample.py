#!/usr/bin/env python
"""`theorygrpo-sample` (theorygrpo_jax/generate.py) from a checkout; needs `pip install -e .` (make venv)."""
import sys

from theorygrpo_jax.generate import main

if __name__ == "__main__":
    sys.exit(main())
