"""A run's catalogue of distinct successful theories (`discoveries.jsonl` + `discoveries/*.theory`).

Theories are compared in a canonical form, so that two theories that differ
only in the order of their field declarations or of their terms (or by a
repeated term) count once.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from pathlib import Path
from typing import Any


from .grammar import recognizer
from .grammar import vocab as V
from .grammar.text import render_theory
from .metrics import json_scalar

log = logging.getLogger(__name__)

CATALOGUE_FILE = "discoveries.jsonl"
THEORY_DIR = "discoveries"
# Most relabelings of identical fields tried to find the smallest term list.
MAX_RELABELINGS = 5040


def _key(tokens: list[str] | tuple[str, ...]) -> tuple[int, ...]:
    """Sort key of a token sequence: its vocabulary ids (so m_2 < m_10)."""
    return tuple(V.TOKEN_ID[t] for t in tokens)


def _split_items(body: list[str]) -> list[list[str]]:
    """Split a field or term block body into its items (each ends with END)."""
    items, current = [], []
    for tok in body:
        current.append(tok)
        if tok == "END":
            items.append(current)
            current = []
    return items


def _renumber(term: list[str], new_index: dict[int, int]) -> tuple[str, ...]:
    """A term with every m_k replaced by its field's new number."""
    return tuple(f"m_{new_index[int(t[2:])]}" if t in V.REFS else t for t in term)


def _canonical_terms(terms: list[list[str]], new_index: dict[int, int]) -> list[tuple[str, ...]]:
    """Renumbered, deduplicated terms sorted by their token ids."""
    return sorted(set(_renumber(t, new_index) for t in terms), key=_key)


def canonical_theory(tokens: list[str]) -> list[str]:
    """The canonical form (BOS..EOS) of a valid theory.

    Fields are sorted by their tokens (in vocabulary-id order) and the `m_k`
    references renumbered to match; terms are then sorted the same way and
    exact duplicate terms dropped. Where several fields are identical, the
    numbering among them that gives the smallest sorted term list is chosen
    (trying at most MAX_RELABELINGS numberings), so that their order does not
    matter either. PAD tokens after EOS are ignored. Raises ValueError for a
    sequence the grammar rejects.
    """
    tokens = list(tokens)
    while tokens and tokens[-1] == "PAD":
        tokens.pop()
    result = recognizer.recognise(tokens)
    if not result.accepted:
        raise ValueError(f"canonical_theory: not a valid theory: {result.error}")
    gauge = tokens[:tokens.index("END_GAUGE") + 1]
    fields = _split_items(tokens[tokens.index("FIELDS") + 1:tokens.index("END_FIELDS")])
    terms = _split_items(tokens[tokens.index("TERMS") + 1:tokens.index("END_TERMS")])

    order = sorted(range(len(fields)), key=lambda i: _key(fields[i]))   # stable
    # Runs of identical fields in sorted order: any numbering within a run is equally canonical.
    groups: list[list[int]] = []
    for i in order:
        if groups and fields[groups[-1][0]] == fields[i]:
            groups[-1].append(i)
        else:
            groups.append([i])
    relabelings = math.prod(math.factorial(len(g)) for g in groups)
    if relabelings > MAX_RELABELINGS or not terms:
        choices = [tuple(groups)]
    else:
        choices = itertools.product(*(itertools.permutations(g) for g in groups))
    best: list[tuple[str, ...]] | None = None
    for choice in choices:
        new_order = [i for group in choice for i in group]
        new_index = {old + 1: new + 1 for new, old in enumerate(new_order)}
        candidate = _canonical_terms(terms, new_index)
        if best is None or [_key(t) for t in candidate] < [_key(t) for t in best]:
            best = candidate
    assert best is not None
    out = gauge + ["FIELDS"]
    for i in order:
        out += fields[i]
    out += ["END_FIELDS", "TERMS"]
    for term in best:
        out += list(term)
    out += ["END_TERMS", "EOS"]
    return out


def _format_score(value: bool | int | float | str) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class DiscoveryCatalogue:
    """The distinct theories found by a run, kept in `run_dir/discoveries.jsonl`.

    Each line is {"id", "step", "tokens" (canonical, BOS..EOS), "scores"}; each
    discovery is also written as `run_dir/discoveries/<id:05d>.theory`. An
    existing catalogue is loaded, so a resumed run keeps deduplicating (a
    truncated line left by a crash is skipped).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / CATALOGUE_FILE
        self.theory_dir = self.run_dir / THEORY_DIR
        self._seen: set[tuple[str, ...]] = set()
        self._next_id = 1
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        lines = self.path.read_text().splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                canonical = canonical_theory(record["tokens"])
                self._next_id = max(self._next_id, int(record["id"]) + 1)
            except (ValueError, KeyError, TypeError) as e:
                log.warning("%s:%d: skipping unreadable discovery (%s)", self.path, number, e)
                continue
            self._seen.add(tuple(canonical))

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, tokens: object) -> bool:
        try:
            return tuple(canonical_theory(list(tokens))) in self._seen   # type: ignore[arg-type]
        except (ValueError, TypeError, KeyError):
            return False

    def add(self, tokens: list[str], step: int, scores: dict[str, Any]) -> bool:
        """Record a theory; True when it is new (then it is written to disk), False if known.

        Raises ValueError for an invalid theory, TypeError for a non-numeric score.
        """
        canonical = canonical_theory(tokens)
        key = tuple(canonical)
        if key in self._seen:
            return False
        clean = {str(k): json_scalar(str(k), v, "discovery score") for k, v in scores.items()}
        ident = self._next_id
        header = [f"# Discovery {ident:05d}, found at step {int(step)}"]
        if clean:
            header.append("# scores: " + "  ".join(f"{k}={_format_score(v)}"
                                                   for k, v in clean.items()))
        self.theory_dir.mkdir(parents=True, exist_ok=True)
        # The .theory file first: the JSON line is the record of truth, written last.
        (self.theory_dir / f"{ident:05d}.theory").write_text(
            "\n".join(header) + "\n" + render_theory(canonical))
        record = {"id": ident, "step": int(step), "tokens": canonical, "scores": clean}
        self._append(json.dumps(record))
        self._seen.add(key)
        self._next_id = ident + 1
        return True

    def _append(self, line: str) -> None:
        """Append one line, starting a new line if a crash left the file without a final newline."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            if f.tell() > 0:
                f.seek(-1, 2)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(line.encode() + b"\n")
            f.flush()
