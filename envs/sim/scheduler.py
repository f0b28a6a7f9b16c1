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

import numpy as np

from . import ledger
from .arrays import gather
from .config import ScenarioConfig
from .layout import Layout
from .rng import Stream, poisson_from_uniform, uniform
from .world import FREE, KIND_TASK, QUEUED, RUNNING, World

MIN_UPLOAD_RATE_MBPS = 1.0
ARRIVALS_MAX = 5  # per vehicle and tick: the Poisson draw is truncated at 4


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
    B, T = world.task_state.shape
    key, tick = world.key[:, None], world.tick[:, None]
    u = uniform(key, tick, Stream.TASK_ARRIVALS, world.veh_serial)
    counts = poisson_from_uniform(
        u, cfg.tasks.rate_per_vehicle_hz * cfg.dt_s, k_max=ARRIVALS_MAX - 1
    )
    counts = np.where(world.veh_active, counts, 0)
    generated = counts.sum(1)
    if generated.sum() == 0:
        return generated, np.zeros(B, dtype=np.int64)
    flat_counts = counts.ravel()
    owner = np.repeat(np.arange(flat_counts.size), flat_counts)
    env, veh = np.divmod(owner, counts.shape[1])
    ordinal = np.arange(env.size) - np.repeat(np.cumsum(generated) - generated, generated)
    # arrival ordinal of each task within its vehicle's arrivals this tick (< ARRIVALS_MAX)
    per_vehicle = np.arange(env.size) - np.repeat(np.cumsum(flat_counts) - flat_counts, flat_counts)
    draw_index = world.veh_serial[env, veh] * np.uint64(ARRIVALS_MAX) + per_vehicle.astype(
        np.uint64
    )
    fits, row = free_rows_for(world, env, ordinal)
    env, veh, draw_index = env[fits], veh[fits], draw_index[fits]
    dropped = generated - np.bincount(env, minlength=B)

    tc = cfg.tasks
    now = world.time_s[env]

    def draw(stream):
        return uniform(world.key[env], world.tick[env], stream, draw_index)

    world.task_state[env, row] = QUEUED
    world.task_kind[env, row] = KIND_TASK
    world.task_vehicle[env, row] = veh
    world.task_service[env, row] = np.minimum(
        (draw(Stream.TASK_SERVICE) * tc.n_services).astype(np.int64), tc.n_services - 1
    )
    work = tc.work_gcycles_min + draw(Stream.TASK_WORK) * (
        tc.work_gcycles_max - tc.work_gcycles_min
    )
    world.task_work[env, row] = work * 1e9
    world.task_done[env, row] = 0.0
    world.task_replica[env, row] = 0.0
    world.task_input_mb[env, row] = tc.input_mb_min + draw(Stream.TASK_INPUT) * (
        tc.input_mb_max - tc.input_mb_min
    )
    world.task_state_mb[env, row] = tc.state_mb_min + draw(Stream.TASK_STATE) * (
        tc.state_mb_max - tc.state_mb_min
    )
    world.task_created_s[env, row] = now
    world.task_deadline_s[env, row] = (
        now
        + tc.deadline_s_min
        + draw(Stream.TASK_DEADLINE) * (tc.deadline_s_max - tc.deadline_s_min)
    )
    world.task_ready_s[env, row] = now
    world.task_priority[env, row] = priority_levels(cfg, draw(Stream.TASK_PRIORITY))
    open_rows(world, env, row, veh)
    return generated, dropped


def free_rows_for(
    world: World, env: np.ndarray, ordinal: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows for new tasks or sessions: the ``ordinal``-th new row of environment ``env``
    takes that environment's ``ordinal``-th free row (ascending). Returns whether each
    gets one (beyond the free rows it is lost) and the rows of those that do."""
    B = world.task_state.shape[0]
    free_env, free_row = np.nonzero(world.task_state == FREE)
    n_free = np.bincount(free_env, minlength=B)
    fits = ordinal < n_free[env]
    start = np.cumsum(n_free) - n_free
    return fits, free_row[start[env[fits]] + ordinal[fits]]


def priority_levels(cfg: ScenarioConfig, u: np.ndarray) -> np.ndarray:
    """Seed 001 priority levels (high/medium/low = 8/5/2) drawn with
    ``tasks.priority_probs`` from uniforms ``u``."""
    fc = cfg.faults
    levels = np.array([fc.priority_high, fc.priority_medium, fc.priority_low])
    cum = np.cumsum(cfg.tasks.priority_probs)
    return levels[np.minimum(np.searchsorted(cum, u, side="right"), 2)]


def open_rows(world: World, env: np.ndarray, row: np.ndarray, veh: np.ndarray) -> None:
    """New rows (tasks or sessions) start unplaced, with no migration, retry, failed
    attempt or interruption, and count on their vehicle (``veh_tasks``)."""
    world.task_host[env, row] = -1
    world.task_origin[env, row] = -1
    world.task_backup[env, row] = -1
    world.task_mig_target[env, row] = -1
    world.task_retry_src[env, row] = -1
    world.task_attempts[env, row] = 0
    world.task_interrupted_s[env, row] = np.nan
    world.task_latency_ms[env, row] = 0.0
    np.add.at(world.veh_tasks, (env, veh), 1)


def dispatch_score(
    world: World, layout: Layout, cfg: ScenarioConfig, env: np.ndarray, task: np.ndarray
) -> np.ndarray:
    """Scheduler score of each node for each given task (lower is better), (K, N)."""
    load = (world.slots_used[env] + world.slots_reserved[env]) / layout.max_jobs
    veh = world.task_vehicle[env, task]
    vx, vy = world.veh_x[env, veh], world.veh_y[env, veh]
    dx = vx[:, None] - layout.pos_xyz[None, :, 0]
    dy = vy[:, None] - layout.pos_xyz[None, :, 1]
    dist_km = np.sqrt(dx * dx + dy * dy) / 1000.0
    dist_km = np.where(world.veh_active[env, veh][:, None], dist_km, 0.0)
    serving = world.veh_serving[env, veh]
    affinity = np.arange(layout.n_nodes)[None, :] == serving[:, None]
    tc = cfg.tasks
    return (
        tc.dispatch_load_weight * load
        + tc.dispatch_distance_weight_per_km * dist_km
        - tc.dispatch_affinity_bonus * affinity
    )


def rank_within(groups: np.ndarray, order_key: np.ndarray) -> np.ndarray:
    """0-based rank of each element inside its group, by ascending ``order_key``."""
    if groups.size == 0:
        return groups.copy()
    order = np.lexsort((order_key, groups))
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    rank_sorted = np.arange(g.size) - np.repeat(starts, np.diff(np.r_[starts, g.size]))
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    return rank


def dispatch_waiting(world: World, layout: Layout, cfg: ScenarioConfig) -> None:
    """Give queued tasks a node (see module docstring); the rest keep waiting."""
    env, task = np.nonzero(world.task_state == QUEUED)
    if env.size == 0:
        return
    B, N = world.slots_used.shape
    score = dispatch_score(world, layout, cfg, env, task)
    service = world.task_service[env, task]
    capable = layout.capability[:, service].T & world.view_up[env]  # (K, N)
    has_slot = ledger.free_slots(world, layout)[env] > 0
    eligible = capable & has_slot
    masked = np.where(eligible, score, np.inf)
    choice = np.argmin(masked, axis=1)
    ok = np.isfinite(masked[np.arange(env.size), choice])
    env, task, choice, capable, score = env[ok], task[ok], choice[ok], capable[ok], score[ok]
    rank = rank_within(env * N + choice, task.astype(np.float64))
    admit = rank < ledger.free_slots(world, layout)[env, choice]
    env, task, node = env[admit], task[admit], choice[admit]
    capable, score = capable[admit], score[admit]
    ledger.dispatch(world, layout, env, task, node)
    veh = world.task_vehicle[env, task]
    rate = np.maximum(world.veh_rate_mbps[env, veh], MIN_UPLOAD_RATE_MBPS)
    world.task_ready_s[env, task] = world.time_s[env] + world.task_input_mb[env, task] * 8 / rate
    world.veh_serving[env, veh] = node
    if cfg.faults.replication:
        alt = np.where(capable & (np.arange(N)[None, :] != node[:, None]), score, np.inf)
        backup = np.argmin(alt, axis=1)
        has_backup = np.isfinite(alt[np.arange(env.size), backup])
        world.task_backup[env, task] = np.where(has_backup, backup, -1)


def checkpoint_replicas(world: World, cfg: ScenarioConfig) -> None:
    """Every ``replica_interval_s``, running tasks on live hosts copy progress to backup."""
    if not cfg.faults.replication:
        return
    interval = cfg.faults.replica_interval_s
    t0, t1 = world.time_s, world.time_s + cfg.dt_s
    due = np.floor(t1 / interval + 1e-9) > np.floor(t0 / interval + 1e-9)
    if not due.any():
        return
    B, T = world.task_state.shape
    host = np.maximum(world.task_host, 0)
    host_up = gather(world.node_up, host)
    sync = due[:, None] & (world.task_state == RUNNING) & host_up & (world.task_backup >= 0)
    world.task_replica[sync] = world.task_done[sync]
