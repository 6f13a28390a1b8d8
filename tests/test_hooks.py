"""Hooks: reward.extra terms and grpo.advantage_fn named "package.module:function" (YAML, --set)
or given as functions (Python); resolution errors in one line; config.yaml round trips; the
compile cache keyed on the functions; each extra term logged."""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from theorygrpo_jax import grpo, hooks
from theorygrpo_jax import train as T
from theorygrpo_jax.config import (Config, ConfigError, GRPOConfig, RewardConfig, config_from_dict,
                                   load_config, save_config)
from theorygrpo_jax.grammar import text
from theorygrpo_jax.physics.record import tokens_to_ids
from theorygrpo_jax.resources import packaged_config, theory_file
from theorygrpo_jax.reward import score_batch

# --------------------------------------------------------------------------- hooks the tests name

ADVANTAGE_TRACES: list[int] = []   # group sizes `centred_twice` was traced with


def n_vev_scalars(rec):
    """reward.extra term: the scalars with a VEV."""
    return jnp.sum(rec.has_vev).astype(jnp.float32)


def centred_twice(rewards, group_size, scale_by_std, eps):
    """grpo.advantage_fn: twice the reward minus its group's mean (no std scaling)."""
    ADVANTAGE_TRACES.append(group_size)
    grouped = rewards.reshape(-1, group_size)
    return 2.0 * (grouped - grouped.mean(axis=1, keepdims=True)).reshape(-1)


def one_per_group(rewards, group_size, scale_by_std, eps):
    """A broken advantage_fn: one value per group, not per theory."""
    return rewards.reshape(-1, group_size).mean(axis=1)


NOT_A_FUNCTION = 3

HOOKS = {"reward.extra": [{"name": "vev_scalars", "weight": 0.5,
                           "fn": "tests.test_hooks:n_vev_scalars"}],
         "grpo.advantage_fn": "tests.test_hooks:centred_twice"}


def smoke(**overrides):
    return load_config(packaged_config("smoke"), {**HOOKS, **overrides})


# --------------------------------------------------------------------------- resolution


@pytest.mark.parametrize("name,message", [
    ("grpo", "'grpo': expected \"package.module:function\""),
    ("nope_module_xyz:f", "no module named 'nope_module_xyz'"),
    ("tests.test_hooks:missing", "module 'tests.test_hooks' has no attribute 'missing'"),
    ("tests.test_hooks:NOT_A_FUNCTION", "is not callable (a int)"),
    ("tests.test_hooks:centred_twice.x", "'tests.test_hooks:centred_twice' has no attribute 'x'"),
])
def test_resolution_errors_are_one_line_naming_the_key(name, message):
    with pytest.raises(hooks.HookError) as err:
        hooks.resolve(name, "grpo.advantage_fn")
    assert str(err.value).startswith("grpo.advantage_fn: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_module_that_fails_to_import_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "broken_hooks_mod.py").write_text("raise RuntimeError('boom\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(hooks.HookError, match=r"importing 'broken_hooks_mod' failed: "
                                              r"RuntimeError: boom second line$"):
        hooks.resolve("broken_hooks_mod:f", "k")


def test_modules_in_the_current_directory_are_found(tmp_path, monkeypatch):
    (tmp_path / "cwd_hooks_mod.py").write_text("def f(rec):\n    return 1.0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert hooks.resolve("cwd_hooks_mod:f", "k")(None) == 1.0


def test_yaml_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("grpo:\n  advantage_fn: tests.test_hooks:missing\n")
    with pytest.raises(ConfigError, match=rf"^{path}: grpo.advantage_fn: 'tests.test_hooks:missing'"):
        load_config(path)
    path.write_text("reward:\n  extra:\n  - {name: a, weight: 1, fn: nope_module_xyz:f}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: reward.extra\[0\].fn: .*no module"):
        load_config(path)
    path.write_text("reward:\n  extra:\n  - {name: a, fn: tests.test_hooks:n_vev_scalars}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: reward.extra\[0\]: expected the keys name, weight, fn; "
                                          r"missing \['weight'\]"):
        load_config(path)


# --------------------------------------------------------------------------- config round trips


def test_hooks_from_yaml_and_from_python_are_the_same_config(tmp_path):
    from_yaml = smoke()
    assert from_yaml.reward.extra == (("vev_scalars", 0.5, n_vev_scalars),)
    assert from_yaml.grpo.advantage_fn is centred_twice
    base = load_config(packaged_config("smoke"))
    from_python = dataclasses.replace(
        base, reward=dataclasses.replace(base.reward, extra=(("vev_scalars", 0.5, n_vev_scalars),)),
        grpo=dataclasses.replace(base.grpo, advantage_fn=centred_twice))
    assert from_python == from_yaml and hash(from_python) == hash(from_yaml)
    assert from_python.hooks() == (n_vev_scalars, centred_twice)
    saved = from_python.to_dict()
    assert saved["reward"]["extra"] == [{"name": "vev_scalars", "weight": 0.5,
                                         "fn": "tests.test_hooks:n_vev_scalars"}]
    assert saved["grpo"]["advantage_fn"] == "tests.test_hooks:centred_twice"
    save_config(from_python, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == from_python
    assert config_from_dict(json.loads(json.dumps(saved))) == from_python   # checkpoint metadata


def test_default_config_has_no_hooks():
    assert Config().grpo.advantage_fn is None and Config().hooks() == ()
    assert Config().to_dict()["grpo"]["advantage_fn"] is None


def _local_function():
    def inner(rec):
        return 0.0
    return inner


@pytest.mark.parametrize("fn,what", [(lambda rec: 0.0, "<lambda>"), (_local_function(), "<locals>")])
def test_functions_without_a_loadable_name_fail_when_saved(tmp_path, fn, what):
    config = Config(reward=RewardConfig(extra=(("x", 1.0, fn),)))   # usable in this process
    with pytest.raises(hooks.HookError) as err:
        save_config(config, tmp_path / "config.yaml")
    message = str(err.value)
    assert message.startswith("reward.extra[0].fn: tests.test_hooks:") and what in message
    assert "cannot be loaded back from config.yaml" in message and "\n" not in message
    assert not (tmp_path / "config.yaml").exists()


def test_main_functions_are_saved_with_a_warning_and_load_only_in_their_process(
        tmp_path, monkeypatch):
    def notebook_bonus(rec):
        return jnp.float32(1.0)
    notebook_bonus.__module__, notebook_bonus.__qualname__ = "__main__", "notebook_bonus"
    monkeypatch.setattr(sys.modules["__main__"], "notebook_bonus", notebook_bonus, raising=False)
    config = Config(reward=RewardConfig(extra=(("bonus", 1.0, notebook_bonus),)))
    with pytest.warns(UserWarning, match="__main__:notebook_bonus, defined in __main__"):
        save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config          # this process: loads
    monkeypatch.delattr(sys.modules["__main__"], "notebook_bonus")  # another process
    with pytest.raises(ConfigError, match="defined in a notebook or script .__main__. that is not "
                                          "this process: move it into a module file"):
        load_config(tmp_path / "config.yaml")


# --------------------------------------------------------------------------- the hooks' values


def test_an_extra_term_from_yaml_enters_the_total():
    config = smoke().reward
    tokens = tokens_to_ids([text.load_theory(theory_file("sm"))], 128)
    sm_config = dataclasses.replace(config, max_len=128, soft_len=100)   # no length penalty
    out = score_batch(tokens, sm_config)
    # The SM: anomaly free, no invalid term, no exotic: every built-in component is 0; one
    # scalar (the Higgs) has a VEV, so vev_scalars = 1 and total = 0.5 x 1.
    assert float(out["vev_scalars"][0]) == 1.0
    assert float(out["total_reward"][0]) == 0.5


def _reference_centred_twice(rewards: list[float], group: int) -> list[float]:
    out = []
    for start in range(0, len(rewards), group):
        chunk = rewards[start:start + group]
        mean = sum(chunk) / len(chunk)
        out.extend(2.0 * (r - mean) for r in chunk)
    return out


def test_custom_advantages_equal_a_plain_python_reference_on_random_rewards():
    rng = np.random.default_rng(0)
    config = GRPOConfig(group_size=4)
    fn = jax.jit(lambda r: grpo.custom_advantages(centred_twice, r, config))
    for _ in range(3000):
        rewards = rng.normal(0, rng.choice([0.1, 1.0, 10.0]), 12).astype(np.float32)
        got = np.asarray(fn(jnp.asarray(rewards)))
        want = _reference_centred_twice([float(r) for r in rewards], 4)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_an_advantage_fn_of_the_wrong_shape_is_one_line():
    with pytest.raises(ValueError, match=r"^grpo.advantage_fn tests.test_hooks:one_per_group "
                                         r"returned shape \(2,\) for rewards of shape \(8,\)"):
        grpo.custom_advantages(one_per_group, jnp.zeros(8), GRPOConfig(group_size=4))


# --------------------------------------------------------------------------- training


def test_a_run_logs_each_extra_term_uses_the_advantage_hook_and_reloads(tmp_path):
    config = smoke(**{"train.num_episodes": 2})
    ADVANTAGE_TRACES.clear()
    T.train(config, tmp_path, log=lambda _: None)
    assert ADVANTAGE_TRACES and set(ADVANTAGE_TRACES) == {4}   # traced into the step
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all("vev_scalars" in r and "total_reward" in r for r in records)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["grpo"]["advantage_fn"] == "tests.test_hooks:centred_twice"
    assert load_config(tmp_path / "config.yaml") == config


def test_the_rollout_uses_the_advantage_hook():
    config = smoke()
    state, inputs, fns = T.place(config, T.init_state(config))
    prompts, lengths = inputs.prompt_tokens[[0] * 8], inputs.prompt_len[[0] * 8]
    _, batch, metrics, _, scores = fns.rollout(state, inputs.tables, prompts, lengths)
    rewards = [float(r) for r in np.asarray(scores["total_reward"])]   # no curriculum, no bonus
    np.testing.assert_allclose(np.asarray(batch.advantages), _reference_centred_twice(rewards, 4),
                               rtol=1e-5, atol=1e-5)
    assert float(metrics["vev_scalars"]) == pytest.approx(
        float(np.mean(np.asarray(scores["vev_scalars"]))))


def test_a_second_run_with_a_redefined_hook_uses_the_new_function(tmp_path, monkeypatch):
    """A notebook edits its hooks module and reloads it: the same config text now names new
    function objects, and the step is compiled again for them."""
    monkeypatch.syspath_prepend(str(tmp_path))
    module = tmp_path / "notebook_hooks_mod.py"

    def write(bonus: float, scale: float) -> None:
        module.write_text(textwrap.dedent(f"""
            import jax.numpy as jnp
            def bonus(rec):
                return jnp.float32({bonus})
            def advantage(rewards, group_size, scale_by_std, eps):
                return {scale} * (rewards - rewards.mean())
        """))

    names = {"reward.extra": [{"name": "bonus", "weight": 1.0, "fn": "notebook_hooks_mod:bonus"}],
             "grpo.advantage_fn": "notebook_hooks_mod:advantage"}
    results = []
    for bonus, scale in ((1.0, 1.0), (2.0, 3.0)):
        write(bonus, scale)
        if "notebook_hooks_mod" in sys.modules:
            importlib.reload(sys.modules["notebook_hooks_mod"])
        config = load_config(packaged_config("smoke"), names)
        state, inputs, fns = T.place(config, T.init_state(config))
        assert T.step_functions(config) is fns                     # built once per config
        _, batch, metrics, _, scores = fns.rollout(state, inputs.tables,
                                                   inputs.prompt_tokens[[0] * 8],
                                                   inputs.prompt_len[[0] * 8])
        results.append((config, fns, float(metrics["bonus"]), np.asarray(batch.advantages),
                        np.asarray(scores["total_reward"])))
    (first, first_fns, *_), (second, second_fns, *_) = results
    assert first.to_dict() == second.to_dict() and first != second   # same names, new functions
    assert first_fns is not second_fns
    assert [r[2] for r in results] == [1.0, 2.0]
    for _, _, _, advantages, total in results[1:]:
        np.testing.assert_allclose(advantages, 3.0 * (total - total.mean()), rtol=1e-5, atol=1e-5)


def test_replacing_group_advantages_recompiles_the_step(monkeypatch):
    """Without a hook, the step calls grpo.group_advantages as it is when the step is built."""
    config = load_config(packaged_config("smoke"))
    before = T.step_functions(config)
    monkeypatch.setattr(grpo, "group_advantages",
                        lambda rewards, group_size, scale_by_std, eps: jnp.zeros_like(rewards))
    assert T.step_functions(config) is not before
    monkeypatch.undo()
    assert T.step_functions(config) is before


def test_a_hook_module_that_imports_a_missing_module_says_so(tmp_path, monkeypatch):
    (tmp_path / "needs_missing_mod.py").write_text("import missing_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(hooks.HookError, match=r"^k: 'needs_missing_mod:f': importing "
                                              r"'needs_missing_mod' failed: no module named "
                                              r"'missing_dependency_xyz'$"):
        hooks.resolve("needs_missing_mod:f", "k")


def test_an_extra_given_as_a_yaml_list_is_an_entry(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("reward:\n  extra:\n  - [vev_scalars, 0.5, 'tests.test_hooks:n_vev_scalars']\n")
    assert load_config(path).reward.extra == (("vev_scalars", 0.5, n_vev_scalars),)
