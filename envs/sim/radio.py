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
power); it equals the dB form up to float rounding (MODEL.md section 4).

The power is :func:`power_law`, ``x ** -h = 2 ** (-h * log2(x))`` in double-double
arithmetic without a call into libm, so that LLVM vectorises the kernel's loop over a
node's vehicles (four pairs per AVX2 instruction):

* ``x = 2**k * m`` with ``m`` in [sqrt(1/2), sqrt(2)) from the bits of ``x``;
* ``ln(m) = 2 atanh(s)``, ``s = (m - 1) / (m + 1)`` (|s| <= 0.1716) held as ``s_hi + s_lo``:
  ``2 s + sum_{j=1..11} 2 s**(2j+1) / (2j+1)`` (truncation < 1e-19);
* ``y = h * (k + ln(m) * log2(e))`` as ``y_hi + y_lo`` (error-free products by FMA);
* ``2 ** -y = 2**n * 2**g``, ``n = round(-y_hi)``, ``g = -y_hi - n - y_lo`` (|g| <= 1/2),
  ``2**g = 1 + sum_{j=1..14} (g ln 2)**j / j!`` (truncation < 5e-18), ``2**n`` built from bits.

For ``1 <= x`` and ``h * log2(x) < 1000`` (any distance on a map) the relative error is
below 1.6e-16 (1.5 * 2**-53: the roundings of ``1 + (2**g - 1)`` and of its terms; the
rest adds < 0.1 ulp); the largest measured against a 130-bit reference over 10**5 draws
of ``x`` in [1, 1e12] and ``h`` in [0.75, 3] was 1.43 * 2**-53. It is within 1 ulp of
libm's ``x ** -h`` and equal to it for ~90% of inputs (tests/test_radio_mobility.py);
the access nodes of ``city`` and ``highway`` rollouts are those of ``**``. It is 3x as
fast as the libm call per pair, vectorised (no SVML here).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from . import parallel
from .config import RadioConfig
from .layout import Layout
from .parallel import CHUNKS, compile_both
from .world import World


def path_loss_db(distance_m: np.ndarray, ref_db: float, exponent: float) -> np.ndarray:
    """Log-distance path loss [dB] (the definition the kernel's power law equals)."""
    return ref_db + 10.0 * exponent * np.log10(np.maximum(distance_m, 1.0))


def dbm_to_mw(dbm: np.ndarray | float) -> np.ndarray:
    return np.power(10.0, np.asarray(dbm) / 10.0)


def shannon_rate_mbps(bandwidth_mhz: float, sinr_linear: np.ndarray) -> np.ndarray:
    return bandwidth_mhz * np.log2(1.0 + sinr_linear)


@intrinsic
def _bits(typingctx, x):
    """The IEEE bits of float64 ``x`` as uint64 (a bit cast, vectorisable)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, i):
    """The float64 whose IEEE bits are uint64 ``i``."""
    if i != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's fma: exact product, whatever the CPU)."""
    if not (a == b == c == types.float64):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float64(types.float64, types.float64, types.float64), codegen


@intrinsic
def _div(typingctx, a, b):
    """``a / b`` as IEEE division (no zero check: ``b`` is never 0 here)."""
    if not (a == b == types.float64):
        return None

    def codegen(context, builder, signature, args):
        return builder.fdiv(*args)

    return types.float64(types.float64, types.float64), codegen


_SQRT_HALF_BITS = np.uint64(0x3FE6A09E667F3BCD)  # bits of sqrt(1/2)
_EXP_MASK = np.uint64(0xFFF0000000000000)  # sign and exponent bits
_INT_BITS = np.uint64(0x4330000000000000)  # bits of 2**52: 2**52 + k for k < 2**52
_TWO52 = 4503599627370496.0  # 2**52
_ROUND = 6755399441055744.0  # 1.5 * 2**52: t + _ROUND - _ROUND rounds t to an integer
_LOG2E_HI, _LOG2E_LO = 1.4426950408889634, 2.0355273740931033e-17  # log2(e) = hi + lo
_BIAS = np.uint64(1023)


@njit(cache=True)
def power_law(x, h):
    """``x ** -h`` for ``x >= 1`` and ``h * log2(x) < 1000``, relative error < 1.6e-16,
    branch-free and without calls (module docstring: the method and its error)."""
    # x = 2**k * m, m in [sqrt(1/2), sqrt(2)), k >= 0
    bits = _bits(x)
    tmp = bits - _SQRT_HALF_BITS
    k = _from_bits((tmp >> np.uint64(52)) | _INT_BITS) - _TWO52
    m = _from_bits(bits - (tmp & _EXP_MASK))
    # s = (m - 1) / (m + 1) = s_hi + s_lo; m - 1 is exact, 1 + m = den + den_lo (Fast2Sum)
    num = m - 1.0
    den = 1.0 + m
    den_lo = m - (den - 1.0)
    inv = _div(1.0, den)  # den >= 1.7
    s_hi = num * inv
    s_lo = (_fma(-s_hi, den, num) - s_hi * den_lo) * inv
    # ln(m) = 2 s_hi + (2 s_lo + r), r = s z q(z), q = sum_j 2 z**(j-1) / (2j+1), j = 1..11,
    # z = s_hi**2; q by Estrin's scheme (short dependency chains: the loop is latency-bound)
    z = s_hi * s_hi
    z2 = z * z
    z4 = z2 * z2
    q03 = _fma(z2, _fma(2.0 / 9.0, z, 2.0 / 7.0), _fma(2.0 / 5.0, z, 2.0 / 3.0))
    q47 = _fma(z2, _fma(2.0 / 17.0, z, 2.0 / 15.0), _fma(2.0 / 13.0, z, 2.0 / 11.0))
    q810 = _fma(z2, 2.0 / 23.0, _fma(2.0 / 21.0, z, 2.0 / 19.0))
    q = _fma(z4 * z4, q810, _fma(z4, q47, q03))
    r = z * s_hi * q
    # log2(x) = k + ln(m) log2(e) = u_hi + u_lo
    t = 2.0 * s_hi
    a_hi = t * _LOG2E_HI
    a_lo = _fma(t, _LOG2E_HI, -a_hi) + (t * _LOG2E_LO + (2.0 * s_lo + r) * _LOG2E_HI)
    u_hi = k + a_hi  # Fast2Sum: k = 0 or |k| >= 1 > |a_hi|
    u_lo = (a_hi - (u_hi - k)) + a_lo
    # y = h log2(x) = y_hi + y_lo
    y_hi = h * u_hi
    y_lo = _fma(h, u_hi, -y_hi) + h * u_lo
    # 2**-y = 2**n 2**g, n = round(-y_hi), g = -y_hi - n - y_lo
    neg = max(-y_hi, -1000.0)  # beyond the valid range: about 2**-1000, never garbage bits
    rounded = neg + _ROUND
    n = rounded - _ROUND
    g = (neg - n) - y_lo
    # 2**g - 1 = sum_j (g ln 2)**j / j!, j = 1..14: g c_1 + g**2 e(g), e = sum_j c_j g**(j-2)
    # with c_j = ln(2)**j / j! rounded; e by Estrin's scheme
    g2 = g * g
    g4 = g2 * g2
    e03 = _fma(g2, _fma(0.0013333558146428443, g, 0.009618129107628477),
               _fma(0.05550410866482158, g, 0.24022650695910072))  # fmt: skip
    e47 = _fma(g2, _fma(1.01780860092397e-07, g, 1.321548679014431e-06),
               _fma(1.5252733804059841e-05, g, 0.0001540353039338161))  # fmt: skip
    e812 = _fma(g4, 6.778726354822545e-14,
                _fma(g2, _fma(1.3691488853904128e-12, g, 2.5678435993488206e-11),
                     _fma(4.4455382718708116e-10, g, 7.054911620801123e-09)))  # fmt: skip
    e = _fma(g4 * g4, e812, _fma(g4, e47, e03))
    two_g = 1.0 + _fma(g, 0.6931471805599453, g2 * e)
    scale = _from_bits((_bits(rounded) + _BIAS) << np.uint64(52))  # 2**n
    return two_g * scale


@njit(cache=True, inline="always")
def strongest_nodes(
    xs, ys, K, up, pos_xyz, coverage_m, gain_mw, half_exponent, total, signal, best
):  # fmt: skip
    """The access rule at points ``k < K`` (at height 0) among the nodes ``up`` (N,):
    ``total[k]`` the power received from every up node [mW], ``best[k]`` the up node in
    coverage (ground distance) of strongest received power (-1 if none; strict, so the
    lowest index wins a tie) and ``signal[k]`` its power (0 if none).

    Node by node (in index order), every point at once: the loop over the points has
    no branch and no call, so LLVM vectorises it; each point still sums its powers in
    node order, as a loop over its nodes would."""
    for k in range(K):
        total[k] = 0.0
        signal[k] = 0.0
        best[k] = -1
    for n in range(pos_xyz.shape[0]):
        if not up[n]:
            continue
        px, py, pz = pos_xyz[n, 0], pos_xyz[n, 1], pos_xyz[n, 2]
        cover2, gain = coverage_m[n] * coverage_m[n], gain_mw[n]
        for k in range(K):
            dx = xs[k] - px
            dy = ys[k] - py
            ground2 = dx * dx + dy * dy
            p_mw = gain * power_law(max(ground2 + pz * pz, 1.0), half_exponent)
            total[k] += p_mw
            stronger = (ground2 <= cover2) & (p_mw > signal[k])
            best[k] = n if stronger else best[k]
            signal[k] = p_mw if stronger else signal[k]


def _access_links(
    veh_x, veh_y, veh_active, node_up, pos_xyz, coverage_m, gain_mw, half_exponent,
    noise_mw, interference_factor, bandwidth_mhz, access_out, rate_out,
):  # fmt: skip
    """Fills ``access_out`` (B, V) and ``rate_out`` (B, V) in place (:func:`strongest_nodes`
    at every vehicle row; rows of inactive vehicles are computed and not used)."""
    B, V = veh_x.shape
    chunks = min(B, CHUNKS)
    for c in prange(chunks):  # scratch per chunk of the batch: the parallel variant shares none
        total, signal = np.empty(V), np.empty(V)
        best = np.empty(V, np.int64)
        for b in range(c * B // chunks, (c + 1) * B // chunks):
            strongest_nodes(
                veh_x[b], veh_y[b], V, node_up[b], pos_xyz, coverage_m, gain_mw, half_exponent,
                total, signal, best,
            )  # fmt: skip
            for v in range(V):
                access_out[b, v] = -1
                rate_out[b, v] = 0.0
                if veh_active[b, v] and best[v] >= 0:
                    interference = interference_factor * (total[v] - signal[v])
                    sinr = signal[v] / (noise_mw + interference)
                    access_out[b, v] = best[v]
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
