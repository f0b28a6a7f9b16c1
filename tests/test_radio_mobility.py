"""Radio (path loss, Shannon rate, access node) and Manhattan-grid mobility."""

from __future__ import annotations

import numpy as np
import pytest
from _handbuilt import vehicle_world
from numba import njit

from roadedge.envs.sim import mobility, radio
from roadedge.envs.sim.config import RadioConfig, load_scenario
from roadedge.envs.sim.layout import Layout, build_layout
from roadedge.envs.sim.rng import key_from_seed
from roadedge.envs.sim.simulator import Simulator
from roadedge.envs.sim.world import allocate

# --------------------------------------------------------------------------- radio formulas


def test_path_loss_hand_values():
    # 38 + 10*2.8*log10(100) = 38 + 28*2 = 94 dB
    assert radio.path_loss_db(100.0, 38.0, 2.8) == pytest.approx(94.0)
    # 40 + 10*2*log10(1000) = 40 + 60 = 100 dB
    assert radio.path_loss_db(1000.0, 40.0, 2.0) == pytest.approx(100.0)
    # below 1 m the distance is clamped to 1 m: 38 + 0
    assert radio.path_loss_db(0.5, 38.0, 2.8) == pytest.approx(38.0)
    # 38 + 28*log10(10) = 66
    np.testing.assert_allclose(radio.path_loss_db(np.array([10.0, 1.0]), 38.0, 2.8), [66.0, 38.0])


def test_dbm_to_mw_hand_values():
    np.testing.assert_allclose(
        radio.dbm_to_mw(np.array([30.0, 0.0, -100.0, 3.0])),
        [1000.0, 1.0, 1e-10, 1.9952623149688795],
    )  # 10^0.3 = 1.99526


def test_shannon_rate_hand_values():
    assert radio.shannon_rate_mbps(20.0, 3.0) == pytest.approx(40.0)  # 20*log2(4)
    assert radio.shannon_rate_mbps(10.0, 1.0) == pytest.approx(10.0)  # 10*log2(2)
    assert radio.shannon_rate_mbps(20.0, 0.0) == 0.0  # log2(1) = 0
    assert radio.shannon_rate_mbps(5.0, 255.0) == pytest.approx(40.0)  # 5*log2(256) = 5*8


# --------------------------------------------------------------------------- access links


def two_node_layout(pos, coverage):
    pos = np.asarray(pos, dtype=float)
    n = len(pos)
    diff = pos[:, None] - pos[None]
    return Layout(
        pos_xyz=pos,
        is_uav=np.zeros(n, bool),
        cpu_hz=np.full(n, 1e10),
        max_jobs=np.full(n, 4),
        coverage_m=np.asarray(coverage, dtype=float),
        tx_power_dbm=np.full(n, 33.0),
        capability=np.ones((n, 1), bool),
        distance_m=np.sqrt((diff**2).sum(-1)),
        hops=np.ones((n, n), np.int64) - np.eye(n, dtype=np.int64),
        map_size_m=2000.0,
    )


def links(layout, xs, ys, active=None, up=None, radio_cfg=None):
    xs = np.asarray([xs], dtype=float)
    ys = np.asarray([ys], dtype=float)
    active = np.ones_like(xs, bool) if active is None else np.asarray([active], bool)
    up = np.ones((1, layout.n_nodes), bool) if up is None else np.asarray([up], bool)
    return radio.access_links(
        xs, ys, active, up, layout, radio_cfg or RadioConfig(interference_factor=0.0)
    )


def test_access_link_rate_hand_value_without_interference():
    lay = two_node_layout([[0, 0, 10], [1000, 0, 10]], [700, 700])
    access, rate = links(lay, [0.0], [0.0])
    # d = 10 m: PL = 38 + 28*log10(10) = 66 dB; P_rx = 33 - 66 = -33 dBm
    # SNR = -33 - (-101) = 68 dB = 10^6.8; rate = 20*log2(1 + 10^6.8) = 20*22.5891 = 451.782
    assert access[0, 0] == 0
    assert rate[0, 0] == pytest.approx(451.782, rel=1e-5)


def test_access_link_rate_hand_value_with_interference():
    # node 1 straight above the vehicle at 1000 m: in range, but much weaker
    lay = two_node_layout([[0, 0, 10], [0, 0, 1000]], [700, 700])
    access, rate = links(lay, [0.0], [0.0], radio_cfg=RadioConfig(interference_factor=0.05))
    # signal 10^-3.3 mW = 5.01187e-4 ; node 1: P_rx = 33 - (38 + 28*3) = -89 dBm = 1.25893e-9 mW
    # noise 10^-10.1 = 7.94328e-11 ; interference 0.05*1.25893e-9 = 6.29463e-11
    # SINR = 5.01187e-4 / 1.42379e-10 = 3.52009e6 ; rate = 20*log2(1 + 3.52009e6) = 434.944
    assert access[0, 0] == 0
    assert rate[0, 0] == pytest.approx(434.944, rel=1e-5)


def test_access_node_choice_coverage_and_failures():
    lay = two_node_layout([[0, 0, 10], [1000, 0, 10]], [700, 700])
    xs = [400.0, 900.0, 2000.0, 100.0]
    access, rate = links(lay, xs, [0.0] * 4, active=[True, True, True, False])
    # 400 m: both in range, node 0 nearer ; 900 m: only node 1 in range (900 > 700) ;
    # 2000 m: none in range ; inactive vehicle: none
    assert access[0].tolist() == [0, 1, -1, -1]
    assert rate[0, 0] > 0 and rate[0, 1] > 0
    assert rate[0, 2] == 0.0 and rate[0, 3] == 0.0
    # node 0 down: the vehicle at 400 m falls back to node 1 (ground 600 m <= 700 m);
    # the one at 100 m (active now) is 900 m from node 1: out of range
    access, _ = links(lay, xs, [0.0] * 4, up=[False, True])
    assert access[0].tolist() == [1, 1, -1, -1]
    # both down: nobody is served
    access, rate = links(lay, xs, [0.0] * 4, up=[False, False])
    assert access[0].tolist() == [-1, -1, -1, -1]
    assert np.all(rate == 0.0)


def test_rate_decreases_with_distance():
    lay = two_node_layout([[0, 0, 10], [5000, 0, 10]], [1000, 1000])
    _, rate = links(lay, [0.0, 100.0, 300.0, 900.0], [0.0] * 4)
    assert np.all(np.diff(rate[0]) < 0)


# ------------------------------------------------------------ access links (mutants)
# Written against radio mutants that survived `make mutants`: nodes off the x axis,
# down nodes as interferers, an interferer as strong as the signal, float errors.


def test_ground_distance_is_the_same_in_every_direction():
    """A node at (500, 500) with its antenna at vehicle height (d = ground distance):
    vehicles 100 m away along +x, +y, -x, -y and the diagonal (60, 80) all get
    PL = 38 + 28*log10(100) = 94 dB, P_rx = 33 - 94 = -61 dBm, SNR = -61 + 101 = 40 dB
    = 1e4, rate = 20*log2(1 + 1e4); 200 m away along y is outside its 150 m."""
    lay = two_node_layout([[500, 500, 0], [1500, 1500, 0]], [150, 150])
    xs = [600.0, 500.0, 400.0, 500.0, 560.0, 500.0]
    ys = [500.0, 600.0, 500.0, 400.0, 580.0, 700.0]
    access, rate = links(lay, xs, ys)
    assert access[0].tolist() == [0, 0, 0, 0, 0, -1]
    np.testing.assert_allclose(rate[0, :5], 20.0 * np.log2(1.0 + 1e4), rtol=1e-9)
    assert rate[0, 5] == 0.0


def test_a_down_node_does_not_interfere():
    """Node 1 above the vehicle is down: it sends nothing, so the rate is the
    interference-free one of test_access_link_rate_hand_value_without_interference."""
    lay = two_node_layout([[0, 0, 10], [0, 0, 1000]], [700, 700])
    cfg = RadioConfig(interference_factor=0.05)
    access, rate = links(lay, [0.0], [0.0], up=[True, False], radio_cfg=cfg)
    assert access[0, 0] == 0
    # SNR = -33 - (-101) = 68 dB ; 20*log2(1 + 10^6.8) = 451.782
    assert rate[0, 0] == pytest.approx(451.782, rel=1e-5)


def test_an_interferer_as_strong_as_the_signal():
    """A vehicle halfway between two equal nodes (d = 100 m each, antennas at vehicle
    height): signal s = -61 dBm and interference 0.05 * s, noise -101 dBm = 1e-4 * s:
    SINR = 1 / (1e-4 + 0.05) = 19.96, rate = 20*log2(20.96) = 87.79 Mbps."""
    lay = two_node_layout([[0, 0, 0], [200, 0, 0]], [150, 150])
    access, rate = links(lay, [100.0], [0.0], radio_cfg=RadioConfig(interference_factor=0.05))
    assert access[0, 0] in (0, 1)
    assert rate[0, 0] == pytest.approx(20.0 * np.log2(1.0 + 1.0 / (1e-4 + 0.05)), rel=1e-9)


def test_access_links_raise_no_floating_point_errors():
    """Inactive vehicles, out-of-range and down nodes are masked without a division by
    zero or an invalid value (the simulator calls this every tick)."""
    lay = two_node_layout([[0, 0, 10], [1000, 0, 10]], [700, 700])
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        access, rate = links(
            lay, [100.0, 100.0, 5000.0], [0.0] * 3, active=[True, False, True], up=[True, False]
        )
    assert access[0].tolist() == [0, -1, -1]
    assert rate[0, 0] > 0 and rate[0, 1] == 0.0 and rate[0, 2] == 0.0


# --------------------------------------------------------------------------- power law


@njit(cache=True)
def _power_law_all(x, h):
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = radio.power_law(x[i], h)
    return out


def test_power_law_hand_values():
    """Exact where the powers are: 1**-h = 1; log2(2**20) = 20 exactly, 0.75 * 20 = 15,
    so (2**20)**-0.75 = 2**-15; 4**-1 = 1/4; 256**-1.25 = 2**-10; 1e4**-1.5 = 1e-6 and
    1e8**-1.4 = 10**-11.2 to 1 ulp."""
    x = np.array([1.0, 2.0**20, 4.0, 256.0, 1e4, 1e8])
    assert _power_law_all(x[:1], 1.4)[0] == 1.0
    assert _power_law_all(x[1:2], 0.75)[0] == 2.0**-15
    assert _power_law_all(x[2:3], 1.0)[0] == 0.25
    assert _power_law_all(x[3:4], 1.25)[0] == 2.0**-10
    assert abs(_power_law_all(x[4:5], 1.5)[0] - 1e-6) <= np.spacing(1e-6)
    assert abs(_power_law_all(x[5:6], 1.4)[0] - 10**-11.2) <= np.spacing(10**-11.2)


@pytest.mark.parametrize("exponent", [1.5, 2.0, 2.8, 3.5, 4.0, 5.0, 6.0])
def test_power_law_is_pow_to_one_ulp(exponent):
    """The radio's vectorisable power law equals libm's ``x ** -h`` (h = exponent / 2) to
    1 ulp of the result (relative 2.2e-16) over d^2 in [1, 1e12] (log-uniform), near 1
    and on both sides of the reduction's breaks (powers of 2 and their sqrt(2) multiples);
    most values are identical (the power law's error is < 1.5 * 2**-53, libm's < 2**-53)."""
    rng = np.random.default_rng(int(10 * exponent))
    breaks = np.ldexp(1.0, np.arange(0, 40))
    breaks = np.concatenate([breaks, breaks * np.sqrt(2.0)])
    x = np.concatenate([
        10.0 ** rng.uniform(0.0, 12.0, 200_000),
        1.0 + rng.uniform(0.0, 1e-3, 1_000),
        np.nextafter(breaks, 0.0)[1:], breaks, np.nextafter(breaks, np.inf),
    ])  # fmt: skip
    h = exponent / 2.0
    got, want = _power_law_all(x, h), np.power(x, -h)
    err_ulp = np.abs(got - want) / np.spacing(want)
    assert err_ulp.max() <= 1.0
    assert np.max(np.abs(got - want) / want) <= 2.3e-16
    assert np.mean(got == want) > 0.8


def _access_by_pow(sim):
    """The access rule evaluated with NumPy's ``**`` (the kernel before its power law)."""
    w, lay, r = sim.world, sim.layout, sim.cfg.radio
    gain = radio.dbm_to_mw(lay.tx_power_dbm - r.pathloss_ref_db)
    dx = w.veh_x[:, :, None] - lay.pos_xyz[None, None, :, 0]
    dy = w.veh_y[:, :, None] - lay.pos_xyz[None, None, :, 1]
    ground2 = dx * dx + dy * dy
    p_mw = gain * np.maximum(ground2 + lay.pos_xyz[:, 2] ** 2, 1.0) ** (-r.pathloss_exponent / 2)
    ok = w.node_up[:, None, :] & (ground2 <= lay.coverage_m**2) & w.veh_active[:, :, None]
    ranked = np.where(ok, p_mw, -1.0)
    return np.where(ok.any(-1), ranked.argmax(-1), -1)  # argmax: lowest index on a tie


@pytest.mark.parametrize("scenario", ["city", "highway"])
def test_access_nodes_are_those_of_pow_on_rollouts(scenario):
    """Over 150 ticks of 4 environments, every access node equals the one ``**`` picks."""
    sim = Simulator(load_scenario(scenario), batch_size=4, record_events=False)
    sim.reset(np.array([key_from_seed(s) for s in (0, 1, 2, 3)], np.uint64))
    rng = np.random.default_rng(0)
    for _ in range(150):
        mask = sim.action_mask()
        sim.step(np.argmax(np.where(mask, rng.random(mask.shape), -1.0), axis=-1))
        np.testing.assert_array_equal(sim.world.veh_access, _access_by_pow(sim))


# --------------------------------------------------------------------------- mobility

BLOCK = 250.0


def mob_world(states, n_rows=None, seed=0):
    """One env with 4 nodes; vehicle rows from (x, y, dir, speed) tuples, all active."""
    return vehicle_world(states, 4, n_rows, seed)


def mob_cfg(turn_probability):
    return load_scenario("small", {"vehicles.turn_probability": turn_probability})


def test_straight_moves_between_intersections():
    w = mob_world([(100, 0, 0, 10), (100, 250, 2, 10), (250, 100, 1, 15), (250, 100, 3, 15)])
    mobility.move_vehicles(w, mob_cfg(1.0))
    # +x: 100 -> 110 ; -x: 100 -> 90 ; +y: 100 -> 115 ; -y: 100 -> 85 (no intersection crossed,
    # so even with turn probability 1 nobody turns)
    assert w.veh_x[0].tolist() == [110.0, 90.0, 250.0, 250.0]
    assert w.veh_y[0].tolist() == [0.0, 250.0, 115.0, 85.0]
    assert w.veh_dir[0].tolist() == [0, 2, 1, 3]
    assert w.veh_active[0].all()


def test_crossing_straight_carries_remaining_distance():
    w = mob_world([(245, 250, 0, 10), (255, 250, 2, 12)])
    mobility.move_vehicles(w, mob_cfg(0.0))
    # 5 m to the crossing at x=250, then 5 m more: 255 ; -x: 255 - 12 = 243
    np.testing.assert_allclose(w.veh_x[0], [255.0, 243.0])
    np.testing.assert_allclose(w.veh_y[0], [250.0, 250.0])
    assert w.veh_dir[0].tolist() == [0, 2]


def test_crossing_with_turn_goes_left_or_right():
    n = 400
    w = mob_world([(245, 250, 0, 10)] * n)
    mobility.move_vehicles(w, mob_cfg(1.0))
    # all turn at (250, 250) and drive the remaining 5 m along y: up (dir 1) or down (dir 3)
    np.testing.assert_allclose(w.veh_x[0], 250.0)
    up = w.veh_dir[0] == 1
    down = w.veh_dir[0] == 3
    assert np.all(up | down)
    np.testing.assert_allclose(w.veh_y[0][up], 255.0)
    np.testing.assert_allclose(w.veh_y[0][down], 245.0)
    assert 0.4 < up.mean() < 0.6  # left and right are equally likely


def test_vehicle_on_an_intersection_drives_a_full_block_first():
    w = mob_world([(250, 250, 0, 10)])
    mobility.move_vehicles(w, mob_cfg(1.0))
    # standing on the crossing: the next one is 250 m ahead, so no turn now
    assert (w.veh_x[0, 0], w.veh_y[0, 0], w.veh_dir[0, 0]) == (260.0, 250.0, 0)


def test_vehicles_leave_at_the_boundary():
    # the small map is 2 x 250 = 500 m wide
    w = mob_world([(495, 250, 0, 10), (5, 250, 2, 10), (250, 490, 1, 5), (0, 100, 3, 10)])
    w.veh_active[0, 3] = False  # parked row: does not move
    mobility.move_vehicles(w, mob_cfg(0.0))
    # 505 > 500 leaves ; -5 < 0 leaves ; 495 stays ; inactive row untouched
    assert w.veh_active[0].tolist() == [False, False, True, False]
    assert w.veh_y[0, 2] == 495.0
    assert (w.veh_x[0, 3], w.veh_y[0, 3]) == (0.0, 100.0)


def test_spawn_fills_free_rows_on_the_boundary():
    cfg = load_scenario("small")
    w = mob_world([(100, 0, 0, 10)], n_rows=8)
    w.veh_spawned[0] = 1  # the vehicle in row 0 was the episode's first
    w.veh_tasks[0, 1] = 1  # off the map but still owns a task: not reusable
    mobility.spawn_vehicles(w, cfg, np.array([3]), initial=False)
    # rows 2, 3, 4 are the first three free rows; the vehicles are the 2nd, 3rd, 4th
    assert w.veh_active[0].tolist() == [True, False, True, True, True, False, False, False]
    new = np.array([2, 3, 4])
    assert w.veh_serial[0, new].tolist() == [1, 2, 3] and w.veh_spawned[0] == 4
    x, y, d = w.veh_x[0, new], w.veh_y[0, new], w.veh_dir[0, new]
    along = np.where(d % 2 == 0, x, y)
    cross = np.where(d % 2 == 0, y, x)
    # entering from the side the heading points away from, on a road line
    np.testing.assert_allclose(along, np.where(d < 2, 0.0, 500.0))
    np.testing.assert_allclose(np.mod(cross, BLOCK), 0.0)
    assert np.all((w.veh_speed[0, new] >= 8.0) & (w.veh_speed[0, new] <= 16.0))
    assert np.all(w.veh_serving[0, new] == -1)


def test_an_entering_vehicle_is_the_same_whichever_row_it_gets():
    """Entry draws are keyed on the vehicle's serial number, not its row, so the
    controller (which decides when rows free up) cannot change the traffic."""
    cfg = load_scenario("small")
    a = mob_world([(100, 0, 0, 10)], n_rows=8)
    b = mob_world([(100, 0, 0, 10)], n_rows=8)
    for w in (a, b):
        w.veh_spawned[0] = 1
        w.veh_serial[0] = 0
    b.veh_tasks[0, 1:4] = 1  # rows 1-3 still busy in b: the same vehicles land in 4-6
    mobility.spawn_vehicles(a, cfg, np.array([3]), initial=False)
    mobility.spawn_vehicles(b, cfg, np.array([3]), initial=False)
    ra, rb = np.array([1, 2, 3]), np.array([4, 5, 6])
    for field in ("veh_x", "veh_y", "veh_dir", "veh_speed", "veh_serial"):
        np.testing.assert_array_equal(getattr(a, field)[0, ra], getattr(b, field)[0, rb])
    assert len(set(a.veh_speed[0, ra].tolist())) == 3  # three different vehicles


@pytest.mark.parametrize("rate", [0.8, 120.0])
def test_arrivals_are_poisson_with_configured_rate(rate):
    """Mean and variance equal the rate, also far beyond the old fixed cut-off of 16."""
    cfg = load_scenario("small", {"vehicles.arrival_rate_hz": rate})
    w = allocate(20_000, 4, 1, 1)
    w.key[:] = [key_from_seed(s) for s in range(20_000)]
    counts = mobility.arrivals(w, cfg)
    assert counts.shape == (20_000,)
    assert counts.mean() == pytest.approx(rate, rel=0.04)
    assert counts.var() == pytest.approx(rate, rel=0.07)


def test_vehicles_stay_on_roads_and_attach_to_covering_up_nodes():
    cfg = load_scenario("small")
    sim = Simulator(cfg, batch_size=2)
    sim.reset(np.array([key_from_seed(1), key_from_seed(2)], dtype=np.uint64))
    lay = build_layout(cfg)
    seen_active = 0
    for _ in range(60):
        sim.step(np.zeros((2, lay.n_nodes), dtype=np.int64))
        w = sim.world
        act = w.veh_active
        x, y = w.veh_x[act], w.veh_y[act]
        seen_active += act.sum()
        off_x = np.abs(x - np.round(x / BLOCK) * BLOCK)
        off_y = np.abs(y - np.round(y / BLOCK) * BLOCK)
        assert np.all(np.minimum(off_x, off_y) < 1e-6), "a vehicle left the road grid"
        assert np.all((x >= -1e-6) & (x <= 500 + 1e-6) & (y >= -1e-6) & (y <= 500 + 1e-6))
        # an access node is up and covers the vehicle
        e, v = np.nonzero(act & (w.veh_access >= 0))
        node = w.veh_access[e, v]
        assert np.all(w.node_up[e, node])
        ground = np.hypot(
            w.veh_x[e, v] - lay.pos_xyz[node, 0], w.veh_y[e, v] - lay.pos_xyz[node, 1]
        )
        assert np.all(ground <= lay.coverage_m[node] + 1e-9)
        assert np.all(w.veh_rate_mbps[e, v] > 0)
        assert np.all(w.veh_access[~act] == -1)
    assert seen_active > 0


def test_received_power_is_capped_at_the_1_m_reference_distance():
    """Closer than 1 m (a ground-level node), path loss stays at PL_ref: a vehicle 0.5 m
    from a node at height 0 gets the 1 m rate. PL = 38 dB, P_rx = 33 - 38 = -5 dBm;
    SNR = -5 + 101 = 96 dB = 10^9.6; rate = 20 * log2(1 + 10^9.6) = 637.8967 Mbps."""
    lay = two_node_layout([[0, 0, 0], [5000, 0, 10]], [700, 700])
    access, rate = links(lay, [0.5, 1.0], [0.0, 0.0])
    assert access[0].tolist() == [0, 0]
    expected = 20 * np.log2(1 + 10**9.6)
    assert rate[0, 0] == pytest.approx(expected, rel=1e-9)
    assert rate[0, 1] == pytest.approx(expected, rel=1e-9)
