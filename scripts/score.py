#!/usr/bin/env python
"""`theorygrpo-score` (theorygrpo_jax/score.py) from a checkout; needs `pip install -e .` (make venv)."""
import sys

from theorygrpo_jax.score import main

if __name__ == "__main__":
    sys.exit(main())
