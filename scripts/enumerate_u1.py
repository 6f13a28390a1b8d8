#!/usr/bin/env python
"""Count primitive anomaly-free chiral U(1)' charge sets (theorygrpo_jax.physics.u1_charges).

    python scripts/enumerate_u1.py --n 5 6 7 --zmax 32 [--json] [--sets]

Per n: the number of sets with 1 ≤ |z| ≤ zmax and the enumeration's wall time; --sets also
lists them (canonical form), --json prints one JSON object instead of a table.
"""

import argparse
import json
import sys
import time

from theorygrpo_jax.physics.u1_charges import enumerate_chiral_sets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[5, 6, 7], help="numbers of charges")
    ap.add_argument("--zmax", type=int, default=32, help="largest |z| (default 32)")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--sets", action="store_true", help="also list the sets")
    args = ap.parse_args(argv)
    results = {}
    for n in args.n:
        start = time.perf_counter()
        try:
            found = enumerate_chiral_sets(n, args.zmax)
        except ValueError as e:
            print(f"enumerate_u1: --n {n} --zmax {args.zmax}: {e}", file=sys.stderr)
            return 2
        results[n] = {"count": len(found), "seconds": round(time.perf_counter() - start, 3),
                      "sets": sorted(found)}
    if args.json:
        out = {"zmax": args.zmax,
               "n": {str(n): {k: v for k, v in r.items() if k != "sets" or args.sets}
                     for n, r in results.items()}}
        print(json.dumps(out))
        return 0
    print(f"zmax = {args.zmax}")
    for n, r in results.items():
        print(f"n = {n}: {r['count']} sets  ({r['seconds']:.3f} s)")
        if args.sets:
            for s in r["sets"]:
                print("  ", " ".join(str(z) for z in s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
