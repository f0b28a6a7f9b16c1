"""The anticipation features of the observation (issue 15 item 1), pinned on a hand-built
state with hand-computed values: per node pair, sessions attached and heading; per node,
how long hosted sessions' vehicles have been off their host; the migration in flight.

``small``: RSUs 0 (125, 0), 1 (375, 0), 2 (125, 500), 10 m up, 33 dBm, coverage 350 m;
UAV 3 (250, 250), 100 m up, 30 dBm, coverage 450 m; max_jobs 8, 8, 8, 4; cooldown 10 s
(the ``heading`` horizon and the ``detached_*`` time scale), dt 1 s. Service 2 runs on
the RSUs.
"""

from __future__ import annotations

import numpy as np
import pytest
from _handbuilt import noop, park, place, quiet_sim, refresh_radio

from roadedge.envs.migration_env import build_observation, make_observation_space
from roadedge.envs.observation import (
    NODE_FEATURES,
    PAIR_FEATURES,
    Observer,
    heading_horizon_s,
    n_node_features,
)
from roadedge.envs.sim.view import controller_view
from roadedge.envs.sim.world import KIND_SESSION, KIND_TASK

SERVICE_RSUS = 2
N = 4
# +x, +y, -x, -y
PLUS_X, PLUS_Y, MINUS_X, MINUS_Y = 0, 1, 2, 3


def _state():
    """Sessions (vehicle -> host): v0 -> 0, v1 -> 0, v2 -> 0, v3 -> 1, v4 -> 1, and a task
    v2 -> 2. At t = 4 s: v0 under RSU 0, v1 under RSU 1 (it left RSU 0 at t = 1 s), v2
    under RSU 2 (never on RSU 0), v3 under RSU 0 (it left RSU 1 at t = 2 s), v4 under
    RSU 1. Then headings: in 10 s v0 (+x, 25 m/s) is under RSU 1, v1 (-x, 25 m/s) under
    RSU 0, v2 (parked) under RSU 2, v3 (+y, 50 m/s) under RSU 2, v4 (-y, 100 m/s) 1 km
    off the map (no node). UAV 3 migrates to node 1; node 2 has a stale target, no
    migration."""
    sim = quiet_sim()  # t = 1 s
    w = sim.world
    park(sim, 0, 0)
    park(sim, 1, 0)
    park(sim, 2, 2)
    park(sim, 3, 1)
    park(sim, 4, 1)
    # parking ended links to the UAV (where some were), none to an RSU yet
    assert np.isneginf(w.veh_left_s[0, :5, :3]).all()
    w.veh_x[0, 1] = sim.layout.pos_xyz[1, 0]  # v1: RSU 0 -> RSU 1 at t = 1 s
    refresh_radio(sim)
    assert w.veh_access[0, 1] == 1 and w.veh_left_s[0, 1, 0] == 1.0
    rows = [(0, 0, KIND_SESSION), (1, 0, KIND_SESSION), (2, 0, KIND_SESSION),
            (3, 1, KIND_SESSION), (4, 1, KIND_SESSION), (2, 2, KIND_TASK)]  # fmt: skip
    for veh, host, kind in rows:
        place(sim, veh=veh, host=host, service=SERVICE_RSUS, kind=kind)
    sim.step(noop(sim))  # t = 2 s (parked vehicles: no link changes)
    w.veh_x[0, 3], w.veh_y[0, 3] = sim.layout.pos_xyz[0, :2]  # v3: RSU 1 -> RSU 0 at t = 2 s
    refresh_radio(sim)
    assert w.veh_access[0, 3] == 0 and w.veh_left_s[0, 3, 1] == 2.0
    sim.step(noop(sim))
    sim.step(noop(sim))  # t = 4 s
    assert w.time_s[0] == 4.0
    assert list(w.veh_access[0, :5]) == [0, 1, 2, 0, 1]
    for veh, direction, speed in ((0, PLUS_X, 25.0), (1, MINUS_X, 25.0), (3, PLUS_Y, 50.0),
                                  (4, MINUS_Y, 100.0)):  # fmt: skip
        w.veh_dir[0, veh], w.veh_speed[0, veh] = direction, speed
    w.mig_active[0, 3], w.mig_target[0, 3] = True, 1
    w.mig_active[0, 2], w.mig_target[0, 2] = False, 0  # a target left from an old migration
    return sim


def _expected_pairs() -> dict[str, np.ndarray]:
    jobs = np.array([8.0, 8.0, 8.0, 4.0])[:, None]
    attached, heading, migrating = (np.zeros((N, N)) for _ in range(3))
    # sessions of node 0: v0 attached to 0, v1 to 1, v2 to 2; of node 1: v3 to 0, v4 to 1
    attached[0, 0] = attached[0, 1] = attached[0, 2] = 1
    attached[1, 0] = attached[1, 1] = 1
    # in 10 s: v0 at RSU 1, v1 at RSU 0, v2 at RSU 2; v3 at RSU 2, v4 nowhere
    heading[0, 1] = heading[0, 0] = heading[0, 2] = 1
    heading[1, 2] = 1
    migrating[3, 1] = 1
    # hops (small): 0-1, 0-2, 0-3 one hop, the others two; max 2. hops_saved[i, j] sums
    # hops(a, i) - hops(a, j) over i's sessions' access nodes a. Node 0 (a = 0, 1, 2):
    # [0,-1,-1,-1] + [0,1,-1,-1] + [0,-1,1,-1] = [0,-1,-1,-3]; node 1 (a = 0, 1):
    # [1,0,0,0] + [-1,0,-2,-2]: nothing saved anywhere. Heading, node 0 (a = 1, 0, 2): the
    # same sum; node 1 (v3 heads for 2, v4 nowhere): hops(2, 1) - hops(2, j) = [1, 0, 2, 0].
    hops_saved = np.zeros((N, N))
    hops_saved_heading = np.zeros((N, N))
    hops_saved_heading[1] = [1.0, 0.0, 2.0, 0.0]
    return {
        "attached": attached / jobs,
        "heading": heading / jobs,
        "migrating": migrating,
        "hops_saved": hops_saved / (jobs * 2),
        "hops_saved_heading": hops_saved_heading / (jobs * 2),
    }


def test_hops_saved_when_a_vehicle_moves_to_another_rsu():
    """v0 (host 0) drives under RSU 1: node 0's sessions are attached at 1, 1, 2, so
    moving them to node 1 saves [0,1,-1,-3][1] = 1 hop in sum -> 1 / (8 x 2); no other
    pair saves anything."""
    sim = _state()
    sim.world.veh_x[0, 0], sim.world.veh_y[0, 0] = sim.layout.pos_xyz[1, :2]
    refresh_radio(sim)
    assert sim.world.veh_access[0, 0] == 1
    pairs = build_observation(sim, sim.cfg, "dict", controller_view(sim), 0)["pairs"]
    expected = np.zeros((N, N))
    expected[0, 1] = 1.0 / 16.0
    np.testing.assert_allclose(pairs[:, :, PAIR_FEATURES.index("hops_saved")], expected)


def _expected_detached() -> dict[str, list[float]]:
    def off(seconds):  # tau = cooldown 10 s
        return 1.0 - np.exp(-seconds / 10.0)

    node0 = [0.0, off(3.0), 1.0]  # v0 attached, v1 off it for 4 - 1 = 3 s, v2 never on it
    node1 = [off(2.0), 0.0]  # v3 off it for 4 - 2 = 2 s, v4 attached
    return {  # node 2 hosts only a task, node 3 nothing
        "detached_max": [1.0, off(2.0), 0.0, 0.0],
        "detached_mean": [np.mean(node0), np.mean(node1), 0.0, 0.0],
    }


def test_horizon_is_the_cooldown():
    sim = quiet_sim()
    assert heading_horizon_s(sim.cfg) == sim.cfg.migration.cooldown_s == 10.0


def test_every_pair_feature_by_name_on_a_hand_built_state():
    sim = _state()
    expected = _expected_pairs()
    assert set(expected) == set(PAIR_FEATURES)
    # a swap of two pair features can only be seen if they differ
    for a in PAIR_FEATURES:
        for b in PAIR_FEATURES:
            assert a == b or not np.allclose(expected[a], expected[b]), (a, b)
    d = build_observation(sim, sim.cfg, "dict", controller_view(sim), 0)
    assert d["pairs"].shape == (N, N, len(PAIR_FEATURES)) and d["pairs"].dtype == np.float32
    for p, name in enumerate(PAIR_FEATURES):
        np.testing.assert_allclose(d["pairs"][:, :, p], expected[name], rtol=1e-6, err_msg=name)
    # flat: node rows, globals, then the pairs flattened (source, target, feature)
    flat = build_observation(sim, sim.cfg, "flat", controller_view(sim), 0)
    np.testing.assert_array_equal(flat[-N * N * len(PAIR_FEATURES) :], d["pairs"].ravel())
    assert flat.shape == make_observation_space(sim.cfg, "flat").shape


def test_detached_features_by_name_on_a_hand_built_state():
    sim = _state()
    view = controller_view(sim)
    hosts = view.task_host[0]
    detached = {(int(view.task_vehicle[0, t]), int(hosts[t])): view.task_detached_s[0, t]
                for t in np.flatnonzero(hosts >= 0)}  # fmt: skip
    assert detached == {(0, 0): 0.0, (1, 0): 3.0, (2, 0): np.inf, (3, 1): 2.0, (4, 1): 0.0,
                        (2, 2): 0.0}  # fmt: skip
    nodes = build_observation(sim, sim.cfg, "dict", view, 0)["nodes"]
    for name, values in _expected_detached().items():
        j = NODE_FEATURES.index(name)
        np.testing.assert_allclose(nodes[:, j], values, rtol=1e-6, err_msg=name)
    F = n_node_features(sim.cfg)
    flat = build_observation(sim, sim.cfg, "flat", view, 0)
    np.testing.assert_array_equal(flat[: N * F].reshape(N, F), nodes)


def test_heading_ignores_nodes_believed_down():
    """With RSU 1 believed down, v0 (projected under it) heads for the strongest believed-up
    node covering that point: RSU 0, 250 m away at 33 dBm (the UAV is 297 m away at 30 dBm)."""
    sim = _state()
    sim.world.view_up[0, 1] = False
    pairs = build_observation(sim, sim.cfg, "dict", controller_view(sim), 0)["pairs"]
    heading = pairs[:, :, PAIR_FEATURES.index("heading")]
    expected = _expected_pairs()["heading"]
    expected[0, 1], expected[0, 0] = 0.0, 2 / 8  # v0 and v1 both head for RSU 0
    np.testing.assert_allclose(heading, expected, rtol=1e-6)
    # attached follows the access links (the truth the controller sees on the radio)
    np.testing.assert_allclose(
        pairs[:, :, PAIR_FEATURES.index("attached")], _expected_pairs()["attached"], rtol=1e-6
    )


@pytest.mark.parametrize("obs_mode", ["flat", "dict"])
def test_observer_equals_the_definition_on_the_hand_built_state(obs_mode):
    sim = _state()
    got = Observer(sim, obs_mode)(0)
    expected = build_observation(sim, sim.cfg, obs_mode, controller_view(sim), 0)
    if obs_mode == "flat":
        np.testing.assert_array_equal(got, expected)
    else:
        assert got.keys() == expected.keys()
        for k in got:
            np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


def test_a_new_vehicle_in_a_reused_row_forgets_the_old_links():
    sim = quiet_sim()
    w = sim.world
    park(sim, 0, 0)
    w.veh_x[0, 0] = sim.layout.pos_xyz[1, 0]
    refresh_radio(sim)
    assert w.veh_left_s[0, 0, 0] == 1.0
    w.veh_new[0, 0] = True  # what spawning a vehicle into the row sets
    refresh_radio(sim)
    assert np.isneginf(w.veh_left_s[0, 0]).all()


def test_a_reset_of_other_rows_records_no_link_change():
    """Recomputing unchanged links (a reset of another row) stamps nothing."""
    sim = _state()
    before = sim.world.veh_left_s.copy()
    sim.world.time_s[0] += 5.0
    refresh_radio(sim)
    np.testing.assert_array_equal(sim.world.veh_left_s, before)
