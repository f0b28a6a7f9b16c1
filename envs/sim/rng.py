"""Counter-based random numbers: reproducible per environment, vectorised over rows.

Every random draw in the simulation is a pure function of
``(episode key, tick, stream, index)``: a SplitMix64-style hash of the four
turned into a uniform double in [0, 1). This gives the two properties the
batched design needs:

* an environment's draws depend on its own key alone, so a batch of 64
  environments and 64 single environments with the same keys produce
  identical trajectories, whatever the batch composition or autoreset timing;
* a draw costs a few integer operations wherever a kernel needs it (``uniform_at``),
  with no generator state to carry.

Indices name things the controller cannot influence (a vehicle's entry
number, a node), so every policy meets the same traffic on a seed.

The episode key itself comes from ``reset(seed)`` (Gymnasium's ``np_random``),
the one random source of an environment.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_C_TICK = np.uint64(0xD6E8FEB86659FD93)
_C_STREAM = np.uint64(0xA0761D6478BD642F)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_ONE = np.uint64(1)
_INV53 = 1.0 / float(1 << 53)


@njit(cache=True)
def mix64(x: np.uint64) -> np.uint64:
    """SplitMix64 finaliser (a bijection on uint64 with good avalanche)."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@njit(cache=True)
def uniform_at(key: np.uint64, tick: np.uint64, stream: np.uint64, index: np.uint64) -> float:
    """One uniform [0, 1) double for ``(key, tick, stream, index)`` (all uint64): the
    function compiled kernels call; :func:`uniform` is its broadcasting form."""
    x = key + tick * _C_TICK + stream * _C_STREAM
    x = mix64(x + _GOLDEN * (index + _ONE))
    x = mix64(x ^ key)
    return float(x >> _S11) * _INV53


@njit(cache=True)
def _uniform_kernel(key, tick, stream, index, out):
    for i in range(out.size):
        out.flat[i] = uniform_at(key.flat[i], tick.flat[i], stream, index.flat[i])


def uniform(key: np.ndarray, tick: np.ndarray, stream: int, index: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) doubles, one per broadcast element of ``key, tick, index``.

    Args:
        key: uint64 episode keys, e.g. shape (B, 1) for a batch.
        tick: uint64 tick counters, broadcastable against ``key``.
        stream: a small integer naming the purpose of the draw (see STREAMS).
        index: uint64 row indices (vehicle, task or node), e.g. shape (1, X).
    """
    key, tick, index = (np.asarray(a, np.uint64) for a in (key, tick, index))
    shape = np.broadcast_shapes(key.shape, tick.shape, index.shape)
    key, tick, index = (np.broadcast_to(a, shape) for a in (key, tick, index))
    out = np.empty(shape, np.float64)
    _uniform_kernel(key, tick, np.uint64(stream), index, out)
    return out


def key_from_seed(seed: int) -> np.uint64:
    """The episode key for an integer seed (a hash, so nearby seeds decorrelate)."""
    return np.uint64(mix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF)))


def poisson_cap(mean: float) -> int:
    """A count cap for a Poisson mean: ``P(count > cap) < 1e-12`` for every mean."""
    return int(math.ceil(mean + 10.0 * math.sqrt(mean))) + 16


@njit(cache=True)
def poisson_at(u: float, mean: float, k_max: int) -> int:
    """A Poisson count by inverting the CDF: the least ``k`` with ``u < F(k)``, capped at
    ``k_max``. The pmf is built by ``p(k) = p(k - 1) * mean / k`` from ``p(0) = e^-mean``;
    above ``mean = 700`` (where ``e^-mean`` is near the smallest double) each term is
    taken from its logarithm instead, so large means are not stuck at the cap."""
    if mean > 700.0:
        log_pmf = -mean
        cdf = math.exp(log_pmf)
        log_mean = math.log(mean)
        for k in range(1, k_max + 1):
            if u < cdf:
                return k - 1
            log_pmf += log_mean - math.log(k)
            cdf += math.exp(log_pmf)
        return k_max
    pmf = math.exp(-mean)
    cdf = pmf
    for k in range(1, k_max + 1):
        if u < cdf:
            return k - 1
        pmf = pmf * mean / k
        cdf = cdf + pmf
    return k_max


@njit(cache=True)
def _poisson_kernel(u, mean, k_max, out):
    for i in range(out.size):
        out.flat[i] = poisson_at(u.flat[i], mean.flat[i], k_max)


def poisson_from_uniform(
    u: np.ndarray, mean: np.ndarray | float, k_max: int | None = None
) -> np.ndarray:
    """Poisson counts, one per broadcast element of ``u`` and ``mean``, by CDF inversion
    (:func:`poisson_at`); ``k_max`` defaults to :func:`poisson_cap` of the largest mean."""
    mean = np.asarray(mean, dtype=np.float64)
    if k_max is None:
        k_max = poisson_cap(float(mean.max(initial=0.0)))
    u = np.asarray(u, np.float64)
    shape = np.broadcast_shapes(u.shape, mean.shape)
    u, mean = np.broadcast_to(u, shape), np.broadcast_to(mean, shape)
    out = np.empty(shape, np.int64)
    _poisson_kernel(u, mean, int(k_max), out)
    return out


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
    # trace mobility (map.kind = trace): the window of the trace an episode plays
    TRACE_WINDOW = 70
