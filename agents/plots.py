"""Result plots: policy comparison bars with 95 % CIs, and learning curves.

Both are written as PNG next to the CSV/JSON results by ``roadedge-eval`` and
``train.py``. Matplotlib runs headless (Agg canvas, no pyplot state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .stats import bootstrap_ci

# (record key, axis label, scale) of the panels of the comparison figure.
COMPARISON_PANELS = (
    ("return", "episode return", 1.0),
    ("completed_rate", "completed [% of generated]", 100.0),
    ("missed_rate", "missed deadline [%]", 100.0),
    ("dropped_rate", "dropped [%]", 100.0),
    ("mean_latency_ms", "mean latency [ms]", 1.0),
    ("downtime_s", "downtime [task-s]", 1.0),
    ("migrations_started", "migrations started", 1.0),
    ("failovers", "failovers", 1.0),
)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _per_episode(records: Sequence[dict[str, Any]], policy: str, key: str) -> np.ndarray:
    rows = [r for r in records if r["policy"] == policy]
    if key.endswith("_rate"):
        base = key[: -len("_rate")]
        return np.array([r[f"tasks_{base}"] / max(r["tasks_generated"], 1.0) for r in rows])
    return np.array([r[key] for r in rows], dtype=np.float64)


def plot_comparison(
    records: Sequence[dict[str, Any]], path: str | Path, title: str = "", label=lambda p: p
) -> Path:
    """A bar per policy and metric, with the 95 % bootstrap CI of the mean."""
    policies: list[str] = []
    for r in records:
        if r["policy"] not in policies:
            policies.append(r["policy"])
    n = len(COMPARISON_PANELS)
    cols = 4
    rows = int(np.ceil(n / cols))
    fig = _figure(4.2 * cols, 0.9 + max(2.8, 0.28 * len(policies)) * rows)
    colors = _colors(len(policies))
    names = [label(p) for p in policies]
    for i, (key, axis_label, scale) in enumerate(COMPARISON_PANELS):
        ax = fig.add_subplot(rows, cols, i + 1)
        means, lows, highs = [], [], []
        for p in policies:
            x = _per_episode(records, p, key) * scale
            lo, hi = bootstrap_ci(x)
            means.append(x.mean())
            lows.append(x.mean() - lo)
            highs.append(hi - x.mean())
        y = np.arange(len(policies))
        ax.barh(y, means, xerr=[lows, highs], color=colors, capsize=2, height=0.7)
        ax.set_yticks(y)
        ax.set_yticklabels(names if i % cols == 0 else [], fontsize=7)
        ax.invert_yaxis()
        top = max(float(np.max(np.array(means) + np.array(highs))), 0.0)
        if min(means) >= 0:  # counts and rates start at zero (an all-zero panel too)
            ax.set_xlim(0, top * 1.05 if top > 0 else 1.0)
        ax.set_title(axis_label, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(True, axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def plot_learning_curve(
    timesteps: np.ndarray,
    returns: np.ndarray,
    path: str | Path,
    baselines: dict[str, float | tuple[float, float, float]] | None = None,
    title: str = "",
    ylabel: str = "episode return",
) -> Path:
    """Mean evaluation return against env steps, with the baselines as horizontal lines.

    Args:
        timesteps: (K,) evaluation points.
        returns: (K, E) returns of E evaluation episodes at each point.
        baselines: name -> mean return, drawn as a line (use this when the
            baselines ran on the same E seeds as the agent: the lines are then
            directly comparable), or name -> (mean, CI low, CI high), drawn as a
            line in a band.

    No spread is drawn around the agent's curve: with seeds that differ in
    traffic it shows the seeds, not the agent. Compare on the same seeds.
    """
    fig = _figure(7.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    returns = np.atleast_2d(np.asarray(returns, dtype=np.float64))
    mean = returns.mean(axis=1)
    ax.plot(timesteps, mean, "o-", color="black", label="agent", zorder=3)
    for (name, value), color in zip(
        (baselines or {}).items(), _colors(len(baselines or {})), strict=True
    ):
        if isinstance(value, tuple):
            m, lo, hi = value
            ax.axhspan(lo, hi, color=color, alpha=0.25, zorder=1)
            ax.axhline(m, color=color, lw=1.2, label=f"{name} (95% CI)", zorder=1)
        else:
            ax.axhline(float(value), color=color, lw=1.4, ls="--", label=name, zorder=1)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title or "learning curve")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))][:n]
