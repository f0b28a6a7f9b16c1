"""The phases of a tick, in order (MODEL.md section 1.2).

Each phase takes the simulator and the tick's scratch (:class:`Tick`), runs its
compiled kernels and records its counters and events; :meth:`Simulator.step
<roadedge.envs.sim.simulator.Simulator.step>` runs them as a list (:data:`PHASES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from . import faults, fused, migration, mobility, outcomes, radio, scheduler, sessions
from .stats import add_row_counts
from .triggers import node_triggers

if TYPE_CHECKING:
    from .simulator import Simulator


@dataclass
class Tick:
    """What the phases of one tick hand on to each other, per environment."""

    actions: np.ndarray  # (B, N) the controller's choices
    now: np.ndarray  # (B,) tick start [s]
    end: np.ndarray  # (B,) tick end [s]
    dropped: np.ndarray  # (B, T) rows lost this tick (attempts exhausted, orphan timeout)
    invalid: np.ndarray | None = None  # (B,) choices that were no-ops
    migration_cost: np.ndarray | None = None  # (B,) cost of the migrations started
    downtime: np.ndarray | None = None  # (B,) service-seconds lost this tick
    no_task_row: np.ndarray | None = None  # (B,) tasks lost for want of a free row
    no_session_row: np.ndarray | None = None  # (B,) sessions lost for want of a free row
    due: np.ndarray | None = None  # (B, N) migrations ending this tick ...
    success: np.ndarray | None = None  # ... and whether each succeeds
    charged: np.ndarray | None = None  # (B, T) rows whose latency counts this tick
    latency_ms: np.ndarray | None = None  # (B, T)
    energy_j: np.ndarray | None = None  # (B, N) UAV energy drawn
    term_matrix: np.ndarray | None = None  # (len(REWARD_TERMS), B) unweighted terms
    counts: np.ndarray | None = None  # (B, 3) tasks completed, missed; rows dropped


@njit(cache=True)
def _gate_kernel(actions, ctrl_up, dt_s, retry_pending, decisions_ignored, controller_down_s):
    """While the controller is out its choices are ignored (zeroed in ``actions``) and
    counted. Returns whether any choice remains, and whether any retry is pending."""
    B, N = actions.shape
    acting = pending = False
    for b in range(B):
        if not ctrl_up[b]:
            controller_down_s[b] += dt_s
        for n in range(N):
            if actions[b, n] > 0 and not ctrl_up[b]:
                decisions_ignored[b] += 1.0
                actions[b, n] = 0
            acting |= actions[b, n] > 0
            pending |= retry_pending[b, n]
    return acting, pending


@njit(cache=True)
def _retry_work(retry_pending, view_up, ctrl_up, mig_active, cooldown_until_s, time_s):
    """Whether the retry kernel has anything to do: a pending retry that is due (as
    ``migration._retries_kernel`` decides it) or whose source is believed down."""
    B, N = retry_pending.shape
    for b in range(B):
        for n in range(N):
            if retry_pending[b, n] and (
                not view_up[b, n]
                or (
                    ctrl_up[b]
                    and not mig_active[b, n]
                    and time_s[b] >= cooldown_until_s[b, n] - 1e-9
                )
            ):
                return True
    return False


@njit(cache=True)
def _tally_decisions(
    invalid, started_cost, failovers, failover_failed, recovery_s, restart_s, exhausted,
    invalid_total, failovers_total, failover_failed_total, recovery_total_s, migration_cost,
    downtime, dropped,
):  # fmt: skip
    """Add what :func:`migration.apply_decisions` returned to the counters and the tick."""
    for b in range(invalid.shape[0]):
        invalid_total[b] += invalid[b]
        failovers_total[b] += failovers[b]
        failover_failed_total[b] += failover_failed[b]
        recovery_total_s[b] += recovery_s[b]
        migration_cost[b] += started_cost[b]
        downtime[b] += restart_s[b]
        for t in range(exhausted.shape[1]):
            dropped[b, t] |= exhausted[b, t]


def decisions(sim: Simulator, tick: Tick) -> None:
    """1. The controller's decisions (ignored, counted, while it is out), then the due
    retries of failed migrations on their next peer (seed 003)."""
    w, cfg, lay, c = sim.world, sim.cfg, sim.layout, sim.counters
    B = w.ctrl_up.shape[0]
    actions = tick.actions.copy()
    acting, pending = _gate_kernel(
        actions, w.ctrl_up, float(cfg.dt_s), w.retry_pending, c.decisions_ignored,
        c.controller_down_s,
    )  # fmt: skip
    tick.migration_cost = np.zeros(B)
    tick.downtime = np.zeros(B)
    if not acting:  # nothing asked: nothing starts, nothing is invalid
        tick.invalid = np.zeros(B, np.int64)
    else:
        dec = migration.apply_decisions(w, lay, cfg, actions)
        tick.invalid = dec["invalid"]
        sim.count_started(dec["started"], dec["started_cost"], tick.now, "migration_planned")
        _tally_decisions(
            dec["invalid"], dec["started_cost"], dec["failovers"], dec["failover_failed"],
            dec["recovery_s"], dec["restart_downtime_s"], dec["exhausted"], c.invalid_actions,
            c.failovers, c.failover_attempts_failed, c.recovery_sum_s, tick.migration_cost,
            tick.downtime, tick.dropped,
        )  # fmt: skip
    if pending and _retry_work(
        w.retry_pending, w.view_up, w.ctrl_up, w.mig_active, w.cooldown_until_s, w.time_s
    ):
        # triggers again: this tick's failovers changed what the nodes host
        code, urgency, *_ = node_triggers(w, lay, cfg)
        ret = migration.start_retries(w, lay, cfg, code, urgency)
        add_row_counts(c.migration_retries, ret["started"])
        sim.count_started(ret["started"], ret["started_cost"], tick.now, "migration_retry")
        add_row_counts(c.retries_exhausted, ret["exhausted"])
        tick.migration_cost = tick.migration_cost + ret["started_cost"]


def node_faults(sim: Simulator, tick: Tick) -> None:
    """2. Random failures, UAV battery returns and repairs; migrations touching a dead
    node are cancelled."""
    w, now = sim.world, tick.now
    failed, repaired = fused.node_faults(w, sim.layout, sim.cfg, sim.node_index, sim.counters)
    if sim.events.enabled and failed.any():
        e, n = np.nonzero(failed)
        sim.events.add(e, "node_failed", now[e], node=n, cause=w.down_cause[e, n])
    if sim.events.enabled and repaired.any():
        e, n = np.nonzero(repaired)
        sim.events.add(e, "node_repaired", now[e], node=n)


def heartbeats(sim: Simulator, tick: Tick) -> None:
    """3. Live nodes report; silent ones are declared down and their rows orphaned;
    orphans past their timeout are marked for dropping."""
    w = sim.world
    declared = faults.heartbeats_and_detection(w, sim.layout, sim.cfg)
    add_row_counts(sim.counters.failures_detected, declared)
    if sim.events.enabled and declared.any():
        e, n = np.nonzero(declared)
        sim.events.add(
            e,
            "failure_detected",
            tick.now[e],
            node=n,
            down_since_s=w.down_since_s[e, n],
            cause=w.down_cause[e, n],
        )
    faults.expired_orphans(w, sim.cfg, out=tick.dropped)


def vehicles(sim: Simulator, tick: Tick) -> None:
    """4. Vehicles move, turn and leave; Poisson entries arrive."""
    w, cfg = sim.world, sim.cfg
    mobility.move_vehicles(w, cfg)
    mobility.spawn_vehicles(w, cfg, mobility.arrivals(w, cfg), initial=False)


def access_links(sim: Simulator, tick: Tick) -> None:
    """5. The access node and rate of every vehicle."""
    radio.update_access_links(sim.world, sim.layout, sim.cfg.radio)


def arrivals(sim: Simulator, tick: Tick) -> None:
    """6. Session starts, Poisson task generation, dispatch of the waiting rows."""
    w, cfg, c = sim.world, sim.cfg, sim.counters
    started, tick.no_session_row = sessions.start_sessions(w, cfg)
    c.sessions_started += started
    generated, tick.no_task_row = scheduler.generate_tasks(w, cfg)
    c.tasks_generated += generated
    scheduler.dispatch_waiting(w, sim.layout, cfg)


def work(sim: Simulator, tick: Tick) -> None:
    """7. Success draws of the migrations ending this tick and their switch downtime;
    processor sharing, latency, UAV energy, replica checkpoints, the downtime tally."""
    tick.due, tick.success, tick.charged, tick.latency_ms, tick.energy_j = fused.work(
        sim.world, sim.layout, sim.cfg, sim.node_index, tick.downtime
    )


@njit(cache=True)
def _count_due(due, success, mig_downtime_s, completed, failed, switch_downtime_s):
    """Count the migrations ending this tick, before they are closed; whether any ends."""
    any_due = False
    for b in range(due.shape[0]):
        for n in range(due.shape[1]):
            if due[b, n]:
                any_due = True
                if success[b, n]:
                    completed[b] += 1.0
                    switch_downtime_s[b] += mig_downtime_s[b, n]
                else:
                    failed[b] += 1.0
    return any_due


def migration_outcomes(sim: Simulator, tick: Tick) -> None:
    """8. Migrations ending this tick commit (two-phase handoff) or roll back."""
    due, success = tick.due, tick.success
    w, c = sim.world, sim.counters
    if not _count_due(
        due, success, w.mig_downtime_s, c.migrations_completed, c.migrations_failed,
        c.migration_downtime_s,
    ):  # fmt: skip
        return
    if sim.events.enabled:
        e, n = np.nonzero(due)
        sim.events.add(
            e,
            "migration_ended",
            tick.now[e],
            source=n,
            target=w.mig_target[e, n],
            success=success[e, n],
            cost=w.mig_cost[e, n],
        )
    retry_ok, exhausted = migration.finish(w, sim.cfg, due, success)
    add_row_counts(c.retries_succeeded, retry_ok)
    add_row_counts(c.retries_exhausted, exhausted)


@njit(cache=True)
def _close_terms(migration_cost, downtime, energy_j, downtime_total, energy_total_kj, terms):
    """Rows 4-6 of the tick's term matrix (migration cost, downtime, UAV energy [kJ]) and
    the downtime and energy counters."""
    for b in range(terms.shape[1]):
        energy_kj = 0.0
        for n in range(energy_j.shape[1]):
            energy_kj += energy_j[b, n]
        energy_kj /= 1000.0
        terms[4, b], terms[5, b], terms[6, b] = migration_cost[b], downtime[b], energy_kj
        downtime_total[b] += downtime[b]
        energy_total_kj[b] += energy_kj


def row_outcomes(sim: Simulator, tick: Tick) -> None:
    """9. Completions, deadline misses, drops and ended sessions; the reward terms."""
    cfg, c = sim.cfg, sim.counters
    # rows in REWARD_TERMS order: completion, latency, deadline miss, drop (outcomes'
    # rows), migration cost, downtime, UAV energy
    tick.term_matrix = np.empty((7, tick.now.shape[0]))
    _, tick.counts = outcomes.settle(
        sim.world,
        sim.layout.hops,
        c,
        tick.dropped,
        tick.charged,
        tick.latency_ms,
        tick.end,
        tick.no_task_row,
        tick.no_session_row,
        cfg.faults.priority_medium,
        sim.session_requests_per_tick,
        tick.term_matrix,
    )
    _close_terms(
        tick.migration_cost, tick.downtime, tick.energy_j, c.downtime_s, c.uav_energy_kj,
        tick.term_matrix,
    )  # fmt: skip


def controller(sim: Simulator, tick: Tick) -> None:
    """10. The controller fails or a new leader is elected (seed 003), stamped at the
    tick end so the next observation and mask see it."""
    if not sim.cfg.faults.controller_outages:
        return
    w, end = sim.world, tick.end
    failed, elected = faults.controller_fail_and_elect(w, sim.cfg)
    sim.counters.controller_outages += failed
    if failed.any():
        e = np.flatnonzero(failed)
        sim.events.add(e, "controller_failed", end[e], elected_s=w.ctrl_elected_s[e])
    if elected.any():
        e = np.flatnonzero(elected)
        sim.events.add(e, "controller_elected", end[e], down_s=end[e] - w.ctrl_down_since_s[e])


PHASES = (
    ("decisions", decisions),
    ("faults", node_faults),
    ("heartbeats", heartbeats),
    ("mobility", vehicles),
    ("radio", access_links),
    ("tasks", arrivals),
    ("compute", work),
    ("migrations", migration_outcomes),
    ("outcomes", row_outcomes),
    ("controller", controller),
)
