"""Grammar-constrained batch sampling of theories.

    rollout = sample(params, config, tables, rng, prompts=None, batch_size=64,
                     policy=PolicySpec(temperature=1.0, top_k=None))

`sample` checks and packs the prompts on the host (`tasks.pack_prompts`),
then calls `sample_tokens`, ONE jitted function that runs the whole
generation on device: a parallel prefill of the prompts, then `lax.while_loop`s
over positions with a preallocated KV cache, the grammar automaton (vmapped
over rows) masking the logits at every step, per-row RNG, and rows that froze
after EOS (a `done` mask). No Python runs per token.

The policy is `policy.py`'s masked, tempered, top-k distribution, and the
recorded log-probs are those of that distribution; `policy.log_policy`
recomputes them in one parallel forward pass with the same masks. Under any
logits (NaN, infinite, huge) only tokens the grammar allows are drawn
(`policy.drawable_logp`).

The pieces, as in Gemma's sampler: static knobs in a frozen `SamplerOptions`;
the loop carry is one `SamplingState`; what every step reads (weights, head,
grammar tables, policy) is one `Decoder`; `prefill` builds the first state,
`decode_step` is the loop body, `run_block` runs the positions of one cache
window with compaction, `run_blocks` chains the windows.

Cache windows. Positions are processed in blocks (`block_ends`: 64 positions
up to 128, longer ones after); block j runs over a cache that is only as long
as the block's end (the cache grows by one zero chunk per block, nothing is
copied), so a decode step at position p reads at most the block's end, not
max_len. Once every row is done the remaining blocks are skipped (nested
lax.cond).

Compaction. Rows finish at very different lengths, and a finished row in the
batch costs a full decode step. So within a block the loop runs on B slots
only while more than B/2 rows are unfinished; then the unfinished rows are
gathered into B/2 slots (cache, grammar state, logits, ...) and the loop goes
on there, then B/4, B/8, B/16 (not below `min_slots`, default 8: each slot size
is one more compiled loop body per block, and 4 slots sample at most a few per
cent faster, where a few rows run long after the rest; docs/performance.md);
results are scattered back. Each row keeps its own RNG
stream (fold_in of its row index), so compaction never changes the samples.
Each (block, slot size) pair is one compiled loop body.

The tail. Past position 128 (`SamplerOptions.tail_from`) few rows are left (the original
size's theories average 28 tokens of 512), so instead of four more blocks of five slot sizes each, the
rest runs in one window of max_len on `tail_slots` slots: the unfinished rows a chunk at
a time, each chunk to its end (`run_tail`). That is one loop body, not twenty. Few slots,
because a chunk's last row often runs long alone and a step over the 512-position window
reads the cache of every slot: 4 slots cost less than 16 unless more than ~8 rows are that
long, which a policy writing 28-token theories does not do.

Sampling draws one uniform per row and inverts the CDF of the masked policy
(Gumbel-max would need V random numbers and 2V logs per row per step); the CDF
is a matmul with a triangular matrix and "first index" is a min-reduce, both
cheaper on XLA:CPU than cumsum and argmax.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from . import model as M
from . import tasks
from .grammar import automaton
from .grammar import vocab as V
from .policy import PolicySpec, apply_grammar, drawable_logp, policy_logits


@dataclasses.dataclass(frozen=True)
class SamplerOptions:
    """Static knobs of the sampler (each distinct value is one more compile)."""
    block_size: int | None = None   # positions per cache window; None: `block_ends`' default
    min_slots: int | None = 8       # compact unfinished rows down to this many slots; None: never
    use_masks: bool = True          # False switches the grammar off (benchmarks measure its cost;
    #                                 the output is then not guaranteed to be a theory)
    stop_pos: int | None = None     # stop before this position even if rows are unfinished
    #                                 (benchmarks); None: max_len
    tail_from: int = 128            # blocks ending past this position are the tail
    tail_slots: int | None = 4      # the tail runs in one window of max_len on this many slots at
    #                                 a time (rows that long are few: 4 sampled the original size
    #                                 ~15 % faster than 16, docs/performance.md); None: in blocks

    def __post_init__(self):
        # a tail of 0 slots would never finish its rows (the sampler would loop for ever)
        if self.tail_slots is not None and self.tail_slots < 1:
            raise ValueError(f"SamplerOptions.tail_slots must be >= 1 or None, got {self.tail_slots}")


@struct.dataclass
class SamplingState:
    """Loop carry of the sampler: b slots (b <= B rows), L = max_len, W = cache window."""
    tokens: jax.Array            # [b, L] int32   prompt, then sampled tokens; PAD after EOS
    logprobs: jax.Array          # [b, L] float32 log-prob of each sampled token; 0 elsewhere
    cache: M.KVCache             # [layer][chunk] -> [b, heads, C, head_dim]; chunks cover 0..W-1
    grammar: automaton.GrammarState  # each register [b] int32: state after tokens[:, :pos]
    logits: jax.Array            # [b, V] float32 model logits for the token at `pos`
    done: jax.Array              # [b] bool       row has produced EOS (later tokens PAD)
    uniforms: jax.Array          # [b, L] float32 the slot's row's uniform draw at each position
    prompt: jax.Array            # [b, P] int32   the slot's row's prompt, PAD after its end
    prompt_len: jax.Array        # [b] int32      prompt tokens of each slot's row
    pos: jax.Array               # []   int32     position of the token chosen next


@struct.dataclass
class Rollout:
    """A batch of sampled theories."""
    tokens: jax.Array            # [B, L] int32   BOS ... EOS then PAD
    lengths: jax.Array           # [B] int32      tokens up to and including EOS (BOS included)
    logprobs: jax.Array          # [B, L] float32 sampling log-probs; 0 for prompt tokens and PAD
    completion_mask: jax.Array   # [B, L] bool    policy-generated tokens (what the loss sums over)
    prompt_len: jax.Array        # [B] int32      prompt tokens per row (teacher-forced)
    finished: jax.Array          # [B] bool       row ended with EOS (always, with grammar masks)
    num_steps: jax.Array         # []  int32      position after the last loop step


def block_ends(max_len: int, block_size: int | None = None) -> tuple[int, ...]:
    """Ends of the position blocks (each block's cache window reaches its end).

    block_size given: uniform blocks of that many positions. None (default):
    blocks of 64 positions up to 128, then each block as long as the largest
    power of two <= half its start (64, 128, 192, 256, 384, 512, ...): every block
    is one more compiled loop body per slot count, and windows of 32 sampled no
    faster than windows of 64 (docs/performance.md, compilation).
    """
    ends, end = [], 0
    while end < max_len:
        step = block_size or (64 if end < 128 else 1 << ((end // 2).bit_length() - 1))
        end = min(max_len, end + step)
        ends.append(end)
    return tuple(ends)


def _windows(max_len: int, prompt_width: int, ends: tuple[int, ...]) -> list[tuple[int, int]]:
    """(block end, cache length) per block: the cache covers the block and the whole prompt.
    Blocks inside the prompt's window share it and run as one (each block is one more
    compiled loop body per slot count, and the same window gives the same step). A prompt
    that leaves less than half of its block to sample joins the next block too: the default
    config's 56-token prompt would otherwise compile four loop bodies for 8 positions."""
    k = next(i for i, e in enumerate(ends) if e >= min(prompt_width, max_len))
    start = ends[k - 1] if k else 0
    if k + 1 < len(ends) and 2 * (ends[k] - prompt_width) < ends[k] - start:
        k += 1
    return [(end, max(end, ends[k])) for end in ends[k:]]


MAX_COMPACTIONS = 4  # each slot size is one more compiled loop body per cache block


def slot_sizes(batch: int, min_slots: int | None) -> list[int]:
    """Batch sizes the sampler may compact to: batch, batch/2, ... (>= min_slots, at most
    MAX_COMPACTIONS halvings)."""
    sizes = [batch]
    while (min_slots is not None and len(sizes) <= MAX_COMPACTIONS and sizes[-1] % 2 == 0
           and sizes[-1] // 2 >= min_slots):
        sizes.append(sizes[-1] // 2)
    return sizes


def row_uniforms(rng: jax.Array, rows: jax.Array, length: int) -> jax.Array:
    """[b, length] float32: u[i, p] = uniform(fold_in(fold_in(rng, p), rows[i])), the draw of
    batch row rows[i] at position p.

    Drawn for the whole batch before the loop: threefry runs as a rolled loop
    of its own on CPU, and three of them per decode step (fold_in twice, then
    uniform) cost more than the step's grammar masks. Per-row streams make the
    samples independent of batch composition (compaction, sharding).
    """
    position_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, jnp.arange(length))
    keys = jax.vmap(jax.vmap(jax.random.fold_in, in_axes=(0, None)), in_axes=(None, 0))(
        position_keys, rows)
    return jax.vmap(jax.vmap(jax.random.uniform))(keys)


def _prefix_sum_matrix(size: int) -> np.ndarray:
    """[size, size] float32 upper-triangular ones: x @ it is the running sum of x."""
    return np.triu(np.ones((size, size), np.float32))


def _first_index(hit: jax.Array) -> jax.Array:
    """[b, V] bool -> [b] int32: the first True column of each row, V where none is."""
    columns = jnp.arange(hit.shape[-1], dtype=jnp.int32)
    return jnp.min(jnp.where(hit, columns, hit.shape[-1]), axis=-1)


def _inverse_cdf_sample(u: jax.Array, logp: jax.Array) -> jax.Array:
    """One draw per row from softmax(logp) [b, V], given the row's uniform u [b]: [b] int32.

    The first token whose CDF exceeds u x total. Inverse-CDF sampling needs one
    uniform per row where Gumbel-max (jax.random.categorical) needs V; the CDF
    is one small matmul with a triangular matrix (XLA:CPU lowers jnp.cumsum to
    a padded reduce-window, 2-3x slower at a batch of 32-64). Only tokens of
    nonzero probability qualify, and rounding that leaves none above u x total
    falls back to the last of them, so a token the grammar forbids (probability
    exactly 0) is never drawn.
    """
    probs = jnp.exp(logp)
    cdf = jnp.dot(probs, _prefix_sum_matrix(logp.shape[-1]), precision="highest")
    allowed = probs > 0
    drawn = _first_index(allowed & (cdf > (u * cdf[:, -1])[:, None]))
    columns = jnp.arange(logp.shape[-1], dtype=jnp.int32)
    last_allowed = jnp.max(jnp.where(allowed, columns, 0), axis=-1)
    return jnp.minimum(drawn, last_allowed)


def _greedy(logp: jax.Array) -> jax.Array:
    """[b, V] -> [b] int32: the first most likely token (argmax, as a cheaper reduce on CPU)."""
    return _first_index(logp == jnp.max(logp, axis=-1, keepdims=True))


# PAD and BOS (ids 0, 1) are never drawn: the grammar allows BOS only before the
# first token (a prompt position) and PAD only after EOS (a finished row, whose
# token the sampler overwrites with PAD). Drawing over the other V - 2 columns
# (128 for this vocabulary, a better shape for XLA:CPU's GEMM) is cheaper (performance_history.md).
FIRST_DRAWN = 2
assert V.PAD < FIRST_DRAWN and V.BOS < FIRST_DRAWN <= V.EOS


def draw_tokens(u: jax.Array, logp: jax.Array, temperature: jax.Array,
                first: int = 0, allowed: jax.Array | None = None) -> jax.Array:
    """The policy's choice per row: [b] int32 from log-probs logp [b, V] and uniforms u [b].

    temperature > 0: an inverse-CDF draw; otherwise greedy (first argmax). Only
    columns first.. are candidates (`FIRST_DRAWN` under grammar masks), and of
    those only the ones `allowed` [b, V] marks (None: all). A row whose allowed
    candidates have no finite positive mass (non-finite logits) is drawn
    uniformly among them (`policy.drawable_logp`), so the grammar holds under
    any logits. A lax.cond on the scalar temperature, so a step computes one of
    the two.
    """
    candidates = drawable_logp(logp[:, first:], None if allowed is None else allowed[:, first:])
    return first + jax.lax.cond(temperature > 0, _inverse_cdf_sample,
                                lambda _, lp: _greedy(lp), u, candidates)


_PER_SLOT = ("tokens", "logprobs", "cache", "grammar", "logits", "done", "uniforms", "prompt",
             "prompt_len")  # SamplingState fields with a leading slot axis (not pos)


def _take_rows(state: SamplingState, idx: jax.Array) -> SamplingState:
    """The slots `idx` of a state (a smaller batch)."""
    return state.replace(**{f: jax.tree_util.tree_map(lambda a: a[idx], getattr(state, f))
                            for f in _PER_SLOT})


def _put_rows(state: SamplingState, idx: jax.Array, part: SamplingState,
              keep: jax.Array | None = None,
              fields: tuple[str, ...] = _PER_SLOT) -> SamplingState:
    """`state` with slots `idx` replaced by the (smaller) state `part` (its `pos` too); with keep
    [slots] bool, only the slots where it is True (the others' rows stay as they were in
    `state`). Only `fields` are written back; the others keep `state`'s."""
    def put(a, p):
        if keep is not None:
            p = jnp.where(keep.reshape((-1,) + (1,) * (p.ndim - 1)), p, a[idx])
        return a.at[idx].set(p)
    return state.replace(pos=part.pos, **{
        f: jax.tree_util.tree_map(put, getattr(state, f), getattr(part, f)) for f in fields})


@struct.dataclass
class Decoder:
    """What every decode step reads; constant over the loop."""
    params: Any                       # model weights, kernels already in matmul_dtype (M.decode_params)
    head: jax.Array                   # [D, V] output head (M.output_head), built once outside the loop
    tables: automaton.GrammarTables   # the grammar's transition tables
    policy: PolicySpec                # temperature (traced) and top_k (static)
    config: M.ModelConfig = struct.field(pytree_node=False)
    options: SamplerOptions = struct.field(pytree_node=False)

    @property
    def stop_pos(self) -> int:
        return self.config.max_len if self.options.stop_pos is None else self.options.stop_pos


def prefill(decoder: Decoder, prompt_tokens: jax.Array, prompt_len: jax.Array, rng: jax.Array,
            row_offset: jax.Array | int, window: int) -> SamplingState:
    """The state before the first sampled position: prompts run through the model in parallel
    into a cache of `window` positions, the grammar automaton read up to the shortest prompt.

    Rows with longer prompts are forced through their remaining prompt tokens by `decode_step`.
    """
    config, use_masks = decoder.config, decoder.options.use_masks
    b, width = prompt_tokens.shape
    L = config.max_len
    in_prompt = jnp.arange(width)[None, :] < prompt_len[:, None]
    prompt_tokens = jnp.where(in_prompt, prompt_tokens.astype(jnp.int32), V.PAD)
    tokens = jnp.full((b, L), V.PAD, jnp.int32).at[:, :width].set(prompt_tokens)
    start = jnp.min(prompt_len)  # first position the loop visits (longer prompts are forced)

    all_logits, cache = M.prefill(decoder.params, config, prompt_tokens,
                                  M.init_cache(config, b, window))
    logits = jax.lax.dynamic_index_in_dim(all_logits, start - 1, axis=1, keepdims=False)

    grammar = jax.vmap(lambda _: automaton.init_state(decoder.tables))(prompt_len)
    if use_masks:
        read = jax.vmap(automaton.step, in_axes=(None, 0, 0))
        grammar = jax.lax.fori_loop(0, start, lambda i, g: read(decoder.tables, g, tokens[:, i]),
                                    grammar)
    done = jnp.any((tokens == V.EOS) & (jnp.arange(L)[None, :] < start), axis=1)
    rows = jnp.asarray(row_offset, jnp.int32) + jnp.arange(b, dtype=jnp.int32)
    return SamplingState(tokens=tokens, logprobs=jnp.zeros((b, L), jnp.float32), cache=cache,
                         grammar=grammar, logits=logits, done=done,
                         uniforms=row_uniforms(rng, rows, L), prompt=prompt_tokens,
                         prompt_len=prompt_len, pos=start)


def decode_step(decoder: Decoder, s: SamplingState) -> SamplingState:
    """One position for every slot: mask, draw (or force the prompt's token, or PAD after EOS),
    advance the grammar, run the model one token."""
    config, use_masks = decoder.config, decoder.options.use_masks
    p = s.pos
    logits = s.logits
    if use_masks:
        budget = config.max_len - p
        allowed = jax.vmap(automaton.allowed_mask, in_axes=(None, 0, None))(decoder.tables,
                                                                           s.grammar, budget)
        logits = apply_grammar(logits, allowed)
    logp_all = jax.nn.log_softmax(policy_logits(logits, decoder.policy))
    u = jax.lax.dynamic_index_in_dim(s.uniforms, p, axis=1, keepdims=False)
    chosen = draw_tokens(u, logp_all, jnp.asarray(decoder.policy.temperature),
                         FIRST_DRAWN if use_masks else 0, allowed if use_masks else None)
    forced = p < s.prompt_len
    generated = ~forced & ~s.done
    # The forced token comes from the prompt, not from `tokens`: reading the array the
    # step writes made XLA copy it twice per step.
    prompted = jax.lax.dynamic_index_in_dim(s.prompt, jnp.minimum(p, s.prompt.shape[1] - 1),
                                            axis=1, keepdims=False)
    token = jnp.where(forced, prompted, chosen)
    token = jnp.where(s.done, V.PAD, token)
    logp = jnp.take_along_axis(logp_all, token[:, None], axis=1)[:, 0]
    grammar = s.grammar
    if use_masks:
        grammar = jax.vmap(automaton.step, in_axes=(None, 0, 0))(decoder.tables, grammar, token)
    next_logits, cache = M.decode_step(decoder.params, config, s.cache, token, p, write_chunk=-1,
                                       head=decoder.head)
    return s.replace(tokens=_set_column(s.tokens, p, token),
                     logprobs=_set_column(s.logprobs, p, jnp.where(generated, logp, 0.0)),
                     cache=cache, grammar=grammar, logits=next_logits,
                     done=s.done | (token == V.EOS), pos=p + 1)


def _set_column(a: jax.Array, p: jax.Array, x: jax.Array) -> jax.Array:
    """a [b, L] with column p set to x [b]."""
    return jax.lax.dynamic_update_slice(a, x[:, None], (0, p))


def _running(decoder: Decoder, s: SamplingState) -> jax.Array:
    """[] bool: some row is unfinished and the stop position is not reached."""
    return (s.pos < decoder.stop_pos) & ~jnp.all(s.done)


def _loop_while_more_than(decoder: Decoder, s: SamplingState, end: int,
                          below: int) -> SamplingState:
    """Decode steps up to position `end` while more than `below` rows are unfinished."""
    def go(t: SamplingState) -> jax.Array:
        return (t.pos < end) & _running(decoder, t) & (jnp.sum(~t.done) > below)
    return jax.lax.while_loop(go, functools.partial(decode_step, decoder), s)


def _compacted(decoder: Decoder, size: int, end: int, below: int,
               s: SamplingState) -> SamplingState:
    """The loop on `size` slots holding the unfinished rows, scattered back into the state."""
    idx = jnp.argsort(s.done, stable=True)[:size]  # unfinished rows first
    return _put_rows(s, idx, _loop_while_more_than(decoder, _take_rows(s, idx), end, below))


def run_block(decoder: Decoder, s: SamplingState, end: int, sizes: list[int]) -> SamplingState:
    """Positions up to `end`, or until every row is done, compacting the unfinished rows into
    ever smaller batches: slot size sizes[k] runs while more than sizes[k + 1] rows are active."""
    for k, size in enumerate(sizes):
        below = sizes[k + 1] if k + 1 < len(sizes) else 0
        if k == 0:
            s = _loop_while_more_than(decoder, s, end, below)
        else:
            s = jax.lax.cond((s.pos < end) & _running(decoder, s) & (jnp.sum(~s.done) > below),
                             functools.partial(_compacted, decoder, size, end, below),
                             lambda t: t, s)
    return s


def _outputs(s: SamplingState) -> SamplingState:
    """The state without the loop-only fields (what leaves the nested conds)."""
    return s.replace(cache=None, grammar=None, logits=None, uniforms=None, prompt=None)


def _tail_chunk(decoder: Decoder, slots: int, start: jax.Array,
                carry: tuple[SamplingState, jax.Array, jax.Array]):
    """Up to `slots` rows still to do, run from `start` until they are done (or the stop
    position), and written back; the other rows are untouched."""
    s, todo, reached = carry
    idx = jnp.argsort(~todo, stable=True)[:slots]   # rows to do first
    run = todo[idx]                                  # [slots] bool: a row to do, not a filler
    part = _take_rows(s, idx).replace(done=s.done[idx] | ~run, pos=start)
    part = part.replace(cache=M.grow_cache(part.cache, decoder.config.max_len))
    part = _loop_while_more_than(decoder, part, decoder.stop_pos, 0)
    # Only what the output needs goes back: each row runs in one chunk, so the batch's cache
    # stays at the blocks' window (growing all of it to max_len cost a copy as large as the
    # whole batch's cache at max_len: 537 MB for 64 rows at the original size).
    return (_put_rows(s, idx, part, keep=run, fields=("tokens", "logprobs", "done")),
            todo.at[idx].set(False), jnp.maximum(reached, part.pos))


def run_tail(decoder: Decoder, s: SamplingState, slots: int) -> SamplingState:
    """The positions after the blocks, in one window of max_len: the unfinished rows, `slots` at
    a time, each run to its end. One compiled loop body instead of one per block and slot size
    (the original size's 512 positions had 30); rows this long are few, so the chunks are few."""
    chunk = functools.partial(_tail_chunk, decoder, slots, s.pos)
    s, _, reached = jax.lax.while_loop(lambda c: jnp.any(c[1]), chunk, (s, ~s.done, s.pos))
    return s.replace(pos=reached)


def run_blocks(decoder: Decoder, s: SamplingState, windows: list[tuple[int, int]],
               sizes: list[int], j: int = 0, tail_slots: int | None = None) -> SamplingState:
    """Blocks j, j+1, ...: each grows the cache to its window, then runs its positions; a block
    is entered only while some row is unfinished. With tail_slots, the tail (`run_tail`)
    follows the last block."""
    end, window = windows[j]
    s = run_block(decoder, s.replace(cache=M.grow_cache(s.cache, window)), end, sizes)
    if j + 1 == len(windows):
        if tail_slots is None:
            return _outputs(s)
        return jax.lax.cond(_running(decoder, s),
                            lambda t: _outputs(run_tail(decoder, t, tail_slots)), _outputs, s)
    return jax.lax.cond(_running(decoder, s),
                        functools.partial(run_blocks, decoder, windows=windows, sizes=sizes,
                                          j=j + 1, tail_slots=tail_slots),
                        _outputs, s)


def split_tail(windows: list[tuple[int, int]], batch: int,
               options: SamplerOptions) -> tuple[list[tuple[int, int]], int | None]:
    """(the blocks run as blocks, slots of the tail or None): blocks ending past
    options.tail_from (the prompt's own block always stays a block) become the tail."""
    head = [w for w in windows if w[0] <= options.tail_from] or windows[:1]
    if options.tail_slots is None or len(head) == len(windows):
        return windows, None
    return head, min(options.tail_slots, batch)


@functools.partial(jax.jit, static_argnames=("config", "options"))
def sample_tokens(params: Any, tables: automaton.GrammarTables, prompt_tokens: jax.Array,
                  prompt_len: jax.Array, rng: jax.Array, policy: PolicySpec = PolicySpec(), *,
                  config: M.ModelConfig, options: SamplerOptions = SamplerOptions(),
                  row_offset: jax.Array | int = 0) -> Rollout:
    """The jitted sampler. Prompts must already be valid (`tasks.pack_prompts` checks them).

    prompt_tokens [B, P] int32 (right-padded), prompt_len [B] int32 in 1..P,
    rng a PRNG key. row_offset (traced): the batch index of row 0, which names
    the rows' RNG streams; a device that samples rows k..k+b-1 of a larger
    batch passes k and draws exactly what one device sampling the whole batch
    would.
    """
    b, width = prompt_tokens.shape
    L = config.max_len
    prompt_len = prompt_len.astype(jnp.int32)
    windows = _windows(L, width, block_ends(L, options.block_size))
    params = M.decode_params(params, config)  # weights in matmul_dtype once, not every step
    decoder = Decoder(params=params, head=M.output_head(params, config), tables=tables,
                      policy=policy, config=config, options=options)
    state = prefill(decoder, prompt_tokens, prompt_len, rng, row_offset, windows[0][1])
    windows, tail = split_tail(windows, b, options)
    state = run_blocks(decoder, state, windows, slot_sizes(b, options.min_slots), tail_slots=tail)
    lengths = jnp.sum(state.tokens != V.PAD, axis=1).astype(jnp.int32)
    # The policy chose every token after the prompt up to EOS (after it: PAD). Kept out of
    # the loop: one array less to write each step and to gather at each compaction.
    completion_mask = ((jnp.arange(L)[None, :] >= prompt_len[:, None])
                       & (state.tokens != V.PAD))
    return Rollout(tokens=state.tokens, lengths=lengths, logprobs=state.logprobs,
                   completion_mask=completion_mask, prompt_len=prompt_len,
                   finished=state.done, num_steps=state.pos)


@functools.partial(jax.jit, static_argnames=("mesh", "axis", "config", "options"))
def sample_tokens_sharded(params: Any, tables: automaton.GrammarTables, prompt_tokens: jax.Array,
                          prompt_len: jax.Array, rng: jax.Array,
                          policy: PolicySpec = PolicySpec(), *, mesh: jax.sharding.Mesh,
                          axis: str = "data", config: M.ModelConfig,
                          options: SamplerOptions = SamplerOptions()) -> Rollout:
    """`sample_tokens` with the batch split over the `axis` devices of `mesh` (shard_map).

    Each device runs the whole sampler on its own rows: its own loop, which
    stops when ITS rows are done, and its own compaction; nothing is exchanged
    until the end (num_steps is the max over devices). Rows keep their global
    RNG streams (row_offset), so the theories are those of one device sampling
    the whole batch. The batch must divide evenly over the devices; params,
    tables and rng are replicated.
    """
    P = jax.sharding.PartitionSpec
    n = mesh.shape[axis]
    if prompt_tokens.shape[0] % n:
        raise ValueError(f"a batch of {prompt_tokens.shape[0]} rows does not split over {n} "
                         f"devices")

    def local(params, tables, prompt_tokens, prompt_len, rng, policy):
        offset = jax.lax.axis_index(axis) * prompt_tokens.shape[0]
        rollout = sample_tokens(params, tables, prompt_tokens, prompt_len, rng, policy,
                                config=config, options=options, row_offset=offset)
        return rollout.replace(num_steps=jax.lax.pmax(rollout.num_steps, axis))

    rows, same = P(axis), P()
    out_specs = Rollout(tokens=rows, lengths=rows, logprobs=rows, completion_mask=rows,
                        prompt_len=rows, finished=rows, num_steps=same)
    policy = policy.replace(temperature=jnp.asarray(policy.temperature, jnp.float32))
    return jax.shard_map(local, mesh=mesh, in_specs=(same, same, rows, rows, same, same),
                         out_specs=out_specs, check_vma=False)(
        params, tables, prompt_tokens, prompt_len, rng, policy)


# ---------------------------------------------------------------- from the host

def sample(params: Any, config: M.ModelConfig, tables: automaton.GrammarTables, rng: jax.Array,
           prompts: Sequence[Sequence[str | int]] | None = None, *, batch_size: int | None = None,
           policy: PolicySpec = PolicySpec(),
           options: SamplerOptions = SamplerOptions()) -> Rollout:
    """Sample a batch of theories (see the module docstring).

    Prompts are checked on the host first (`tasks.pack_prompts`): a prompt the
    grammar rejects raises ValueError naming the first bad token, its position
    and the allowed tokens.
    """
    if policy.top_k is not None and not 0 < policy.top_k <= config.vocab_size:
        raise ValueError(f"top_k must be in 1..{config.vocab_size}, got {policy.top_k}")
    tokens, prompt_len = tasks.pack_prompts(prompts, config.max_len, batch_size)
    policy = policy.replace(temperature=jnp.asarray(policy.temperature, jnp.float32))
    return sample_tokens(params, tables, jnp.asarray(tokens), jnp.asarray(prompt_len), rng, policy,
                         config=config, options=options)
