"""Configs: the shipped files load, and bad input is a one-line ConfigError naming file and key."""

from pathlib import Path

import pytest

from theorygrpo_jax.config import Config, ConfigError, config_from_dict, load_config

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


@pytest.mark.parametrize("text,message", [
    ("grpo:\n  group_sise: 8\n", ": unknown key 'grpo.group_sise' (known: "),
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
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    assert str(err.value).startswith(f"{tmp_path / 'bad.yaml'}{message}"), str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="nope.yaml: cannot read config"):
        load_config("nope.yaml")


def test_defaults_are_consistent():
    assert Config().reward.max_len == Config().model.max_len
