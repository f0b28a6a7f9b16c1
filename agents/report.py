"""Reporting evaluation results: per-policy summary rows, the table, files and plot.

:func:`summarize` turns episode records into one row per policy (mean return with
its 95 % bootstrap CI, IQM, rates, the paired differences and the headroom share);
:func:`format_table` prints them as a Markdown table; :func:`write_results` saves
``episodes.csv`` and ``summary.json``, :func:`write_plot` the comparison figure.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from .headroom import (
    MODEL_PREFIX,
    format_headroom,
    headroom_fields,
    headroom_summary,
    policy_order,
    privileged_label,
)
from .stats import bootstrap_ci, iqm, paired_delta


def summarize(records: list[dict], reference: str | None = "noop") -> list[dict[str, Any]]:
    """Per-policy summary rows, in first-appearance order.

    With ``reference`` among the policies, each row also has the paired
    return difference to it (``delta_*``, see :func:`paired_delta`). Every row
    has ``privileged``, the ``best_rule`` and the paired difference to it
    (``delta_best_mean/low/high``), and its ``headroom_share`` of the oracle's
    headroom over ``headroom_ref`` (see :mod:`roadedge.agents.headroom`).
    """
    order = policy_order(records)
    if reference not in order:
        reference = None
    rows = []
    for name in order:
        rs = [r for r in records if r["policy"] == name]
        ret = np.array([r["return"] for r in rs])
        lo, hi = bootstrap_ci(ret)
        gen = np.array([max(r["tasks_generated"], 1.0) for r in rs])

        def rate(key, rs=rs, gen=gen):
            return float(np.mean(np.array([r[key] for r in rs]) / gen))

        def mean(key, rs=rs):
            return float(np.mean([r[key] for r in rs]))

        rows.append(
            {
                "policy": display_name(name),
                "episodes": len(rs),
                "return_mean": float(ret.mean()),
                "return_ci_low": lo,
                "return_ci_high": hi,
                "return_iqm": iqm(ret),
                "completed_rate": rate("tasks_completed"),
                "missed_rate": rate("tasks_missed"),
                "dropped_rate": rate("tasks_dropped"),
                "tasks_dropped": mean("tasks_dropped"),
                "migrations": mean("migrations_started"),
                "migration_success": float(
                    np.sum([r["migrations_completed"] for r in rs])
                    / max(np.sum([r["migrations_started"] for r in rs]), 1)
                ),
                "downtime_s": mean("downtime_s"),
                "mean_latency_ms": mean("mean_latency_ms"),
                "failovers": mean("failovers"),
                "mean_recovery_s": mean("mean_recovery_s"),
            }
        )
        if reference is not None:
            d, d_lo, d_hi = paired_delta(records, name, reference)
            rows[-1].update(
                {
                    "paired_vs": reference,
                    "delta_mean": d,
                    "delta_ci_low": d_lo,
                    "delta_ci_high": d_hi,
                }
            )
        rows[-1].update(headroom_fields(records, name))
    return rows


def display_name(policy: str) -> str:
    """A model's ``model:<path>`` as ``agent:<file stem>``; other names unchanged."""
    if policy.startswith(MODEL_PREFIX):
        return "agent:" + Path(policy[len(MODEL_PREFIX) :]).stem
    return policy


def format_table(
    rows: list[dict[str, Any]], title: str = "", headroom: dict[str, Any] | None = None
) -> str:
    """A plain-text table (also valid Markdown); with ``headroom`` (a
    :func:`headroom_summary`), one line per available gap under it."""
    paired = next((r["paired_vs"] for r in rows if "paired_vs" in r), None)
    best = next((r["best_rule"] for r in rows if r.get("best_rule")), None)
    if len(rows) < 2:
        best = None  # the best rule's column would be its own zeros
    shares = any(r.get("headroom_share") is not None for r in rows)
    header = [
        "policy",
        "return (95% CI)",
        *([f"vs {paired}, paired (95% CI)"] if paired else []),
        *([f"vs best rule ({best}), paired (95% CI)"] if best else []),
        *(["headroom %"] if shares else []),
        "IQM",
        "done %",
        "missed %",
        "dropped %",
        "migr.",
        "downtime s",
        "latency ms",
        "failovers",
    ]
    lines = [
        f"{title}\n" if title else "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for r in rows:
        cells = [
            privileged_label(r["policy"]) if r.get("privileged") else r["policy"],
            f"{r['return_mean']:.1f} [{r['return_ci_low']:.1f}, {r['return_ci_high']:.1f}]",
            *(
                [f"{r['delta_mean']:+.1f} [{r['delta_ci_low']:+.1f}, {r['delta_ci_high']:+.1f}]"]
                if paired
                else []
            ),
            *([_delta_best_cell(r)] if best else []),
            *([_share_cell(r.get("headroom_share"))] if shares else []),
            f"{r['return_iqm']:.1f}",
            f"{100 * r['completed_rate']:.1f}",
            f"{100 * r['missed_rate']:.1f}",
            f"{100 * r['dropped_rate']:.2f}",
            f"{r['migrations']:.0f}",
            f"{r['downtime_s']:.1f}",
            f"{r['mean_latency_ms']:.1f}",
            f"{r['failovers']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    note = format_headroom(headroom) if headroom else ""
    if note:
        lines += ["\n" + note]
    return "\n".join(line for line in lines if line != "")


def _delta_best_cell(row: dict[str, Any]) -> str:
    if row.get("delta_best_mean") is None:
        return "—"
    return (
        f"{row['delta_best_mean']:+.1f} "
        f"[{row['delta_best_low']:+.1f}, {row['delta_best_high']:+.1f}]"
    )


def _share_cell(share: float | None) -> str:
    return "—" if share is None or not np.isfinite(share) else f"{100 * share:.1f}"


def write_results(
    records: list[dict], rows: list[dict], out_dir: Path, meta: dict[str, Any]
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "episodes.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0].keys()))
        writer.writeheader()
        writer.writerows(records)
    json_path = out_dir / "summary.json"
    with open(json_path, "w", encoding="utf-8") as fh:
        summary = {"meta": meta, "policies": rows, "headroom": headroom_summary(records)}
        json.dump(summary, fh, indent=2)
    return csv_path, json_path


def write_plot(records: list[dict], path: Path, title: str) -> Path | None:
    """The comparison figure, or None (with a note) when matplotlib is missing."""
    try:
        from .plots import plot_comparison
    except ImportError:
        print("(install matplotlib, the 'viz' extra, for the comparison plot)")
        return None
    try:
        return plot_comparison(records, path, title=title, label=display_name)
    except ImportError:
        print("(install matplotlib, the 'viz' extra, for the comparison plot)")
        return None
