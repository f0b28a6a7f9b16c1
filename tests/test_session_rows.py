"""Session starts and ends pinned on exact draws and boundaries (sessions.py).

Written against the mutants that survived ``make mutants`` on envs/sim/sessions.py:
the start probability at a tick other than 1 s, rows running out, the spread of
the state sizes and priorities, the defaults of a new row, a short planned
duration and the planned-end boundary.
"""

from __future__ import annotations

import numpy as np
import pytest
from _handbuilt import quiet_sim, sessions_ending

from roadedge.envs.sim import sessions
from roadedge.envs.sim.rng import Stream, key_from_seed, uniform
from roadedge.envs.sim.world import FREE, KIND_SESSION, KIND_TASK, QUEUED, RUNNING, allocate


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
    ending = sessions_ending(w, end)[0]
    assert ending[rows[0]] and not ending[rows[1]]


def test_a_running_session_of_a_vehicle_on_the_map_does_not_end():
    sim = quiet_sim({"sessions.vehicle_share": 1.0})
    w = sim.world
    for _ in range(3):
        sim.step(np.zeros((1, sim.layout.n_nodes), dtype=np.int64))
    rows = np.flatnonzero(_sessions(w) & (w.task_state[0] == RUNNING))
    assert rows.size > 0
    assert not sessions_ending(w, w.time_s + 1.0)[0, rows].any()
    w.veh_active[0, w.task_vehicle[0, rows[0]]] = False
    assert sessions_ending(w, w.time_s + 1.0)[0, rows[0]]


# ------------------------------------------------------------- batches (mutants, round 2)
# Written against the sessions mutants still alive after the first round: new sessions
# in a batch of two environments, a vehicle both drawing a start and still wanting its
# dropped session, rows reused from finished tasks, and every way a session ends.


def _bare_world(batch, n_veh=4, n_rows=5, n_nodes=4):
    """A bare World of ``batch`` environments (all rows free, no vehicle active)."""
    w = allocate(batch, n_nodes, n_veh, n_rows)
    w.key[:] = [key_from_seed(s) for s in range(batch)]
    w.veh_serial[:] = np.arange(n_veh, dtype=np.uint64)
    return w


@pytest.mark.filterwarnings("error")
def test_new_sessions_take_their_own_environments_free_rows_in_order(small_cfg):
    """Three vehicles start a session in each of two environments. Env 0 has five free
    rows: vehicles 0, 1, 2 take rows 0, 1, 2. Env 1 has two (rows 1 and 3; 0, 2, 4 hold
    tasks): vehicles 0 and 1 take them, vehicle 2 is lost (3 - 2 = 1) and keeps wanting
    one. Rows reused from finished tasks carry no work done or replica progress."""
    cfg = small_cfg.replace({"sessions.vehicle_share": 1.0})
    w = _bare_world(2)
    w.veh_active[:, :3] = True
    w.veh_new[:, :3] = True
    w.task_done[0, :] = 5e9  # leftovers of finished tasks (FREE rows)
    w.task_replica[0, :] = 3e9
    w.task_state[1, [0, 2, 4]] = QUEUED  # tasks of vehicle 3
    w.task_vehicle[1, [0, 2, 4]] = 3
    w.veh_tasks[1, 3] = 3
    started, lost = sessions.start_sessions(w, cfg)
    assert started.tolist() == [3, 3] and lost.tolist() == [0, 1]
    assert w.task_state[0].tolist() == [QUEUED, QUEUED, QUEUED, FREE, FREE]
    assert w.task_kind[0, :3].tolist() == [KIND_SESSION] * 3
    assert w.task_vehicle[0, :3].tolist() == [0, 1, 2]
    assert w.task_done[0, :3].tolist() == [0.0] * 3
    assert w.task_replica[0, :3].tolist() == [0.0] * 3
    assert w.task_kind[1].tolist() == [KIND_TASK, KIND_SESSION, KIND_TASK, KIND_SESSION, KIND_TASK]
    assert w.task_vehicle[1].tolist() == [3, 0, 3, 1, 3]
    assert w.veh_tasks.tolist() == [[1, 1, 1, 0], [1, 1, 0, 3]]
    assert w.veh_wants_session.tolist() == [[True] * 3 + [False]] * 2


def test_a_vehicle_that_draws_a_start_and_wants_its_dropped_session_starts_one(small_cfg):
    """A dropped session is started again whatever the vehicle's own draw says, also when
    the draw would start one too (p = 1 on entry): exactly one new session."""
    cfg = small_cfg.replace({"sessions.vehicle_share": 1.0})
    w = _bare_world(1)
    w.veh_active[0, :2] = True
    w.veh_new[0, :2] = True
    w.veh_wants_session[0, 0] = True  # vehicle 0 lost its session last tick
    started, lost = sessions.start_sessions(w, cfg)
    assert started[0] == 2 and lost[0] == 0
    assert w.task_vehicle[0, :2].tolist() == [0, 1]
    assert (w.task_kind[0, :2] == KIND_SESSION).all()


@pytest.mark.filterwarnings("error")
def test_a_session_ends_when_its_vehicle_left_or_its_planned_end_came_or_both():
    """Truth table of ``ending`` at end_s = 10: rows 0-3 are sessions (vehicle gone?,
    planned end due?) = (no, no), (yes, no), (no, yes), (yes, yes); row 4 is a task of
    a gone vehicle past its deadline, row 5 a FREE row: neither is a session."""
    w = _bare_world(1, n_veh=4, n_rows=6)
    w.veh_active[0] = [True, False, True, False]
    w.task_state[0] = [RUNNING, RUNNING, QUEUED, RUNNING, RUNNING, FREE]
    w.task_kind[0] = [KIND_SESSION] * 4 + [KIND_TASK, KIND_SESSION]
    w.task_vehicle[0] = [0, 1, 2, 3, 1, 1]
    w.task_deadline_s[0] = [np.inf, np.inf, 9.0, 10.0, 5.0, 5.0]
    assert sessions_ending(w, np.array([10.0]))[0].tolist() == [
        False,
        True,
        True,
        True,
        False,
        False,
    ]
