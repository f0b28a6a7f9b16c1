"""Seed 000's migration formulas, the Poisson sampler and processor sharing.

Every expected value is a literal computed by hand; the arithmetic is in the
comment next to it.
"""

from __future__ import annotations

import numpy as np
import pytest

from roadedge.envs.sim import compute, formulas, ledger
from roadedge.envs.sim.config import MigrationConfig
from roadedge.envs.sim.rng import Stream, key_from_seed, poisson_from_uniform, uniform
from roadedge.envs.sim.world import QUEUED, allocate

# --------------------------------------------------------------------------- target score


@pytest.mark.parametrize(
    ("load", "distance_m", "weight", "expected"),
    [
        (0.5, 1000.0, 0.7, 0.5),  # RSU->RSU: 0.7*(1-0.5) + 0.3/(1+1000/1000) = 0.35+0.15
        (0.2, 3000.0, 0.8, 0.69),  # UAV->RSU: 0.8*0.8 + 0.2/(1+3) = 0.64+0.05
        (0.0, 0.0, 0.7, 1.0),  # 0.7*1 + 0.3/(1+0) = 1.0
        (1.0, 1000.0, 0.8, 0.1),  # 0.8*0 + 0.2/2 = 0.1
        (0.25, 500.0, 0.7, 0.725),  # 0.7*0.75 + 0.3/1.5 = 0.525+0.2
    ],
)
def test_target_score_hand_values(load, distance_m, weight, expected):
    assert formulas.target_score(load, distance_m, weight) == pytest.approx(expected, abs=1e-12)


def test_target_score_vectorised_and_weights_differ():
    load = np.array([0.5, 0.5])
    d = np.array([1000.0, 1000.0])
    w = np.array([0.7, 0.8])
    # 0.7*0.5 + 0.3/2 = 0.5 ; 0.8*0.5 + 0.2/2 = 0.5 -> equal at this point ...
    np.testing.assert_allclose(formulas.target_score(load, d, w), [0.5, 0.5], atol=1e-12)
    # ... but at load 0.1, d = 3000: 0.7*0.9 + 0.3/4 = 0.705 ; 0.8*0.9 + 0.2/4 = 0.77
    got = formulas.target_score(np.array([0.1, 0.1]), np.array([3000.0, 3000.0]), w)
    np.testing.assert_allclose(got, [0.705, 0.77], atol=1e-12)


def test_target_score_distance_weight_is_one_minus_the_capacity_weight():
    # any w_cap, not only the seed's 0.7 / 0.8: 0.25*(1-0.2) + 0.75/(1 + 1000/1000)
    # = 0.2 + 0.375 (a mutant 1 % w would give 0.25 / 2 here; for w > 0.5 it equals 1 - w)
    assert formulas.target_score(0.2, 1000.0, 0.25) == pytest.approx(0.575, abs=1e-12)


def test_target_score_distance_scale():
    # 0.7*(1-0.5) + 0.3/(1 + 1000/500) = 0.35 + 0.1 = 0.45
    assert formulas.target_score(0.5, 1000.0, 0.7, distance_scale_m=500.0) == pytest.approx(0.45)


# --------------------------------------------------------------------------- task priority


@pytest.mark.parametrize(
    ("urgency", "remaining", "expected"),
    [
        (0.6, 4.0, 0.425),  # 0.5*0.6 + 0.5/max(1, 4) = 0.3 + 0.125
        (0.6, 0.5, 0.8),  # 0.3 + 0.5/max(1, 0.5) = 0.3 + 0.5
        (0.0, -3.0, 0.5),  # past deadline: 0 + 0.5/max(1, -3) = 0.5
        (1.0, 10.0, 0.55),  # 0.5 + 0.05
        (0.2, 1.0, 0.6),  # 0.1 + 0.5/1
    ],
)
def test_task_priority_hand_values(urgency, remaining, expected):
    assert formulas.task_priority(urgency, remaining) == pytest.approx(expected, abs=1e-12)


def test_task_priority_orders_urgent_near_deadline_first():
    p = formulas.task_priority(np.array([0.0, 0.0, 1.0]), np.array([100.0, 2.0, 100.0]))
    # 0 + 0.005 ; 0 + 0.25 ; 0.5 + 0.005
    np.testing.assert_allclose(p, [0.005, 0.25, 0.505], atol=1e-12)


# --------------------------------------------------------------------------- delay and phases


def test_transfer_time_hand_values():
    # 50 MB * 8 bit/B / 100 Mbps = 4 s ; 12.5 MB * 8 / 50 Mbps = 2 s
    assert formulas.transfer_time_s(50.0, 100.0) == pytest.approx(4.0)
    assert formulas.transfer_time_s(12.5, 50.0) == pytest.approx(2.0)


def test_migration_delay_hand_values(mig_cfg):
    # 25 MB over 100 Mbps: 25*8/100 = 2 s; parallel factor 0.5 -> 1 s; 3 hops * 2 ms = 0.006 s
    assert formulas.migration_delay_s(25.0, 3, mig_cfg, 2.0) == pytest.approx(1.006, abs=1e-12)
    # 0 MB, 1 hop of 10 ms: 0 + 0.010 s
    assert formulas.migration_delay_s(0.0, 1, mig_cfg, 10.0) == pytest.approx(0.01, abs=1e-12)
    # vectorised: [10 MB, 2 hops] -> 0.5*0.8 + 0.004 = 0.404 ; [100 MB, 0 hops] -> 0.5*8 = 4.0
    got = formulas.migration_delay_s(np.array([10.0, 100.0]), np.array([2, 0]), mig_cfg, 2.0)
    np.testing.assert_allclose(got, [0.404, 4.0], atol=1e-12)


def test_migration_delay_uses_configured_bandwidth():
    cfg = MigrationConfig(backhaul_mbps=10.0, parallel_factor=1.0)
    # 25 MB * 8 / 10 Mbps = 20 s, factor 1 -> 20 s; no hops
    assert formulas.migration_delay_s(25.0, 0, cfg, 2.0) == pytest.approx(20.0)


def test_phase_durations_70_25_5(mig_cfg):
    prepare, sync, switch = formulas.phase_durations_s(2.0, mig_cfg)
    assert prepare == pytest.approx(1.4)  # 0.70 * 2
    assert sync == pytest.approx(0.5)  # 0.25 * 2
    assert switch == pytest.approx(0.1)  # 0.05 * 2
    prepare, sync, switch = formulas.phase_durations_s(np.array([10.0, 0.0]), mig_cfg)
    np.testing.assert_allclose(prepare, [7.0, 0.0])  # 0.7 * 10
    np.testing.assert_allclose(sync, [2.5, 0.0])  # 0.25 * 10
    np.testing.assert_allclose(switch, [0.5, 0.0])  # 0.05 * 10


# --------------------------------------------------------------------------- cost


def test_migration_cost_hand_values(mig_cfg):
    # comp = 25/10 = 2.5 ; tx = 25*8/100 = 2.0 ; latency = 1.006
    # 0.4*2.5 + 0.3*2.0 + 0.3*1.006 = 1.0 + 0.6 + 0.3018 = 1.9018
    assert formulas.migration_cost(25.0, 1.006, mig_cfg) == pytest.approx(1.9018, abs=1e-12)
    # 0 MB, delay 2 s: 0 + 0 + 0.3*2 = 0.6
    assert formulas.migration_cost(0.0, 2.0, mig_cfg) == pytest.approx(0.6, abs=1e-12)
    # 100 MB, delay 0: 0.4*10 + 0.3*8 + 0 = 4.0 + 2.4 = 6.4
    assert formulas.migration_cost(100.0, 0.0, mig_cfg) == pytest.approx(6.4, abs=1e-12)


def test_migration_cost_weights_are_configurable():
    cfg = MigrationConfig(alpha_comp=1.0, alpha_tx=0.0, alpha_lat=0.0)
    # only computation: 30 MB / 10 MB = 3
    assert formulas.migration_cost(30.0, 5.0, cfg) == pytest.approx(3.0)


# --------------------------------------------------------------------------- success probability


@pytest.mark.parametrize(
    ("d", "load", "urgency", "expected"),
    [
        (2000.0, 0.5, 0.4, 0.67),  # 0.9 - 0.2 - 0.05 + 0.02
        (0.0, 0.0, 0.0, 0.9),  # base
        (1000.0, 1.0, 1.0, 0.75),  # 0.9 - 0.1 - 0.1 + 0.05
        (5000.0, 0.0, 0.0, 0.6),  # distance term capped: min(0.5, 0.3) -> 0.9 - 0.3
        (1e6, 0.0, 0.0, 0.6),  # min(100, 0.3) = 0.3 -> 0.6
        (3000.0, 0.0, 0.0, 0.6),  # exactly at the cap: 0.9 - 0.3
        (1e6, 1.0, 0.0, 0.5),  # 0.9 - 0.3 - 0.1
    ],
)
def test_success_probability_hand_values(mig_cfg, d, load, urgency, expected):
    got = formulas.success_probability(d, load, urgency, mig_cfg)
    assert got == pytest.approx(expected, abs=1e-12)


def test_success_probability_clipped_low_and_high():
    low = MigrationConfig(success_base=0.1)
    # 0.1 - min(0.5, 0.3) - 0.1*1 + 0 = -0.3 -> clipped to 0
    assert formulas.success_probability(5000.0, 1.0, 0.0, low) == 0.0
    high = MigrationConfig(success_base=1.0)
    # 1.0 - 0 - 0 + 0.05*1 = 1.05 -> clipped to 1
    assert formulas.success_probability(0.0, 0.0, 1.0, high) == 1.0
    # unclipped neighbour: 1.0 - 0.01 - 0 + 0 = 0.99
    assert formulas.success_probability(100.0, 0.0, 0.0, high) == pytest.approx(0.99)


def test_success_probability_vectorised(mig_cfg):
    got = formulas.success_probability(
        np.array([0.0, 4000.0]), np.array([0.5, 0.0]), np.array([0.0, 1.0]), mig_cfg
    )
    # 0.9 - 0 - 0.05 + 0 = 0.85 ; 0.9 - 0.3 - 0 + 0.05 = 0.65
    np.testing.assert_allclose(got, [0.85, 0.65], atol=1e-12)


# --------------------------------------------------------------------------- EWMA


def test_ewma_hand_values():
    # 0.1*20 + 0.9*10 = 2 + 9 = 11
    assert formulas.ewma(10.0, 20.0, 0.1) == pytest.approx(11.0)
    # 0.1*0 + 0.9*5 = 4.5
    assert formulas.ewma(5.0, 0.0, 0.1) == pytest.approx(4.5)
    # alpha 1 takes the new value; alpha 0 keeps the old one
    assert formulas.ewma(3.0, 7.0, 1.0) == pytest.approx(7.0)
    assert formulas.ewma(3.0, 7.0, 0.0) == pytest.approx(3.0)


def test_ewma_sequence_with_default_alpha(mig_cfg):
    assert mig_cfg.ewma_alpha == 0.1
    value = 10.0
    for new in (20.0, 20.0):
        value = formulas.ewma(value, new, mig_cfg.ewma_alpha)
    # 11 -> 0.1*20 + 0.9*11 = 2 + 9.9 = 11.9
    assert value == pytest.approx(11.9)


# --------------------------------------------------------------------------- Poisson sampler


def test_poisson_from_uniform_hand_cdf_mean_1():
    # mean 1: P0 = e^-1 = 0.367879, CDF1 = 0.735759, CDF2 = 0.919699,
    # CDF3 = 0.981012, CDF4 = 0.996340
    u = np.array([0.0, 0.3, 0.367, 0.368, 0.5, 0.735, 0.736, 0.8, 0.95, 0.99])
    expected = [0, 0, 0, 1, 1, 1, 2, 2, 3, 4]
    np.testing.assert_array_equal(poisson_from_uniform(u, 1.0), expected)


def test_poisson_from_uniform_hand_cdf_mean_2():
    # mean 2: P0 = e^-2 = 0.135335, CDF1 = 3e^-2 = 0.406006, CDF2 = 5e^-2 = 0.676676,
    # CDF3 = (19/3)e^-2 = 0.857123
    u = np.array([0.1, 0.2, 0.5, 0.7, 0.86])
    np.testing.assert_array_equal(poisson_from_uniform(u, 2.0), [0, 1, 2, 3, 4])


def test_poisson_from_uniform_edge_cases():
    # inverse CDF: count = min{k : u < F(k)}; u exactly on F(0) = e^-1 belongs to count 1
    assert poisson_from_uniform(np.array([np.exp(-1.0)]), 1.0)[0] == 1
    # mean 0: P0 = 1, every u < 1 gives 0
    np.testing.assert_array_equal(poisson_from_uniform(np.array([0.0, 0.5, 0.999]), 0.0), 0)
    # k_max caps the count: u near 1 with mean 1 would be large, capped at 2
    assert poisson_from_uniform(np.array([0.999999999]), 1.0, k_max=2)[0] == 2
    # per-element means broadcast: u = 0.5 with means [0.1, 1, 2] -> [0, 1, 2]
    # (e^-0.1 = 0.905 > 0.5 ; CDF0(1) = 0.368 < 0.5 < CDF1(1) ; CDF1(2) = 0.406 < 0.5 < 0.677)
    got = poisson_from_uniform(np.full(3, 0.5), np.array([0.1, 1.0, 2.0]))
    np.testing.assert_array_equal(got, [0, 1, 2])


def test_poisson_from_uniform_sample_mean():
    key = key_from_seed(3)
    u = uniform(
        np.array([key]),
        np.array([0], dtype=np.uint64),
        Stream.TASK_ARRIVALS,
        np.arange(200_000, dtype=np.uint64),
    )
    counts = poisson_from_uniform(u, 0.7)
    assert counts.mean() == pytest.approx(0.7, abs=0.01)
    assert counts.var() == pytest.approx(0.7, abs=0.02)


# --------------------------------------------------------------------------- counter-based uniforms


def test_uniform_range_determinism_and_independence():
    k = np.array([[key_from_seed(1)], [key_from_seed(2)]], dtype=np.uint64)  # (2, 1)
    tick = np.zeros((2, 1), dtype=np.uint64)
    idx = np.arange(1000, dtype=np.uint64)[None, :]
    a = uniform(k, tick, Stream.VEHICLE_SPEED, idx)
    assert a.shape == (2, 1000)
    assert np.all((a >= 0.0) & (a < 1.0))
    np.testing.assert_array_equal(a, uniform(k, tick, Stream.VEHICLE_SPEED, idx))
    # a row computed alone equals the same row computed in a batch
    np.testing.assert_array_equal(a[1], uniform(k[1:], tick[1:], Stream.VEHICLE_SPEED, idx)[0])
    # different key, stream or tick give different numbers
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a, uniform(k, tick, Stream.VEHICLE_TURN, idx))
    assert not np.array_equal(a, uniform(k, tick + np.uint64(1), Stream.VEHICLE_SPEED, idx))
    assert abs(a.mean() - 0.5) < 0.03


def test_key_from_seed_distinct():
    keys = {int(key_from_seed(s)) for s in range(100)}
    assert len(keys) == 100


# --------------------------------------------------------------------------- processor sharing


def _world_with_tasks(small_layout, hosts):
    """One env; task ``i`` dispatched onto node ``hosts[i]`` through the ledger."""
    w = allocate(1, small_layout.n_nodes, 4, 16)
    n = len(hosts)
    w.task_state[0, :n] = QUEUED
    w.task_vehicle[0, :n] = 0
    w.veh_tasks[0, 0] = n
    ledger.dispatch(
        w,
        small_layout,
        np.zeros(n, dtype=np.int64),
        np.arange(n),
        np.asarray(hosts, dtype=np.int64),
    )
    return w


def test_host_share_hand_values(small_layout, small_cfg):
    # small preset: nodes 0-2 are 20 GHz RSUs, node 3 an 8 GHz UAV; a task ready for the
    # whole tick does its host's share * dt cycles
    w = _world_with_tasks(small_layout, [0, 0, 0, 0, 1, 3, 3])
    w.task_work[0, :7] = 1e15
    compute.progress(w, small_layout, small_cfg, np.zeros_like(w.task_done))
    # 20e9 / 4 = 5e9 ; 20e9 / 1 ; 8e9 / 2 = 4e9
    share = np.array([5e9] * 4 + [20e9] + [4e9] * 2)
    np.testing.assert_allclose(w.task_done[0, :7], share * small_cfg.dt_s)


def test_progress_processor_sharing(small_cfg, small_layout):
    w = _world_with_tasks(small_layout, [0, 0, 0, 0, 3])
    w.time_s[0] = 10.0
    w.task_work[0, :5] = 1e12
    # ready at: t (full tick), t+0.5 (half tick), t-1 (full, but 0.2 s switch), t+2 (none)
    w.task_ready_s[0, :5] = [10.0, 10.5, 9.0, 12.0, 0.0]
    blocked = np.zeros_like(w.task_done)
    blocked[0, 2] = 0.2
    w.node_up[0, 3] = False  # the UAV died unbeknownst to the controller
    serving, charged, _ = compute.progress(w, small_layout, small_cfg, blocked)
    # share on node 0 = 20e9 / 4 = 5e9 cycles/s:
    # 5e9*1 ; 5e9*0.5 ; 5e9*(1-0.2) ; 0 ; dead host 0
    np.testing.assert_allclose(w.task_done[0, :5], [5e9, 2.5e9, 4e9, 0.0, 0.0])
    np.testing.assert_array_equal(serving[0, :5], [True, True, True, True, False])
    assert not serving[0, 5:].any()
    np.testing.assert_array_equal(charged, serving)  # a served task is always charged


def test_uav_energy_hand_values(small_cfg, small_layout):
    w = _world_with_tasks(small_layout, [3, 3, 0])
    energy = compute.uav_energy_j(w, small_layout, small_cfg)
    # UAV with 2 of 4 slots: (150 W + 50 W * 0.5) * 1 s = 175 J; RSUs draw nothing here
    np.testing.assert_allclose(energy[0], [0.0, 0.0, 0.0, 175.0])
    w.node_up[0, 3] = False
    assert compute.uav_energy_j(w, small_layout, small_cfg)[0, 3] == 0.0


def test_poisson_large_means_are_not_stuck_at_the_cap():
    # e^-mean underflows to 0 above mean ~745: a naive inversion then returns its cap for
    # every u. The median of Poisson(m) for an integer m is m itself: F(m - 1) <= 1/2 < F(m).
    for mean in (50.0, 699.0, 701.0, 1000.0, 5000.0):
        assert poisson_from_uniform(np.array([0.5]), mean)[0] == int(mean)


def test_poisson_large_mean_sample_moments():
    key = key_from_seed(5)
    u = uniform(
        np.array([key]),
        np.array([0], dtype=np.uint64),
        Stream.VEHICLE_ARRIVALS,
        np.arange(20_000, dtype=np.uint64),
    )
    counts = poisson_from_uniform(u, 2000.0)
    # mean 2000 +- 3 standard errors (sqrt(2000 / 20000) = 0.32); variance 2000 within 5 %
    assert counts.mean() == pytest.approx(2000.0, abs=1.0)
    assert counts.var() == pytest.approx(2000.0, rel=0.05)


def _uniform_by_hand(key: int, tick: int, stream: int, index: int) -> float:
    """MODEL.md section 12, in Python integers (mod 2**64), independent of the code."""
    mask = (1 << 64) - 1

    def mix64(x: int) -> int:
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        return x ^ (x >> 31)

    x = (key + tick * 0xD6E8FEB86659FD93 + stream * 0xA0761D6478BD642F) & mask
    x = mix64((x + 0x9E3779B97F4A7C15 * (index + 1)) & mask)
    x = mix64(x ^ key)
    return (x >> 11) * 2.0**-53


@pytest.mark.parametrize(
    ("key", "tick", "stream", "index"),
    [(1, 0, 1, 0), (2**64 - 1, 7, 44, 12345), (0xDEADBEEF, 2**40, 10, 2**63)],
)
def test_uniform_is_the_documented_hash(key, tick, stream, index):
    u = uniform(
        np.array([key], np.uint64),
        np.array([tick], np.uint64),
        stream,
        np.array([index], np.uint64),
    )
    assert u[0] == _uniform_by_hand(key, tick, stream, index)


def test_every_stream_has_its_own_id():
    """No two purposes share a stream id (so no two draws ever share a counter)."""
    ids = {name: v for name, v in vars(Stream).items() if name.isupper()}
    assert len(ids) >= 30
    assert len(set(ids.values())) == len(ids), ids
