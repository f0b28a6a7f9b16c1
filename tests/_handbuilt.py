"""Hand-built simulator states for tests that pin the model on hand-computed values.

A *quiet* simulator has no random arrivals (no sessions, no background tasks, no
vehicle entries), no random faults and parked vehicles, so a state written into its
world evolves only as the model says. Rows are placed with the ledger kept consistent
(``check_invariants`` stays on).
"""

from __future__ import annotations

import numpy as np

from roadedge.envs.sim import radio
from roadedge.envs.sim.config import load_scenario
from roadedge.envs.sim.rng import key_from_seed
from roadedge.envs.sim.simulator import Simulator
from roadedge.envs.sim.world import KIND_SESSION, KIND_TASK, ORPHANED, RUNNING

QUIET = {
    "sessions.vehicle_share": 0.0,
    "sessions.start_rate_hz": 0.0,
    "tasks.rate_per_vehicle_hz": 0.0,
    "vehicles.arrival_rate_hz": 0.0,
    "faults.rsu_mttf_s": 1e12,
    "faults.uav_mttf_s": 1e12,
}


def quiet_sim(overrides=None, seed=1, scenario="small", warmup=1) -> Simulator:
    """A quiet simulator after ``warmup`` no-op ticks (time = warmup * dt)."""
    cfg = load_scenario(scenario, {**QUIET, **(overrides or {})})
    sim = Simulator(cfg, batch_size=1, check_invariants=True)
    sim.reset(np.array([key_from_seed(seed)], dtype=np.uint64))
    sim.world.veh_speed[:] = 0.0
    for _ in range(warmup):
        sim.step(noop(sim))
    return sim


def noop(sim) -> np.ndarray:
    return np.zeros((sim.batch_size, sim.layout.n_nodes), dtype=np.int64)


def act(sim, **moves) -> np.ndarray:
    """Actions with ``n<source>=<target>`` moves, e.g. ``act(sim, n0=1)``: 0 -> 1."""
    a = noop(sim)
    for k, m in moves.items():
        a[0, int(k[1:])] = m + 1
    return a


def refresh_radio(sim) -> None:
    radio.update_access_links(sim.world, sim.layout, sim.cfg.radio)


def park(sim, veh: int, node: int) -> None:
    """Vehicle ``veh`` parked on the map right under node ``node`` (so attached to it)."""
    w = sim.world
    w.veh_active[0, veh] = True
    w.veh_x[0, veh], w.veh_y[0, veh] = sim.layout.pos_xyz[node, :2]
    w.veh_speed[0, veh] = 0.0
    refresh_radio(sim)
    assert w.veh_access[0, veh] == node


def free_row(sim) -> int:
    return int(np.flatnonzero(sim.world.task_state[0] == 0)[0])


def place(
    sim,
    *,
    veh: int,
    host: int,
    service: int,
    kind: int = KIND_TASK,
    state: int = RUNNING,
    priority: int = 5,
    work: float = 1e15,
    done: float = 0.0,
    replica: float = 0.0,
    backup: int = -1,
    deadline_s: float = 1e6,
    state_mb: float = 10.0,
    input_mb: float = 2.0,
    row: int | None = None,
) -> int:
    """A live row (RUNNING on ``host``, or ORPHANED from ``host``) with the ledger kept
    consistent; returns its row index."""
    w = sim.world
    t = free_row(sim) if row is None else row
    assert w.task_state[0, t] == 0
    w.task_state[0, t] = state
    w.task_kind[0, t] = kind
    w.task_vehicle[0, t] = veh
    w.task_service[0, t] = service
    w.task_priority[0, t] = priority
    w.task_work[0, t] = np.inf if kind == KIND_SESSION else work
    w.task_done[0, t] = done
    w.task_replica[0, t] = replica
    w.task_input_mb[0, t] = input_mb
    w.task_state_mb[0, t] = state_mb
    w.task_created_s[0, t] = w.time_s[0]
    w.task_deadline_s[0, t] = np.inf if kind == KIND_SESSION else deadline_s
    w.task_ready_s[0, t] = 0.0
    w.task_origin[0, t] = host
    w.task_backup[0, t] = backup
    w.task_mig_target[0, t] = -1
    w.task_attempts[0, t] = 0
    w.task_interrupted_s[0, t] = np.nan
    if state == RUNNING:
        w.task_host[0, t] = host
        w.slots_used[0, host] += 1
    else:
        assert state == ORPHANED
        w.task_host[0, t] = -1
        w.task_orphaned_s[0, t] = w.time_s[0]
        w.task_interrupted_s[0, t] = w.time_s[0]
    w.veh_tasks[0, veh] += 1
    return t


def per_hop_ms_by_hand(cfg) -> float:
    """One backhaul hop for one request: hop latency + 8 * request_mb / backhaul [ms]."""
    r = cfg.radio
    return r.hop_latency_ms + 1000.0 * 8.0 * r.request_mb / cfg.migration.backhaul_mbps


def latency_ms_by_hand(sim, veh: int, host: int, sharing: int) -> float:
    """MODEL.md section 7: radio + hops * per-hop + compute share, for an attached vehicle."""
    w, lay, r = sim.world, sim.layout, sim.cfg.radio
    a = int(w.veh_access[0, veh])
    assert a >= 0
    radio_ms = 1000.0 * 8.0 * r.request_mb / w.veh_rate_mbps[0, veh]
    backhaul_ms = lay.hops[a, host] * per_hop_ms_by_hand(sim.cfg)
    compute_ms = 1000.0 * r.compute_request_gcycles * 1e9 / (lay.cpu_hz[host] / sharing)
    return radio_ms + backhaul_ms + compute_ms


def vehicle_world(states, n_nodes: int, n_rows=None, seed=0):
    """A bare one-environment World whose vehicle rows come from (x, y, dir, speed)
    tuples, all active, with distinct serials (so distinct draws per vehicle)."""
    from roadedge.envs.sim.world import allocate

    n = n_rows or len(states)
    w = allocate(1, n_nodes, n, 4)
    w.key[0] = key_from_seed(seed)
    for i, (x, y, d, v) in enumerate(states):
        w.veh_x[0, i], w.veh_y[0, i], w.veh_dir[0, i], w.veh_speed[0, i] = x, y, d, v
        w.veh_active[0, i] = True
    w.veh_serial[0] = np.arange(n, dtype=np.uint64)
    return w


def sessions_ending(world, end_s: np.ndarray) -> np.ndarray:
    """(B, T): the live session rows the outcomes phase ends by ``end_s`` (B,) when nothing
    is dropped (vehicle gone or planned end reached), run on a copy of ``world``."""
    from roadedge.envs.sim import outcomes
    from roadedge.envs.sim.stats import Counters
    from roadedge.envs.sim.world import FREE, KIND_SESSION

    w = world.copy()
    B, T = w.task_state.shape
    N = w.slots_used.shape[1]
    none = np.zeros((B, T), bool)
    zeros = np.zeros(B, np.int64)
    outcomes.settle(
        w, np.zeros((N, N), np.int64), Counters.zeros(B), none, none, np.zeros((B, T)),
        np.asarray(end_s, np.float64), zeros, zeros, 5.0, 1.0,
    )  # fmt: skip
    live_session = (world.task_state != FREE) & (world.task_kind == KIND_SESSION)
    return live_session & (w.task_state == FREE)
