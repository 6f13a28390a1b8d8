"""Supervised pretraining (SFT) of the policy on the theory corpus.

Maximum likelihood under the grammar-masked policy: at each position the
model's logits are restricted to the tokens the grammar allows, renormalised,
and the cross-entropy of the corpus token is minimised (forced tokens, where
only one is allowed, cost nothing). The corpus is the textbook models plus
the synthetic theories of `theorygrpo_jax.corpus`; nothing is downloaded.

The run directory has the training layout: `checkpoints/<step>/` and
`checkpoints/best_model/` hold {"params", "opt_state", "step"} (load the
policy with `scripts/train.py --checkpoint DIR`), `metrics.jsonl`,
`config.yaml`, `plots/`.
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from tqdm import tqdm

from . import model as M
from . import policy, rundir
from .checkpoint import Checkpointer
from .config import Config, PretrainConfig, save_config
from .corpus import build_corpus
from .grammar import automaton
from .grammar import vocab as V
from .metrics import MetricsWriter
from .progress import is_terminal


@struct.dataclass
class PretrainState:
    """Parameters and optimiser of supervised pretraining."""
    params: Any        # policy parameters
    opt_state: Any     # optax state
    step: jax.Array    # [] int32 optimiser steps done


def corpus_array(theories: list[list[str]], max_len: int) -> np.ndarray:
    """[N, max_len] int32 token ids, PAD after EOS."""
    out = np.full((len(theories), max_len), V.PAD, np.int32)
    for i, theory in enumerate(theories):
        out[i, :len(theory)] = V.token_ids(theory)
    return out


def masked_nll(params: Any, model_config: M.ModelConfig, tables: automaton.GrammarTables,
               tokens: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean negative log-likelihood per token of tokens [B, T] under the masked policy."""
    masks = policy.grammar_masks(tables, tokens, model_config.max_len)
    log_probs = policy.log_policy(params, model_config, tokens, masks, policy.PolicySpec())  # [B, T-1, V]
    token_logp = policy.token_logprobs(log_probs, tokens)
    real = (tokens[:, 1:] != V.PAD).astype(jnp.float32)
    n = jnp.maximum(real.sum(), 1.0)
    nll = -(token_logp * real).sum() / n
    choice = (masks[:, 1:].sum(-1) > 1).astype(jnp.float32) * real   # positions with a real choice
    accuracy = ((jnp.argmax(log_probs, -1) == tokens[:, 1:]) * choice).sum() / jnp.maximum(choice.sum(), 1.0)
    return nll, {"nll": nll, "choice_accuracy": accuracy}


def make_optimizer(config: PretrainConfig) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, config.warmup_steps,
                                                  config.steps, config.learning_rate * 0.05)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))


@functools.lru_cache(maxsize=4)
def make_sft_step(model_config: M.ModelConfig, config: PretrainConfig) -> Callable:
    """Jitted `step(state, tables, tokens) -> (state, metrics)`."""
    optimizer = make_optimizer(config)
    grad_fn = jax.value_and_grad(masked_nll, has_aux=True)

    def step(state: PretrainState, tables, tokens):
        (_, metrics), grads = grad_fn(state.params, model_config, tables, tokens)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        return PretrainState(params=optax.apply_updates(state.params, updates), opt_state=opt_state,
                             step=state.step + 1), metrics

    return jax.jit(step, donate_argnums=(0,))


def pretrain(config: Config, output_dir: str | Path, log: Callable[[str], None] = print,
             progress: bool = True, overwrite: bool = False) -> PretrainState:
    """Pretrain for config.pretrain.steps steps; checkpoints and metrics go to output_dir.

    The run holds output_dir's lock (rundir.RunLock); a directory that already holds a run's
    files is an error unless `overwrite` (they are removed first).
    """
    out = Path(output_dir)
    rundir.check_output_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    with rundir.RunLock(out):
        used = rundir.run_files(out)
        if used and not overwrite:
            raise rundir.RunDirError(f"{out}: holds a run already ({', '.join(used)}): choose "
                                     f"another --output_dir, or pass --overwrite to replace it")
        rundir.clear_run(out)
        return _pretrain(config, out, log, progress)


def _pretrain(config: Config, out: Path, log: Callable[[str], None],
              progress: bool) -> PretrainState:
    from .plotting import plot_metrics

    pc, mc = config.pretrain, config.model
    save_config(config, out / "config.yaml")
    t0 = time.perf_counter()
    theories = build_corpus(pc.synthetic_theories, pc.seed, mc.max_len, pc.textbook_weight,
                            pc.imperfect_fraction, pc.dark_u1_theories)
    data = corpus_array(theories, mc.max_len)
    rng = np.random.default_rng(pc.seed)
    held_out = data[rng.permutation(len(data))[: min(256, len(data) // 10)]]
    log(f"pretraining corpus: {len(data)} theories, mean length "
        f"{(data != V.PAD).sum(1).mean():.1f} tokens (built in {time.perf_counter() - t0:.1f} s)")
    tables = automaton.load_tables()
    params = M.init_params(mc, jax.random.PRNGKey(pc.seed))
    state = PretrainState(params=params, opt_state=make_optimizer(pc).init(params),
                          step=jnp.zeros((), jnp.int32))
    step_fn = make_sft_step(mc, pc)
    eval_fn = jax.jit(masked_nll, static_argnums=1)
    checkpointer = Checkpointer(out, keep=2)
    writer = MetricsWriter(out, tensorboard=config.train.tensorboard)
    best = np.inf
    order = np.empty(0, np.int64)
    # a bar on a terminal; in a pipe or a SLURM log, a plain line per log interval (no \r)
    tty = progress and is_terminal(sys.stderr)
    bar = tqdm(range(pc.steps), desc="Pretraining", disable=not tty, dynamic_ncols=True)
    for i in bar:
        if len(order) < pc.batch_size:
            order = np.concatenate([order, rng.permutation(len(data))])
        batch, order = data[order[:pc.batch_size]], order[pc.batch_size:]
        # cut to the longest theory of the batch, rounded up to 32 positions (few compiles)
        longest = int((batch != V.PAD).sum(1).max())
        width = min(mc.max_len, -(-longest // 32) * 32)
        state, metrics = step_fn(state, tables, jnp.asarray(batch[:, :width]))
        done = i + 1
        if done % pc.log_interval == 0 or done == pc.steps:
            _, held = eval_fn(state.params, mc, tables, jnp.asarray(held_out))
            record = {**jax.device_get(metrics), **{f"eval_{k}": v for k, v in jax.device_get(held).items()}}
            record = {k: float(v) for k, v in record.items()}
            writer.write(done, record)
            bar.set_postfix(nll=f"{record['nll']:.3f}", eval_nll=f"{record['eval_nll']:.3f}")
            if progress and not tty:
                log(f"step {done}/{pc.steps} | nll {record['nll']:.3f} | held-out nll "
                    f"{record['eval_nll']:.3f}")
            payload = {"params": state.params, "opt_state": state.opt_state, "step": state.step}
            improved = record["eval_nll"] < best
            if improved or done % pc.save_interval == 0 or done == pc.steps:
                checkpointer.save(done, payload, {"config": config.to_dict(), **record}, best=improved)
                best = min(best, record["eval_nll"])
    writer.close()
    plot_metrics(out / "metrics.jsonl", out / "plots")
    log(f"pretraining done: held-out NLL {best:.4f} per token; policy in {out / 'checkpoints'}")
    return state


# ---------------------------------------------------------------------------
# Command line: theorygrpo-pretrain, python -m theorygrpo_jax.pretrain, scripts/pretrain.py

CLI_USAGE = """Supervised pretraining on the textbook + synthetic corpus:

    theorygrpo-pretrain [--config pretrain] [--output_dir DIR] [--steps N] [--set SECTION.KEY=VALUE]

--config takes a YAML file or the name of a packaged config (default, smoke, pretrain, ...).
Then train from it:  theorygrpo-train --config default --checkpoint DIR
"""


def main(argv: list[str] | None = None) -> int:
    """`theorygrpo-pretrain`: pretrain into a run directory (default runs/<config>-<timestamp>)."""
    import argparse   # imports here keep the command line apart from the library above
    from datetime import datetime

    from .cli import add_set_flag, set_overrides, use_compilation_cache, user_errors
    from .config import load_config
    from .resources import config_path

    parser = argparse.ArgumentParser(prog="theorygrpo-pretrain", description=CLI_USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="pretrain",
                        help="a YAML file, or a packaged config's name (default: %(default)s)")
    parser.add_argument("--output_dir", help="run directory (default: runs/<config>-<timestamp>)")
    parser.add_argument("--steps", type=int, help="sets pretrain.steps")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in --output_dir (default: stop)")
    add_set_flag(parser)
    args = parser.parse_args(argv)
    use_compilation_cache()
    with user_errors():
        overrides = {"pretrain.steps": args.steps} if args.steps is not None else {}
        overrides.update(set_overrides(args.set))
        config = load_config(config_path(args.config), overrides)
        output = args.output_dir or Path("runs") / f"{Path(args.config).stem}-{datetime.now():%Y%m%d-%H%M%S}"
        pretrain(config, output, overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
