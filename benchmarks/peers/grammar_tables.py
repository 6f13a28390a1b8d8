"""The grammar automaton of `theorygrpo_jax.grammar.automaton`, batched over rows in numpy, for
the PyTorch peers (an HF LogitsProcessor runs on the host, between the model's steps).

The tables are this project's own (`automaton.load_tables()`, copied to numpy once); the
functions are `automaton.init_state`, `allowed_mask`, `step` and `sequence_masks` with a
leading row axis, written with the same rules, so the peers draw from exactly the masks the
JAX sampler applies (tests/benchmarks/peers/test_grammar_processor.py compares them).

    grammar = NumpyGrammar.load()
    state = grammar.init(rows)                      # before BOS
    mask = grammar.allowed(state, budget)           # [rows, V] bool
    state = grammar.step(state, tokens)             # tokens [rows] int
    masks = grammar.sequence_masks(tokens, max_len) # [rows, T, V] bool
"""

from __future__ import annotations

import dataclasses

import numpy as np

from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.grammar.compiler import (DEAD, KIND_BIT, KIND_FERMION, KIND_LEFT, KIND_RIGHT,
                                             KIND_SCALAR)


@dataclasses.dataclass
class RowStates:
    """Where each of b rows stands in the grammar (`automaton.GrammarState` with a row axis)."""
    node: np.ndarray        # [b] int64  automaton node (0 = dead)
    num_fields: np.ndarray  # [b] int64  fields declared so far
    num_terms: np.ndarray   # [b] int64  terms written so far
    scalars: np.ndarray     # [b] int64  bit k: field m_{k+1} is a scalar
    left: np.ndarray        # [b] int64  bit k: field m_{k+1} is a left-handed fermion
    right: np.ndarray       # [b] int64  bit k: field m_{k+1} is a right-handed fermion


@dataclasses.dataclass(frozen=True)
class NumpyGrammar:
    """This project's `GrammarTables` as numpy arrays (S nodes, V tokens)."""
    next_node: np.ndarray      # [S, V] int64
    budget_needed: np.ndarray  # [S, V] int64  tokens to the end after each token (huge: forbidden)
    ref_kind: np.ndarray       # [S] int64
    opens_field: np.ndarray    # [V] bool
    opens_term: np.ndarray     # [V] bool
    term_needs: np.ndarray     # [V] int64
    declares: np.ndarray       # [V] int64
    ref_field: np.ndarray      # [V] int64
    start: int
    accept: int

    @classmethod
    def load(cls) -> "NumpyGrammar":
        """The tables the JAX sampler uses (`automaton.load_tables`), copied to the host."""
        from theorygrpo_jax.grammar import automaton

        t = automaton.load_tables()
        i64 = lambda a: np.asarray(a).astype(np.int64)  # noqa: E731
        return cls(next_node=i64(t.next_node), budget_needed=i64(t.budget_needed),
                   ref_kind=i64(t.ref_kind), opens_field=np.asarray(t.opens_field, bool),
                   opens_term=np.asarray(t.opens_term, bool), term_needs=i64(t.term_needs),
                   declares=i64(t.declares), ref_field=i64(t.ref_field), start=int(t.start),
                   accept=int(t.accept))

    @property
    def vocab_size(self) -> int:
        return self.next_node.shape[1]

    def init(self, rows: int) -> RowStates:
        """The state of `rows` rows before any token (the next token must be BOS)."""
        zero = np.zeros(rows, np.int64)
        return RowStates(node=np.full(rows, self.start, np.int64), num_fields=zero.copy(),
                         num_terms=zero.copy(), scalars=zero.copy(), left=zero.copy(),
                         right=zero.copy())

    @staticmethod
    def _declared(state: RowStates, kind: np.ndarray | int) -> np.ndarray:
        """[b] bit set of the declared fields of `kind` ([b] or scalar; 0 for KIND_NONE)."""
        kind = np.broadcast_to(kind, state.node.shape)
        return np.select([kind == KIND_SCALAR, kind == KIND_LEFT, kind == KIND_RIGHT,
                          kind == KIND_FERMION],
                         [state.scalars, state.left, state.right, state.left | state.right], 0)

    def _register_ok(self, state: RowStates, tokens: np.ndarray) -> np.ndarray:
        """Whether the registers allow `tokens` ([b, n] or [b]) in each row."""
        extra = (slice(None),) + (None,) * (tokens.ndim - 1)   # broadcast [b] over the token axis
        kinds_present = sum(np.where(self._declared(state, k) != 0, bit, 0)
                            for k, bit in KIND_BIT.items())
        counts_ok = ~((self.opens_field[tokens] & (state.num_fields >= V.MAX_FIELDS)[extra])
                      | (self.opens_term[tokens] & (state.num_terms >= V.MAX_TERMS)[extra]))
        needs_ok = (self.term_needs[tokens] & ~kinds_present[extra]) == 0
        field = self.ref_field[tokens]
        names = self._declared(state, self.ref_kind[state.node])[extra]
        ref_ok = (field < 0) | (((names >> np.maximum(field, 0)) & 1) == 1)
        return counts_ok & needs_ok & ref_ok

    def allowed(self, state: RowStates, budget: int) -> np.ndarray:
        """[b, V] bool: the tokens each row may write next with `budget` tokens left (this one
        included), as `automaton.allowed_mask`."""
        b = state.node.shape[0]
        tokens = np.broadcast_to(np.arange(self.vocab_size), (b, self.vocab_size))
        return (self.budget_needed[state.node] <= budget) & self._register_ok(state, tokens)

    def step(self, state: RowStates, tokens: np.ndarray) -> RowStates:
        """Read one token per row ([b] int); an invalid token sends its row to the dead node."""
        tokens = np.asarray(tokens, np.int64)
        ok = self._register_ok(state, tokens)
        node = np.where(ok, self.next_node[state.node, tokens], DEAD)
        num_fields = state.num_fields + self.opens_field[tokens]
        bit = np.left_shift(1, np.maximum(num_fields - 1, 0))
        kind = self.declares[tokens]
        return RowStates(node=node, num_fields=num_fields,
                         num_terms=state.num_terms + self.opens_term[tokens],
                         scalars=state.scalars | np.where(kind == KIND_SCALAR, bit, 0),
                         left=state.left | np.where(kind == KIND_LEFT, bit, 0),
                         right=state.right | np.where(kind == KIND_RIGHT, bit, 0))

    def sequence_masks(self, tokens: np.ndarray, max_len: int) -> np.ndarray:
        """[b, T, V] bool: masks[:, p] is the allowed set for tokens[:, p] given tokens[:, :p]
        (`automaton.sequence_masks` per row)."""
        tokens = np.asarray(tokens, np.int64)
        b, t = tokens.shape
        masks = np.empty((b, t, self.vocab_size), bool)
        state = self.init(b)
        for p in range(t):
            masks[:, p] = self.allowed(state, max_len - p)
            state = self.step(state, tokens[:, p])
        return masks

    def accepted(self, tokens: np.ndarray, max_len: int) -> np.ndarray:
        """[b] bool: each row ([T], PAD after EOS) is a complete theory of allowed tokens."""
        tokens = np.asarray(tokens, np.int64)
        masks = self.sequence_masks(tokens, max_len)
        ok = np.take_along_axis(masks, tokens[..., None], axis=2)[..., 0]
        return ok.all(axis=1) & (tokens == V.EOS).any(axis=1)
