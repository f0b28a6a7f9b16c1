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

from .config import MigrationConfig


class Trigger(IntEnum):
    NONE = 0
    RSU_OVERLOAD = 1
    UAV_BATTERY = 2
    UAV_OVERLOAD = 3
    MOBILITY = 4
    CONGESTION = 5
    FAILOVER = 6  # the source was declared down: a failover, not a migration
    POLICY = 7  # the controller moved tasks with no trigger active


def dynamic_threshold(base: float, mean_rsu_load: np.ndarray, cfg: MigrationConfig) -> np.ndarray:
    """Seed 000: overload thresholds drop to ``factor * base`` while mean RSU load > 0.7."""
    mean_rsu_load = np.asarray(mean_rsu_load, dtype=np.float64)
    busy = mean_rsu_load > cfg.dynamic_threshold_load
    return np.where(busy, base * cfg.dynamic_threshold_factor, base)


def overload_urgency(load: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Seed 000: ``(load - threshold) / (1 - threshold)`` above the threshold, else 0."""
    load = np.asarray(load, dtype=np.float64)
    threshold = np.asarray(threshold, dtype=np.float64)
    span = np.maximum(1.0 - threshold, 1e-9)
    return np.where(load > threshold, np.clip((load - threshold) / span, 0.0, 1.0), 0.0)


def battery_urgency(battery: np.ndarray, threshold: float) -> np.ndarray:
    """UAV battery term: ``(threshold - battery) / threshold`` below the threshold, else 0."""
    battery = np.asarray(battery, dtype=np.float64)
    if threshold <= 0:
        return np.zeros_like(battery)
    return np.where(battery < threshold, np.clip((threshold - battery) / threshold, 0, 1), 0.0)


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
    rsu = ~is_uav
    n_rsu = max(int(rsu.sum()), 1)
    mean_rsu_load = (load * rsu).sum(-1, keepdims=True) / n_rsu
    thr = np.where(
        is_uav,
        dynamic_threshold(cfg.uav_overload_threshold, mean_rsu_load, cfg),
        dynamic_threshold(cfg.rsu_overload_threshold, mean_rsu_load, cfg),
    )
    over = overload_urgency(load, thr)
    candidates = np.stack(
        [
            np.where(rsu, over, 0.0),
            np.where(is_uav, battery_urgency(battery, cfg.battery_threshold), 0.0),
            np.where(is_uav, over, 0.0),
            np.where(away_fraction >= cfg.mobility_trigger_fraction, away_fraction, 0.0),
            np.where(
                mean_hops > cfg.congestion_hops,
                np.clip((mean_hops - cfg.congestion_hops) / max(cfg.congestion_hops, 1.0), 0, 1),
                0.0,
            ),
        ],
        axis=-1,
    )
    best = np.argmax(candidates, axis=-1)
    urgency = np.take_along_axis(candidates, best[..., None], axis=-1)[..., 0]
    code = np.where(urgency > 0, best + 1, Trigger.NONE)
    code = np.where(view_up, code, Trigger.FAILOVER)
    urgency = np.where(view_up, urgency, 1.0)
    return code.astype(np.int8), urgency, thr
