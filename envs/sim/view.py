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
from numba import njit

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
    # Read by the observation's anticipation features (optional for hand-built views
    # that only feed rule baselines; :func:`controller_view` always fills them).
    task_vehicle: np.ndarray | None = None  # (B, T) the row's vehicle
    task_detached_s: np.ndarray | None = None  # (B, T) time since the row's vehicle's access
    #   link to the row's host ended (0 while attached, inf if never attached or no host)
    mig_target: np.ndarray | None = None  # (B, N) target of the migration leaving n, -1 none
    # vehicles (B, V): what the radio shows the controller
    veh_active: np.ndarray | None = None
    veh_x: np.ndarray | None = None  # [m]
    veh_y: np.ndarray | None = None  # [m]
    veh_dir: np.ndarray | None = None  # 0 +x, 1 +y, 2 -x, 3 -y
    veh_speed: np.ndarray | None = None  # [m/s]


@njit(cache=True)
def _derived_kernel(
    time_s, last_heartbeat_s, cooldown_until_s, last_failure_s, slots_used, slots_reserved,
    max_jobs, veh_active, veh_access, task_vehicle, task_deadline_s, task_done, task_work,
    task_mig_target, task_host, veh_left_s, heartbeat_age_s, free_slots, cooldown_left_s,
    since_failure_s, attached, task_remaining_s, task_progress, task_access, task_migrating,
    task_detached_s,
):  # fmt: skip
    B, N = last_heartbeat_s.shape
    for b in range(B):
        now = time_s[b]
        for n in range(N):
            heartbeat_age_s[b, n] = now - last_heartbeat_s[b, n]
            free_slots[b, n] = max_jobs[n] - slots_used[b, n] - slots_reserved[b, n]
            cooldown_left_s[b, n] = max(cooldown_until_s[b, n] - now, 0.0)
            since_failure_s[b, n] = now - last_failure_s[b, n]
            attached[b, n] = 0
        for v in range(veh_active.shape[1]):
            if veh_active[b, v] and veh_access[b, v] >= 0:
                attached[b, veh_access[b, v]] += 1
        for t in range(task_vehicle.shape[1]):
            v = task_vehicle[b, t]
            task_remaining_s[b, t] = task_deadline_s[b, t] - now
            work = task_work[b, t]
            task_progress[b, t] = task_done[b, t] / max(work, 1.0) if work > 0 else 0.0
            task_access[b, t] = veh_access[b, v] if veh_active[b, v] else -1
            task_migrating[b, t] = task_mig_target[b, t] >= 0
            h = task_host[b, t]
            if h < 0:
                task_detached_s[b, t] = np.inf
            elif task_access[b, t] == h:
                task_detached_s[b, t] = 0.0
            else:  # -inf (never attached to h since it entered): inf
                task_detached_s[b, t] = now - veh_left_s[b, v, h]


def controller_view(sim: Simulator) -> ControllerView:
    w, lay, cfg = sim.world, sim.layout, sim.cfg
    B, N = w.slots_used.shape
    T = w.task_state.shape[1]
    code, urgency, thr, away, hops = node_triggers(w, lay, cfg)
    nodes_f = [np.empty((B, N)) for _ in range(3)]
    free, attached = np.empty((B, N), np.int64), np.empty((B, N), np.int64)
    remaining, progress = np.empty((B, T)), np.empty((B, T))
    access, migrating = np.empty((B, T), np.int64), np.empty((B, T), bool)
    detached = np.empty((B, T))
    age, cooldown, since = nodes_f
    _derived_kernel(
        w.time_s, w.last_heartbeat_s, w.cooldown_until_s, w.last_failure_s, w.slots_used,
        w.slots_reserved, lay.max_jobs, w.veh_active, w.veh_access, w.task_vehicle,
        w.task_deadline_s, w.task_done, w.task_work, w.task_mig_target, w.task_host,
        w.veh_left_s, age, free, cooldown, since, attached, remaining,
        progress, access, migrating, detached,
    )  # fmt: skip
    view = ControllerView(
        time_s=w.time_s.copy(),
        layout=lay,
        controller_up=w.ctrl_up.copy(),
        up=w.view_up.copy(),
        load=w.view_load.copy(),
        battery=w.view_battery.copy(),
        heartbeat_age_s=age,
        slots_used=w.slots_used.copy(),
        slots_reserved=w.slots_reserved.copy(),
        free_slots=free,
        cooldown_left_s=cooldown,
        migrating=w.mig_active.copy(),
        failures=w.failures.copy(),
        since_failure_s=since,
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
        task_remaining_s=remaining,
        task_progress=progress,
        task_access=access,
        task_migrating=migrating,
        task_attempts=w.task_attempts.copy(),
        task_state_mb=w.task_state_mb.copy(),
        task_vehicle=w.task_vehicle.copy(),
        task_detached_s=detached,
        mig_target=np.where(w.mig_active, w.mig_target, -1),
        veh_active=w.veh_active.copy(),
        veh_x=w.veh_x.copy(),
        veh_y=w.veh_y.copy(),
        veh_dir=w.veh_dir.copy(),
        veh_speed=w.veh_speed.copy(),
    )
    for name in view.__dataclass_fields__:
        value = getattr(view, name)
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return view
