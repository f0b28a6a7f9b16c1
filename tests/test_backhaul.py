"""Metro backhaul hops (v1): RSUs wired to their grid neighbours, a UAV one wireless hop
from its nearest RSU, hop counts by shortest path."""

from __future__ import annotations

import itertools

import numpy as np

from roadedge.envs.sim.config import load_scenario
from roadedge.envs.sim.layout import build_layout, grid_cells, metro_hops


def test_four_rsus_on_a_2x2_grid_and_one_uav_hand_values():
    cells = grid_cells(4)
    np.testing.assert_array_equal(cells, [[0, 0], [1, 0], [0, 1], [1, 1]])
    rsu_xy = (cells + 0.5) * 500.0
    uav_xy = np.array([[700.0, 800.0]])  # nearest RSU: 3 at (750, 750)
    hops = metro_hops(cells, rsu_xy, uav_xy)
    # RSU-RSU: Manhattan distance on the grid; UAV: 1 to RSU 3, then RSU 3's hops
    expected = np.array(
        [
            [0, 1, 1, 2, 3],
            [1, 0, 2, 1, 2],
            [1, 2, 0, 1, 2],
            [2, 1, 1, 0, 1],
            [3, 2, 2, 1, 0],
        ]
    )
    np.testing.assert_array_equal(hops, expected)
    # the UAV over RSU 0 instead
    hops = metro_hops(cells, rsu_xy, np.array([[100.0, 100.0]]))
    np.testing.assert_array_equal(hops[4], [1, 2, 2, 3, 0])


def test_small_preset_hops():
    lay = build_layout(load_scenario("small"))
    # 3 RSUs on cells (0,0) (1,0) (0,1) of a 2x2 grid, the UAV on the first UAV cell
    rsu = lay.hops[:3, :3]
    np.testing.assert_array_equal(rsu, [[0, 1, 1], [1, 0, 2], [1, 2, 0]])
    nearest = int(np.argmin(((lay.pos_xyz[:3, :2] - lay.pos_xyz[3, :2]) ** 2).sum(-1)))
    np.testing.assert_array_equal(lay.hops[3, :3], 1 + rsu[nearest])


def test_city_hops_are_a_metric_of_1_to_6():
    cfg = load_scenario("city")
    lay = build_layout(cfg)
    h = lay.hops
    N = lay.n_nodes
    assert h.dtype.kind == "i"
    np.testing.assert_array_equal(h, h.T)
    assert np.all(np.diag(h) == 0)
    off = h[~np.eye(N, dtype=bool)]
    assert off.min() == 1 and off.max() == 6
    for i, j, k in itertools.product(range(N), repeat=3):
        assert h[i, k] <= h[i, j] + h[j, k]
    # RSU-RSU: Manhattan distance of their 3x3 grid cells
    R = cfg.rsu.count
    cells = grid_cells(R)
    np.testing.assert_array_equal(h[:R, :R], np.abs(cells[:, None] - cells[None]).sum(-1))
    # every UAV is one hop from exactly one RSU (its nearest)
    assert np.all((h[R:, :R] == 1).sum(1) == 1)


def test_uavs_without_rsus_form_the_grid_mesh():
    cells = grid_cells(4)
    hops = metro_hops(np.zeros((0, 2), dtype=np.int64), np.zeros((0, 2)), (cells + 0.5) * 100.0)
    np.testing.assert_array_equal(hops, np.abs(cells[:, None] - cells[None]).sum(-1))
