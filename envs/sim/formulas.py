"""Seed 000's migration formulas, as pure vectorised functions.

Each function is the single implementation of one equation of MODEL.md, used
by the simulator and by the baselines alike, and unit-tested on
hand-computed values.
"""

from __future__ import annotations

import numpy as np

from .config import MigrationConfig

ArrayLike = np.ndarray | float


def target_score(
    load: ArrayLike,
    distance_m: ArrayLike,
    capacity_weight: ArrayLike,
    distance_scale_m: float = 1000.0,
) -> np.ndarray:
    """``w_cap * (1 - load) + w_dist / (1 + d / 1000)``, with ``w_dist = 1 - w_cap``.

    Seed 000 uses ``w_cap = 0.7`` for RSU->RSU and ``0.8`` for UAV->RSU moves.
    """
    w = np.asarray(capacity_weight, dtype=np.float64)
    load = np.asarray(load, dtype=np.float64)
    distance_m = np.asarray(distance_m, dtype=np.float64)
    return w * (1.0 - load) + (1.0 - w) / (1.0 + distance_m / distance_scale_m)


def task_priority(urgency: ArrayLike, remaining_s: ArrayLike) -> np.ndarray:
    """``0.5 * urgency + 0.5 / max(1, remaining_time)``: urgent, near-deadline first."""
    urgency = np.asarray(urgency, dtype=np.float64)
    remaining_s = np.asarray(remaining_s, dtype=np.float64)
    return 0.5 * urgency + 0.5 / np.maximum(1.0, remaining_s)


def transfer_time_s(state_mb: ArrayLike, bandwidth_mbps: float) -> np.ndarray:
    """Time to push ``state_mb`` megabytes over the backhaul, ``8 * MB / Mbps`` [s]."""
    return np.asarray(state_mb, dtype=np.float64) * 8.0 / bandwidth_mbps


def migration_delay_s(
    total_state_mb: ArrayLike, hops: ArrayLike, cfg: MigrationConfig, hop_latency_ms: float
) -> np.ndarray:
    """``parallel_factor * transfer(sum of state) + hops * hop_latency``.

    Seed 000 scales a per-task base delay by ``num_tasks * 0.5`` (parallel
    transfer); we keep the factor and take the base from the state actually
    moved, plus per-hop latency over the backhaul path.
    """
    transfer = transfer_time_s(total_state_mb, cfg.backhaul_mbps)
    return cfg.parallel_factor * transfer + np.asarray(hops) * hop_latency_ms / 1000.0


def phase_durations_s(delay_s: ArrayLike, cfg: MigrationConfig):
    """Keep-before-break phases (prepare, sync, switch) = (70 %, 25 %, 5 %) of the delay.

    Only the switch phase interrupts service: it is the migration downtime.
    """
    delay_s = np.asarray(delay_s, dtype=np.float64)
    return (
        cfg.prepare_fraction * delay_s,
        cfg.sync_fraction * delay_s,
        cfg.switch_fraction * delay_s,
    )


def migration_cost(
    total_state_mb: ArrayLike, delay_s: ArrayLike, cfg: MigrationConfig
) -> np.ndarray:
    """``alpha_comp * computation + alpha_tx * transmission + alpha_lat * latency``.

    computation = state moved / ``state_mb_ref`` (serialise + restore work),
    transmission = backhaul occupancy ``8 * MB / Mbps`` [s], latency = the delay [s].
    """
    comp = np.asarray(total_state_mb, dtype=np.float64) / cfg.state_mb_ref
    tx = transfer_time_s(total_state_mb, cfg.backhaul_mbps)
    return cfg.alpha_comp * comp + cfg.alpha_tx * tx + cfg.alpha_lat * np.asarray(delay_s)


def success_probability(
    distance_m: ArrayLike, target_load: ArrayLike, urgency: ArrayLike, cfg: MigrationConfig
) -> np.ndarray:
    """``0.9 - min(d / 10000, 0.3) - 0.1 * target_load + 0.05 * urgency``, clipped to [0, 1]."""
    d = np.asarray(distance_m, dtype=np.float64)
    p = (
        cfg.success_base
        - np.minimum(d / cfg.success_distance_m, cfg.success_distance_cap)
        - cfg.success_load_weight * np.asarray(target_load, dtype=np.float64)
        + cfg.success_urgency_weight * np.asarray(urgency, dtype=np.float64)
    )
    return np.clip(p, 0.0, 1.0)


def ewma(current: ArrayLike, new: ArrayLike, alpha: float) -> np.ndarray:
    """``alpha * new + (1 - alpha) * current`` (seed 000's moving-average cost)."""
    return alpha * np.asarray(new, dtype=np.float64) + (1.0 - alpha) * np.asarray(current)
