"""Checkpointer: round trips, eviction, best_model, path resolution, crash leftovers, corrupt
checkpoints and the repairs a resume makes."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from theorygrpo_jax.checkpoint import (
    CheckpointError,
    Checkpointer,
    CorruptCheckpoint,
    load_checkpoint,
    load_latest,
    load_params,
    load_params_latest,
    resolve_checkpoint,
)


@flax.struct.dataclass
class Curriculum:
    phase: jax.Array
    successes: jax.Array


@flax.struct.dataclass
class State:
    params: dict
    ref_params: dict
    opt_state: optax.OptState
    step: jax.Array
    rng: jax.Array
    kl_coef: jax.Array
    curriculum: Curriculum
    buffer: dict


def make_params(seed: int, width: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    return {"embed": {"table": jnp.asarray(rng.normal(size=(7, width)), jnp.float32)},
            "dense": {"kernel": jnp.asarray(rng.normal(size=(width, 3)), jnp.float32),
                      "bias": jnp.zeros(3, jnp.float32)}}


@functools.lru_cache(maxsize=None)
def make_state(seed: int = 0, width: int = 4) -> State:
    """A small training state; built with numpy (no per-shape compiles) and cached."""
    params = make_params(seed, width)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    # Shift every optimizer leaf (count, mu, nu) so the state differs per seed.
    opt_state = jax.tree.map(lambda x: jnp.asarray(np.asarray(x) + seed + 1), tx.init(params))
    return State(
        params=params,
        ref_params=jax.tree.map(lambda p: jnp.asarray(np.asarray(p) * 2.0), params),
        opt_state=opt_state,
        step=jnp.asarray(seed * 10, jnp.int32),
        rng=jnp.asarray(np.array([seed, 2**32 - 1 - seed], np.uint32)),   # a key's uint32[2] data
        kl_coef=jnp.asarray(0.05 * (seed + 1), jnp.float32),
        curriculum=Curriculum(phase=jnp.asarray(seed % 3, jnp.int32),
                              successes=jnp.asarray(np.arange(5, dtype=np.int32) * seed)),
        buffer={"tokens": jnp.asarray(np.full((4, 6), seed, np.int32)),
                "rewards": jnp.asarray(np.linspace(0.0, 1.0, 4, dtype=np.float32) + seed)},
    )


def assert_trees_equal(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_exact(tmp_path: Path) -> None:
    state = make_state(3)
    ck = Checkpointer(tmp_path)
    meta = {"config": {"lr": 1e-4, "group_size": 8}, "stats": {"rewards": [1.5, np.float32(2.5)]},
            "best_reward": np.float64(3.25)}
    path = ck.save(30, state, meta)
    assert path == tmp_path / "checkpoints" / "30"
    restored, restored_meta = ck.restore(make_state(0))
    assert isinstance(restored, State) and isinstance(restored.curriculum, Curriculum)
    assert restored.rng.dtype == jnp.uint32
    assert_trees_equal(restored, state)
    assert restored_meta == {"config": {"lr": 1e-4, "group_size": 8},
                             "stats": {"rewards": [1.5, 2.5]}, "best_reward": 3.25}


def test_keep_n_latest_and_specific_step(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, keep=2)
    assert ck.latest_step() is None
    for step in (1, 2, 3):
        ck.save(step, make_state(step), {"step": step})
    assert ck.all_steps() == [2, 3]
    assert ck.latest_step() == 3
    assert not (tmp_path / "checkpoints" / "1").exists()
    state, meta = ck.restore(make_state(0), 2)
    assert meta == {"step": 2}
    assert_trees_equal(state, make_state(2))
    with pytest.raises(CheckpointError, match="no checkpoint for step 1"):
        ck.restore(make_state(0), 1)


def test_best_model_is_replaced(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, keep=1)
    with pytest.raises(CheckpointError, match="no best checkpoint"):
        ck.restore(make_state(0), "best")
    ck.save(1, make_state(1), {"reward": 1.0}, best=True)
    ck.save(2, make_state(2), {"reward": 0.5})
    ck.save(3, make_state(3), {"reward": 2.0}, best=True)
    ck.save(4, make_state(4), {"reward": 0.1})
    state, meta = ck.restore(make_state(0), "best")
    assert meta == {"reward": 2.0}
    assert_trees_equal(state, make_state(3))
    assert ck.all_steps() == [4]
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["4", "best_model"]


def test_save_same_step_again_replaces_it(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path)
    ck.save(5, make_state(1), {"v": 1})
    ck.save(5, make_state(2), {"v": 2})
    state, meta = ck.restore(make_state(0), 5)
    assert meta == {"v": 2}
    assert_trees_equal(state, make_state(2))


def test_resolve_checkpoint_each_kind_of_path(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path)
    ck.save(1, make_state(1), {})
    ck.save(2, make_state(2), {}, best=True)
    checkpoints = tmp_path / "checkpoints"
    assert resolve_checkpoint(tmp_path) == checkpoints / "2"
    assert resolve_checkpoint(checkpoints) == checkpoints / "2"
    assert resolve_checkpoint(checkpoints / "1") == checkpoints / "1"
    assert resolve_checkpoint(checkpoints / "best_model") == checkpoints / "best_model"
    assert resolve_checkpoint(str(tmp_path)) == checkpoints / "2"
    state, _ = load_checkpoint(checkpoints / "1", make_state(0))
    assert_trees_equal(state, make_state(1))


def test_missing_or_empty_path_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(tmp_path / "nope")
    assert "nope" in str(err.value) and "no such file" in str(err.value)
    assert "\n" not in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        load_checkpoint(tmp_path / "empty", make_state(0))
    assert issubclass(CheckpointError, ValueError)


def test_load_params_from_a_different_structure(tmp_path: Path) -> None:
    params = make_params(7)
    ck = Checkpointer(tmp_path / "pretrain")
    ck.save(100, {"params": params, "step": jnp.array(100)}, {"kind": "pretrain"})
    loaded = load_params(tmp_path / "pretrain", make_params(0))
    assert_trees_equal(loaded, params)
    # The full state of another run also gives just its params.
    Checkpointer(tmp_path / "grpo").save(3, make_state(3), {})
    assert_trees_equal(load_params(tmp_path / "grpo", make_params(0)), make_state(3).params)


def test_shape_mismatch_names_parameter_and_shapes(tmp_path: Path) -> None:
    Checkpointer(tmp_path).save(1, make_state(1, width=4), {})
    with pytest.raises(CheckpointError) as err:
        load_params(tmp_path, make_params(0, width=5))
    message = str(err.value)
    assert "params/dense/kernel" in message or "params/embed/table" in message
    assert "(4, 3)" in message or "(7, 4)" in message
    assert "(5, 3)" in message or "(7, 5)" in message
    assert "\n" not in message
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(tmp_path, make_state(0, width=5))


def test_load_params_missing_parameter_and_no_params(tmp_path: Path) -> None:
    Checkpointer(tmp_path / "a").save(1, {"params": {"dense": make_params(1)["dense"]}}, {})
    with pytest.raises(CheckpointError, match="no parameter 'params/embed/table'"):
        load_params(tmp_path / "a", make_params(0))
    bigger = {"params": {**make_params(1), "head": {"kernel": jnp.ones((4, 2))}}}
    Checkpointer(tmp_path / "c").save(1, bigger, {})
    with pytest.raises(CheckpointError, match="'params/head/kernel' that the target lacks"):
        load_params(tmp_path / "c", make_params(0))
    Checkpointer(tmp_path / "b").save(1, {"weights": make_params(1)}, {})
    with pytest.raises(CheckpointError, match="no 'params'"):
        load_params(tmp_path / "b", make_params(0))


def test_structure_mismatch_is_a_checkpoint_error(tmp_path: Path) -> None:
    Checkpointer(tmp_path).save(1, {"params": make_params(1), "step": jnp.array(1)}, {})
    with pytest.raises(CheckpointError, match="has no state entry"):
        load_checkpoint(tmp_path, make_state(0))


def test_crash_leftovers_are_ignored_and_cleaned(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path)
    ck.save(1, make_state(1), {"step": 1})
    checkpoints = tmp_path / "checkpoints"
    # A save of step 2 killed before its rename: orbax's tmp dir is left behind.
    shutil.copytree(checkpoints / "1", checkpoints / "2.orbax-checkpoint-tmp")
    (checkpoints / "2.orbax-checkpoint-tmp" / "commit_success.txt").unlink()
    # A step directory without its commit marker (e.g. a half-copied run).
    shutil.copytree(checkpoints / "1", checkpoints / "3")
    (checkpoints / "3" / "commit_success.txt").unlink()
    assert ck.all_steps() == [1] and ck.latest_step() == 1
    assert resolve_checkpoint(tmp_path) == checkpoints / "1"
    state, meta = load_checkpoint(tmp_path, make_state(0))
    assert meta == {"step": 1}
    assert_trees_equal(state, make_state(1))
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        resolve_checkpoint(checkpoints / "3")
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        resolve_checkpoint(checkpoints / "2.orbax-checkpoint-tmp")
    # The next writer removes the tmp dir and overwrites the incomplete step.
    ck = Checkpointer(tmp_path)
    assert not (checkpoints / "2.orbax-checkpoint-tmp").exists()
    ck.save(3, make_state(3), {"step": 3})
    assert ck.all_steps() == [1, 3]
    assert_trees_equal(ck.restore(make_state(0))[0], make_state(3))


def test_interrupted_best_model_swap_is_recovered(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path)
    ck.save(1, make_state(1), {"step": 1}, best=True)
    ck.save(2, make_state(2), {"step": 2, "nan": float("nan")})
    checkpoints = tmp_path / "checkpoints"
    best = checkpoints / "best_model"
    # Crash after the replacement was written, before the swap: the replacement wins.
    shutil.copytree(checkpoints / "2", checkpoints / "best_model.next")
    Checkpointer(tmp_path)
    state, meta = load_checkpoint(best, make_state(0))
    assert_trees_equal(state, make_state(2))
    assert meta["step"] == 2 and np.isnan(meta["nan"])
    # Crash between the two renames: best_model.old and best_model.next, no best_model.
    best.rename(checkpoints / "best_model.old")
    shutil.copytree(checkpoints / "1", checkpoints / "best_model.next")
    Checkpointer(tmp_path)
    assert load_checkpoint(best, make_state(0))[1] == {"step": 1}
    # Crash after the swap, before the old copy was removed.
    shutil.copytree(checkpoints / "2", checkpoints / "best_model.old")
    Checkpointer(tmp_path)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["1", "2", "best_model"]
    assert load_checkpoint(best, make_state(0))[1] == {"step": 1}
    # Only best_model.old is left: it is put back.
    best.rename(checkpoints / "best_model.old")
    Checkpointer(tmp_path)
    assert load_checkpoint(best, make_state(0))[1] == {"step": 1}


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep"):
        Checkpointer(tmp_path, keep=0)
    ck = Checkpointer(tmp_path)
    with pytest.raises(TypeError, match="not JSON serialisable"):
        ck.save(1, make_state(1), {"bad": object()})
    assert ck.latest_step() is None
    with pytest.raises(CheckpointError, match="selector"):
        ck.restore(make_state(0), "newest")


def test_relative_run_directory(tmp_path, monkeypatch):
    # `make train` writes to runs/<name>: a relative path (orbax itself wants absolute ones)
    monkeypatch.chdir(tmp_path)
    state = {"params": {"w": np.arange(3, dtype=np.float32)}, "step": np.array(2, np.int32)}
    Checkpointer("runs/rel", keep=1).save(2, state, {"note": "relative"})
    restored, meta = load_checkpoint("runs/rel", state)
    np.testing.assert_array_equal(restored["params"]["w"], state["params"]["w"])
    assert meta["note"] == "relative"
    np.testing.assert_array_equal(load_params("runs/rel/checkpoints/2", state["params"])["w"],
                                  state["params"]["w"])


# ---------------------------------------------------------------------------
# Crash safety of best_model, corrupt checkpoints and resume repairs (issue 14)


def _corrupt(checkpoint: Path) -> None:
    """Truncate every data file of a checkpoint's state (a torn write)."""
    for data in (checkpoint / "state" / "d").iterdir():
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


def test_best_model_is_a_copy_of_the_step_and_survives_its_eviction(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path, keep=1)
    ck.save(1, make_state(1), {"step": 1}, best=True)
    ck.save(2, make_state(2), {"step": 2})
    assert ck.all_steps() == [2]
    state, meta = ck.restore(make_state(0), "best")
    assert meta == {"step": 1}
    assert_trees_equal(state, make_state(1))


def test_an_interrupted_best_copy_keeps_the_previous_best(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path)
    ck.save(1, make_state(1), {"step": 1}, best=True)
    ck.save(2, make_state(2), {"step": 2})
    checkpoints = tmp_path / "checkpoints"
    # killed while copying step 2 into best_model's replacement: a tmp dir is left
    shutil.copytree(checkpoints / "2", checkpoints / "best_model.next.orbax-checkpoint-tmp")
    Checkpointer(tmp_path)
    assert not (checkpoints / "best_model.next.orbax-checkpoint-tmp").exists()
    assert load_checkpoint(checkpoints / "best_model", make_state(0))[1] == {"step": 1}


def test_repair_best_restores_the_best_step_a_crash_left_behind(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path)
    ck.save(1, make_state(1), {"step": 1}, best=True)
    ck.save(2, make_state(2), {"step": 2, "best_step": 2})   # killed before its best copy
    messages = []
    ck.repair_best(2, warn=messages.append)
    state, meta = ck.restore(make_state(0), "best")
    assert meta["step"] == 2 and len(messages) == 1 and "best_model" in messages[0]
    assert_trees_equal(state, make_state(2))
    ck.repair_best(2, warn=messages.append)                  # nothing to do now
    assert len(messages) == 1


def test_a_step_swap_cut_between_its_renames_is_finished_before_reading(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path)
    ck.save(1, make_state(1), {"step": 1})
    ck.save(2, make_state(2), {"step": 2})
    checkpoints = tmp_path / "checkpoints"
    # step 2 saved again, killed between the two renames: 2.old and 2.next, no 2
    shutil.copytree(checkpoints / "2", checkpoints / "2.next")
    (checkpoints / "2").rename(checkpoints / "2.old")
    assert resolve_checkpoint(tmp_path) == checkpoints / "1"   # a plain reader would go back
    Checkpointer(tmp_path)                                     # a resume repairs first
    assert resolve_checkpoint(tmp_path) == checkpoints / "2"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["1", "2"]


def test_load_latest_falls_back_over_a_corrupt_newest_naming_the_file(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path)
    for step in (1, 2, 3):
        ck.save(step, make_state(step), {"step": step})
    _corrupt(tmp_path / "checkpoints" / "3")
    messages = []
    state, meta, path, skipped = load_latest(tmp_path, make_state(0), warn=messages.append)
    assert meta == {"step": 2} and path.name == "2" and [p.name for p in skipped] == ["3"]
    assert_trees_equal(state, make_state(2))
    assert len(messages) == 1 and "\n" not in messages[0]
    assert messages[0].startswith(f"warning: {tmp_path / 'checkpoints' / '3' / 'state'}")
    assert "falling back to step 2" in messages[0]
    assert_trees_equal(load_params_latest(tmp_path, make_params(0), warn=messages.append),
                       make_state(2).params)
    # the corrupt step named explicitly: one line naming it, no fallback
    with pytest.raises(CorruptCheckpoint) as err:
        load_checkpoint(tmp_path / "checkpoints" / "3", make_state(0))
    assert str(err.value).startswith(str(tmp_path / "checkpoints" / "3")) and "\n" not in str(err.value)
    # garbage metadata is corrupt too
    (tmp_path / "checkpoints" / "2" / "metadata" / "metadata").write_bytes(b"\x00\xff garbage")
    with pytest.raises(CorruptCheckpoint, match="metadata"):
        load_checkpoint(tmp_path / "checkpoints" / "2", make_state(0))
    assert load_latest(tmp_path, make_state(0), warn=messages.append)[2].name == "1"


def test_no_intact_checkpoint_is_one_line(tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path)
    ck.save(1, make_state(1), {})
    _corrupt(tmp_path / "checkpoints" / "1")
    with pytest.raises(CorruptCheckpoint, match="no intact checkpoint") as err:
        load_latest(tmp_path, make_state(0), warn=lambda _: None)
    assert "\n" not in str(err.value)


def test_discard_after_sets_corrupt_checkpoints_aside_and_removes_a_discarded_future(
        tmp_path: Path) -> None:
    ck = Checkpointer(tmp_path)
    for step in (1, 2, 3):
        ck.save(step, make_state(step), {"step": step})
    checkpoints = tmp_path / "checkpoints"
    gone = ck.discard_after(1, corrupt=[checkpoints / "3"])
    assert [p.name for p in gone] == ["2", "3"]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["1", "3.corrupt"]
    assert ck.all_steps() == [1]
