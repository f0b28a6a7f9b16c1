"""The look of a RoadEdge frame, shared by the map layer and the side panel.

Frame size, colours, and the Pillow helpers that write the text which changes every
frame (about 50x cheaper than matplotlib text).
"""

from __future__ import annotations

from typing import Any

from matplotlib import colormaps
from matplotlib.colors import to_rgba
from matplotlib.font_manager import FontProperties, findfont
from PIL import ImageDraw, ImageFont

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

RED = (200, 30, 30)


def signed(value: float) -> str:
    """``+1.234`` / ``-1.234``, and ``0.000`` rather than ``-0.000``."""
    value = round(value, 3) + 0.0
    return f"{value:+.3f}" if value else "0.000"


def font(points: float, family: str = "DejaVu Sans", weight: str = "normal") -> Any:
    """A Pillow font of matplotlib's ``family`` at ``points`` on a :data:`DPI` frame."""
    path = findfont(FontProperties(family=family, weight=weight))
    return ImageFont.truetype(path, size=points * DPI / 72.0)


def rgb255(colour: Any) -> tuple[int, int, int]:
    r, g, b, _ = to_rgba(colour)
    return round(255 * r), round(255 * g), round(255 * b)


def boxed(
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
