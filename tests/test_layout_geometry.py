"""Layout geometry by hand: grid positions (RSUs snapped to a road), UAV-only grids,
round-robin service capabilities, and the Layout record itself.

Written against layout mutants that survived `make mutants` (tests/mutants.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from roadedge.envs.sim.config import load_scenario
from roadedge.envs.sim.layout import Layout, build_layout, grid_cells, round_robin_capabilities


def bare_layout(**extra) -> Layout:
    """A two-node layout record with only ``map_size_m`` (and ``extra``) for the map."""
    pos = np.array([[0.0, 0.0, 10.0], [100.0, 0.0, 10.0]])
    return Layout(
        pos_xyz=pos,
        is_uav=np.array([False, True]),
        cpu_hz=np.full(2, 1e10),
        max_jobs=np.full(2, 4),
        coverage_m=np.full(2, 300.0),
        tx_power_dbm=np.full(2, 33.0),
        capability=np.ones((2, 1), bool),
        distance_m=np.array([[0.0, 100.0], [100.0, 0.0]]),
        hops=np.array([[0, 1], [1, 0]]),
        map_size_m=800.0,
        **extra,
    )


def test_map_extent_defaults_to_a_square_of_map_size():
    """Without a width and height the map is the square [0, 800] x [0, 800]; given
    ones are kept."""
    lay = bare_layout()
    assert (lay.map_width_m, lay.map_height_m) == (800.0, 800.0)
    lay = bare_layout(map_width_m=800.0, map_height_m=20.0)
    assert (lay.map_width_m, lay.map_height_m) == (800.0, 20.0)


def test_layout_is_immutable():
    """The layout is shared by every reset and environment of a batch: a field cannot be
    reassigned."""
    lay = bare_layout()
    with pytest.raises(dataclasses.FrozenInstanceError):
        lay.map_size_m = 1.0


def test_no_cells_is_an_empty_column_row_array():
    cells = grid_cells(0)
    assert cells.shape == (0, 2)
    assert cells.dtype.kind == "i"


def test_grid_positions_by_hand():
    """3 x 3 blocks of 250 m (a 750 m map), 4 RSUs and 4 UAVs: k = 2 cells per side of
    750 / 2 = 375 m, centres at 187.5 and 562.5. UAVs sit on the centres (row-major);
    RSUs move to the nearest horizontal road: 187.5 / 250 = 0.75 -> 250,
    562.5 / 250 = 2.25 -> 500."""
    cfg = load_scenario(
        "small", {"map.grid_blocks": 3, "map.block_m": 250.0, "rsu.count": 4, "uav.count": 4}
    )
    lay = build_layout(cfg)
    np.testing.assert_allclose(
        lay.pos_xyz[:, :2],
        [
            [187.5, 250.0],
            [562.5, 250.0],
            [187.5, 500.0],
            [562.5, 500.0],
            [187.5, 187.5],
            [562.5, 187.5],
            [187.5, 562.5],
            [562.5, 562.5],
        ],
    )
    np.testing.assert_array_equal(
        lay.pos_xyz[:, 2], [cfg.rsu.height_m] * 4 + [cfg.uav.altitude_m] * 4
    )
    assert lay.is_uav.tolist() == [False] * 4 + [True] * 4
    # RSU 0 - UAV 4 (the one above it, 62.5 m off on y): one wireless hop
    assert lay.hops[0, 4] == 1


def test_a_uav_only_grid_is_a_mesh_of_the_uavs():
    """rsu.count = 0 is allowed: four UAVs on a 2 x 2 grid of the 500 m map, at the cell
    centres 125 and 375, linked to their grid neighbours (hops = Manhattan distance)."""
    lay = build_layout(load_scenario("small", {"rsu.count": 0, "uav.count": 4}))
    assert lay.n_nodes == 4 and lay.is_uav.all()
    np.testing.assert_allclose(
        lay.pos_xyz[:, :2], [[125.0, 125.0], [375.0, 125.0], [125.0, 375.0], [375.0, 375.0]]
    )
    # cells (0,0) (1,0) (0,1) (1,1)
    np.testing.assert_array_equal(
        lay.hops, [[0, 1, 1, 2], [1, 0, 2, 1], [1, 2, 0, 1], [2, 1, 1, 0]]
    )


def test_round_robin_capabilities_by_hand():
    """Node i runs services (offset + i + j) mod S, j < per_node: offset 3, 4 nodes,
    2 services each of 5 -> {3, 4}, {4, 0}, {0, 1}, {1, 2}."""
    cap = round_robin_capabilities(3, 4, 2, 5)
    assert [np.flatnonzero(row).tolist() for row in cap] == [[3, 4], [0, 4], [0, 1], [1, 2]]
    assert cap.shape == (4, 5) and cap.dtype == bool


def test_small_preset_capabilities_by_hand():
    """small: S = 4; 3 RSUs with 3 services from offset 0 -> {0,1,2}, {1,2,3}, {2,3,0};
    the UAV with 2 services from offset 3 (after the RSUs) -> {3, 0}."""
    lay = build_layout(load_scenario("small"))
    assert [np.flatnonzero(row).tolist() for row in lay.capability] == [
        [0, 1, 2],
        [1, 2, 3],
        [0, 2, 3],
        [0, 3],
    ]
