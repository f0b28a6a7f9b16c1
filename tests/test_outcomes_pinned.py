"""Outcomes of a tick (envs/sim/outcomes.py) pinned on hand-built states: which rows end,
the per-node completion count the controller reads, and the per-tick counts a step
returns. Written against the compiled core's surviving mutants."""

from __future__ import annotations

import numpy as np
from _handbuilt import noop, park, place, quiet_sim

from roadedge.envs.sim.world import FREE, RUNNING

SERVICE_RSUS = 2  # small: runs on RSUs 0, 1, 2


def test_a_task_completes_only_with_all_of_its_work_done():
    """On a host that died unseen (no progress), a row 0.5 cycles short of its work stays
    running; one exactly at its work completes (tolerance 1e-6 cycles)."""
    sim = quiet_sim()
    w = sim.world
    park(sim, 0, 0)
    short = place(sim, veh=0, host=1, service=SERVICE_RSUS, work=1e9, done=1e9 - 0.5)
    exact = place(sim, veh=0, host=1, service=SERVICE_RSUS, work=1e9, done=1e9)
    w.node_up[0, 1] = False  # silently dead: its rows make no progress this tick
    w.repair_at_s[0, 1] = 1e12
    res = sim.step(noop(sim))
    assert w.task_state[0, short] == RUNNING and w.task_done[0, short] == 1e9 - 0.5
    assert w.task_state[0, exact] == FREE
    assert res.completed[0] == 1


def test_each_completion_counts_once_on_its_host_for_the_controller():
    """``node_completed`` (the controller's record of past performance, ``view.completed``)
    rises by one per task completed on that host, and nowhere else."""
    sim = quiet_sim()
    park(sim, 0, 0)
    before = sim.world.node_completed[0].copy()
    for _ in range(2):
        place(sim, veh=0, host=2, service=SERVICE_RSUS, work=1.0)  # done within a tick
    place(sim, veh=0, host=0, service=SERVICE_RSUS, work=1.0)
    sim.step(noop(sim))
    np.testing.assert_array_equal(sim.world.node_completed[0] - before, [1, 0, 2, 0])


def test_a_step_returns_this_ticks_completed_missed_and_dropped_counts():
    """One completion and two deadline misses in a tick: the step says 1, 2, 0."""
    sim = quiet_sim()
    w = sim.world
    park(sim, 0, 0)
    place(sim, veh=0, host=0, service=SERVICE_RSUS, work=1.0)
    end = w.time_s[0] + sim.cfg.dt_s
    for _ in range(2):
        place(sim, veh=0, host=1, service=SERVICE_RSUS, deadline_s=end - 0.5)
    res = sim.step(noop(sim))
    assert (res.completed[0], res.missed[0], res.dropped[0]) == (1, 2, 0)
