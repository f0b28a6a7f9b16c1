"""Node faults, UAV batteries, heartbeat detection and orphaned tasks (seed 001).

* A live node fails in a tick with probability ``1 - exp(-dt / MTTF)``
  (exponential time to failure) and is repaired after an exponential time
  with mean MTTR. A UAV whose battery falls below ``return_battery_fraction``
  leaves to recharge for ``recharge_s`` and comes back full.
* A down node sends no heartbeats. The controller declares it down once it
  has missed ``heartbeat_misses`` of them: its belief (``view_up``) lags the
  truth. A node is always down long enough to be detected before it returns,
  so every failure is seen by the controller.
* Tasks on a failed host stop progressing at once (interrupted). When the
  failure is detected, the ledger releases their slots and they become
  ORPHANED: the acting policy may fail them over; orphans not placed within
  ``orphan_timeout_s`` are dropped.
"""

from __future__ import annotations

import numpy as np

from . import ledger
from .arrays import gather
from .config import ScenarioConfig
from .layout import Layout
from .rng import Stream, uniform
from .world import CAUSE_BATTERY, CAUSE_FAULT, CAUSE_NONE, ORPHANED, RUNNING, World


def min_outage_s(cfg: ScenarioConfig) -> float:
    """Shortest outage: long enough for the controller to detect it."""
    return cfg.faults.heartbeat_misses * cfg.faults.heartbeat_interval_s + 2 * cfg.dt_s


def battery_capacity_j(layout: Layout, cfg: ScenarioConfig) -> np.ndarray:
    return np.where(layout.is_uav, cfg.uav.battery_wh * 3600.0, np.inf)


def fail_and_repair(
    world: World, layout: Layout, cfg: ScenarioConfig, node_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Random failures, battery returns and repairs. Returns (failed, repaired) masks (B, N)."""
    fc = cfg.faults
    now = world.time_s[:, None]
    key, tick = world.key[:, None], world.tick[:, None]
    mttf = np.where(layout.is_uav, fc.uav_mttf_s, fc.rsu_mttf_s)
    p_fail = -np.expm1(-cfg.dt_s / mttf)
    u_fail = uniform(key, tick, Stream.NODE_FAILURE, node_index)
    u_repair = uniform(key, tick, Stream.NODE_REPAIR, node_index)
    cap = battery_capacity_j(layout, cfg)
    flat = layout.is_uav & (world.battery_j < cfg.uav.return_battery_fraction * cap)
    up = world.node_up
    fault = up & (u_fail < p_fail)
    battery = up & ~fault & flat
    failed = fault | battery
    outage = np.where(battery, cfg.uav.recharge_s, -fc.mttr_s * np.log1p(-u_repair))
    outage = np.maximum(outage, min_outage_s(cfg))
    world.node_up &= ~failed
    world.down_cause[:] = np.where(
        fault, CAUSE_FAULT, np.where(battery, CAUSE_BATTERY, world.down_cause)
    )
    world.down_since_s[:] = np.where(failed, now, world.down_since_s)
    world.repair_at_s[:] = np.where(failed, now + outage, world.repair_at_s)

    # Tasks on the hosts that just died stop at once.
    host = np.maximum(world.task_host, 0)
    dead = gather(failed, host) & (world.task_state == RUNNING)
    world.task_interrupted_s[dead] = np.broadcast_to(now, dead.shape)[dead]

    repaired = ~world.node_up & ~failed & (world.repair_at_s <= now + 1e-9)
    if repaired.any():
        world.node_up |= repaired
        world.down_cause[repaired] = CAUSE_NONE
        world.battery_j[:] = np.where(repaired & layout.is_uav, cap, world.battery_j)
        e, n = np.nonzero(repaired)
        ledger.register_node(world, e, n)
        world.view_battery[e, n] = np.where(layout.is_uav[n], 1.0, world.view_battery[e, n])
    return failed, repaired


def heartbeats_and_detection(world: World, layout: Layout, cfg: ScenarioConfig) -> np.ndarray:
    """Live nodes beat; silent ones are declared down and their tasks orphaned.

    Returns the (B, N) mask of nodes declared down this tick.
    """
    fc = cfg.faults
    now = world.time_s[:, None]
    due = (now - world.last_heartbeat_s) >= fc.heartbeat_interval_s - 1e-9
    beating = world.node_up & due
    load = (world.slots_used + world.slots_reserved) / layout.max_jobs
    cap = battery_capacity_j(layout, cfg)
    battery = np.where(layout.is_uav, world.battery_j / np.where(layout.is_uav, cap, 1.0), 1.0)
    ledger.heartbeat(world, beating, load, battery)
    silent = now - world.last_heartbeat_s > fc.heartbeat_misses * fc.heartbeat_interval_s + 1e-9
    declared = world.view_up & silent
    if declared.any():
        host = np.maximum(world.task_host, 0)
        lost = gather(declared, host) & (world.task_host >= 0)
        e, t = np.nonzero(lost)
        # the controller learns of the lost rows now, not when the node died
        B, N = world.node_up.shape
        world.node_lost += ledger.node_counts(e, world.task_host[e, t], B, N)
        ledger.release(world, e, t)
        world.task_state[e, t] = ORPHANED
        world.task_orphaned_s[e, t] = world.time_s[e]
        # Dispatched to the node after it died (unknown to the controller): the
        # interruption is dated from detection, the first moment it is known.
        unset = np.isnan(world.task_interrupted_s[e, t])
        world.task_interrupted_s[e[unset], t[unset]] = world.time_s[e[unset]]
        world.view_up &= ~declared
        world.failures += declared
        world.last_failure_s[:] = np.where(declared, now, world.last_failure_s)
    return declared


def expired_orphans(world: World, cfg: ScenarioConfig) -> np.ndarray:
    """Orphans past ``orphan_timeout_s``: the (B, T) mask of tasks to drop."""
    waited = world.time_s[:, None] - world.task_orphaned_s
    return (world.task_state == ORPHANED) & (waited >= cfg.faults.orphan_timeout_s - 1e-9)


def controller_fail_and_elect(world: World, cfg: ScenarioConfig) -> tuple[np.ndarray, np.ndarray]:
    """Controller outages (seed 003: only the leader acts), at the end of a tick.

    Stamped at the tick end ``t + dt``, after this tick's decisions were applied,
    so the observation and the action mask of the next tick already see it. A
    controller that is up fails with probability ``1 - exp(-dt / controller_mttf_s)``;
    it restarts after an exponential time of mean ``controller_mttr_s`` and acts
    again once a leader is elected, ``election_delay_s`` later. An outage covers at
    least one tick. Returns the (B,) masks (failed, elected) of this tick.
    """
    fc = cfg.faults
    B = world.ctrl_up.shape[0]
    if not fc.controller_outages:
        none = np.zeros(B, dtype=bool)
        return none, none
    end = world.time_s + cfg.dt_s
    zero = np.zeros(1, dtype=np.uint64)
    u_fail = uniform(world.key[:, None], world.tick[:, None], Stream.CONTROLLER_FAILURE, zero)
    u_rep = uniform(world.key[:, None], world.tick[:, None], Stream.CONTROLLER_REPAIR, zero)
    u_fail, u_rep = u_fail[:, 0], u_rep[:, 0]
    elected = ~world.ctrl_up & (world.ctrl_elected_s <= end + 1e-9)
    failed = world.ctrl_up & (u_fail < -np.expm1(-cfg.dt_s / fc.controller_mttf_s))
    outage = -fc.controller_mttr_s * np.log1p(-u_rep) + fc.election_delay_s
    world.ctrl_up[:] = (world.ctrl_up & ~failed) | elected
    world.ctrl_down_since_s[:] = np.where(failed, end, world.ctrl_down_since_s)
    world.ctrl_elected_s[:] = np.where(failed, end + outage, world.ctrl_elected_s)
    return failed, elected
