"""The device mesh: one ("data",) axis, data sharded by batch, train state replicated;
multi-host start.

Single-process runs (and the tests, on fake CPU devices) need nothing but `make_mesh`. A multi-host
run calls `maybe_initialize_distributed` first, on every process, before anything touches a device;
after that every array here is a global `jax.Array` and the same code runs unchanged.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh named ("data",) over the first `num_devices` devices (all when None or <= 0)."""
    devices = jax.devices()
    n = len(devices) if not num_devices or num_devices <= 0 else num_devices
    if n > len(devices):
        raise ValueError(f"asked for {n} devices, only {len(devices)} are visible")
    # Auto axes: shardings propagate through the step the classic (GSPMD/Shardy) way. jax.make_mesh
    # defaults to Explicit axes, under which a batch gather from a sharded operand needs explicit
    # output shardings at every op.
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices[:n])


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch / row) axis split over "data", the rest whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device (train state, scalars, keys)."""
    return NamedSharding(mesh, PartitionSpec())


def put_global(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from a host array that every process holds in full.

    Each process fills only its addressable shards, so this works unchanged across hosts (plain
    `device_put` of a numpy array needs every shard to be addressable on older JAX).
    """
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def put_replicated(tree, mesh: Mesh):
    """A pytree of host values or PRNG keys, the same on every process, as replicated global arrays.

    The multi-host form of `jax.device_put(tree, replicated(mesh))`, which on older JAX refuses a
    sharding over devices of other processes. A key goes over as its raw data and is wrapped again.
    """
    repl = replicated(mesh)

    def put(x):
        if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
            data = put_global(np.asarray(jax.random.key_data(x)), repl)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return put_global(np.asarray(x), repl)

    return jax.tree.map(put, tree)


def place_replicated(tree, mesh: Mesh):
    """`tree` replicated over `mesh` in one process or several: arrays already replicated there are
    kept as they are (no host round trip for trained parameters), the rest are put there."""
    repl = replicated(mesh)

    def place(x):
        if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(repl, x.ndim):
            return x
        if jax.process_count() == 1:
            return jax.device_put(x, repl)
        return put_replicated(x, mesh)

    return jax.tree.map(place, tree)


def maybe_initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Start `jax.distributed` when configured; return whether it was started.

    Nothing given: a single process, nothing to do. "auto": let JAX detect the cluster (SLURM, TPU
    pods, Open MPI). An address "host:port": all three values as given. Must run before any device
    is used.
    """
    if not coordinator_address:
        return False
    if coordinator_address == "auto":
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    return True


def is_main_process() -> bool:
    """Process 0 writes logs, metrics and progress; every process takes part in checkpoints."""
    return jax.process_index() == 0
