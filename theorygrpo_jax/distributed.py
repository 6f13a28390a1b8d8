"""Several processes as one run: JAX's distributed runtime, the global mesh's arrays, agreement.

One process per host (or per GPU) runs the same program. `initialize` joins them into
one JAX runtime (jax.distributed.initialize) when asked on the command line
(--coordinator_address, --num_processes, --process_id) or when SLURM started several
tasks; after it `jax.devices()` lists every process's devices and one 1-D "data" mesh
over them carries the whole step (train.data_parallel_shardings). With one process
every function here is the identity or a plain check, so a single GPU runs the same
code with a mesh of one.

Arrays of the global mesh are built from host values that every process computes
identically (the seeded initial state, the deterministic prompts of a step): `put`
hands each process's devices their part of that value
(jax.make_array_from_callback), so nothing is sent between hosts to place them.
`gather` makes a result readable on every host (fully replicated). `agree` is the
one decision all processes must take together: a stop request or a deadline seen by
one process stops them all at the same step boundary, or the others would wait in
the checkpoint's collective save for ever.
"""

from __future__ import annotations

import argparse
import functools
import os
from typing import Any

import jax
import numpy as np

from .cli import fail

# SLURM variables that say this task is one of several of a job step.
_SLURM_TASKS = ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS")


def add_flags(parser: argparse.ArgumentParser) -> None:
    """--coordinator_address, --num_processes, --process_id (see `initialize`)."""
    group = parser.add_argument_group(
        "several processes", "one run over several processes or hosts (under SLURM they are "
        "read from its environment; see docs/scaling.md)")
    group.add_argument("--coordinator_address", metavar="HOST:PORT",
                       help="process 0's address and a free port, the same for every process")
    group.add_argument("--num_processes", type=int, metavar="N", help="processes in the run")
    group.add_argument("--process_id", type=int, metavar="I", help="this process, 0..N-1")


def slurm_tasks(environ: dict[str, str] | None = None) -> int:
    """The number of tasks of this SLURM job step (1 outside SLURM or when unreadable)."""
    environ = os.environ if environ is None else environ
    for name in _SLURM_TASKS:
        value = environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 1


def cluster_processes(environ: dict[str, str] | None = None) -> int:
    """The processes a cluster launcher started for this run, as JAX can detect them itself:
    SLURM's tasks, Open MPI's ranks (mpirun) or a Cloud TPU slice's hosts; 1 otherwise."""
    environ = os.environ if environ is None else environ
    mpi = environ.get("OMPI_COMM_WORLD_SIZE", "").strip()
    tpu_hosts = [h for h in environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
    return max(slurm_tasks(environ), int(mpi) if mpi.isdigit() else 1, len(tpu_hosts), 1)


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, environ: dict[str, str] | None = None) -> bool:
    """Join the run's processes into one JAX runtime; returns True when it did.

    Explicit arguments (all three, or num_processes = 1 for one process) win; else a
    cluster launcher's environment naming more than one process (`cluster_processes`: SLURM,
    Open MPI, a TPU slice) lets JAX detect the cluster itself. Processes on
    CPUs exchange gradients over gloo (jax_cpu_collectives_implementation). Must come
    before the first JAX computation; a second call does nothing. Bad values: UserError.
    """
    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if num_processes is not None and num_processes < 1:
        fail(f"--num_processes must be at least 1, not {num_processes}")
    if (any(given) and num_processes == 1 and coordinator_address is None
            and process_id in (None, 0)):
        return False
    if any(given) and not all(given):
        missing = [f for f, g in zip(("--coordinator_address", "--num_processes", "--process_id"),
                                     given) if not g]
        fail(f"several processes need --coordinator_address, --num_processes and --process_id "
             f"together: {', '.join(missing)} missing")
    if all(given):
        host, _, port = coordinator_address.rpartition(":")
        if not host or not port.isdigit():
            fail(f"--coordinator_address must be HOST:PORT, not {coordinator_address!r}")
        if not 0 <= process_id < num_processes:
            fail(f"--process_id must be in 0..{num_processes - 1}, not {process_id}")
    elif cluster_processes(environ) <= 1:
        return False
    if jax.distributed.is_initialized():
        return True
    # CPU processes have no NCCL: their collectives go over gloo (jax's default today; set
    # here so that an older default of "none" cannot leave them without any). GPUs and TPUs
    # keep their own (NCCL, ICI); this setting touches only the CPU backend.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        if all(given):
            jax.distributed.initialize(coordinator_address, num_processes, process_id)
        else:
            jax.distributed.initialize()   # jax reads the cluster's hosts and rank itself
    except (RuntimeError, ValueError) as e:
        where = coordinator_address or "the coordinator the cluster's environment names"
        fail(f"cannot join the run's processes through {where}: "
             f"{(str(e).strip().splitlines() or [''])[0][:300]}")
    return True


def initialize_from_args(args: argparse.Namespace) -> bool:
    """`initialize` from the flags `add_flags` added."""
    return initialize(getattr(args, "coordinator_address", None),
                      getattr(args, "num_processes", None), getattr(args, "process_id", None))


def multi_process() -> bool:
    """True when this run spans several processes."""
    return jax.process_count() > 1


def is_primary() -> bool:
    """True on the process that writes the run's files (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier `name` (nothing with one process)."""
    if multi_process():
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def finish() -> None:
    """Leave the run together (after a normal end or an agreed stop): a barrier, then the
    runtime's orderly shutdown. jax does not shut down at exit, and process 0 hosts the
    coordination service: a process 0 that exits first takes it from under the others, whose
    runtime then aborts them (exit 134 instead of their own status)."""
    if jax.distributed.is_initialized():
        barrier("run:finish")
        jax.distributed.shutdown()


def agree_max(*values: int) -> tuple[int, ...]:
    """Each value's maximum over the processes (one tiny all-gather per call; every process
    must call it at the same point with as many values)."""
    if not multi_process():
        return tuple(int(v) for v in values)
    from jax.experimental import multihost_utils
    seen = np.asarray(multihost_utils.process_allgather(np.asarray(values, np.int64)))
    return tuple(int(v) for v in seen.reshape(-1, len(values)).max(axis=0))


def agree(*flags: bool) -> tuple[bool, ...]:
    """Each flag, true when it is true on any process (see `agree_max`)."""
    return tuple(bool(v) for v in agree_max(*(int(bool(f)) for f in flags)))


def global_mesh() -> jax.sharding.Mesh:
    """A 1-D "data" mesh over every process's devices."""
    return jax.sharding.Mesh(np.array(jax.devices()), ("data",))


def replicated_sharding() -> jax.sharding.NamedSharding:
    return jax.sharding.NamedSharding(global_mesh(), jax.sharding.PartitionSpec())


@functools.lru_cache(maxsize=16)
def _reshard(sharding: jax.sharding.Sharding) -> Any:
    """One compiled program per target that moves a list of global arrays to `sharding` (the
    collectives of all its leaves in one dispatch)."""
    return jax.jit(lambda arrays: arrays, out_shardings=sharding)


def put(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """`tree` as arrays of `sharding`. With several processes every process must pass the same
    values (each supplies its own devices' part of them; global arrays of another layout are
    moved on the devices); with one it is jax.device_put."""
    if not multi_process():
        return jax.device_put(tree, sharding)
    leaves, treedef = jax.tree.flatten(tree)
    moving = [i for i, x in enumerate(leaves) if isinstance(x, jax.Array)
              and not x.is_fully_addressable and not x.sharding.is_equivalent_to(sharding, x.ndim)]
    if moving:
        for i, x in zip(moving, _reshard(sharding)([leaves[i] for i in moving])):
            leaves[i] = x
    for i, x in enumerate(leaves):
        if isinstance(x, jax.Array) and (x.sharding.is_equivalent_to(sharding, x.ndim)
                                         or not x.is_fully_addressable):
            continue
        host = np.asarray(x)
        leaves[i] = jax.make_array_from_callback(host.shape, sharding,
                                                 lambda index, host=host: host[index])
    return jax.tree.unflatten(treedef, leaves)


def replicate(tree: Any) -> Any:
    """With several processes, `tree` replicated on the global mesh (the form orbax restores
    into on every host); with one, `tree` unchanged."""
    return put(tree, replicated_sharding()) if multi_process() else tree


def gather(tree: Any) -> Any:
    """With several processes, `tree`'s arrays fully replicated (so that every host can read
    them: jax.device_get needs its own copy); with one, `tree` unchanged."""
    if not multi_process():
        return tree
    return put(tree, replicated_sharding())


def local(tree: Any) -> Any:
    """With several processes, this host's copy of a replicated `tree` (arrays on its first
    device, for host-only work such as the final evaluation); with one, `tree` unchanged."""
    if not multi_process():
        return tree
    return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)


def fsdp_spec(shape: tuple[int, ...], n: int) -> jax.sharding.PartitionSpec:
    """The PartitionSpec of a leaf of `shape` split over the n devices of the "data" axis
    (ZeRO-3 style): its largest axis whose size n divides (the first of equal ones) is
    sharded; a leaf with no such axis, and a scalar, stays replicated (P())."""
    P = jax.sharding.PartitionSpec
    divisible = [(size, -axis) for axis, size in enumerate(shape) if size % n == 0]
    if not divisible:
        return P()
    axis = -max(divisible)[1]
    return P(*(["data" if a == axis else None for a in range(len(shape))]))


def state_shardings(state: Any, mesh: jax.sharding.Mesh, fsdp: bool) -> Any:
    """A NamedSharding per leaf of a TrainState over `mesh`'s "data" axis: with `fsdp` the
    policy's and the reference's parameters and the optimiser's state (Adam's moments) are
    split by `fsdp_spec`, everything else (rng, step, curriculum, replay, novelty, the KL
    coefficient, ...) is replicated; without, every leaf is replicated. Reads only the leaves'
    shapes, so abstract values (jax.eval_shape) and tracers do as well as arrays."""
    NamedSharding = jax.sharding.NamedSharding
    replicated = NamedSharding(mesh, jax.sharding.PartitionSpec())
    shardings = jax.tree.map(lambda _: replicated, state)
    if not fsdp:
        return shardings
    n = mesh.shape["data"]
    split = lambda tree: jax.tree.map(  # noqa: E731
        lambda x: NamedSharding(mesh, fsdp_spec(tuple(x.shape), n)), tree)
    return shardings.replace(params=split(state.params), ref_params=split(state.ref_params),
                             opt_state=split(state.opt_state))
