"""Drawing a RoadEdge world with matplotlib (``RoadEdgeEnv(render_mode=...)``).

:class:`Renderer` draws one environment row of a :class:`~.sim.simulator.Simulator`:

* the Manhattan road grid;
* RSUs (squares) and UAVs (triangles), filled by slot load (``slots_used /
  max_jobs``, green -> red), labelled ``R<i>`` / ``U<i>``; a node that is
  down (the truth, not the controller's belief) is grey with a black X and a
  red label, and its coverage disc disappears;
* a battery bar under every UAV, red with a ``LOW`` tag below
  ``migration.battery_threshold``;
* light coverage discs;
* vehicles as small dots (dark if they own live tasks, hollow red if out of
  coverage), with a thin line to the node hosting each of their RUNNING
  tasks (blue if the vehicle is attached to that node, orange if it is
  attached elsewhere) and a dashed red line to the dead origin of their
  ORPHANED tasks;
* migrations in flight as arrows from the source node to ``mig_target``,
  labelled with the phase (PREPARING until ``migration.prepare_fraction`` of
  the delay, then EXECUTING) and the progress, with a dot travelling along;
* a side panel: tick, time, nodes up, the weighted reward terms of the last
  step (signed, as in ``info["reward_terms"]``) and the main episode metrics.

Frames are :data:`FRAME_SHAPE` = ``(600, 900, 3)`` uint8 (height, width, RGB).

Speed: the figure (a bare :class:`~matplotlib.figure.Figure` on an Agg
canvas, no pyplot state) and every artist are created once. The static
artists (roads, coverage, node labels, panel labels, legend) are rendered
into a background image, cached per set of nodes down; each frame restores it,
updates the dynamic artists' data and draws only those (blitting); the text
that changes (panel values, node labels, migration labels, LOW tags) is
written with Pillow, ~50x cheaper than matplotlib text. A frame costs ~10 ms
(a 300-tick ``city`` episode renders in ~3-4 s on one core).

``"human"`` mode shows the same frames in a pyplot window (needs a display
and an interactive matplotlib backend); without them it warns once and does
nothing. The renderer only reads the simulator's state: it never writes the
world arrays or draws random numbers, so rendering does not change a
trajectory.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
from gymnasium import logger
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import EllipseCollection, LineCollection, PolyCollection
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Rectangle
from PIL import Image, ImageDraw, ImageFont

from .sim.simulator import REWARD_TERMS, Simulator, StepResult
from .sim.world import ORPHANED, RUNNING

WIDTH_PX, HEIGHT_PX = 900, 600
FRAME_SHAPE = (HEIGHT_PX, WIDTH_PX, 3)
DPI = 100

MONO = "DejaVu Sans Mono"  # shipped with matplotlib
PANEL_PT = 7.6  # panel font size [pt]
PANEL_X0 = HEIGHT_PX + 5  # left edge of the side panel [px]
PANEL_TOP_PX = 62  # baseline of the first statistics row, from the top [px]
PANEL_STEP_PX = 12.6  # statistics line pitch [px]

LOAD_CMAP = colormaps["RdYlGn_r"]
DOWN_FACE = to_rgba("#b0b0b0")
NODE_EDGE = to_rgba("#202020")
COVER_RSU = to_rgba("#4a90d9", 0.035)
COVER_UAV = to_rgba("#9b59b6", 0.035)
COVER_EDGE = (0.0, 0.0, 0.0, 0.12)
NONE = (0.0, 0.0, 0.0, 0.0)
LINE_LOCAL = to_rgba("#2b7bba", 0.55)
LINE_AWAY = to_rgba("#e67e22", 0.5)
LINE_ORPHAN = to_rgba("#d62728", 0.8)
VEH_BUSY = to_rgba("#1a1a1a")
VEH_IDLE = to_rgba("#8c8c8c")
PHASE_COLOURS = {"PREPARING": "#e67e00", "EXECUTING": "#8e44ad"}
BATTERY_OK = to_rgba("#27ae60")
BATTERY_LOW = to_rgba("#d62728")
TEXT = (17, 17, 17)
TEXT_GOOD = (20, 110, 50)
TEXT_BAD = (170, 30, 30)
NON_INTERACTIVE = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}


def _signed(value: float) -> str:
    """``+1.234`` / ``-1.234``, and ``0.000`` rather than ``-0.000``."""
    value = round(value, 3) + 0.0
    return f"{value:+.3f}" if value else "0.000"


def _has_display() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Renderer:
    """Draws environment ``env`` of ``sim``; one figure reused for every frame.

    Args:
        sim: the simulator (only read).
        render_mode: ``"rgb_array"`` (``draw`` returns a :data:`FRAME_SHAPE`
            ``(600, 900, 3)`` uint8 array) or ``"human"`` (``draw`` shows the
            frame in a pyplot window and returns None).
        fps: frame rate of the ``"human"`` window (it pauses ``1 / fps`` per frame).
    """

    def __init__(self, sim: Simulator, render_mode: str, fps: float = 8.0):
        if render_mode not in ("rgb_array", "human"):
            raise ValueError(f"render_mode must be 'rgb_array' or 'human', got {render_mode!r}")
        self.sim = sim
        self.render_mode = render_mode
        self.fps = fps
        self._fig: Figure | None = None
        self._backgrounds: dict[bytes, Any] = {}
        self._dynamic: list[Any] = []
        self._window: Any = None  # (pyplot, figure, image) in human mode
        self._disabled = False

    # ------------------------------------------------------------------ API

    def draw(self, env: int = 0, last: StepResult | None = None) -> np.ndarray | None:
        """Draw environment row ``env``; ``last`` is the last step's result (None at reset).

        Returns the ``(600, 900, 3)`` uint8 frame in ``"rgb_array"`` mode, else None.
        """
        if self._disabled:
            return None
        if self.render_mode == "human" and self._window is None and not self._open_window():
            return None
        if self._fig is None:
            self._build()
        frame = self._frame(env, last)
        if self.render_mode == "rgb_array":
            return frame
        self._show(frame)
        return None

    def close(self) -> None:
        if self._window is not None:
            plt, fig, _ = self._window
            plt.close(fig)
            self._window = None
        self._fig = None
        self._backgrounds = {}
        self._dynamic = []

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        """Only what defines the renderer (the simulator, mode, fps, whether it is off):
        the figure, its artists, cached backgrounds, fonts and the window hold matplotlib
        and Pillow objects that cannot be pickled; they are rebuilt on the next frame."""
        return {
            "sim": self.sim,
            "render_mode": self.render_mode,
            "fps": self.fps,
            "disabled": self._disabled,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["sim"], state["render_mode"], state["fps"])
        self._disabled = state["disabled"]

    # ------------------------------------------------------------------ human window

    def _open_window(self) -> bool:
        if not _has_display():
            return self._disable("no display (DISPLAY / WAYLAND_DISPLAY unset)")
        try:
            import matplotlib
            import matplotlib.pyplot as plt

            backend = matplotlib.get_backend().lower()
            if backend in NON_INTERACTIVE or backend.startswith("module://"):
                return self._disable(f"matplotlib backend {backend!r} is not interactive")
            fig = plt.figure("RoadEdge", figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
            ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
            ax.set_axis_off()
            image = ax.imshow(np.full(FRAME_SHAPE, 255, np.uint8))
            plt.show(block=False)
        except Exception as exc:  # noqa: BLE001 - a GUI failure must not crash the env
            return self._disable(f"could not open a window ({exc})")
        self._window = (plt, fig, image)
        return True

    def _show(self, frame: np.ndarray) -> None:
        plt, fig, image = self._window
        if not plt.fignum_exists(fig.number):  # the user closed the window
            self._window = None
            self._disabled = True
            return
        image.set_data(frame)
        fig.canvas.draw_idle()
        plt.pause(1.0 / self.fps if self.fps > 0 else 1e-3)

    def _disable(self, why: str) -> bool:
        logger.warn(
            f"RoadEdge human rendering is off: {why}. Use render_mode='rgb_array' to get frames."
        )
        self._disabled = True
        return False

    # ------------------------------------------------------------------ figure

    def _build(self) -> None:
        """Create the figure and every artist once."""
        sim = self.sim
        cfg, lay = sim.cfg, sim.layout
        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor="white")
        FigureCanvasAgg(fig)
        self._fig = fig
        N = lay.n_nodes
        self._max_jobs = lay.max_jobs
        self._rsu_idx = np.flatnonzero(~lay.is_uav)
        self._uav_idx = np.flatnonzero(lay.is_uav)

        def dyn(artist):
            """Redrawn every frame over the cached background."""
            artist.set_animated(True)
            self._dynamic.append(artist)
            return artist

        # ---------------------------------------------------------- map
        side = HEIGHT_PX - 20
        ax = fig.add_axes((10 / WIDTH_PX, 10 / HEIGHT_PX, side / WIDTH_PX, side / HEIGHT_PX))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_facecolor("#f5f5f1")
        for spine in ax.spines.values():
            spine.set_color("#999999")
        if cfg.map.kind == "highway":
            cover_xy, cover_w, cover_h = self._draw_highway(ax)
        else:
            cover_xy, cover_w, cover_h = self._draw_grid(ax)
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
                *self._pos[self._rsu_idx].T,
                marker="s",
                s=node_size,
                edgecolors=NODE_EDGE,
                linewidths=1.2,
                zorder=7,
            )
        )
        self._uavs = dyn(
            ax.scatter(
                *self._pos[self._uav_idx].T,
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
        uav_xy = self._pos[self._uav_idx]
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
        n_rsu = len(self._rsu_idx)
        self._names = [f"U{n - n_rsu}" if lay.is_uav[n] else f"R{n}" for n in range(N)]

        # ---------------------------------------------------------- side panel
        x0 = PANEL_X0 / WIDTH_PX
        fig.text(
            x0 + 0.004,
            1 - 22 / HEIGHT_PX,
            f"RoadEdge  ·  {cfg.name}",
            fontsize=12,
            fontweight="bold",
            va="baseline",
        )
        fig.text(
            x0 + 0.004,
            1 - 40 / HEIGHT_PX,
            f"{len(self._rsu_idx)} RSUs, {len(self._uav_idx)} UAVs, "
            f"{self._map_summary()}, horizon {cfg.horizon}",
            fontsize=7.5,
            color="#555555",
            va="baseline",
        )
        # statistics rows: static labels here, values written by Pillow in _frame()
        self._row_baselines = []
        for i, (label, heading) in enumerate(self._panel_rows()):
            baseline = PANEL_TOP_PX + i * PANEL_STEP_PX
            self._row_baselines.append(round(baseline))
            if label:
                fig.text(
                    x0 + 0.004,
                    1 - round(baseline) / HEIGHT_PX,
                    label,
                    fontsize=PANEL_PT,
                    family=MONO,
                    va="baseline",
                    fontweight="bold" if heading else "normal",
                )

        # fonts of the text written by Pillow on every frame
        def font(points: float, family: str = "DejaVu Sans", weight: str = "normal"):
            path = findfont(FontProperties(family=family, weight=weight))
            return ImageFont.truetype(path, size=points * DPI / 72.0)

        self._font_value = font(PANEL_PT, MONO)
        self._font_label = font(7.0)
        self._font_bold = font(6.8, weight="bold")
        # legend and load colour bar
        handles = [
            Line2D(
                [],
                [],
                ls="",
                marker="s",
                ms=8,
                mfc=LOAD_CMAP(0.1),
                mec=NODE_EDGE,
                label="RSU (fill: load)",
            ),
            Line2D(
                [],
                [],
                ls="",
                marker="^",
                ms=9,
                mfc=LOAD_CMAP(0.1),
                mec=NODE_EDGE,
                label="UAV (bar: battery)",
            ),
            Line2D([], [], ls="", marker="X", ms=9, mfc="black", mec=DOWN_FACE, label="node down"),
            Line2D([], [], ls="", marker="o", ms=4, mfc=VEH_BUSY, mec=VEH_BUSY, label="vehicle"),
            Line2D([], [], color=LINE_LOCAL, lw=1.5, label="task on access node"),
            Line2D([], [], color=LINE_AWAY, lw=1.5, label="task on other node"),
            Line2D([], [], color=LINE_ORPHAN, lw=1.5, ls="--", label="orphaned task"),
            Line2D([], [], color=PHASE_COLOURS["PREPARING"], lw=2.2, label="migr. preparing"),
            Line2D([], [], color=PHASE_COLOURS["EXECUTING"], lw=2.2, label="migr. executing"),
        ]
        fig.legend(
            handles=handles,
            loc="lower left",
            bbox_to_anchor=(x0 - 0.004, 0.075),
            ncols=2,
            fontsize=6.5,
            frameon=False,
            handlelength=1.6,
            handletextpad=0.5,
            columnspacing=0.8,
            borderaxespad=0.0,
            labelspacing=0.6,
        )
        cax = fig.add_axes((x0 + 0.01, 0.035, 0.26, 0.018))
        cb = fig.colorbar(
            ScalarMappable(norm=Normalize(0.0, 1.0), cmap=LOAD_CMAP),
            cax=cax,
            orientation="horizontal",
        )
        cb.set_ticks([0, 0.5, 1])
        cb.ax.tick_params(labelsize=7, length=2, pad=1)
        cb.ax.set_title("node slot load (used / max slots)", fontsize=7, pad=2)
        cb.outline.set_linewidth(0.5)

    def _draw_grid(self, ax: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The Manhattan grid, square axes; returns the coverage discs (centres, widths,
        heights)."""
        cfg, lay = self.sim.cfg, self.sim.layout
        size = lay.map_size_m
        pad = 0.04 * size
        ax.set_xlim(-pad, size + pad)
        ax.set_ylim(-pad, size + pad)
        ax.set_aspect("equal")
        self._pos = lay.pos_xyz[:, :2]
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
        return self._pos, diam, diam

    def _draw_highway(self, ax: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The highway, a long thin map: x to scale, y stretched so that the road band
        ``[0, W]`` fills the middle third of the axes. RSUs are drawn below the road (their
        side), UAVs above it; coverage is drawn as ovals of the true length along x."""
        cfg, lay = self.sim.cfg, self.sim.layout
        length, width = lay.map_width_m, lay.map_height_m
        lane, n = cfg.map.lane_width_m, cfg.map.lanes_per_direction
        ax.set_xlim(-0.02 * length, 1.02 * length)
        ax.set_ylim(-width, 2.0 * width)
        ax.set_aspect("auto")
        pos = lay.pos_xyz[:, :2].copy()
        pos[:, 1] = np.where(lay.is_uav, 1.45 * width, -0.45 * width)
        self._pos = pos
        ax.add_patch(
            Rectangle((0.0, 0.0), length, width, facecolor="#c4c4c4", edgecolor="none", zorder=1)
        )
        edges = [((0.0, y), (length, y)) for y in (0.0, width)]
        ax.add_collection(LineCollection(edges, colors="white", linewidths=1.2, zorder=1))
        dividers = [((0.0, k * lane), (length, k * lane)) for k in range(1, n)]
        dividers += [((0.0, width - k * lane), (length, width - k * lane)) for k in range(1, n)]
        ax.add_collection(
            LineCollection(
                dividers, colors="white", linewidths=0.8, zorder=1, linestyles=(0, (6, 6))
            )
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
        return centres, cover_w, cover_h

    def _map_summary(self) -> str:
        m = self.sim.cfg.map
        if m.kind == "highway":
            n = m.lanes_per_direction
            return f"{m.highway_length_m / 1000:g} km highway, {n}+{n} lanes"
        return f"{m.grid_blocks}x{m.grid_blocks} blocks"

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

    # ------------------------------------------------------------------ one frame

    def _frame(self, env: int, last: StepResult | None) -> np.ndarray:
        fig = self._fig
        assert fig is not None
        up = self.sim.world.node_up[env].copy()
        self._update(env, up)
        canvas = fig.canvas
        key = up.tobytes()
        background = self._backgrounds.get(key)
        if background is None:
            self._update_static(up)
            if len(self._backgrounds) >= 16:
                self._backgrounds.clear()
            canvas.draw()  # the static artists only: the dynamic ones are animated
            background = self._backgrounds[key] = canvas.copy_from_bbox(fig.bbox)
        else:
            canvas.restore_region(background)
        for artist in self._dynamic:
            if artist.get_visible():
                fig.draw_artist(artist)
        # dynamic text, on top of everything: Pillow is ~50x cheaper than matplotlib text
        image = Image.frombuffer(
            "RGBA", (WIDTH_PX, HEIGHT_PX), canvas.buffer_rgba(), "raw", "RGBA", 0, 1
        ).convert("RGB")
        pen = ImageDraw.Draw(image)
        self._write_map_text(pen, env, up)
        self._write_values(pen, self._panel_values(env, last, up))
        return np.array(image)

    def _update_static(self, up: np.ndarray) -> None:
        """Artists that change only when a node goes down or comes back."""
        self._cover.set_facecolor(np.where(up[:, None], self._cover_face, [NONE]))
        self._cover.set_edgecolor(np.where(up[:, None], [COVER_EDGE], [NONE]))

    def _update(self, env: int, up: np.ndarray) -> None:
        """Set the data of every dynamic artist from the world (read only)."""
        sim = self.sim
        w, cfg = sim.world, sim.cfg
        pos, N = self._pos, len(self._pos)

        # nodes
        load = w.slots_used[env] / np.maximum(self._max_jobs, 1)
        face = LOAD_CMAP(np.clip(load, 0.0, 1.0))
        face[~up] = DOWN_FACE
        self._rsus.set_facecolor(face[self._rsu_idx])
        self._uavs.set_facecolor(face[self._uav_idx])
        self._down_x.set_offsets(pos[~up].reshape(-1, 2))

        # UAV batteries
        if len(self._uav_idx):
            frac = w.battery_j[env, self._uav_idx] / (cfg.uav.battery_wh * 3600.0)
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
        for src, dst, p, phase in self._migrations(env):
            arrow, colour = self._arrows[src], PHASE_COLOURS[phase]
            a, b = pos[src], pos[dst]
            arrow.set_positions(tuple(a), tuple(b))
            arrow.set_color(colour)
            arrow.set_visible(True)
            dots.append(a + p * (b - a))
            dot_colours.append(colour)
        self._mig_dots.set_offsets(np.array(dots).reshape(-1, 2))
        self._mig_dots.set_facecolor(dot_colours if dot_colours else "none")

    def _migrations(self, env: int) -> list[tuple[int, int, float, str]]:
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

    # ------------------------------------------------------------------ side panel

    @staticmethod
    def _panel_rows() -> list[tuple[str, bool]]:
        """(label, is_heading) of every statistics row ("" for a gap)."""
        rows = [
            "tick",
            "simulated time",
            "nodes up (truth)",
            "nodes believed up",
            "vehicles",
            "",
            "#REWARD, last step (weighted)",
        ]
        rows += [f"  {k.replace('_', ' ')}" for k in REWARD_TERMS] + ["  total", ""]
        rows += [
            "#EPISODE",
            "  sessions active",
            "  ended / dropped",
            "  session latency",
            "  session hops",
            "  tasks completed",
            "  missed / dropped",
            "  active",
            "  migrations started",
            "  succeeded / failed",
            "  in flight",
            "  failures detected",
            "  failovers",
            "  mean latency",
        ]
        return [(r.lstrip("#"), r.startswith("#")) for r in rows]

    def _panel_values(
        self, env: int, last: StepResult | None, up: np.ndarray
    ) -> list[tuple[str, tuple[int, int, int]]]:
        """(text, colour) of every :meth:`_panel_rows` row ("" for gaps and headings)."""
        sim = self.sim
        w, cfg = sim.world, sim.cfg
        m = {k: float(v[env]) for k, v in sim.metrics().items()}
        N = len(up)
        out = [
            f"{int(w.tick[env])} / {cfg.horizon}",
            f"{float(w.time_s[env]):.0f} s",
            f"{int(up.sum())} / {N}",
            f"{int(w.view_up[env].sum())} / {N}",
            f"{int(w.veh_active[env].sum())}",
            "",
            "" if last is not None else "(reset)",
        ]
        values = [0.0] * (len(REWARD_TERMS) + 1)
        if last is not None:
            for i, k in enumerate(REWARD_TERMS):
                sign = 1.0 if k == "completion" else -1.0
                values[i] = sign * getattr(cfg.reward, k) * float(np.asarray(last.terms[k])[env])
            values[-1] = float(np.asarray(last.reward)[env])
        out += [_signed(v) if last is not None else "" for v in values]
        out += [
            "",
            "",
            f"{m['sessions_active']:.0f}",
            f"{m['sessions_ended']:.0f} / {m['sessions_dropped']:.0f}",
            f"{m['session_latency_ms']:.1f} ms",
            f"{m['session_hops']:.2f}",
            f"{m['tasks_completed']:.0f}",
            f"{m['tasks_missed']:.0f} / {m['tasks_dropped']:.0f}",
            f"{m['tasks_active']:.0f}",
            f"{m['migrations_started']:.0f}",
            f"{m['migrations_completed']:.0f} / {m['migrations_failed']:.0f}",
            f"{int(w.mig_active[env].sum())}",
            f"{m['failures_detected']:.0f}",
            f"{m['failovers']:.0f}",
            f"{m['mean_latency_ms']:.1f} ms",
        ]
        colours = [TEXT] * len(out)
        first = 7  # the first reward row
        for i, v in enumerate(values):
            if last is not None and round(v, 3) != 0.0:
                colours[first + i] = TEXT_GOOD if v > 0 else TEXT_BAD
        return list(zip(out, colours, strict=True))

    def _write_values(self, pen: ImageDraw.ImageDraw, values: list[tuple[str, Any]]) -> None:
        """The panel's values, right-aligned on the rows' baselines."""
        for (text, colour), baseline in zip(values, self._row_baselines, strict=True):
            if text:
                pen.text(
                    (WIDTH_PX - 10, baseline), text, fill=colour, font=self._font_value, anchor="rs"
                )

    def _write_map_text(self, pen: ImageDraw.ImageDraw, env: int, up: np.ndarray) -> None:
        """Node labels (red if down), LOW battery tags and migration labels."""
        w, cfg = self.sim.world, self.sim.cfg
        to_px = self._ax.transData.transform
        pos_px = to_px(self._pos)
        pos_px[:, 1] = HEIGHT_PX - pos_px[:, 1]  # rows from the top
        if len(self._names) <= 60:
            for n, name in enumerate(self._names):
                x, y = pos_px[n]
                font = self._font_label if up[n] else self._font_bold
                _boxed(pen, (x, y - 12), name, font, "black" if up[n] else _RED, "mb")
        if len(self._uav_idx):
            frac = w.battery_j[env, self._uav_idx] / (cfg.uav.battery_wh * 3600.0)
            corner = to_px(
                np.stack([self._bat_x0 + self._bat_w, self._bat_y0 + self._bat_h / 2], 1)
            )
            for k in np.flatnonzero(frac < cfg.migration.battery_threshold):
                x, y = corner[k]
                pen.text(
                    (x + 4, HEIGHT_PX - y), "LOW", fill=_RED, font=self._font_bold, anchor="lm"
                )
        nodes_px = pos_px - (0.0, 8.0)  # a node and its label
        for src, dst, p, phase in self._migrations(env):
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
            _boxed(pen, (x, y), text, self._font_bold, _rgb255(PHASE_COLOURS[phase]), "mm")


_RED = (200, 30, 30)


def _rgb255(colour: Any) -> tuple[int, int, int]:
    r, g, b, _ = to_rgba(colour)
    return round(255 * r), round(255 * g), round(255 * b)


def _boxed(
    pen: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    font: Any,
    colour: Any,
    anchor: str,
) -> None:
    """``text`` on a white box."""
    left, top, right, bottom = pen.textbbox(xy, text, font=font, anchor=anchor)
    pen.rectangle((left - 2, top - 1, right + 1, bottom + 1), fill=(255, 255, 255))
    pen.text(xy, text, fill=colour, font=font, anchor=anchor)
