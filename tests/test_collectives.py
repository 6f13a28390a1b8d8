"""Where the step's collectives sit in the compiled programs of a 2-device mesh.

XLA:CPU orders a program's top-level collectives (one communicator resource), but a
collective inside a loop or a conditional runs in a nested sequence that may start beside a
top-level one. Between processes (gloo) the two then pair up differently on each side and
the run aborts ("Received data size doesn't match expected size"): the two-process tests
failed so about one run in five while the grammar check's loop in the reward all-reduced its
condition across devices. Each device now samples and scores its own rows (shard_map), so
the rollout's and the update's collectives all sit at the top level, in program order.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, re, sys
import jax
from theorygrpo_jax import grpo, tasks, train as T
from theorygrpo_jax.config import load_config
cfg = load_config(sys.argv[1], {"grpo.group_size": 4, "grpo.prompts_per_step": 2})
state, inputs, fns = T.place(cfg, T.init_state(cfg))
prompts = tasks.step_prompts(inputs.prompt_tokens, inputs.prompt_len, 0,
                             cfg.grpo.prompts_per_step, cfg.grpo.group_size)
prompts = jax.device_put(prompts, inputs.batch_sharding)
rollout = fns.rollout.lower(state, inputs.tables, *prompts).compile().as_text()
state, batch, *_ = fns.rollout(state, inputs.tables, *prompts)
chunks = tuple(T._shard_rows(c, inputs.batch_sharding)
               for c in grpo.split_by_length(batch, cfg.grpo.update_chunks, cfg.model.max_len))
update = grpo.make_update_step(cfg.model, cfg.grpo, packing=False)
update = update.lower(state, chunks, inputs.tables).compile().as_text()

def collectives(hlo):
    where, found = None, []
    for line in hlo.splitlines():
        head = re.match(r"^(ENTRY )?%?([\\w.\\-]+) .*\\{\\s*$", line)
        if head:
            where = "ENTRY" if head.group(1) else head.group(2)
        if re.search(r"\\b(all-reduce|all-gather|all-to-all|collective-permute|reduce-scatter)"
                     r"(-start)?\\(", line):
            found.append(where)
    return found

print(json.dumps({"rollout": collectives(rollout), "update": collectives(update)}))
"""


def test_every_collective_of_the_step_is_at_the_top_level():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "configs" / "smoke.yaml")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    # the sampler's pmax of its step count and the metrics' sums; the gradients' all-reduce
    assert found["rollout"] and found["update"], found
    assert set(found["rollout"]) == {"ENTRY"}, found["rollout"]
    assert set(found["update"]) == {"ENTRY"}, found["update"]
