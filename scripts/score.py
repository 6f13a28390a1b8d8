#!/usr/bin/env python
"""Score TheoryLang .theory files (spec §5): python scripts/score.py FILE... [--json] [--preset default|lhc]

One JSON object per file with --json, otherwise a readable table; exit status 1
when any file is rejected by the grammar (the others are still scored).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from theorygrpo_jax.score import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
