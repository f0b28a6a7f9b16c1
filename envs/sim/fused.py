"""Phase kernels: several of a phase's compiled kernels in one call.

Calling a compiled kernel from Python costs about half a microsecond plus
~65 ns per array argument (Numba unboxes each one), and a phase's kernels
share most of their arrays. On a single environment these calls, not the
arithmetic, were most of a tick. A phase kernel takes each array once and
calls the module kernels (the one implementation of each rule) from compiled
code, where a call costs nothing; its argument tuple is built once per world
(:meth:`World.bound <roadedge.envs.sim.world.World.bound>`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import parallel
from .compute import _energy_kernel, _progress_kernel, _stalled_kernel, per_hop_ms
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
    _dispatch_kernel,
    _generate_kernel,
    open_row_arrays,
    priority_table,
)
from .sessions import _start_kernel
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
        _work_rows(
            key[lo:hi], tick[lo:hi], time_s[lo:hi], mig_active[lo:hi], mig_end_s[lo:hi],
            mig_success_p[lo:hi], mig_downtime_s[lo:hi], node_index, task_state[lo:hi],
            task_kind[lo:hi], task_host[lo:hi], task_vehicle[lo:hi], task_ready_s[lo:hi],
            task_done[lo:hi], task_latency_ms[lo:hi], task_mig_target[lo:hi],
            task_backup[lo:hi], task_replica[lo:hi], node_up[lo:hi], slots_used[lo:hi],
            battery_j[lo:hi], veh_active[lo:hi], veh_access[lo:hi], veh_rate_mbps[lo:hi],
            cpu_hz, hops, max_jobs, is_uav, dt_s, progress_consts, energy_consts, replication,
            replica_interval_s, due[lo:hi], success[lo:hi], blocked[lo:hi], serving[lo:hi],
            charged[lo:hi], latency_ms[lo:hi], energy_j[lo:hi], stalled_s[lo:hi],
            downtime_s[lo:hi],
        )  # fmt: skip


@njit(cache=True)
def _work_rows(
    key, tick, time_s, mig_active, mig_end_s, mig_success_p, mig_downtime_s, node_index,
    task_state, task_kind, task_host, task_vehicle, task_ready_s, task_done, task_latency_ms,
    task_mig_target, task_backup, task_replica, node_up, slots_used, battery_j, veh_active,
    veh_access, veh_rate_mbps, cpu_hz, hops, max_jobs, is_uav, dt_s, progress_consts,
    energy_consts, replication, replica_interval_s, due, success, blocked, serving, charged,
    latency_ms, energy_j, stalled_s, downtime_s,
):  # fmt: skip
    """Step 7's kernels on a block of environment rows."""
    _due_kernel(
        key, tick, time_s, mig_active, mig_end_s, mig_success_p, dt_s, node_index, due, success
    )
    _blocked_kernel(task_host, task_mig_target, mig_downtime_s, success, blocked)
    _progress_kernel(
        time_s, task_state, task_kind, task_host, task_vehicle, task_ready_s, task_done,
        task_latency_ms, node_up, slots_used, veh_active, veh_access, veh_rate_mbps, cpu_hz,
        hops, blocked, dt_s, *progress_consts, serving, charged, latency_ms,
    )  # fmt: skip
    _energy_kernel(slots_used, node_up, max_jobs, is_uav, *energy_consts, dt_s, energy_j)
    for b in range(battery_j.shape[0]):
        for n in range(battery_j.shape[1]):
            battery_j[b, n] -= energy_j[b, n]
    if replication:
        _checkpoint_kernel(
            time_s, task_state, task_host, task_backup, task_done, task_replica, node_up, dt_s,
            replica_interval_s,
        )  # fmt: skip
    _stalled_kernel(task_state, serving, blocked, dt_s, stalled_s)
    for b in range(downtime_s.shape[0]):
        downtime_s[b] += stalled_s[b]


_work_kernel, _work_parallel = compile_both("work", _work)


def work(world: World, layout: Layout, cfg: ScenarioConfig, node_index, downtime_s):
    """Step 7 in one call: the success draws of the migrations ending this tick
    (:func:`migration.due_outcomes`), their switch downtime
    (:func:`migration.switch_blocked_s`), :func:`compute.progress`,
    :func:`compute.uav_energy_j` drawn from the batteries,
    :func:`scheduler.checkpoint_replicas` and :func:`compute.downtime_s` added to
    ``downtime_s`` (B,). Returns (due, success, charged, latency_ms, energy_j)."""
    w, r = world, cfg.radio
    B, N = w.node_up.shape
    T = w.task_state.shape[1]
    args = w.bound("fused_work", (cfg, layout, node_index), lambda: (
        w.key, w.tick, w.time_s, w.mig_active, w.mig_end_s, w.mig_success_p, w.mig_downtime_s,
        np.ravel(node_index).astype(np.uint64), w.task_state, w.task_kind, w.task_host,
        w.task_vehicle, w.task_ready_s, w.task_done, w.task_latency_ms, w.task_mig_target,
        w.task_backup, w.task_replica, w.node_up, w.slots_used, w.battery_j, w.veh_active,
        w.veh_access, w.veh_rate_mbps, layout.cpu_hz, layout.hops, layout.max_jobs,
        layout.is_uav, float(cfg.dt_s),
        (
            1000.0 * 8.0 * r.request_mb, float(per_hop_ms(cfg)), float(r.out_of_coverage_ms),
            1000.0 * r.compute_request_gcycles * 1e9,
        ),
        (float(cfg.uav.hover_power_w), float(cfg.uav.compute_power_w)),
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


def _tasks(
    key, tick, time_s, veh_active, veh_serial, veh_new, veh_wants_session, veh_x, veh_y,
    veh_rate_mbps, veh_serving, view_up, slots_used, slots_reserved, task_state, task_kind,
    task_vehicle, task_service, task_work, task_done, task_replica, task_input_mb,
    task_state_mb, task_created_s, task_deadline_s, task_ready_s, task_priority, task_host,
    task_origin, task_backup, opened, levels, cum, max_jobs, capability, pos_xyz,
    session_consts, task_consts, dispatch_consts, started, no_session_row, generated,
    no_task_row,
):  # fmt: skip
    B = time_s.shape[0]
    chunks = min(B, CHUNKS)
    for c in prange(chunks):  # environments are independent: each chunk its own rows
        lo, hi = c * B // chunks, (c + 1) * B // chunks
        o = opened
        rows_opened = (
            o[0][lo:hi], o[1][lo:hi], o[2][lo:hi], o[3][lo:hi], o[4][lo:hi], o[5][lo:hi],
            o[6][lo:hi], o[7][lo:hi], o[8][lo:hi],
        )  # fmt: skip
        _tasks_rows(
            key[lo:hi], tick[lo:hi], time_s[lo:hi], veh_active[lo:hi], veh_serial[lo:hi],
            veh_new[lo:hi], veh_wants_session[lo:hi], veh_x[lo:hi], veh_y[lo:hi],
            veh_rate_mbps[lo:hi], veh_serving[lo:hi], view_up[lo:hi], slots_used[lo:hi],
            slots_reserved[lo:hi], task_state[lo:hi], task_kind[lo:hi], task_vehicle[lo:hi],
            task_service[lo:hi], task_work[lo:hi], task_done[lo:hi], task_replica[lo:hi],
            task_input_mb[lo:hi], task_state_mb[lo:hi], task_created_s[lo:hi],
            task_deadline_s[lo:hi], task_ready_s[lo:hi], task_priority[lo:hi],
            task_host[lo:hi], task_origin[lo:hi], task_backup[lo:hi], rows_opened, levels,
            cum, max_jobs, capability, pos_xyz, session_consts, task_consts,
            dispatch_consts, started[lo:hi], no_session_row[lo:hi], generated[lo:hi],
            no_task_row[lo:hi],
        )  # fmt: skip


@njit(cache=True)
def _tasks_rows(
    key, tick, time_s, veh_active, veh_serial, veh_new, veh_wants_session, veh_x, veh_y,
    veh_rate_mbps, veh_serving, view_up, slots_used, slots_reserved, task_state, task_kind,
    task_vehicle, task_service, task_work, task_done, task_replica, task_input_mb,
    task_state_mb, task_created_s, task_deadline_s, task_ready_s, task_priority, task_host,
    task_origin, task_backup, opened, levels, cum, max_jobs, capability, pos_xyz,
    session_consts, task_consts, dispatch_consts, started, no_session_row, generated,
    no_task_row,
):  # fmt: skip
    """Step 6's kernels on a block of environment rows."""
    _start_kernel(
        key, tick, time_s, veh_active, veh_serial, veh_new, veh_wants_session, task_state,
        task_kind, task_vehicle, task_service, task_work, task_done, task_replica,
        task_input_mb, task_state_mb, task_created_s, task_deadline_s, task_ready_s,
        task_priority, opened, *session_consts, levels, cum, started, no_session_row,
    )  # fmt: skip
    _generate_kernel(
        key, tick, time_s, veh_active, veh_serial, task_state, task_kind, task_vehicle,
        task_service, task_work, task_done, task_replica, task_input_mb, task_state_mb,
        task_created_s, task_deadline_s, task_ready_s, task_priority, opened, *task_consts,
        levels, cum, generated, no_task_row,
    )  # fmt: skip
    _dispatch_kernel(
        time_s, task_state, task_vehicle, task_service, task_input_mb, task_host, task_origin,
        task_ready_s, task_backup, veh_active, veh_x, veh_y, veh_rate_mbps, veh_serving,
        view_up, slots_used, slots_reserved, max_jobs, capability, pos_xyz, *dispatch_consts,
    )  # fmt: skip


_tasks_kernel, _tasks_parallel = compile_both("tasks", _tasks)


def tasks(world: World, layout: Layout, cfg: ScenarioConfig):
    """Step 6 in one call: :func:`sessions.start_sessions`,
    :func:`scheduler.generate_tasks`, :func:`scheduler.dispatch_waiting`. Returns
    (sessions started, sessions lost for want of a row, tasks generated, tasks lost for
    want of a row), (B,) each."""
    w, sc, tc = world, cfg.sessions, cfg.tasks
    args = w.bound("fused_tasks", (cfg, layout), lambda: (
        w.key, w.tick, w.time_s, w.veh_active, w.veh_serial, w.veh_new, w.veh_wants_session,
        w.veh_x, w.veh_y, w.veh_rate_mbps, w.veh_serving, w.view_up, w.slots_used,
        w.slots_reserved, w.task_state, w.task_kind, w.task_vehicle, w.task_service,
        w.task_work, w.task_done, w.task_replica, w.task_input_mb, w.task_state_mb,
        w.task_created_s, w.task_deadline_s, w.task_ready_s, w.task_priority, w.task_host,
        w.task_origin, w.task_backup, open_row_arrays(w), *priority_table(cfg),
        layout.max_jobs, layout.capability, layout.pos_xyz,
        (
            float(sc.vehicle_share), float(-np.expm1(-sc.start_rate_hz * cfg.dt_s)),
            int(tc.n_services), float(sc.setup_mb), float(sc.state_mb_min),
            float(sc.state_mb_max), float(sc.mean_duration_s),
        ),
        (
            float(tc.rate_per_vehicle_hz * cfg.dt_s), int(tc.n_services),
            float(tc.work_gcycles_min), float(tc.work_gcycles_max), float(tc.input_mb_min),
            float(tc.input_mb_max), float(tc.state_mb_min), float(tc.state_mb_max),
            float(tc.deadline_s_min), float(tc.deadline_s_max),
        ),
        (
            float(tc.dispatch_load_weight), float(tc.dispatch_distance_weight_per_km),
            float(tc.dispatch_affinity_bonus), bool(cfg.faults.replication),
        ),
    ))  # fmt: skip
    B = w.task_state.shape[0]
    out = tuple(np.empty(B, np.int64) for _ in range(4))
    parallel.run(w, "tasks", B, *args, *out)
    return out


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
