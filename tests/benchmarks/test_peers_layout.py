"""The PyTorch peers stay optional: nothing in the library or the tests (except
tests/benchmarks/peers*) imports torch, transformers or trl; `benchmarks.peers` imports without
them; the main install and `make` never install them; the script says what is missing on one
line. Runs without torch (no test here imports it)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEER_MODULES = {"torch", "transformers", "trl", "datasets", "accelerate", "tokenizers"}
# benchmarks.peers modules that may be imported without torch
TORCH_FREE = {"__init__", "grammar_tables", "update_parts", "figure"}


def _top_level_imports(path: Path) -> set[str]:
    """First components of the absolute modules `path` imports anywhere (relative ones skipped)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def _relative_imports(path: Path) -> set[str]:
    """Names of the sibling modules `path` imports with `from .x import ...` / `from . import x`."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(alias.name for alias in node.names)
    return out


def _peers_test(path: Path) -> bool:
    """Under tests/benchmarks/peers* (the torch tests, skipped without torch)."""
    parts = path.relative_to(ROOT / "tests").parts
    return len(parts) > 2 and parts[0] == "benchmarks" and parts[1].startswith("peers")


def test_library_and_tests_never_import_the_peers():
    paths = [*(ROOT / "theorygrpo_jax").rglob("*.py"),
             *(p for p in (ROOT / "tests").rglob("*.py") if not _peers_test(p))]
    assert ROOT / "tests" / "benchmarks" / "test_peers_layout.py" in paths
    for path in paths:
        bad = _top_level_imports(path) & PEER_MODULES
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_no_other_benchmark_imports_the_peers():
    for path in (ROOT / "benchmarks").glob("*.py"):
        bad = _top_level_imports(path) & PEER_MODULES
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
        assert "peers" not in _relative_imports(path), path.relative_to(ROOT)


def test_torch_free_peer_modules_import_no_torch_module():
    """The package's __init__ and the numpy/JAX helpers import torch neither directly nor
    through a sibling (so `import benchmarks.peers` works in the main install)."""
    peers = ROOT / "benchmarks" / "peers"
    for name in TORCH_FREE:
        path = peers / f"{name}.py"
        assert not _top_level_imports(path) & PEER_MODULES, name
        assert _relative_imports(path) <= TORCH_FREE, (name, _relative_imports(path))


def test_importing_the_package_loads_no_peer():
    code = ("import sys, benchmarks.peers, benchmarks.peers.grammar_tables, "
            "benchmarks.peers.update_parts; "
            f"loaded = sorted(m for m in {sorted(PEER_MODULES)!r} if m in sys.modules); "
            "assert not loaded, loaded")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr


def test_the_main_install_and_make_never_install_the_peers():
    tomllib = pytest.importorskip("tomllib")   # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not {d.split(">")[0].split("=")[0].split("[")[0].strip()
                for d in project["dependencies"] + project["optional-dependencies"]["test"]} \
        & PEER_MODULES
    assert set(project["optional-dependencies"]["peers"]) and all(
        d.split(">")[0].strip() in PEER_MODULES for d in project["optional-dependencies"]["peers"])
    assert "peers" not in (ROOT / "Makefile").read_text()
    assert ".venv-peers/" in (ROOT / ".gitignore").read_text().split()


def _script(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_peers.py"), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_script_starts_from_another_directory(tmp_path):
    proc = _script("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:")


def test_bad_group_size_is_a_usage_error_before_anything_starts():
    proc = _script("--groups", "64", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "--groups 1: group sizes and --sampler-batch must be at least 2, the counts at least 1")


def test_without_the_peers_the_script_says_what_to_install_on_one_line():
    from benchmarks.peers import missing_peers

    missing = missing_peers()
    if not missing:   # the peers venv: the benchmark would start; the message is not reachable
        return
    proc = _script("--groups", "8")
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line
    assert line.startswith(f"error: the peer benchmark needs {', '.join(missing)}")
    assert ".venv-peers" in line
