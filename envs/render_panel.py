"""The side panel of a RoadEdge frame: title, the state of the episode row by row,
the legend and the node-load colour bar.

The labels, legend and colour bar are static (drawn into the renderer's cached
background); the values of the rows change every frame and are written with Pillow
(:meth:`SidePanel.write`): tick, time, nodes up, the weighted reward terms of the last
step (signed, as in ``info["reward_terms"]``) and the main episode metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import ImageDraw

from .render_roads import map_summary
from .render_style import (
    DOWN_FACE,
    HEIGHT_PX,
    LINE_AWAY,
    LINE_LOCAL,
    LINE_ORPHAN,
    LOAD_CMAP,
    MONO,
    NODE_EDGE,
    PANEL_PT,
    PANEL_STEP_PX,
    PANEL_TOP_PX,
    PANEL_X0,
    PHASE_COLOURS,
    TEXT,
    TEXT_BAD,
    TEXT_GOOD,
    VEH_BUSY,
    WIDTH_PX,
    font,
    signed,
)
from .sim.simulator import REWARD_TERMS, Simulator, StepResult, reward_coefficients


class SidePanel:
    """The panel right of the map on ``fig``, for ``sim`` (only read)."""

    def __init__(self, sim: Simulator, fig: Figure):
        self.sim = sim
        cfg, lay = sim.cfg, sim.layout
        n_uav = int(lay.is_uav.sum())
        n_rsu = lay.n_nodes - n_uav
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
            f"{n_rsu} RSUs, {n_uav} UAVs, {map_summary(cfg)}, horizon {cfg.horizon}",
            fontsize=7.5,
            color="#555555",
            va="baseline",
        )
        # statistics rows: static labels here, values written by Pillow in write()
        self._row_baselines = []
        for i, (label, heading) in enumerate(self.rows()):
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

        self._font_value = font(PANEL_PT, MONO)  # the values, written by Pillow
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

    @staticmethod
    def rows() -> list[tuple[str, bool]]:
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

    def values(
        self, env: int, last: StepResult | None, up: np.ndarray
    ) -> list[tuple[str, tuple[int, int, int]]]:
        """(text, colour) of every :meth:`rows` row ("" for gaps and headings)."""
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
            coef = reward_coefficients(cfg)
            for i, k in enumerate(REWARD_TERMS):
                values[i] = float(coef[i] * np.asarray(last.terms[k])[env])
            values[-1] = float(np.asarray(last.reward)[env])
        out += [signed(v) if last is not None else "" for v in values]
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

    def write(self, pen: ImageDraw.ImageDraw, values: list[tuple[str, Any]]) -> None:
        """The panel's values, right-aligned on the rows' baselines."""
        for (text, colour), baseline in zip(values, self._row_baselines, strict=True):
            if text:
                pen.text(
                    (WIDTH_PX - 10, baseline), text, fill=colour, font=self._font_value, anchor="rs"
                )
