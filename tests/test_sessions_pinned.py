"""Session-model pins on hand-built states (issue 18): the request rate, a normal end
that starts nothing new, the session-hops metric over attached vehicles only, and the
oracle's future built from the hidden truth."""

from __future__ import annotations

import numpy as np
import pytest
from _handbuilt import latency_ms_by_hand, noop, park, place, quiet_sim

from roadedge.baselines import make_policy
from roadedge.envs import RoadEdgeEnv
from roadedge.envs.sim.world import CAUSE_FAULT, FREE, KIND_SESSION

SERVICE_RSUS = 2  # small: runs on RSUs 0, 1, 2


@pytest.mark.parametrize(("rate_hz", "dt_s"), [(5.0, 0.5), (1.0, 2.0), (3.0, 1.0)])
def test_a_session_is_charged_rate_times_dt_requests_a_task_one(rate_hz, dt_s):
    sim = quiet_sim({"sessions.request_rate_hz": rate_hz, "dt_s": dt_s})
    park(sim, 0, 0)
    park(sim, 1, 2)
    place(sim, veh=0, host=1, service=SERVICE_RSUS, kind=KIND_SESSION)
    res = sim.step(noop(sim))
    lat = latency_ms_by_hand(sim, 0, 1, 1)
    assert res.terms["latency"][0] == pytest.approx(rate_hz * dt_s * lat / 1000.0, rel=1e-12)
    # a task on the same host adds one request, whatever the rate
    place(sim, veh=1, host=1, service=SERVICE_RSUS)
    res = sim.step(noop(sim))
    both = rate_hz * dt_s * latency_ms_by_hand(sim, 0, 1, 2) + latency_ms_by_hand(sim, 1, 1, 2)
    assert res.terms["latency"][0] == pytest.approx(both / 1000.0, rel=1e-12)


def test_a_session_that_ends_as_planned_is_not_started_again():
    sim = quiet_sim()
    w = sim.world
    park(sim, 0, 0)
    t = place(sim, veh=0, host=0, service=SERVICE_RSUS, kind=KIND_SESSION)
    w.veh_wants_session[0, 0] = True  # it was started by its vehicle
    w.task_deadline_s[0, t] = w.time_s[0] + 1.0  # planned end: this tick
    sim.step(noop(sim))
    m = sim.metrics()
    assert w.task_state[0, t] == FREE and m["sessions_ended"][0] == 1
    assert w.veh_active[0, 0]  # the vehicle is still here, and wants nothing more
    for _ in range(5):
        sim.step(noop(sim))
    live = (w.task_kind[0] == KIND_SESSION) & (w.task_state[0] != FREE)
    assert not live.any()
    assert sim.metrics()["sessions_started"][0] == 0


def test_session_hops_metric_averages_over_attached_vehicles_only():
    # tiny coverage: a vehicle at the map corner (500, 500) is in nobody's range
    sim = quiet_sim({"rsu.coverage_m": 60.0, "uav.coverage_m": 60.0})
    w = sim.world
    park(sim, 0, 2)  # under RSU 2: two hops from RSU 1
    park(sim, 1, 0)
    w.veh_x[0, 1], w.veh_y[0, 1] = 500.0, 500.0
    sim.step(noop(sim))
    assert w.veh_access[0, 0] == 2 and w.veh_access[0, 1] == -1 and w.veh_active[0, 1]
    place(sim, veh=0, host=1, service=SERVICE_RSUS, kind=KIND_SESSION)
    place(sim, veh=1, host=1, service=SERVICE_RSUS, kind=KIND_SESSION)
    c = sim.counters
    before = c.session_hops_sum[0], c.session_hops_samples[0], c.session_latency_samples[0]
    sim.step(noop(sim))
    assert c.session_hops_sum[0] - before[0] == 2
    assert c.session_hops_samples[0] - before[1] == 1  # the detached one has no hops
    assert c.session_latency_samples[0] - before[2] == 2  # but both are charged
    assert sim.metrics()["session_hops"][0] == 2.0


def test_oracle_future_is_the_hidden_truth_not_the_controller_view():
    env = RoadEdgeEnv("small", **{"faults.rsu_mttf_s": 1e12, "faults.uav_mttf_s": 1e12})
    env.reset(seed=2)
    for _ in range(5):
        env.step(np.zeros(4, dtype=np.int64))
    w = env.sim.world
    w.node_up[0, 1] = False  # dies silently now, never repaired
    w.down_cause[0, 1] = CAUSE_FAULT
    w.down_since_s[0, 1] = w.time_s[0]
    w.repair_at_s[0, 1] = 1e12
    assert w.view_up[0, 1]
    pol = make_policy("oracle", env)
    pol.predict(None)
    up = pol.future.node_up[0]  # (ticks, N) from now on
    assert not up[:, 1].any()  # down from now on, although the controller thinks it up
    assert up[:, [0, 2]].all()
    assert w.view_up[0, 1] and not w.node_up[0, 1]  # the look-ahead left the env alone


def test_a_session_ending_as_planned_counts_the_hops_to_its_own_host():
    """Its last charged tick counts hops(access, host) = 1 (RSU 1 -> RSU 0), taken before
    the row is freed (v1 before the compiled outcomes read the freed row's host, -1, i.e.
    the last node: hops(1, 3) = 2)."""
    sim = quiet_sim()
    w = sim.world
    park(sim, 0, 1)
    sim.step(noop(sim))
    t = place(sim, veh=0, host=0, service=SERVICE_RSUS, kind=KIND_SESSION)
    w.task_deadline_s[0, t] = w.time_s[0] + 1.0  # planned end: this tick
    assert sim.layout.hops[1, 0] == 1 and sim.layout.hops[1, 3] == 2
    sim.step(noop(sim))
    assert w.task_state[0, t] == FREE
    assert sim.counters.session_hops_sum[0] == 1 and sim.counters.session_hops_samples[0] == 1
