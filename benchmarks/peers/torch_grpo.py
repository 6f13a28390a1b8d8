"""A hand-written PyTorch GRPO step with this project's objective: the peer a user would write.

Sampling is HF `generate` (KV cache, the grammar as a LogitsProcessor that also keeps the
masks it applied, the recorded log-probs taken from the processed scores); the reward is this
project's (`reward.score_batch`, the same code); the update is `grpo.grpo_loss`'s objective
term for term: the grammar-masked, tempered (optionally top-k) policy, group-relative
advantages (sample std), the clipped surrogate, the exact KL to the reference policy over the
masked vocabulary (or k3), the entropy bonus, token-mean (or sequence-mean) aggregation with
per-row weights, then a global gradient-norm clip and AdamW. The rows are sorted by length and
cut into `update_chunks` chunks, each to its own longest row (PyTorch needs no shape buckets),
and each chunk's loss is backpropagated as soon as it is computed (gradients accumulate, the
chunk's graph is freed), so the gradient is that of the whole batch's loss.

    peer = TorchGRPO(config, params)                 # config: this project's Config
    times, metrics = peer.step(prompt_tokens, prompt_len)
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import torch
from transformers import LogitsProcessorList

from theorygrpo_jax.config import Config, GRPOConfig
from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.policy import NEG_INF
from theorygrpo_jax.reward import score_batch

from .grammar_processor import GrammarLogitsProcessor
from .grammar_tables import NumpyGrammar
from .torch_model import TheoryGPTForCausalLM, from_flax


@dataclasses.dataclass
class TorchBatch:
    """What one update learns from (`grpo.PolicyBatch` and the grammar masks): B rows, T positions."""
    tokens: torch.Tensor           # [B, T] int64   BOS ... EOS, PAD after
    old_logprobs: torch.Tensor     # [B, T] float32 log-prob of each token when sampled
    completion_mask: torch.Tensor  # [B, T] bool    tokens the policy chose
    advantages: torch.Tensor       # [B] float32
    weights: torch.Tensor          # [B] float32    importance weight (1 for fresh rollouts)
    masks: torch.Tensor            # [B, T, V] bool the grammar's allowed set at each position

    def rows(self, idx: torch.Tensor, width: int) -> "TorchBatch":
        """Rows idx, cut to the first `width` positions."""
        return TorchBatch(tokens=self.tokens[idx, :width],
                          old_logprobs=self.old_logprobs[idx, :width],
                          completion_mask=self.completion_mask[idx, :width],
                          advantages=self.advantages[idx], weights=self.weights[idx],
                          masks=self.masks[idx, :width])


def group_advantages(rewards: torch.Tensor, group_size: int, scale_by_std: bool = True,
                     eps: float = 1e-6) -> torch.Tensor:
    """(r - group mean) / (group sample std + eps) for rewards [B] laid out group by group."""
    grouped = rewards.view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale_by_std:
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)   # torch.std: ddof 1
    return centred.reshape(-1)


def autocast(dtype: str) -> Any:
    """The context the peer's forward passes run in: torch's CPU autocast to bfloat16 (its
    linear layers and matmuls on bfloat16 operands, the rest float32), or nothing (float32)."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")


def policy_log_probs(model: TheoryGPTForCausalLM, tokens: torch.Tensor, masks: torch.Tensor,
                     temperature: float, top_k: int | None = None,
                     matmul_dtype: str = "float32") -> torch.Tensor:
    """[B, T-1, V]: log-probs of the masked, tempered, top-k policy predicting tokens[:, 1:]
    (`policy.log_policy`); matmul_dtype "bfloat16": the model's forward under `autocast`."""
    with autocast(matmul_dtype):
        logits = model(tokens).logits[:, :-1].float()
    logits = logits.masked_fill(~masks[:, 1:], NEG_INF)
    scaled = logits / (temperature if temperature > 0 else 1.0)
    if top_k:
        kth = torch.topk(scaled, top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, NEG_INF)
    return torch.log_softmax(scaled, dim=-1)


def policy_terms(log_probs: torch.Tensor, ref_log_probs: torch.Tensor, targets: torch.Tensor,
                 old_logprobs: torch.Tensor, advantages: torch.Tensor,
                 config: GRPOConfig) -> dict[str, torch.Tensor]:
    """Per-token terms [B, T] of the objective (`grpo.policy_terms`)."""
    token_logp = log_probs.gather(-1, targets[..., None])[..., 0]
    ratio = torch.exp(token_logp - old_logprobs)
    high = config.clip_range if config.clip_range_high is None else config.clip_range_high
    adv = advantages[:, None]
    surrogate = torch.minimum(ratio * adv,
                              torch.clamp(ratio, 1.0 - config.clip_range, 1.0 + high) * adv)
    probs = log_probs.exp()
    entropy = -(probs * log_probs).sum(-1)
    if config.kl_estimator == "exact":
        kl = (probs * (log_probs - ref_log_probs)).sum(-1)
    else:
        log_r = ref_log_probs.gather(-1, targets[..., None])[..., 0] - token_logp
        kl = torch.exp(log_r) - 1.0 - log_r
    clipped = torch.where(adv >= 0, ratio > 1.0 + high, ratio < 1.0 - config.clip_range)
    return {"surrogate": surrogate, "kl": kl, "entropy": entropy, "ratio": ratio,
            "clipped": clipped.float()}


def _sums(per_token: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor,
          mode: str) -> torch.Tensor:
    """Numerator of a masked mean over tokens, or of per-sequence means (`grpo._sums`)."""
    mask = mask.float()
    weighted = per_token * mask * weights[:, None]
    if mode == "token":
        return weighted.sum()
    return (weighted.sum(1) / mask.sum(1).clamp(min=1.0)).sum()


def split_by_length(batch: TorchBatch, chunks: int) -> list[TorchBatch]:
    """Rows sorted by length, cut into `chunks` groups, each to its own longest row."""
    lengths = (batch.tokens != V.PAD).sum(1)
    order = torch.argsort(lengths, stable=True)
    return [batch.rows(rows, int(lengths[rows].max())) for rows in torch.tensor_split(order, chunks)
            if len(rows)]


def grpo_loss(model: TheoryGPTForCausalLM, ref_model: TheoryGPTForCausalLM,
              chunks: list[TorchBatch], kl_coef: float, entropy_coef: float, config: GRPOConfig,
              backward: bool = False, matmul_dtype: str = "float32") -> tuple[float, dict[str, float]]:
    """The loss of `grpo.grpo_loss` over the chunks and its parts (python floats).

    backward: accumulate the loss's gradient into model's .grad, one chunk at a time.
    matmul_dtype "bfloat16": the forward passes under torch's autocast (`autocast`).
    """
    mode = config.loss_aggregation
    tokens_total = max(float(sum(c.completion_mask[:, 1:].sum() for c in chunks)), 1.0)
    rows_total = sum(c.tokens.shape[0] for c in chunks)
    loss_count = tokens_total if mode == "token" else rows_total
    totals = dict.fromkeys(("total_loss", "policy_loss", "kl", "entropy", "clip_fraction",
                            "ratio_mean"), 0.0)
    for c in chunks:
        with torch.no_grad():
            ref = policy_log_probs(ref_model, c.tokens, c.masks, config.temperature,
                                   config.top_k or None, matmul_dtype)
        with torch.set_grad_enabled(backward):
            logp = policy_log_probs(model, c.tokens, c.masks, config.temperature,
                                    config.top_k or None, matmul_dtype)
            terms = policy_terms(logp, ref, c.tokens[:, 1:], c.old_logprobs[:, 1:], c.advantages,
                                 config)
            per_token = (-terms["surrogate"] + kl_coef * terms["kl"]
                         - entropy_coef * terms["entropy"])
            mask = c.completion_mask[:, 1:]
            loss = _sums(per_token, mask, c.weights, mode) / loss_count
            if backward:
                loss.backward()
        totals["total_loss"] += loss.item()
        with torch.no_grad():
            ones = torch.ones_like(c.weights)
            totals["policy_loss"] += (float(_sums(-terms["surrogate"], mask, c.weights, mode))
                                      / loss_count)
            for key, term in (("kl", "kl"), ("entropy", "entropy"), ("clip_fraction", "clipped"),
                              ("ratio_mean", "ratio")):
                totals[key] += float(_sums(terms[term], mask, ones, "token")) / tokens_total
    return totals["total_loss"], totals


class TorchGRPO:
    """The policy, its frozen reference, AdamW and the grammar processor of one GRPO run."""

    def __init__(self, config: Config, params: Any, ref_params: Any = None,
                 matmul_dtype: str = "float32"):
        self.config = config
        self.matmul_dtype = matmul_dtype   # "bfloat16": sampling and forwards under `autocast`
        self.policy = from_flax(params, config.model)
        self.ref = from_flax(params if ref_params is None else ref_params, config.model)
        for p in self.ref.parameters():
            p.requires_grad_(False)
        gc = config.grpo
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=gc.learning_rate,
                                           betas=(gc.adam_b1, gc.adam_b2), eps=1e-8,
                                           weight_decay=gc.weight_decay)
        self.grammar = GrammarLogitsProcessor(NumpyGrammar.load(), config.model.max_len,
                                              keep_masks=True)
        self.kl_coef = gc.kl_coef
        self.steps = 0

    def sample(self, prompt_tokens: np.ndarray, extra_processors: list | None = None) -> TorchBatch:
        """One batch from HF generate: prompt_tokens [B, P] (rows sharing their prompt length).
        Advantages and weights are left at 0 and 1."""
        gc, max_len = self.config.grpo, self.config.model.max_len
        prompts = torch.as_tensor(np.asarray(prompt_tokens), dtype=torch.long)
        self.grammar.reset()
        processors = LogitsProcessorList([self.grammar, *(extra_processors or [])])
        with torch.no_grad(), autocast(self.matmul_dtype):
            out = self.policy.generate(
                prompts, attention_mask=torch.ones_like(prompts), logits_processor=processors,
                do_sample=gc.temperature > 0, temperature=gc.temperature or None,
                top_k=gc.top_k or 0, top_p=1.0, max_length=max_len, pad_token_id=V.PAD,
                bos_token_id=V.BOS, eos_token_id=V.EOS, output_scores=True,
                return_dict_in_generate=True, use_cache=True)
        tokens = out.sequences                                  # [B, T], PAD after EOS
        b, t = tokens.shape
        p = prompts.shape[1]
        old = torch.zeros(b, t)
        if t > p:
            scores = torch.stack(out.scores, dim=1).float()     # [B, T - P, V] processed
            old[:, p:] = torch.log_softmax(scores, -1).gather(-1, tokens[:, p:, None])[..., 0]
        completion = (torch.arange(t)[None] >= p) & (tokens != V.PAD)
        return TorchBatch(tokens=tokens, old_logprobs=old * completion,
                          completion_mask=completion, advantages=torch.zeros(b),
                          weights=torch.ones(b), masks=torch.from_numpy(self.grammar.masks(t)))

    def rewards(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B] this project's total reward of the rows (padded to max_len, scored by
        `reward.score_batch`)."""
        padded = np.full((tokens.shape[0], self.config.model.max_len), V.PAD, np.int32)
        padded[:, :tokens.shape[1]] = tokens.numpy()
        scores = score_batch(padded, self.config.reward)
        return torch.from_numpy(np.array(scores["total_reward"], np.float32))

    def update(self, batch: TorchBatch) -> dict[str, float]:
        """One optimiser step on the batch (mu = 1): chunked loss and backward, clip, AdamW."""
        gc = self.config.grpo
        self.optimizer.zero_grad(set_to_none=True)
        entropy_coef = entropy_coefficient(gc, self.steps)
        loss, metrics = grpo_loss(self.policy, self.ref, split_by_length(batch, gc.update_chunks),
                                  self.kl_coef, entropy_coef, gc, backward=True,
                                  matmul_dtype=self.matmul_dtype)
        if gc.max_grad_norm > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(),
                                                                       gc.max_grad_norm))
        self.optimizer.step()
        self.steps += 1
        return metrics

    def step(self, prompt_tokens: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
        """One GRPO step; returns (seconds of sample / reward / update / step, metrics)."""
        gc = self.config.grpo
        t0 = time.perf_counter()
        batch = self.sample(prompt_tokens)
        t1 = time.perf_counter()
        rewards = self.rewards(batch.tokens)
        batch.advantages = group_advantages(rewards, gc.group_size, gc.scale_by_std,
                                            gc.advantage_eps)
        t2 = time.perf_counter()
        metrics = self.update(batch)
        t3 = time.perf_counter()
        metrics.update(mean_reward=float(rewards.mean()),
                       mean_length=float((batch.tokens != V.PAD).sum(1).float().mean()))
        return {"sample_s": t1 - t0, "reward_s": t2 - t1, "update_s": t3 - t2,
                "step_s": t3 - t0}, metrics


def entropy_coefficient(config: GRPOConfig, step: int) -> float:
    """The entropy coefficient at `step` (`grpo.entropy_coefficient`, as a python float)."""
    start, end = config.entropy_coef, config.entropy_coef_final
    progress = min(max(step / config.entropy_decay_steps, 0.0), 1.0)
    if config.entropy_schedule == "constant":
        return start
    if config.entropy_schedule == "linear":
        return start + (end - start) * progress
    if config.entropy_schedule == "cosine":
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return start * (end / start) ** progress
