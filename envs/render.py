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

The map is drawn by :class:`~.render_map.MapLayer` (roads from :mod:`.render_roads`),
the panel by :class:`~.render_panel.SidePanel`, in the look of :mod:`.render_style`;
:class:`Renderer` owns the figure, the cached backgrounds and the window.

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
trajectory. A renderer pickles (with its env) without its matplotlib state, which
the next frame rebuilds.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
from gymnasium import logger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from .render_map import MapLayer
from .render_panel import SidePanel
from .render_style import (  # noqa: F401  (FRAME_SHAPE and the sizes are imported from here)
    DPI,
    FRAME_SHAPE,
    HEIGHT_PX,
    NON_INTERACTIVE,
    WIDTH_PX,
)
from .sim.simulator import Simulator, StepResult


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
        self._map: MapLayer | None = None
        self._panel: SidePanel | None = None
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
        self._fig = self._map = self._panel = None
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
        """Create the figure, the map layer and the side panel, every artist once."""
        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor="white")
        FigureCanvasAgg(fig)
        self._fig = fig
        self._map = MapLayer(self.sim, fig, self._dynamic)
        self._panel = SidePanel(self.sim, fig)

    # ------------------------------------------------------------------ one frame

    def _frame(self, env: int, last: StepResult | None) -> np.ndarray:
        fig = self._fig
        assert fig is not None
        up = self.sim.world.node_up[env].copy()
        self._map.update(env, up)
        canvas = fig.canvas
        key = up.tobytes()
        background = self._backgrounds.get(key)
        if background is None:
            self._map.update_static(up)
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
        self._map.write_text(pen, env, up)
        self._panel.write(pen, self._panel.values(env, last, up))
        return np.array(image)
