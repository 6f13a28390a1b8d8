"""Typed, frozen configuration; YAML files map onto it one to one.

A config file has one mapping per section:

    model:      ModelConfig      the policy's architecture and numerics (theorygrpo_jax.model)
    reward:     RewardConfig     the reward's weights and thresholds (theorygrpo_jax.reward)
    grpo:       GRPOConfig       the algorithm
    train:      TrainConfig      the loop, task, logging, checkpoints
    discovery:  DiscoveryConfig  novelty and discovery bonuses
    curriculum: CurriculumConfig (used with train.use_curriculum)
    replay:     ReplayConfig     (used with train.use_priority_buffer)
    pretrain:   PretrainConfig   (scripts/pretrain.py)

Unknown sections or keys, wrong types and out-of-range values are
`ConfigError`s naming the file and the key; an unknown key names the closest
known one ("did you mean 'kl_coef'?"). TRL's and Tunix's names of our keys
(`grpo.beta`, `grpo.num_generations`, ... : `ALIASES`, docs/names.md) are
accepted in files and overrides.

Two keys take user functions (hooks, see theorygrpo_jax.hooks):
`reward.extra` and `grpo.advantage_fn`, named "package.module:function" in
YAML. The config holds the resolved functions (so equal configs call the same
functions) and `to_dict` / `save_config` write their names back.

This module is the one home of configuration and imports no JAX: the
algorithm modules, scripts and notebooks read their options from here.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from .grammar.text import read_text_file
from .grammar.vocab import VOCAB_SIZE

DTYPE_NAMES = ("float32", "bfloat16")  # the dtypes a ModelConfig may name
# The lowest sampling temperature a config may set: the policy's logits are divided by it, and
# below 1e-3 the tempered log-probs of ordinary logits (|z| ~ 10) leave the range where float32
# softmax and the GRPO ratio stay meaningful (exp(-z/T) underflows for a logit gap of 0.1).
# For greedy decoding, `theorygrpo-sample --temperature 0`.
MIN_TEMPERATURE = 1e-3
MAX_SEED = 2**63 - 2     # seeds are int64 for jax.random.PRNGKey, and sample.py also uses seed + 1
MAX_CONFIG_BYTES = 1 << 20   # a larger "config" is not one (e.g. /dev/zero)


class ConfigError(ValueError):
    """A bad configuration; str() is a one-line message naming the file and key."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture and numerics of TheoryGPT (hashable: usable as a static jit argument)."""
    vocab_size: int = VOCAB_SIZE       # token ids 0..vocab_size-1 (TheoryLang v1: 130)
    d_model: int = 128               # residual stream width
    n_heads: int = 4                 # attention heads; d_model must be divisible by it
    n_layers: int = 2                # transformer blocks
    d_ff: int = 256                  # hidden width of the GELU MLP
    max_len: int = 128               # longest sequence, BOS and EOS included (RoPE table, cache)
    dtype: str = "float32"           # compute dtype of activations: "float32" or "bfloat16"
    param_dtype: str = "float32"     # storage dtype of the parameters
    cache_dtype: str = "float32"     # dtype of the decode KV cache (bfloat16 halves its bytes)
    matmul_dtype: str = "float32"    # "bfloat16": round the weight matmuls' operands to it and
    #                                  sum in float32 (see Numerics); "float32": matmuls in `dtype`
    tie_embeddings: bool = True      # output head = token embedding transposed
    rope_base: float = 10000.0       # RoPE frequency base
    norm: str = "rmsnorm"            # "rmsnorm" or "layernorm" (pre-norm, plus a final norm)
    norm_eps: float = 1e-6           # epsilon of the norms

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.vocab_size < VOCAB_SIZE:
            raise ValueError(f"ModelConfig.vocab_size={self.vocab_size} is smaller than the "
                             f"TheoryLang vocabulary ({VOCAB_SIZE} tokens)")
        if self.d_model % self.n_heads:
            raise ValueError(f"ModelConfig.d_model={self.d_model} is not divisible by "
                             f"n_heads={self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError(f"head_dim={self.d_model // self.n_heads} must be even for RoPE "
                             f"(d_model={self.d_model}, n_heads={self.n_heads})")
        if self.max_len < 2:
            raise ValueError(f"ModelConfig.max_len must be at least 2 (BOS, EOS), "
                             f"got {self.max_len}")
        for name in ("dtype", "param_dtype", "cache_dtype", "matmul_dtype"):
            if getattr(self, name) not in DTYPE_NAMES:
                raise ValueError(f"ModelConfig.{name} must be one of {sorted(DTYPE_NAMES)}, "
                                 f"got {getattr(self, name)!r}")
        if self.norm not in ("rmsnorm", "layernorm"):
            raise ValueError(f"ModelConfig.norm must be 'rmsnorm' or 'layernorm', "
                             f"got {self.norm!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(f"ModelConfig.tie_embeddings must be a bool, "
                             f"got {self.tie_embeddings!r}")
        if not self.rope_base > 1.0:
            raise ValueError(f"ModelConfig.rope_base must be > 1, got {self.rope_base!r}")
        if not self.norm_eps > 0.0:
            raise ValueError(f"ModelConfig.norm_eps must be > 0, got {self.norm_eps!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def cpu_default(cls) -> "ModelConfig":
        """Trains and samples on a 2-core CPU in minutes (0.28M params; 64 theories in ~50 ms)."""
        return cls(d_model=128, n_heads=4, n_layers=2, d_ff=256, max_len=128)

    @classmethod
    def original(cls) -> "ModelConfig":
        """The original PyTorch TheoryGPT size (~8.5M params)."""
        return cls(d_model=512, n_heads=8, n_layers=4, d_ff=1024, max_len=512)

    @classmethod
    def gpu(cls) -> "ModelConfig":
        """A larger model for one accelerator (~50M params), bfloat16 compute and cache."""
        return cls(d_model=768, n_heads=12, n_layers=8, d_ff=3072, max_len=512,
                   dtype="bfloat16", cache_dtype="bfloat16")

    @classmethod
    def tiny(cls) -> "ModelConfig":
        """For tests: 1 layer, d_model 32."""
        return cls(d_model=32, n_heads=2, n_layers=1, d_ff=64, max_len=64)


BUILTIN_KEYS = ("anomalies_reward", "light_exotics_reward", "invalid_terms_reward", "length_reward",
                "heavy_exotics_reward", "total_reward", "success", "anomaly_l1", "invalid_terms",
                "light_exotics", "heavy_exotic_fields", "length")


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """Reward weights and thresholds (hashable: a static argument of the jitted scorer)."""

    anomalies_weight: float = 1.0        # weight of anomalies_reward in total_reward
    light_exotics_weight: float = 1.0    # weight of light_exotics_reward
    invalid_terms_weight: float = 1.0    # weight of invalid_terms_reward
    length_weight: float = 1.0           # weight of length_reward
    heavy_exotics_weight: float = 0.0    # bonus per distinct heavy charged exotic field (0: off)
    mass_threshold: float = 100.0        # GeV; uncoloured charged exotics lighter than this are "light"
    #                                      (default: the LEP bound on charged heavy leptons)
    coloured_mass_threshold: float = 100.0  # GeV; the same for coloured exotics
    length_alpha: float = 1.0            # α: length_reward = −α at len = max_len
    soft_len: int | None = None          # tokens (BOS..EOS) before the length penalty starts;
    #                                      None: 3/4 of max_len
    max_len: int = ModelConfig.max_len   # the sampler's max_len (penalty −α there); in a Config it
    #                                      is model.max_len (config_from_dict fills it in)
    extra: tuple = ()                    # ((name, weight, fn: TheoryRecord -> float scalar), ...);
    #                                      YAML: a list of {name, weight, fn: "package.module:function"}
    #                                      (fn given by name is resolved here: see theorygrpo_jax.hooks)

    def __post_init__(self):
        if self.soft_len is None and isinstance(self.max_len, int) and self.max_len > 1:
            object.__setattr__(self, "soft_len", (3 * self.max_len) // 4)
        for name in ("anomalies_weight", "light_exotics_weight", "invalid_terms_weight",
                     "length_weight", "heavy_exotics_weight", "length_alpha"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"RewardConfig.{name} must be a finite number, got {v!r}")
        if self.length_alpha < 0:
            raise ValueError(f"RewardConfig.length_alpha must be >= 0, got {self.length_alpha}")
        for name in ("mass_threshold", "coloured_mass_threshold"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v < math.inf):
                raise ValueError(f"RewardConfig.{name} must be a positive finite mass in GeV, got {v!r}")
        for name in ("max_len", "soft_len"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"RewardConfig.{name} must be a positive int, got {v!r}")
        if not self.soft_len < self.max_len:
            raise ValueError(f"RewardConfig needs soft_len < max_len, got soft_len={self.soft_len}, "
                             f"max_len={self.max_len}")
        if not isinstance(self.extra, tuple):
            raise ValueError("RewardConfig.extra must be a tuple of (name, weight, fn) tuples")
        object.__setattr__(self, "extra", tuple(_extra_entry(item, i)
                                                for i, item in enumerate(self.extra)))
        seen = set()
        for item in self.extra:
            name, weight, fn = item
            if not isinstance(name, str) or not name:
                raise ValueError(f"RewardConfig.extra name must be a non-empty str, got {name!r}")
            if name in BUILTIN_KEYS or name in seen:
                raise ValueError(f"RewardConfig.extra name {name!r} clashes with another reward key")
            seen.add(name)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                raise ValueError(f"RewardConfig.extra weight of {name!r} must be a finite number, got {weight!r}")
            if not callable(fn):
                raise ValueError(f"RewardConfig.extra fn of {name!r} must be callable, got {fn!r}")

    def weights(self) -> dict[str, float]:
        """{component: weight in total_reward}: the built-in components, then the extras."""
        builtin = {f"{n}_reward": float(getattr(self, f"{n}_weight"))
                   for n in ("anomalies", "light_exotics", "invalid_terms", "length", "heavy_exotics")}
        return {**builtin, **{name: float(weight) for name, weight, _ in self.extra}}

    @classmethod
    def lhc(cls, **overrides: Any) -> "RewardConfig":
        """LHC-era bounds: uncoloured charged exotics ≥ 800 GeV, coloured ≥ 1400 GeV."""
        kw: dict[str, Any] = dict(mass_threshold=800.0, coloured_mass_threshold=1400.0)
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "RewardConfig":
        """A named preset: "default" or "lhc"."""
        if name == "default":
            return cls(**overrides)
        if name == "lhc":
            return cls.lhc(**overrides)
        raise ValueError(f"unknown reward preset {name!r}; expected 'default' or 'lhc'")


EXTRA_KEYS = ("name", "weight", "fn")   # the keys of one reward.extra entry in YAML


def _extra_entry(item: Any, index: int) -> tuple:
    """One reward.extra entry as (name, weight, fn) with fn a function: from a tuple or a YAML
    mapping {name, weight, fn}, fn given as a function or its "package.module:function"."""
    from . import hooks
    where = f"reward.extra[{index}]"
    if isinstance(item, dict):
        unknown = [k for k in item if k not in EXTRA_KEYS]
        missing = [k for k in EXTRA_KEYS if k not in item]
        if unknown or missing:
            raise ValueError(f"{where}: expected the keys name, weight, fn"
                             + (f"; unknown {unknown}" if unknown else "")
                             + (f"; missing {missing}" if missing else ""))
        item = tuple(item[k] for k in EXTRA_KEYS)
    if isinstance(item, list):   # YAML's [name, weight, fn]
        item = tuple(item)
    if not (isinstance(item, tuple) and len(item) == 3):
        raise ValueError(f"RewardConfig.extra entries must be (name, weight, fn), got {item!r}")
    name, weight, fn = item
    if isinstance(fn, str):
        fn = hooks.resolve(fn, f"{where}.fn")
    if isinstance(weight, int) and not isinstance(weight, bool):
        weight = float(weight)
    return (name, weight, fn)


def _advantage_fn(value: Any) -> Any:
    """grpo.advantage_fn as a function (None: the built-in grpo.group_advantages)."""
    from . import hooks
    if value is None:
        return None
    if not (isinstance(value, str) or callable(value)):
        raise ValueError(f"advantage_fn must be a function or its name \"package.module:function\", "
                         f"got {value!r}")
    return hooks.resolve(value, "grpo.advantage_fn")


@dataclasses.dataclass(frozen=True)
class GRPOConfig:
    """Group Relative Policy Optimisation (all terms use the grammar-masked policy)."""
    group_size: int = 64                  # completions sampled per prompt
    prompts_per_step: int = 1             # prompts (groups) per step: batch = prompts_per_step * group_size
    temperature: float = 1.0              # sampling temperature; the loss uses the same tempered policy
    top_k: int = 0                        # sample among the k most likely allowed tokens (0: off)
    learning_rate: float = 1e-4           # Adam learning rate
    adam_b1: float = 0.9                  # Adam beta1
    adam_b2: float = 0.999                # Adam beta2
    weight_decay: float = 0.0             # decoupled weight decay (AdamW)
    max_grad_norm: float = 1.0            # global gradient-norm clip (0: off)
    clip_range: float = 0.2               # PPO ratio clip epsilon (lower side, and upper unless clip_range_high)
    clip_range_high: float | None = None  # upper clip epsilon ("clip-higher", DAPO); None: = clip_range
    kl_coef: float = 0.05                 # KL(pi || pi_ref) penalty coefficient (initial value if adaptive)
    kl_estimator: str = "exact"           # "exact" (sum over the masked vocabulary) or "k3" (sampled-token estimator)
    target_kl: float | None = None        # adaptive KL controller target per token; None: fixed kl_coef
    kl_horizon: int = 100                 # adaptive controller horizon in steps (larger: slower changes)
    entropy_coef: float = 0.01            # entropy bonus coefficient at step 0
    entropy_schedule: str = "constant"    # "constant", "linear", "exponential" or "cosine"
    entropy_coef_final: float = 0.0       # coefficient at the end of the schedule (> 0 for exponential)
    entropy_decay_steps: int = 1000       # steps over which the schedule goes from entropy_coef to final
    scale_by_std: bool = True             # divide advantages by the group std (False: Dr. GRPO)
    advantage_eps: float = 1e-6           # added to the group std
    inner_iterations: int = 1             # mu: optimiser steps on each batch of rollouts
    loss_aggregation: str = "token"       # "token": mean over all completion tokens; "sequence": per-sequence mean, then mean
    update_chunks: int = 4                # sort the batch by length and cut this many row groups to their own
    #                                       length before the update (less padding; the loss is unchanged)
    update_packing: bool = True           # pack several theories to a row for the update (block-causal
    #                                       mask, per-theory positions): the same loss to float rounding on
    #                                       far less padding; False: the length-sorted chunks as they are
    update_matmul_dtype: str | None = None  # "bfloat16": the update's weight matmuls take bf16 operands
    #                                       (float32 sums, parameters, gradients and Adam); None: the
    #                                       model's matmul_dtype. Faster on CPUs with bf16 units; moves the
    #                                       loss by ~1e-4 relative
    update_grad_matmul_dtype: str = "float32"  # "bfloat16": the backward's weight matmuls too (packed
    #                                       update with update_matmul_dtype bfloat16)
    advantage_fn: Any = None              # "package.module:function" (or the function): advantages [B] of
    #                                       fn(rewards [B], group_size, scale_by_std, advantage_eps), rewards
    #                                       laid out group by group; None: grpo.group_advantages

    def __post_init__(self):
        object.__setattr__(self, "advantage_fn", _advantage_fn(self.advantage_fn))
        _check(self.group_size >= 2, f"group_size must be >= 2 (advantages are relative within a group), got {self.group_size}")
        _check(self.prompts_per_step >= 1, f"prompts_per_step must be >= 1, got {self.prompts_per_step}")
        _check(self.temperature >= MIN_TEMPERATURE,
               f"temperature must be >= {MIN_TEMPERATURE} (MIN_TEMPERATURE), got {self.temperature}")
        _check(self.top_k >= 0, f"top_k must be >= 0, got {self.top_k}")
        _check(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        _check(0 <= self.adam_b1 < 1 and 0 <= self.adam_b2 < 1, "adam_b1 and adam_b2 must be in [0, 1)")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.max_grad_norm >= 0, f"max_grad_norm must be >= 0, got {self.max_grad_norm}")
        _check(0 < self.clip_range < 1, f"clip_range must be in (0, 1), got {self.clip_range}")
        _check(self.clip_range_high is None or self.clip_range_high > 0,
               f"clip_range_high must be > 0, got {self.clip_range_high}")
        _check(self.kl_coef >= 0, f"kl_coef must be >= 0, got {self.kl_coef}")
        _check(self.kl_estimator in ("exact", "k3"), f"kl_estimator must be 'exact' or 'k3', got {self.kl_estimator!r}")
        _check(self.target_kl is None or self.target_kl > 0, f"target_kl must be > 0, got {self.target_kl}")
        _check(self.kl_horizon >= 1, f"kl_horizon must be >= 1, got {self.kl_horizon}")
        _check(self.entropy_coef >= 0 and self.entropy_coef_final >= 0, "entropy coefficients must be >= 0")
        _check(self.entropy_schedule in ("constant", "linear", "exponential", "cosine"),
               f"entropy_schedule must be constant, linear, exponential or cosine, got {self.entropy_schedule!r}")
        _check(self.entropy_schedule != "exponential" or (self.entropy_coef_final > 0 and self.entropy_coef > 0),
               "an exponential entropy_schedule needs entropy_coef > 0 and entropy_coef_final > 0")
        _check(self.entropy_decay_steps >= 1, f"entropy_decay_steps must be >= 1, got {self.entropy_decay_steps}")
        _check(self.advantage_eps > 0, f"advantage_eps must be > 0, got {self.advantage_eps}")
        _check(self.inner_iterations >= 1, f"inner_iterations must be >= 1, got {self.inner_iterations}")
        _check(self.update_chunks >= 1, f"update_chunks must be >= 1, got {self.update_chunks}")
        _check(self.update_matmul_dtype in (None, "float32", "bfloat16"),
               f"update_matmul_dtype must be float32, bfloat16 or null, got {self.update_matmul_dtype!r}")
        _check(self.update_grad_matmul_dtype in ("float32", "bfloat16"),
               f"update_grad_matmul_dtype must be float32 or bfloat16, got {self.update_grad_matmul_dtype!r}")
        _check(self.loss_aggregation in ("token", "sequence"),
               f"loss_aggregation must be 'token' or 'sequence', got {self.loss_aggregation!r}")

    @property
    def batch_size(self) -> int:
        return self.prompts_per_step * self.group_size


REPORT_SINKS = ("tensorboard", "wandb")   # train.report_to


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training loop: task, length, logging, checkpoints, evaluation."""
    task: str = "sm_extension"            # "sm_extension" (the SM as prompt; the policy adds exotics),
    #                                       "dark_u1" (the SM with a dark U(1)'; the policy adds dark
    #                                       fermions) or "from_scratch" (BOS as prompt)
    prompt_files: tuple[str, ...] = ()    # .theory prefixes used as prompts, cycled; empty: the task's default prompt
    num_episodes: int = 200               # GRPO steps (one step = prompts_per_step groups sampled and learned from)
    seed: int = 0                         # seeds parameters, sampling and everything random
    log_interval: int = 10                # steps between statistics blocks (and plots)
    save_interval: int = 50               # steps between checkpoints
    keep_checkpoints: int = 3             # newest checkpoints kept (best_model is kept apart)
    eval_episodes: int = 256              # theories sampled by --eval_only and the final evaluation
    use_curriculum: bool = False          # phase the reward components in (see the curriculum section)
    use_priority_buffer: bool = False     # replay high-reward theories (see the replay section)
    tensorboard: bool = True              # also write TensorBoard event files
    progress_bar: bool = True             # progress on stderr: a tqdm bar on a terminal, plain lines otherwise
    report_to: tuple[str, ...] = ("tensorboard",)  # metric sinks besides metrics.jsonl: "tensorboard",
    #                                       "wandb" (needs the wandb package); () for none
    wandb_project: str = "theorygrpo"     # the W&B project when report_to includes "wandb"
    max_minutes: float | None = None      # stop cleanly after this much wall time (final checkpoint,
    #                                       catalogue, evaluation), whatever num_episodes says
    update_steps: int | None = None       # GRPO updates the policy in the first update_steps steps only;
    #                                       later steps sample, score and catalogue without updating it
    #                                       (a harvest: a step costs its rollout alone). None: every step
    param_sharding: str = "replicated"    # "replicated" (every device holds the whole state) or "fsdp"
    #                                       (ZeRO-3: parameters, reference and Adam's moments split over
    #                                       the devices, all-gathered where a forward needs them; several
    #                                       devices only; see docs/scaling.md)

    def __post_init__(self):
        _check(self.task in ("sm_extension", "dark_u1", "from_scratch"),
               f"task must be 'sm_extension', 'dark_u1' or 'from_scratch', got {self.task!r}")
        for name in ("num_episodes", "log_interval", "save_interval", "keep_checkpoints", "eval_episodes"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        _check(0 <= self.seed <= MAX_SEED, f"seed must be in 0..{MAX_SEED}, got {self.seed}")
        _check(self.max_minutes is None or (math.isfinite(self.max_minutes) and self.max_minutes > 0),
               f"max_minutes must be > 0, got {self.max_minutes}")
        _check(self.update_steps is None or self.update_steps >= 0,
               f"update_steps must be >= 0 (or null: every step), got {self.update_steps}")
        unknown = [r for r in self.report_to if r not in REPORT_SINKS]
        _check(not unknown, f"report_to: unknown sink(s) {unknown} (known: {list(REPORT_SINKS)})")
        _check(self.param_sharding in ("replicated", "fsdp"),
               f"param_sharding must be 'replicated' or 'fsdp', got {self.param_sharding!r}")


@dataclasses.dataclass(frozen=True)
class DiscoveryConfig:
    """Rewards that pay for discovery (theorygrpo_jax.discovery); each is paid only to
    successful theories, on top of the reward."""
    novelty_weight: float = 0.0           # w: bonus w / sqrt(1 + n) for a theory whose physics model
    #                                       was found n times before in this run (0: off)
    sm_charged_weight: float = 0.0        # bonus when the added fields carry hypercharge, SU(2) or colour
    chiral_weight: float = 0.0            # bonus when the added fermions are chiral (not all vector-like)
    novelty_scope: str = "charged_or_chiral"  # models the novelty bonus pays for: "charged_or_chiral"
    #                                       (adding SM-charged or chiral matter), "chiral" (chiral matter
    #                                       only: the dark_u1 task's discoveries) or "any" (also SM-neutral
    #                                       scalars and vector-like neutral fermions, which a policy
    #                                       otherwise farms: n copies of a singlet scalar are n "new" models)
    novelty_key: str = "model"            # what counts as new: "model" (the physics model: gauge group,
    #                                       fermions and scalars) or "fermions" (the fermion content alone:
    #                                       a found set of fermions decorated with other scalars is not new)
    scalar_only_factor: float = 0.2       # novelty of a model that adds only scalars is scaled by this:
    #                                       a heavy scalar of any quantum numbers is one SMASS term
    #                                       from success, and a policy farms them otherwise
    table_size: int = 65536               # buckets of the novelty counts (by the model key's hash)

    def __post_init__(self):
        _check(self.novelty_key in ("model", "fermions"),
               f"novelty_key must be 'model' or 'fermions', got {self.novelty_key!r}")
        _check(self.novelty_scope in ("charged_or_chiral", "chiral", "any"),
               f"novelty_scope must be 'charged_or_chiral', 'chiral' or 'any', got {self.novelty_scope!r}")
        for name in ("novelty_weight", "sm_charged_weight", "chiral_weight", "scalar_only_factor"):
            v = getattr(self, name)
            _check(math.isfinite(v) and v >= 0, f"{name} must be a finite number >= 0, got {v}")
        _check(self.table_size >= 1, f"table_size must be >= 1, got {self.table_size}")


@dataclasses.dataclass(frozen=True)
class CurriculumConfig:
    """Phases that switch reward components on progressively (length -> + masses -> + anomalies)."""
    phases: tuple[tuple[str, ...], ...] = (
        ("length", "invalid_terms"),
        ("length", "invalid_terms", "light_exotics"),
        ("length", "invalid_terms", "light_exotics", "anomalies", "heavy_exotics"),
    )                                     # reward components (names without _reward) active in each phase
    mastery_threshold: float = 0.7        # advance when the phase's success rate over the window reaches this
    window: int = 10                      # steps in the success-rate window

    def __post_init__(self):
        _check(len(self.phases) >= 1, "curriculum needs at least one phase")
        known = {"anomalies", "light_exotics", "invalid_terms", "length", "heavy_exotics"}
        for phase in self.phases:
            unknown = set(phase) - known
            _check(not unknown, f"unknown reward component(s) {sorted(unknown)} in a phase (known: {sorted(known)})")
        _check(0 < self.mastery_threshold <= 1, f"mastery_threshold must be in (0, 1], got {self.mastery_threshold}")
        _check(self.window >= 1, f"window must be >= 1, got {self.window}")


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """Replay buffer of high-reward theories (a fixed-size ring buffer in the TrainState)."""
    capacity: int = 1000                  # theories kept
    prioritized: bool = True              # priority ~ (reward - min)^alpha; False: uniform
    alpha: float = 0.6                    # priority exponent
    beta: float = 0.4                     # importance-weight exponent (1: full correction)
    replay_per_step: int = 8              # replayed theories joining each update
    min_reward: float | None = None       # store only theories with at least this reward; None: successes only.
    #                                       The buffer keeps the reward the policy learns from (under the
    #                                       curriculum: the phase's reward; plus discovery bonuses), the
    #                                       scale replayed advantages are measured on against fresh rollouts

    def __post_init__(self):
        _check(self.capacity >= 1, f"capacity must be >= 1, got {self.capacity}")
        _check(self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}")
        _check(0 <= self.beta <= 1, f"beta must be in [0, 1], got {self.beta}")
        _check(self.replay_per_step >= 0, f"replay_per_step must be >= 0, got {self.replay_per_step}")


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Supervised pretraining (masked cross-entropy) on the textbook + synthetic corpus."""
    synthetic_theories: int = 4000        # synthetic corpus size (theorygrpo_jax.corpus)
    dark_u1_theories: int = 0             # dark_u1 practice theories: sum z = 0, never sum z^3 = 0 (corpus.dark_u1_practice)
    textbook_weight: float = 0.1          # fraction of the corpus made of textbook models (repeated)
    imperfect_fraction: float = 0.1       # synthetic theories given one deliberate flaw
    steps: int = 600                      # optimiser steps
    batch_size: int = 32                  # theories per step
    learning_rate: float = 1e-3           # peak Adam learning rate (linear warm-up, cosine decay)
    warmup_steps: int = 50                # warm-up steps
    seed: int = 0                         # corpus, shuffling and initialisation
    log_interval: int = 50                # steps between log lines
    save_interval: int = 200              # steps between checkpoints

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_interval", "save_interval"):
            _check(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("synthetic_theories", "dark_u1_theories"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(self.synthetic_theories + self.dark_u1_theories >= 1,
               "the corpus is empty: synthetic_theories or dark_u1_theories must be >= 1")
        _check(0 <= self.seed <= MAX_SEED, f"seed must be in 0..{MAX_SEED}, got {self.seed}")
        _check(0 <= self.textbook_weight < 1, f"textbook_weight must be in [0, 1), got {self.textbook_weight}")
        _check(0 <= self.imperfect_fraction <= 1, f"imperfect_fraction must be in [0, 1], got {self.imperfect_fraction}")
        _check(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        _check(0 <= self.warmup_steps < self.steps, "warmup_steps must be in [0, steps)")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run needs; `to_dict` / `from_dict` round-trip through YAML."""
    model: ModelConfig = ModelConfig()
    reward: RewardConfig = RewardConfig()
    grpo: GRPOConfig = GRPOConfig()
    train: TrainConfig = TrainConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    curriculum: CurriculumConfig = CurriculumConfig()
    replay: ReplayConfig = ReplayConfig()
    pretrain: PretrainConfig = PretrainConfig()

    def __post_init__(self):
        for section in dataclasses.fields(self):
            _check_finite(getattr(self, section.name), section.name)
        if self.grpo.top_k > self.model.vocab_size:
            raise ValueError(f"grpo.top_k ({self.grpo.top_k}) is larger than the vocabulary "
                             f"(model.vocab_size {self.model.vocab_size}); 0 switches top-k off")
        if self.reward.max_len != self.model.max_len:
            raise ValueError(f"reward.max_len ({self.reward.max_len}) must equal model.max_len "
                             f"({self.model.max_len}): the length penalty is relative to it")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON): hooks as their "module:function" names (`hooks.name_of`; a
        lambda or a function defined inside a function is a HookError naming its key)."""
        return {f.name: _to_plain(getattr(self, f.name), f.name) for f in dataclasses.fields(self)}

    def hooks(self) -> tuple:
        """The user functions this config calls (reward.extra's, grpo.advantage_fn), in order."""
        extra = tuple(fn for _, _, fn in self.reward.extra)
        return extra + ((self.grpo.advantage_fn,) if self.grpo.advantage_fn is not None else ())


def _check_finite(section: Any, name: str) -> None:
    """ValueError naming the first float field of a section that is NaN or infinite (YAML's
    .nan and .inf included): no setting has a meaning there."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}.{f.name} must be a finite number, got {value}")


def _to_plain(value: Any, key: str) -> Any:
    from . import hooks
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name), f"{key}.{f.name}")
                for f in dataclasses.fields(value)}
    if key == "reward.extra":
        return [{"name": name, "weight": weight, "fn": hooks.name_of(fn, f"{key}[{i}].fn")}
                for i, (name, weight, fn) in enumerate(value)]
    if isinstance(value, tuple):
        return [_to_plain(v, key) for v in value]
    if callable(value):
        return hooks.name_of(value, key)
    return value


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0]
        return tuple(_coerce(v, item, where) for v in value)
    if annotation is tuple and isinstance(value, list):
        return tuple(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            value = float(value)
        except OverflowError:   # an integer beyond float range
            raise ConfigError(f"{where}: expected a finite number, got {value!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


# TRL's and Tunix's names of our keys: (section, their name) -> (our key, their values -> ours, or
# None when the value is the same). docs/names.md is the table for users.
_LOSS_TYPES = {"grpo": "sequence", "bnpo": "token", "dapo": "token"}
_SCALE_REWARDS = {True: True, False: False, "group": True, "none": False}
ALIASES: dict[tuple[str, str], tuple[str, dict | None]] = {
    ("grpo", "num_generations"): ("group_size", None),
    ("grpo", "beta"): ("kl_coef", None),
    ("grpo", "epsilon"): ("clip_range", None),
    ("grpo", "epsilon_low"): ("clip_range", None),
    ("grpo", "epsilon_high"): ("clip_range_high", None),
    ("grpo", "num_iterations"): ("inner_iterations", None),
    ("grpo", "loss_type"): ("loss_aggregation", _LOSS_TYPES),
    ("grpo", "scale_rewards"): ("scale_by_std", _SCALE_REWARDS),
    ("grpo", "adam_beta1"): ("adam_b1", None),
    ("grpo", "adam_beta2"): ("adam_b2", None),
    ("train", "max_steps"): ("num_episodes", None),
    ("train", "logging_steps"): ("log_interval", None),
    ("train", "save_steps"): ("save_interval", None),
    ("train", "save_total_limit"): ("keep_checkpoints", None),
}
_ALIAS_VALUE_HELP = {
    "loss_type": "we support loss_type grpo (grpo.loss_aggregation: sequence), bnpo or dapo "
                 "(grpo.loss_aggregation: token); Dr. GRPO's unscaled advantages are "
                 "grpo.scale_by_std: false",
    "scale_rewards": "we support scale_rewards true/group (grpo.scale_by_std: true) and "
                     "false/none (grpo.scale_by_std: false); there is no batch-level scaling",
}


def _canonical(section: str, key: str, value: Any, where: str) -> tuple[str, Any]:
    """(our key, our value) of `section.key`, translating a TRL/Tunix alias; others unchanged."""
    if (section, key) not in ALIASES:
        return key, value
    ours, values = ALIASES[(section, key)]
    if values is not None:
        try:
            known = value in values
        except TypeError:
            known = False
        if not known:
            raise ConfigError(f"{where}: {section}.{key} (TRL/Tunix name of {section}.{ours}) "
                              f"{value!r} has no equivalent here: {_ALIAS_VALUE_HELP[key]}")
        value = values[value]
    return ours, value


def _unknown_key(source: str, section: str, key: Any, fields: set[str]) -> ConfigError:
    """The error of an unknown key: the closest known key or alias ("did you mean"), a
    TRL/Tunix name given in the wrong section, then the known keys."""
    path = f"{section}.{key}" if section else str(key)
    kind = "key" if section else "section"
    aliases = {name: ours for (sec, name), (ours, _) in ALIASES.items() if sec == section}
    hint = ""
    close = difflib.get_close_matches(str(key), sorted(fields | set(aliases)), n=1, cutoff=0.6)
    elsewhere = [(sec, ours) for (sec, name), (ours, _) in ALIASES.items() if name == key]
    if elsewhere:
        sec, ours = elsewhere[0]
        hint = f": {key} (TRL/Tunix) is {sec}.{ours} here"
    elif close and close[0] in aliases:
        hint = f": did you mean '{close[0]}' (TRL/Tunix name of {aliases[close[0]]})?"
    elif close:
        hint = f": did you mean '{close[0]}'?"
    return ConfigError(f"{source}: unknown {kind} '{path}'{hint} (known: {', '.join(sorted(fields))})")


def _build(cls: type, mapping: Any, source: str, keypath: str = "") -> Any:
    """Instantiate `cls` from a mapping; errors read "<source>: <section.key>: <problem>"."""
    where = f"{source}: {keypath}" if keypath else source
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    given: dict[str, Any] = {}   # our key -> the name it was given under
    for key, value in mapping.items():
        if key not in fields and (keypath, key) in ALIASES:
            ours, value = _canonical(keypath, key, value, source)
            if ours in given or ours in mapping:
                raise ConfigError(f"{source}: {keypath}.{key} is the TRL/Tunix name of "
                                  f"{keypath}.{ours}, which is given too: give one of them")
            given[ours], key = key, ours
        path = f"{keypath}.{key}" if keypath else str(key)
        if key not in fields:
            raise _unknown_key(source, keypath, key, fields)
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = _build(hints[key], value, source, path)
        else:
            kwargs[key] = _coerce(value, hints[key], f"{source}: {path}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        if keypath and str(e).startswith(f"{keypath}."):   # names its key already
            raise ConfigError(f"{source}: {e}") from None
        raise ConfigError(f"{where}: {e}") from None


def config_from_dict(data: dict[str, Any], source: str = "<config>") -> Config:
    """A validated Config from nested mappings (sections may be left out)."""
    data = dict(data or {})
    model, reward = data.get("model", {}) or {}, data.get("reward", {}) or {}
    # The length penalty is relative to the model's max_len: the one place the reward takes it
    # (soft_len then defaults to 3/4 of it, in RewardConfig).
    if isinstance(model, dict) and isinstance(reward, dict):
        data["reward"] = {"max_len": model.get("max_len", ModelConfig.max_len), **reward}
    return _build(Config, data, source)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (the
    plain loader keeps the last silently, so a typo'd duplicate wins unnoticed)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:   # an unhashable key: the base class reports it
                continue
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first given on line {first})",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read a YAML config and apply `overrides` ({"section.key": value}); ConfigError on any problem.

    The file must hold at least one section (an empty or comments-only file is an error, not
    the built-in defaults); a key given twice is an error; a UTF-8 BOM is accepted.
    """
    text = read_text_file(path, "config", ConfigError, MAX_CONFIG_BYTES)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        raise ConfigError(f"{path}: empty config file (no sections); give at least one section, "
                          f"e.g. 'train:' with its keys")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        if not key:
            raise ConfigError(f"override '{dotted}': expected section.key")
        # a TRL/Tunix name (--set grpo.beta=0.1) overrides our key in the file (kl_coef)
        key, value = _canonical(section, key, value, f"override '{dotted}'")
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"{path}: section '{section}' is not a mapping")
        data[section][key] = value
    return config_from_dict(data, str(path))


def save_config(config: Config, path: str | Path) -> None:
    """Write `config` as YAML (hooks by name; see `Config.to_dict`). A hook defined in
    `__main__` (a notebook cell, a script) is written as "__main__:function", with a warning:
    that name loads only in the process that defined it."""
    import warnings

    from . import hooks
    data = config.to_dict()   # a hook without a loadable name: HookError before writing
    local = [hooks.name_of(fn, "hook") for fn in config.hooks() if hooks.is_main(fn)]
    if local:
        warnings.warn(f"{path}: names {', '.join(local)}, defined in __main__ (a notebook or "
                      f"script): only this process can load it; for a run directory that "
                      f"stands alone, put the hook in a module file and name it "
                      f"\"module:function\"", stacklevel=2)
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
