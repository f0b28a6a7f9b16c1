"""Seed 003's leader-only monitor: controller outages ignore decisions (migrations and
failovers) for the outage plus the leader election, while the world goes on."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from test_simulator import keys, make_sim, noop, run_until

from roadedge.envs import observation as obs_lib
from roadedge.envs.sim import migration
from roadedge.envs.sim.config import load_scenario
from roadedge.envs.sim.simulator import Simulator

QUIET = {"faults.controller_outages": True, "faults.controller_mttf_s": 1e12}


def _wanted(sim):
    """Per node, the first choice valid if the controller were up (0 if none)."""
    probe = sim.world.copy()
    probe.ctrl_up[:] = True
    mask = migration.action_mask(probe, sim.layout, sim.cfg)[0]
    out = np.zeros((1, sim.layout.n_nodes), dtype=np.int64)
    for n in range(sim.layout.n_nodes):
        valid = np.flatnonzero(mask[n, 1:])
        if valid.size:
            out[0, n] = valid[0] + 1
    return out


def test_outage_ignores_decisions_for_exactly_its_duration_while_the_world_goes_on():
    sim = make_sim("small", QUIET, seeds=(2,))
    w, dt = sim.world, sim.cfg.dt_s
    assert run_until(sim, lambda s: (_wanted(s) > 0).any(), 100)
    t0 = float(w.time_s[0])
    # force the controller down at t0 until t0 + 6.5 (restart + election)
    w.ctrl_up[0] = False
    w.ctrl_down_since_s[0] = t0
    w.ctrl_elected_s[0] = t0 + 6.5
    ignored_ticks = []
    generated = sim.metrics()["tasks_generated"][0] + sim.metrics()["sessions_started"][0]
    for _ in range(12):
        t = float(w.time_s[0])
        act = _wanted(sim)
        mask = sim.action_mask()[0]
        before = {k: v.copy() for k, v in sim.metrics().items()}
        hb = w.last_heartbeat_s[0].copy()
        res = sim.step(act)
        after = sim.metrics()
        n_ignored = after["decisions_ignored"][0] - before["decisions_ignored"][0]
        if n_ignored:
            assert n_ignored == (act > 0).sum()
            assert not mask[:, 1:].any() and mask[:, 0].all()  # only "do nothing"
            assert after["migrations_started"][0] == before["migrations_started"][0]
            assert after["failovers"][0] == before["failovers"][0]
            assert res.invalid[0] == 0  # ignored, not invalid
            assert (w.last_heartbeat_s[0][w.node_up[0]] > hb[w.node_up[0]]).all()
            ignored_ticks.append(t)
        elif (act > 0).any():
            first_obeyed = t
            assert (
                after["migrations_started"][0] + after["failovers"][0]
                > before["migrations_started"][0] + before["failovers"][0]
                or res.invalid[0] > 0
            )
            break
    assert ignored_ticks[0] == t0 and ignored_ticks[-1] == t0 + 6.0
    assert ignored_ticks == [t0 + k for k in range(7)]
    assert first_obeyed == t0 + 7.0
    m = sim.metrics()
    assert m["controller_down_s"][0] == 7 * dt
    assert m["tasks_generated"][0] + m["sessions_started"][0] > generated  # dispatch goes on
    assert sim.events.history(0, "controller_elected")[0]["time_s"] == t0 + 7.0


@pytest.mark.parametrize("election", [0.0, 4.0, 9.0])
def test_election_delay_adds_to_the_restart(election):
    """With an instant restart, every outage lasts the election delay, whole ticks."""
    over = {
        "faults.controller_outages": True,
        "faults.controller_mttf_s": 15.0,
        "faults.controller_mttr_s": 0.0,
        "faults.election_delay_s": election,
    }
    sim = make_sim("small", over, seeds=(4,))
    for _ in range(400):
        sim.step(noop(sim))
        if sim.world.ctrl_up[0]:
            done_down = sim.metrics()["controller_down_s"][0]
            done_outages = sim.metrics()["controller_outages"][0]
    failed = sim.events.history(0, "controller_failed")
    elected = sim.events.history(0, "controller_elected")
    assert len(failed) >= 5
    per = max(election, 1.0)  # at least one tick
    for f, e in zip(failed, elected, strict=False):
        assert e["time_s"] - f["time_s"] == pytest.approx(per)
        assert f["elected_s"] - f["time_s"] == pytest.approx(election)
        assert e["down_s"] == pytest.approx(per)  # the election event carries the outage
    assert done_down == pytest.approx(per * done_outages)


def test_outages_are_off_by_default_and_on_in_failures():
    assert not load_scenario("city").faults.controller_outages
    cfg = load_scenario("failures")
    assert cfg.faults.controller_outages
    assert cfg.migration.retry_policy == "next_peer"
    sim = Simulator(load_scenario("city"), batch_size=1)
    sim.reset(keys(0))
    for _ in range(200):
        sim.step(noop(sim))
    assert sim.metrics()["controller_outages"][0] == 0 and sim.world.ctrl_up[0]


@pytest.mark.parametrize("obs_mode", ["flat", "dict"])
def test_observation_says_the_controller_is_out(obs_mode):
    env = gym.make("RoadEdge-v1", scenario="small", obs_mode=obs_mode, **QUIET)
    obs, _ = env.reset(seed=0)
    g = obs_lib.GLOBAL_FEATURES.index("controller_up")
    assert g == len(obs_lib.GLOBAL_FEATURES) - 1

    cfg = env.unwrapped.cfg
    start = cfg.n_nodes * obs_lib.n_node_features(cfg)  # flat: node rows, globals, pairs

    def feature(o):
        return o[start + g] if obs_mode == "flat" else o["globals"][g]

    assert feature(obs) == 1.0
    w = env.unwrapped.sim.world
    w.ctrl_up[0] = False
    w.ctrl_elected_s[0] = float(w.time_s[0]) + 2.0
    obs, *_ = env.step(np.zeros(env.unwrapped.n_nodes, dtype=np.int64))
    assert feature(obs) == 0.0
    assert env.observation_space.contains(obs)
    masks = env.unwrapped.action_masks().reshape(env.unwrapped.n_nodes, -1)
    assert masks[:, 0].all() and not masks[:, 1:].any()
    obs, *_ = env.step(np.zeros(env.unwrapped.n_nodes, dtype=np.int64))
    obs, _, _, _, info = env.step(np.zeros(env.unwrapped.n_nodes, dtype=np.int64))
    assert feature(obs) == 1.0
    assert info["metrics"]["controller_outages"] == 0  # forced, not drawn
    assert info["metrics"]["controller_down_s"] == 2.0
    env.close()


def test_same_seed_same_outages_and_single_env_is_a_batch_row():
    over = {"faults.controller_mttf_s": 50.0}

    def run(seeds):
        sim = Simulator(load_scenario("failures", over), batch_size=len(seeds))
        sim.reset(keys(*seeds))
        for _ in range(300):
            sim.step(noop(sim))
        return sim

    a, b = run((1, 2, 3)), run((1, 2, 3))
    np.testing.assert_array_equal(a.world.ctrl_elected_s, b.world.ctrl_elected_s)
    assert (a.metrics()["controller_outages"] > 0).all()
    assert a.events.history(1, "controller_failed") == b.events.history(1, "controller_failed")
    single = run((2,))
    assert single.events.history(0, "controller_failed") == a.events.history(1, "controller_failed")
    for k, v in single.metrics().items():
        assert v[0] == a.metrics()[k][1], k
