"""Access links: log-distance path loss, SINR, Shannon rate and the access node.

For a vehicle at 3-D distance ``d`` from a node:

    PL(d)  = PL_ref + 10 * n * log10(max(d, 1 m))              [dB]
    P_rx   = P_tx - PL(d)                                        [dBm]
    SINR   = P_rx,a / (N0 + eta * sum_{m != a, up} P_rx,m)       [linear, mW]
    rate   = B * log2(1 + SINR)                                  [Mbps, B in MHz]

The access node ``a`` is the up node with the strongest received power among
those whose coverage radius (ground distance) contains the vehicle.

The compiled kernel evaluates the received power as the equivalent power law

    P_rx [mW] = 10^((P_tx - PL_ref) / 10) * max(d^2, 1 m^2)^(-n / 2)

(one power per vehicle-node pair instead of a square root, a logarithm and a
power); it equals the dB form up to float rounding (MODEL.md section 3).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import parallel
from .config import RadioConfig
from .layout import Layout
from .parallel import compile_both
from .world import World


def path_loss_db(distance_m: np.ndarray, ref_db: float, exponent: float) -> np.ndarray:
    """Log-distance path loss [dB] (the definition the kernel's power law equals)."""
    return ref_db + 10.0 * exponent * np.log10(np.maximum(distance_m, 1.0))


def dbm_to_mw(dbm: np.ndarray | float) -> np.ndarray:
    return np.power(10.0, np.asarray(dbm) / 10.0)


def shannon_rate_mbps(bandwidth_mhz: float, sinr_linear: np.ndarray) -> np.ndarray:
    return bandwidth_mhz * np.log2(1.0 + sinr_linear)


def _access_links(
    veh_x, veh_y, veh_active, node_up, pos_xyz, coverage_m, gain_mw, half_exponent,
    noise_mw, interference_factor, bandwidth_mhz, access_out, rate_out,
):  # fmt: skip
    """Fills ``access_out`` (B, V) and ``rate_out`` (B, V) in place."""
    B, V = veh_x.shape
    N = pos_xyz.shape[0]
    for b in prange(B):
        for v in range(V):
            access_out[b, v] = -1
            rate_out[b, v] = 0.0
            if not veh_active[b, v]:
                continue
            total_mw = 0.0
            signal_mw = 0.0
            best = -1
            for n in range(N):
                if not node_up[b, n]:
                    continue
                dx = veh_x[b, v] - pos_xyz[n, 0]
                dy = veh_y[b, v] - pos_xyz[n, 1]
                ground2 = dx * dx + dy * dy
                d2 = ground2 + pos_xyz[n, 2] * pos_xyz[n, 2]
                p_mw = gain_mw[n] * max(d2, 1.0) ** -half_exponent
                total_mw += p_mw
                if ground2 <= coverage_m[n] * coverage_m[n] and p_mw > signal_mw:
                    best = n  # strict: the lowest index wins a tie
                    signal_mw = p_mw
            if best >= 0:
                interference = interference_factor * (total_mw - signal_mw)
                sinr = signal_mw / (noise_mw + interference)
                access_out[b, v] = best
                rate_out[b, v] = bandwidth_mhz * math.log2(1.0 + sinr)


_access_links_kernel, _access_links_parallel = compile_both("access_links", _access_links)


def access_links(
    veh_x: np.ndarray,
    veh_y: np.ndarray,
    veh_active: np.ndarray,
    node_up: np.ndarray,
    layout: Layout,
    radio: RadioConfig,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Access node (B, V) (-1 when none in range) and its rate [Mbps] (0 when none),
    written into ``out`` (the world's ``veh_access, veh_rate_mbps``) when given."""
    if out is None:
        out = (np.empty(veh_x.shape, np.int64), np.empty(veh_x.shape, np.float64))
    _access_links_kernel(
        veh_x, veh_y, veh_active, node_up, *_radio_args(layout, radio), out[0], out[1]
    )
    return out


def _radio_args(layout: Layout, radio: RadioConfig) -> tuple:
    """The kernel's node and radio constants: positions, coverage, the power-law gain
    10^((P_tx - PL_ref) / 10) [mW], n / 2, noise [mW], interference share, bandwidth."""
    return (
        layout.pos_xyz,
        layout.coverage_m,
        dbm_to_mw(layout.tx_power_dbm - radio.pathloss_ref_db),
        radio.pathloss_exponent / 2.0,
        float(dbm_to_mw(radio.noise_dbm)),
        radio.interference_factor,
        radio.bandwidth_mhz,
    )


@njit(cache=True)
def _left_kernel(time_s, veh_active, veh_new, prev_access, veh_access, veh_left_s):
    """``veh_left_s[b, v, a] = now`` for every vehicle whose access node was ``a`` before
    this update and is another (or none) after it. A vehicle that entered since the last
    session draw (``veh_new``: a new vehicle, perhaps in a reused row) first forgets every
    earlier link. Recomputing unchanged links (a reset of other rows) records nothing."""
    B, V = veh_access.shape
    for b in range(B):
        for v in range(V):
            if veh_new[b, v]:
                veh_left_s[b, v, :] = -np.inf
                continue
            a = prev_access[b, v]
            if a >= 0 and veh_access[b, v] != a:
                veh_left_s[b, v, a] = time_s[b]


def update_access_links(world: World, layout: Layout, radio: RadioConfig) -> None:
    """Recompute every vehicle's access node and rate into the world's ``veh_access`` and
    ``veh_rate_mbps`` (at reset and in step 5 of every tick), with the serial or parallel
    variant :func:`parallel.run` chooses; then stamp each access link that ended in
    ``veh_left_s`` (controller-side: the controller sees the access links)."""
    w = world
    args = w.bound("access_links", (layout, radio), lambda: (
        w.veh_x, w.veh_y, w.veh_active, w.node_up, *_radio_args(layout, radio),
        w.veh_access, w.veh_rate_mbps,
    ))  # fmt: skip
    (prev,) = w.bound("access_links_prev", (), lambda: (np.empty_like(w.veh_access),))
    np.copyto(prev, w.veh_access)
    parallel.run(w, "access_links", w.batch_size, *args)
    _left_kernel(w.time_s, w.veh_active, w.veh_new, prev, w.veh_access, w.veh_left_s)
