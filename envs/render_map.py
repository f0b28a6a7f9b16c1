"""The map layer of a RoadEdge frame: roads, coverage, nodes, batteries, vehicles,
task links and migrations in flight (see :mod:`roadedge.envs.render` for what each
mark means).

:class:`MapLayer` creates its artists once on the renderer's figure. The artists that
change every frame are *dynamic* (animated: redrawn over a cached background); the
coverage discs change only when a node goes down or comes back
(:meth:`MapLayer.update_static`); the labels are written with Pillow
(:meth:`MapLayer.write_text`). The layer only reads the simulator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.collections import EllipseCollection, LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from PIL import ImageDraw

from .render_roads import draw_grid, draw_highway, draw_trace
from .render_style import (
    BATTERY_LOW,
    BATTERY_OK,
    COVER_EDGE,
    COVER_RSU,
    COVER_UAV,
    DOWN_FACE,
    HEIGHT_PX,
    LINE_AWAY,
    LINE_LOCAL,
    LINE_ORPHAN,
    LOAD_CMAP,
    NODE_EDGE,
    NONE,
    PHASE_COLOURS,
    RED,
    VEH_BUSY,
    VEH_IDLE,
    WIDTH_PX,
    boxed,
    font,
    rgb255,
)
from .sim.simulator import Simulator
from .sim.world import ORPHANED, RUNNING


class MapLayer:
    """The map axes of ``fig`` for ``sim``; appends its dynamic artists to ``dynamic``."""

    def __init__(self, sim: Simulator, fig: Figure, dynamic: list[Any]):
        self.sim = sim
        cfg, lay = sim.cfg, sim.layout
        N = lay.n_nodes
        self._max_jobs = lay.max_jobs
        self.rsu_idx = np.flatnonzero(~lay.is_uav)
        self.uav_idx = np.flatnonzero(lay.is_uav)

        def dyn(artist):
            """Redrawn every frame over the cached background."""
            artist.set_animated(True)
            dynamic.append(artist)
            return artist

        side = HEIGHT_PX - 20
        ax = fig.add_axes((10 / WIDTH_PX, 10 / HEIGHT_PX, side / WIDTH_PX, side / HEIGHT_PX))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_facecolor("#f5f5f1")
        for spine in ax.spines.values():
            spine.set_color("#999999")
        if cfg.map.kind == "highway":
            self._pos, cover_xy, cover_w, cover_h = draw_highway(ax, sim)
        elif cfg.map.kind == "trace":
            self._pos, cover_xy, cover_w, cover_h = draw_trace(ax, sim)
        else:
            self._pos, cover_xy, cover_w, cover_h = draw_grid(ax, sim)
        xspan, yspan = np.ptp(ax.get_xlim()), np.ptp(ax.get_ylim())
        # coverage discs (static for a given set of nodes down)
        self._cover_face = np.array([COVER_UAV if u else COVER_RSU for u in lay.is_uav])
        self._cover = ax.add_collection(
            EllipseCollection(
                cover_w,
                cover_h,
                np.zeros(N),
                units="xy",
                offsets=cover_xy,
                offset_transform=ax.transData,
                facecolors=self._cover_face,
                edgecolors=COVER_EDGE,
                linewidths=0.5,
                zorder=2,
            )
        )
        # vehicle -> host lines, vehicle -> dead origin of orphaned tasks
        self._host_lines = dyn(ax.add_collection(LineCollection([], linewidths=0.6, zorder=3)))
        self._orphan_lines = dyn(
            ax.add_collection(
                LineCollection([], linewidths=0.9, colors=[LINE_ORPHAN], linestyles="--", zorder=3)
            )
        )
        # vehicles
        self._veh = dyn(
            ax.scatter(
                np.zeros(0),
                np.zeros(0),
                zorder=4,
                linewidths=0.8,
                s=12.0 if cfg.vehicles.max_vehicles <= 300 else 5.0,
            )
        )
        # migrations: an arrow per possible source node (one migration each)
        self._arrows = [
            dyn(
                ax.add_patch(
                    FancyArrowPatch(
                        (0, 0),
                        (1, 1),
                        arrowstyle="-|>",
                        mutation_scale=14,
                        linewidth=2.2,
                        shrinkA=11,
                        shrinkB=13,
                        zorder=5,
                        visible=False,
                    )
                )
            )
            for _ in range(N)
        ]
        self._mig_dots = dyn(
            ax.scatter(np.zeros(0), np.zeros(0), s=28, zorder=6, edgecolors="white", linewidths=0.8)
        )
        # nodes
        node_size = 150.0 if N <= 40 else 40.0
        self._rsus = dyn(
            ax.scatter(
                *self._pos[self.rsu_idx].T,
                marker="s",
                s=node_size,
                edgecolors=NODE_EDGE,
                linewidths=1.2,
                zorder=7,
            )
        )
        self._uavs = dyn(
            ax.scatter(
                *self._pos[self.uav_idx].T,
                marker="^",
                s=node_size * 1.3,
                edgecolors=NODE_EDGE,
                linewidths=1.2,
                zorder=7,
            )
        )
        self._down_x = dyn(
            ax.scatter(
                np.zeros(0),
                np.zeros(0),
                marker="x",
                s=node_size * 0.9,
                c="black",
                linewidths=2.2,
                zorder=8,
            )
        )
        # UAV battery bars: static outline, dynamic fill
        uav_xy = self._pos[self.uav_idx]
        # sizes as shares of the axes' data span (the grid's span is 1.08 map sides)
        self._bat_w, self._bat_h = 0.075 / 1.08 * xspan, 0.014 / 1.08 * yspan
        self._bat_x0 = uav_xy[:, 0] - self._bat_w / 2
        self._bat_y0 = uav_xy[:, 1] - 0.05 / 1.08 * yspan
        ax.add_collection(
            PolyCollection(
                self._bars(np.ones(len(uav_xy))),
                facecolors="white",
                edgecolors="#333333",
                linewidths=0.8,
                zorder=7,
            )
        )
        self._bat_fill = dyn(ax.add_collection(PolyCollection([], linewidths=0, zorder=7)))
        self._ax = ax
        n_rsu = len(self.rsu_idx)
        self._names = [f"U{n - n_rsu}" if lay.is_uav[n] else f"R{n}" for n in range(N)]
        self._font_label = font(7.0)
        self._font_bold = font(6.8, weight="bold")

    def _bars(self, frac: np.ndarray) -> np.ndarray:
        """Battery bar rectangles (K, 4, 2) filled to ``frac``."""
        x0, y0, h = self._bat_x0, self._bat_y0, self._bat_h
        x1 = x0 + self._bat_w * np.clip(frac, 0.0, 1.0)
        return np.stack(
            [
                np.stack([x0, y0], 1),
                np.stack([x1, y0], 1),
                np.stack([x1, y0 + h], 1),
                np.stack([x0, y0 + h], 1),
            ],
            axis=1,
        )

    def update_static(self, up: np.ndarray) -> None:
        """Artists that change only when a node goes down or comes back."""
        self._cover.set_facecolor(np.where(up[:, None], self._cover_face, [NONE]))
        self._cover.set_edgecolor(np.where(up[:, None], [COVER_EDGE], [NONE]))

    def update(self, env: int, up: np.ndarray) -> None:
        """Set the data of every dynamic artist from the world (read only)."""
        sim = self.sim
        w, cfg = sim.world, sim.cfg
        pos, N = self._pos, len(self._pos)

        # nodes
        load = w.slots_used[env] / np.maximum(self._max_jobs, 1)
        face = LOAD_CMAP(np.clip(load, 0.0, 1.0))
        face[~up] = DOWN_FACE
        self._rsus.set_facecolor(face[self.rsu_idx])
        self._uavs.set_facecolor(face[self.uav_idx])
        self._down_x.set_offsets(pos[~up].reshape(-1, 2))

        # UAV batteries
        if len(self.uav_idx):
            frac = w.battery_j[env, self.uav_idx] / (cfg.uav.battery_wh * 3600.0)
            low = frac < cfg.migration.battery_threshold
            self._bat_fill.set_verts(self._bars(frac))
            self._bat_fill.set_facecolor(np.where(low[:, None], [BATTERY_LOW], [BATTERY_OK]))

        # vehicles
        active = w.veh_active[env]
        vx, vy = w.veh_x[env], w.veh_y[env]
        vidx = np.flatnonzero(active)
        self._veh.set_offsets(np.stack([vx[vidx], vy[vidx]], 1))
        covered = w.veh_access[env, vidx] >= 0
        vface = np.where((w.veh_tasks[env, vidx] > 0)[:, None], [VEH_BUSY], [VEH_IDLE])
        vface[~covered] = (1.0, 1.0, 1.0, 1.0)
        self._veh.set_facecolor(vface)
        self._veh.set_edgecolor(np.where(covered[:, None], [(1, 1, 1, 0.9)], [LINE_ORPHAN]))

        # one line per distinct (vehicle, node): running tasks -> host, orphans -> origin
        state, owner = w.task_state[env], w.task_vehicle[env]
        for which, node_of, lines in (
            (RUNNING, w.task_host[env], self._host_lines),
            (ORPHANED, w.task_origin[env], self._orphan_lines),
        ):
            t = np.flatnonzero((state == which) & (node_of >= 0))
            t = t[active[owner[t]]]
            pair = np.unique(owner[t] * N + node_of[t])
            v, n = pair // N, pair % N
            lines.set_segments(np.stack([np.stack([vx[v], vy[v]], 1), pos[n]], axis=1))
            if which == RUNNING:
                local = w.veh_access[env, v] == n
                lines.set_color(np.where(local[:, None], [LINE_LOCAL], [LINE_AWAY]))

        # migrations in flight
        for arrow in self._arrows:
            arrow.set_visible(False)
        dots, dot_colours = [], []
        for src, dst, p, phase in self.migrations(env):
            arrow, colour = self._arrows[src], PHASE_COLOURS[phase]
            a, b = pos[src], pos[dst]
            arrow.set_positions(tuple(a), tuple(b))
            arrow.set_color(colour)
            arrow.set_visible(True)
            dots.append(a + p * (b - a))
            dot_colours.append(colour)
        self._mig_dots.set_offsets(np.array(dots).reshape(-1, 2))
        self._mig_dots.set_facecolor(dot_colours if dot_colours else "none")

    def migrations(self, env: int) -> list[tuple[int, int, float, str]]:
        """(source, target, progress in [0, 1], phase) of every migration in flight."""
        w = self.sim.world
        now = float(w.time_s[env])
        out = []
        for src in np.flatnonzero(w.mig_active[env]).tolist():
            start, end = float(w.mig_start_s[env, src]), float(w.mig_end_s[env, src])
            p = 1.0 if end <= start else min(max((now - start) / (end - start), 0.0), 1.0)
            phase = "PREPARING" if p < self.sim.cfg.migration.prepare_fraction else "EXECUTING"
            out.append((src, int(w.mig_target[env, src]), p, phase))
        return out

    def write_text(self, pen: ImageDraw.ImageDraw, env: int, up: np.ndarray) -> None:
        """Node labels (red if down), LOW battery tags and migration labels."""
        w, cfg = self.sim.world, self.sim.cfg
        to_px = self._ax.transData.transform
        pos_px = to_px(self._pos)
        pos_px[:, 1] = HEIGHT_PX - pos_px[:, 1]  # rows from the top
        if len(self._names) <= 60:
            for n, name in enumerate(self._names):
                x, y = pos_px[n]
                font = self._font_label if up[n] else self._font_bold
                boxed(pen, (x, y - 12), name, font, "black" if up[n] else RED, "mb")
        if len(self.uav_idx):
            frac = w.battery_j[env, self.uav_idx] / (cfg.uav.battery_wh * 3600.0)
            corner = to_px(
                np.stack([self._bat_x0 + self._bat_w, self._bat_y0 + self._bat_h / 2], 1)
            )
            for k in np.flatnonzero(frac < cfg.migration.battery_threshold):
                x, y = corner[k]
                pen.text((x + 4, HEIGHT_PX - y), "LOW", fill=RED, font=self._font_bold, anchor="lm")
        nodes_px = pos_px - (0.0, 8.0)  # a node and its label
        for src, dst, p, phase in self.migrations(env):
            a, b = pos_px[src], pos_px[dst]
            # beside the arrow's middle, on the side farther from the nodes and their labels
            d = (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
            normal = np.array([d[1], -d[0]])
            text = f"{phase} {100 * p:.0f}%"
            left, top, right, bottom = pen.textbbox((0, 0), text, font=self._font_bold, anchor="mm")
            gap = 5.0 + abs(normal[0]) * (right - left) / 2 + abs(normal[1]) * (bottom - top) / 2
            sides = [0.5 * (a + b) + gap * normal, 0.5 * (a + b) - gap * normal]
            scale = np.array([(right - left) / 2 + 12.0, 16.0])  # label box + node size
            clear = [np.hypot(*((nodes_px - c) / scale).T).min() for c in sides]
            x, y = sides[int(np.argmax(clear))]
            boxed(pen, (x, y), text, self._font_bold, rgb255(PHASE_COLOURS[phase]), "mm")
