"""The simulator: one controller tick for a batch of environments.

Order of operations inside a tick ``[t, t + dt)`` (MODEL.md section "A tick"):

1. decisions: the controller's actions (taken on the snapshot at ``t``) start
   migrations and failovers (ignored, counted, while the controller is out);
   then due retries of failed migrations start on the next peer (seed 003);
2. faults: random failures, UAV battery returns, repairs; migrations touching
   a dead node are cancelled;
3. heartbeats: live nodes report; silent ones are declared down, their tasks
   orphaned; orphans past their timeout are dropped;
4. mobility: vehicles move, leave, enter;
5. radio: access node and rate of every vehicle;
6. sessions and tasks: session starts, Poisson task arrivals, dispatch of waiting rows;
7. compute: processor sharing, latency, UAV energy, replicas;
8. migrations ending in this tick succeed (commit) or fail (roll back);
9. outcomes: task completions and deadline misses, sessions ending with their
   vehicle; counters and reward terms;
10. controller: the controller fails or a new leader is elected (seed 003),
    stamped at ``t + dt`` so the next observation and mask see it.

Each step is a function of :mod:`.phases` (``PHASES``), run over the batch's
arrays by compiled kernels. The simulator knows nothing of Gymnasium;
``StepResult`` carries plain arrays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from . import compute, faults, ledger, migration, mobility, radio
from .config import ScenarioConfig
from .layout import Layout, build_layout
from .phases import PHASES, Tick
from .rng import Stream, uniform
from .stats import METRIC_NAMES, Counters, EventLog
from .world import (
    World,
    allocate,
    reset_rows,
)

REWARD_TERMS = (
    "completion",
    "latency",
    "deadline_miss",
    "drop",
    "migration_cost",
    "downtime",
    "uav_energy",
)


def reward_coefficients(cfg: ScenarioConfig) -> np.ndarray:
    """The signed weight of each term of REWARD_TERMS: completion is a gain, the rest
    costs; ``reward = sum_k coef[k] * term[k]``."""
    signs = np.array([1.0] + [-1.0] * (len(REWARD_TERMS) - 1))
    return signs * np.array([getattr(cfg.reward, k) for k in REWARD_TERMS])


@njit(cache=True)
def _count_started_kernel(
    started, cost, mig_cost, mig_trigger, alpha, migrations_started, cost_total, cost_ewma,
    triggers,
):  # fmt: skip
    """Count the migrations ``started`` (B, N): per trigger, their cost, and seed 000's
    moving average of it (``formulas.ewma``; the first migration of an episode starts it).
    Returns whether any started."""
    B, N = started.shape
    any_started = False
    for b in range(B):
        first = migrations_started[b] == 0
        for n in range(N):
            if started[b, n]:
                any_started = True
                migrations_started[b] += 1.0
                triggers[b, mig_trigger[b, n]] += 1.0
                new = mig_cost[b, n]
                cost_ewma[b] = new if first else alpha * new + (1.0 - alpha) * cost_ewma[b]
                first = False
        cost_total[b] += cost[b]
    return any_started


@njit(cache=True)
def _out_of_range(actions, n_nodes):
    for a in actions.ravel():
        if a < 0 or a > n_nodes:
            return True
    return False


@njit(cache=True)
def _end_tick(time_s, tick, dt_s, coef, terms, reward):
    """Close the tick: ``reward[b] = sum_k coef[k] * terms[k, b]``, term by term in
    REWARD_TERMS order (a matrix product's rounding would depend on the batch size),
    then every clock moves on by ``dt_s``."""
    for b in range(reward.shape[0]):
        r = 0.0
        for k in range(coef.shape[0]):
            r = r + coef[k] * terms[k, b]
        reward[b] = r
        time_s[b] += dt_s
        tick[b] += np.uint64(1)


@dataclass
class StepResult:
    """What one tick produced, per environment (leading axis B)."""

    reward: np.ndarray  # (B,)
    terms: dict[str, np.ndarray]  # named reward terms, unweighted, (B,) each
    completed: np.ndarray  # (B,) tasks completed this tick
    missed: np.ndarray
    dropped: np.ndarray  # tasks and sessions lost this tick
    invalid: np.ndarray


class Simulator:
    """A batch of ``batch_size`` independent RoadEdge worlds sharing one scenario.

    Args:
        cfg: the scenario.
        batch_size: number of environments (rows); a single env is a batch of one.
        record_events: keep the per-environment event log (failures, migrations).
        check_invariants: run the ledger's invariant check after every tick.
    """

    def __init__(
        self,
        cfg: ScenarioConfig,
        batch_size: int = 1,
        record_events: bool = True,
        check_invariants: bool = False,
    ):
        self.cfg = cfg
        self.layout: Layout = build_layout(cfg)
        self.batch_size = batch_size
        self.check_invariants = check_invariants
        N = self.layout.n_nodes
        V, T = cfg.vehicles.max_vehicles, cfg.tasks.max_tasks
        self.world: World = allocate(batch_size, N, V, T)
        self._template: World = allocate(1, N, V, T)
        self.counters = Counters.zeros(batch_size)
        self.events = EventLog(batch_size, enabled=record_events)
        self.node_index = np.arange(N, dtype=np.uint64)[None, :]
        self.reward_coef = reward_coefficients(cfg)
        self.session_requests_per_tick = compute.session_requests_per_tick(cfg)
        # Set to {} to accumulate seconds per tick phase (the benchmark does).
        self.phase_times: dict[str, float] | None = None

    # ------------------------------------------------------------------ reset

    def reset(self, keys: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Start new episodes in ``rows`` (default: all) with episode ``keys`` (uint64)."""
        rows = np.arange(self.batch_size) if rows is None else np.asarray(rows)
        keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
        if keys.shape[0] != rows.shape[0]:
            raise ValueError(f"need one key per reset row: {keys.shape[0]} keys, {len(rows)} rows")
        w, cfg, lay = self.world, self.cfg, self.layout
        reset_rows(w, self._template, rows)
        self.counters.reset_rows(rows)
        self.events.clear(rows)
        w.key[rows] = keys
        cap = faults.battery_capacity_j(lay, cfg)
        u_batt = uniform(
            w.key[rows, None], w.tick[rows, None], Stream.UAV_BATTERY_INIT, self.node_index
        )
        lo = cfg.uav.initial_battery_min_fraction
        w.battery_j[rows] = np.where(
            lay.is_uav, (lo + (1 - lo) * u_batt) * np.where(lay.is_uav, cap, 1.0), np.inf
        )
        w.view_battery[rows] = np.where(
            lay.is_uav, w.battery_j[rows] / np.where(lay.is_uav, cap, 1.0), 1.0
        )
        counts = np.zeros(self.batch_size, dtype=np.int64)
        counts[rows] = cfg.vehicles.initial_vehicles
        mobility.spawn_vehicles(w, cfg, counts, initial=True)
        radio.update_access_links(w, lay, cfg.radio)

    # ------------------------------------------------------------------ step

    def action_mask(self) -> np.ndarray:
        """Valid decisions from the controller's view, (B, N, N + 1)."""
        return migration.action_mask(self.world, self.layout, self.cfg)

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance every environment one tick under ``actions`` (B, N) ints in [0, N]."""
        w, cfg = self.world, self.cfg
        B, N = w.slots_used.shape
        actions = np.asarray(actions, dtype=np.int64).reshape(B, N)
        if _out_of_range(actions, N):
            # A negative index would silently pick another column of the action mask.
            raise ValueError(
                f"actions must be in [0, {N}] (0: no decision, m + 1: target "
                f"node m), got values from {actions.min()} to {actions.max()}"
            )
        now = w.time_s.copy()
        tick = Tick(actions, now, now + cfg.dt_s, np.zeros(w.task_state.shape, dtype=bool))
        if self.phase_times is None:
            for _, phase in PHASES:
                phase(self, tick)
        else:  # profiling: charge each phase its seconds
            for name, phase in PHASES:
                start = time.perf_counter()
                phase(self, tick)
                self.phase_times[name] = self.phase_times.get(name, 0.0) + (
                    time.perf_counter() - start
                )
        reward = np.empty(B)
        _end_tick(w.time_s, w.tick, float(cfg.dt_s), self.reward_coef, tick.term_matrix, reward)
        if self.check_invariants:
            ledger.check(w, self.layout)
        return StepResult(
            reward=reward,
            terms=dict(zip(REWARD_TERMS, tick.term_matrix, strict=True)),
            completed=tick.counts[:, 0],
            missed=tick.counts[:, 1],
            dropped=tick.counts[:, 2],
            invalid=tick.invalid,
        )

    def count_started(
        self, started: np.ndarray, cost: np.ndarray, now: np.ndarray, kind: str
    ) -> None:
        """Counters, EWMA cost and events of the migrations ``started`` (B, N) this tick."""
        w, c, cfg = self.world, self.counters, self.cfg
        any_started = _count_started_kernel(
            started, cost, w.mig_cost, w.mig_trigger, float(cfg.migration.ewma_alpha),
            c.migrations_started, c.migration_cost_total, c.migration_cost_ewma, c.triggers,
        )  # fmt: skip
        if not any_started or not self.events.enabled:
            return
        e, n = np.nonzero(started)
        extra = {"attempt": w.retry_attempt[e, n]} if kind == "migration_retry" else {}
        self.events.add(
            e,
            kind,
            now[e],
            source=n,
            target=w.mig_target[e, n],
            trigger=w.mig_trigger[e, n],
            end_s=w.mig_end_s[e, n],
            **extra,
        )

    # ------------------------------------------------------------------ views

    def tasks_active(self) -> np.ndarray:
        """Live task rows (kind task), (B,) int."""
        return self.metric_table()[:, METRIC_NAMES.index("tasks_active")].astype(np.int64)

    def sessions_active(self) -> np.ndarray:
        """Live sessions, (B,) int."""
        return self.metric_table()[:, METRIC_NAMES.index("sessions_active")].astype(np.int64)

    def metric_table(self) -> np.ndarray:
        """(B, M) float64 episode metrics, columns in ``stats.METRIC_NAMES`` order."""
        return self.counters.metric_table(self.world.task_state, self.world.task_kind)

    def metrics(self) -> dict[str, np.ndarray]:
        """Episode metrics a paper would report, per environment (B,) float64 arrays
        (``stats.METRICS`` defines each)."""
        table = self.metric_table()
        return {name: table[:, m] for m, name in enumerate(METRIC_NAMES)}

    def metrics_of(self, env: int) -> dict[str, float]:
        """The metrics of one environment as plain floats (an info dict's)."""
        return dict(zip(METRIC_NAMES, self.metric_table()[env].tolist(), strict=True))

    def migration_statistics(self, env: int = 0) -> dict[str, float]:
        """Seed 000's statistics for one environment."""
        from .triggers import Trigger

        c = self.counters
        planned = float(c.migrations_started[env])
        succeeded = float(c.migrations_completed[env])
        failed = float(c.migrations_failed[env])
        executed = succeeded + failed
        return {
            "planned": planned,
            "executed": executed,
            "succeeded": succeeded,
            "failed": failed,
            "cancelled": float(c.migrations_cancelled[env]),
            "planning_success_rate": executed / planned if planned else 0.0,
            "execution_success_rate": succeeded / executed if executed else 0.0,
            "overall_success_rate": succeeded / planned if planned else 0.0,
            "total_downtime_s": float(c.migration_downtime_s[env]),
            "mean_downtime_s": float(c.migration_downtime_s[env]) / succeeded if succeeded else 0.0,
            "average_cost_ewma": float(c.migration_cost_ewma[env]),
            "active_migrations": float(self.world.mig_active[env].sum()),
            "trigger_distribution": {t.name.lower(): float(c.triggers[env, t]) for t in Trigger},
        }

    def cluster_status(self, env: int = 0) -> dict[str, object]:
        """Seed 001's cluster status, from the controller's view."""
        w = self.world
        return {
            "active_nodes": np.flatnonzero(w.view_up[env]).tolist(),
            "inactive_nodes": np.flatnonzero(~w.view_up[env]).tolist(),
            "failure_count": int(w.failures[env].sum()),
            "failure_history": self.events.history(env, "failure_detected"),
        }
