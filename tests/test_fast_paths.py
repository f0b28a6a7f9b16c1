"""The env's per-step fast paths equal the definitions they replace.

The env builds observations with :class:`Observer` (kernels on the world's
controller-side arrays, preallocated buffers) and info metrics with one compiled
pass (``stats.METRICS``); :func:`build_observation` on a
:func:`controller_view` snapshot and the counters are the definitions.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from roadedge.envs import RoadEdgeEnv
from roadedge.envs.migration_env import build_observation
from roadedge.envs.observation import Observer, n_node_features
from roadedge.envs.sim.config import load_scenario
from roadedge.envs.sim.simulator import Simulator
from roadedge.envs.sim.stats import METRIC_NAMES
from roadedge.envs.sim.view import controller_view
from roadedge.envs.sim.world import FREE, KIND_SESSION, KIND_TASK


def _busy_sim(batch=3):
    cfg = load_scenario("failures", {"horizon": 60})
    sim = Simulator(cfg, batch_size=batch)
    sim.reset(np.arange(1, batch + 1, dtype=np.uint64) * 977)
    return sim


def _random_actions(sim, rng):
    mask = sim.action_mask()
    B, N, _ = mask.shape
    out = np.zeros((B, N), np.int64)
    for b in range(B):
        for n in range(N):
            choices = np.flatnonzero(mask[b, n])
            out[b, n] = rng.choice(choices) if rng.random() < 0.3 else 0
    return out


@pytest.mark.parametrize("obs_mode", ["flat", "dict"])
def test_observer_equals_the_observation_of_the_controller_view_bit_for_bit(obs_mode):
    sim = _busy_sim()
    observer = Observer(sim, obs_mode)
    rng = np.random.default_rng(0)
    for tick in range(40):
        expected = build_observation(sim, sim.cfg, obs_mode, controller_view(sim))
        got = observer()
        if obs_mode == "flat":
            np.testing.assert_array_equal(got, expected, err_msg=f"tick {tick}")
        else:
            assert got.keys() == expected.keys()
            for k in got:
                np.testing.assert_array_equal(got[k], expected[k], err_msg=f"{k} tick {tick}")
        for b in range(sim.batch_size):  # one row of the batch is that row's observation
            row = observer(b)
            np.testing.assert_array_equal(
                row if obs_mode == "flat" else row["nodes"],
                (got if obs_mode == "flat" else got["nodes"])[b],
            )
        sim.step(_random_actions(sim, rng))


def test_observer_returns_fresh_arrays_the_next_step_does_not_overwrite():
    env = RoadEdgeEnv(scenario="small")
    first, _ = env.reset(seed=0)
    kept = first.copy()
    for _ in range(5):
        env.step(np.zeros(env.n_nodes, np.int64))
    np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_env_observes_its_own_world(how):
    env = RoadEdgeEnv(scenario="small")
    env.reset(seed=4)
    for _ in range(10):
        env.step(np.zeros(env.n_nodes, np.int64))
    clone = copy.deepcopy(env) if how == "deepcopy" else pickle.loads(pickle.dumps(env))
    clone.sim.world.view_load[0, 0] = 0.0
    clone.sim.world.view_load[0, 1] = 1.0
    env.sim.world.view_load[0, :2] = 0.5
    obs_clone, obs_env = clone._observe(), env._observe()
    F = n_node_features(env.cfg)  # feature 1 of each node is its load
    assert obs_clone[1] == 0.0 and obs_clone[F + 1] == 1.0
    assert obs_env[1] == 0.5 and obs_env[F + 1] == 0.5


def _metrics_by_hand(sim, b):
    c, w = sim.counters, sim.world
    live = w.task_state[b] != FREE

    def ratio(num, den):
        return num[b] / den[b] if den[b] > 0 else 0.0

    expected = {name: float(getattr(c, name)[b]) for name in METRIC_NAMES if hasattr(c, name)}
    expected["tasks_active"] = float((live & (w.task_kind[b] == KIND_TASK)).sum())
    expected["sessions_active"] = float((live & (w.task_kind[b] == KIND_SESSION)).sum())
    expected["session_latency_ms"] = ratio(c.session_latency_sum_ms, c.session_latency_samples)
    expected["session_hops"] = ratio(c.session_hops_sum, c.session_hops_samples)
    expected["mean_latency_ms"] = ratio(c.latency_sum_ms, c.latency_samples)
    expected["mean_recovery_s"] = ratio(c.recovery_sum_s, c.failovers)
    return expected


def test_metrics_equal_their_definitions_on_every_row():
    sim = _busy_sim()
    rng = np.random.default_rng(1)
    fresh = sim.metrics()
    for name in ("mean_latency_ms", "session_latency_ms", "mean_recovery_s", "session_hops"):
        np.testing.assert_array_equal(fresh[name], 0.0)  # no sample yet: 0, not nan
    for _ in range(50):
        sim.step(_random_actions(sim, rng))
    sim.counters.failovers[1] = 4.0  # a ratio over a non-zero denominator, row 1 only
    sim.counters.recovery_sum_s[1] = 10.0
    metrics = sim.metrics()
    assert tuple(metrics) == METRIC_NAMES
    for b in range(sim.batch_size):
        expected = _metrics_by_hand(sim, b)
        assert set(expected) == set(METRIC_NAMES)
        got = sim.metrics_of(b)
        for name in METRIC_NAMES:
            assert got[name] == expected[name], (name, b)
            assert metrics[name][b] == expected[name], (name, b)
    assert metrics["mean_recovery_s"][1] == 2.5
    assert sim.metrics()["sessions_active"].sum() > 0
