"""Static node layout: positions, capabilities and the backhaul distance matrix.

The layout is a property of the scenario, not of the episode: it is the same
for every reset and every environment of a batch. Node order is all RSUs
first, then all UAVs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import ScenarioConfig


@dataclass(frozen=True)
class Layout:
    """Per-node constants, shape (N, ...)."""

    pos_xyz: np.ndarray  # (N, 3) node position [m]
    is_uav: np.ndarray  # (N,) bool
    cpu_hz: np.ndarray  # (N,) CPU capacity [cycles/s]
    max_jobs: np.ndarray  # (N,) int slots
    coverage_m: np.ndarray  # (N,) coverage radius (ground distance) [m]
    tx_power_dbm: np.ndarray  # (N,)
    capability: np.ndarray  # (N, S) bool: node can run service s (seed 004 index)
    distance_m: np.ndarray  # (N, N) 3-D distance between nodes [m]
    hops: np.ndarray  # (N, N) metro backhaul hops (shortest path), 0 on the diagonal
    map_size_m: float  # the larger side of the map rectangle [m]
    # The map is the rectangle [0, map_width_m] x [0, map_height_m]; None: a square of
    # side map_size_m (the grid).
    map_width_m: float | None = None  # extent along x [m]
    map_height_m: float | None = None  # extent along y [m]

    def __post_init__(self) -> None:
        if self.map_width_m is None:
            object.__setattr__(self, "map_width_m", float(self.map_size_m))
        if self.map_height_m is None:
            object.__setattr__(self, "map_height_m", float(self.map_size_m))

    @property
    def n_nodes(self) -> int:
        return int(self.pos_xyz.shape[0])


def grid_cells(count: int) -> np.ndarray:
    """(column, row) of the first ``count`` cells of a k x k grid, row-major (k = ceil(sqrt))."""
    if count == 0:
        return np.zeros((0, 2), dtype=np.int64)
    k = math.ceil(math.sqrt(count))
    i = np.arange(count)
    return np.stack([i % k, i // k], axis=1)


def _grid_positions(count: int, size_m: float, block_m: float, snap_y: bool) -> np.ndarray:
    """``count`` points of a k x k grid spread over the map (k = ceil(sqrt(count)))."""
    if count == 0:
        return np.zeros((0, 2))
    k = math.ceil(math.sqrt(count))
    pts = (grid_cells(count) + 0.5) * size_m / k
    if snap_y:  # put roadside units on the nearest horizontal road
        pts[:, 1] = np.round(pts[:, 1] / block_m) * block_m
    return pts


def _shortest_hops(adjacent: np.ndarray) -> np.ndarray:
    """All-pairs hop counts of an undirected graph by breadth-first levels, (N, N) int."""
    n = adjacent.shape[0]
    hops = np.where(np.eye(n, dtype=bool), 0, -1)
    reached = np.eye(n, dtype=bool)
    frontier = reached.copy()
    level = 0
    a = adjacent.astype(np.float64)
    while frontier.any():
        level += 1
        frontier = ((frontier.astype(np.float64) @ a) > 0) & ~reached
        hops[frontier] = level
        reached |= frontier
    return hops


def chain_cells(count: int) -> np.ndarray:
    """(i, 0) for i < count: nodes in a line (a highway), linked to their neighbours."""
    return np.stack([np.arange(count), np.zeros(count, dtype=np.int64)], axis=1)


def metro_hops(
    rsu_cells: np.ndarray,
    rsu_xy: np.ndarray,
    uav_xy: np.ndarray,
    uav_cells: np.ndarray | None = None,
    links: np.ndarray | None = None,
) -> np.ndarray:
    """Backhaul hop counts of the metro network, (R + U, R + U), RSUs first.

    RSUs are linked by wire to their neighbours on the placement grid (cells
    one step apart in one direction): a mesh along the roads, so the hop count
    between two RSUs is their Manhattan distance on the grid and grows with
    their distance on the map. A UAV reaches the backhaul over one wireless hop
    to its nearest RSU; without RSUs, UAVs form the mesh themselves (on
    ``uav_cells``, default their k x k grid). On a highway the cells are a
    chain, so hops grow linearly along the road. ``links`` (R, R) bool replaces the
    placement-grid links between RSUs (a trace map: the Gabriel graph of the RSUs).
    """
    R, U = len(rsu_xy), len(uav_xy)
    N = R + U
    adjacent = np.zeros((N, N), dtype=bool)
    if R:
        if links is None:
            diff = np.abs(rsu_cells[:, None, :] - rsu_cells[None, :, :]).sum(-1)
            links = diff == 1
        adjacent[:R, :R] = links
        if U:
            d2 = ((uav_xy[:, None, :] - rsu_xy[None, :, :]) ** 2).sum(-1)
            nearest = np.argmin(d2, axis=1)
            adjacent[R + np.arange(U), nearest] = True
            adjacent[nearest, R + np.arange(U)] = True
    else:
        cells = grid_cells(U) if uav_cells is None else uav_cells
        adjacent[:, :] = np.abs(cells[:, None, :] - cells[None, :, :]).sum(-1) == 1
    return _shortest_hops(adjacent)


def round_robin_capabilities(n_nodes_offset: int, count: int, per_node: int, n_services: int):
    """Node i runs services (i + j) mod S for j < per_node: every service is covered."""
    cap = np.zeros((count, n_services), dtype=bool)
    for i in range(count):
        for j in range(per_node):
            cap[i, (n_nodes_offset + i + j) % n_services] = True
    return cap


def _highway_positions(count: int, length_m: float, y_m: float) -> np.ndarray:
    """``count`` points evenly along the highway: ``x_i = (i + 0.5) * length / count``."""
    pts = np.zeros((count, 2))
    pts[:, 0] = (np.arange(count) + 0.5) * length_m / max(count, 1)
    pts[:, 1] = y_m
    return pts


def build_layout(cfg: ScenarioConfig) -> Layout:
    if cfg.map.kind == "trace":  # RSUs at the busiest junctions, UAVs on a grid (§3.2)
        from . import trace

        tr = trace.load_trace(cfg.map.trace_file)
        width, height = tr.width_m, tr.height_m
        rsu_xy = trace.rsu_positions(tr, cfg.rsu.count)
        uav_xy = trace.uav_positions(tr, grid_cells(cfg.uav.count))
    elif cfg.map.kind == "highway":
        # RSUs on the road edge y = 0 (the +x side), UAVs above the median
        width, height = cfg.map.highway_length_m, cfg.map.road_width_m
        rsu_xy = _highway_positions(cfg.rsu.count, width, 0.0)
        uav_xy = _highway_positions(cfg.uav.count, width, height / 2)
    else:
        width = height = cfg.map.grid_blocks * cfg.map.block_m
        rsu_xy = _grid_positions(cfg.rsu.count, width, cfg.map.block_m, snap_y=True)
        uav_xy = _grid_positions(cfg.uav.count, width, cfg.map.block_m, snap_y=False)
    n_r, n_u = cfg.rsu.count, cfg.uav.count
    pos = np.zeros((n_r + n_u, 3))
    pos[:n_r, :2] = rsu_xy
    pos[:n_r, 2] = cfg.rsu.height_m
    pos[n_r:, :2] = uav_xy
    pos[n_r:, 2] = cfg.uav.altitude_m
    is_uav = np.arange(n_r + n_u) >= n_r

    def per_node(rsu_value, uav_value, dtype=float):
        return np.where(is_uav, uav_value, rsu_value).astype(dtype)

    S = cfg.tasks.n_services
    cap = np.concatenate(
        [
            round_robin_capabilities(0, n_r, cfg.rsu.services_per_node, S),
            round_robin_capabilities(n_r, n_u, cfg.uav.services_per_node, S),
        ]
    )
    diff = pos[:, None, :] - pos[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    if cfg.map.kind == "trace":
        hops = metro_hops(None, rsu_xy, uav_xy, links=trace.gabriel_links(rsu_xy))
    elif cfg.map.kind == "highway":
        hops = metro_hops(chain_cells(n_r), rsu_xy, uav_xy, chain_cells(n_u))
    else:
        hops = metro_hops(grid_cells(n_r), rsu_xy, uav_xy)
    hops = hops.astype(np.int64)
    return Layout(
        pos_xyz=pos,
        is_uav=is_uav,
        cpu_hz=per_node(cfg.rsu.cpu_ghz, cfg.uav.cpu_ghz) * 1e9,
        max_jobs=per_node(cfg.rsu.max_jobs, cfg.uav.max_jobs, np.int64),
        coverage_m=per_node(cfg.rsu.coverage_m, cfg.uav.coverage_m),
        tx_power_dbm=per_node(cfg.rsu.tx_power_dbm, cfg.uav.tx_power_dbm),
        capability=cap,
        distance_m=dist,
        hops=hops,
        map_size_m=float(max(width, height)),
        map_width_m=float(width),
        map_height_m=float(height),
    )
