"""Highway mobility (``map.kind = "highway"``): lanes, motion, entry and exit, layout,
determinism, config rules, the registered preset and its rendering."""

from __future__ import annotations

from dataclasses import fields

import gymnasium as gym
import numpy as np
import pytest
from _handbuilt import vehicle_world

from roadedge.envs import env_ids
from roadedge.envs.render import FRAME_SHAPE
from roadedge.envs.sim import highway, mobility
from roadedge.envs.sim.config import ConfigError, load_scenario
from roadedge.envs.sim.layout import build_layout
from roadedge.envs.sim.rng import Stream, key_from_seed
from roadedge.envs.sim.simulator import Simulator
from roadedge.envs.sim.world import allocate

# A small highway: 1 km, 2 lanes each way of 3.5 m (road 14 m wide), 4 RSUs, 2 UAVs.
SMALL_HW = {
    "map.kind": "highway",
    "map.highway_length_m": 1000.0,
    "map.lanes_per_direction": 2,
    "map.lane_width_m": 3.5,
    "rsu.count": 4,
    "uav.count": 2,
    "vehicles.speed_min_mps": 20.0,
    "vehicles.speed_max_mps": 30.0,
}
LANES_POS_X = [1.75, 5.25]  # heading +x: (k + 0.5) * 3.5
LANES_NEG_X = [12.25, 8.75]  # heading -x: 14 - (k + 0.5) * 3.5
HIGHWAY_ID = next(i for i in env_ids() if i.startswith("RoadEdge-highway-"))


def hw_cfg(**over):
    return load_scenario("small", {**SMALL_HW, **over})


def hw_world(states, n_rows=None, seed=0):
    """One env with 6 nodes; vehicle rows from (x, y, dir, speed) tuples, all active."""
    return vehicle_world(states, 6, n_rows, seed)


# --------------------------------------------------------------------------- motion


def test_lane_centres():
    fwd, back = highway.lane_centres_m(hw_cfg())
    assert fwd.tolist() == LANES_POS_X
    assert back.tolist() == LANES_NEG_X
    assert hw_cfg().map.road_width_m == 14.0


def test_vehicles_keep_their_lane_and_move_speed_times_dt():
    w = hw_world([(100, 1.75, 0, 25), (900, 12.25, 2, 30), (500, 5.25, 0, 20.5)])
    cfg = hw_cfg()
    mobility.move_vehicles(w, cfg)
    # +x: 100 + 25 = 125 ; -x: 900 - 30 = 870 ; +x: 500 + 20.5 = 520.5 ; y and heading kept
    assert w.veh_x[0].tolist() == [125.0, 870.0, 520.5]
    assert w.veh_y[0].tolist() == [1.75, 12.25, 5.25]
    assert w.veh_dir[0].tolist() == [0, 2, 0]
    mobility.move_vehicles(w, cfg)
    assert w.veh_x[0].tolist() == [150.0, 840.0, 541.0]
    # half-second ticks: 150 + 0.5 * 25 = 162.5 ; 840 - 15 = 825
    mobility.move_vehicles(w, hw_cfg(dt_s=0.5))
    assert w.veh_x[0].tolist() == [162.5, 825.0, 551.25]
    assert w.veh_active[0].all()


def test_vehicles_leave_at_the_far_end():
    w = hw_world(
        [(990, 1.75, 0, 20), (5, 12.25, 2, 10), (980, 5.25, 0, 20), (20, 8.75, 2, 20), (0, 0, 0, 9)]
    )
    w.veh_active[0, 4] = False  # parked row: does not move
    mobility.move_vehicles(w, hw_cfg())
    # 1010 > 1000 leaves ; -5 < 0 leaves ; exactly 1000 and exactly 0 stay (inclusive ends)
    assert w.veh_active[0].tolist() == [False, False, True, True, False]
    assert w.veh_x[0, 2:].tolist() == [1000.0, 0.0, 0.0]
    mobility.move_vehicles(w, hw_cfg())
    assert not w.veh_active[0].any()


def test_entering_vehicles_start_at_the_upstream_end_with_the_right_heading():
    cfg = hw_cfg()
    n = 400
    w = allocate(1, 6, n, 4)
    w.key[0] = key_from_seed(5)
    mobility.spawn_vehicles(w, cfg, np.array([n]), initial=False)
    assert w.veh_active[0].all()
    assert w.veh_serial[0].tolist() == list(range(n)) and w.veh_spawned[0] == n
    x, y, d, v = w.veh_x[0], w.veh_y[0], w.veh_dir[0], w.veh_speed[0]
    fwd, back = d == 0, d == 2
    assert np.all(fwd | back)
    assert 0.4 < fwd.mean() < 0.6  # both directions equally likely
    np.testing.assert_array_equal(x[fwd], 0.0)  # +x enters at x = 0
    np.testing.assert_array_equal(x[back], 1000.0)  # -x enters at x = L
    assert set(y[fwd].tolist()) == set(LANES_POS_X)  # its own side, every lane used
    assert set(y[back].tolist()) == set(LANES_NEG_X)
    assert np.all((v >= 20.0) & (v <= 30.0))
    assert v.std() > 2.0  # spread over [20, 30] (uniform: sd 2.89)
    assert np.all(w.veh_serving[0] == -1)
    # one tick later each is speed * dt into the road, moving away from its entry end
    mobility.move_vehicles(w, cfg)
    np.testing.assert_allclose(w.veh_x[0][fwd], v[fwd])
    np.testing.assert_allclose(w.veh_x[0][back], 1000.0 - v[back])


def test_initial_vehicles_are_spread_uniformly_along_the_road():
    n = 4000
    w = allocate(1, 6, n, 4)
    w.key[0] = key_from_seed(9)
    mobility.spawn_vehicles(w, hw_cfg(), np.array([n]), initial=True)
    x, y, d = w.veh_x[0], w.veh_y[0], w.veh_dir[0]
    assert np.all((x >= 0.0) & (x < 1000.0))
    quarters = np.bincount((x // 250).astype(int), minlength=4) / n
    np.testing.assert_allclose(quarters, 0.25, atol=0.03)
    assert set(y[d == 0].tolist()) == set(LANES_POS_X)
    assert set(y[d == 2].tolist()) == set(LANES_NEG_X)


def test_an_entering_vehicle_is_the_same_whichever_row_it_gets():
    cfg = hw_cfg()
    a, b = allocate(1, 6, 8, 4), allocate(1, 6, 8, 4)
    for w in (a, b):
        w.key[0] = key_from_seed(2)
        w.veh_spawned[0] = 1
    b.veh_tasks[0, 0:3] = 1  # rows 0-2 still busy in b: the same vehicles land in 3-5
    mobility.spawn_vehicles(a, cfg, np.array([3]), initial=False)
    mobility.spawn_vehicles(b, cfg, np.array([3]), initial=False)
    for name in ("veh_x", "veh_y", "veh_dir", "veh_speed", "veh_serial"):
        np.testing.assert_array_equal(getattr(a, name)[0, 0:3], getattr(b, name)[0, 3:6])


def test_a_simulated_episode_keeps_vehicles_on_their_lanes():
    """Over a run with entries and exits: every vehicle stays on a lane of its heading's side
    at constant y and speed, and moves exactly speed * dt per tick."""
    cfg = hw_cfg()
    sim = Simulator(cfg, batch_size=2, check_invariants=True)
    sim.reset(np.array([key_from_seed(1), key_from_seed(2)], dtype=np.uint64))
    w = sim.world
    fwd, back = highway.lane_centres_m(cfg)
    entered = left = 0
    for _ in range(120):
        before = {
            name: getattr(w, name).copy()
            for name in ("veh_x", "veh_y", "veh_speed", "veh_serial", "veh_active")
        }
        sim.step(np.zeros((2, sim.layout.n_nodes), dtype=np.int64))
        act = w.veh_active
        assert np.all(np.isin(w.veh_y[act & (w.veh_dir == 0)], fwd))
        assert np.all(np.isin(w.veh_y[act & (w.veh_dir == 2)], back))
        assert np.all((w.veh_x[act] >= 0.0) & (w.veh_x[act] <= 1000.0))
        same = before["veh_active"] & act & (before["veh_serial"] == w.veh_serial)
        sign = np.where(w.veh_dir == 2, -1.0, 1.0)
        np.testing.assert_allclose(
            (w.veh_x - before["veh_x"])[same], (sign * before["veh_speed"])[same], atol=1e-9
        )
        np.testing.assert_array_equal(w.veh_y[same], before["veh_y"][same])
        left += (before["veh_active"] & ~act).sum()
        entered += (act & ~(before["veh_active"] & (before["veh_serial"] == w.veh_serial))).sum()
    assert entered > 0 and left > 0


# --------------------------------------------------------------------------- layout


def test_layout_of_a_small_highway_by_hand():
    lay = build_layout(hw_cfg())
    # RSUs every 1000 / 4 = 250 m, centred: x = 125, 375, 625, 875, on the road edge y = 0,
    # at rsu.height_m = 10 ; UAVs every 500 m: x = 250, 750 above the median y = 14 / 2 = 7
    np.testing.assert_array_equal(
        lay.pos_xyz,
        [
            [125.0, 0.0, 10.0],
            [375.0, 0.0, 10.0],
            [625.0, 0.0, 10.0],
            [875.0, 0.0, 10.0],
            [250.0, 7.0, 100.0],
            [750.0, 7.0, 100.0],
        ],
    )
    assert lay.is_uav.tolist() == [False] * 4 + [True] * 2
    assert (lay.map_width_m, lay.map_height_m, lay.map_size_m) == (1000.0, 14.0, 1000.0)
    # neighbouring RSUs: 250 m, one 300 m hop ; R0 - R3: 750 m, 3 hops
    assert lay.distance_m[0, 1] == 250.0
    assert lay.hops[0, 1] == 1 and lay.hops[0, 3] == 3


def test_grid_layout_is_a_square():
    lay = build_layout(load_scenario("small"))
    assert lay.map_width_m == lay.map_height_m == lay.map_size_m == 500.0


# --------------------------------------------------------------------------- determinism


def run(cfg, seeds, ticks=60):
    sim = Simulator(cfg, batch_size=len(seeds))
    sim.reset(np.array([key_from_seed(s) for s in seeds], dtype=np.uint64))
    rng = np.random.default_rng(4)
    for _ in range(ticks):
        mask = sim.action_mask()
        acts = np.argmax(np.where(mask, rng.random(mask.shape), -1.0), axis=-1)
        sim.step(acts)
    return sim


def diff_fields(a, b, row_a, row_b):
    return [
        f.name
        for f in fields(a)
        if not np.array_equal(
            getattr(a, f.name)[row_a],
            getattr(b, f.name)[row_b],
            equal_nan=getattr(a, f.name).dtype.kind == "f",
        )
    ]


def test_same_seed_same_traffic_other_seed_differs():
    cfg = load_scenario("highway")
    a, b, c = run(cfg, (3,)), run(cfg, (3,)), run(cfg, (4,))
    assert diff_fields(a.world, b.world, 0, 0) == []
    assert "veh_x" in diff_fields(a.world, c.world, 0, 0)


def test_a_single_env_equals_a_row_of_a_batch():
    """One actions generator per run, so the batch and the singles get different actions;
    use no decisions to compare the traffic and everything else bit for bit."""
    cfg = load_scenario("highway")
    seeds = (11, 22, 33)
    batch = Simulator(cfg, batch_size=3)
    batch.reset(np.array([key_from_seed(s) for s in seeds], dtype=np.uint64))
    singles = []
    for s in seeds:
        sim = Simulator(cfg, batch_size=1)
        sim.reset(np.array([key_from_seed(s)], dtype=np.uint64))
        singles.append(sim)
    n = batch.layout.n_nodes
    for _ in range(80):
        rb = batch.step(np.zeros((3, n), dtype=np.int64))
        for b, single in enumerate(singles):
            rs = single.step(np.zeros((1, n), dtype=np.int64))
            assert rs.reward[0] == rb.reward[b]
    for b, single in enumerate(singles):
        assert diff_fields(single.world, batch.world, 0, b) == []


# --------------------------------------------------------------------------- config


def test_unknown_map_kind_names_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"map\.kind.*'grid', 'highway'.*'ring'"):
        load_scenario("small", {"map.kind": "ring"})


@pytest.mark.parametrize("lanes", [0, 9])
def test_lane_count_out_of_range(lanes):
    with pytest.raises(ConfigError, match=r"map\.lanes_per_direction=.* out of range"):
        hw_cfg(**{"map.lanes_per_direction": lanes})


@pytest.mark.parametrize(
    ("over", "key"),
    [
        ({"map.highway_length_m": 50.0}, r"map\.highway_length_m"),
        ({"map.lane_width_m": 1.0}, r"map\.lane_width_m"),
        ({"rsu.count": 101}, r"rsu\.count"),  # more than one per 10 m of a 1 km road
        ({"uav.count": 101}, r"uav\.count"),
        (  # 100 m/s * 10 s = the whole 1 km road in one tick
            {"vehicles.speed_max_mps": 100.0, "dt_s": 10.0, "tasks.rate_per_vehicle_hz": 0.01},
            r"speed_max_mps \* dt_s must be below map\.highway_length_m",
        ),
    ],
)
def test_highway_rules(over, key):
    with pytest.raises(ConfigError, match=key):
        hw_cfg(**over)


def test_grid_rules_do_not_apply_to_the_highway():
    # 30 RSUs > 9 intersections of the 2x2 grid, 5 UAVs > 4 blocks, 30 m/s > block_m = 20
    cfg = hw_cfg(**{"rsu.count": 30, "uav.count": 5, "map.block_m": 20.0})
    assert cfg.n_nodes == 35
    with pytest.raises(ConfigError, match="intersections"):
        load_scenario("small", {"rsu.count": 30})


def test_highway_preset():
    cfg = load_scenario("highway")
    m, v = cfg.map, cfg.vehicles
    assert (m.kind, m.highway_length_m, m.lanes_per_direction) == ("highway", 5000.0, 3)
    assert (cfg.rsu.count, cfg.rsu.coverage_m, cfg.uav.count, cfg.horizon) == (10, 300.0, 2, 300)
    assert (v.speed_min_mps, v.speed_max_mps) == (22.0, 33.0)
    # Little's law: rate * L * E[1/v], E[1/v] = ln(vmax / vmin) / (vmax - vmin)
    on_road = v.arrival_rate_hz * m.highway_length_m * np.log(33 / 22) / 11
    assert 60 <= on_road <= 100
    sim = run(cfg, (0,), ticks=150)
    assert 60 <= sim.world.veh_active.sum() <= 110
    # the RSUs cover the whole road: every vehicle is attached
    assert np.all(sim.world.veh_access[sim.world.veh_active] >= 0)


def test_highway_stream_ids_are_new():
    ids = [v for k, v in vars(Stream).items() if k.isupper()]
    assert len(ids) == len(set(ids))
    assert {v for k, v in vars(Stream).items() if k.startswith("HIGHWAY_")}.isdisjoint(
        v for k, v in vars(Stream).items() if k.isupper() and not k.startswith("HIGHWAY_")
    )


# --------------------------------------------------------------------------- env and render


def test_highway_renders_a_non_blank_frame():
    env = gym.make(f"roadedge.envs:{HIGHWAY_ID}", render_mode="rgb_array")
    try:
        env.reset(seed=0)
        first = env.render()
        assert first.shape == FRAME_SHAPE and first.dtype == np.uint8
        packed = first.astype(np.uint32)
        colours = np.unique((packed[..., 0] << 16) | (packed[..., 1] << 8) | packed[..., 2])
        assert len(colours) > 200
        # the road (grey asphalt, under light coverage ovals) fills the middle third of the
        # 580-px map (rows 213-387), over its whole width; above it: the light background
        brightness = first[:, 40:560].mean(axis=(1, 2))
        for band in (brightness[230:290], brightness[310:370]):  # the two carriageways
            assert np.median(band) < 205 and band.max() < 230  # white lane dashes: ~220
        assert np.all(brightness[150:200] > 230)
        env.step(np.zeros(env.unwrapped.n_nodes, dtype=np.int64))
        assert not np.array_equal(first, env.render())  # vehicles move
    finally:
        env.close()
