"""Counter-based random numbers: reproducible per environment, vectorised over rows.

Every random draw in the simulation is a pure function of
``(episode key, tick, stream, index)``: a SplitMix64-style hash of the four
turned into a uniform double in [0, 1). This gives the two properties the
batched design needs:

* an environment's draws depend on its own key alone, so a batch of 64
  environments and 64 single environments with the same keys produce
  identical trajectories, whatever the batch composition or autoreset timing;
* a whole column of draws (all vehicles, all tasks) costs a few NumPy
  operations, with no Python loop and no generator state to carry.

Indices name things the controller cannot influence (a vehicle's entry
number, a node), so every policy meets the same traffic on a seed.

The episode key itself comes from ``reset(seed)`` (Gymnasium's ``np_random``),
the one random source of an environment.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_C_TICK = np.uint64(0xD6E8FEB86659FD93)
_C_STREAM = np.uint64(0xA0761D6478BD642F)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV53 = 1.0 / float(1 << 53)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (a bijection on uint64 with good avalanche)."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def uniform(key: np.ndarray, tick: np.ndarray, stream: int, index: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) doubles, one per broadcast element of ``key, tick, index``.

    Args:
        key: uint64 episode keys, e.g. shape (B, 1) for a batch.
        tick: uint64 tick counters, broadcastable against ``key``.
        stream: a small integer naming the purpose of the draw (see STREAMS).
        index: uint64 row indices (vehicle, task or node), e.g. shape (1, X).
    """
    with np.errstate(over="ignore"):
        x = key + tick * _C_TICK + np.uint64(stream) * _C_STREAM
        x = mix64(x + _GOLDEN * (index + np.uint64(1)))
        x = mix64(x ^ key)
    return (x >> _S11).astype(np.float64) * _INV53


def key_from_seed(seed: int) -> np.uint64:
    """The episode key for an integer seed (a hash, so nearby seeds decorrelate)."""
    with np.errstate(over="ignore"):
        return mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]


def poisson_from_uniform(u: np.ndarray, mean: np.ndarray | float, k_max: int = 8) -> np.ndarray:
    """Poisson counts by inverting the CDF (exact up to ``k_max``; fine for small means)."""
    mean = np.asarray(mean, dtype=np.float64)
    pmf = np.exp(-mean) * np.ones_like(u)
    cdf = pmf.copy()
    count = np.zeros(u.shape, dtype=np.int64)
    for k in range(1, k_max + 1):
        count += u >= cdf
        pmf = pmf * mean / k
        cdf = cdf + pmf
    return count


class Stream:
    """Stream ids: one per purpose, so no two draws ever share a counter."""

    VEHICLE_ARRIVALS = 1
    VEHICLE_ENTRY_ROAD = 2
    VEHICLE_SPEED = 3
    VEHICLE_TURN = 4
    VEHICLE_INIT_POS = 5
    VEHICLE_INIT_DIR = 6
    VEHICLE_INIT_ROAD = 7
    VEHICLE_INIT_SPEED = 8
    VEHICLE_ENTRY_POS = 9
    VEHICLE_ENTRY_DIR = 17
    TASK_ARRIVALS = 10
    TASK_SERVICE = 11
    TASK_WORK = 12
    TASK_INPUT = 13
    TASK_STATE = 14
    TASK_DEADLINE = 15
    TASK_PRIORITY = 16
    NODE_FAILURE = 20
    NODE_REPAIR = 21
    UAV_BATTERY_INIT = 22
    MIGRATION_SUCCESS = 30
    SESSION_START = 40
    SESSION_SERVICE = 41
    SESSION_STATE = 42
    SESSION_PRIORITY = 43
    SESSION_DURATION = 44
    # highway mobility (map.kind = highway): its own streams, never shared with the grid's
    HIGHWAY_ENTRY_DIR = 50
    HIGHWAY_ENTRY_LANE = 51
    HIGHWAY_ENTRY_SPEED = 52
    HIGHWAY_INIT_POS = 53
    HIGHWAY_INIT_DIR = 54
    HIGHWAY_INIT_LANE = 55
    HIGHWAY_INIT_SPEED = 56
    # controller outages (seed 003: the leader fails, restarts, a new one is elected)
    CONTROLLER_FAILURE = 60
    CONTROLLER_REPAIR = 61
