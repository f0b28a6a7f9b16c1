"""Sessions: a vehicle's long-lived service instance (seeds 000 and 004).

The migration problem of the literature (Wang, Urgaonkar et al., IEEE/ACM
ToN 2019; DRACM, IEEE TMC 2022) is a service that follows a moving user:
every tick it costs the latency between the user's access node and the node
hosting it, and moving it is a one-off cost. A session is that service. It
lives in the task table (``task_kind == KIND_SESSION``), so the ledger,
dispatch, migration, failover, replicas and every invariant treat it exactly
like a task; what differs is:

* **start**: when a vehicle enters the map it starts a session with
  probability ``vehicle_share``; a vehicle without one starts one later at
  Poisson rate ``start_rate_hz``. Draws are keyed on the vehicle's serial and
  the tick (common random numbers: every policy meets the same sessions);
* **attributes**: service type and priority drawn like a task's; migratable
  state ``U[state_mb_min, state_mb_max]``; ``setup_mb`` uploaded at dispatch;
  no work to finish and no deadline;
* **end**: when its vehicle leaves the map, or at a planned end drawn from an
  exponential of mean ``mean_duration_s`` (0: lives as long as its vehicle).
  An ended session is counted as ``sessions_ended``; one that is lost
  (failover attempts exhausted, orphan timeout) as ``sessions_dropped``, and
  its vehicle, still wanting the service, starts a new one from scratch at
  the next tick (state lost, set-up again): losing a session never ends its
  latency bill, so dropping one can never pay.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .config import ScenarioConfig
from .rng import Stream, uniform_at
from .scheduler import next_free_row, open_row, open_row_arrays, priority_level, priority_table
from .world import FREE, KIND_SESSION, QUEUED, World

_S_START, _S_SERVICE, _S_STATE, _S_PRIORITY, _S_DURATION = (
    np.uint64(s)
    for s in (
        Stream.SESSION_START,
        Stream.SESSION_SERVICE,
        Stream.SESSION_STATE,
        Stream.SESSION_PRIORITY,
        Stream.SESSION_DURATION,
    )
)


@njit(cache=True)
def _start_kernel(
    key, tick, time_s, veh_active, veh_serial, veh_new, veh_wants_session, task_state,
    task_kind, task_vehicle, task_service, task_work, task_done, task_replica, task_input_mb,
    task_state_mb, task_created_s, task_deadline_s, task_ready_s, task_priority, opened,
    vehicle_share, p_later, n_services, setup_mb, state_min, state_max, mean_duration_s,
    levels, cum, started, lost,
):  # fmt: skip
    B, V = veh_active.shape
    T = task_state.shape[1]
    has_session = np.empty(V, np.bool_)
    for b in range(B):
        started[b] = 0
        lost[b] = 0
        has_session[:] = False
        for t in range(T):
            if task_kind[b, t] == KIND_SESSION and task_state[b, t] != FREE:
                has_session[task_vehicle[b, t]] = True
        row = 0
        for v in range(V):
            serial = veh_serial[b, v]
            p = vehicle_share if veh_new[b, v] else p_later
            veh_new[b, v] = False
            # a vehicle whose session was dropped starts it again
            drawn = uniform_at(key[b], tick[b], _S_START, serial) < p or veh_wants_session[b, v]
            if not (veh_active[b, v] and drawn and not has_session[v]):
                continue
            veh_wants_session[b, v] = True
            started[b] += 1
            row = next_free_row(task_state, b, row) if row >= 0 else -1
            if row < 0:
                lost[b] += 1
                continue
            k, t, now = key[b], tick[b], time_s[b]
            task_state[b, row] = QUEUED
            task_kind[b, row] = KIND_SESSION
            task_vehicle[b, row] = v
            service = int(uniform_at(k, t, _S_SERVICE, serial) * n_services)
            task_service[b, row] = min(service, n_services - 1)
            task_work[b, row] = np.inf
            task_done[b, row] = 0.0
            task_replica[b, row] = 0.0
            task_input_mb[b, row] = setup_mb
            u_state = uniform_at(k, t, _S_STATE, serial)
            task_state_mb[b, row] = state_min + u_state * (state_max - state_min)
            task_created_s[b, row] = now
            if mean_duration_s > 0:
                u_end = uniform_at(k, t, _S_DURATION, serial)
                task_deadline_s[b, row] = now + -mean_duration_s * math.log1p(-u_end)
            else:
                task_deadline_s[b, row] = np.inf
            task_ready_s[b, row] = now
            task_priority[b, row] = priority_level(
                uniform_at(k, t, _S_PRIORITY, serial), levels, cum
            )
            open_row(b, row, v, *opened)


def start_sessions(world: World, cfg: ScenarioConfig) -> tuple[np.ndarray, np.ndarray]:
    """Create this tick's sessions as QUEUED rows.

    Returns (started, lost_for_lack_of_rows) per environment, (B,) each.
    """
    w, sc = world, cfg.sessions
    B = w.task_state.shape[0]
    started, lost = np.empty(B, np.int64), np.empty(B, np.int64)
    args = w.bound("start_sessions", (cfg,), lambda: (
        w.key, w.tick, w.time_s, w.veh_active, w.veh_serial, w.veh_new, w.veh_wants_session,
        w.task_state, w.task_kind, w.task_vehicle, w.task_service, w.task_work, w.task_done,
        w.task_replica, w.task_input_mb, w.task_state_mb, w.task_created_s, w.task_deadline_s,
        w.task_ready_s, w.task_priority, open_row_arrays(w), float(sc.vehicle_share),
        float(-np.expm1(-sc.start_rate_hz * cfg.dt_s)), int(cfg.tasks.n_services),
        float(sc.setup_mb), float(sc.state_mb_min), float(sc.state_mb_max),
        float(sc.mean_duration_s), *priority_table(cfg),
    ))  # fmt: skip
    _start_kernel(*args, started, lost)
    return started, lost
