"""Training tasks: which prompts the policy continues.

- ``sm_extension``: the prompt is the Standard Model's gauge group and its six
  fields (three generations of quarks and leptons and the Higgs doublet).
  The policy may add exotic fields, then writes END_FIELDS and all the terms
  (the SM Yukawas included). Its reward config turns on the heavy-exotics
  bonus (distinct charged exotic fields that are all heavy), so that adding
  nothing is not the optimum; anomalies, light charged exotics and
  non-invariant terms are penalised as usual.
- ``from_scratch``: the prompt is BOS alone; the policy writes whole theories.

``train.prompt_files`` overrides the task's prompt with `.theory` prefixes
(cycled over the steps' groups).
"""

from __future__ import annotations

import numpy as np

from .grammar import text
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


def task_prompts(task: str, prompt_files: tuple[str, ...] = ()) -> list[list[str]]:
    """Prompts (token strings, starting with BOS) for a task, or from prompt files."""
    if prompt_files:
        prompts = []
        for path in prompt_files:
            try:
                source = open(path).read()
            except OSError as e:
                raise text.TheoryError(f"{path}: cannot read prompt: {e.strerror}") from None
            prompts.append(text.parse_prompt_text(source, path))
        return prompts
    if task == "sm_extension":
        return [text.parse_prompt_text(SM_FIELDS_PROMPT, "sm_extension prompt")]
    if task == "from_scratch":
        return [["BOS"]]
    raise ValueError(f"unknown task {task!r}")


def pack_prompts(prompts: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(tokens [n, W] int32 right-padded with PAD, lengths [n] int32)."""
    width = max(len(p) for p in prompts)
    tokens = np.full((len(prompts), width), V.PAD, np.int32)
    for i, p in enumerate(prompts):
        tokens[i, :len(p)] = V.token_ids(p)
    return tokens, np.array([len(p) for p in prompts], np.int32)


def step_prompts(tokens: np.ndarray, lengths: np.ndarray, step: int, prompts_per_step: int,
                 group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The batch's prompts at `step`: prompts cycled, each repeated group_size times (group-major)."""
    idx = (step * prompts_per_step + np.arange(prompts_per_step)) % len(tokens)
    idx = np.repeat(idx, group_size)
    return tokens[idx], lengths[idx]
