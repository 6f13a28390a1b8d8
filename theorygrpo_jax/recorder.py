"""The host's records of a training run: one `Recorder` per run directory.

Everything a step leaves on the host goes through `Recorder.record`, outside the
jitted step: metrics (jsonl, TensorBoard, W&B), the statistics history and
training_stats.json, the catalogue of discovered models, statistics blocks,
checkpoints and plots. In a multi-host run only process 0 writes (`primary`); every
process still saves the checkpoints, which are collective.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from . import rundir
from . import tasks
from .checkpoint import Checkpointer
from .cli import UserError
from .config import Config
from .discoveries import DiscoveryCatalogue
from .faults import fault_point
from .grammar import vocab as V
from .metrics import (MetricsWriter, format_stats_block, group_stats, open_wandb,
                      samples_markdown)
from .reward import component_names
from .train_state import TrainState

# Plots are redrawn at checkpoint steps at most once a minute (and at the run's last step), and
# training_stats.json between checkpoints as rarely: each redraw reads the whole metrics.jsonl
# and takes seconds, which at every checkpoint of a run of fast steps (a harvest) came to a
# third of its time.
REWRITE_INTERVAL_S = 60.0

if TYPE_CHECKING:
    from .train import StepOutputs


SAMPLE_THEORIES = 4   # theories shown as text at each log interval: the 2 best and the 2 worst


def token_strings(row: np.ndarray) -> list[str]:
    """One sampled row as token strings, without padding."""
    return [V.TOKENS[t] for t in row if t != V.PAD]


class TrainingDiverged(UserError):
    """A step left a non-finite loss or non-finite parameters; nothing of it was recorded."""


@jax.jit
def _all_finite(params: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)]))


def sample_rows(tokens: np.ndarray, total_reward: np.ndarray,
                k: int = SAMPLE_THEORIES) -> list[tuple[float, str]]:
    """(total reward, token text) of the k//2 best and the rest worst theories of a batch
    (tokens [B, L], total_reward [B]), best first; each row at most once."""
    order = np.argsort(-np.asarray(total_reward, dtype=np.float64), kind="stable")
    picked = list(dict.fromkeys([*order[:k // 2], *order[::-1][:k - k // 2][::-1]]))
    return [(float(total_reward[i]), " ".join(token_strings(tokens[i]))) for i in picked]


class Recorder:
    """Host bookkeeping of a run directory: metrics (jsonl, TensorBoard, W&B), the history and
    training_stats.json, the catalogue of discoveries, statistics blocks, checkpoints (every
    save_interval steps, the last step, a stop request, and best_model when the mean reward
    improved at a logged step) and plots (at checkpoint steps at most once a minute, and at
    the last step).

    Per step it writes, in this order: the catalogue, metrics.jsonl, training_stats.json, the
    checkpoint, best_model (a resume cuts the others back to the checkpoint: see rundir). A
    step whose loss or parameters are not finite writes nothing and raises TrainingDiverged.
    `history`, `saved_best` and `best_step` continue a resumed run (its checkpoint's metadata).

    Besides the step's own metrics it logs reward_std and zero_variance_groups (computed here
    from the scores: metrics.group_stats), and as text the config (at `step`, where the run
    starts) and a few sampled theories at each logged step. TensorBoard is written when
    train.tensorboard is true and "tensorboard" is in train.report_to; W&B when "wandb" is.
    `primary` False (a process other than 0 of a multi-host run): nothing is written and
    nothing is shown, but the checkpoints are saved at the same steps (orbax saves are
    collective) and a non-finite step still raises TrainingDiverged.
    """

    def __init__(self, out: Path, config: Config, checkpointer: Checkpointer,
                 write: Callable[[str], None], history: dict[str, list[float]] | None = None,
                 saved_best: float = -np.inf, best_step: int | None = None,
                 primary: bool = True, step: int = 0):
        tc = config.train
        self.out, self.config, self.primary = out, config, primary
        self.write_line = write if primary else (lambda _: None)
        self.checkpointer = checkpointer
        self.writer: MetricsWriter | None = None
        self.catalogue: DiscoveryCatalogue | None = None
        if primary:
            wandb = (open_wandb(out, tc.wandb_project, config.to_dict())
                     if "wandb" in tc.report_to else None)
            tags = {name: f"reward/{name.removesuffix('_reward')}"
                    for name in component_names(config.reward)}
            self.writer = MetricsWriter(out, tensorboard=tc.tensorboard and
                                        "tensorboard" in tc.report_to, wandb=wandb, tags=tags)
            self.writer.write_text(step, "config", "```yaml\n" + yaml.safe_dump(
                config.to_dict(), sort_keys=False) + "```")
            prompt = tasks.task_prompts(config.train.task, config.train.prompt_files)[0]
            self.catalogue = DiscoveryCatalogue(out, prompt=prompt)
        self.stats_path = out / rundir.STATS_FILE
        self.history: dict[str, list[float]] = history or {}
        self.saved_best = saved_best       # the mean reward of the model in best_model
        self.best_step = best_step         # its step
        self.last_metrics: dict[str, float] = {}
        self.plotted_at = -math.inf      # time.monotonic() of the last redraw of the plots
        self.stats_at = -math.inf        # ... and of the last write of training_stats.json

    def record(self, state: TrainState, outputs: StepOutputs, seconds: float,
               last: bool, checkpoint: bool = False) -> dict[str, float]:
        """Everything the host keeps of the step that produced `state` (`last`: the run's final
        step, which is always logged, saved and plotted; `checkpoint`: save it, as at a stop
        request, without changing what is logged); returns its metrics."""
        tc = self.config.train
        done = int(state.step)
        fault_point("record_start", done)
        host = jax.device_get(outputs)
        metrics = {k: float(v) for k, v in host.metrics.items()}
        self._check_finite(done, metrics, state)
        metrics["step_seconds"] = seconds
        tokens, scores = np.asarray(host.tokens), host.scores
        total = np.asarray(scores["total_reward"])
        metrics.update(group_stats(total, self.config.grpo.group_size))
        logged = done % tc.log_interval == 0 or last
        if self.primary:
            self.catalogue.add_batch([(token_strings(tokens[i]),
                                       {k: v[i].item() for k, v in scores.items()})
                                      for i in np.flatnonzero(scores["success"])], done)
            fault_point("after_catalogue", done)
            found = self.catalogue.summary()
            metrics["unique_successes"] = float(len(self.catalogue))   # distinct physics models
            metrics.update({f"models_{k}": float(found[k])
                            for k in ("sm_charged", "chiral", "vector_like")})
            if tc.task == "dark_u1":   # coverage of the enumerated chiral charge sets
                metrics.update({f"dark_sets_{n}": float(found["dark_sets"].get(n, 0))
                                for n in (5, 6, 7)})
            self.writer.write(done, metrics)
            if logged:
                self.writer.write_text(done, "samples", samples_markdown(sample_rows(tokens, total)))
            fault_point("after_metrics", done)
        for k, v in metrics.items():
            self.history.setdefault(k, []).append(v)
        improved = logged and float(state.best_reward) > self.saved_best
        if logged:
            self.write_line(self._stats_block(done, metrics))
        if improved:
            self.saved_best, self.best_step = float(state.best_reward), done
        saving = done % tc.save_interval == 0 or last or improved or checkpoint
        # the whole history: at checkpoints, else at logged steps at most once a minute (at
        # thousands of steps the rewrite takes a good part of a second)
        if saving or (logged and time.monotonic() - self.stats_at >= REWRITE_INTERVAL_S):
            self.write_stats(state)
            fault_point("after_stats", done)
        if saving:   # on every process: orbax saves are collective
            self.checkpointer.save(done, state, self._metadata(done), best=improved)
        if self.primary and (last or (done % tc.save_interval == 0 and
                                      time.monotonic() - self.plotted_at >= REWRITE_INTERVAL_S)):
            from .plotting import plot_metrics
            self.plotted_at = time.monotonic()
            plot_metrics(self.out / "metrics.jsonl", self.out / "plots",
                         curriculum=tc.use_curriculum)
        fault_point("record_end", done)
        self.last_metrics = metrics
        return metrics

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def _check_finite(self, done: int, metrics: dict[str, float], state: TrainState) -> None:
        """TrainingDiverged naming the step and the last good checkpoint when the step's loss or
        parameters are not finite (before anything of the step is written)."""
        loss_ok = math.isfinite(metrics.get("total_loss", 0.0))
        if loss_ok and bool(_all_finite(state.params)):
            return
        last = self.checkpointer.latest_step()
        where = (f"the last good checkpoint is {self.checkpointer.directory / str(last)} (step "
                 f"{last})" if last is not None else "no checkpoint was saved")
        what = "loss" if not loss_ok else "parameters"
        raise TrainingDiverged(f"training diverged at step {done}: non-finite {what} "
                               f"(total_loss {metrics.get('total_loss')}); nothing of step {done} "
                               f"was saved and {where}; resume from it with a lower "
                               f"grpo.learning_rate")

    def _stats_block(self, done: int, metrics: dict[str, float]) -> str:
        tc = self.config.train
        buffer = ({"size": metrics["buffer_size"], "capacity": self.config.replay.capacity,
                   "mean_reward": metrics["buffer_mean_reward"],
                   "success_rate": metrics["buffer_success_rate"]}
                  if tc.use_priority_buffer else None)
        shown = {k: metrics[k] for k in ("mean_reward", "reward_std", "success_rate",
                                         "zero_variance_groups", "total_loss", "policy_loss",
                                         "kl", "entropy", "unique_successes",
                                         "models_sm_charged", "models_chiral") if k in metrics}
        return format_stats_block(done, shown, buffer,
                                  int(metrics["curriculum_phase"]) if tc.use_curriculum else None)

    def _metadata(self, done: int) -> dict:
        """A checkpoint's metadata: what a resume from it needs besides the state."""
        return {"step": done, "best_step": self.best_step, "saved_best": self.saved_best,
                "config": self.config.to_dict(),
                "unique_successes": len(self.catalogue) if self.catalogue is not None else None,
                "last": {k: v[-1] for k, v in self.history.items() if v}}

    def write_stats(self, state: TrainState) -> None:
        """training_stats.json: the run's step, best reward and whole history (tmp + rename);
        nothing on a process other than 0."""
        if not self.primary:
            return
        self.stats_at = time.monotonic()
        data = {"step": int(state.step), "best_reward": float(state.best_reward),
                "unique_successes": len(self.catalogue), "config": self.config.to_dict(),
                "history": self.history}
        tmp = self.stats_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.stats_path)
