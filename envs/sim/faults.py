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

import math

import numpy as np
from numba import njit

from .config import ScenarioConfig
from .layout import Layout
from .ledger import LedgerError, heartbeat_row, register_node_row, release_row
from .rng import Stream, uniform_at
from .world import CAUSE_BATTERY, CAUSE_FAULT, CAUSE_NONE, ORPHANED, RUNNING, World

_S_FAIL, _S_REPAIR = np.uint64(Stream.NODE_FAILURE), np.uint64(Stream.NODE_REPAIR)
_S_CTRL_FAIL = np.uint64(Stream.CONTROLLER_FAILURE)
_S_CTRL_REPAIR = np.uint64(Stream.CONTROLLER_REPAIR)
_ZERO = np.uint64(0)


def min_outage_s(cfg: ScenarioConfig) -> float:
    """Shortest outage: long enough for the controller to detect it."""
    return cfg.faults.heartbeat_misses * cfg.faults.heartbeat_interval_s + 2 * cfg.dt_s


def battery_capacity_j(layout: Layout, cfg: ScenarioConfig) -> np.ndarray:
    return np.where(layout.is_uav, cfg.uav.battery_wh * 3600.0, np.inf)


def failure_probability(layout: Layout, cfg: ScenarioConfig) -> np.ndarray:
    """Per node, the chance that a live node fails within a tick: ``1 - exp(-dt / MTTF)``
    (exponential time to failure), (N,)."""
    mttf = np.where(layout.is_uav, cfg.faults.uav_mttf_s, cfg.faults.rsu_mttf_s)
    return -np.expm1(-cfg.dt_s / mttf)


@njit(cache=True)
def _fail_repair_kernel(
    key, tick, time_s, node_up, down_cause, down_since_s, repair_at_s, battery_j, slots_used,
    view_up, last_heartbeat_s, view_load, view_battery, task_state, task_host,
    task_interrupted_s, node_index, is_uav, p_fail, capacity_j, return_fraction, recharge_s,
    mttr_s, min_outage, failed_out, repaired_out,
):  # fmt: skip
    B, N = node_up.shape
    T = task_state.shape[1]
    for b in range(B):
        now = time_s[b]
        for n in range(N):
            failed_out[b, n] = repaired_out[b, n] = False
            if node_up[b, n]:
                u_fail = uniform_at(key[b], tick[b], _S_FAIL, node_index[n])
                fault = u_fail < p_fail[n]
                flat = is_uav[n] and battery_j[b, n] < return_fraction * capacity_j[n]
                if fault or flat:  # a fault first; else a UAV leaves to recharge
                    if fault:
                        u_repair = uniform_at(key[b], tick[b], _S_REPAIR, node_index[n])
                        outage = -mttr_s * math.log1p(-u_repair)
                        down_cause[b, n] = CAUSE_FAULT
                    else:
                        outage = recharge_s
                        down_cause[b, n] = CAUSE_BATTERY
                    node_up[b, n] = False
                    down_since_s[b, n] = now
                    repair_at_s[b, n] = now + max(outage, min_outage)
                    failed_out[b, n] = True
            elif repair_at_s[b, n] <= now + 1e-9:  # repaired: (re)joins empty
                if slots_used[b, n] != 0:
                    raise LedgerError("register_node: node still holds tasks")
                node_up[b, n] = True
                down_cause[b, n] = CAUSE_NONE
                register_node_row(view_up, last_heartbeat_s, view_load, b, n, now)
                if is_uav[n]:
                    battery_j[b, n] = capacity_j[n]
                    view_battery[b, n] = 1.0
                repaired_out[b, n] = True
        # tasks on the hosts that just died stop at once
        for t in range(T):
            if task_state[b, t] == RUNNING and failed_out[b, max(task_host[b, t], 0)]:
                task_interrupted_s[b, t] = now


def fail_and_repair(
    world: World, layout: Layout, cfg: ScenarioConfig, node_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Random failures, battery returns and repairs. Returns (failed, repaired) masks (B, N)."""
    failed, repaired = np.empty(world.node_up.shape, bool), np.empty(world.node_up.shape, bool)
    _fail_repair_kernel(*fail_repair_args(world, layout, cfg, node_index), failed, repaired)
    return failed, repaired


def fail_repair_args(world: World, layout: Layout, cfg: ScenarioConfig, node_index) -> tuple:
    """The arguments of the fault kernel but its outputs, bound once per world."""
    w, fc = world, cfg.faults
    return w.bound("fail_and_repair", (cfg, layout, node_index, failure_probability), lambda: (
        w.key, w.tick, w.time_s, w.node_up, w.down_cause, w.down_since_s, w.repair_at_s,
        w.battery_j, w.slots_used, w.view_up, w.last_heartbeat_s, w.view_load, w.view_battery,
        w.task_state, w.task_host, w.task_interrupted_s, np.ravel(node_index), layout.is_uav,
        failure_probability(layout, cfg), battery_capacity_j(layout, cfg),
        float(cfg.uav.return_battery_fraction), float(cfg.uav.recharge_s), float(fc.mttr_s),
        float(min_outage_s(cfg)),
    ))  # fmt: skip


@njit(cache=True)
def _heartbeat_kernel(
    time_s, node_up, last_heartbeat_s, view_up, view_load, view_battery, battery_j,
    slots_used, slots_reserved, max_jobs, is_uav, capacity_j, interval_s, misses,
    task_state, task_host, task_mig_target, task_orphaned_s, task_interrupted_s, node_lost,
    failures, last_failure_s, declared_out,
):  # fmt: skip
    B, N = node_up.shape
    T = task_state.shape[1]
    for b in range(B):
        now = time_s[b]
        any_declared = False
        for n in range(N):
            # live nodes that are due report their load and battery
            if node_up[b, n] and now - last_heartbeat_s[b, n] >= interval_s - 1e-9:
                load = (slots_used[b, n] + slots_reserved[b, n]) / max_jobs[n]
                battery = battery_j[b, n] / capacity_j[n] if is_uav[n] else 1.0
                heartbeat_row(
                    view_up, last_heartbeat_s, view_load, view_battery, b, n, now, load, battery
                )
            silent = now - last_heartbeat_s[b, n] > misses * interval_s + 1e-9
            declared_out[b, n] = view_up[b, n] and silent
            any_declared |= declared_out[b, n]
        if not any_declared:
            continue
        for t in range(T):
            host = task_host[b, t]
            if host < 0 or not declared_out[b, host]:
                continue
            # the controller learns of the lost rows now, not when the node died
            node_lost[b, host] += 1
            release_row(slots_used, slots_reserved, task_host, task_mig_target, b, t)
            task_state[b, t] = ORPHANED
            task_orphaned_s[b, t] = now
            # dispatched to the node after it died (unknown to the controller): the
            # interruption is dated from detection, the first moment it is known
            if np.isnan(task_interrupted_s[b, t]):
                task_interrupted_s[b, t] = now
        for n in range(N):
            if declared_out[b, n]:
                view_up[b, n] = False
                failures[b, n] += 1
                last_failure_s[b, n] = now


def heartbeats_and_detection(world: World, layout: Layout, cfg: ScenarioConfig) -> np.ndarray:
    """Live nodes beat; silent ones are declared down and their tasks orphaned.

    Returns the (B, N) mask of nodes declared down this tick.
    """
    w, fc = world, cfg.faults
    declared = np.empty(w.node_up.shape, bool)
    args = w.bound("heartbeats", (cfg, layout), lambda: (
        w.time_s, w.node_up, w.last_heartbeat_s, w.view_up, w.view_load, w.view_battery,
        w.battery_j, w.slots_used, w.slots_reserved, layout.max_jobs, layout.is_uav,
        battery_capacity_j(layout, cfg), float(fc.heartbeat_interval_s),
        float(fc.heartbeat_misses), w.task_state, w.task_host, w.task_mig_target,
        w.task_orphaned_s, w.task_interrupted_s, w.node_lost, w.failures, w.last_failure_s,
    ))  # fmt: skip
    _heartbeat_kernel(*args, declared)
    return declared


@njit(cache=True)
def _expired_kernel(task_state, task_orphaned_s, time_s, timeout_s, out):
    for b in range(out.shape[0]):
        for t in range(out.shape[1]):
            waited = time_s[b] - task_orphaned_s[b, t]
            if task_state[b, t] == ORPHANED and waited >= timeout_s - 1e-9:
                out[b, t] = True


def expired_orphans(world: World, cfg: ScenarioConfig, out: np.ndarray | None = None) -> np.ndarray:
    """Orphans past ``orphan_timeout_s``: marked in the (B, T) mask ``out`` of rows to drop
    (other entries are left as they are; a new all-False mask when None), returned."""
    w = world
    if out is None:
        out = np.zeros(w.task_state.shape, bool)
    _expired_kernel(
        w.task_state, w.task_orphaned_s, w.time_s, float(cfg.faults.orphan_timeout_s), out
    )
    return out


@njit(cache=True)
def _controller_kernel(
    key, tick, time_s, ctrl_up, ctrl_down_since_s, ctrl_elected_s, dt_s, p_fail, mttr_s,
    election_delay_s, failed_out, elected_out,
):  # fmt: skip
    for b in range(ctrl_up.shape[0]):
        end = time_s[b] + dt_s
        elected = not ctrl_up[b] and ctrl_elected_s[b] <= end + 1e-9
        failed = ctrl_up[b] and uniform_at(key[b], tick[b], _S_CTRL_FAIL, _ZERO) < p_fail
        if failed:
            u_repair = uniform_at(key[b], tick[b], _S_CTRL_REPAIR, _ZERO)
            ctrl_down_since_s[b] = end
            ctrl_elected_s[b] = end + (-mttr_s * math.log1p(-u_repair) + election_delay_s)
            ctrl_up[b] = False
        elif elected:
            ctrl_up[b] = True
        failed_out[b], elected_out[b] = failed, elected


def controller_fail_and_elect(world: World, cfg: ScenarioConfig) -> tuple[np.ndarray, np.ndarray]:
    """Controller outages (seed 003: only the leader acts), at the end of a tick.

    Stamped at the tick end ``t + dt``, after this tick's decisions were applied,
    so the observation and the action mask of the next tick already see it. A
    controller that is up fails with probability ``1 - exp(-dt / controller_mttf_s)``;
    it restarts after an exponential time of mean ``controller_mttr_s`` and acts
    again once a leader is elected, ``election_delay_s`` later. An outage covers at
    least one tick. Returns the (B,) masks (failed, elected) of this tick.
    """
    w, fc = world, cfg.faults
    B = w.ctrl_up.shape[0]
    failed, elected = np.zeros(B, bool), np.zeros(B, bool)
    if fc.controller_outages:
        args = w.bound("controller", (cfg,), lambda: (
            w.key, w.tick, w.time_s, w.ctrl_up, w.ctrl_down_since_s, w.ctrl_elected_s,
            float(cfg.dt_s), float(-np.expm1(-cfg.dt_s / fc.controller_mttf_s)),
            float(fc.controller_mttr_s), float(fc.election_delay_s),
        ))  # fmt: skip
        _controller_kernel(*args, failed, elected)
    return failed, elected
