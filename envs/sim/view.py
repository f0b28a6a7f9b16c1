"""The controller's view: a read-only snapshot of what the controller knows (seed 004).

The controller learns node state from heartbeats (load, battery, liveness, so
its belief can be stale after a failure) and owns the scheduler's ledger
(placements, slots, reservations, task deadlines and priorities). It does not
see the hidden truth: which node has actually failed before detection, or a
vehicle's future. Observations and rule-based baselines are built only from
this view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import gather
from .layout import Layout
from .simulator import Simulator
from .triggers import node_triggers


@dataclass(frozen=True)
class ControllerView:
    """Arrays with a leading batch axis B (nodes (B, N), tasks (B, T))."""

    time_s: np.ndarray
    layout: Layout
    controller_up: np.ndarray  # (B,) the controller is the elected leader and acts (seed 003)
    # nodes
    up: np.ndarray  # believed up (heartbeats)
    load: np.ndarray  # slot load from the last heartbeat
    battery: np.ndarray  # battery fraction from the last heartbeat (1 for RSUs)
    heartbeat_age_s: np.ndarray
    slots_used: np.ndarray
    slots_reserved: np.ndarray
    free_slots: np.ndarray
    cooldown_left_s: np.ndarray
    migrating: np.ndarray  # an active migration leaves this node
    failures: np.ndarray  # failures detected this episode
    since_failure_s: np.ndarray  # time since the last detected failure (inf if none)
    completed: np.ndarray  # tasks completed on the node (past performance)
    lost: np.ndarray  # tasks interrupted on the node
    trigger: np.ndarray  # seed 000 trigger code
    urgency: np.ndarray  # seed 000 urgency
    threshold: np.ndarray  # current (dynamic) overload threshold
    away_fraction: np.ndarray  # share of hosted tasks whose vehicle is attached elsewhere
    mean_hops: np.ndarray  # mean hops from those vehicles' access nodes
    attached_vehicles: np.ndarray  # vehicles whose access node is this node
    # tasks
    task_state: np.ndarray  # world.FREE/QUEUED/RUNNING/ORPHANED
    task_kind: np.ndarray  # world.KIND_TASK / KIND_SESSION
    task_host: np.ndarray
    task_origin: np.ndarray
    task_backup: np.ndarray
    task_service: np.ndarray
    task_priority: np.ndarray
    task_remaining_s: np.ndarray  # time to deadline (sessions: to a planned end, inf if none)
    task_progress: np.ndarray  # fraction of work done (reported by the host)
    task_access: np.ndarray  # access node of the task's vehicle (-1 none)
    task_migrating: np.ndarray
    task_attempts: np.ndarray
    task_state_mb: np.ndarray  # migratable state size [MB] (known to the scheduler)


def controller_view(sim: Simulator) -> ControllerView:
    w, lay, cfg = sim.world, sim.layout, sim.cfg
    B, N = w.slots_used.shape
    now = w.time_s[:, None]
    code, urgency, thr, away, hops = node_triggers(w, lay, cfg)
    e, v = np.nonzero(w.veh_active & (w.veh_access >= 0))
    attached = np.bincount(e * N + w.veh_access[e, v], minlength=B * N).reshape(B, N)
    access = gather(w.veh_access, w.task_vehicle)
    present = gather(w.veh_active, w.task_vehicle)
    view = ControllerView(
        time_s=w.time_s.copy(),
        layout=lay,
        controller_up=w.ctrl_up.copy(),
        up=w.view_up.copy(),
        load=w.view_load.copy(),
        battery=w.view_battery.copy(),
        heartbeat_age_s=now - w.last_heartbeat_s,
        slots_used=w.slots_used.copy(),
        slots_reserved=w.slots_reserved.copy(),
        free_slots=lay.max_jobs - w.slots_used - w.slots_reserved,
        cooldown_left_s=np.maximum(w.cooldown_until_s - now, 0.0),
        migrating=w.mig_active.copy(),
        failures=w.failures.copy(),
        since_failure_s=now - w.last_failure_s,
        completed=w.node_completed.copy(),
        lost=w.node_lost.copy(),
        trigger=code,
        urgency=urgency,
        threshold=thr,
        away_fraction=away,
        mean_hops=hops,
        attached_vehicles=attached,
        task_state=w.task_state.copy(),
        task_kind=w.task_kind.copy(),
        task_host=w.task_host.copy(),
        task_origin=w.task_origin.copy(),
        task_backup=w.task_backup.copy(),
        task_service=w.task_service.copy(),
        task_priority=w.task_priority.copy(),
        task_remaining_s=w.task_deadline_s - now,
        task_progress=np.where(w.task_work > 0, w.task_done / np.maximum(w.task_work, 1), 0.0),
        task_access=np.where(present, access, -1),
        task_migrating=w.task_mig_target >= 0,
        task_attempts=w.task_attempts.copy(),
        task_state_mb=w.task_state_mb.copy(),
    )
    for name in view.__dataclass_fields__:
        value = getattr(view, name)
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return view
