"""Trace mobility (``map.kind = "trace"``) and ``roadedge-trace``: FCD conversion to the
exact arrays, replay equivalence, windows per seed, row rules, config errors, the
registered SUMO preset, the CLI's errors and (with SUMO installed) the whole pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from roadedge.envs import trace_cli
from roadedge.envs.sim import mobility
from roadedge.envs.sim.config import ConfigError, load_scenario
from roadedge.envs.sim.layout import build_layout
from roadedge.envs.sim.rng import key_from_seed
from roadedge.envs.sim.simulator import Simulator
from roadedge.envs.sim.trace import (
    FORMAT,
    build_arrays,
    episode_start,
    gabriel_links,
    load_trace,
    save_trace,
)
from roadedge.envs.sim.world import allocate

SUMO_ID = "RoadEdge-sumo-v1"

# Three seconds at t = 10, 11, 12 (skip_s = 10); t = 11.5 is not a whole second and is
# skipped. Vehicle "b" is missing at 11 and comes back at 12: a new trace vehicle.
FCD = """<?xml version="1.0" encoding="UTF-8"?>
<fcd-export xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
    <timestep time="9.00">
        <vehicle id="a" x="100.00" y="50.00" angle="90.00" speed="1.00"/>
    </timestep>
    <timestep time="10.00">
        <vehicle id="b" x="20.00" y="40.00" angle="0.00" speed="0.00"/>
        <vehicle id="a" x="110.00" y="50.00" angle="90.00" speed="10.00"/>
    </timestep>
    <timestep time="11.00">
        <vehicle id="a" x="120.50" y="50.00" angle="90.00" speed="10.50"/>
        <person id="p" x="0.00" y="0.00" angle="0.00" speed="1.00"/>
    </timestep>
    <timestep time="11.50">
        <vehicle id="a" x="125.00" y="50.00" angle="90.00" speed="9.00"/>
    </timestep>
    <timestep time="12.00">
        <vehicle id="a" x="120.50" y="61.30" angle="0.00" speed="11.30"/>
        <vehicle id="b" x="20.00" y="35.00" angle="180.00" speed="5.00"/>
        <vehicle id="c" x="15.00" y="45.25" angle="270.00" speed="2.25"/>
    </timestep>
</fcd-export>
"""

NET = """<?xml version="1.0" encoding="UTF-8"?>
<net version="1.20">
    <location netOffset="0.00,0.00" convBoundary="0.00,30.00,130.00,70.00"/>
    <edge id=":J0_0" function="internal">
        <lane id=":J0_0_0" index="0" speed="13.89" length="5.00" shape="1.00,1.00 2.00,2.00"/>
    </edge>
    <edge id="E0" from="J0" to="J1">
        <lane id="E0_0" index="0" length="100.00"
              shape="10.00,50.00 110.00,50.00 110.00,60.00"/>
    </edge>
    <junction id="J0" type="traffic_light" x="10.00" y="50.00"/>
    <junction id=":J0_0" type="internal" x="11.00" y="50.00"/>
    <junction id="J1" type="priority" x="110.00" y="50.00"/>
</net>
"""


@pytest.fixture
def fcd_file(tmp_path):
    path = tmp_path / "fcd.xml"
    path.write_text(FCD)
    return path


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "net.net.xml"
    path.write_text(NET)
    return path


# --------------------------------------------------------------------------- conversion


def test_fcd_converts_to_the_exact_arrays(fcd_file, net_file, tmp_path):
    out = tmp_path / "t.npz"
    summary = trace_cli.convert(fcd_file, out, net_file, begin_s=10.0)
    tr = load_trace(out)
    assert summary["seconds"] == 3 and summary["vehicles"] == 4
    # map: the union of convBoundary (0..130, 30..70) and the samples (15..120.5, 35..61.3)
    assert tr.origin.tolist() == [0.0, 30.0]
    assert (tr.width_m, tr.height_m) == (130.0, 40.0)
    # trace vehicles by first appearance, ties by the source's order of first sight:
    # 0 = b (t 0), 1 = a (t 0..2), 2 = b again (t 2), 3 = c (t 2) ; "a" at t = 9 is skipped
    assert tr.offsets.tolist() == [0, 2, 3, 6]
    assert tr.vid.tolist() == [0, 1, 1, 1, 2, 3]
    assert tr.t_first.tolist() == [0, 0, 2, 2]
    assert tr.t_last.tolist() == [0, 2, 2, 2]
    assert tr.x.tolist() == [20.0, 110.0, 120.5, 120.5, 20.0, 15.0]
    assert tr.y.tolist() == [10.0, 20.0, 20.0, 31.3, 5.0, 15.25]
    assert tr.speed.tolist() == [0.0, 10.0, 10.5, 11.3, 5.0, 2.25]
    # SUMO angle (clockwise from north) -> heading counter-clockwise from +x: 90 - angle
    assert tr.heading.tolist() == [90.0, 0.0, 0.0, 90.0, 270.0, 180.0]
    assert tr.direction.tolist() == [1, 0, 0, 1, 3, 2]
    # roads: the non-internal lane's two segments; sites: the non-internal junctions
    np.testing.assert_allclose(tr.roads, [[[10, 20], [110, 20]], [[110, 20], [110, 30]]])
    assert tr.sites_xy.tolist() == [[10.0, 20.0], [110.0, 20.0]]
    # lowest vehicle present at or after each second
    assert tr.lowest.tolist() == [0, 1, 1, 4]


def test_without_a_network_the_map_is_the_samples_box_and_sites_are_cells(fcd_file, tmp_path):
    out = tmp_path / "t.npz"
    trace_cli.convert(fcd_file, out, begin_s=10.0)
    tr = load_trace(out)
    assert tr.origin.tolist() == [15.0, 35.0]
    assert (tr.width_m, tr.height_m) == (105.5, 26.3)
    assert tr.roads.shape == (0, 2, 2)
    # occupied 50 m cells of the map coordinates: x = 5, 5, 0 in cell 0 ; 95 in cell 1 ;
    # 105.5 (twice) in cell 2 ; all at y < 50
    assert tr.sites_xy.tolist() == [[25.0, 25.0], [75.0, 25.0], [125.0, 25.0]]
    assert tr.sites_load.tolist() == [3.0, 1.0, 2.0]


def test_a_jump_too_long_to_store_starts_a_new_trace_vehicle(tmp_path):
    arrays = build_arrays(
        [0, 1, 2], [7, 7, 7], [0.0, 400.0, 410.0], [0.0] * 3, [1.0] * 3, [0.0] * 3,
        (0.0, 0.0), (500.0, 10.0),
    )  # fmt: skip
    tr = load_trace(save_trace(tmp_path / "j.npz", arrays))
    assert tr.vid.tolist() == [0, 1, 1] and tr.x.tolist() == [0.0, 400.0, 410.0]


# --------------------------------------------------------------------------- replay


def small_trace(tmp_path, n_seconds=40, seed=0):
    """A synthetic trace: vehicles entering over time, random walks, runs of 5-20 s."""
    rng = np.random.default_rng(seed)
    t, name, x, y = [], [], [], []
    for v in range(60):
        t0 = int(rng.integers(0, n_seconds - 3))
        n = int(rng.integers(5, 21))
        px, py = rng.uniform(0, 500, 2)
        for k in range(t0, min(t0 + n, n_seconds)):
            px, py = px + rng.uniform(-10, 10), py + rng.uniform(-10, 10)
            t.append(k)
            name.append(v)
            x.append(px)
            y.append(py)
    sites = rng.uniform(0, 500, (6, 2))
    size = (max(x) + 1.0, max(y) + 1.0)
    arrays = build_arrays(
        t, name, x, y, rng.uniform(0, 15, len(t)), rng.uniform(0, 360, len(t)),
        (min(x), min(y)), size, None, sites + (min(x), min(y)),
    )  # fmt: skip
    return save_trace(tmp_path / "small.npz", arrays)


def trace_cfg(path, **over):
    return load_scenario(
        "small",
        {"map.kind": "trace", "map.trace_file": str(path), "horizon": 20, "rsu.count": 3, **over},
    )


def expected_rows(tr, s):
    sl = tr.at(s)
    return tr.vid[sl], tr.x[sl], tr.y[sl], tr.speed[sl], tr.direction[sl]


def assert_world_is_trace(w, b, tr, s0, s):
    """The active rows of env b are exactly the trace's vehicles at second s."""
    ids, x, y, speed, d = expected_rows(tr, s)
    act = w.veh_active[b]
    got = w.veh_serial[b][act].astype(np.int64) + tr.lowest[s0]
    order = np.argsort(got)
    assert got[order].tolist() == ids.tolist()
    for name, want in (("veh_x", x), ("veh_y", y), ("veh_speed", speed), ("veh_dir", d)):
        np.testing.assert_array_equal(getattr(w, name)[b][act][order], want, err_msg=name)


def test_positions_in_the_env_equal_the_trace_at_every_tick(tmp_path):
    path = small_trace(tmp_path)
    cfg = trace_cfg(path, **{"vehicles.max_vehicles": 200})
    tr = load_trace(path)
    sim = Simulator(cfg, batch_size=3, check_invariants=True)
    keys = np.array([key_from_seed(s) for s in (1, 2, 3)], dtype=np.uint64)
    sim.reset(keys)
    starts = [episode_start(cfg, k) for k in keys]
    assert len(set(starts)) > 1
    for tick in range(cfg.horizon + 1):
        for b, s0 in enumerate(starts):
            assert_world_is_trace(sim.world, b, tr, s0, s0 + tick)
        sim.step(np.zeros((3, sim.layout.n_nodes), dtype=np.int64))


def test_the_sumo_preset_replays_its_trace(tmp_path):
    cfg = load_scenario("sumo", {"horizon": 40})
    tr = load_trace(cfg.map.trace_file)
    sim = Simulator(cfg, batch_size=1, check_invariants=True)
    key = key_from_seed(11)
    sim.reset(np.array([key], dtype=np.uint64))
    s0 = episode_start(cfg, key)
    for tick in range(cfg.horizon + 1):
        assert_world_is_trace(sim.world, 0, tr, s0, s0 + tick)
        sim.step(np.zeros((1, sim.layout.n_nodes), dtype=np.int64))
    assert sim.sessions_active()[0] > 20


def test_windows_differ_by_seed_and_repeat_per_seed(tmp_path, assert_same_world):
    cfg = load_scenario("sumo")
    starts = {episode_start(cfg, key_from_seed(s)) for s in range(20)}
    assert len(starts) == 20
    assert all(0 <= s <= 3600 - 1 - 300 for s in starts)
    a, b = (Simulator(cfg, batch_size=2) for _ in range(2))
    keys = np.array([key_from_seed(4), key_from_seed(5)], dtype=np.uint64)
    for sim in (a, b):
        sim.reset(keys)
        for _ in range(15):
            sim.step(np.zeros((2, sim.layout.n_nodes), dtype=np.int64))
    assert_same_world(a.world, b.world)
    w = a.world
    assert not np.array_equal(w.veh_x[0], w.veh_x[1])


def test_rows_are_reused_only_when_free_and_lost_vehicles_stay_lost(tmp_path):
    # vehicle 0: seconds 0-1 ; 1: 0-3 ; 2 enters at 1 (no free row: lost) ; 3 enters at 2
    arrays = build_arrays(
        [0, 1, 0, 1, 2, 3, 1, 2, 3, 2, 3], [0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3],
        [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [1.0] * 11, [1.0] * 11, [0.0] * 11,
        (0.0, 0.0), (20.0, 20.0), None, [[5.0, 5.0], [15.0, 15.0]],
    )  # fmt: skip
    path = save_trace(tmp_path / "rows.npz", arrays)
    cfg = trace_cfg(path, horizon=1, **{"rsu.count": 2, "vehicles.max_vehicles": 2})
    w = allocate(1, cfg.n_nodes, 2, 4)
    w.key[0] = next(k for k in map(key_from_seed, range(100)) if episode_start(cfg, k) == 0)
    mobility.spawn_vehicles(w, cfg, np.array([0]), initial=True)
    assert w.veh_active[0].tolist() == [True, True] and w.veh_x[0].tolist() == [1.0, 3.0]
    assert w.veh_serial[0].tolist() == [0, 1] and w.veh_new[0].all()

    def step():
        mobility.move_vehicles(w, cfg)
        w.tick[0] += 1

    step()  # second 1: vehicle 2 enters and finds no free row
    assert w.veh_active[0].tolist() == [True, True] and w.veh_x[0].tolist() == [2.0, 4.0]
    w.veh_tasks[0, 0] = 1  # vehicle 0 owns a live task when it leaves
    step()  # second 2: row 0 is inactive but not free, so vehicle 3 is lost too
    assert w.veh_active[0].tolist() == [False, True] and w.veh_x[0].tolist() == [2.0, 5.0]
    w.veh_tasks[0, 0] = 0
    step()  # second 3: row 0 is free, but vehicles 2 and 3 stay lost for their runs
    assert w.veh_active[0].tolist() == [False, True] and w.veh_x[0].tolist() == [2.0, 6.0]
    assert w.veh_spawned[0] == 2


def test_layout_follows_the_network():
    cfg = load_scenario("sumo")
    lay = build_layout(cfg)
    tr = load_trace(cfg.map.trace_file)
    rsu, uav = lay.pos_xyz[~lay.is_uav], lay.pos_xyz[lay.is_uav]
    # every RSU on a junction, at least sqrt(area / 16) apart, at rsu.height_m
    for p in rsu:
        assert np.min(np.hypot(*(tr.sites_xy - p[:2]).T)) == 0.0
    d = np.hypot(*(rsu[:, None, :2] - rsu[None, :, :2]).transpose(2, 0, 1))
    assert d[~np.eye(16, dtype=bool)].min() >= np.sqrt(tr.width_m * tr.height_m / 16)
    assert np.all(rsu[:, 2] == cfg.rsu.height_m) and np.all(uav[:, 2] == cfg.uav.altitude_m)
    # UAVs over the quarters' centres
    w, h = tr.width_m, tr.height_m
    np.testing.assert_allclose(
        uav[:, :2], [[w / 4, h / 4], [3 * w / 4, h / 4], [w / 4, 3 * h / 4], [3 * w / 4, 3 * h / 4]]
    )
    assert (lay.map_width_m, lay.map_height_m) == (w, h)
    assert lay.hops.max() >= 3 and np.all(lay.hops[~np.eye(20, dtype=bool)] >= 1)
    assert build_layout(cfg).pos_xyz.tolist() == lay.pos_xyz.tolist()  # deterministic


def test_gabriel_links_by_hand():
    # a square with its centre: the centre links to every corner; sides link, diagonals
    # (the centre lies in their disc) do not
    xy = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0], [1.0, 1.0]])
    links = gabriel_links(xy)
    assert links[4, :4].all() and links[0, 1] and links[1, 2] and not links[0, 2]


# --------------------------------------------------------------------------- config


def test_config_errors_are_clear(tmp_path, fcd_file):
    with pytest.raises(ConfigError, match="map.trace_file must name a trace"):
        load_scenario("small", {"map.kind": "trace"})
    with pytest.raises(ConfigError, match="trace file nowhere.npz not found"):
        load_scenario("small", {"map.kind": "trace", "map.trace_file": "nowhere.npz"})
    with pytest.raises(ConfigError, match="is not a RoadEdge trace"):
        load_scenario("small", {"map.kind": "trace", "map.trace_file": str(fcd_file)})
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ConfigError, match=f"no format='{FORMAT}'"):
        load_scenario("small", {"map.kind": "trace", "map.trace_file": str(other)})
    with pytest.raises(ConfigError, match="horizon=3600 is too long"):
        load_scenario("sumo", {"horizon": 3600})
    with pytest.raises(ConfigError, match="dt_s must equal the trace's sample period 1 s"):
        load_scenario("sumo", {"dt_s": 0.5})
    with pytest.raises(ConfigError, match="rsu.count=65 exceeds the 64 candidate RSU sites"):
        load_scenario("sumo", {"rsu.count": 65})


# --------------------------------------------------------------------------- registered id


def test_the_sumo_id_passes_gymnasium_env_checker():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import roadedge.envs  # noqa: F401

    env = gym.make(f"roadedge.envs:{SUMO_ID}")
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.spec.max_episode_steps == 300
    env.close()


def test_rendering_draws_the_trace_roads():
    import gymnasium as gym

    pytest.importorskip("matplotlib")
    from matplotlib.collections import LineCollection

    env = gym.make(f"roadedge.envs:{SUMO_ID}", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3
    renderer = env.unwrapped._renderer
    segs = [c for c in renderer._map._ax.collections if isinstance(c, LineCollection)]
    assert any(len(c.get_segments()) == len(load_trace("sumo_grid.npz").roads) for c in segs)
    env.close()


# --------------------------------------------------------------------------- CLI


def run_cli(capsys, *argv):
    code = trace_cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.xml", "no such file"),
        (lambda p: _write(p / "net.xml", NET), "is not a SUMO FCD file"),
        (lambda p: _write(p / "bad.xml", "<fcd-export><timestep"), "malformed XML"),
        (lambda p: _write(p / "empty.xml", "<fcd-export><timestep time='0'/></fcd-export>"),
         "the trace is empty"),
    ],
)  # fmt: skip
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys, make, message):
    code, out, err = run_cli(capsys, str(make(tmp_path)), "-o", str(tmp_path / "o.npz"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("roadedge-trace: error: ") and message in err


def test_cli_without_sumo_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(trace_cli, "sumo_home", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    code, out, err = run_cli(capsys, "--generate", "grid", "-o", str(tmp_path / "o.npz"))
    assert code == 2 and err.count("\n") == 1
    assert "install the `sumo` extra: pip install roadedge[sumo]" in err


def test_cli_converts_and_reports(fcd_file, tmp_path, capsys):
    code, out, err = run_cli(capsys, str(fcd_file), "-o", str(tmp_path / "o.npz"))
    assert code == 0 and err == ""
    # from the first timestep (9): 9, 10, 11, 12 (11.5 skipped) ; a, b, a, b again, c
    assert "4 vehicles, 4 s," in out


def _write(path, text):
    path.write_text(text)
    return path


def test_the_whole_sumo_pipeline(tmp_path, capsys):
    """netgenerate -> randomTrips -> sumo --fcd-output -> trace -> an episode on it."""
    if trace_cli.sumo_home() is None:
        pytest.skip("SUMO is not installed (pip install roadedge[sumo] runs this test)")
    out = tmp_path / "t.npz"
    code, stdout, err = run_cli(
        capsys, "--generate", "grid", "--grid-number", "3", "--block-m", "200",
        "--duration", "120", "--warmup", "60", "--period", "2", "--min-distance", "100",
        "-o", str(out),
    )  # fmt: skip
    assert code == 0, err
    tr = load_trace(out)
    assert tr.n_seconds == 120 and tr.n_vehicles > 10 and len(tr.roads) > 0
    assert len(tr.sites_xy) == 9  # the 3 x 3 junctions
    assert np.all((tr.x >= 0) & (tr.x <= tr.width_m) & (tr.y >= 0) & (tr.y <= tr.height_m))
    cfg = trace_cfg(out, horizon=60, **{"rsu.count": 4, "vehicles.max_vehicles": 200})
    sim = Simulator(cfg, batch_size=1, check_invariants=True)
    key = key_from_seed(0)
    sim.reset(np.array([key], dtype=np.uint64))
    s0 = episode_start(cfg, key)
    for tick in range(cfg.horizon + 1):
        assert_world_is_trace(sim.world, 0, tr, s0, s0 + tick)
        sim.step(np.zeros((1, sim.layout.n_nodes), dtype=np.int64))
