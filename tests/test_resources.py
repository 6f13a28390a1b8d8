"""resources: the packaged configs and textbook theories, `--config NAME`, and the pyproject
settings that ship them (package data, entry points)."""

from __future__ import annotations

import fnmatch
import importlib
from pathlib import Path

import pytest

from theorygrpo_jax import resources
from theorygrpo_jax.config import Config, load_config

try:
    import tomllib     # Python >= 3.11; on 3.10 the two pyproject tests are skipped
except ImportError:
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text()) if tomllib else {}
needs_tomllib = pytest.mark.skipif(tomllib is None, reason="tomllib needs Python >= 3.11")
# What the checkout has at its documented paths (symlinks into theorygrpo_jax/data).
CHECKOUT_CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
CHECKOUT_THEORIES = sorted((ROOT / "examples" / "theories").glob("*.theory"))
CHECKOUT_ANOMALOUS = sorted((ROOT / "examples" / "theories" / "anomalous").glob("*.theory"))


def test_config_names_are_the_yaml_files():
    assert resources.config_names() == [p.stem for p in CHECKOUT_CONFIGS]
    assert {"default", "smoke", "pretrain", "from_scratch", "gpu", "original"} <= set(resources.config_names())


@pytest.mark.parametrize("name", [p.stem for p in CHECKOUT_CONFIGS])
def test_every_packaged_config_loads(name):
    packaged = resources.packaged_config(name)
    assert isinstance(load_config(packaged), Config)
    assert packaged.read_text() == (ROOT / "configs" / f"{name}.yaml").read_text()
    assert resources.packaged_config(f"{name}.yaml") == packaged


def test_config_path_prefers_a_file_then_a_packaged_name(tmp_path, monkeypatch):
    mine = tmp_path / "smoke.yaml"
    mine.write_text("train:\n  num_episodes: 1\n")
    assert resources.config_path(str(mine)) == mine          # an existing file is itself
    monkeypatch.chdir(tmp_path)
    assert resources.config_path("smoke.yaml") == Path("smoke.yaml")   # ./smoke.yaml exists: the file wins
    assert resources.config_path("smoke") == resources.packaged_config("smoke")   # no ./smoke: packaged
    assert resources.config_path("default") == resources.packaged_config("default")
    assert load_config(resources.config_path("smoke")).model.d_model == 32


@pytest.mark.parametrize("arg", ["nope", "nope.yaml", "elsewhere/smoke.yaml"])
def test_config_path_error_is_one_line_naming_the_argument(arg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        resources.config_path(arg)     # a path with a folder is never taken for a packaged name
    message = str(e.value)
    assert message.startswith(f"{arg}: no such config file") and "\n" not in message
    assert "smoke" in message and "default" in message       # says what is packaged


def test_textbook_theories_are_the_checkout_files():
    books = resources.textbook_theories()
    assert [name for name, _ in books] == [p.stem for p in CHECKOUT_THEORIES]
    assert len(books) >= 12 and {"sm", "su5_gut", "two_higgs_doublet"} <= {name for name, _ in books}
    assert all(source == (ROOT / "examples" / "theories" / f"{name}.theory").read_text() for name, source in books)
    counter = resources.textbook_theories(anomalous=True)
    assert [name for name, _ in counter] == [p.stem for p in CHECKOUT_ANOMALOUS]
    assert {"sm_no_e_r", "witten_single_doublet"} <= {name for name, _ in counter}


def test_theory_file():
    assert resources.theory_file("sm").read_text() == (ROOT / "examples" / "theories" / "sm.theory").read_text()
    assert resources.theory_file("sm.theory") == resources.theory_file("sm")
    assert resources.theory_file("sm_no_e_r", anomalous=True).is_file()
    with pytest.raises(FileNotFoundError, match="^sm_no_e_r: no packaged theory"):
        resources.theory_file("sm_no_e_r")       # a counter-example is not a textbook theory


@needs_tomllib
def test_package_data_globs_cover_every_data_file():
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["theorygrpo_jax"]
    package = ROOT / "theorygrpo_jax"
    files = [p.relative_to(package).as_posix() for p in (package / "data").rglob("*") if p.is_file()]
    assert files, "theorygrpo_jax/data is empty"
    missing = [f for f in files if not any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)]
    assert not missing, f"not shipped by pip install: {missing}"


@needs_tomllib
def test_entry_points_name_a_main():
    scripts = PYPROJECT["project"]["scripts"]
    assert {"theorygrpo-train", "theorygrpo-score", "theorygrpo-sample", "theorygrpo-pretrain",
            "theorygrpo-plot"} <= set(scripts)
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function, None)), f"{name} -> {target}"


def test_checkout_paths_are_symlinks_into_the_package():
    assert (ROOT / "configs").resolve() == (ROOT / "theorygrpo_jax" / "data" / "configs").resolve()
    assert (ROOT / "examples" / "theories").resolve() == (ROOT / "theorygrpo_jax" / "data" / "theories").resolve()
