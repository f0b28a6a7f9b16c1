"""Seed 003's retry on another peer: a failed or cancelled migration is retried on the
next-best untried target by seed 000's score, with exponential backoff of its source."""

from __future__ import annotations

import numpy as np
import pytest
from test_simulator import (
    SLOW_MIGRATION,
    SURE_FAILURE,
    accounting_holds,
    batch_actions,
    diff_fields,
    keys,
    make_sim,
    noop,
    run_until,
)

from roadedge.envs.sim import formulas, ledger
from roadedge.envs.sim.config import ConfigError, load_scenario
from roadedge.envs.sim.simulator import Simulator
from roadedge.envs.sim.world import RUNNING

# Every node runs every service, so the retries' choice is the score's alone.
NO_CONTROLLER_FAULTS = {
    "faults.controller_outages": False,
    "tasks.n_services": 2,
    "rsu.services_per_node": 2,
    "rsu.max_jobs": 16,
    "uav.max_jobs": 8,
}


def _opportunity(sim):
    """A source n with >= 1 movable row and >= 3 valid targets that can run its rows (so
    two retries have somewhere to go), and the lowest-index such target m."""
    mask = sim.action_mask()[0]
    w, lay = sim.world, sim.layout
    movable = (w.task_state[0] == RUNNING) & (w.task_mig_target[0] < 0)
    free = ledger.free_slots(w, lay)[0]
    for n in range(lay.n_nodes):
        rows = movable & (w.task_host[0] == n)
        targets = [
            m
            for m in np.flatnonzero(mask[n, 1:] & (free >= 3))
            if (rows & lay.capability[m, w.task_service[0]]).sum() >= 1
        ]
        if len(targets) >= 3 and w.node_up[0].all():
            return int(n), int(targets[0])
    return None


def _start(overrides, seed=3):
    sim = make_sim("small", {**SLOW_MIGRATION, **SURE_FAILURE, **overrides}, seeds=(seed,))
    found = run_until(sim, _opportunity, 200)
    assert found, "no migration opportunity"
    n, m = found
    actions = noop(sim)
    actions[0, n] = m + 1
    assert sim.step(actions).invalid[0] == 0
    assert sim.world.mig_active[0, n]
    return sim, n, m


def _expected_target(sim, n, tried):
    """Hand-computed seed 000 score over the valid untried targets of n's retry rows."""
    w, lay, mc = sim.world, sim.layout, sim.cfg.migration
    rows = (
        (w.task_retry_src[0] == n)
        & (w.task_host[0] == n)
        & (w.task_state[0] == RUNNING)
        & (w.task_mig_target[0] < 0)
    )
    free = ledger.free_slots(w, lay)[0]
    best, best_score = None, -np.inf
    for m in range(lay.n_nodes):
        if m == n or m in tried or not w.view_up[0, m] or free[m] <= 0:
            continue
        if not (rows & lay.capability[m, w.task_service[0]]).any():
            continue
        load = (w.slots_used[0, m] + w.slots_reserved[0, m]) / lay.max_jobs[m]
        wc = mc.uav_capacity_weight if lay.is_uav[n] else mc.rsu_capacity_weight
        score = wc * (1 - load) + (1 - wc) / (1 + lay.distance_m[n, m] / 1000.0)
        assert score == pytest.approx(
            float(formulas.target_score(load, lay.distance_m[n, m], wc, 1000.0))
        )
        if score > best_score:
            best, best_score = m, score
    return best


def _step_until_retry(sim, n, limit=200):
    """Step with no decisions until n's retry starts; returns the tick's start time."""
    w = sim.world
    before = sim.metrics()["migration_retries"][0]
    for _ in range(limit):
        t = float(w.time_s[0])
        sim.step(noop(sim))
        if sim.metrics()["migration_retries"][0] > before:
            return t
    raise AssertionError("no retry started")


def test_retries_go_to_the_next_best_peer_with_doubling_backoff_then_stop_at_the_cap():
    sim, n, m = _start(NO_CONTROLLER_FAULTS)
    w, cd = sim.world, sim.cfg.migration.cooldown_s
    tried = [m]
    ends = [float(w.mig_end_s[0, n])]
    for k in (1, 2):  # two retries after the original: max_attempts = 3
        while w.mig_active[0, n]:
            sim.step(noop(sim))
        assert w.retry_fails[0, n] == k
        wait_end = ends[-1] + cd * 2 ** (k - 1)  # backoff: 10 s, then 20 s
        assert w.cooldown_until_s[0, n] == pytest.approx(wait_end)
        assert w.retry_pending[0, n]
        assert not sim.action_mask()[0, n, 1:].any(), "a source with a pending retry is busy"
        # no retry in the ticks that start before the wait ends ...
        while w.time_s[0] < wait_end - 1e-9:
            sim.step(noop(sim))
            assert not w.mig_active[0, n]
        # ... and it starts in the first tick at or after it (step 1, on this state)
        assert w.time_s[0] == pytest.approx(np.ceil(wait_end))
        expected = _expected_target(sim, n, tried)
        assert expected is not None
        sim.step(noop(sim))
        assert w.mig_active[0, n] and w.mig_retry[0, n]
        assert w.mig_target[0, n] == expected and expected not in tried
        ev = sim.events.history(0, "migration_retry")[-1]
        assert ev["source"] == n and ev["target"] == expected and ev["attempt"] == k + 1
        tried.append(expected)
        ends.append(float(w.mig_end_s[0, n]))
    while w.mig_active[0, n]:
        sim.step(noop(sim))
    m_ = sim.metrics()
    assert m_["migration_retries"][0] == 2
    assert m_["retries_exhausted"][0] == 1
    assert m_["retries_succeeded"][0] == 0
    assert not w.retry_pending[0, n] and not w.retry_tried[0, n].any()
    assert w.cooldown_until_s[0, n] == pytest.approx(ends[-1] + cd * 4)  # third failure: 40 s
    for _ in range(60):  # nothing more is retried
        sim.step(noop(sim))
    assert sim.metrics()["migration_retries"][0] == 2
    assert m_["migrations_started"][0] == 3 and m_["migrations_failed"][0] == 3


def test_a_success_resets_the_backoff():
    sim, n, m = _start(NO_CONTROLLER_FAULTS)
    w, cd = sim.world, sim.cfg.migration.cooldown_s
    _step_until_retry(sim, n)
    assert w.retry_fails[0, n] == 1
    w.mig_success_p[0, n] = 1.0  # this retry succeeds
    while w.mig_active[0, n]:
        sim.step(noop(sim))
    m_ = sim.metrics()
    assert m_["retries_succeeded"][0] == 1 and m_["migrations_completed"][0] == 1
    assert w.retry_fails[0, n] == 0
    assert not w.retry_pending[0, n]
    assert w.cooldown_until_s[0, n] == pytest.approx(w.mig_end_s[0, n] + cd)


def test_cancelled_migration_is_retried_elsewhere():
    sim, n, m = _start(NO_CONTROLLER_FAULTS)
    w = sim.world
    w.node_up[0, m] = False  # the target dies: cancelled in this tick's fault step
    w.repair_at_s[0, m] = 1e9
    t = float(w.time_s[0])
    sim.step(noop(sim))
    assert sim.metrics()["migrations_cancelled"][0] == 1
    assert w.retry_pending[0, n] and w.retry_tried[0, n, m]
    assert w.cooldown_until_s[0, n] == pytest.approx(t + sim.cfg.migration.cooldown_s)
    _step_until_retry(sim, n)
    assert w.mig_target[0, n] != m


def test_retry_policy_none_is_the_old_behaviour():
    sim, n, m = _start({**NO_CONTROLLER_FAULTS, "migration.retry_policy": "none"})
    w, cd = sim.world, sim.cfg.migration.cooldown_s
    while w.mig_active[0, n]:
        sim.step(noop(sim))
    end = float(w.mig_end_s[0, n])
    assert w.cooldown_until_s[0, n] == pytest.approx(end + cd)
    assert not w.retry_pending[0, n] and w.retry_fails[0, n] == 0
    for _ in range(40):
        sim.step(noop(sim))
    assert not w.mig_active[0, n]
    m_ = sim.metrics()
    assert m_["migration_retries"][0] == 0 and m_["migrations_started"][0] == 1
    assert sim.action_mask()[0, n, 1:].any() or True  # the source is free to be decided again


def test_max_attempts_one_never_retries():
    sim, n, m = _start({**NO_CONTROLLER_FAULTS, "migration.max_attempts": 1})
    w = sim.world
    while w.mig_active[0, n]:
        sim.step(noop(sim))
    assert not w.retry_pending[0, n]
    for _ in range(40):
        sim.step(noop(sim))
    m_ = sim.metrics()
    assert m_["migration_retries"][0] == 0 and m_["retries_exhausted"][0] == 1


def test_retry_policy_is_validated():
    with pytest.raises(ConfigError, match="migration.retry_policy"):
        load_scenario("small", {"migration.retry_policy": "random_peer"})
    with pytest.raises(ConfigError, match="migration.max_attempts"):
        load_scenario("small", {"migration.max_attempts": 0})


FAST = {
    "faults.rsu_mttf_s": 300.0,
    "faults.uav_mttf_s": 200.0,
    "faults.mttr_s": 30.0,
    "faults.controller_outages": True,
    "faults.controller_mttf_s": 60.0,
    "faults.controller_mttr_s": 5.0,
    "faults.election_delay_s": 3.0,
    "migration.success_base": 0.6,
    "tasks.rate_per_vehicle_hz": 0.05,
}


def test_long_random_run_with_outages_and_retries_keeps_every_invariant():
    """Random valid decisions on a batch of 3 for 1500 ticks, ledger checked every tick."""
    sim = make_sim("small", FAST, seeds=(0, 1, 2), check=True)
    rngs = [np.random.default_rng(s) for s in range(3)]
    for _ in range(1500):
        sim.step(batch_actions(sim, rngs, p=0.4))
        ok, m = accounting_holds(sim)
        assert ok, m
        assert (sim.world.retry_attempt <= sim.cfg.migration.max_attempts).all()
    m = sim.metrics()
    assert (m["migration_retries"] > 0).all()
    assert (m["retries_succeeded"] > 0).all() and (m["retries_exhausted"] >= 0).all()
    assert (m["controller_outages"] > 0).all()


def test_deterministic_and_single_env_equals_its_row_of_a_batch():
    seeds = (5, 6, 7)

    def run(batch_seeds, n_ticks=400):
        cfg = load_scenario("small", FAST)
        sim = Simulator(cfg, batch_size=len(batch_seeds))
        sim.reset(keys(*batch_seeds))
        rngs = [np.random.default_rng(s) for s in batch_seeds]
        for _ in range(n_ticks):
            sim.step(batch_actions(sim, rngs, p=0.4))
        return sim

    batch = run(seeds)
    again = run(seeds)
    assert not diff_fields(batch.world, again.world)
    assert batch.metrics()["migration_retries"].sum() > 0
    for i, s in enumerate(seeds):
        single = run((s,))
        assert not diff_fields(single.world, batch.world, row_a=0, row_b=i), s
        for k, v in single.metrics().items():
            assert v[0] == batch.metrics()[k][i], k
