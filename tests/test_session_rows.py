"""Session starts and ends pinned on exact draws and boundaries (sessions.py).

Written against the mutants that survived ``make mutants`` on envs/sim/sessions.py:
the start probability at a tick other than 1 s, rows running out, the spread of
the state sizes and priorities, the defaults of a new row, a short planned
duration and the planned-end boundary.
"""

from __future__ import annotations

import numpy as np
import pytest
from _handbuilt import quiet_sim

from roadedge.envs.sim import sessions
from roadedge.envs.sim.rng import Stream, uniform
from roadedge.envs.sim.world import FREE, KIND_SESSION, QUEUED, RUNNING


def _sessions(w):
    return (w.task_kind[0] == KIND_SESSION) & (w.task_state[0] != FREE)


def test_later_starts_use_one_minus_exp_of_rate_times_dt():
    """p = 1 - exp(-start_rate_hz * dt_s) per tick for a vehicle without a session (not
    rate ** dt, which equals it only at dt = 1 s): exactly the vehicles whose own draw
    is below p start one."""
    sim = quiet_sim({"sessions.start_rate_hz": 0.8, "dt_s": 0.5})
    w = sim.world
    w.veh_active[0, :] = True
    w.veh_new[0, :] = False
    w.veh_serial[0, :] = np.arange(w.veh_active.shape[1], dtype=np.uint64)
    u = uniform(w.key[:, None], w.tick[:, None], Stream.SESSION_START, w.veh_serial)[0]
    p = -np.expm1(-0.8 * 0.5)  # 0.3297
    expected = u < p
    assert 0 < expected.sum() < expected.size  # the draw separates the vehicles
    assert ((u >= p) & (u < 0.8**0.5)).any()  # and rate ** dt would start more
    started, lost = sessions.start_sessions(w, sim.cfg)
    assert started[0] == expected.sum() and lost[0] == 0
    owners = w.task_vehicle[0][_sessions(w)]
    np.testing.assert_array_equal(np.sort(owners), np.flatnonzero(expected))


def test_entry_draw_uses_vehicle_share():
    sim = quiet_sim()
    cfg = sim.cfg.replace({"sessions.vehicle_share": 0.4})
    w = sim.world
    w.veh_active[0, :] = True
    w.veh_new[0, :] = True
    u = uniform(w.key[:, None], w.tick[:, None], Stream.SESSION_START, w.veh_serial)[0]
    started, _ = sessions.start_sessions(w, cfg)
    assert 0 < started[0] == (u < 0.4).sum() < u.size
    assert not w.veh_new.any()  # the entry draw is made once


def test_sessions_beyond_the_free_rows_are_lost_in_vehicle_order():
    """With two free rows and five vehicles starting sessions: the first two vehicles (by
    row) get the two free rows, in row order; three are lost and counted."""
    sim = quiet_sim()
    cfg = sim.cfg.replace({"sessions.vehicle_share": 1.0})
    w = sim.world
    T = w.task_state.shape[1]
    free = [3, T - 2]
    w.task_state[0, :] = QUEUED  # occupied (not owned by the test's vehicles)
    w.task_kind[0, :] = 0
    w.task_vehicle[0, :] = 20
    w.veh_tasks[0, 20] = T - len(free)
    w.task_state[0, free] = FREE
    w.veh_active[0, :] = False
    w.veh_active[0, [2, 4, 5, 7, 9]] = True
    w.veh_new[0, :] = True
    started, lost = sessions.start_sessions(w, cfg)
    assert started[0] == 5 and lost[0] == 3
    assert w.task_kind[0, 3] == KIND_SESSION and w.task_vehicle[0, 3] == 2
    assert w.task_kind[0, T - 2] == KIND_SESSION and w.task_vehicle[0, T - 2] == 4
    assert w.veh_tasks[0, 2] == 1 and w.veh_tasks[0, 4] == 1 and w.veh_tasks[0, 5] == 0


def test_state_sizes_spread_over_the_range_and_priorities_take_every_level():
    sim = quiet_sim(
        {
            "sessions.vehicle_share": 1.0,
            "sessions.state_mb_min": 10.0,
            "sessions.state_mb_max": 50.0,
            "vehicles.max_vehicles": 400,
            "tasks.max_tasks": 512,
        }
    )
    w = sim.world
    w.veh_active[0, :] = True
    w.veh_new[0, :] = True
    w.veh_serial[0, :] = np.arange(400, dtype=np.uint64)
    sessions.start_sessions(w, sim.cfg)
    rows = _sessions(w)
    state = w.task_state_mb[0][rows]
    assert rows.sum() == 400
    assert state.min() >= 10.0 and state.max() <= 50.0
    assert state.min() < 12.0 and state.max() > 48.0  # U[10, 50]: the whole range
    assert state.mean() == pytest.approx(30.0, abs=2.0)
    prio = w.task_priority[0][rows]
    share = [np.mean(prio == level) for level in (8, 5, 2)]
    np.testing.assert_allclose(share, sim.cfg.tasks.priority_probs, atol=0.07)
    service = w.task_service[0][rows]
    assert set(service.tolist()) == set(range(sim.cfg.tasks.n_services))


def test_a_new_session_starts_unplaced_with_no_attempt_or_retry():
    sim = quiet_sim()
    cfg = sim.cfg.replace({"sessions.vehicle_share": 1.0})
    w = sim.world
    w.task_attempts[0, :] = 7  # leftovers of earlier rows must not carry over
    w.task_origin[0, :] = 2
    w.task_backup[0, :] = 1
    w.task_retry_src[0, :] = 1
    w.veh_active[0, :] = False
    w.veh_active[0, 0] = True
    w.veh_new[0, 0] = True
    sessions.start_sessions(w, cfg)
    row = int(np.flatnonzero(_sessions(w))[0])
    assert w.task_state[0, row] == QUEUED
    assert w.task_host[0, row] == -1 and w.task_origin[0, row] == -1
    assert w.task_backup[0, row] == -1 and w.task_mig_target[0, row] == -1
    assert w.task_retry_src[0, row] == -1 and w.task_attempts[0, row] == 0
    assert np.isnan(w.task_interrupted_s[0, row])
    assert w.task_work[0, row] == np.inf and w.task_input_mb[0, row] == sim.cfg.sessions.setup_mb


def test_a_short_planned_duration_is_drawn_and_a_session_ends_at_it():
    """mean_duration_s = 0.5 s (any value > 0) draws a planned end t + Exp(0.5); a session
    ends in the tick whose end reaches it, exactly at the boundary too."""
    sim = quiet_sim()
    cfg = sim.cfg.replace({"sessions.vehicle_share": 1.0, "sessions.mean_duration_s": 0.5})
    w = sim.world
    w.veh_active[0, :] = False
    w.veh_active[0, :3] = True
    w.veh_new[0, :3] = True
    now = w.time_s[0]
    u = uniform(w.key[:, None], w.tick[:, None], Stream.SESSION_DURATION, w.veh_serial)[0]
    sessions.start_sessions(w, cfg)
    rows = np.flatnonzero(_sessions(w))
    veh = w.task_vehicle[0, rows]
    np.testing.assert_allclose(w.task_deadline_s[0, rows], now - 0.5 * np.log1p(-u[veh]))
    # boundary: a planned end exactly at the end of the tick ends the session
    end = np.array([now + 1.0])
    w.task_deadline_s[0, rows[0]] = end[0]
    w.task_deadline_s[0, rows[1]] = end[0] + 0.01
    ending = sessions.ending(w, end)[0]
    assert ending[rows[0]] and not ending[rows[1]]


def test_a_running_session_of_a_vehicle_on_the_map_does_not_end():
    sim = quiet_sim({"sessions.vehicle_share": 1.0})
    w = sim.world
    for _ in range(3):
        sim.step(np.zeros((1, sim.layout.n_nodes), dtype=np.int64))
    rows = np.flatnonzero(_sessions(w) & (w.task_state[0] == RUNNING))
    assert rows.size > 0
    assert not sessions.ending(w, w.time_s + 1.0)[0, rows].any()
    w.veh_active[0, w.task_vehicle[0, rows[0]]] = False
    assert sessions.ending(w, w.time_s + 1.0)[0, rows[0]]
