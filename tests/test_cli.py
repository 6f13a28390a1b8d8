"""cli.use_compilation_cache: where compiled programs go, and switching it off."""

import jax

from theorygrpo_jax import cli


def test_compilation_cache_directory_from_the_environment(monkeypatch, tmp_path):
    before = jax.config.jax_compilation_cache_dir
    try:
        monkeypatch.setenv("THEORYGRPO_JAX_CACHE", str(tmp_path / "xla"))
        assert cli.use_compilation_cache() == str(tmp_path / "xla")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")

        monkeypatch.delenv("THEORYGRPO_JAX_CACHE")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert cli.use_compilation_cache() == str(tmp_path / "xdg" / "theorygrpo_jax")

        for off in ("off", "OFF", "0", "none", "false"):
            monkeypatch.setenv("THEORYGRPO_JAX_CACHE", off)
            assert cli.use_compilation_cache() is None
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
