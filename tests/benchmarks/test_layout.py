"""The benchmarks stay out of the library: no library module imports them, no import cycle
among them, no script or benchmark edits sys.path."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of the modules `path` (a module of `package`) imports, anywhere in it."""
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: level 1 is the module's own package, 2 its parent, ...
                own = [package, *path.relative_to(ROOT / package).parts[:-1]]
                base = ".".join(own[:len(own) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
                out.add(name)
                out.update(f"{name}.{alias.name}" for alias in node.names)
            else:
                out.add(node.module)
                out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def test_no_library_module_imports_a_benchmark():
    for path in (ROOT / "theorygrpo_jax").rglob("*.py"):
        bad = {m for m in _imports(path, "theorygrpo_jax") if m.split(".")[0] == "benchmarks"}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_benchmark_modules_form_no_import_cycle():
    modules = {p.stem: p for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__"}
    graph = {name: {m.split(".")[1] for m in _imports(path, "benchmarks")
                    if m.startswith("benchmarks.") and m.split(".")[1] in modules} - {name}
             for name, path in modules.items()}
    done, stack = set(), []

    def visit(name):
        assert name not in stack, f"import cycle: {' -> '.join(stack[stack.index(name):] + [name])}"
        if name in done:
            return
        stack.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        stack.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert graph["processes"] >= {"machine", "sampler_bench"}  # the former cycle, one way now
    assert "processes" not in graph["sampler_bench"]


def test_no_script_or_benchmark_edits_sys_path():
    for path in [*(ROOT / "scripts").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]:
        assert "sys.path" not in path.read_text(), path.relative_to(ROOT)
