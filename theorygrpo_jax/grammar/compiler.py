"""Compile the TheoryLang grammar into transition tables.

The grammar is context-sensitive in two small ways: slots depend on the gauge
block (so the gauge signature is folded into the automaton's nodes), and
`m_k` references depend on what was declared (so the kinds of the declared
fields live in small per-sequence registers, see `automaton.GrammarState`).
Everything else is a finite automaton whose nodes are enumerated here by a
breadth-first search over symbolic node descriptions.

Tables (numpy, built once per process by `compile_grammar`):
  next_node   [S, V] int16   node after a token, DEAD (0) when not allowed
  dist        [S]    int32   fewest tokens from a node to acceptance (EOS included)
  ref_kind    [S]    int8    which declared fields an `m_k` at this node may name
  opens_field [V]    bool    FERMION / SCALAR: counts against MAX_FIELDS
  opens_term  [V]    bool    term keywords: count against MAX_TERMS
  term_needs  [V]    int8    kinds (bit set) that must have been declared for a term
  declares    [V]    int8    the kind a token gives the field being declared
  ref_field   [V]    int8    field index of `m_k` tokens, -1 otherwise
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import vocab as V

# Field kinds, as bit positions of the `term_needs` sets and as `ref_kind` codes.
KIND_NONE, KIND_SCALAR, KIND_LEFT, KIND_RIGHT, KIND_FERMION = 0, 1, 2, 3, 4
KIND_BIT = {KIND_SCALAR: 1, KIND_LEFT: 2, KIND_RIGHT: 4, KIND_FERMION: 8}
# Arguments of each term keyword, and what follows them.
TERM_ARGS = {
    "YUKAWA": ((KIND_SCALAR, KIND_LEFT, KIND_RIGHT), "masses"),
    "DIRAC": ((KIND_LEFT, KIND_RIGHT), "masses"),
    "MAJORANA": ((KIND_FERMION,), "masses"),
    "SMASS": ((KIND_SCALAR,), "mass"),
    "QUARTIC": ((KIND_SCALAR,), "coupling"),
}

DEAD = 0
UNREACHABLE = 1 << 20  # dist of the dead node


def slot_tokens(group: str, real: bool) -> list[str]:
    """Tokens allowed in a slot of `group` for a complex field (real=False) or a REAL scalar."""
    if group == "U1":
        return ["q_0"] if real else V.CHARGES
    return V.REAL_REPS[group] if real else V.ALLOWED_REPS[group]


def successors(node: tuple) -> dict[str, tuple]:
    """The grammar, one node at a time: {token: next node} ignoring registers."""
    tag = node[0]
    if tag == "start":
        return {"BOS": ("gauge_open",)}
    if tag == "gauge_open":
        return {"GAUGE": ("gauge", ())}
    if tag == "gauge":
        seq = node[1]
        out = {}
        if len(seq) < V.MAX_GAUGE:
            lowest = V.GROUPS.index(seq[-1]) if seq else 0
            for g in V.GROUPS[lowest:]:
                if g != "U1" or seq.count("U1") < V.MAX_U1:
                    out[g] = ("gauge", seq + (g,))
        if seq:
            out["END_GAUGE"] = ("fields_open", seq)
        return out
    if tag == "fields_open":
        return {"FIELDS": ("field_start", node[1], True)}
    if tag == "field_start":
        _, seq, first = node
        out = {"FERMION": ("chirality", seq), "SCALAR": ("scalar_kind", seq)}
        if not first:
            out["END_FIELDS"] = ("terms_open",)
        return out
    if tag == "chirality":
        return {c: ("generations", node[1]) for c in ("L", "R")}
    if tag == "generations":
        return {g: ("slot", node[1], 0, False) for g in ("gen_1", "gen_2", "gen_3", "gen_4")}
    if tag == "scalar_kind":
        return {"CPLX": ("vev", node[1], False), "REAL": ("vev", node[1], True)}
    if tag == "vev":
        _, seq, real = node
        return {v: ("slot", seq, 0, real) for v in ("VEV", "NOVEV")}
    if tag == "slot":
        _, seq, i, real = node
        if i == len(seq):
            return {"END": ("field_start", seq, False)}
        return {t: ("slot", seq, i + 1, real) for t in slot_tokens(seq[i], real)}
    if tag == "terms_open":
        return {"TERMS": ("term_start",)}
    if tag == "term_start":
        out = {kw: ("args", args, tail) for kw, (args, tail) in TERM_ARGS.items()}
        out["END_TERMS"] = ("eos",)
        return out
    if tag == "args":
        _, kinds, tail = node
        after = ("args", kinds[1:], tail) if len(kinds) > 1 else ("values", tail, 0)
        return {r: after for r in V.REFS}
    if tag == "values":
        _, tail, count = node
        out = {}
        limit = {"masses": V.MAX_MASSES, "mass": 1, "coupling": 1}[tail]
        if count < limit:
            values = V.COUPLINGS if tail == "coupling" else V.MASSES
            out.update({t: ("values", tail, count + 1) for t in values})
        if count >= 1:
            out["END"] = ("term_start",)
        return out
    if tag == "eos":
        return {"EOS": ("accept",)}
    if tag == "accept":
        return {"PAD": ("accept",)}
    raise ValueError(f"unknown grammar node {node!r}")


@dataclass(frozen=True)
class CompiledGrammar:
    """The grammar as numpy arrays (see module docstring) plus node names for debugging."""
    next_node: np.ndarray   # [S, V] int16
    dist: np.ndarray        # [S] int32
    ref_kind: np.ndarray    # [S] int8
    opens_field: np.ndarray  # [V] bool
    opens_term: np.ndarray  # [V] bool
    term_needs: np.ndarray  # [V] int8
    declares: np.ndarray    # [V] int8
    ref_field: np.ndarray   # [V] int8
    nodes: tuple            # [S] node descriptions (node 0 is DEAD)
    start: int              # node before BOS
    accept: int             # node after EOS

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.next_node, self.dist, self.ref_kind, self.opens_field,
                                      self.opens_term, self.term_needs, self.declares, self.ref_field))


@functools.lru_cache(maxsize=1)
def compile_grammar() -> CompiledGrammar:
    """Enumerate the automaton's nodes and build the tables (about 0.1 s, cached per process)."""
    nodes: list = [("dead",), ("start",)]
    index = {n: i for i, n in enumerate(nodes)}
    edges: list[dict[int, int]] = [{}]
    frontier = 1
    while frontier < len(nodes):
        out = {}
        for tok, nxt in successors(nodes[frontier]).items():
            if nxt not in index:
                index[nxt] = len(nodes)
                nodes.append(nxt)
            out[V.TOKEN_ID[tok]] = index[nxt]
        edges.append(out)
        frontier += 1
    num = len(nodes)
    assert num < np.iinfo(np.int16).max
    next_node = np.zeros((num, V.VOCAB_SIZE), np.int16)
    for s, out in enumerate(edges):
        for t, n in out.items():
            next_node[s, t] = n

    # Shortest distance to acceptance: reverse breadth-first search from the accept node.
    accept = index[("accept",)]
    reverse: list[list[int]] = [[] for _ in range(num)]
    for s, out in enumerate(edges):
        for n in set(out.values()):
            reverse[n].append(s)
    dist = np.full(num, UNREACHABLE, np.int32)
    dist[accept] = 0
    queue = [accept]
    for n in queue:
        for s in reverse[n]:
            if dist[s] == UNREACHABLE:
                dist[s] = dist[n] + 1
                queue.append(s)

    ref_kind = np.zeros(num, np.int8)
    for s, node in enumerate(nodes):
        if node[0] == "args":
            ref_kind[s] = node[1][0]

    opens_field = np.zeros(V.VOCAB_SIZE, bool)
    opens_field[[V.TOKEN_ID["FERMION"], V.TOKEN_ID["SCALAR"]]] = True
    opens_term = np.zeros(V.VOCAB_SIZE, bool)
    term_needs = np.zeros(V.VOCAB_SIZE, np.int8)
    for kw, (args, _) in TERM_ARGS.items():
        opens_term[V.TOKEN_ID[kw]] = True
        term_needs[V.TOKEN_ID[kw]] = sum({KIND_BIT[k] for k in args})
    declares = np.zeros(V.VOCAB_SIZE, np.int8)
    declares[V.TOKEN_ID["SCALAR"]] = KIND_SCALAR
    declares[V.TOKEN_ID["L"]] = KIND_LEFT
    declares[V.TOKEN_ID["R"]] = KIND_RIGHT
    ref_field = np.full(V.VOCAB_SIZE, -1, np.int8)
    ref_field[V.REF_SPAN[0]:V.REF_SPAN[1] + 1] = np.arange(V.MAX_FIELDS)
    return CompiledGrammar(next_node=next_node, dist=dist, ref_kind=ref_kind,
                           opens_field=opens_field, opens_term=opens_term, term_needs=term_needs,
                           declares=declares, ref_field=ref_field, nodes=tuple(nodes),
                           start=index[("start",)], accept=accept)
