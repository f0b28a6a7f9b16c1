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

import numpy as np

from .config import ScenarioConfig
from .rng import Stream, uniform
from .scheduler import free_rows_for, open_rows, priority_levels
from .world import FREE, KIND_SESSION, QUEUED, World


def live_session_per_vehicle(world: World) -> np.ndarray:
    """(B, V) bool: the vehicle owns a live session."""
    B, V = world.veh_active.shape
    e, t = np.nonzero((world.task_kind == KIND_SESSION) & (world.task_state != FREE))
    has = np.zeros(B * V, dtype=bool)
    has[e * V + world.task_vehicle[e, t]] = True
    return has.reshape(B, V)


def start_sessions(world: World, cfg: ScenarioConfig) -> tuple[np.ndarray, np.ndarray]:
    """Create this tick's sessions as QUEUED rows.

    Returns (started, lost_for_lack_of_rows) per environment, (B,) each.
    """
    sc = cfg.sessions
    B, T = world.task_state.shape
    key, tick = world.key[:, None], world.tick[:, None]
    u = uniform(key, tick, Stream.SESSION_START, world.veh_serial)
    p_later = -np.expm1(-sc.start_rate_hz * cfg.dt_s)
    p = np.where(world.veh_new, sc.vehicle_share, p_later)
    drawn = (u < p) | world.veh_wants_session  # a dropped session is started again
    wants = world.veh_active & drawn & ~live_session_per_vehicle(world)
    world.veh_new[:] = False
    world.veh_wants_session |= wants
    started = wants.sum(1)
    if started.sum() == 0:
        return started, np.zeros(B, dtype=np.int64)
    env, veh = np.nonzero(wants)
    ordinal = np.arange(env.size) - np.repeat(np.cumsum(started) - started, started)
    fits, row = free_rows_for(world, env, ordinal)
    env, veh = env[fits], veh[fits]
    lost = started - np.bincount(env, minlength=B)

    serial = world.veh_serial[env, veh]
    now = world.time_s[env]

    def draw(stream):
        return uniform(world.key[env], world.tick[env], stream, serial)

    n_services = cfg.tasks.n_services
    world.task_state[env, row] = QUEUED
    world.task_kind[env, row] = KIND_SESSION
    world.task_vehicle[env, row] = veh
    world.task_service[env, row] = np.minimum(
        (draw(Stream.SESSION_SERVICE) * n_services).astype(np.int64), n_services - 1
    )
    world.task_work[env, row] = np.inf
    world.task_done[env, row] = 0.0
    world.task_replica[env, row] = 0.0
    world.task_input_mb[env, row] = sc.setup_mb
    world.task_state_mb[env, row] = sc.state_mb_min + draw(Stream.SESSION_STATE) * (
        sc.state_mb_max - sc.state_mb_min
    )
    world.task_created_s[env, row] = now
    if sc.mean_duration_s > 0:
        duration = -sc.mean_duration_s * np.log1p(-draw(Stream.SESSION_DURATION))
        world.task_deadline_s[env, row] = now + duration
    else:
        world.task_deadline_s[env, row] = np.inf
    world.task_ready_s[env, row] = now
    world.task_priority[env, row] = priority_levels(cfg, draw(Stream.SESSION_PRIORITY))
    open_rows(world, env, row, veh)
    return started, lost


def ending(world: World, end_s: np.ndarray) -> np.ndarray:
    """(B, T) live sessions that end by ``end_s`` (B,): vehicle gone or planned end reached."""
    session = (world.task_kind == KIND_SESSION) & (world.task_state != FREE)
    gone = ~np.take_along_axis(world.veh_active, world.task_vehicle, axis=1)
    due = world.task_deadline_s <= end_s[:, None] + 1e-9
    return session & (gone | due)


def served(world: World, ended: np.ndarray) -> None:
    """Sessions in ``ended`` (B, T) finished normally: their vehicles want no other."""
    e, t = np.nonzero(ended)
    world.veh_wants_session[e, world.task_vehicle[e, t]] = False
