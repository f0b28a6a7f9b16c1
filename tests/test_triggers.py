"""Seed 000's migration triggers: urgency terms, dynamic threshold, trigger choice."""

from __future__ import annotations

import numpy as np
import pytest
from _handbuilt import noop, park, place, quiet_sim

from roadedge.envs.sim.config import MigrationConfig
from roadedge.envs.sim.triggers import (
    Trigger,
    analyse,
    battery_urgency,
    dynamic_threshold,
    node_triggers,
    overload_urgency,
)

# --------------------------------------------------------------------------- overload


@pytest.mark.parametrize(
    ("load", "thr", "expected"),
    [
        (0.9, 0.8, 0.5),  # (0.9 - 0.8) / (1 - 0.8) = 0.1 / 0.2
        (1.0, 0.8, 1.0),  # 0.2 / 0.2
        (0.8, 0.8, 0.0),  # at the threshold: not above -> 0
        (0.5, 0.8, 0.0),  # below -> 0
        (0.85, 0.7, 0.5),  # UAV: 0.15 / 0.3
        (0.79, 0.72, 0.25),  # dynamic RSU threshold: 0.07 / 0.28
    ],
)
def test_overload_urgency_hand_values(load, thr, expected):
    assert overload_urgency(load, thr) == pytest.approx(expected, abs=1e-12)


def test_overload_urgency_more_values_and_threshold_one():
    got = [overload_urgency(x, t) for x, t in [(0.0, 0.8), (0.81, 0.8), (0.95, 0.9)]]
    # 0 ; 0.01/0.2 = 0.05 ; 0.05/0.1 = 0.5
    np.testing.assert_allclose(got, [0.0, 0.05, 0.5], atol=1e-12)
    # threshold 1: never above it, no division by zero
    assert overload_urgency(1.0, 1.0) == 0.0


# --------------------------------------------------------------------------- dynamic threshold


def test_dynamic_threshold_hand_values():
    cfg = MigrationConfig()
    level, factor = cfg.dynamic_threshold_load, cfg.dynamic_threshold_factor
    assert (level, factor) == (0.7, 0.9)
    assert dynamic_threshold(0.8, 0.75, level, factor) == pytest.approx(0.72)  # 0.75 > 0.7
    assert dynamic_threshold(0.8, 0.7, level, factor) == pytest.approx(0.8)  # 0.7 is not > 0.7
    assert dynamic_threshold(0.8, 0.3, level, factor) == pytest.approx(0.8)
    assert dynamic_threshold(0.7, 0.9, level, factor) == pytest.approx(0.63)  # UAV: 0.7 * 0.9
    got = [dynamic_threshold(0.8, m, level, factor) for m in (0.69, 0.71, 1.0)]
    np.testing.assert_allclose(got, [0.8, 0.72, 0.72])


# --------------------------------------------------------------------------- battery


@pytest.mark.parametrize(
    ("battery", "thr", "expected"),
    [
        (0.1, 0.2, 0.5),  # (0.2 - 0.1) / 0.2
        (0.0, 0.2, 1.0),  # 0.2 / 0.2
        (0.15, 0.2, 0.25),  # 0.05 / 0.2
        (0.2, 0.2, 0.0),  # at the threshold: not below
        (0.9, 0.2, 0.0),
        (0.1, 0.0, 0.0),  # threshold 0 disables the trigger
    ],
)
def test_battery_urgency_hand_values(battery, thr, expected):
    assert battery_urgency(battery, thr) == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------- analyse

IS_UAV = np.array([False, False, False, True])


def _analyse(load, battery=None, view_up=None, away=None, hops=None, cfg=None):
    load = np.asarray([load], dtype=float)
    n = load.shape[1]
    return analyse(
        load,
        np.ones((1, n)) if battery is None else np.asarray([battery], dtype=float),
        IS_UAV,
        np.ones((1, n), bool) if view_up is None else np.asarray([view_up], dtype=bool),
        np.zeros((1, n)) if away is None else np.asarray([away], dtype=float),
        np.zeros((1, n)) if hops is None else np.asarray([hops], dtype=float),
        cfg or MigrationConfig(),
    )


def test_analyse_rsu_overload_and_uav_overload():
    # mean RSU load = (0.9 + 0.1 + 0.1) / 3 = 0.367 <= 0.7: static thresholds 0.8 / 0.7
    code, urgency, thr = _analyse([0.9, 0.1, 0.1, 0.94])
    np.testing.assert_allclose(thr[0], [0.8, 0.8, 0.8, 0.7])
    assert code[0].tolist() == [
        Trigger.RSU_OVERLOAD,
        Trigger.NONE,
        Trigger.NONE,
        Trigger.UAV_OVERLOAD,
    ]
    # (0.9-0.8)/0.2 = 0.5 ; 0 ; 0 ; (0.94-0.7)/0.3 = 0.8
    np.testing.assert_allclose(urgency[0], [0.5, 0.0, 0.0, 0.8], atol=1e-12)


def test_analyse_dynamic_threshold_when_rsus_busy():
    # mean RSU load = (0.9 + 0.8 + 0.8) / 3 = 0.833 > 0.7: thresholds 0.72 (RSU), 0.63 (UAV)
    code, urgency, thr = _analyse([0.9, 0.8, 0.8, 0.6])
    np.testing.assert_allclose(thr[0], [0.72, 0.72, 0.72, 0.63])
    # (0.9-0.72)/0.28 = 0.642857 ; (0.8-0.72)/0.28 = 0.285714 ; UAV 0.6 < 0.63 -> 0
    np.testing.assert_allclose(
        urgency[0], [0.642857142857, 0.285714285714, 0.285714285714, 0.0], atol=1e-9
    )
    assert code[0].tolist() == [Trigger.RSU_OVERLOAD] * 3 + [Trigger.NONE]


def test_analyse_picks_highest_urgency():
    # node 0: RSU overload (0.9-0.8)/0.2 = 0.5 vs mobility away 0.6 -> MOBILITY (0.6)
    # node 1: congestion (3 - 2) / 2 = 0.5 vs nothing else -> CONGESTION
    # node 2: mobility 0.4 is below the 0.5 trigger fraction -> NONE
    # node 3 (UAV): battery (0.2-0.05)/0.2 = 0.75 vs overload (0.85-0.7)/0.3 = 0.5 -> BATTERY
    code, urgency, _ = _analyse(
        [0.9, 0.1, 0.1, 0.85],
        battery=[1.0, 1.0, 1.0, 0.05],
        away=[0.6, 0.0, 0.4, 0.0],
        hops=[0.0, 3.0, 0.0, 0.0],
    )
    assert code[0].tolist() == [
        Trigger.MOBILITY,
        Trigger.CONGESTION,
        Trigger.NONE,
        Trigger.UAV_BATTERY,
    ]
    np.testing.assert_allclose(urgency[0], [0.6, 0.5, 0.0, 0.75], atol=1e-12)


def test_analyse_uav_overload_beats_weaker_battery():
    # UAV: battery (0.2-0.15)/0.2 = 0.25 vs overload (1.0-0.7)/0.3 = 1.0 -> UAV_OVERLOAD
    code, urgency, _ = _analyse([0.1, 0.1, 0.1, 1.0], battery=[1, 1, 1, 0.15])
    assert code[0, 3] == Trigger.UAV_OVERLOAD
    assert urgency[0, 3] == pytest.approx(1.0)


def test_analyse_rsu_ignores_battery_and_uav_terms():
    # a low "battery" on an RSU is meaningless: no trigger
    code, urgency, _ = _analyse([0.1, 0.1, 0.1, 0.1], battery=[0.0, 1, 1, 1])
    assert code[0, 0] == Trigger.NONE
    assert urgency[0, 0] == 0.0


def test_analyse_failover_for_nodes_believed_down():
    # node 1 is believed down: FAILOVER with urgency 1 whatever its (stale) load
    code, urgency, _ = _analyse([0.9, 0.0, 0.1, 0.1], view_up=[True, False, True, True])
    assert code[0].tolist() == [Trigger.RSU_OVERLOAD, Trigger.FAILOVER, Trigger.NONE, Trigger.NONE]
    np.testing.assert_allclose(urgency[0], [0.5, 1.0, 0.0, 0.0], atol=1e-12)


def test_analyse_is_per_environment():
    # two environments: the busy one lowers its thresholds, the other does not
    load = np.array([[0.75, 0.75, 0.75, 0.0], [0.75, 0.1, 0.1, 0.0]])
    ones = np.ones((2, 4))
    code, urgency, thr = analyse(
        load, ones, IS_UAV, np.ones((2, 4), bool), 0 * ones, 0 * ones, MigrationConfig()
    )
    # env 0: mean 0.75 > 0.7 -> thr 0.72, urgency (0.75-0.72)/0.28 = 0.107143
    # env 1: mean 0.317 -> thr 0.8, 0.75 is below: no trigger
    np.testing.assert_allclose(thr[:, 0], [0.72, 0.8])
    np.testing.assert_allclose(urgency[:, 0], [0.107142857143, 0.0], atol=1e-9)
    assert code[:, 0].tolist() == [Trigger.RSU_OVERLOAD, Trigger.NONE]


# ------------------------------------------------------------------ boundaries (mutants)
# Written against trigger mutants that survived `make mutants`: thresholds below 0.5
# (where 1 - t and 1 % t differ), the mobility share exactly at its threshold,
# congestion far above its threshold and with another threshold, a single RSU.


def test_overload_urgency_with_a_low_threshold():
    # (0.9 - 0.3) / (1 - 0.3) = 0.6 / 0.7
    assert overload_urgency(0.9, 0.3) == pytest.approx(0.6 / 0.7, abs=1e-12)


def test_mobility_fires_at_exactly_its_share():
    code, urgency, _ = _analyse([0.1, 0.1, 0.1, 0.1], away=[0.5, 0.49, 0.0, 0.0])
    assert code[0, 0] == Trigger.MOBILITY and urgency[0, 0] == pytest.approx(0.5)
    assert code[0, 1] == Trigger.NONE


def test_congestion_urgency_saturates_and_scales_with_its_threshold():
    # (5 - 2) / 2 = 1.5 -> 1 ; (3 - 2) / 2 = 0.5
    code, urgency, _ = _analyse([0.1] * 4, hops=[5.0, 3.0, 2.0, 0.0])
    assert code[0].tolist()[:3] == [Trigger.CONGESTION, Trigger.CONGESTION, Trigger.NONE]
    np.testing.assert_allclose(urgency[0, :3], [1.0, 0.5, 0.0], atol=1e-12)
    # threshold 1 hop: (1.5 - 1) / max(1, 1) = 0.5 ; threshold 0.5: / max(0.5, 1) = 1 -> 1
    cfg = MigrationConfig(congestion_hops=1.0)
    _, urgency, _ = _analyse([0.1] * 4, hops=[1.5, 0.0, 0.0, 0.0], cfg=cfg)
    assert urgency[0, 0] == pytest.approx(0.5)
    cfg = MigrationConfig(congestion_hops=0.5)
    _, urgency, _ = _analyse([0.1] * 4, hops=[1.25, 0.0, 0.0, 0.0], cfg=cfg)
    assert urgency[0, 0] == pytest.approx(0.75)  # (1.25 - 0.5) / 1


def test_one_rsu_sets_the_mean_rsu_load_alone():
    """With a single RSU the mean RSU load is its own load: 0.75 > 0.7 lowers the UAV
    threshold to 0.7 * 0.9 = 0.63."""
    _, _, thr = analyse(
        np.array([[0.75, 0.1]]),
        np.ones((1, 2)),
        np.array([False, True]),
        np.ones((1, 2), bool),
        np.zeros((1, 2)),
        np.zeros((1, 2)),
        MigrationConfig(),
    )
    np.testing.assert_allclose(thr[0], [0.72, 0.63])


def test_trigger_codes_are_distinct_and_index_the_statistics():
    """Each trigger has its own code in 0..len(Trigger)-1: the simulator counts
    migrations per trigger in an array of that length, and seed 000's statistics
    report every trigger by name."""
    assert sorted(int(t) for t in Trigger) == list(range(len(Trigger)))
    assert Trigger.NONE == 0


# ------------------------------------------------- codes and guards (mutants, 2nd round)
# Against trigger mutants that survived the first round: a code made an alias of
# another, and the guards against division by zero (threshold 1, battery threshold 0,
# no RSU at all), which only change the result by a floating-point error.

NO_FLOAT_ERRORS = {"divide": "raise", "invalid": "raise", "over": "raise"}


def test_trigger_codes_are_the_documented_ones():
    """MODEL.md section 8.2: the codes 0..7 in this order are an interface (events,
    ``mig_trigger``, the statistics' trigger distribution); no two triggers share one."""
    assert {t.name: int(t) for t in Trigger} == {
        "NONE": 0,
        "RSU_OVERLOAD": 1,
        "UAV_BATTERY": 2,
        "UAV_OVERLOAD": 3,
        "MOBILITY": 4,
        "CONGESTION": 5,
        "FAILOVER": 6,
        "POLICY": 7,
    }
    assert Trigger.POLICY is not Trigger.FAILOVER


def test_overload_threshold_one_never_fires_and_never_divides_by_zero():
    """Threshold 1 (the top of its range): 1 - 1 = 0 is never a divisor, and no load up
    to full (1.0) is above it."""
    with np.errstate(**NO_FLOAT_ERRORS):
        got = [overload_urgency(x, 1.0) for x in (0.0, 0.5, 1.0)]
        cfg = MigrationConfig(rsu_overload_threshold=1.0, uav_overload_threshold=1.0)
        # mean RSU load 0.5 <= 0.7: thresholds stay at 1
        code, urgency, thr = _analyse([1.0, 0.5, 0.0, 1.0], cfg=cfg)
    np.testing.assert_array_equal(got, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(thr[0], [1.0, 1.0, 1.0, 1.0])
    assert code[0].tolist() == [Trigger.NONE] * 4
    np.testing.assert_array_equal(urgency[0], [0.0] * 4)


def test_battery_threshold_zero_disables_without_dividing_by_zero():
    """Battery threshold 0 turns the UAV_BATTERY trigger off (no battery is below 0),
    without computing (0 - b) / 0."""
    with np.errstate(**NO_FLOAT_ERRORS):
        got = [battery_urgency(x, 0.0) for x in (0.0, 0.05, 1.0)]
        code, urgency, _ = _analyse(
            [0.1] * 4, battery=[1, 1, 1, 0.0], cfg=MigrationConfig(battery_threshold=0.0)
        )
    np.testing.assert_array_equal(got, [0.0, 0.0, 0.0])
    assert code[0, 3] == Trigger.NONE and urgency[0, 3] == 0.0


def test_without_rsus_the_thresholds_stay_static():
    """A UAV-only layout (rsu.count = 0 is allowed): the mean RSU load over no RSU is 0,
    not 0 / 0, so the UAV threshold stays 0.7 even when every UAV is full."""
    is_uav = np.array([True, True])
    ones = np.ones((1, 2))
    with np.errstate(**NO_FLOAT_ERRORS):
        code, urgency, thr = analyse(
            np.array([[1.0, 0.85]]), ones, is_uav, ones > 0, 0 * ones, 0 * ones, MigrationConfig()
        )
    np.testing.assert_allclose(thr[0], [0.7, 0.7])
    # (1.0 - 0.7) / 0.3 = 1 ; (0.85 - 0.7) / 0.3 = 0.5
    np.testing.assert_allclose(urgency[0], [1.0, 0.5], atol=1e-12)
    assert code[0].tolist() == [Trigger.UAV_OVERLOAD, Trigger.UAV_OVERLOAD]


def test_mobility_features_by_hand_on_a_quiet_world():
    """node_triggers' away share and mean hops: RSU 0 hosts two rows whose vehicles sit
    under RSU 1 (hops(1, 0) = 1) and under RSU 0 itself; every other node hosts nothing
    and has share 0 and mean hops 0 (small preset hops: 0-1 = 1, 0-2 = 1, 1-2 = 2)."""
    sim = quiet_sim()
    park(sim, 0, 1)
    park(sim, 1, 0)
    sim.step(noop(sim))
    place(sim, veh=0, host=0, service=2)
    place(sim, veh=1, host=0, service=2)
    _, _, _, away, hops = node_triggers(sim.world, sim.layout, sim.cfg)
    np.testing.assert_array_equal(away[0], [0.5, 0.0, 0.0, 0.0])  # one of two is elsewhere
    np.testing.assert_array_equal(hops[0], [0.5, 0.0, 0.0, 0.0])  # (1 + 0) / 2
