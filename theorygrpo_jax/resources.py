"""The data shipped inside the package: the YAML configs and the textbook theories.

They live in ``theorygrpo_jax/data/`` (``configs/*.yaml``, ``theories/*.theory`` and the
counter-examples ``theories/anomalous/*.theory``) and are read through
`importlib.resources`, so an installed package (``pip install .``) finds them as well
as a checkout. In a checkout ``configs`` and ``examples/theories`` are symlinks to
these folders, so the documented paths (``--config configs/default.yaml``) still work.
A package installed as plain files (what pip does) gives `pathlib.Path` objects here,
which every reader of the project (`config.load_config`, `grammar.text.load_theory`) takes.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.resources.abc is new in Python 3.11; only the annotations use it
    from importlib.resources.abc import Traversable

DATA = resources.files("theorygrpo_jax") / "data"
CONFIGS = DATA / "configs"
THEORIES = DATA / "theories"


def config_names() -> list[str]:
    """Names of the packaged configs (file stems, e.g. "default", "smoke"), sorted."""
    return sorted(p.name[:-len(".yaml")] for p in CONFIGS.iterdir() if p.name.endswith(".yaml"))


def packaged_config(name: str) -> Traversable:
    """The packaged config `name` ("smoke" or "smoke.yaml"); FileNotFoundError (one line) if none."""
    stem = name[:-len(".yaml")] if name.endswith(".yaml") else name
    if stem not in config_names():
        raise FileNotFoundError(f"{name}: no packaged config of that name "
                                f"(packaged: {', '.join(config_names())})")
    return CONFIGS / f"{stem}.yaml"


def config_path(arg: str | Path) -> Path | Traversable:
    """What a `--config ARG` names: the file ARG when it exists, else the packaged config
    called ARG (a bare name such as "smoke" or "default.yaml", no folder).

    Anything else is a FileNotFoundError whose message is one line naming ARG.
    """
    path = Path(arg)
    if path.is_file():
        return path
    if path.name == str(arg):    # a bare name: may be a packaged config
        try:
            return packaged_config(str(arg))
        except FileNotFoundError:
            pass
    raise FileNotFoundError(f"{arg}: no such config file, and no packaged config of that name "
                            f"(packaged: {', '.join(config_names())})")


def textbook_theories(anomalous: bool = False) -> list[tuple[str, str]]:
    """(name, source text) of the packaged textbook theories, sorted by name.

    With anomalous=True the counter-examples of ``theories/anomalous/`` instead
    (theories that are grammar valid but fail one physics check each).
    """
    folder = THEORIES / "anomalous" if anomalous else THEORIES
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".theory")), key=lambda p: p.name)
    return [(p.name[:-len(".theory")], p.read_text()) for p in files]


def theory_file(name: str, anomalous: bool = False) -> Traversable:
    """The packaged theory `name` ("sm" or "sm.theory"); FileNotFoundError (one line) if none."""
    stem = name[:-len(".theory")] if name.endswith(".theory") else name
    folder = THEORIES / "anomalous" if anomalous else THEORIES
    path = folder / f"{stem}.theory"
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no packaged theory of that name")
    return path


__all__ = ["config_names", "packaged_config", "config_path", "textbook_theories", "theory_file"]
