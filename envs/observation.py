"""Observations built from the controller's view, for a whole batch at once.

Every feature is normalised to [0, 1]. The flat vector (``obs_mode="flat"``)
is the per-node matrix flattened row by row, followed by the global
features; the dict (``obs_mode="dict"``) keeps the matrix, a node mask, the
pairwise distance matrix and the globals apart, for set/graph encoders.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .sim.config import ScenarioConfig
from .sim.triggers import mean_rsu_load
from .sim.view import ControllerView
from .sim.world import ORPHANED, QUEUED, RUNNING

NODE_FEATURES = (
    "up",  # believed up (heartbeats)
    "load",  # slot load from the last heartbeat
    "reserved",  # slots reserved for incoming migrations / max_jobs
    "battery",  # battery fraction (1 for RSUs)
    "is_uav",
    "cooldown",  # migration cooldown left / cooldown_s
    "migrating",  # an active migration leaves this node
    "orphans",  # orphaned tasks of this node / max_jobs (clipped)
    "away",  # share of hosted tasks whose vehicle is attached elsewhere
    "hops",  # mean hops from those vehicles' access nodes / max hops
    "urgency",  # seed 000 trigger urgency
    "slack_min",  # least time to deadline among hosted tasks / deadline_s_max
    "slack_mean",  # mean time to deadline among hosted tasks / deadline_s_max
    "heartbeat_age",  # time since the last heartbeat / detection delay
    "recent_failure",  # exp(-time since last detected failure / failure_cooldown_s)
    "attached",  # vehicles attached to this node / max_jobs (clipped)
    "cpu",  # CPU capacity / the largest in the scenario
)
GLOBAL_FEATURES = (
    "time",  # tick / horizon
    "mean_rsu_load",
    "queued",  # queued tasks / total slots (clipped)
    "orphans",  # orphaned tasks / total slots (clipped)
    "vehicles",  # vehicles on the map / max_vehicles
    "controller_up",  # 1 while the controller is the elected leader (seed 003), else 0
)


def n_node_features(cfg: ScenarioConfig) -> int:
    return len(NODE_FEATURES) + cfg.tasks.n_services


def flat_size(cfg: ScenarioConfig) -> int:
    return cfg.n_nodes * n_node_features(cfg) + len(GLOBAL_FEATURES)


@njit(cache=True)
def _clip01(x):
    return min(max(x, 0.0), 1.0)


@njit(cache=True)
def _node_kernel(
    up, load, slots_reserved, battery, is_uav, cooldown_left_s, migrating, task_state,
    task_host, task_origin, task_remaining_s, away, mean_hops, urgency, heartbeat_age_s,
    since_failure_s, attached, cpu_hz, capability, max_jobs, cooldown_s, max_hops, detect_s,
    failure_cooldown_s, deadline_max_s, out,
):  # fmt: skip
    B, N = up.shape
    T = task_state.shape[1]
    S = capability.shape[1]
    F0 = out.shape[2] - S
    n_hosted, slack_sum = np.empty(N), np.empty(N)
    slack_min, n_orphans = np.empty(N), np.empty(N)
    cpu_max = cpu_hz.max()
    for b in range(B):
        n_hosted[:] = 0.0
        slack_sum[:] = 0.0
        slack_min[:] = 1.0
        n_orphans[:] = 0.0
        for t in range(T):
            state = task_state[b, t]
            if state == RUNNING:
                h = task_host[b, t]
                slack = _clip01(task_remaining_s[b, t] / deadline_max_s)
                n_hosted[h] += 1.0
                slack_sum[h] += slack
                slack_min[h] = min(slack_min[h], slack)
            elif state == ORPHANED:
                n_orphans[max(task_origin[b, t], 0)] += 1.0
        for n in range(N):
            jobs = float(max_jobs[n])
            f = out[b, n]
            f[0] = 1.0 if up[b, n] else 0.0
            f[1] = _clip01(load[b, n])
            f[2] = _clip01(slots_reserved[b, n] / jobs)
            f[3] = _clip01(battery[b, n])
            f[4] = 1.0 if is_uav[n] else 0.0
            f[5] = _clip01(cooldown_left_s[b, n] / cooldown_s)
            f[6] = 1.0 if migrating[b, n] else 0.0
            f[7] = _clip01(n_orphans[n] / jobs)
            f[8] = _clip01(away[b, n])
            f[9] = _clip01(mean_hops[b, n] / max_hops)
            f[10] = _clip01(urgency[b, n])
            f[11] = _clip01(slack_min[n])
            f[12] = _clip01(slack_sum[n] / n_hosted[n] if n_hosted[n] > 0 else 1.0)
            f[13] = _clip01(heartbeat_age_s[b, n] / detect_s)
            f[14] = _clip01(math.exp(-since_failure_s[b, n] / failure_cooldown_s))
            f[15] = _clip01(attached[b, n] / jobs)
            f[16] = _clip01(cpu_hz[n] / cpu_max)
            for k in range(S):
                f[F0 + k] = 1.0 if capability[n, k] else 0.0


def node_matrix(view: ControllerView, cfg: ScenarioConfig, tick: np.ndarray) -> np.ndarray:
    """(B, N, F) float32 node features (NODE_FEATURES, then one capability column per
    service), each computed in double precision, clipped to [0, 1], stored as float32."""
    lay, v = view.layout, view
    B, N = view.up.shape
    out = np.empty((B, N, n_node_features(cfg)), np.float32)
    _node_kernel(
        v.up, v.load, v.slots_reserved, v.battery, lay.is_uav, v.cooldown_left_s, v.migrating,
        v.task_state, v.task_host, v.task_origin, v.task_remaining_s, v.away_fraction,
        v.mean_hops, v.urgency, v.heartbeat_age_s, v.since_failure_s, v.attached_vehicles,
        lay.cpu_hz, lay.capability, lay.max_jobs, max(cfg.migration.cooldown_s, 1e-9),
        max(float(lay.hops.max()), 1.0),
        float(cfg.faults.heartbeat_misses * cfg.faults.heartbeat_interval_s),
        max(cfg.faults.failure_cooldown_s, 1e-9), float(cfg.tasks.deadline_s_max), out,
    )  # fmt: skip
    return out


@njit(cache=True)
def _globals_kernel(
    tick, horizon, load, is_uav, task_state, total_slots, vehicles_active, max_vehicles,
    controller_up, out,
):  # fmt: skip
    for b in range(out.shape[0]):
        queued = orphaned = 0
        for t in range(task_state.shape[1]):
            queued += task_state[b, t] == QUEUED
            orphaned += task_state[b, t] == ORPHANED
        out[b, 0] = _clip01(tick[b] / horizon)
        out[b, 1] = _clip01(mean_rsu_load(load[b], is_uav))
        out[b, 2] = _clip01(queued / total_slots)
        out[b, 3] = _clip01(orphaned / total_slots)
        out[b, 4] = _clip01(vehicles_active[b] / max_vehicles)
        out[b, 5] = 1.0 if controller_up[b] else 0.0


def global_vector(
    view: ControllerView, cfg: ScenarioConfig, tick: np.ndarray, vehicles_active: np.ndarray
) -> np.ndarray:
    """(B, G) float32 global features (GLOBAL_FEATURES), each clipped to [0, 1]."""
    lay = view.layout
    out = np.empty((view.up.shape[0], len(GLOBAL_FEATURES)), np.float32)
    _globals_kernel(
        np.asarray(tick, np.float64), float(cfg.horizon), view.load, lay.is_uav,
        view.task_state, float(lay.max_jobs.sum()), np.asarray(vehicles_active, np.float64),
        float(cfg.vehicles.max_vehicles), view.controller_up, out,
    )  # fmt: skip
    return out


def distance_matrix(view: ControllerView) -> np.ndarray:
    """(N, N) node distances divided by the largest, float32."""
    d = view.layout.distance_m
    return (d / max(float(d.max()), 1e-9)).astype(np.float32)
