"""Access links: log-distance path loss, SINR, Shannon rate and the access node.

For a vehicle at 3-D distance ``d`` from a node:

    PL(d)  = PL_ref + 10 * n * log10(max(d, 1 m))              [dB]
    P_rx   = P_tx - PL(d)                                        [dBm]
    SINR   = P_rx,a / (N0 + eta * sum_{m != a, up} P_rx,m)       [linear, mW]
    rate   = B * log2(1 + SINR)                                  [Mbps, B in MHz]

The access node ``a`` is the up node with the strongest received power among
those whose coverage radius (ground distance) contains the vehicle.
"""

from __future__ import annotations

import numpy as np

from .config import RadioConfig
from .layout import Layout


def path_loss_db(distance_m: np.ndarray, ref_db: float, exponent: float) -> np.ndarray:
    return ref_db + 10.0 * exponent * np.log10(np.maximum(distance_m, 1.0))


def dbm_to_mw(dbm: np.ndarray | float) -> np.ndarray:
    return np.power(10.0, np.asarray(dbm) / 10.0)


def shannon_rate_mbps(bandwidth_mhz: float, sinr_linear: np.ndarray) -> np.ndarray:
    return bandwidth_mhz * np.log2(1.0 + sinr_linear)


def access_links(
    veh_x: np.ndarray,
    veh_y: np.ndarray,
    veh_active: np.ndarray,
    node_up: np.ndarray,
    layout: Layout,
    radio: RadioConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Access node (B, V) (-1 when none in range) and its rate [Mbps] (0 when none)."""
    nx, ny, nz = layout.pos_xyz[:, 0], layout.pos_xyz[:, 1], layout.pos_xyz[:, 2]
    dx = veh_x[..., None] - nx  # (B, V, N)
    dy = veh_y[..., None] - ny
    ground2 = dx * dx + dy * dy
    dist = np.sqrt(ground2 + nz * nz)
    p_rx_dbm = layout.tx_power_dbm - path_loss_db(
        dist, radio.pathloss_ref_db, radio.pathloss_exponent
    )
    up = node_up[:, None, :]
    in_range = up & (ground2 <= layout.coverage_m**2) & veh_active[..., None]
    p_mw = dbm_to_mw(p_rx_dbm) * up
    score = np.where(in_range, p_rx_dbm, -np.inf)
    access = np.argmax(score, axis=-1)
    has = np.isfinite(np.take_along_axis(score, access[..., None], axis=-1)[..., 0])
    signal = np.take_along_axis(p_mw, access[..., None], axis=-1)[..., 0]
    interference = radio.interference_factor * (p_mw.sum(-1) - signal)
    sinr = signal / (dbm_to_mw(radio.noise_dbm) + interference)
    rate = np.where(has, shannon_rate_mbps(radio.bandwidth_mhz, sinr), 0.0)
    return np.where(has, access, -1), rate
