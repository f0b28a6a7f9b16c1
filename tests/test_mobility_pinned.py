"""Pins of mobility.py (MODEL.md section 3) on hand-computed values: the step is speed * dt,
the crossing rule for the negative headings and on the last intersection, the map's edge
tolerance, the entry and reset placement distributions and the arrival mean per tick.
Written against the survivors of a mutation run.

small: a 2 x 2 grid of 250 m blocks (the map is [0, 500]^2, roads at 0, 250, 500)."""

from __future__ import annotations

import numpy as np
import pytest
from _handbuilt import vehicle_world

from roadedge.envs.sim import mobility
from roadedge.envs.sim.config import load_scenario
from roadedge.envs.sim.rng import key_from_seed
from roadedge.envs.sim.world import allocate


def _cfg(**overrides):
    return load_scenario("small", overrides)


def _world(states, seed=0):
    return vehicle_world(states, 4, seed=seed)


def test_a_vehicle_moves_speed_times_dt_per_tick():
    """dt = 0.5 s: 10 m/s drives 5 m (+x: 100 -> 105), 16 m/s 8 m (-y: 100 -> 92)."""
    w = _world([(100, 0, 0, 10), (250, 100, 3, 16)])
    mobility.move_vehicles(w, _cfg(dt_s=0.5, **{"vehicles.turn_probability": 0.0}))
    assert w.veh_x[0].tolist() == [105.0, 250.0]
    assert w.veh_y[0].tolist() == [0.0, 92.0]


def test_negative_headings_turn_at_the_intersection_they_cross():
    """-x from x = 255 and -y from y = 255 at 12 m/s cross (250, 250) after 5 m; with turn
    probability 1 each turns and drives the remaining 7 m along the other axis."""
    n = 200
    w = _world([(255, 250, 2, 12)] * n + [(250, 255, 3, 12)] * n)
    mobility.move_vehicles(w, _cfg(**{"vehicles.turn_probability": 1.0}))
    x, y, d = w.veh_x[0], w.veh_y[0], w.veh_dir[0]
    west, south = slice(0, n), slice(n, 2 * n)
    # -x turns left to -y (3) or right to +y (1), at x = 250
    assert set(d[west].tolist()) == {1, 3}
    np.testing.assert_allclose(x[west], 250.0)
    np.testing.assert_allclose(y[west], np.where(d[west] == 1, 257.0, 243.0))
    # -y turns left to +x (0) or right to -x (2), at y = 250
    assert set(d[south].tolist()) == {0, 2}
    np.testing.assert_allclose(y[south], 250.0)
    np.testing.assert_allclose(x[south], np.where(d[south] == 0, 257.0, 243.0))
    assert w.veh_active[0].all()


def test_a_vehicle_on_the_last_intersection_drives_off_the_map():
    """On the boundary intersection (500, 250) heading +x: the next intersection is a
    whole block ahead (x = 750), so even with turn probability 1 there is no turn now and
    the vehicle drives to x = 510 and leaves."""
    w = _world([(500, 250, 0, 10)])
    mobility.move_vehicles(w, _cfg(**{"vehicles.turn_probability": 1.0}))
    assert (w.veh_x[0, 0], w.veh_y[0, 0], w.veh_dir[0, 0]) == (510.0, 250.0, 0)
    assert not w.veh_active[0, 0]


def test_the_next_intersection_is_found_beyond_the_second_block():
    """4 x 4 grid: +x from x = 745 at 10 m/s crosses x = 750 (the 4th road) after 5 m and,
    with turn probability 1, turns onto it: x = 750, y = 250 +- 5."""
    n = 100
    w = _world([(745, 250, 0, 10)] * n)
    mobility.move_vehicles(w, _cfg(**{"map.grid_blocks": 4, "vehicles.turn_probability": 1.0}))
    np.testing.assert_allclose(w.veh_x[0], 750.0)
    assert set(w.veh_dir[0].tolist()) == {1, 3}
    np.testing.assert_allclose(w.veh_y[0], np.where(w.veh_dir[0] == 1, 255.0, 245.0))


def test_vehicles_on_the_edge_roads_stay_on_the_map():
    """The roads x = 0 and y = 0 are on the map ([0, L]^2, tolerance 1e-6 m inclusive): a
    vehicle driving along x = 0, or at x = -1e-6, stays; one at x = -2e-6 leaves."""
    w = _world([(0, 100, 1, 10), (-1e-6, 100, 1, 10), (-2e-6, 100, 1, 10), (100, 0, 0, 10)])
    mobility.move_vehicles(w, _cfg(**{"vehicles.turn_probability": 0.0}))
    assert w.veh_y[0, :3].tolist() == [110.0, 110.0, 110.0]
    assert w.veh_active[0].tolist() == [True, True, False, True]


def test_entering_vehicles_use_every_road_and_heading_evenly():
    """Road r = min(floor(u * (G + 1)), G) on the line r * 250 and heading
    min(floor(u * 4), 3): each of the 3 roads ~1/3 and each of the 4 headings ~1/4."""
    n = 3000
    w = allocate(1, 4, n, 4)
    w.key[0] = key_from_seed(7)
    mobility.spawn_vehicles(w, _cfg(), np.array([n]), initial=False)
    x, y, d = w.veh_x[0], w.veh_y[0], w.veh_dir[0]
    cross = np.where(d % 2 == 0, y, x)
    assert set(cross.tolist()) == {0.0, 250.0, 500.0}
    np.testing.assert_allclose(np.bincount((cross // 250).astype(int)) / n, 1 / 3, atol=0.03)
    np.testing.assert_allclose(np.bincount(d, minlength=4) / n, 0.25, atol=0.03)


def test_initial_vehicles_are_spread_uniformly_along_their_road():
    """At reset the position along the road is u * L, L = 500: each quarter ~1/4."""
    n = 4000
    w = allocate(1, 4, n, 4)
    w.key[0] = key_from_seed(9)
    mobility.spawn_vehicles(w, _cfg(), np.array([n]), initial=True)
    x, y, d = w.veh_x[0], w.veh_y[0], w.veh_dir[0]
    along = np.where(d % 2 == 0, x, y)
    assert np.all((along >= 0.0) & (along < 500.0))
    quarters = np.bincount((along // 125).astype(int), minlength=4) / n
    np.testing.assert_allclose(quarters, 0.25, atol=0.03)


def test_arrivals_per_tick_are_rate_times_dt():
    """4 vehicles/s with dt = 0.5 s: Poisson with mean (and variance) 2 per tick."""
    cfg = _cfg(dt_s=0.5, **{"vehicles.arrival_rate_hz": 4.0})
    w = allocate(10_000, 4, 1, 1)
    w.key[:] = [key_from_seed(s) for s in range(10_000)]
    counts = mobility.arrivals(w, cfg)
    assert counts.mean() == pytest.approx(2.0, rel=0.04)
    assert counts.var() == pytest.approx(2.0, rel=0.08)
