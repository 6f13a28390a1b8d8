"""The peer benchmark: this project's GRPO step against what a user would pick instead, on the
same CPU, with the same shapes, initial weights, grammar and reward (issue 17).

Needs the optional `[peers]` extra (torch, transformers, trl), installed into its own virtual
environment so that they never enter the main install or the tests:

    python3 -m venv .venv-peers
    .venv-peers/bin/pip install "torch==2.13.0+cpu" -e '.[peers,test]'
    .venv-peers/bin/python scripts/bench_peers.py --preset cpu_default --groups 64 8 --json

Modules (every one but `grammar_tables` and `update_parts` imports torch; this package's
__init__ imports none of them, so `import benchmarks.peers` works without torch):

- grammar_tables:     the grammar automaton over numpy tables (batched; no torch)
- torch_model:        this project's transformer in PyTorch as an HF `PreTrainedModel`, loaded
                      from this project's Flax parameters
- grammar_processor:  the grammar as an HF `LogitsProcessor` (and a forcing processor that
                      replays given rows, for timing HF generate on the same theories)
- torch_grpo:         a hand-written GRPO step with this project's objective
- trl_grpo:           TRL's GRPOTrainer with its generate wrapped to apply the grammar
- update_parts:       where this project's update spends its time (JAX only)
- run:                everything in one process, the table
"""

from __future__ import annotations

import importlib.util

PEER_PACKAGES = ("torch", "transformers", "trl")
INSTALL_HINT = ("python3 -m venv .venv-peers && .venv-peers/bin/pip install "
                "\"torch==2.13.0+cpu\" -e '.[peers,test]'")


def missing_peers() -> list[str]:
    """The peer packages this interpreter cannot import (found without importing them)."""
    return [name for name in PEER_PACKAGES if importlib.util.find_spec(name) is None]
