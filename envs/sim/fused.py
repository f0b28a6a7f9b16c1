"""Phase kernels: several of a phase's compiled kernels in one call.

Calling a compiled kernel from Python costs about half a microsecond plus
~65 ns per array argument (Numba unboxes each one), and a phase's kernels
share most of their arrays. On a single environment these calls, not the
arithmetic, were most of a tick. A phase kernel takes each array once and
calls the module kernels (the one implementation of each rule) from compiled
code, where a call costs nothing; its argument tuple is built once per world
(:meth:`World.bound <roadedge.envs.sim.world.World.bound>`).

The price is compile time: Numba optimises a caller together with the code of
every kernel it calls, so a phase kernel costs seconds at the first start. It
is kept where it pays at run time (the compute step: ~5 µs of a ~150 µs tick;
the fault step: ~2 µs); the arrivals step gained nothing and calls its three
kernels from Python.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import parallel
from .compute import (
    _energy_kernel,
    _progress_kernel,
    _stalled_kernel,
    energy_constants,
    progress_constants,
)
from .config import ScenarioConfig
from .faults import _fail_repair_kernel, fail_repair_args
from .layout import Layout
from .migration import (
    CancelState,
    _blocked_kernel,
    _cancel_kernel,
    _due_kernel,
    migration_params,
)
from .parallel import CHUNKS, compile_both
from .scheduler import (
    _checkpoint_kernel,
)
from .world import World


def _work(
    key, tick, time_s, mig_active, mig_end_s, mig_success_p, mig_downtime_s, node_index,
    task_state, task_kind, task_host, task_vehicle, task_ready_s, task_done, task_latency_ms,
    task_mig_target, task_backup, task_replica, node_up, slots_used, battery_j, veh_active,
    veh_access, veh_rate_mbps, cpu_hz, hops, max_jobs, is_uav, dt_s, progress_consts,
    energy_consts, replication, replica_interval_s, due, success, blocked, serving, charged,
    latency_ms, energy_j, stalled_s, downtime_s,
):  # fmt: skip
    B = time_s.shape[0]
    chunks = min(B, CHUNKS)
    for c in prange(chunks):  # environments are independent: each chunk its own rows
        lo, hi = c * B // chunks, (c + 1) * B // chunks
        rows = slice(lo, hi)
        _due_kernel(
            key[rows], tick[rows], time_s[rows], mig_active[rows], mig_end_s[rows],
            mig_success_p[rows], dt_s, node_index, due[rows], success[rows],
        )  # fmt: skip
        _blocked_kernel(
            task_host[rows], task_mig_target[rows], mig_downtime_s[rows], success[rows],
            blocked[rows],
        )  # fmt: skip
        _progress_kernel(
            time_s[rows], task_state[rows], task_kind[rows], task_host[rows],
            task_vehicle[rows], task_ready_s[rows], task_done[rows], task_latency_ms[rows],
            node_up[rows], slots_used[rows], veh_active[rows], veh_access[rows],
            veh_rate_mbps[rows], cpu_hz, hops, blocked[rows], dt_s, *progress_consts,
            serving[rows], charged[rows], latency_ms[rows],
        )  # fmt: skip
        _energy_kernel(
            slots_used[rows], node_up[rows], max_jobs, is_uav, *energy_consts, dt_s,
            energy_j[rows],
        )  # fmt: skip
        for b in range(lo, hi):
            for n in range(battery_j.shape[1]):
                battery_j[b, n] -= energy_j[b, n]
        if replication:
            _checkpoint_kernel(
                time_s[rows], task_state[rows], task_host[rows], task_backup[rows],
                task_done[rows], task_replica[rows], node_up[rows], dt_s, replica_interval_s,
            )  # fmt: skip
        _stalled_kernel(task_state[rows], serving[rows], blocked[rows], dt_s, stalled_s[rows])
        for b in range(lo, hi):
            downtime_s[b] += stalled_s[b]


_work_kernel, _work_parallel = compile_both("work", _work)


def work(world: World, layout: Layout, cfg: ScenarioConfig, node_index, downtime_s):
    """Step 7 in one call: the success draws of the migrations ending this tick
    (:func:`migration.due_outcomes`), their switch downtime
    (:func:`migration.switch_blocked_s`), :func:`compute.progress`,
    :func:`compute.uav_energy_j` drawn from the batteries,
    :func:`scheduler.checkpoint_replicas` and :func:`compute.downtime_s` added to
    ``downtime_s`` (B,). Returns (due, success, charged, latency_ms, energy_j)."""
    w = world
    B, N = w.node_up.shape
    T = w.task_state.shape[1]
    args = w.bound("fused_work", (cfg, layout, node_index), lambda: (
        w.key, w.tick, w.time_s, w.mig_active, w.mig_end_s, w.mig_success_p, w.mig_downtime_s,
        np.ravel(node_index).astype(np.uint64), w.task_state, w.task_kind, w.task_host,
        w.task_vehicle, w.task_ready_s, w.task_done, w.task_latency_ms, w.task_mig_target,
        w.task_backup, w.task_replica, w.node_up, w.slots_used, w.battery_j, w.veh_active,
        w.veh_access, w.veh_rate_mbps, layout.cpu_hz, layout.hops, layout.max_jobs,
        layout.is_uav, float(cfg.dt_s),
        progress_constants(cfg), energy_constants(cfg),
        bool(cfg.faults.replication), float(cfg.faults.replica_interval_s),
    ))  # fmt: skip
    due, success = np.empty((B, N), np.bool_), np.empty((B, N), np.bool_)
    blocked, serving = np.empty((B, T)), np.empty((B, T), np.bool_)
    charged, latency_ms = np.empty((B, T), np.bool_), np.empty((B, T))
    energy_j, stalled_s = np.empty((B, N)), np.empty(B)
    parallel.run(
        w, "work", B, *args, due, success, blocked, serving, charged, latency_ms, energy_j,
        stalled_s, downtime_s,
    )  # fmt: skip
    return due, success, charged, latency_ms, energy_j


@njit(cache=True)
def _faults_kernel(
    fail_args, cancel_state, params, failed, repaired, broken, exhausted, cancelled_total,
    exhausted_total,
):  # fmt: skip
    _fail_repair_kernel(*fail_args, failed, repaired)
    if CancelState(*cancel_state).mig_active.any():  # migrations touching a dead node end cancelled
        _cancel_kernel(cancel_state, params, broken, exhausted)
        for b in range(broken.shape[0]):
            for n in range(broken.shape[1]):
                cancelled_total[b] += broken[b, n]
                exhausted_total[b] += exhausted[b, n]
    else:
        broken[:] = False
        exhausted[:] = False


def node_faults(world: World, layout: Layout, cfg: ScenarioConfig, node_index, counters):
    """Step 2 in one call: :func:`faults.fail_and_repair`, then
    :func:`migration.cancel_broken` (when a migration is active) counted into
    ``counters``. Returns the (B, N) masks (failed, repaired)."""
    shape = world.node_up.shape
    failed, repaired = np.empty(shape, np.bool_), np.empty(shape, np.bool_)
    broken, exhausted = np.empty(shape, np.bool_), np.empty(shape, np.bool_)
    _faults_kernel(
        fail_repair_args(world, layout, cfg, node_index), world.subset_arrays(CancelState),
        migration_params(cfg), failed, repaired, broken, exhausted,
        counters.migrations_cancelled, counters.retries_exhausted,
    )  # fmt: skip
    return failed, repaired
