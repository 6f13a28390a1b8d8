"""The grammar as Hugging Face logits processors, over this project's automaton tables.

`GrammarLogitsProcessor` sets the logits of the tokens the grammar forbids to `policy.NEG_INF`
(this project's masked policy) at every step of `generate`, with the length budget
(`max_len - position`), so HF sampling draws from the distribution this project's sampler
draws from. It keeps the rows' automaton states between calls (one `step` per generated
token, not a replay of the whole prefix) and can keep the masks it applied ([B, T, V]), which
the hand-written GRPO update reuses.

`ForcedRowsProcessor` (after the grammar) leaves only a given row's next token drawable, so
that HF generate produces exactly this project's sampled theories: the two samplers are timed
on the same theories (same lengths, same finished rows), each doing its own full work per step.

    grammar = GrammarLogitsProcessor(NumpyGrammar.load(), max_len, keep_masks=True)
    out = model.generate(prompts, logits_processor=LogitsProcessorList([grammar]), ...)
    masks = grammar.masks()                        # [B, T, V] bool, T = out.shape[1]
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import LogitsProcessor

from theorygrpo_jax.policy import NEG_INF

from .grammar_tables import NumpyGrammar, RowStates


class GrammarLogitsProcessor(LogitsProcessor):
    """Masks scores [B, V] to the tokens the grammar allows after input_ids [B, T].

    Stateful: a call whose input is one token longer than the previous call's, on the same
    rows, advances the kept states by that token; any other call (a new `generate`) reads the
    rows from the start. `reset()` forgets the kept states.
    """

    def __init__(self, grammar: NumpyGrammar, max_len: int, keep_masks: bool = False):
        self.grammar, self.max_len, self.keep_masks = grammar, max_len, keep_masks
        self.reset()

    def reset(self) -> None:
        self._state: RowStates | None = None
        self._length = -1
        self._masks: list[np.ndarray] = []   # per position: [B, V] bool

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        ids = input_ids.cpu().numpy()
        rows, length = ids.shape
        if self._state is None or length != self._length + 1 or len(self._state.node) != rows:
            self.reset()
            state = self.grammar.init(rows)
            for p in range(length):   # the prompt (and the masks of its positions)
                if self.keep_masks:
                    self._masks.append(self.grammar.allowed(state, self.max_len - p))
                state = self.grammar.step(state, ids[:, p])
        else:
            state = self.grammar.step(self._state, ids[:, -1])
        self._state, self._length = state, length
        allowed = self.grammar.allowed(state, self.max_len - length)
        if self.keep_masks:
            self._masks.append(allowed)
        return scores.masked_fill(~torch.from_numpy(allowed).to(scores.device), NEG_INF)

    def masks(self, length: int | None = None) -> np.ndarray:
        """[B, T, V] bool: the allowed set at each position 0..T-1 of the last generate's rows
        (T = `length`, default: every position masked so far, which is every position of the
        rows generate returned: the processor chose each of their tokens)."""
        if not self.keep_masks:
            raise ValueError("this processor was made with keep_masks=False")
        masks = np.stack(self._masks, axis=1)
        return masks if length is None else masks[:, :length]


class ForcedRowsProcessor(LogitsProcessor):
    """Leaves only rows[:, T] drawable after input_ids [B, T] (PAD past a row's end), so that
    sampling reproduces the given rows [B, L] exactly (put it after the grammar)."""

    def __init__(self, rows: np.ndarray, pad: int):
        self.rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        self.pad = pad

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        t = input_ids.shape[1]
        target = (self.rows[:, t] if t < self.rows.shape[1]
                  else torch.full((scores.shape[0],), self.pad, dtype=torch.long))
        keep = torch.zeros_like(scores, dtype=torch.bool)
        keep[torch.arange(scores.shape[0]), target.to(scores.device)] = True
        return scores.masked_fill(~keep, float("-inf"))
