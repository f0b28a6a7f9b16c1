"""The roads under a RoadEdge map: a Manhattan grid, a highway or a trace's road network,
drawn once into the renderer's cached background, and the map in a few words for the
panel."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.patches import Rectangle

from .sim.config import ScenarioConfig
from .sim.simulator import Simulator


def map_summary(cfg: ScenarioConfig) -> str:
    """The map in a few words, for the panel's subtitle."""
    m = cfg.map
    if m.kind == "trace":
        from .sim.trace import load_trace

        tr = load_trace(m.trace_file)
        return f"trace {tr.width_m / 1000:.1f} x {tr.height_m / 1000:.1f} km, {tr.n_seconds} s"
    if m.kind == "highway":
        n = m.lanes_per_direction
        return f"{m.highway_length_m / 1000:g} km highway, {n}+{n} lanes"
    return f"{m.grid_blocks}x{m.grid_blocks} blocks"


def draw_grid(ax: Any, sim: Simulator) -> tuple[np.ndarray, ...]:
    """The Manhattan grid on square axes. Returns the node positions on the axes and the
    coverage discs (centres, widths, heights)."""
    cfg, lay = sim.cfg, sim.layout
    size = lay.map_size_m
    pad = 0.04 * size
    ax.set_xlim(-pad, size + pad)
    ax.set_ylim(-pad, size + pad)
    ax.set_aspect("equal")
    pos = lay.pos_xyz[:, :2]
    blocks, block = cfg.map.grid_blocks, cfg.map.block_m
    roads = [((i * block, 0.0), (i * block, size)) for i in range(blocks + 1)]
    roads += [((0.0, i * block), (size, i * block)) for i in range(blocks + 1)]
    ax.add_collection(
        LineCollection(roads, colors="#c4c4c4", linewidths=3.5, zorder=1, capstyle="butt")
    )
    ax.add_collection(
        LineCollection(roads, colors="white", linewidths=0.6, zorder=1, linestyles=(0, (4, 4)))
    )
    diam = 2.0 * lay.coverage_m
    return pos, pos, diam, diam


def draw_highway(ax: Any, sim: Simulator) -> tuple[np.ndarray, ...]:
    """The highway, a long thin map: x to scale, y stretched so that the road band
    ``[0, W]`` fills the middle third of the axes. RSUs are drawn below the road (their
    side), UAVs above it; coverage is drawn as ovals of the true length along x. Returns
    the node positions on the axes and the coverage ovals (centres, widths, heights)."""
    cfg, lay = sim.cfg, sim.layout
    length, width = lay.map_width_m, lay.map_height_m
    lane, n = cfg.map.lane_width_m, cfg.map.lanes_per_direction
    ax.set_xlim(-0.02 * length, 1.02 * length)
    ax.set_ylim(-width, 2.0 * width)
    ax.set_aspect("auto")
    pos = lay.pos_xyz[:, :2].copy()
    pos[:, 1] = np.where(lay.is_uav, 1.45 * width, -0.45 * width)
    ax.add_patch(
        Rectangle((0.0, 0.0), length, width, facecolor="#c4c4c4", edgecolor="none", zorder=1)
    )
    edges = [((0.0, y), (length, y)) for y in (0.0, width)]
    ax.add_collection(LineCollection(edges, colors="white", linewidths=1.2, zorder=1))
    dividers = [((0.0, k * lane), (length, k * lane)) for k in range(1, n)]
    dividers += [((0.0, width - k * lane), (length, width - k * lane)) for k in range(1, n)]
    ax.add_collection(
        LineCollection(dividers, colors="white", linewidths=0.8, zorder=1, linestyles=(0, (6, 6)))
    )
    median = [((0.0, width / 2), (length, width / 2))]
    ax.add_collection(LineCollection(median, colors="#f2c200", linewidths=3.0, zorder=1))
    ax.add_collection(LineCollection(median, colors="#555555", linewidths=0.8, zorder=1))
    # travel directions, at the downstream end of each carriageway
    for x, y, text, ha in (
        (0.995 * length, 0.25 * width, "+x \u2192", "right"),
        (0.005 * length, 0.75 * width, "\u2190 \u2212x", "left"),
    ):
        ax.text(x, y, text, ha=ha, va="center", fontsize=7, color="#555555", zorder=1)
    centres = np.column_stack([pos[:, 0], np.full(len(pos), width / 2)])
    cover_w = 2.0 * lay.coverage_m
    cover_h = np.where(lay.is_uav, 2.4 * width, 1.6 * width)
    return pos, centres, cover_w, cover_h


def draw_trace(ax: Any, sim: Simulator) -> tuple[np.ndarray, ...]:
    """A trace's road network (its lane segments, e.g. SUMO's) on equal-aspect axes
    covering the map rectangle. Returns the node positions on the axes and the coverage
    discs (centres, widths, heights)."""
    from .sim.trace import load_trace

    lay = sim.layout
    tr = load_trace(sim.cfg.map.trace_file)
    width, height = lay.map_width_m, lay.map_height_m
    pad = 0.04 * max(width, height)
    ax.set_xlim(-pad, width + pad)
    ax.set_ylim(-pad, height + pad)
    ax.set_aspect("equal")
    if len(tr.roads):
        ax.add_collection(
            LineCollection(tr.roads, colors="#c4c4c4", linewidths=1.6, zorder=1, capstyle="butt")
        )
    pos = lay.pos_xyz[:, :2]
    diam = 2.0 * lay.coverage_m
    return pos, pos, diam, diam
