"""TRL's GRPOTrainer on the peer model, its `generate` wrapped to apply the grammar.

The trainer is configured to match this project's step as far as TRL allows: one prompt per
step, `num_generations` = group size, the whole group in one micro-batch (no accumulation),
transformers `generate` (no vLLM), `beta` = kl_coef, `epsilon` = clip_range, one iteration
(mu = 1), `loss_type="dapo"` (the mean over the batch's completion tokens, as this project's
token-mean), the entropy bonus, group-scaled advantages, AdamW with the same learning rate,
betas and weight decay, the same gradient-norm clip, a constant learning rate. The reward is
this project's `reward.score_batch` total on the prompt + completion.

What TRL does differently (`KNOB_DIFFERENCES`): its loss scores the model's unmasked softmax
(the grammar only shapes sampling), its KL is the sampled-token k3 estimator, its advantages
divide by std + 1e-4 (this project: + 1e-6), and its batch is padded to its longest completion
(no length-sorted chunks).

    trainer, timer = make_trainer(config, params, steps=4)
    trainer.train()
    timer.step_seconds          # per optimiser step, generation to optimiser
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import numpy as np
import torch
from transformers import LogitsProcessorList, PreTrainedTokenizerFast, TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from theorygrpo_jax import tasks
from theorygrpo_jax.config import Config
from theorygrpo_jax.grammar import vocab as V
from theorygrpo_jax.reward import score_batch

from .grammar_processor import GrammarLogitsProcessor
from .grammar_tables import NumpyGrammar
from .torch_model import TheoryGPTForCausalLM, from_flax

KNOB_DIFFERENCES = (
    "log-probs of the unmasked softmax (the grammar applies to sampling only)",
    "KL: sampled-token k3 estimator (this project: exact over the masked vocabulary)",
    "advantages / (std + 1e-4) (this project: + 1e-6)",
    "one micro-batch padded to its longest completion (no length-sorted chunks)",
)


def theory_tokenizer() -> PreTrainedTokenizerFast:
    """A tokenizer of the TheoryLang vocabulary: whitespace-separated token names <-> ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    raw = Tokenizer(models.WordLevel(vocab=dict(V.TOKEN_ID), unk_token="PAD"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="BOS", eos_token="EOS",
                                   pad_token="PAD", unk_token="PAD", padding_side="left")


class StepTimer(TrainerCallback):
    """Wall seconds of each optimiser step (TRL generates inside the step)."""

    def __init__(self):
        self.step_seconds: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.step_seconds.append(time.perf_counter() - self._start)


class ProjectReward:
    """TRL reward function: this project's total reward of each prompt + completion; keeps
    the scored rows ([B, max_len] int32) and rewards of its last call."""
    __name__ = "theorygrpo_reward"

    def __init__(self, config: Config, prompt_ids: list[int]):
        self.config, self.prompt_ids = config, list(prompt_ids)
        self.rows: np.ndarray | None = None
        self.rewards: np.ndarray | None = None

    def __call__(self, prompts, completions, completion_ids, **kwargs) -> list[float]:
        max_len = self.config.model.max_len
        rows = np.full((len(completion_ids), max_len), V.PAD, np.int32)
        for i, ids in enumerate(completion_ids):
            row = (self.prompt_ids + list(ids))[:max_len]
            rows[i, :len(row)] = row
        self.rows = rows
        self.rewards = np.asarray(score_batch(rows, self.config.reward)["total_reward"], np.float32)
        return self.rewards.tolist()


def with_grammar(model: TheoryGPTForCausalLM, grammar: GrammarLogitsProcessor) -> None:
    """Wrap model.generate (the instance's) so every call applies the grammar processor."""
    plain = model.generate

    def generate(*args: Any, **kwargs: Any):
        grammar.reset()
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        processors.append(grammar)
        return plain(*args, logits_processor=processors, **kwargs)

    model.generate = generate


def make_trainer(config: Config, params: Any, steps: int, workdir: str | None = None,
                 bf16: bool = False):
    """(GRPOTrainer, StepTimer, ProjectReward) for `steps` optimiser steps on the task's first
    prompt, the policy and the reference loaded with `params`. bf16: TRL's own bfloat16
    mixed precision (`GRPOConfig.bf16`: autocast, float32 weights and optimiser)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    gc, mc = config.grpo, config.model
    workdir = workdir or tempfile.mkdtemp(prefix="trl_peer_")
    prompt = tasks.task_prompts(config.train.task, config.train.prompt_files)[0]
    # TRL builds its reference model from a path: save the peer there, load the policy from it
    from_flax(params, mc).save_pretrained(f"{workdir}/model")
    model = TheoryGPTForCausalLM.from_pretrained(f"{workdir}/model", dtype=torch.float32)
    grammar = GrammarLogitsProcessor(NumpyGrammar.load(), mc.max_len)
    with_grammar(model, grammar)
    reward = ProjectReward(config, list(V.token_ids(prompt)))
    args = GRPOConfig(
        output_dir=f"{workdir}/out", max_steps=steps, per_device_train_batch_size=gc.batch_size,
        gradient_accumulation_steps=1, num_generations=gc.group_size,
        max_completion_length=mc.max_len - len(prompt), temperature=gc.temperature,
        top_k=gc.top_k, top_p=1.0, beta=gc.kl_coef, epsilon=gc.clip_range,
        epsilon_high=gc.clip_range_high, num_iterations=1, loss_type="dapo",
        scale_rewards="group" if gc.scale_by_std else "none", entropy_coef=gc.entropy_coef,
        learning_rate=gc.learning_rate, adam_beta1=gc.adam_b1, adam_beta2=gc.adam_b2,
        adam_epsilon=1e-8, weight_decay=gc.weight_decay, max_grad_norm=gc.max_grad_norm,
        lr_scheduler_type="constant", warmup_steps=0, use_cpu=True, bf16=bf16, fp16=False,
        report_to="none", save_strategy="no", logging_steps=10**9, log_completions=False,
        disable_dropout=True, dataloader_num_workers=0, seed=config.train.seed,
        gradient_checkpointing=False,   # TRL's default recomputes activations; the others keep them
        shuffle_dataset=False, mask_truncated_completions=False, disable_tqdm=True)
    dataset = Dataset.from_dict({"prompt": [" ".join(prompt)] * (steps * gc.prompts_per_step + 8)})
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=dataset,
                          processing_class=theory_tokenizer(), callbacks=[timer])
    for quiet in (PrinterCallback, ProgressCallback):   # they print the logs to stdout
        trainer.remove_callback(quiet)
    return trainer, timer, reward
