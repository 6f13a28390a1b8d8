"""Grammar-constrained batch sampling of theories, and log-prob recomputation.

    rollout = sample(params, config, tables, rng, prompts=None, batch_size=64,
                     temperature=1.0, top_k=None)
    logprobs, entropies = sequence_logprobs(params, config, tables, rollout.tokens, 1.0)

`sample` checks the prompts on the host (pure Python, against the reference
recogniser), then calls `sample_tokens`, ONE jitted function that runs the
whole generation on device: a parallel prefill of the prompts, then a
`lax.while_loop` over positions with a preallocated KV cache, the grammar
automaton (vmapped over rows) masking the logits at every step, per-row RNG,
and rows that froze after EOS. No Python runs per token.

The policy is the masked, renormalised distribution: disallowed logits are set
to NEG_INF (a large finite negative, so no inf - inf NaNs) BEFORE temperature
and top-k, and the recorded log-probs are those of that distribution.
`sequence_logprobs` recomputes them in one parallel forward pass with the same
masks (`automaton.sequence_masks`).

Cache windows. Positions are processed in blocks (`block_ends`: 32 positions
up to 128, longer ones after); block j runs over a cache that is only as long
as the block's end (the cache grows by one zero chunk per block, nothing is
copied), so a decode step at position p reads at most the block's end, not
max_len. Once every row is done the remaining blocks are skipped (nested
lax.cond).

Compaction. Rows finish at very different lengths (a random policy: median ~32
tokens, the longest of 64 rows ~150), and a finished row in the batch costs a
full decode step. So within a block the loop runs on B slots only while more
than B/2 rows are unfinished; then the unfinished rows are gathered into B/2
slots (cache, grammar state, logits, ...) and the loop goes on there, then B/4,
B/8, B/16 (not below `min_slots`, default 4: the tail of the last few rows of a
batch is long, and a step on 4 slots costs 0.55x one on 8 for cpu_default and
0.75x for original); results are scattered back. Each row keeps its
own RNG stream (fold_in of its row index), so compaction never changes the
samples. Each (block, slot size) pair is one compiled loop body.

Sampling draws one uniform per row and inverts the CDF of the masked policy
(Gumbel-max would need V random numbers and 2V logs per row per step); the CDF
is a matmul with a triangular matrix and "first index" is a min-reduce, both
cheaper on XLA:CPU than cumsum and argmax.

Temperature. `temperature > 0` samples from softmax(masked_logits / T); top-k
(static) then keeps the k most likely allowed tokens. `temperature <= 0` is
greedy (argmax of the masked logits); its recorded log-probs are those of the
untempered (T = 1) masked policy, and `sequence_logprobs` uses the same rule.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from . import model as M
from .grammar import automaton, recognizer
from .grammar import vocab as V

NEG_INF = -1e9  # logit of a token the grammar forbids (finite: no NaN in softmax/entropy)


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
    blocks of 32 positions up to 128, then each block as long as the largest
    power of two <= half its start (32, 64, 96, 128, 192, 256, 384, 512, ...):
    fine windows where most theories end, few compiled loop bodies beyond.
    """
    ends, end = [], 0
    while end < max_len:
        step = block_size or (32 if end < 128 else 1 << ((end // 2).bit_length() - 1))
        end = min(max_len, end + step)
        ends.append(end)
    return tuple(ends)


def _windows(max_len: int, prompt_width: int, ends: tuple[int, ...]) -> list[tuple[int, int]]:
    """(block end, cache length) per block: the cache covers the block and the whole prompt."""
    prefill = next(e for e in ends if e >= min(prompt_width, max_len))
    return [(end, max(end, prefill)) for end in ends]


MAX_COMPACTIONS = 4  # each slot size is one more compiled loop body per cache block


def slot_sizes(batch: int, min_slots: int | None) -> list[int]:
    """Batch sizes the sampler may compact to: batch, batch/2, ... (>= min_slots, at most
    MAX_COMPACTIONS halvings)."""
    sizes = [batch]
    while (min_slots is not None and len(sizes) <= MAX_COMPACTIONS and sizes[-1] % 2 == 0
           and sizes[-1] // 2 >= min_slots):
        sizes.append(sizes[-1] // 2)
    return sizes


def _masked_logits(tables, grammar, logits, budget):
    """Logits with the tokens the grammar forbids (with `budget` tokens left) set to NEG_INF."""
    mask = jax.vmap(automaton.allowed_mask, in_axes=(None, 0, None))(tables, grammar, budget)
    return jnp.where(mask, logits, NEG_INF)


def policy_logits(logits, temperature, top_k: int | None):
    """Masked logits -> logits of the sampling policy (temperature, then optional top-k)."""
    t = jnp.where(temperature > 0, temperature, 1.0).astype(jnp.float32)
    scaled = logits / t
    if top_k is not None:
        kth = jax.lax.top_k(scaled, top_k)[0][..., -1:]
        scaled = jnp.where(scaled >= kth, scaled, NEG_INF)
    return scaled


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
# (128 for this vocabulary, a better shape for XLA:CPU's GEMM) is 15% cheaper.
FIRST_DRAWN = 2
assert V.PAD < FIRST_DRAWN and V.BOS < FIRST_DRAWN <= V.EOS


def draw_tokens(u: jax.Array, logp: jax.Array, temperature: jax.Array,
                first: int = 0) -> jax.Array:
    """The policy's choice per row: [b] int32 from log-probs logp [b, V] and uniforms u [b].

    temperature > 0: an inverse-CDF draw; otherwise greedy (first argmax). Only
    columns first.. are candidates (`FIRST_DRAWN` under grammar masks). A
    lax.cond on the scalar temperature, so a step computes one of the two.
    """
    candidates = logp[:, first:]
    return first + jax.lax.cond(temperature > 0, _inverse_cdf_sample,
                                lambda _, lp: _greedy(lp), u, candidates)


_PER_SLOT = ("tokens", "logprobs", "cache", "grammar", "logits", "done", "uniforms", "prompt",
             "prompt_len")  # SamplingState fields with a leading slot axis (not pos)


def _take_rows(state: SamplingState, idx: jax.Array) -> SamplingState:
    """The slots `idx` of a state (a smaller batch)."""
    return state.replace(**{f: jax.tree_util.tree_map(lambda a: a[idx], getattr(state, f))
                            for f in _PER_SLOT})


def _put_rows(state: SamplingState, idx: jax.Array, part: SamplingState) -> SamplingState:
    """`state` with slots `idx` replaced by the (smaller) state `part`."""
    return part.replace(**{f: jax.tree_util.tree_map(lambda a, p: a.at[idx].set(p),
                                                     getattr(state, f), getattr(part, f))
                           for f in _PER_SLOT})


@functools.partial(jax.jit, static_argnames=("config", "top_k", "use_masks", "block_size",
                                             "min_slots"))
def sample_tokens(params: Any, tables: automaton.GrammarTables, prompt_tokens: jax.Array,
                  prompt_len: jax.Array, rng: jax.Array, temperature: jax.Array | float = 1.0,
                  stop_pos: jax.Array | int | None = None, *, config: M.ModelConfig,
                  top_k: int | None = None, use_masks: bool = True,
                  block_size: int | None = None, min_slots: int | None = 4,
                  row_offset: jax.Array | int = 0) -> Rollout:
    """The jitted sampler. Prompts must already be valid (`sample` checks them).

    prompt_tokens [B, P] int32 (right-padded), prompt_len [B] int32 in 1..P,
    rng a PRNG key, temperature a scalar (traced: no recompile per value).
    stop_pos (benchmarks only) stops the loop before that position even if
    rows are unfinished. use_masks=False switches the grammar off (for
    measuring its cost; the output is then not guaranteed to be a theory, and
    a drawn PAD is not counted in completion_mask).
    min_slots: as rows finish, the unfinished ones are compacted into batches of
    B/2, B/4, B/8, B/16 (>= min_slots) slots, so finished rows stop costing compute;
    None: never (one batch of B throughout). Compaction does not change the
    samples: each row keeps its own RNG stream.
    row_offset (traced): the batch index of row 0, which names the rows' RNG
    streams; a device that samples rows k..k+b-1 of a larger batch passes k
    and draws exactly what one device sampling the whole batch would.
    """
    b, width = prompt_tokens.shape
    L = config.max_len
    stop_pos = jnp.asarray(L if stop_pos is None else stop_pos, jnp.int32)
    prompt_len = prompt_len.astype(jnp.int32)

    in_prompt = jnp.arange(width)[None, :] < prompt_len[:, None]
    prompt_tokens = jnp.where(in_prompt, prompt_tokens.astype(jnp.int32), V.PAD)
    tokens = jnp.full((b, L), V.PAD, jnp.int32).at[:, :width].set(prompt_tokens)
    start = jnp.min(prompt_len)  # first position the loop visits (longer prompts are forced)

    windows = _windows(L, width, block_ends(L, block_size))
    params = M.decode_params(params, config)  # weights in matmul_dtype once, not every step
    all_logits, cache = M.prefill(params, config, prompt_tokens,
                                  M.init_cache(config, b, windows[0][1]))
    logits = jax.lax.dynamic_index_in_dim(all_logits, start - 1, axis=1, keepdims=False)

    grammar = jax.vmap(lambda _: automaton.init_state(tables))(prompt_len)
    if use_masks:
        read = jax.vmap(automaton.step, in_axes=(None, 0, 0))
        grammar = jax.lax.fori_loop(0, start, lambda i, g: read(tables, g, tokens[:, i]), grammar)
    done = jnp.any((tokens == V.EOS) & (jnp.arange(L)[None, :] < start), axis=1)

    rows = jnp.asarray(row_offset, jnp.int32) + jnp.arange(b, dtype=jnp.int32)
    state = SamplingState(tokens=tokens, logprobs=jnp.zeros((b, L), jnp.float32), cache=cache,
                          grammar=grammar, logits=logits, done=done,
                          uniforms=row_uniforms(rng, rows, L), prompt=prompt_tokens,
                          prompt_len=prompt_len, pos=start)

    head = M.output_head(params, config)  # once, outside the loop (see M.output_head)

    def body(s: SamplingState) -> SamplingState:
        p = s.pos
        logits = _masked_logits(tables, s.grammar, s.logits, L - p) if use_masks else s.logits
        policy = policy_logits(logits, temperature, top_k)
        logp_all = jax.nn.log_softmax(policy)
        u = jax.lax.dynamic_index_in_dim(s.uniforms, p, axis=1, keepdims=False)
        chosen = draw_tokens(u, logp_all, temperature, FIRST_DRAWN if use_masks else 0)
        forced = p < s.prompt_len
        generated = ~forced & ~s.done
        # The forced token comes from the prompt, not from `tokens`: reading the array the
        # step writes made XLA copy it twice per step.
        prompted = jax.lax.dynamic_index_in_dim(s.prompt, jnp.minimum(p, width - 1), axis=1,
                                                keepdims=False)
        token = jnp.where(forced, prompted, chosen)
        token = jnp.where(s.done, V.PAD, token)
        logp = jnp.take_along_axis(logp_all, token[:, None], axis=1)[:, 0]
        column = lambda a, x: jax.lax.dynamic_update_slice(a, x[:, None], (0, p))  # noqa: E731
        grammar = s.grammar
        if use_masks:
            grammar = jax.vmap(automaton.step, in_axes=(None, 0, 0))(tables, grammar, token)
        next_logits, cache = M.decode_step(params, config, s.cache, token, p, write_chunk=-1,
                                           head=head)
        return s.replace(
            tokens=column(s.tokens, token),
            logprobs=column(s.logprobs, jnp.where(generated, logp, 0.0)),
            cache=cache, grammar=grammar, logits=next_logits,
            done=s.done | (token == V.EOS), pos=p + 1)

    def running(s: SamplingState) -> jax.Array:
        return (s.pos < stop_pos) & ~jnp.all(s.done)

    sizes = slot_sizes(b, min_slots)

    def n_active(s: SamplingState) -> jax.Array:
        return jnp.sum(~s.done)

    def run_block(s: SamplingState, end: int) -> SamplingState:
        """Positions up to `end`, or until every row is done, compacting the unfinished rows
        into ever smaller batches: slot size z runs while more than the next size are active."""
        for k, size in enumerate(sizes):
            below = sizes[k + 1] if k + 1 < len(sizes) else 0

            def loop(t, below=below):
                go = lambda u: (u.pos < end) & running(u) & (n_active(u) > below)  # noqa: E731
                return jax.lax.while_loop(go, body, t)

            def compacted(t, size=size, loop=loop):
                idx = jnp.argsort(t.done, stable=True)[:size]  # unfinished rows first
                return _put_rows(t, idx, loop(_take_rows(t, idx)))

            if k == 0:
                s = loop(s)
            else:
                s = jax.lax.cond((s.pos < end) & running(s) & (n_active(s) > below),
                                 compacted, lambda t: t, s)
        return s

    def outputs(s: SamplingState) -> SamplingState:
        return s.replace(cache=None, grammar=None, logits=None, uniforms=None, prompt=None)

    def from_block(j: int, s: SamplingState) -> SamplingState:
        """Run blocks j, j+1, ...; a block is entered only while some row is unfinished."""
        end, window = windows[j]
        s = run_block(s.replace(cache=M.grow_cache(s.cache, window)), end)
        if j + 1 == len(windows):
            return outputs(s)
        return jax.lax.cond(running(s), functools.partial(from_block, j + 1), outputs, s)

    state = from_block(0, state)
    lengths = jnp.sum(state.tokens != V.PAD, axis=1).astype(jnp.int32)
    # The policy chose every token after the prompt up to EOS (after it: PAD). Kept out of
    # the loop: one array less to write each step and to gather at each compaction.
    completion_mask = ((jnp.arange(L)[None, :] >= prompt_len[:, None])
                       & (state.tokens != V.PAD))
    return Rollout(tokens=state.tokens, lengths=lengths, logprobs=state.logprobs,
                   completion_mask=completion_mask, prompt_len=prompt_len,
                   finished=state.done, num_steps=state.pos)


@functools.partial(jax.jit, static_argnames=("mesh", "axis", "config", "top_k", "use_masks",
                                             "block_size", "min_slots"))
def sample_tokens_sharded(params: Any, tables: automaton.GrammarTables, prompt_tokens: jax.Array,
                          prompt_len: jax.Array, rng: jax.Array,
                          temperature: jax.Array | float = 1.0,
                          stop_pos: jax.Array | int | None = None, *,
                          mesh: jax.sharding.Mesh, axis: str = "data", config: M.ModelConfig,
                          top_k: int | None = None, use_masks: bool = True,
                          block_size: int | None = None, min_slots: int | None = 4) -> Rollout:
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
    stop_pos = jnp.asarray(config.max_len if stop_pos is None else stop_pos, jnp.int32)

    def local(params, tables, prompt_tokens, prompt_len, rng, temperature, stop_pos):
        offset = jax.lax.axis_index(axis) * prompt_tokens.shape[0]
        rollout = sample_tokens(params, tables, prompt_tokens, prompt_len, rng, temperature,
                                stop_pos, config=config, top_k=top_k, use_masks=use_masks,
                                block_size=block_size, min_slots=min_slots, row_offset=offset)
        return rollout.replace(num_steps=jax.lax.pmax(rollout.num_steps, axis))

    rows, same = P(axis), P()
    out_specs = Rollout(tokens=rows, lengths=rows, logprobs=rows, completion_mask=rows,
                        prompt_len=rows, finished=rows, num_steps=same)
    return jax.shard_map(local, mesh=mesh, in_specs=(same, same, rows, rows, same, same, same),
                         out_specs=out_specs, check_vma=False)(
        params, tables, prompt_tokens, prompt_len, rng, jnp.asarray(temperature, jnp.float32),
        stop_pos)


# ---------------------------------------------------------------- prompts (host side)

def check_prompt(tokens: Sequence[str], max_len: int, row: int | None = None) -> None:
    """Raise ValueError naming the first token of `tokens` the grammar does not allow there."""
    where = "" if row is None else f"prompt {row}: "
    if len(tokens) == 0:
        raise ValueError(f"{where}empty prompt; a prompt starts with BOS")
    if len(tokens) > max_len:
        raise ValueError(f"{where}prompt of {len(tokens)} tokens is longer than max_len {max_len}")
    for pos, token in enumerate(tokens):
        allowed = recognizer.allowed_next(list(tokens[:pos]), max_len)
        if token not in allowed:
            raise ValueError(
                f"{where}token '{token}' at position {pos} is not allowed by the grammar "
                f"(max_len {max_len}); allowed there: "
                f"{recognizer.describe_allowed(allowed) if allowed else 'nothing'}")


def make_prompts(prompts: Sequence[Sequence[str | int]] | None, max_len: int,
                 batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Check prompts against the grammar and pack them: (tokens [B, P] int32, prompt_len [B]).

    `prompts`: one token list (strings or ids) per row, starting with BOS;
    None means every row starts from BOS alone (then batch_size is required).
    A single prompt with batch_size set is repeated batch_size times.
    """
    if prompts is None:
        if batch_size is None:
            raise ValueError("give prompts or batch_size")
        prompts = [["BOS"]]
    rows = [[V.TOKENS[int(t)] if not isinstance(t, str) else t for t in p] for p in prompts]
    if batch_size is not None and len(rows) != batch_size:
        if len(rows) != 1:
            raise ValueError(f"{len(rows)} prompts for batch_size {batch_size}")
        rows = rows * batch_size
    if not rows:
        raise ValueError("no prompts")
    checked: set[tuple[str, ...]] = set()
    for r, row in enumerate(rows):
        unknown = [t for t in row if t not in V.TOKEN_ID]
        if unknown:
            raise ValueError(f"prompt {r}: unknown token '{unknown[0]}'")
        if tuple(row) not in checked:
            check_prompt(row, max_len, r)
            checked.add(tuple(row))
    width = max(len(r) for r in rows)
    tokens = np.full((len(rows), width), V.PAD, np.int32)
    for r, row in enumerate(rows):
        tokens[r, :len(row)] = V.token_ids(row)
    return tokens, np.array([len(r) for r in rows], np.int32)


def sample(params: Any, config: M.ModelConfig, tables: automaton.GrammarTables, rng: jax.Array,
           prompts: Sequence[Sequence[str | int]] | None = None, *, batch_size: int | None = None,
           temperature: float = 1.0, top_k: int | None = None, use_masks: bool = True,
           block_size: int | None = None, min_slots: int | None = 4) -> Rollout:
    """Sample a batch of theories (see the module docstring).

    Prompts are checked on the host first: a prompt the grammar rejects raises
    ValueError naming the first bad token, its position and the allowed tokens.
    """
    if top_k is not None and not 0 < top_k <= config.vocab_size:
        raise ValueError(f"top_k must be in 1..{config.vocab_size}, got {top_k}")
    tokens, prompt_len = make_prompts(prompts, config.max_len, batch_size)
    return sample_tokens(params, tables, jnp.asarray(tokens), jnp.asarray(prompt_len), rng,
                         jnp.asarray(temperature, jnp.float32), config=config, top_k=top_k,
                         use_masks=use_masks, block_size=block_size, min_slots=min_slots)


# ---------------------------------------------------------------- log-prob recomputation

def sequence_logprobs(params: Any, config: M.ModelConfig, tables: automaton.GrammarTables,
                      tokens: jax.Array, temperature: jax.Array | float = 1.0, *,
                      top_k: int | None = None,
                      use_masks: bool = True) -> tuple[jax.Array, jax.Array]:
    """Masked log-probs and entropies of tokens [B, T] (T <= max_len) in one forward pass.

    Returns (logprobs [B, T], entropies [B, T]) float32: at position p the
    log-prob of tokens[:, p] and the entropy of the masked, renormalised policy
    (same temperature / top-k rule as the sampler) given tokens[:, :p];
    position 0 (BOS) gets 0. Prompt positions get their model log-probs, PAD
    after EOS gets 0: multiply by Rollout.completion_mask for the loss.
    Differentiable; jit it with config (and top_k, use_masks) static.
    """
    logits = M.forward(params, config, tokens)[:, :-1]          # predicts tokens[:, 1:]
    if use_masks:
        masks = jax.vmap(automaton.sequence_masks, in_axes=(None, 0, None))(
            tables, tokens, config.max_len)[:, 1:]
        logits = jnp.where(masks, logits, NEG_INF)
    logp_all = jax.nn.log_softmax(policy_logits(logits, jnp.asarray(temperature), top_k))
    logp = jnp.take_along_axis(logp_all, tokens[:, 1:, None], axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)
    zero = jnp.zeros((tokens.shape[0], 1), jnp.float32)
    return jnp.concatenate([zero, logp], axis=1), jnp.concatenate([zero, entropy], axis=1)
