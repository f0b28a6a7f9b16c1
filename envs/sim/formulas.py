"""Seed 000's migration formulas: one implementation per equation, for arrays and kernels.

Each equation of MODEL.md is written once, as a compiled function of plain numbers
(``*_at``, called per element by the simulator's Numba kernels). Its body uses only
arithmetic and ``np.minimum``/``np.maximum``, so the very same Python function also
evaluates whole arrays: the public functions below (taking a ``MigrationConfig``) call
it uncompiled (``.py_func``) on arrays, for the baselines, the oracle and the tests.
Every function is unit-tested on hand-computed values.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .config import MigrationConfig

ArrayLike = np.ndarray | float


def _f64(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


@njit(cache=True)
def target_score_at(load, distance_m, capacity_weight, distance_scale_m):
    return capacity_weight * (1.0 - load) + (1.0 - capacity_weight) / (
        1.0 + distance_m / distance_scale_m
    )


@njit(cache=True)
def task_priority_at(urgency, remaining_s):
    return 0.5 * urgency + 0.5 / np.maximum(1.0, remaining_s)


@njit(cache=True)
def transfer_time_at(state_mb, bandwidth_mbps):
    return state_mb * 8.0 / bandwidth_mbps


@njit(cache=True)
def migration_delay_at(total_state_mb, hops, parallel_factor, backhaul_mbps, hop_latency_ms):
    transfer = transfer_time_at(total_state_mb, backhaul_mbps)
    return parallel_factor * transfer + hops * hop_latency_ms / 1000.0


@njit(cache=True)
def migration_cost_at(total_state_mb, delay_s, state_mb_ref, backhaul_mbps, a_comp, a_tx, a_lat):
    comp = total_state_mb / state_mb_ref
    tx = transfer_time_at(total_state_mb, backhaul_mbps)
    return a_comp * comp + a_tx * tx + a_lat * delay_s


@njit(cache=True)
def success_probability_at(
    distance_m, target_load, urgency, base, distance_ref_m, distance_cap, load_w, urgency_w
):
    p = (
        base
        - np.minimum(distance_m / distance_ref_m, distance_cap)
        - load_w * target_load
        + urgency_w * urgency
    )
    return np.minimum(np.maximum(p, 0.0), 1.0)


def target_score(
    load: ArrayLike,
    distance_m: ArrayLike,
    capacity_weight: ArrayLike,
    distance_scale_m: float = 1000.0,
) -> np.ndarray:
    """``w_cap * (1 - load) + w_dist / (1 + d / 1000)``, with ``w_dist = 1 - w_cap``.

    Seed 000 uses ``w_cap = 0.7`` for RSU->RSU and ``0.8`` for UAV->RSU moves.
    """
    return target_score_at.py_func(
        _f64(load), _f64(distance_m), _f64(capacity_weight), distance_scale_m
    )


def task_priority(urgency: ArrayLike, remaining_s: ArrayLike) -> np.ndarray:
    """``0.5 * urgency + 0.5 / max(1, remaining_time)``: urgent, near-deadline first."""
    return task_priority_at.py_func(_f64(urgency), _f64(remaining_s))


def transfer_time_s(state_mb: ArrayLike, bandwidth_mbps: float) -> np.ndarray:
    """Time to push ``state_mb`` megabytes over the backhaul, ``8 * MB / Mbps`` [s]."""
    return transfer_time_at.py_func(_f64(state_mb), bandwidth_mbps)


def migration_delay_s(
    total_state_mb: ArrayLike, hops: ArrayLike, cfg: MigrationConfig, hop_latency_ms: float
) -> np.ndarray:
    """``parallel_factor * transfer(sum of state) + hops * hop_latency``.

    Seed 000 scales a per-task base delay by ``num_tasks * 0.5`` (parallel
    transfer); we keep the factor and take the base from the state actually
    moved, plus per-hop latency over the backhaul path.
    """
    return migration_delay_at.py_func(
        _f64(total_state_mb), np.asarray(hops), cfg.parallel_factor, cfg.backhaul_mbps,
        hop_latency_ms,
    )  # fmt: skip


def phase_durations_s(delay_s: ArrayLike, cfg: MigrationConfig):
    """Keep-before-break phases (prepare, sync, switch) = (70 %, 25 %, 5 %) of the delay.

    Only the switch phase interrupts service: it is the migration downtime.
    """
    delay_s = _f64(delay_s)
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
    return migration_cost_at.py_func(
        _f64(total_state_mb), np.asarray(delay_s), cfg.state_mb_ref, cfg.backhaul_mbps,
        cfg.alpha_comp, cfg.alpha_tx, cfg.alpha_lat,
    )  # fmt: skip


def success_probability(
    distance_m: ArrayLike, target_load: ArrayLike, urgency: ArrayLike, cfg: MigrationConfig
) -> np.ndarray:
    """``0.9 - min(d / 10000, 0.3) - 0.1 * target_load + 0.05 * urgency``, clipped to [0, 1]."""
    return success_probability_at.py_func(
        _f64(distance_m), _f64(target_load), _f64(urgency), cfg.success_base,
        cfg.success_distance_m, cfg.success_distance_cap, cfg.success_load_weight,
        cfg.success_urgency_weight,
    )  # fmt: skip


def ewma(current: ArrayLike, new: ArrayLike, alpha: float) -> np.ndarray:
    """``alpha * new + (1 - alpha) * current`` (seed 000's moving-average cost)."""
    return alpha * np.asarray(new, dtype=np.float64) + (1.0 - alpha) * np.asarray(current)
