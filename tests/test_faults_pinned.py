"""Pins of MODEL.md section 9 (faults.py) on hand-built states and hand-computed values:
what a heartbeat reports (load counts reservations, a UAV reports E / C), how often a
node reports when the interval is longer than a tick, and the length of a controller
outage (an exponential restart plus the election delay, never shorter than the delay)."""

from __future__ import annotations

import numpy as np
import pytest
from _handbuilt import noop, park, place, quiet_sim

from roadedge.envs.sim import faults

# small: RSUs 0, 1, 2 (max_jobs 8) and UAV 3 (max_jobs 4); service 2 runs on the RSUs only.
RSU, OTHER, UAV = 0, 2, 3
SVC = 2


def _beat_now(sim) -> float:
    """Make every node due (last report one interval ago) and run the heartbeat phase."""
    w = sim.world
    now = float(w.time_s[0])
    w.last_heartbeat_s[0] = now - sim.cfg.faults.heartbeat_interval_s
    declared = faults.heartbeats_and_detection(w, sim.layout, sim.cfg)
    assert not declared.any()
    return now


def test_a_heartbeat_reports_used_plus_reserved_slots_over_max_jobs():
    """view_load <- (used + reserved) / max_jobs (section 9.3): a slot held for an incoming
    migration counts as load. Node 0 runs 2 tasks and holds 1 reservation: 3 / 8."""
    sim = quiet_sim(warmup=3)
    w = sim.world
    place(sim, veh=0, host=RSU, service=SVC)
    place(sim, veh=1, host=RSU, service=SVC)
    moving = place(sim, veh=2, host=OTHER, service=SVC)
    w.slots_reserved[0, RSU] += 1  # the keep-before-break reservation of the moving task
    w.task_mig_target[0, moving] = RSU
    now = _beat_now(sim)
    assert w.last_heartbeat_s[0, RSU] == now and w.view_up[0, RSU]
    assert w.view_load[0, RSU] == 3 / 8
    assert w.view_load[0, OTHER] == 1 / 8  # one task, no reservation
    assert w.view_load[0, 1] == 0.0


def test_a_uav_heartbeat_reports_its_battery_fraction_and_an_rsu_reports_one():
    """view_battery <- E / C for a UAV, 1 for an RSU (section 9.3)."""
    sim = quiet_sim(warmup=3)
    w = sim.world
    capacity = sim.cfg.uav.battery_wh * 3600.0
    w.battery_j[0, UAV] = 0.25 * capacity
    w.view_battery[0, UAV] = 1.0  # an older report, to be replaced
    _beat_now(sim)
    assert w.view_battery[0, UAV] == pytest.approx(0.25, abs=1e-12)
    assert w.view_battery[0, RSU] == 1.0


def test_with_a_three_second_interval_a_node_reports_every_third_tick_and_the_view_lags():
    """A live node beats only when t - last_hb >= I (section 9.3). With I = 3 s and 1-s
    ticks the reports are 3 s apart, and a task placed right after a report shows in
    view_load only at the next one, 3 ticks later."""
    sim = quiet_sim({"faults.heartbeat_interval_s": 3.0}, warmup=10)
    w = sim.world
    while w.last_heartbeat_s[0, RSU] != w.time_s[0] - 1.0:  # step until one just beat
        sim.step(noop(sim))
    reported = float(w.last_heartbeat_s[0, RSU])
    assert w.view_load[0, RSU] == 0.0
    park(sim, 0, RSU)
    place(sim, veh=0, host=RSU, service=SVC)
    seen = []
    for _ in range(4):
        t = float(w.time_s[0])
        sim.step(noop(sim))
        seen.append((t, float(w.last_heartbeat_s[0, RSU]), float(w.view_load[0, RSU])))
    assert seen == [
        (reported + 1, reported, 0.0),
        (reported + 2, reported, 0.0),
        (reported + 3, reported + 3, 1 / 8),
        (reported + 4, reported + 3, 1 / 8),
    ]


def test_the_boundary_of_a_heartbeat_is_exactly_one_interval():
    """Due at t - last_hb = I, not before (I = 2 s, so half an interval early is not due)."""
    sim = quiet_sim({"faults.heartbeat_interval_s": 2.0}, warmup=10)
    w = sim.world
    now = float(w.time_s[0])
    place(sim, veh=0, host=RSU, service=SVC)
    w.last_heartbeat_s[0] = now - 1.5
    faults.heartbeats_and_detection(w, sim.layout, sim.cfg)
    assert (w.last_heartbeat_s[0] == now - 1.5).all() and w.view_load[0, RSU] == 0.0
    w.last_heartbeat_s[0] = now - 2.0
    faults.heartbeats_and_detection(w, sim.layout, sim.cfg)
    assert (w.last_heartbeat_s[0] == now).all() and w.view_load[0, RSU] == 1 / 8


def test_a_controller_outage_is_an_exponential_restart_plus_the_election_delay():
    """elected_s = t_end + (-mttr ln(1 - u) + election_delay) (faults.controller_fail_and_elect):
    every outage lasts more than the election delay (strictly, mttr > 0), and the restart
    part averages mttr. mttf = 1 s: a controller that is up fails in almost every tick."""
    mttr, delay = 5.0, 2.0
    over = {
        "faults.controller_outages": True,
        "faults.controller_mttf_s": 1.0,
        "faults.controller_mttr_s": mttr,
        "faults.election_delay_s": delay,
    }
    sim = quiet_sim(over, warmup=0)
    w, cfg = sim.world, sim.cfg
    restarts = []
    for k in range(400):
        w.tick[0] = np.uint64(1000 + k)
        w.ctrl_up[0] = True
        failed, _ = faults.controller_fail_and_elect(w, cfg)
        if failed[0]:
            end = float(w.time_s[0]) + cfg.dt_s
            assert w.ctrl_down_since_s[0] == end and not w.ctrl_up[0]
            restarts.append(w.ctrl_elected_s[0] - end - delay)
    restarts = np.array(restarts)
    assert len(restarts) > 200  # P(fail) = 1 - exp(-1) per tick
    assert (restarts > 0).all()
    # mean of n exponentials: relative standard error 1 / sqrt(n) < 7 %
    assert restarts.mean() == pytest.approx(mttr, rel=0.25)
