"""Seed 000's migration-need analysis: triggers, urgency and the dynamic threshold.

Five triggers (RSU overload, UAV low battery, UAV overload, vehicle mobility,
network congestion) are evaluated for every node from the controller's view.
Each has an urgency in [0, 1]; a node's trigger is the one with the highest
urgency (ties in the order listed). The simulator uses this to label every
migration (statistics: the trigger distribution), and the ``threshold``
baseline uses it to decide.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numba import njit

from .config import MigrationConfig
from .world import RUNNING


class Trigger(IntEnum):
    NONE = 0
    RSU_OVERLOAD = 1
    UAV_BATTERY = 2
    UAV_OVERLOAD = 3
    MOBILITY = 4
    CONGESTION = 5
    FAILOVER = 6  # the source was declared down: a failover, not a migration
    POLICY = 7  # the controller moved tasks with no trigger active


def trigger_params(cfg: MigrationConfig) -> np.ndarray:
    """Seed 000's trigger settings as the kernels take them (:data:`P_*` indices)."""
    return np.array(
        [
            cfg.rsu_overload_threshold,
            cfg.uav_overload_threshold,
            cfg.battery_threshold,
            cfg.dynamic_threshold_load,
            cfg.dynamic_threshold_factor,
            cfg.mobility_trigger_fraction,
            cfg.congestion_hops,
        ],
        dtype=np.float64,
    )


P_RSU_THR, P_UAV_THR, P_BATTERY_THR, P_DYN_LOAD, P_DYN_FACTOR, P_MOBILITY, P_HOPS = range(7)
_FAILOVER = int(Trigger.FAILOVER)


@njit(cache=True)
def dynamic_threshold(base: float, mean_rsu_load: float, load_level: float, factor: float):
    """Seed 000: an overload threshold drops to ``factor * base`` while the mean RSU load
    is above ``load_level`` (0.7; factor 0.9)."""
    return base * factor if mean_rsu_load > load_level else base


@njit(cache=True)
def overload_urgency(load: float, threshold: float) -> float:
    """Seed 000: ``(load - threshold) / (1 - threshold)`` above the threshold, else 0."""
    if load <= threshold:
        return 0.0
    return min(max((load - threshold) / max(1.0 - threshold, 1e-9), 0.0), 1.0)


@njit(cache=True)
def battery_urgency(battery: float, threshold: float) -> float:
    """UAV battery term: ``(threshold - battery) / threshold`` below the threshold, else 0
    (threshold 0 turns the trigger off)."""
    if threshold <= 0 or battery >= threshold:
        return 0.0
    return min(max((threshold - battery) / threshold, 0.0), 1.0)


@njit(cache=True)
def node_trigger(load, battery, is_uav, up, away, hops, mean_rsu_load, p):
    """Trigger code, urgency and overload threshold of one node: the trigger of highest
    urgency (ties in the order of :class:`Trigger`), FAILOVER with urgency 1 for a node
    believed down."""
    base = p[P_UAV_THR] if is_uav else p[P_RSU_THR]
    thr = dynamic_threshold(base, mean_rsu_load, p[P_DYN_LOAD], p[P_DYN_FACTOR])
    if not up:
        return _FAILOVER, 1.0, thr
    over = overload_urgency(load, thr)
    congestion = p[P_HOPS]
    best, urgency = 0, 0.0
    for k in range(5):  # RSU_OVERLOAD, UAV_BATTERY, UAV_OVERLOAD, MOBILITY, CONGESTION
        if k == 0:
            u = 0.0 if is_uav else over
        elif k == 1:
            u = battery_urgency(battery, p[P_BATTERY_THR]) if is_uav else 0.0
        elif k == 2:
            u = over if is_uav else 0.0
        elif k == 3:
            u = away if away >= p[P_MOBILITY] else 0.0
        else:
            u = 0.0
            if hops > congestion:
                u = min(max((hops - congestion) / max(congestion, 1.0), 0.0), 1.0)
        if u > urgency:
            best, urgency = k + 1, u
    return best, urgency, thr


@njit(cache=True)
def mean_rsu_load(load, is_uav):
    """Mean load over the RSUs of one environment (0 without RSUs)."""
    total, n_rsu = 0.0, 0
    for n in range(load.shape[0]):
        if not is_uav[n]:
            total += load[n]
            n_rsu += 1
    return total / max(n_rsu, 1)


@njit(cache=True)
def _analyse_kernel(load, battery, is_uav, view_up, away, hops, p, code, urgency, thr):
    B, N = load.shape
    for b in range(B):
        rsu_load = mean_rsu_load(load[b], is_uav)
        for n in range(N):
            code[b, n], urgency[b, n], thr[b, n] = node_trigger(
                load[b, n], battery[b, n], is_uav[n], view_up[b, n], away[b, n], hops[b, n],
                rsu_load, p,
            )  # fmt: skip


def analyse(
    load: np.ndarray,
    battery: np.ndarray,
    is_uav: np.ndarray,
    view_up: np.ndarray,
    away_fraction: np.ndarray,
    mean_hops: np.ndarray,
    cfg: MigrationConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trigger code, urgency and the current overload threshold for every node, (B, N).

    Args:
        load: slot load from heartbeats, (B, N).
        battery: battery fraction from heartbeats (1 for RSUs), (B, N).
        is_uav: (N,) bool.
        view_up: the controller's belief that the node is up, (B, N).
        away_fraction: share of the node's tasks whose vehicle is attached elsewhere.
        mean_hops: mean over hosted tasks of the hops from the vehicle's access node.
    """
    load = np.asarray(load, np.float64)
    shape = load.shape

    def full(a, dtype):
        return np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype), shape))

    code, urgency, thr = np.empty(shape, np.int8), np.empty(shape), np.empty(shape)
    _analyse_kernel(
        load, full(battery, np.float64), np.asarray(is_uav, np.bool_), full(view_up, np.bool_),
        full(away_fraction, np.float64), full(mean_hops, np.float64), trigger_params(cfg),
        code, urgency, thr,
    )  # fmt: skip
    return code, urgency, thr


@njit(cache=True)
def _node_triggers_kernel(
    task_state, task_host, task_vehicle, veh_access, veh_active, hops, view_load, view_battery,
    is_uav, view_up, p, code, urgency, thr, away_out, hops_out,
):  # fmt: skip
    B, T = task_state.shape
    N = view_load.shape[1]
    n_hosted = np.empty(N)
    for b in range(B):
        n_hosted[:] = 0.0
        away_out[b, :] = 0.0
        hops_out[b, :] = 0.0
        for t in range(T):  # mobility features of the running rows, by host
            if task_state[b, t] != RUNNING:
                continue
            host = task_host[b, t]
            v = task_vehicle[b, t]
            access = veh_access[b, v]
            attached = access >= 0 and veh_active[b, v]
            n_hosted[host] += 1.0
            if attached:
                hops_out[b, host] += hops[access, host]
            if not attached or access != host:
                away_out[b, host] += 1.0
        for n in range(N):
            away_out[b, n] /= max(n_hosted[n], 1.0)
            hops_out[b, n] /= max(n_hosted[n], 1.0)
        rsu_load = mean_rsu_load(view_load[b], is_uav)
        for n in range(N):
            code[b, n], urgency[b, n], thr[b, n] = node_trigger(
                view_load[b, n], view_battery[b, n], is_uav[n], view_up[b, n], away_out[b, n],
                hops_out[b, n], rsu_load, p,
            )  # fmt: skip


def node_triggers(world, layout, cfg) -> tuple[np.ndarray, ...]:
    """Seed 000 trigger code, urgency and threshold of each node from the controller's view,
    and the mobility features they use: the share of a node's running rows whose vehicle
    is attached elsewhere (or to nothing) and the mean hops from those vehicles' access
    nodes to it (0 for a detached vehicle). (B, N) each: code, urgency, threshold, away,
    mean hops."""
    w = world
    shape = w.view_load.shape
    code = np.empty(shape, np.int8)
    urgency, thr, away, hops = np.empty(shape), np.empty(shape), np.empty(shape), np.empty(shape)
    args = w.bound("node_triggers", (cfg, layout), lambda: (
        w.task_state, w.task_host, w.task_vehicle, w.veh_access, w.veh_active, layout.hops,
        w.view_load, w.view_battery, layout.is_uav, w.view_up, trigger_params(cfg.migration),
    ))  # fmt: skip
    _node_triggers_kernel(*args, code, urgency, thr, away, hops)
    return code, urgency, thr, away, hops
