#!/usr/bin/env python
"""List and merge runs' discovery catalogues (theorygrpo_jax/catalogue.py) from a checkout;
needs `pip install -e .` (make venv).

    python scripts/catalogue.py RUN_DIR... [--chiral] [--sm-charged]
        [--sort first|count|reward|fields] [--markdown|--csv|--json] [--limit N]
        [--dark-sets [--zmax Z] | --fermions]
"""
import sys

from theorygrpo_jax.catalogue import main

if __name__ == "__main__":
    sys.exit(main())
