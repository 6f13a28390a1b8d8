"""Configs: the shipped files load, and bad input is a one-line ConfigError naming file and key."""

from pathlib import Path

import pytest

from theorygrpo_jax.config import (MAX_CONFIG_BYTES, MIN_TEMPERATURE, Config, ConfigError,
                                   config_from_dict, load_config)

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = load_config(path)
    assert config.reward.max_len == config.model.max_len


def test_round_trip(tmp_path):
    config = load_config(CONFIGS[0], {"grpo.group_size": 8, "train.use_curriculum": True})
    assert config.grpo.group_size == 8 and config.train.use_curriculum
    assert config_from_dict(config.to_dict()) == config


def _write(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def _assert_one_line_error(tmp_path, text, message):
    """Loading `text` as bad.yaml fails with one line: the file's path, then `message`."""
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    assert str(err.value).startswith(f"{tmp_path / 'bad.yaml'}{message}"), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text,message", [
    ("grpo:\n  group_sise: 8\n", ": unknown key 'grpo.group_sise': did you mean 'group_size'? "
                                 "(known: "),
    ("gpro:\n  group_size: 8\n", ": unknown section 'gpro'"),
    ("grpo:\n  group_size: eight\n", ": grpo.group_size: expected an integer, got 'eight'"),
    ("grpo:\n  group_size: 1\n", ": grpo: group_size must be >= 2"),
    ("grpo:\n  kl_estimator: k2\n", ": grpo: kl_estimator must be 'exact' or 'k3'"),
    ("model:\n  d_model: 30\n  n_heads: 4\n", ": model: ModelConfig.d_model=30 is not divisible"),
    ("train:\n  use_curriculum: maybe\n", ": train.use_curriculum: expected true or false"),
    ("grpo: [1, 2]\n", ": grpo: expected a mapping"),
    ("grpo:\n  group_size: 8\n bad", ":3: not valid YAML"),
    ("reward:\n  max_len: 64\n  soft_len: 32\n", ": reward.max_len (64) must equal model.max_len (128)"),
])
def test_bad_configs(tmp_path, text, message):
    _assert_one_line_error(tmp_path, text, message)


def test_missing_file():
    with pytest.raises(ConfigError, match="nope.yaml: cannot read config"):
        load_config("nope.yaml")


def test_defaults_are_consistent():
    assert Config().reward.max_len == Config().model.max_len


# ---------------------------------------------------------------------------
# Nonsense is an error, not silently accepted (issue 14)


@pytest.mark.parametrize("text,message", [
    ("grpo:\n  learning_rate: .inf\n", ": grpo.learning_rate: expected a finite number, got inf"),
    ("grpo:\n  learning_rate: .nan\n", ": grpo.learning_rate: expected a finite number, got nan"),
    ("grpo:\n  kl_coef: -.inf\n", ": grpo.kl_coef: expected a finite number, got -inf"),
    ("reward:\n  length_alpha: inf\n", ": reward.length_alpha: expected a finite number"),
    ("replay:\n  min_reward: 1e400\n", ": replay.min_reward: expected a finite number"),
    ("grpo:\n  temperature: 1.0e-30\n", ": grpo: temperature must be >= 0.001 (MIN_TEMPERATURE)"),
    ("grpo:\n  top_k: 131\n", ": grpo.top_k (131) is larger than the vocabulary"),
    ("train:\n  seed: 18446744073709551616\n", ": train: seed must be in 0..9223372036854775806"),
    ("train:\n  seed: -1\n", ": train: seed must be in 0..9223372036854775806"),
    ("pretrain:\n  seed: 9223372036854775807\n", ": pretrain: seed must be in 0.."),
    ("", ": empty config file (no sections)"),
    ("# comments only\n\n", ": empty config file (no sections)"),
    ("grpo:\n  group_size: 4\n  group_size: 8\n", ":3: not valid YAML (duplicate key 'group_size' "
                                                 "(first given on line 2))"),
    ("grpo:\n  group_size: 4\ngrpo:\n  top_k: 2\n", ":3: not valid YAML (duplicate key 'grpo'"),
])
def test_nonsense_is_rejected(tmp_path, text, message):
    _assert_one_line_error(tmp_path, text, message)


def test_non_finite_floats_of_a_config_built_in_python_name_the_key():
    from theorygrpo_jax.config import GRPOConfig
    with pytest.raises(ValueError, match="grpo.max_grad_norm must be a finite number, got inf"):
        Config(grpo=GRPOConfig(max_grad_norm=float("inf")))


def test_top_k_at_the_vocabulary_and_the_minimum_temperature_are_accepted(tmp_path):
    config = load_config(_write(tmp_path, "grpo:\n  top_k: 130\n  temperature: 0.001\n"))
    assert config.grpo.top_k == 130 and config.grpo.temperature == MIN_TEMPERATURE


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfgrpo:\n  group_size: 8\n")
    assert load_config(path).grpo.group_size == 8


@pytest.mark.parametrize("data,message", [
    (b"\xff\xfe\x00g\x00r\x00p\x00o", "not a config file: not UTF-8 text (byte 0)"),
    (b"grpo:\n  group_size: 8\x00\n", "not a config file: binary data (a NUL byte)"),
    (b"#" * (MAX_CONFIG_BYTES + 1), f"not a config file: larger than {MAX_CONFIG_BYTES} bytes"),
])
def test_files_that_are_not_configs_are_one_line_errors(tmp_path, data, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {message}"


def test_a_directory_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError, match=f"^{tmp_path}: cannot read config: Is a directory$"):
        load_config(tmp_path)


# ---------------------------------------------------------------------------
# TRL and Tunix names (issue 15): aliases, "did you mean", values without an equivalent

SMOKE = CONFIGS[0].parent / "smoke.yaml"


@pytest.mark.parametrize("alias,value,key,expected", [
    ("grpo.num_generations", 8, "group_size", 8),
    ("grpo.beta", 0.1, "kl_coef", 0.1),
    ("grpo.epsilon", 0.3, "clip_range", 0.3),
    ("grpo.epsilon_low", 0.3, "clip_range", 0.3),
    ("grpo.epsilon_high", 0.28, "clip_range_high", 0.28),
    ("grpo.num_iterations", 2, "inner_iterations", 2),
    ("grpo.loss_type", "grpo", "loss_aggregation", "sequence"),   # per-sequence mean, then mean
    ("grpo.loss_type", "bnpo", "loss_aggregation", "token"),      # mean over the batch's tokens
    ("grpo.loss_type", "dapo", "loss_aggregation", "token"),
    ("grpo.scale_rewards", False, "scale_by_std", False),
    ("grpo.scale_rewards", "group", "scale_by_std", True),
    ("grpo.adam_beta2", 0.99, "adam_b2", 0.99),
    ("train.max_steps", 7, "num_episodes", 7),
    ("train.logging_steps", 5, "log_interval", 5),
])
def test_trl_and_tunix_names_are_aliases_in_set_and_yaml(tmp_path, alias, value, key, expected):
    section, name = alias.split(".")
    by_set = load_config(SMOKE, {alias: value})               # overrides the file's own key
    assert getattr(getattr(by_set, section), key) == expected
    path = tmp_path / "trl.yaml"
    path.write_text(f"{section}:\n  {name}: {value!r}\n".replace("'", '"'))
    by_yaml = load_config(path)
    assert getattr(getattr(by_yaml, section), key) == expected


def test_set_beta_overrides_kl_coef_of_the_file():
    assert load_config(SMOKE, {"grpo.beta": 0.1}).grpo.kl_coef == 0.1


@pytest.mark.parametrize("text,message", [
    ("grpo:\n  beta: 0.1\n  kl_coef: 0.2\n",
     ": grpo.beta is the TRL/Tunix name of grpo.kl_coef, which is given too"),
    ("grpo:\n  kl_coeff: 0.1\n", ": unknown key 'grpo.kl_coeff': did you mean 'kl_coef'? (known: "),
    ("grpo:\n  betta: 0.1\n", ": unknown key 'grpo.betta': did you mean 'beta' (TRL/Tunix name of "
                             "kl_coef)? (known: "),
    ("train:\n  beta: 0.1\n", ": unknown key 'train.beta': beta (TRL/Tunix) is grpo.kl_coef here"),
    ("num_generations: 8\n", ": unknown section 'num_generations': num_generations (TRL/Tunix) "
                             "is grpo.group_size here"),
    ("grpo:\n  loss_type: dr_grpo\n", ": grpo.loss_type (TRL/Tunix name of grpo.loss_aggregation) "
                                      "'dr_grpo' has no equivalent here: we support loss_type grpo"),
    ("grpo:\n  scale_rewards: batch\n", ": grpo.scale_rewards (TRL/Tunix name of "
                                        "grpo.scale_by_std) 'batch' has no equivalent here"),
    ("grpo:\n  advantage_fn: 3\n", ": grpo: advantage_fn must be a function or its name"),
])
def test_alias_and_did_you_mean_messages(tmp_path, text, message):
    _assert_one_line_error(tmp_path, text, message)


def test_set_with_an_alias_value_without_equivalent_names_the_override():
    with pytest.raises(ConfigError, match="^override 'grpo.loss_type': grpo.loss_type .* 'dr_grpo' "
                                          "has no equivalent here"):
        load_config(SMOKE, {"grpo.loss_type": "dr_grpo"})


def test_every_alias_names_an_existing_key():
    import dataclasses as dc
    from theorygrpo_jax.config import ALIASES
    for (section, name), (ours, _) in ALIASES.items():
        fields = {f.name for f in dc.fields(type(getattr(Config(), section)))}
        assert ours in fields and name not in fields, (section, name)


def test_the_names_table_lists_every_alias():
    table = (CONFIGS[0].parents[1] / "docs" / "names.md").read_text()
    from theorygrpo_jax.config import ALIASES
    for (section, name), (ours, _) in ALIASES.items():
        assert f"`{name}`" in table and f"`{section}.{ours}`" in table, name


def test_param_sharding_is_replicated_or_fsdp(tmp_path):
    assert Config().train.param_sharding == "replicated"
    path = _write(tmp_path, "train:\n  param_sharding: fsdp\n")
    assert load_config(path).train.param_sharding == "fsdp"
    assert load_config(CONFIGS[0], {"train.param_sharding": "fsdp"}).train.param_sharding == "fsdp"
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, "train:\n  param_sharding: zero3\n"))
    assert str(err.value) == (f"{tmp_path / 'bad.yaml'}: train: param_sharding must be "
                              f"'replicated' or 'fsdp', got 'zero3'")


def test_an_empty_pretraining_corpus_is_refused():
    from theorygrpo_jax.config import PretrainConfig
    assert PretrainConfig(synthetic_theories=0, dark_u1_theories=5).dark_u1_theories == 5
    with pytest.raises(ValueError, match="corpus is empty"):
        PretrainConfig(synthetic_theories=0)
    with pytest.raises(ValueError, match="dark_u1_theories must be >= 0"):
        PretrainConfig(dark_u1_theories=-1)


def test_update_steps_below_zero_is_a_one_line_error(tmp_path):
    assert load_config(_write(tmp_path, "train:\n  update_steps: 0\n")).train.update_steps == 0
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, "train:\n  update_steps: -1\n"))
    assert str(err.value) == (f"{tmp_path / 'bad.yaml'}: train: update_steps must be >= 0 "
                              f"(or null: every step), got -1")
