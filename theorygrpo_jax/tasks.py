"""Training tasks: which prompts the policy continues.

- ``sm_extension``: the prompt is the Standard Model's gauge group and its six
  fields (three generations of quarks and leptons and the Higgs doublet).
  The policy may add exotic fields, then writes END_FIELDS and all the terms
  (the SM Yukawas included). Its reward config turns on the heavy-exotics
  bonus (distinct charged exotic fields that are all heavy), so that adding
  nothing is not the optimum; anomalies, light charged exotics and
  non-invariant terms are penalised as usual.
- ``dark_u1``: the gauge group U(1)_Y × U(1)′ × SU(2) × SU(3) and the SM's fields,
  each with U(1)′ charge 0; the policy adds fields, for the task's purpose SM-singlet
  Weyl fermions charged under U(1)′. A discovery is an anomaly-free chiral set of their
  U(1)′ charges (see `physics.u1_charges`; the catalogue records each model's set).
- ``from_scratch``: the prompt is BOS alone; the policy writes whole theories.

``train.prompt_files`` overrides the task's prompt with `.theory` prefixes
(cycled over the steps' groups).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .grammar import recognizer, text
from .grammar import vocab as V

SM_FIELDS_PROMPT = """\
# The Standard Model's gauge group and fields; the policy continues after m_6.
GAUGE U1 SU2 SU3 END_GAUGE
FIELDS
  FERMION L gen_3 q_1  F F END   # m_1  Q_L
  FERMION R gen_3 q_4  1 F END   # m_2  u_R
  FERMION R gen_3 q_-2 1 F END   # m_3  d_R
  FERMION L gen_3 q_-3 F 1 END   # m_4  L_L
  FERMION R gen_3 q_-6 1 1 END   # m_5  e_R
  SCALAR CPLX VEV q_3 F 1 END    # m_6  Higgs doublet
"""


DARK_U1_PROMPT = """\
# The SM with a dark U(1)' under which every SM field is neutral (the second U1 slot);
# the policy continues after m_6, adding fields charged under U(1)'.
GAUGE U1 U1 SU2 SU3 END_GAUGE
FIELDS
  FERMION L gen_3 q_1  q_0 F F END   # m_1  Q_L
  FERMION R gen_3 q_4  q_0 1 F END   # m_2  u_R
  FERMION R gen_3 q_-2 q_0 1 F END   # m_3  d_R
  FERMION L gen_3 q_-3 q_0 F 1 END   # m_4  L_L
  FERMION R gen_3 q_-6 q_0 1 1 END   # m_5  e_R
  SCALAR CPLX VEV q_3 q_0 F 1 END    # m_6  Higgs doublet
"""

def task_prompts(task: str, prompt_files: tuple[str, ...] = ()) -> list[list[str]]:
    """Prompts (token strings, starting with BOS) for a task, or from prompt files."""
    if prompt_files:   # read with one-line errors naming the file (binary, undecodable, missing)
        return [text.load_prompt(path) for path in prompt_files]
    if task == "sm_extension":
        return [text.parse_prompt_text(SM_FIELDS_PROMPT, "sm_extension prompt")]
    if task == "dark_u1":
        return [text.parse_prompt_text(DARK_U1_PROMPT, "dark_u1 prompt")]
    if task == "from_scratch":
        return [["BOS"]]
    raise ValueError(f"unknown task {task!r}")


def check_prompt(tokens: Sequence[str], max_len: int, row: int | None = None) -> None:
    """Raise ValueError naming the first token of `tokens` the grammar does not allow there."""
    where = "" if row is None else f"prompt {row}: "
    if len(tokens) == 0:
        raise ValueError(f"{where}empty prompt; a prompt starts with BOS")
    if len(tokens) > max_len:
        raise ValueError(f"{where}prompt of {len(tokens)} tokens is longer than max_len {max_len}")
    for pos, token in enumerate(tokens):
        allowed = recognizer.allowed_next(list(tokens[:pos]), max_len)
        if token not in allowed:
            raise ValueError(
                f"{where}token '{token}' at position {pos} is not allowed by the grammar "
                f"(max_len {max_len}); allowed there: "
                f"{recognizer.describe_allowed(allowed) if allowed else 'nothing'}")


def pack_prompts(prompts: Sequence[Sequence[str | int]] | None, max_len: int,
                 batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Check prompts against the grammar and pack them: (tokens [B, P] int32 right-padded with
    PAD, prompt_len [B] int32).

    `prompts`: one token list (strings or ids) per row, starting with BOS;
    None means every row starts from BOS alone (then batch_size is required).
    A single prompt with batch_size set is repeated batch_size times.
    """
    if prompts is None:
        if batch_size is None:
            raise ValueError("give prompts or batch_size")
        prompts = [["BOS"]]
    rows = [[V.TOKENS[int(t)] if not isinstance(t, str) else t for t in p] for p in prompts]
    if batch_size is not None and len(rows) != batch_size:
        if len(rows) != 1:
            raise ValueError(f"{len(rows)} prompts for batch_size {batch_size}")
        rows = rows * batch_size
    if not rows:
        raise ValueError("no prompts")
    checked: set[tuple[str, ...]] = set()
    for r, row in enumerate(rows):
        unknown = [t for t in row if t not in V.TOKEN_ID]
        if unknown:
            raise ValueError(f"prompt {r}: unknown token '{unknown[0]}'")
        if tuple(row) not in checked:
            check_prompt(row, max_len, r)
            checked.add(tuple(row))
    width = max(len(r) for r in rows)
    tokens = np.full((len(rows), width), V.PAD, np.int32)
    for r, row in enumerate(rows):
        tokens[r, :len(row)] = V.token_ids(row)
    return tokens, np.array([len(r) for r in rows], np.int32)


def step_prompts(tokens: np.ndarray, lengths: np.ndarray, step: int, prompts_per_step: int,
                 group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The batch's prompts at `step`: prompts cycled, each repeated group_size times (group-major)."""
    idx = (step * prompts_per_step + np.arange(prompts_per_step)) % len(tokens)
    idx = np.repeat(idx, group_size)
    return tokens[idx], lengths[idx]
