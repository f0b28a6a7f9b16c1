"""Result plots: policy comparison bars with 95 % CIs, and learning curves.

Both are written as PNG next to the CSV/JSON results by ``roadedge-eval`` and
``train.py``. Matplotlib runs headless (Agg canvas, no pyplot state).
``comparison_figure`` / ``learning_curve_figure`` build the figures,
``plot_comparison`` / ``plot_learning_curve`` also save them.

Each policy has one colour in every figure, whichever subset is plotted
(:func:`policy_color`). A privileged policy (``oracle``: it reads the hidden
future) is drawn hatched and labelled ``oracle (privileged)``: it marks the
headroom, it is not a baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .headroom import is_privileged, privileged_label
from .stats import bootstrap_ci

# (record key, axis label, scale) of the panels of the comparison figure.
COMPARISON_PANELS = (
    ("return", "episode return", 1.0),
    ("session_latency_ms", "session latency [ms per request]", 1.0),
    ("session_hops", "session access-to-host hops", 1.0),
    ("dropped_rate", "tasks dropped [%]", 100.0),
    ("sessions_dropped", "sessions dropped", 1.0),
    ("downtime_s", "downtime [row-s]", 1.0),
    ("migrations_started", "migrations started", 1.0),
    ("failovers", "failovers", 1.0),
)
PRIVILEGED_HATCH = "//"
PRIVILEGED_COLOR = "0.78"  # light grey under black hatching: no rule's colour


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
    """A bar per policy and metric, with the 95 % bootstrap CI of the mean (saved as PNG)."""
    fig = comparison_figure(records, title=title, label=label)
    path = Path(path)
    fig.savefig(path)
    return path


def comparison_figure(records: Sequence[dict[str, Any]], title: str = "", label=lambda p: p):
    """The figure of :func:`plot_comparison`; ``label`` maps a policy to its tick label."""
    policies: list[str] = []
    for r in records:
        if r["policy"] not in policies:
            policies.append(r["policy"])
    n = len(COMPARISON_PANELS)
    cols = 4
    rows = int(np.ceil(n / cols))
    fig = _figure(4.2 * cols, 0.9 + max(2.8, 0.28 * len(policies)) * rows)
    colors = [policy_color(p) for p in policies]
    names = [_label(p, label) for p in policies]
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
        bars = ax.barh(y, means, xerr=[lows, highs], color=colors, capsize=2, height=0.7)
        for p, bar in zip(policies, bars, strict=True):
            if is_privileged(p):
                bar.set_hatch(PRIVILEGED_HATCH)
                bar.set_edgecolor("black")
                bar.set_linewidth(0.6)
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
    return fig


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
    fig = learning_curve_figure(timesteps, returns, baselines, title=title, ylabel=ylabel)
    path = Path(path)
    fig.savefig(path)
    return path


def learning_curve_figure(
    timesteps: np.ndarray,
    returns: np.ndarray,
    baselines: dict[str, float | tuple[float, float, float]] | None = None,
    title: str = "",
    ylabel: str = "episode return",
):
    """The figure of :func:`plot_learning_curve` (same arguments but the path)."""
    fig = _figure(7.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    returns = np.atleast_2d(np.asarray(returns, dtype=np.float64))
    mean = returns.mean(axis=1)
    ax.plot(timesteps, mean, "o-", color="black", label="agent", zorder=3)
    for name, value in (baselines or {}).items():
        color, text = policy_color(name), privileged_label(name)
        privileged = is_privileged(name)
        if isinstance(value, tuple):
            m, lo, hi = value
            band = ax.axhspan(lo, hi, color=color, alpha=0.25, zorder=1)
            if privileged:
                band.set_hatch(PRIVILEGED_HATCH)
            ls = ":" if privileged else "-"
            ax.axhline(m, color=color, lw=1.2, ls=ls, label=f"{text} (95% CI)", zorder=1)
        else:
            ls = ":" if privileged else "--"
            ax.axhline(float(value), color=color, lw=1.4, ls=ls, label=text, zorder=1)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title or "learning curve")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _label(policy: str, label) -> str:
    """``label(policy)``, marked ``(privileged)`` for a privileged policy."""
    text = label(policy)
    return f"{text} (privileged)" if is_privileged(policy) and "privileged" not in text else text


def _rule_keys() -> list[tuple[str | None, str | None]]:
    """Every rule as its (migration, failover) pair: those of ``policy_names()`` in that
    order, then the other valid pairs (e.g. ``random+failover``) in the baselines' order."""
    from roadedge.baselines import policy_names
    from roadedge.baselines.policies import FAILOVER_RULES, MIGRATION_RULES, parse_name

    keys = [parse_name(name) for name in policy_names()]
    for migration in MIGRATION_RULES:
        for failover in (None, *FAILOVER_RULES):
            key = (None if migration == "noop" else migration, failover)
            if key not in keys:
                keys.append(key)
    return keys


def _rule_key(policy: str) -> tuple[str | None, str | None] | None:
    """The rule pair of ``policy`` however it is spelled (``failover+threshold`` is
    ``threshold+failover``), or None for a model or any other name."""
    from roadedge.baselines.policies import parse_name

    try:
        return parse_name(policy)
    except ValueError:
        return None


def policy_color(policy: str) -> tuple[float, float, float, float] | str:
    """The policy's colour, the same in every figure whatever else is plotted.

    Every figure takes its colours from here. The rules take the colours of tab10
    then the light half of tab20 in the fixed order of :func:`_rule_keys` (a rule
    spelled another way, ``failover+threshold``, is the same rule, the same colour);
    a privileged policy is light grey (drawn hatched); any other name (a trained
    model) a colour of tab20b picked by a stable hash of the name.
    """
    import zlib

    from matplotlib import colormaps

    if is_privileged(policy):
        return PRIVILEGED_COLOR
    key = _rule_key(policy)
    if key is not None:
        palette = [colormaps["tab10"](i) for i in range(10)]
        palette += [colormaps["tab20"](2 * i + 1) for i in range(10)]
        return palette[_rule_keys().index(key) % len(palette)]
    cmap = colormaps["tab20b"]
    return cmap(zlib.crc32(policy.encode("utf-8")) % cmap.N)
