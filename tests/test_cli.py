"""cli: the compilation cache (where compiled programs go, switching it off) and result printing."""

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


def test_print_result_aligns_keys_and_flattens_nested_entries(capsys):
    cli.print_result({"tokens_per_s": 91287.3377, "phases": {"32": {"share": 0.711438}},
                      "cpu": "Example CPU"}, as_json=False)
    assert capsys.readouterr().out.splitlines() == [
        "tokens_per_s     9.129e+04",
        "phases.32.share  0.7114",
        "cpu              Example CPU",
    ]
    cli.print_result({"phases": {"32": {"share": 0.5}}}, as_json=True)
    assert capsys.readouterr().out == '{"phases": {"32": {"share": 0.5}}}\n'
