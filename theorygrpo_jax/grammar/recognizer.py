"""Reference recogniser: a plain-Python recursive-descent parser of TheoryLang.

Written independently of the transition tables (it reads the spec, not the
compiler), it is the oracle of the grammar tests and the source of the error
messages users see. At each token it knows the set of tokens the language
allows there and, for each, the fewest tokens that must follow it before
EOS; so it can answer "what may come next within max_len" for any prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import vocab as V

# Fewest tokens after END_FIELDS, TERMS, END_TERMS: TERMS END_TERMS EOS / END_TERMS EOS / EOS.
_CLOSE_THEORY = 3


def _field_min(num_slots: int) -> int:
    """Fewest tokens of one field declaration: FERMION L gen_1 <slots> END."""
    return 3 + num_slots + 1


@dataclass
class Recognition:
    """Outcome of `recognise`."""
    accepted: bool
    error: str | None = None        # why not, in words
    position: int | None = None     # index of the offending token (len(tokens) when truncated)
    token: str | None = None        # the offending token (None when truncated)
    allowed: list[str] = field(default_factory=list)  # what was allowed there


class _Incomplete(Exception):
    """The tokens ran out: `options` maps each allowed next token to the fewest tokens after it."""

    def __init__(self, options: dict[str, int], what: str):
        super().__init__(what)
        self.options, self.what = options, what


class _Reject(Exception):
    def __init__(self, position: int, token: str, allowed: list[str], what: str):
        super().__init__(what)
        self.position, self.token, self.allowed, self.what = position, token, allowed, what


def describe_allowed(tokens) -> str:
    """Allowed tokens in vocabulary order, with runs of charges, refs, masses shortened."""
    ids = sorted(V.TOKEN_ID[t] for t in tokens)
    spans = [V.CHARGE_SPAN, V.REF_SPAN, V.MASS_SPAN, V.COUPLING_SPAN]
    parts, i = [], 0
    while i < len(ids):
        j = i
        span = next((s for s in spans if s[0] <= ids[i] <= s[1]), None)
        while span and j + 1 < len(ids) and ids[j + 1] == ids[j] + 1 and ids[j + 1] <= span[1]:
            j += 1
        if j - i >= 2:
            parts.append(f"{V.TOKENS[ids[i]]}..{V.TOKENS[ids[j]]}")
        else:
            parts.extend(V.TOKENS[k] for k in ids[i:j + 1])
        i = j + 1
    return " ".join(parts) if parts else "nothing"


class _Parser:
    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.pos = 0

    def take(self, options: dict[str, int], what: str) -> str:
        """Read one token among `options` ({token: fewest tokens after it})."""
        if self.pos == len(self.tokens):
            raise _Incomplete(options, what)
        tok = self.tokens[self.pos]
        if tok not in options:
            raise _Reject(self.pos, tok, list(options), what)
        self.pos += 1
        return tok

    def theory(self) -> None:
        self.take({"BOS": 1 + 1 + 1 + 1 + _field_min(1) + 1 + _CLOSE_THEORY}, "BOS")
        self.take({"GAUGE": 1 + 1 + 1 + _field_min(1) + 1 + _CLOSE_THEORY}, "GAUGE")
        gauge = self.gauge_block()
        kinds = self.field_block(gauge)
        self.term_block(kinds)
        self.take({"EOS": 0}, "EOS after END_TERMS")

    def gauge_block(self) -> list[str]:
        seq: list[str] = []
        while True:
            options = {}
            if len(seq) < V.MAX_GAUGE:
                for g in V.GROUPS:
                    in_order = not seq or V.GROUPS.index(g) >= V.GROUPS.index(seq[-1])
                    if in_order and not (g == "U1" and seq.count("U1") >= V.MAX_U1):
                        options[g] = 1 + 1 + _field_min(len(seq) + 1) + 1 + _CLOSE_THEORY
            if seq:
                options["END_GAUGE"] = 1 + _field_min(len(seq)) + 1 + _CLOSE_THEORY
            what = ("a gauge factor (U1 SU2 SU3 SU4 SU5, in that order, at most two U1, "
                    "at most four factors) or END_GAUGE")
            tok = self.take(options, what)
            if tok == "END_GAUGE":
                return seq
            seq.append(tok)

    def field_block(self, gauge: list[str]) -> list[str]:
        """Parse FIELDS ... END_FIELDS; returns each field's kind ('S', 'L' or 'R')."""
        k = len(gauge)
        self.take({"FIELDS": _field_min(k) + 1 + _CLOSE_THEORY}, "FIELDS")
        kinds: list[str] = []
        while True:
            options = {}
            if len(kinds) < V.MAX_FIELDS:
                options["FERMION"] = options["SCALAR"] = _field_min(k) - 1 + 1 + _CLOSE_THEORY
            if kinds:
                options["END_FIELDS"] = _CLOSE_THEORY
            tok = self.take(options, f"FERMION, SCALAR (at most {V.MAX_FIELDS} fields) or END_FIELDS"
                            if kinds else "a first field (FERMION or SCALAR)")
            if tok == "END_FIELDS":
                return kinds
            rest_after_head = k + 1 + 1 + _CLOSE_THEORY   # slots, END, END_FIELDS, close
            if tok == "FERMION":
                chir = self.take({"L": 1 + rest_after_head, "R": 1 + rest_after_head},
                                 "a chirality (L or R)")
                self.take({f"gen_{n}": rest_after_head for n in range(1, V.MAX_GEN + 1)},
                          "a number of generations (gen_1..gen_4)")
                kinds.append(chir)
                real = False
            else:
                real = self.take({"CPLX": 1 + rest_after_head, "REAL": 1 + rest_after_head},
                                 "CPLX or REAL") == "REAL"
                self.take({"VEV": rest_after_head, "NOVEV": rest_after_head}, "VEV or NOVEV")
                kinds.append("S")
            field_name = f"m_{len(kinds)}"
            for i, group in enumerate(gauge):
                after = (k - i - 1) + 1 + 1 + _CLOSE_THEORY
                if group == "U1":
                    allowed = ["q_0"] if real else V.CHARGES
                    what = (f"the U(1) charge of {field_name} (slot {i + 1}); a REAL scalar must have q_0"
                            if real else f"a U(1) charge q_-18..q_18 for {field_name} (slot {i + 1})")
                else:
                    allowed = V.REAL_REPS[group] if real else V.ALLOWED_REPS[group]
                    what = (f"a real {group} representation for the REAL scalar {field_name} (slot {i + 1})"
                            if real else f"an {group} representation for {field_name} (slot {i + 1})")
                self.take({t: after for t in allowed}, what)
            self.take({"END": 1 + _CLOSE_THEORY},
                      f"END: {field_name} has one slot per gauge factor ({k})")

    def term_block(self, kinds: list[str]) -> None:
        self.take({"TERMS": 2}, "TERMS")
        names = {
            "S": [f"m_{i + 1}" for i, c in enumerate(kinds) if c == "S"],
            "L": [f"m_{i + 1}" for i, c in enumerate(kinds) if c == "L"],
            "R": [f"m_{i + 1}" for i, c in enumerate(kinds) if c == "R"],
        }
        names["F"] = sorted(names["L"] + names["R"], key=lambda m: int(m[2:]))
        words = {"S": "scalar", "L": "left-handed fermion", "R": "right-handed fermion",
                 "F": "fermion"}
        signatures = {"YUKAWA": ("SLR", "masses"), "DIRAC": ("LR", "masses"),
                      "MAJORANA": ("F", "masses"), "SMASS": ("S", "mass"), "QUARTIC": ("S", "coupling")}
        count = 0
        while True:
            options = {"END_TERMS": 1}
            if count < V.MAX_TERMS:
                for kw, (args, _) in signatures.items():
                    if all(names[a] for a in args):
                        options[kw] = len(args) + 1 + 1 + 2   # refs, a value, END, END_TERMS EOS
            kw = self.take(options, f"a term keyword (whose fields are declared; at most "
                                    f"{V.MAX_TERMS} terms) or END_TERMS")
            if kw == "END_TERMS":
                return
            count += 1
            args, tail = signatures[kw]
            for j, a in enumerate(args):
                after = (len(args) - j - 1) + 1 + 1 + 2
                self.take({m: after for m in names[a]},
                          f"argument {j + 1} of {kw}: a declared {words[a]} "
                          f"({' '.join(names[a]) or 'none declared'})")
            if tail == "coupling":
                self.take({c: 1 + 2 for c in V.COUPLINGS}, "a coupling C1e-2..C5e0")
                self.take({"END": 2}, f"END after the coupling of {kw}")
                continue
            limit = V.MAX_MASSES if tail == "masses" else 1
            self.take({m: 1 + 2 for m in V.MASSES}, f"a mass token (M0, M1e-4..M5e4) for {kw}")
            for n in range(1, limit + 1):
                options = {"END": 2}
                if n < limit:
                    options.update({m: 1 + 2 for m in V.MASSES})
                if self.take(options, f"END or another mass (at most {limit} for {kw})") == "END":
                    break


def recognise(tokens: list[str], max_len: int | None = None) -> Recognition:
    """Accept or reject a whole theory (token strings, BOS..EOS), saying why."""
    unknown = next((i for i, t in enumerate(tokens) if t not in V.TOKEN_ID), None)
    if unknown is not None:
        try:
            allowed = sorted(continuations(tokens[:unknown]), key=V.TOKEN_ID.get)
        except ValueError:    # an earlier token is wrong as well: report the unknown one alone
            allowed = []
        hint = f"; allowed there: {describe_allowed(allowed)}" if allowed else ""
        return Recognition(False, f"unknown token '{tokens[unknown]}'{hint}", unknown,
                           tokens[unknown], allowed)
    parser = _Parser(tokens)
    try:
        parser.theory()
    except _Reject as r:
        return Recognition(False, f"'{r.token}' is not allowed here: expected {r.what}; "
                                  f"allowed: {describe_allowed(r.allowed)}",
                           r.position, r.token, sorted(r.allowed, key=V.TOKEN_ID.get))
    except _Incomplete as inc:
        allowed = sorted(inc.options, key=V.TOKEN_ID.get)
        return Recognition(False, f"the theory ends too early: expected {inc.what}; "
                                  f"allowed: {describe_allowed(allowed)}",
                           len(tokens), None, allowed)
    if parser.pos < len(tokens):
        return Recognition(False, f"'{tokens[parser.pos]}' after EOS", parser.pos,
                           tokens[parser.pos], [])
    if max_len is not None and len(tokens) > max_len:
        return Recognition(False, f"{len(tokens)} tokens, more than max_len {max_len}",
                           max_len, tokens[max_len], [])
    return Recognition(True)


def continuations(prefix: list[str]) -> dict[str, int]:
    """For an unfinished valid prefix: {allowed next token: fewest tokens after it}.

    Empty when the prefix is complete (ends in EOS); raises ValueError when it
    is not a valid prefix.
    """
    parser = _Parser(prefix)
    try:
        parser.theory()
    except _Incomplete as inc:
        return dict(inc.options)
    except _Reject as r:
        raise ValueError(f"token {r.position} '{r.token}': expected {r.what}") from None
    return {}


def allowed_next(prefix: list[str], max_len: int) -> set[str]:
    """Tokens that may follow `prefix` so that the theory still ends within max_len tokens.

    After EOS this is {"PAD"} (finished sequences pad), matching the automaton.
    """
    if prefix and prefix[-1] in ("EOS", "PAD"):
        return {"PAD"} if len(prefix) < max_len else set()
    budget = max_len - len(prefix)
    return {t for t, after in continuations(prefix).items() if 1 + after <= budget}
