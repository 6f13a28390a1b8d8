"""Host-side physicist's notation for model keys (plain Python, no JAX arrays needed).

One string per distinct field code:

- SM-like group (it has a U1, an SU2 and an SU3; the FIRST of each is Y,
  SU(2)_L and colour): ``(3, 2)_{1/6}`` = (SU3 dim, SU2 dim)_Y with
  Y = n/6 as a reduced fraction; further non-abelian factors append their
  dims inside the parentheses in gauge order (``(1, 1, 3)_{0}`` for a dark
  SU(3) triplet); further U(1) charges follow Y after ``;``
  (``(1, 1)_{0; 5/6}``).
- Any other group: the SU(N) dims in gauge order, then the U(1) charges in
  gauge order; no subscript when there is no U(1) (``(10)``, ``(5bar)``), and
  ``(1)`` when there is no SU(N) factor (``(1)_{1/2}``).
- A conjugate rep is written with an ASCII ``bar`` suffix: ``3bar``, ``6bar``,
  ``10bar`` (self-conjugate reps -- SU2's 2, SU4's 6 -- have none).
- Fermions are left-handed Weyl fields (an R field appears as its conjugate),
  no prefix; scalars are prefixed ``S:``, ``S(vev):``, ``S(real):`` or
  ``S(real, vev):``. A complex scalar is shown as whichever of φ, φ* has its
  first non-zero U(1) charge positive (else fewer barred reps), so the Higgs
  reads ``S(vev): (1, 2)_{1/2}``.
- Multiplicity > 1 is a trailing `` × n``.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

import numpy as np

from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.physics.identity import ModelKey, decode_code, gauge_names, key_items

_SELF_CONJUGATE = {("SU2", "F"), ("SU4", "A2")}
_BAR = {"1": "1", "Adj": "Adj", "F": "Fb", "Fb": "F", "A2": "A2b", "A2b": "A2", "S2": "S2b", "S2b": "S2"}


def _dim_label(group: str, rep: str) -> str:
    N = V.GROUP_N[group]
    base = rep[:-1] if rep.endswith("b") else rep
    d = {"1": 1, "F": N, "Adj": N * N - 1, "A2": N * (N - 1) // 2, "S2": N * (N + 1) // 2}[base]
    return f"{d}bar" if rep.endswith("b") and (group, base) not in _SELF_CONJUGATE else str(d)


def _charge(n: int) -> str:
    q = Fraction(n, 6)
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def _conj(names, slots) -> tuple:
    return tuple(-s if g == "U1" else (s if (g, s) in _SELF_CONJUGATE else _BAR[s])
                 for g, s in zip(names, slots))


def _display_scalar(names, slots) -> tuple:
    """φ or φ*: first non-zero U(1) charge positive, else fewer barred reps."""
    def badness(s):
        charges = [x for g, x in zip(names, s) if g == "U1" and x != 0]
        return (charges[0] < 0 if charges else False,
                sum(1 for g, x in zip(names, s) if g != "U1" and _dim_label(g, x).endswith("bar")))
    c = _conj(names, slots)
    return c if badness(c) < badness(slots) else slots


def field_label(names: tuple[str, ...], slots: tuple) -> str:
    """``(3, 2)_{1/6}`` style label of one field's slots (see the module docstring)."""
    sm = all(g in names for g in ("U1", "SU2", "SU3"))
    order = list(range(len(names)))
    if sm:
        y, w, c = (names.index(g) for g in ("U1", "SU2", "SU3"))
        order = [c, w] + [k for k in order if k not in (y, w, c) and names[k] != "U1"] + \
                [y] + [k for k in order if k != y and names[k] == "U1"]
    dims = [_dim_label(names[k], slots[k]) for k in order if names[k] != "U1"]
    charges = [_charge(slots[k]) for k in order if names[k] == "U1"]
    text = f"({', '.join(dims) or '1'})"
    return text + ("_{" + "; ".join(charges) + "}" if charges else "")


def describe_fields(gauge, items: Iterable[tuple[int, int]]) -> list[str]:
    """One label per (code, count): gauge is a [4] row (-1 unused) or a list of group names."""
    names = gauge_names(gauge)
    out = []
    for code, count in items:
        kind, vev, slots = decode_code(int(code), names)
        if kind == "complex":
            slots = _display_scalar(names, slots)
        prefix = {("fermion", False): "", ("complex", False): "S: ", ("complex", True): "S(vev): ",
                  ("real", False): "S(real): ", ("real", True): "S(real, vev): "}[kind, vev]
        out.append(prefix + field_label(names, slots) + (f" × {int(count)}" if int(count) > 1 else ""))
    return out


def describe_key(key: ModelKey) -> list[str]:
    """Labels of every field of ONE ModelKey."""
    gauge, items = key_items(key)
    return describe_fields(gauge, items)


def added_items(key: ModelKey, prompt_key: ModelKey) -> list[tuple[int, int]]:
    """(code, copies) of key − prompt_key (nothing shared when the gauge groups differ)."""
    gauge, items = key_items(key)
    pgauge, pitems = key_items(prompt_key)
    prompt = dict(pitems) if gauge == pgauge else {}
    return [(c, n - prompt.get(c, 0)) for c, n in items if n > prompt.get(c, 0)]


def describe_added(key: ModelKey, prompt_key: ModelKey) -> list[str]:
    """Labels of the fields ONE key adds to its prompt's key."""
    return describe_fields(np.asarray(key.gauge).tolist(), added_items(key, prompt_key))


__all__ = ["describe_fields", "describe_key", "describe_added", "added_items", "field_label"]
