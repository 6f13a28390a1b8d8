"""A run's catalogue of discoveries keyed by physics model (`discoveries.jsonl` + `discoveries/*.theory`).

Two successful theories are the same discovery when they are the same physics
model (`physics.identity`: gauge group and multiset of fields, fermions
left-handed, generations as copies; terms, masses and field order ignored). The
key is computed on the host by the plain-Python twin
(`physics.identity_reference`) from token strings.

Per model the catalogue keeps (an "entry", a JSON-able dict):

    id            1, 2, ... in order of discovery
    key           {"gauge": [names], "fields": [[code, count], ...], "hash": 16 hex digits}
                  (field codes as `physics.identity`; hash = key_hash64 as hi, lo)
    first_step    training step of the first instance
    last_step     step of the latest instance
    count         successful instances seen
    best_step     step of the best instance (highest total_reward; ties keep the earlier)
    scores        that instance's scores
    tokens        that instance in canonical form (`canonical_theory`), BOS..EOS
    added         physicist's labels (`physics.notation`) of the fields added to the prompt
    class         {added_fields, added_fermions, adds_sm_charged, vector_like, chiral,
                  sm_generations} relative to the prompt (`reference_model_class`,
                  sm_group=True; the prompt ["BOS"] gives the from-scratch rules)
    dark_charges  with a second U1 in the gauge group: the nonzero U(1)' charges n
                  (q_n tokens, units of 1/6), left-handed, one per generation copy, of the
                  added fermions that are singlets under the first U1, SU2 and SU3
                  (ascending); null when there are none
    dark_set      `canonical_charge_set(dark_charges)` when that set is anomaly free and
                  chiral (`physics.u1_charges`), else null

Files. `discoveries.jsonl` is append-only, one JSON object per line:

    {"prompt": [tokens]}                 the prompt the classes are relative to
    {"id": n, "key": ..., ...}           a new model: every field of its entry
    {"id": n, "count": .., ...}          an update: the fields that changed since the
                                         id's previous line (count and last_step; the
                                         best_step, scores and tokens of a better instance)
    {"id": n, "merged_into": m}          entry n was folded into entry m (see below)

Reading it back lays each id's lines over each other in file order (for every
field the last line that has it wins; a merged_into line drops the id) and
keeps the last prompt line: that gives the catalogue exactly. A line that is
not JSON (a crash's truncated last line) is skipped with a warning; a JSON line
that is not a valid record is an error naming the file and line.
`discoveries/<id:05d>.theory` holds each model's best instance with a comment
header; it is written for a new model and rewritten (temp file + rename) when
the best improves, so its "seen n times" is as of that moment.

`add` changes memory only; `flush` (called by `add_batch`) appends one line per
changed entry. On load the derived fields (key, added, class, dark charges) are
recomputed from the stored tokens and the prompt; where they differ from the
file (a record of the older token-keyed format, another prompt) the next flush
writes the difference, and entries that turn out to be one model are folded
into the lowest id.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from .grammar import recognizer
from .grammar import vocab as V
from .grammar.text import render_theory
from .metrics import json_scalar
from .physics import identity_reference as IR
from .physics.identity import HASH_SEED, HASH_SEED_HI
from .physics.notation import describe_fields
from .physics.u1_charges import canonical_charge_set, is_anomaly_free, is_chiral

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


# --------------------------------------------------------------------------- a model's description

CLASS_FIELDS = ("added_fields", "added_fermions", "adds_sm_charged", "vector_like", "chiral",
                "sm_generations")

ModelId = tuple  # (gauge names, ((code, count), ...)): hashable, equal iff same model


class CatalogueError(ValueError):
    """A catalogue that cannot be read (shown as one line `error: <path>: ...`)."""


def _prompt(prompt: list[str] | None) -> list[str]:
    """A prompt's token strings without PAD, starting with BOS (None: from scratch)."""
    toks = [str(t) for t in (prompt or []) if t != "PAD"]
    return toks if toks[:1] == ["BOS"] else ["BOS"] + toks


def model_id(tokens: list[str]) -> ModelId:
    """The hashable model identity of a theory (or of a prompt prefix)."""
    gauge, items = IR.reference_model_key(tokens)
    return gauge, tuple((IR.encode(gauge, d), n) for d, n in items)


def key_of_json(key: dict) -> ModelId:
    """The hashable model identity of an entry's JSON `key`."""
    return tuple(key["gauge"]), tuple((int(c), int(n)) for c, n in key["fields"])


def _dark_charges(gauge: tuple[str, ...], added: list[tuple[tuple, int]]) -> list[int] | None:
    """Nonzero second-U1 charges of the added fermions that are singlets under the first U1,
    SU2 and SU3 (one per copy, ascending), or None (no second U1, or no such fermion)."""
    u1 = [k for k, g in enumerate(gauge) if g == "U1"]
    if len(u1) < 2:
        return None
    trivial = [(u1[0], 0)] + [(gauge.index(g), "1") for g in ("SU2", "SU3") if g in gauge]
    charges = []
    for (kind, _, slots), n in added:
        if kind == "fermion" and all(slots[k] == t for k, t in trivial) and slots[u1[1]] != 0:
            charges += [slots[u1[1]]] * n
    return sorted(charges) or None


def describe_model(tokens: list[str], prompt: list[str] | None = None) -> dict[str, Any]:
    """The derived fields of an entry (`key`, `added`, `class`, `dark_charges`, `dark_set`) of a
    theory relative to a prompt (token strings; None or ["BOS"]: from scratch)."""
    prompt = _prompt(prompt)
    ref = IR.reference_model_key(tokens)
    gauge, items = ref
    pgauge, pitems = IR.reference_model_key(prompt)
    shared = dict(pitems) if pgauge == gauge else {}
    added = [(d, n - shared.get(d, 0)) for d, n in items if n > shared.get(d, 0)]
    hi, lo = IR.reference_key_hash(ref, HASH_SEED_HI), IR.reference_key_hash(ref, HASH_SEED)
    cls = IR.reference_model_class(tokens, prompt, sm_group=True)
    dark = _dark_charges(gauge, added)
    dark_set = (list(canonical_charge_set(dark))
                if dark and is_anomaly_free(dark) and is_chiral(dark) else None)
    return {
        "key": {"gauge": list(gauge), "fields": [[IR.encode(gauge, d), n] for d, n in items],
                "hash": f"{hi:08x}{lo:08x}"},
        "added": describe_fields(list(gauge), [(IR.encode(gauge, d), n) for d, n in added]),
        "class": {f: cls[f] for f in CLASS_FIELDS},
        "dark_charges": dark,
        "dark_set": dark_set,
    }


def class_label(entry: dict[str, Any]) -> str:
    """A short reading of an entry's class, e.g. "chiral, SM-charged" or
    "3 SM gen, no new fermions, SM-charged" (SM-charged: under the first U1, SU2 or SU3)."""
    cls = entry["class"]
    if cls["added_fields"] == 0:
        return "nothing added"
    parts = [f"{cls['sm_generations']} SM gen"] if cls["sm_generations"] else []
    # neither chiral nor vector-like: nothing is left after removing SM generations
    parts.append("chiral" if cls["chiral"] else "vector-like" if cls["vector_like"]
                 else "no new fermions" if cls["added_fermions"] else "scalars only")
    parts.append("SM-charged" if cls["adds_sm_charged"] else "SM-neutral")
    if entry.get("dark_set"):
        parts.append("dark set (" + ", ".join(map(str, entry["dark_set"])) + ")")
    return ", ".join(parts)


def added_label(entry: dict[str, Any]) -> str:
    return " + ".join(entry["added"]) if entry["added"] else "(nothing added)"


def reward_of(scores: dict[str, Any]) -> float:
    """total_reward as a float; missing, non-numeric or NaN ranks lowest."""
    try:
        r = float(scores.get("total_reward", -math.inf))
    except (TypeError, ValueError):
        return -math.inf
    return -math.inf if math.isnan(r) else r


def _format_score(value: bool | int | float | str) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def theory_text(entry: dict[str, Any]) -> str:
    """The `.theory` file of an entry: a comment header, then its best instance."""
    cls = entry["class"]
    header = [
        f"# Discovery {entry['id']:05d}: {added_label(entry)}",
        f"# class: {class_label(entry)}; {cls['added_fields']} added fields "
        f"({cls['added_fermions']} fermions)",
        f"# first found at step {entry['first_step']}; seen {entry['count']} times by step "
        f"{entry['last_step']}; this instance at step {entry['best_step']}",
    ]
    if entry["scores"]:
        header.append("# scores: " + "  ".join(f"{k}={_format_score(v)}"
                                               for k, v in entry["scores"].items()))
    if entry["dark_charges"]:
        header.append("# dark U(1)' charges (q units): " + " ".join(map(str, entry["dark_charges"]))
                      + (f" -> chiral anomaly-free set {tuple(entry['dark_set'])}"
                         if entry["dark_set"] else ""))
    return "\n".join(header) + "\n" + render_theory(entry["tokens"])


# --------------------------------------------------------------------------- the catalogue


class DiscoveryCatalogue:
    """The distinct physics models found by a run, kept in `run_dir/discoveries.jsonl`.

    `prompt`: the prompt (token strings) the classes are relative to; None uses the
    prompt stored in an existing catalogue, else ["BOS"] (from scratch). An existing
    catalogue is loaded, so a resumed run keeps deduplicating and numbering on.
    Raises CatalogueError for an unreadable file or an invalid record (file:line).
    """

    def __init__(self, run_dir: str | Path, prompt: list[str] | None = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / CATALOGUE_FILE
        self.theory_dir = self.run_dir / THEORY_DIR
        self._entries: dict[int, dict[str, Any]] = {}     # id -> entry
        self._by_model: dict[ModelId, int] = {}            # model -> id
        self._next_id = 1
        self._changed: set[int] = set()                    # ids whose record is not on disk
        self._rewrite: set[int] = set()                    # ids whose .theory file is stale
        self._folded: list[tuple[int, int]] = []           # (id, into) not yet on disk
        self._written: dict[int, dict[str, str]] = {}      # id -> field -> its JSON on disk
        stored = self._load() if self.path.exists() else None
        self.prompt = _prompt(prompt if prompt is not None else stored)
        self._write_prompt = stored is None or _prompt(stored) != self.prompt
        self._rederive()

    # ---- reading

    def _load(self) -> list[str] | None:
        """Read the file's records into memory; returns the stored prompt (None if none)."""
        try:
            data = self.path.read_bytes().decode("utf-8")
        except OSError as e:
            raise CatalogueError(f"{self.path}: cannot read: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise CatalogueError(f"{self.path}: not a text file") from None
        prompt = None
        records: dict[int, dict] = {}       # id -> its lines laid over each other
        last_line: dict[int, int] = {}
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{self.path}:{number}"
            try:
                record = json.loads(line)
            except ValueError as e:
                log.warning("%s: skipping unreadable line (%s)", where, e)
                continue
            if not isinstance(record, dict):
                raise CatalogueError(f"{where}: not a catalogue record")
            if "id" not in record:
                if not (isinstance(record.get("prompt"), list)
                        and all(isinstance(t, str) for t in record["prompt"])):
                    raise CatalogueError(f"{where}: a record needs an 'id' or a 'prompt' token list")
                prompt = record["prompt"]
                continue
            ident = record["id"]
            if isinstance(ident, bool) or not isinstance(ident, int) or ident < 1:
                raise CatalogueError(f"{where}: 'id' must be a positive integer, not {ident!r}")
            self._next_id = max(self._next_id, ident + 1)
            if "merged_into" in record:
                records.pop(ident, None)
            else:
                records.setdefault(ident, {}).update(record)
                last_line[ident] = number
        for ident in sorted(records):
            record = records[ident]
            self._entries[ident] = self._from_record(record, f"{self.path}:{last_line[ident]}")
            self._written[ident] = {k: _json(v) for k, v in record.items()}
        return prompt

    @staticmethod
    def _from_record(record: dict, where: str) -> dict[str, Any]:
        """An entry without its derived fields from one record (a record of the older
        token-keyed format has `step` and no count); CatalogueError if invalid."""
        try:
            first = int(record["first_step"] if "first_step" in record else record["step"])
            best = int(record.get("best_step", first))
            scores = record.get("scores", {})
            if not isinstance(scores, dict):
                raise TypeError(f"'scores' is a {type(scores).__name__}, not an object")
            entry = _entry(record["id"], first, int(record.get("last_step", max(first, best))),
                           int(record.get("count", 1)), best,
                           {str(k): json_scalar(str(k), v, "score") for k, v in scores.items()},
                           canonical_theory(record["tokens"]))
        except KeyError as e:
            raise CatalogueError(f"{where}: record has no {e}") from None
        except (ValueError, TypeError) as e:
            raise CatalogueError(f"{where}: invalid record: {e}") from None
        return entry

    def _rederive(self) -> None:
        """Recompute the derived fields of loaded entries and fold entries of one model."""
        for ident in sorted(self._entries):
            entry = self._entries[ident]
            entry.update(describe_model(entry["tokens"], self.prompt))
            written = self._written[ident]
            if any(written.get(k) != _json(v) for k, v in entry.items()):
                self._changed.add(ident)
                self._rewrite.add(ident)
            model = key_of_json(entry["key"])
            into = self._by_model.get(model)
            if into is None:
                self._by_model[model] = ident
                continue
            log.warning("%s: entries %d and %d are one model; folding %d into %d",
                        self.path, into, ident, ident, into)
            _combine(self._entries[into], entry)
            del self._entries[ident], self._written[ident]
            self._changed.discard(ident)
            self._rewrite.discard(ident)
            self._changed.add(into)
            self._rewrite.add(into)
            self._folded.append((ident, into))

    # ---- queries

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tokens: object) -> bool:
        """Whether the model of a theory (token strings) is in the catalogue."""
        try:
            return model_id(list(tokens)) in self._by_model   # type: ignore[arg-type]
        except (ValueError, TypeError, KeyError, IndexError):
            return False

    def entries(self) -> list[dict[str, Any]]:
        """Copies of the entries, by id."""
        return [copy.deepcopy(self._entries[i]) for i in sorted(self._entries)]

    def summary(self) -> dict[str, Any]:
        """Counts for the logs: models, sm_charged, chiral, vector_like, dark_sets {n: distinct
        dark sets of n charges}, instances."""
        entries = self._entries.values()
        dark = {tuple(e["dark_set"]) for e in entries if e["dark_set"]}
        return {
            "models": len(self._entries),
            "sm_charged": sum(bool(e["class"]["adds_sm_charged"]) for e in entries),
            "chiral": sum(bool(e["class"]["chiral"]) for e in entries),
            "vector_like": sum(bool(e["class"]["vector_like"]) for e in entries),
            "dark_sets": dict(sorted(Counter(len(s) for s in dark).items())),
            "instances": sum(e["count"] for e in entries),
        }

    # ---- updates

    def add(self, tokens: list[str], step: int, scores: dict[str, Any]) -> bool:
        """Record one successful instance in memory; True when its MODEL is new.

        Raises ValueError for an invalid theory, TypeError for a non-numeric score
        (nothing is changed then). `flush` writes the changes.
        """
        tokens = list(tokens)
        while tokens and tokens[-1] == "PAD":
            tokens.pop()
        clean = {str(k): json_scalar(str(k), v, "discovery score") for k, v in scores.items()}
        result = recognizer.recognise(tokens)
        if not result.accepted:
            raise ValueError(f"not a valid theory: {result.error}")
        step = int(step)
        model = model_id(tokens)
        ident = self._by_model.get(model)
        if ident is None:
            ident = self._next_id
            self._next_id += 1
            entry = _entry(ident, step, step, 1, step, clean, canonical_theory(tokens))
            entry.update(describe_model(tokens, self.prompt))
            self._entries[ident] = entry
            self._by_model[model] = ident
            self._changed.add(ident)
            self._rewrite.add(ident)
            return True
        entry = self._entries[ident]
        entry["count"] += 1
        entry["first_step"] = min(entry["first_step"], step)
        entry["last_step"] = max(entry["last_step"], step)
        if reward_of(clean) > reward_of(entry["scores"]):
            entry.update(best_step=step, scores=clean, tokens=canonical_theory(tokens))
            self._rewrite.add(ident)
        self._changed.add(ident)
        return False

    def add_batch(self, rows: list[tuple[list[str], dict[str, Any]]], step: int) -> int:
        """Record one step's successful instances (tokens, scores) and flush; returns the
        number of new models."""
        try:
            return sum(self.add(tokens, step, scores) for tokens, scores in rows)
        finally:
            self.flush()

    def flush(self) -> None:
        """Write the changed `.theory` files, then append the changed entries' records."""
        if not (self._changed or self._folded or (self._write_prompt and self._entries)):
            return
        if self._rewrite:
            self.theory_dir.mkdir(parents=True, exist_ok=True)
        for ident in sorted(self._rewrite):
            path = self.theory_dir / f"{ident:05d}.theory"
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(theory_text(self._entries[ident]))
            os.replace(tmp, path)
        lines = [{"prompt": self.prompt}] if self._write_prompt else []
        lines += [{"id": i, "merged_into": into} for i, into in self._folded]
        for ident in sorted(self._changed):
            written = self._written.setdefault(ident, {})
            fields = {k: _json(v) for k, v in self._entries[ident].items()}
            update = {k: v for k, v in self._entries[ident].items()
                      if k == "id" or written.get(k) != fields[k]}
            written.update(fields)
            if len(update) > 1:
                lines.append(update)
        if lines:
            self._append("".join(json.dumps(r) + "\n" for r in lines))
        self._write_prompt = False
        self._folded.clear()
        self._changed.clear()
        self._rewrite.clear()

    def _append(self, text: str) -> None:
        """Append lines, starting a new line if a crash left the file without a final newline."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            if f.tell() > 0:
                f.seek(-1, 2)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(text.encode())
            f.flush()


def _entry(ident: int, first_step: int, last_step: int, count: int, best_step: int,
           scores: dict[str, Any], tokens: list[str]) -> dict[str, Any]:
    """An entry's history fields, in the order the records show them (derived fields follow)."""
    return {"id": ident, "key": None, "first_step": first_step, "last_step": last_step,
            "count": count, "best_step": best_step, "scores": scores, "tokens": tokens}


def _json(value: Any) -> str:
    """Comparable form of a JSON value (NaN equal to NaN, key order ignored)."""
    return json.dumps(value, sort_keys=True)


def _combine(into: dict[str, Any], other: dict[str, Any]) -> None:
    """Fold another entry of the same model into `into` (counts summed, best kept)."""
    into["count"] += other["count"]
    into["first_step"] = min(into["first_step"], other["first_step"])
    into["last_step"] = max(into["last_step"], other["last_step"])
    mine, theirs = reward_of(into["scores"]), reward_of(other["scores"])
    if theirs > mine or (theirs == mine and other["best_step"] < into["best_step"]):
        for name in ("best_step", "scores", "tokens"):
            into[name] = other[name]


def load_catalogue(run_dir: str | Path) -> list[dict[str, Any]]:
    """The entries of a run directory's catalogue (read only; classes relative to its stored
    prompt). CatalogueError (one line, naming the path) when it is not a run directory with a
    readable catalogue."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise CatalogueError(f"{run_dir}: no such directory")
    if not run_dir.is_dir():
        raise CatalogueError(f"{run_dir}: not a run directory")
    if not (run_dir / CATALOGUE_FILE).is_file():
        raise CatalogueError(f"{run_dir}: no {CATALOGUE_FILE} (not a run directory, or nothing "
                             "discovered yet)")
    return DiscoveryCatalogue(run_dir).entries()
