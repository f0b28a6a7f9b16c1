"""Episode counters, seed-000 migration statistics, seed-001 failure history.

Counters are (B,) arrays (one per environment) updated with array
operations. The event log is a per-environment list of small dicts: events
(failures, repairs, migrations) are rare, so appending them is off the hot
path, and it can be switched off for large batches.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numba import njit

from .triggers import Trigger
from .world import FREE, KIND_SESSION, KIND_TASK

N_TRIGGERS = len(Trigger)

# The episode metrics of ``Simulator.metrics``: (name, rule, counter, denominator).
# Rules: "count" a counter as is; "ratio" counter / denominator (0 while the
# denominator is 0); "tasks" / "sessions" the live rows of that kind.
METRICS = (
    ("tasks_generated", "count", "tasks_generated", ""),
    ("tasks_completed", "count", "tasks_completed", ""),
    ("tasks_missed", "count", "tasks_missed", ""),
    ("tasks_dropped", "count", "tasks_dropped", ""),
    ("tasks_active", "tasks", "", ""),
    ("sessions_started", "count", "sessions_started", ""),
    ("sessions_ended", "count", "sessions_ended", ""),
    ("sessions_dropped", "count", "sessions_dropped", ""),
    ("sessions_active", "sessions", "", ""),
    ("session_latency_ms", "ratio", "session_latency_sum_ms", "session_latency_samples"),
    ("session_hops", "ratio", "session_hops_sum", "session_hops_samples"),
    ("migrations_started", "count", "migrations_started", ""),
    ("migrations_completed", "count", "migrations_completed", ""),
    ("migrations_failed", "count", "migrations_failed", ""),
    ("migrations_cancelled", "count", "migrations_cancelled", ""),
    ("downtime_s", "count", "downtime_s", ""),
    ("mean_latency_ms", "ratio", "latency_sum_ms", "latency_samples"),
    ("failovers", "count", "failovers", ""),
    ("mean_recovery_s", "ratio", "recovery_sum_s", "failovers"),
    ("invalid_actions", "count", "invalid_actions", ""),
    ("failures_detected", "count", "failures_detected", ""),
    ("uav_energy_kj", "count", "uav_energy_kj", ""),
    ("controller_outages", "count", "controller_outages", ""),
    ("controller_down_s", "count", "controller_down_s", ""),
    ("decisions_ignored", "count", "decisions_ignored", ""),
    ("migration_retries", "count", "migration_retries", ""),
    ("retries_succeeded", "count", "retries_succeeded", ""),
    ("retries_exhausted", "count", "retries_exhausted", ""),
)
METRIC_NAMES = tuple(m[0] for m in METRICS)
_RULES = ("count", "ratio", "tasks", "sessions")


@dataclass
class Counters:
    """Cumulative since reset, per environment."""

    tasks_generated: np.ndarray
    tasks_completed: np.ndarray
    tasks_missed: np.ndarray
    tasks_dropped: np.ndarray
    sessions_started: np.ndarray
    sessions_ended: np.ndarray  # vehicle left the map, or planned end reached
    sessions_dropped: np.ndarray  # lost: failover attempts exhausted, orphan timeout, no row
    session_latency_sum_ms: np.ndarray
    session_latency_samples: np.ndarray  # session-ticks charged
    session_hops_sum: np.ndarray  # access -> host backhaul hops over attached session-ticks
    session_hops_samples: np.ndarray
    migrations_started: np.ndarray  # seed 000 "planned"
    migrations_completed: np.ndarray  # "succeeded"
    migrations_failed: np.ndarray  # success draw failed: rolled back, cost paid
    migrations_cancelled: np.ndarray  # an endpoint died mid-migration
    migration_downtime_s: np.ndarray  # sum of switch phases of completed migrations
    migration_cost_total: np.ndarray
    migration_cost_ewma: np.ndarray  # seed 000, alpha 0.1
    downtime_s: np.ndarray  # task-seconds without service (switch + interruption + restart)
    latency_sum_ms: np.ndarray
    latency_samples: np.ndarray
    failovers: np.ndarray  # tasks restarted on a new node after their host died
    failover_attempts_failed: np.ndarray
    recovery_sum_s: np.ndarray  # sum over failovers of (restart - interruption) [s]
    invalid_actions: np.ndarray
    failures_detected: np.ndarray
    uav_energy_kj: np.ndarray
    controller_outages: np.ndarray  # controller failures (seed 003 leader lost)
    controller_down_s: np.ndarray  # ticks x dt during which decisions were ignored [s]
    decisions_ignored: np.ndarray  # non-zero choices ignored while the controller was out
    migration_retries: np.ndarray  # automatic retries on the next peer started (seed 003)
    retries_succeeded: np.ndarray  # retries that ended in a successful commit
    retries_exhausted: np.ndarray  # chains that ran out of attempts or untried peers
    triggers: np.ndarray  # (B, N_TRIGGERS) migrations started per trigger

    @classmethod
    def zeros(cls, batch: int) -> Counters:
        kw = {f.name: np.zeros(batch) for f in fields(cls)}
        kw["triggers"] = np.zeros((batch, N_TRIGGERS))
        return cls(**kw)

    def reset_rows(self, rows: np.ndarray) -> None:
        for f in fields(self):
            getattr(self, f.name)[rows] = 0

    def metric_table(self, task_state: np.ndarray, task_kind: np.ndarray) -> np.ndarray:
        """(B, len(METRICS)) float64: the episode metrics of every environment, in
        ``METRIC_NAMES`` order (one compiled pass)."""
        columns = self.__dict__.get("_columns")
        if columns is None:  # the counters are only ever updated in place
            columns = self.__dict__["_columns"] = tuple(getattr(self, n) for n in _COLUMNS)
        out = np.empty((task_state.shape[0], len(METRICS)))
        _metrics_kernel(columns, _PLAN, task_state, task_kind, out)
        return out


_COLUMNS = tuple(f.name for f in fields(Counters) if f.name != "triggers")  # (B,) float64 each
_COLUMN = {name: k for k, name in enumerate(_COLUMNS)}
_PLAN = np.array(  # (M, 3): each metric's rule, counter column and denominator column
    [[_RULES.index(rule), _COLUMN.get(a, -1), _COLUMN.get(d, -1)] for _, rule, a, d in METRICS],
    dtype=np.int64,
)


@njit(cache=True)
def add_row_counts(counter, mask):
    """``counter[b] += mask[b].sum()`` for a (B,) float counter and a (B, K) bool mask (one
    compiled pass: the NumPy form is two calls of a microsecond each on a small world)."""
    for b in range(mask.shape[0]):
        k = 0
        for j in range(mask.shape[1]):
            k += mask[b, j]
        counter[b] += k


@njit(cache=True)
def _metrics_kernel(columns, plan, task_state, task_kind, out):
    B, T = task_state.shape
    for b in range(B):
        tasks = sessions = 0
        for t in range(T):
            if task_state[b, t] != FREE:
                tasks += task_kind[b, t] == KIND_TASK
                sessions += task_kind[b, t] == KIND_SESSION
        for m in range(plan.shape[0]):
            rule, a, d = plan[m, 0], plan[m, 1], plan[m, 2]
            if rule == 0:
                out[b, m] = columns[a][b]
            elif rule == 1:
                den = columns[d][b]
                out[b, m] = columns[a][b] / den if den > 0 else 0.0
            elif rule == 2:
                out[b, m] = tasks
            else:
                out[b, m] = sessions


class EventLog:
    """Per-environment history of failures, repairs and migrations (seed 000/001)."""

    def __init__(self, batch: int, enabled: bool = True, max_events: int = 100_000):
        self.enabled = enabled
        self.max_events = max_events
        self.events: list[list[dict[str, Any]]] = [[] for _ in range(batch)]

    def clear(self, rows) -> None:
        for b in np.atleast_1d(rows):
            self.events[int(b)] = []

    def add(self, env: np.ndarray, kind: str, time_s: np.ndarray, **columns: np.ndarray) -> None:
        if not self.enabled or len(env) == 0:
            return
        for i, b in enumerate(env.tolist()):
            log = self.events[b]
            if len(log) < self.max_events:
                rec = {"time_s": float(time_s[i]), "kind": kind}
                rec.update({k: v[i].item() for k, v in columns.items()})
                log.append(rec)

    def history(self, env: int = 0, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events[env] if kind is None or e["kind"] == kind]
