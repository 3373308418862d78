"""`--batch max`: the largest train batch whose compiled step fits in device memory.

Each probe compiles the real train step on abstract inputs (nothing is allocated) and asks XLA's
memory analysis what the call plans to hold at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from genodiff_jax.bench.examples import Example
from genodiff_jax.bench.machine import free_device_bytes, planned_bytes
from genodiff_jax.bench.models import BenchModel, train_program
from genodiff_jax.errors import InputError
from genodiff_jax.train.step import data_shardings

# Batches are multiples of BATCH_GRANULE per device, a train step may plan to use FIT_FRACTION of
# the device's free memory (fragmentation, the runtime's own buffers), and the search stops once
# the largest fitting batch is known to within 1/REFINE of itself.
BATCH_GRANULE = 8
FIT_FRACTION = 0.9
REFINE = 8
MAX_BATCH_PER_DEVICE = 1 << 16


def resident_rows(batch: int) -> int:
    """Rows of random data the train step gathers its batch from (the cost does not depend on
    it)."""
    return 4 * batch


def largest_fitting(fits: Callable[[int], bool], granule: int, start: int,
                    cap: int) -> int | None:
    """The largest multiple of `granule` up to `cap` for which `fits` holds (monotone), to within
    1/REFINE of itself: doubling up (or halving down) from `start`, then bisection. None when not
    even `granule` fits."""
    lo, hi = None, None  # the largest batch known to fit, the smallest known not to
    batch = start
    while lo is None:
        if fits(batch):
            lo = batch
        elif batch <= granule:
            return None
        else:
            hi, batch = batch, max(granule, batch // 2 // granule * granule)
    while hi is None and 2 * lo <= cap:
        if fits(2 * lo):
            lo *= 2
        else:
            hi = 2 * lo
    while hi is not None and hi - lo > max(granule, lo // REFINE):
        mid = (lo + hi) // 2 // granule * granule
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def memory_budget(memory_limit_gb: float | None, mesh: Mesh) -> dict:
    """What a train step may use per device: FIT_FRACTION of `memory_limit_gb` (--memory-limit-gb)
    or of the device's free memory. InputError when neither is known (CPUs report no limit)."""
    if memory_limit_gb is not None:
        free, source = int(memory_limit_gb * 2**30), "--memory-limit-gb"
    else:
        free, source = free_device_bytes(mesh), "device memory_stats"
    if free is None:
        raise InputError(None, f"--batch max: the {jax.default_backend()} devices report no "
                         "memory limit; pass --memory-limit-gb")
    return {"free_bytes_per_device": free, "free_from": source, "fit_fraction": FIT_FRACTION,
            "budget_bytes_per_device": int(FIT_FRACTION * free)}


def _abstract_data(rows: int, row, mesh: Mesh) -> dict:
    """The train step's `data` ({"x", "labels", "n"}) as sharded ShapeDtypeStructs; `row` is one
    example's ShapeDtypeStruct or dict of them."""
    shard = data_shardings(mesh)
    x = jax.tree.map(lambda s: jax.ShapeDtypeStruct((rows, *s.shape), s.dtype, sharding=shard["x"]),
                     row)
    return {"x": x,
            "labels": jax.ShapeDtypeStruct((rows,), jnp.int32, sharding=shard["labels"]),
            "n": jax.ShapeDtypeStruct((), jnp.int32, sharding=shard["n"])}


def compile_train_step(spec: BenchModel, example: Example, batch: int, *, classes: int,
                       mesh: Mesh, compiler_options: dict | None = None) -> Any:
    """The real train step at `batch`, with its resident data, compiled on abstract inputs
    (nothing is allocated), with extra XLA `compiler_options` if given."""
    program = train_program(spec, row=example.row, mask=example.mask, classes=classes,
                            batch=batch, mesh=mesh)
    data = _abstract_data(resident_rows(batch), example.row, mesh)
    lowered = program.step.lower(program.abstract_state, data, jax.random.key(0))
    return lowered.compile(compiler_options=compiler_options)


def largest_train_batch(spec: BenchModel, example: Example, *, classes: int,
                        memory_limit_gb: float | None, mesh: Mesh,
                        compiled_at: Callable[[int], Any] | None = None) -> tuple[int, dict]:
    """The largest batch (a multiple of BATCH_GRANULE per device) whose compiled train step, with
    its resident data, plans to fit in `memory_budget`, searched from the recipe's batch. Returns
    the batch and a record of the budget and the probes. `compiled_at(batch)`: the compiled step
    (default `compile_train_step`); a memoised one lets several searches share their probes."""
    record = memory_budget(memory_limit_gb, mesh)
    budget, probes = record["budget_bytes_per_device"], []
    if compiled_at is None:
        compiled_at = functools.partial(compile_train_step, spec, example, classes=classes,
                                        mesh=mesh)

    def fits(batch: int) -> bool:
        needed = planned_bytes(compiled_at(batch))
        if needed is None:
            raise InputError(None, f"--batch max: XLA gives no memory analysis on "
                             f"{jax.default_backend()}; pass --batch N")
        probes.append({"batch": batch, "bytes_per_device": needed, "fits": needed <= budget})
        return needed <= budget

    granule = BATCH_GRANULE * mesh.size
    start = -(-spec.batch // granule) * granule  # the recipe's batch, rounded up to the granule
    batch = largest_fitting(fits, granule, start, MAX_BATCH_PER_DEVICE * mesh.size)
    if batch is None:
        raise InputError(None, f"--batch max: {spec.name}'s train step at batch {granule} plans "
                         f"{probes[-1]['bytes_per_device']} bytes a device, over the budget of "
                         f"{budget}")
    return batch, {**record, "granule": granule, "probes": probes}
