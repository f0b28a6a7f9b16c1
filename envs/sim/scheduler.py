"""Task generation and dispatch (seeds 002 and 004).

* Vehicles generate tasks as independent Poisson streams; each task draws a
  service type, work, input and state sizes, a deadline and a priority.
* Waiting tasks are dispatched through the capability index (seed 004): the
  eligible nodes of a task are the nodes the controller believes up, that run
  its service and have a free slot. Among them the scheduler picks the lowest
  ``w_l * load + w_d * distance_km - w_a * [node already serves this vehicle]``
  (least loaded, nearby, session affinity; weights ``tasks.dispatch_*``). With
  ``w_l = 0`` tasks go to the nearest capable node with a free slot, the
  access-node offloading of most vehicular edge papers, which leaves load
  imbalances for the migration controller to correct.
* Several tasks choosing the same node in one tick are admitted in task order
  up to the node's free slots; the rest wait for the next tick.
* When replication is on, the best-scoring other node that runs the service
  and is believed up (free slot not required: a replica needs no slot) keeps
  the task's replica (its backup).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .config import ScenarioConfig
from .layout import Layout
from .ledger import dispatch_row
from .rng import Stream, poisson_at, uniform_at
from .world import FREE, KIND_TASK, QUEUED, RUNNING, World

MIN_UPLOAD_RATE_MBPS = 1.0
ARRIVALS_MAX = 5  # per vehicle and tick: the Poisson draw is truncated at 4
_U64_ARRIVALS_MAX = np.uint64(ARRIVALS_MAX)
_S_ARRIVALS = np.uint64(Stream.TASK_ARRIVALS)
_S_SERVICE, _S_WORK, _S_INPUT, _S_STATE, _S_DEADLINE, _S_PRIORITY = (
    np.uint64(s)
    for s in (
        Stream.TASK_SERVICE,
        Stream.TASK_WORK,
        Stream.TASK_INPUT,
        Stream.TASK_STATE,
        Stream.TASK_DEADLINE,
        Stream.TASK_PRIORITY,
    )
)


def priority_table(cfg: ScenarioConfig) -> tuple[np.ndarray, np.ndarray]:
    """Seed 001 priority levels (high, medium, low = 8, 5, 2) and the cumulative
    ``tasks.priority_probs`` they are drawn with (:func:`priority_level`)."""
    fc = cfg.faults
    levels = np.array([fc.priority_high, fc.priority_medium, fc.priority_low], np.int64)
    return levels, np.cumsum(np.asarray(cfg.tasks.priority_probs, np.float64))


@njit(cache=True)
def priority_level(u, levels, cum):
    """The priority level a uniform ``u`` draws: level k for ``cum[k-1] <= u < cum[k]``."""
    k = 0
    for c in cum:
        k += u >= c
    return levels[min(k, 2)]


@njit(cache=True)
def next_free_row(task_state, b, start):
    """The first FREE row of environment ``b`` at or after ``start``; -1 when none.
    New rows take the free rows in ascending order, sessions first, then tasks."""
    for t in range(start, task_state.shape[1]):
        if task_state[b, t] == FREE:
            return t
    return -1


@njit(cache=True)
def open_row(b, t, v, task_host, task_origin, task_backup, task_mig_target, task_retry_src,
             task_attempts, task_interrupted_s, task_latency_ms, veh_tasks):  # fmt: skip
    """A new row (task or session) starts unplaced, with no migration, retry, failed attempt
    or interruption, and counts on its vehicle (``veh_tasks``)."""
    task_host[b, t] = -1
    task_origin[b, t] = -1
    task_backup[b, t] = -1
    task_mig_target[b, t] = -1
    task_retry_src[b, t] = -1
    task_attempts[b, t] = 0
    task_interrupted_s[b, t] = np.nan
    task_latency_ms[b, t] = 0.0
    veh_tasks[b, v] += 1


def open_row_arrays(world: World) -> tuple:
    """The arrays :func:`open_row` writes, in its order."""
    w = world
    return (
        w.task_host, w.task_origin, w.task_backup, w.task_mig_target, w.task_retry_src,
        w.task_attempts, w.task_interrupted_s, w.task_latency_ms, w.veh_tasks,
    )  # fmt: skip


@njit(cache=True)
def _generate_kernel(
    key, tick, time_s, veh_active, veh_serial, task_state, task_kind, task_vehicle,
    task_service, task_work, task_done, task_replica, task_input_mb, task_state_mb,
    task_created_s, task_deadline_s, task_ready_s, task_priority, opened,
    mean, n_services, work_min, work_max, input_min, input_max, state_min, state_max,
    deadline_min, deadline_max, levels, cum, generated, dropped,
):  # fmt: skip
    B, V = veh_active.shape
    for b in range(B):
        generated[b] = 0
        dropped[b] = 0
        row = 0
        for v in range(V):
            if not veh_active[b, v]:
                continue
            serial = veh_serial[b, v]
            count = poisson_at(
                uniform_at(key[b], tick[b], _S_ARRIVALS, serial), mean, ARRIVALS_MAX - 1
            )
            for j in range(count):
                generated[b] += 1
                row = next_free_row(task_state, b, row) if row >= 0 else -1
                if row < 0:
                    dropped[b] += 1
                    continue
                # keyed on (vehicle serial, arrival ordinal): never on the row
                index = serial * _U64_ARRIVALS_MAX + np.uint64(j)
                k, t, now = key[b], tick[b], time_s[b]
                task_state[b, row] = QUEUED
                task_kind[b, row] = KIND_TASK
                task_vehicle[b, row] = v
                service = int(uniform_at(k, t, _S_SERVICE, index) * n_services)
                task_service[b, row] = min(service, n_services - 1)
                work = work_min + uniform_at(k, t, _S_WORK, index) * (work_max - work_min)
                task_work[b, row] = work * 1e9
                task_done[b, row] = 0.0
                task_replica[b, row] = 0.0
                u_input = uniform_at(k, t, _S_INPUT, index)
                task_input_mb[b, row] = input_min + u_input * (input_max - input_min)
                u_state = uniform_at(k, t, _S_STATE, index)
                task_state_mb[b, row] = state_min + u_state * (state_max - state_min)
                task_created_s[b, row] = now
                u_deadline = uniform_at(k, t, _S_DEADLINE, index)
                task_deadline_s[b, row] = (
                    now + deadline_min + u_deadline * (deadline_max - deadline_min)
                )
                task_ready_s[b, row] = now
                task_priority[b, row] = priority_level(
                    uniform_at(k, t, _S_PRIORITY, index), levels, cum
                )
                open_row(b, row, v, *opened)


def generate_tasks(world: World, cfg: ScenarioConfig) -> tuple[np.ndarray, np.ndarray]:
    """Create this tick's tasks. Returns (generated, dropped_for_lack_of_rows) per env.

    Arrivals and a task's attributes are drawn from (episode key, tick, the
    vehicle's serial number, arrival ordinal of that vehicle this tick), never
    from the task row it lands in: which rows are free depends on the
    controller, so keying on the row would give two policies different traffic
    for the same seed. Keyed this way,
    every policy sees the same task stream (common random numbers), and paired
    comparisons on a seed compare decisions, not luck.
    """
    w, tc = world, cfg.tasks
    B = w.task_state.shape[0]
    generated, dropped = np.empty(B, np.int64), np.empty(B, np.int64)
    args = w.bound("generate_tasks", (cfg,), lambda: (
        w.key, w.tick, w.time_s, w.veh_active, w.veh_serial, w.task_state, w.task_kind,
        w.task_vehicle, w.task_service, w.task_work, w.task_done, w.task_replica,
        w.task_input_mb, w.task_state_mb, w.task_created_s, w.task_deadline_s, w.task_ready_s,
        w.task_priority, open_row_arrays(w), float(tc.rate_per_vehicle_hz * cfg.dt_s),
        int(tc.n_services), float(tc.work_gcycles_min), float(tc.work_gcycles_max),
        float(tc.input_mb_min), float(tc.input_mb_max), float(tc.state_mb_min),
        float(tc.state_mb_max), float(tc.deadline_s_min), float(tc.deadline_s_max),
        *priority_table(cfg),
    ))  # fmt: skip
    _generate_kernel(*args, generated, dropped)
    return generated, dropped


@njit(cache=True)
def node_score(load, dist_km, serving, n, w_load, w_dist_per_km, affinity_bonus):
    """Dispatch score of node ``n`` (lower is better): ``w_l * load + w_d * km - w_a *
    [n already serves the vehicle]``."""
    affinity = 1.0 if n == serving else 0.0
    return w_load * load + w_dist_per_km * dist_km - affinity_bonus * affinity


@njit(cache=True)
def _vehicle_km(veh_active, veh_x, veh_y, b, v, pos_xyz, n):
    """Ground distance [km] from vehicle ``v`` to node ``n`` (0 for a vehicle off the map)."""
    if not veh_active[b, v]:
        return 0.0
    dx = veh_x[b, v] - pos_xyz[n, 0]
    dy = veh_y[b, v] - pos_xyz[n, 1]
    return math.sqrt(dx * dx + dy * dy) / 1000.0


def dispatch_score(
    world: World, layout: Layout, cfg: ScenarioConfig, env: np.ndarray, task: np.ndarray
) -> np.ndarray:
    """Scheduler score of each node for each given task (lower is better), (K, N)."""
    w, tc = world, cfg.tasks
    out = np.empty((len(env), layout.n_nodes))
    for k, (b, t) in enumerate(zip(env.tolist(), task.tolist(), strict=True)):
        v = int(w.task_vehicle[b, t])
        for n in range(layout.n_nodes):
            load = (w.slots_used[b, n] + w.slots_reserved[b, n]) / layout.max_jobs[n]
            km = _vehicle_km(w.veh_active, w.veh_x, w.veh_y, b, v, layout.pos_xyz, n)
            out[k, n] = node_score(
                load,
                km,
                w.veh_serving[b, v],
                n,
                tc.dispatch_load_weight,
                tc.dispatch_distance_weight_per_km,
                tc.dispatch_affinity_bonus,
            )
    return out


@njit(cache=True)
def _dispatch_kernel(
    time_s, task_state, task_vehicle, task_service, task_input_mb, task_host, task_origin,
    task_ready_s, task_backup, veh_active, veh_x, veh_y, veh_rate_mbps, veh_serving, view_up,
    slots_used, slots_reserved, max_jobs, capability, pos_xyz, w_load, w_dist_per_km,
    affinity_bonus, replication,
):  # fmt: skip
    B, T = task_state.shape
    N = max_jobs.shape[0]
    free = np.empty(N, np.int64)  # free slots before this tick's dispatch
    load = np.empty(N)
    score = np.empty(N)
    choice = np.empty(T, np.int64)
    backup = np.empty(T, np.int64)
    for b in range(B):
        for n in range(N):
            free[n] = max_jobs[n] - slots_used[b, n] - slots_reserved[b, n]
            load[n] = (slots_used[b, n] + slots_reserved[b, n]) / max_jobs[n]
        # 1. every waiting task chooses on the state before this tick's admissions
        for t in range(T):
            choice[t] = -1
            if task_state[b, t] != QUEUED:
                continue
            v = task_vehicle[b, t]
            service = task_service[b, t]
            best, alt = -1, -1
            for n in range(N):
                km = _vehicle_km(veh_active, veh_x, veh_y, b, v, pos_xyz, n)
                score[n] = node_score(
                    load[n], km, veh_serving[b, v], n, w_load, w_dist_per_km, affinity_bonus
                )
                if capability[n, service] and view_up[b, n] and free[n] > 0:
                    if best < 0 or score[n] < score[best]:
                        best = n
            if replication and best >= 0:  # a replica needs no free slot
                for n in range(N):
                    if n != best and capability[n, service] and view_up[b, n]:
                        if alt < 0 or score[n] < score[alt]:
                            alt = n
            choice[t], backup[t] = best, alt
        # 2. admission in task order, up to each node's free slots; the rest wait
        for t in range(T):
            node = choice[t]
            if node < 0 or free[node] == 0:
                continue
            free[node] -= 1
            dispatch_row(slots_used, task_state, task_host, task_origin, b, t, node)
            v = task_vehicle[b, t]
            rate = max(veh_rate_mbps[b, v], MIN_UPLOAD_RATE_MBPS)
            task_ready_s[b, t] = time_s[b] + task_input_mb[b, t] * 8 / rate
            veh_serving[b, v] = node
            if replication:
                task_backup[b, t] = backup[t]


def dispatch_waiting(world: World, layout: Layout, cfg: ScenarioConfig) -> None:
    """Give queued tasks a node (see module docstring); the rest keep waiting."""
    w, tc = world, cfg.tasks
    args = w.bound("dispatch", (cfg, layout), lambda: (
        w.time_s, w.task_state, w.task_vehicle, w.task_service, w.task_input_mb, w.task_host,
        w.task_origin, w.task_ready_s, w.task_backup, w.veh_active, w.veh_x, w.veh_y,
        w.veh_rate_mbps, w.veh_serving, w.view_up, w.slots_used, w.slots_reserved,
        layout.max_jobs, layout.capability, layout.pos_xyz, float(tc.dispatch_load_weight),
        float(tc.dispatch_distance_weight_per_km), float(tc.dispatch_affinity_bonus),
        bool(cfg.faults.replication),
    ))  # fmt: skip
    _dispatch_kernel(*args)


@njit(cache=True)
def _checkpoint_kernel(time_s, task_state, task_host, task_backup, task_done, task_replica,
                       node_up, dt_s, interval_s):  # fmt: skip
    for b in range(time_s.shape[0]):
        t0 = time_s[b]
        # due when the tick (t, t + dt] crosses a multiple of the interval
        if math.floor((t0 + dt_s) / interval_s + 1e-9) <= math.floor(t0 / interval_s + 1e-9):
            continue
        for t in range(task_state.shape[1]):
            host = max(task_host[b, t], 0)
            if task_state[b, t] == RUNNING and node_up[b, host] and task_backup[b, t] >= 0:
                task_replica[b, t] = task_done[b, t]


def checkpoint_replicas(world: World, cfg: ScenarioConfig) -> None:
    """Every ``replica_interval_s``, running tasks on live hosts copy progress to backup."""
    if not cfg.faults.replication:
        return
    w = world
    args = w.bound("checkpoint", (cfg,), lambda: (
        w.time_s, w.task_state, w.task_host, w.task_backup, w.task_done, w.task_replica,
        w.node_up, float(cfg.dt_s), float(cfg.faults.replica_interval_s),
    ))  # fmt: skip
    _checkpoint_kernel(*args)
