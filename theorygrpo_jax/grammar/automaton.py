"""The grammar as pure JAX functions over precomputed tables.

Per-example functions (vmap them over the batch with explicit in_axes):

    tables = load_tables()                         # once per process
    state = init_state()                           # before BOS
    mask = allowed_mask(tables, state, budget)     # [V] bool
    state = step(tables, state, token)
    masks = sequence_masks(tables, tokens, max_len)  # [L, V] bool, for log-prob recomputation

`budget` is the number of tokens that may still be written, counting the one
being chosen (`max_len - position`). A token is allowed when the grammar
allows it, the registers allow it (declared field kinds, field and term
counts) and the shortest completion after it still fits in the budget, so a
sequence can never be cut off. After EOS the only allowed token is PAD, so
finished rows pad themselves.

The tables are arguments, not constants baked into the compiled code: one
compiled sampler serves any tables of the same shape.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from . import vocab as V
from .compiler import (DEAD, KIND_BIT, KIND_FERMION, KIND_LEFT, KIND_RIGHT, KIND_SCALAR,
                       compile_grammar)


@struct.dataclass
class GrammarTables:
    """Transition tables of the grammar (see `compiler`); S nodes, V tokens."""
    next_node: jax.Array    # [S, V] int32  node after each token, 0 (dead) if not allowed
    dist: jax.Array         # [S] int32     fewest tokens from a node to acceptance
    budget_needed: jax.Array  # [S, V] int32  tokens a sequence needs, this one included, to
                              #               end after each token (1 + dist of the next
                              #               node); int32 max where the token is not allowed
    ref_kind: jax.Array     # [S] int32     kind an `m_k` at this node must name (0: no ref)
    opens_field: jax.Array  # [V] bool      FERMION / SCALAR
    opens_term: jax.Array   # [V] bool      term keywords
    term_needs: jax.Array   # [V] int32     bit set of field kinds a term keyword requires
    declares: jax.Array     # [V] int32     kind a token gives the field being declared
    ref_field: jax.Array    # [V] int32     field index named by `m_k`, -1 otherwise
    start: jax.Array        # [] int32      node before BOS
    accept: jax.Array       # [] int32      node after EOS


@struct.dataclass
class GrammarState:
    """Where one sequence stands in the grammar: a node plus small registers."""
    node: jax.Array         # [] int32  automaton node (0 = dead: an invalid token was read)
    num_fields: jax.Array   # [] int32  fields declared so far
    num_terms: jax.Array    # [] int32  terms written so far
    scalars: jax.Array      # [] int32  bit k set: field m_{k+1} is a scalar
    left: jax.Array         # [] int32  bit k set: field m_{k+1} is a left-handed fermion
    right: jax.Array        # [] int32  bit k set: field m_{k+1} is a right-handed fermion


@functools.lru_cache(maxsize=1)
def load_tables() -> GrammarTables:
    """The compiled grammar as device arrays (built once per process)."""
    g = compile_grammar()
    i32 = lambda a: jnp.asarray(a, jnp.int32)  # noqa: E731
    never = np.iinfo(np.int32).max
    budget_needed = np.where(g.next_node != DEAD,
                             np.minimum(1 + g.dist[g.next_node].astype(np.int64), never), never)
    return GrammarTables(next_node=i32(g.next_node), dist=i32(g.dist),
                         budget_needed=i32(budget_needed), ref_kind=i32(g.ref_kind),
                         opens_field=jnp.asarray(g.opens_field), opens_term=jnp.asarray(g.opens_term),
                         term_needs=i32(g.term_needs), declares=i32(g.declares),
                         ref_field=i32(g.ref_field), start=i32(g.start), accept=i32(g.accept))


def init_state(tables: GrammarTables | None = None) -> GrammarState:
    """The state before any token (the next token must be BOS)."""
    start = compile_grammar().start if tables is None else tables.start
    zero = jnp.zeros((), jnp.int32)
    return GrammarState(node=jnp.asarray(start, jnp.int32), num_fields=zero, num_terms=zero,
                        scalars=zero, left=zero, right=zero)


def _declared(state: GrammarState, kind: jax.Array) -> jax.Array:
    """Bit set of declared fields of a kind (KIND_SCALAR, _LEFT, _RIGHT, _FERMION; 0 for none)."""
    return jnp.select([kind == KIND_SCALAR, kind == KIND_LEFT, kind == KIND_RIGHT,
                       kind == KIND_FERMION],
                      [state.scalars, state.left, state.right, state.left | state.right], 0)


def _register_ok(tables: GrammarTables, state: GrammarState, tokens: jax.Array) -> jax.Array:
    """Whether the registers allow `tokens` (any shape) at this state."""
    kinds_present = sum(jnp.where(_declared(state, k) != 0, bit, 0) for k, bit in KIND_BIT.items())
    counts_ok = ~((tables.opens_field[tokens] & (state.num_fields >= V.MAX_FIELDS))
                  | (tables.opens_term[tokens] & (state.num_terms >= V.MAX_TERMS)))
    needs_ok = (tables.term_needs[tokens] & ~kinds_present) == 0
    field = tables.ref_field[tokens]
    names = _declared(state, tables.ref_kind[state.node])
    ref_ok = (field < 0) | (((names >> jnp.maximum(field, 0)) & 1) == 1)
    return counts_ok & needs_ok & ref_ok


def allowed_mask(tables: GrammarTables, state: GrammarState, budget: jax.Array) -> jax.Array:
    """[V] bool: tokens that may come next with at most `budget` tokens left (this one included)."""
    tokens = jnp.arange(tables.next_node.shape[1])
    # One row of budget_needed, not a row of next_node and then V gathers from dist:
    # gathers of single elements cost ~5-10 ns each on XLA:CPU.
    fits = tables.budget_needed[state.node] <= budget
    return fits & _register_ok(tables, state, tokens)


def step(tables: GrammarTables, state: GrammarState, token: jax.Array) -> GrammarState:
    """Read one token. An invalid token sends the sequence to the dead node (0)."""
    ok = _register_ok(tables, state, token)
    node = jnp.where(ok, tables.next_node[state.node, token], DEAD)
    num_fields = state.num_fields + tables.opens_field[token].astype(jnp.int32)
    bit = jnp.left_shift(1, jnp.maximum(num_fields - 1, 0))
    kind = tables.declares[token]
    return GrammarState(
        node=node,
        num_fields=num_fields,
        num_terms=state.num_terms + tables.opens_term[token].astype(jnp.int32),
        scalars=state.scalars | jnp.where(kind == KIND_SCALAR, bit, 0),
        left=state.left | jnp.where(kind == KIND_LEFT, bit, 0),
        right=state.right | jnp.where(kind == KIND_RIGHT, bit, 0),
    )


def is_finished(tables: GrammarTables, state: GrammarState) -> jax.Array:
    """True once EOS has been read."""
    return state.node == tables.accept


def is_dead(state: GrammarState) -> jax.Array:
    """True once an invalid token has been read."""
    return state.node == DEAD


def sequence_masks(tables: GrammarTables, tokens: jax.Array, max_len: int) -> jax.Array:
    """[L, V] bool: masks[p] is the allowed set for tokens[p] given tokens[:p].

    The same masks the sampler applied, so log-probs recomputed with them are
    those of the masked, renormalised policy.
    """

    def read(state, pos_token):
        pos, token = pos_token
        mask = allowed_mask(tables, state, max_len - pos)
        return step(tables, state, token), mask

    positions = jnp.arange(tokens.shape[0])
    _, masks = jax.lax.scan(read, init_state(tables), (positions, tokens))
    return masks


def sequence_accepted(tables: GrammarTables, tokens: jax.Array, max_len: int) -> jax.Array:
    """True when `tokens` ([L], PAD after EOS) is a complete theory whose every token was allowed."""
    masks = sequence_masks(tables, tokens, max_len)
    allowed = jnp.take_along_axis(masks, tokens[:, None], axis=1)[:, 0]
    has_eos = jnp.any(tokens == V.EOS)
    return jnp.all(allowed) & has_eos
