"""Observations built from the controller's view, for a whole batch at once.

Every feature is normalised to [0, 1]. The flat vector (``obs_mode="flat"``)
is the per-node matrix flattened row by row, followed by the global
features; the dict (``obs_mode="dict"``) keeps the matrix, a node mask, the
pairwise distance matrix and the globals apart, for set/graph encoders.
"""

from __future__ import annotations

import numpy as np

from .sim.config import ScenarioConfig
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


def node_matrix(view: ControllerView, cfg: ScenarioConfig, tick: np.ndarray) -> np.ndarray:
    """(B, N, F) float32 node features; the last ``n_services`` columns are capabilities."""
    lay = view.layout
    B, N = view.up.shape
    max_jobs = lay.max_jobs.astype(np.float64)
    running = view.task_state == RUNNING
    host = np.where(running, view.task_host, 0)
    slack = np.clip(view.task_remaining_s / cfg.tasks.deadline_s_max, 0.0, 1.0)
    idx = (np.arange(B)[:, None] * N + host)[running]
    n_hosted = np.bincount(idx, minlength=B * N).reshape(B, N)
    slack_sum = np.bincount(idx, weights=slack[running], minlength=B * N).reshape(B, N)
    slack_min = np.ones(B * N)
    np.minimum.at(slack_min, idx, slack[running])
    orphan = view.task_state == ORPHANED
    oidx = (np.arange(B)[:, None] * N + np.maximum(view.task_origin, 0))[orphan]
    n_orphans = np.bincount(oidx, minlength=B * N).reshape(B, N)
    detect = cfg.faults.heartbeat_misses * cfg.faults.heartbeat_interval_s
    max_hops = max(float(lay.hops.max()), 1.0)
    cols = [
        view.up,
        view.load,
        view.slots_reserved / max_jobs,
        view.battery,
        np.broadcast_to(lay.is_uav, (B, N)),
        view.cooldown_left_s / max(cfg.migration.cooldown_s, 1e-9),
        view.migrating,
        n_orphans / max_jobs,
        view.away_fraction,
        view.mean_hops / max_hops,
        view.urgency,
        slack_min.reshape(B, N),
        np.where(n_hosted > 0, slack_sum / np.maximum(n_hosted, 1), 1.0),
        view.heartbeat_age_s / detect,
        np.exp(-view.since_failure_s / max(cfg.faults.failure_cooldown_s, 1e-9)),
        view.attached_vehicles / max_jobs,
        np.broadcast_to(lay.cpu_hz / lay.cpu_hz.max(), (B, N)),
    ]
    feats = np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=-1)
    cap = np.broadcast_to(lay.capability, (B, N, lay.capability.shape[1]))
    out = np.concatenate([feats, cap], axis=-1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def global_vector(
    view: ControllerView, cfg: ScenarioConfig, tick: np.ndarray, vehicles_active: np.ndarray
) -> np.ndarray:
    """(B, G) float32 global features."""
    lay = view.layout
    rsu = ~lay.is_uav
    total_slots = float(lay.max_jobs.sum())
    cols = [
        tick / cfg.horizon,
        (view.load * rsu).sum(1) / max(int(rsu.sum()), 1),
        (view.task_state == QUEUED).sum(1) / total_slots,
        (view.task_state == ORPHANED).sum(1) / total_slots,
        vehicles_active / cfg.vehicles.max_vehicles,
        view.controller_up,
    ]
    out = np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=-1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def distance_matrix(view: ControllerView) -> np.ndarray:
    """(N, N) node distances divided by the largest, float32."""
    d = view.layout.distance_m
    return (d / max(float(d.max()), 1e-9)).astype(np.float32)
