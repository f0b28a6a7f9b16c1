"""Processor sharing, per-tick service latency, completions and deadline misses.

A node of capacity ``f`` [cycles/s] hosting ``k`` tasks gives each ``f / k``.
A running task on a live host progresses ``(f / k) * t_eff`` cycles per tick,
where ``t_eff`` is the part of the tick after its ready time (input upload,
failover restart) minus migration switch downtime.

Per-tick latency of a running task (what its vehicle experiences):

    radio    = 8 * request_mb / rate_access            (vehicle <-> access node)
    backhaul = hops(access node, host) * (hop_latency + 8 * request_mb / backhaul_rate)
    compute  = request_cycles / (f / k)
    latency  = radio + backhaul + compute              (out of coverage: radio +
                                                        backhaul = out_of_coverage_ms)

A session whose vehicle has left the map is charged nothing (it ends this
tick); nothing the controller does could change that latency.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .config import ScenarioConfig
from .layout import Layout
from .world import KIND_SESSION, KIND_TASK, ORPHANED, RUNNING, World


def per_hop_ms(cfg: ScenarioConfig) -> float:
    """Backhaul latency of one hop for a request: propagation/switching plus
    store-and-forward of ``request_mb`` at the backhaul rate [ms]."""
    return (
        cfg.radio.hop_latency_ms + 1000.0 * 8.0 * cfg.radio.request_mb / cfg.migration.backhaul_mbps
    )


def session_requests_per_tick(cfg: ScenarioConfig) -> float:
    """Requests a session sends in a tick, each charged its latency:
    ``sessions.request_rate_hz * dt_s`` (a task row sends one)."""
    return cfg.sessions.request_rate_hz * cfg.dt_s


def requests_per_tick(kind: np.ndarray, cfg: ScenarioConfig) -> np.ndarray:
    """Requests each row sends in a tick: one for a task,
    :func:`session_requests_per_tick` for a session. Same shape as ``kind``."""
    return np.where(kind == KIND_SESSION, session_requests_per_tick(cfg), 1.0)


@njit(cache=True)
def _progress_kernel(
    time_s, task_state, task_kind, task_host, task_vehicle, task_ready_s, task_done,
    task_latency_ms, node_up, slots_used, veh_active, veh_access, veh_rate_mbps, cpu_hz, hops,
    blocked_s, dt_s, radio_ms_mbps, hop_ms, out_of_coverage_ms, compute_ms_hz,
    serving_out, charged_out, latency_out,
):  # fmt: skip
    B, T = task_state.shape
    N = cpu_hz.shape[0]
    share = np.empty(N)  # CPU share per hosted task [cycles/s]
    for b in range(B):
        for n in range(N):
            share[n] = cpu_hz[n] / max(slots_used[b, n], 1)
        t0 = time_s[b]
        for t in range(T):
            host = max(task_host[b, t], 0)
            serving = task_state[b, t] == RUNNING and node_up[b, host]
            v = task_vehicle[b, t]
            # a session whose vehicle has left is charged nothing (it ends this tick)
            charged = serving and (task_kind[b, t] == KIND_TASK or veh_active[b, v])
            latency = 0.0
            if serving:
                # the part of the tick after the ready time, minus switch downtime
                t_eff = min(max(t0 + dt_s - max(t0, task_ready_s[b, t]), 0.0), dt_s)
                t_eff = max(t_eff - blocked_s[b, t], 0.0)
                task_done[b, t] += share[host] * t_eff
            if charged:
                access = veh_access[b, v]
                if access >= 0 and veh_active[b, v]:
                    radio_ms = radio_ms_mbps / max(veh_rate_mbps[b, v], 1e-9)
                    network_ms = radio_ms + hops[access, host] * hop_ms
                else:
                    network_ms = out_of_coverage_ms
                latency = network_ms + compute_ms_hz / share[host]
            serving_out[b, t] = serving
            charged_out[b, t] = charged
            latency_out[b, t] = latency
            task_latency_ms[b, t] = latency


def progress_constants(cfg: ScenarioConfig) -> tuple:
    """The progress kernel's per-request constants: radio kbit per Mbps (ms), per-hop
    latency [ms], out-of-coverage latency [ms], compute cycles per ms of 1 Hz."""
    r = cfg.radio
    return (
        1000.0 * 8.0 * r.request_mb, float(per_hop_ms(cfg)), float(r.out_of_coverage_ms),
        1000.0 * r.compute_request_gcycles * 1e9,
    )  # fmt: skip


def energy_constants(cfg: ScenarioConfig) -> tuple:
    """The energy kernel's UAV powers: hover and full-load compute [W]."""
    return float(cfg.uav.hover_power_w), float(cfg.uav.compute_power_w)


def progress(world: World, layout: Layout, cfg: ScenarioConfig, blocked_s: np.ndarray):
    """Advance running tasks on live hosts.

    Returns (serving, charged, latency_ms), (B, T) each: ``serving`` rows run on
    a live host; ``charged`` are the serving rows whose latency counts (not a
    session whose vehicle has left); ``latency_ms`` is 0 outside ``charged``.
    """
    w = world
    shape = w.task_state.shape
    serving, charged = np.empty(shape, bool), np.empty(shape, bool)
    latency = np.empty(shape, np.float64)
    args = w.bound("progress", (cfg, layout), lambda: (
        w.time_s, w.task_state, w.task_kind, w.task_host, w.task_vehicle, w.task_ready_s,
        w.task_done, w.task_latency_ms, w.node_up, w.slots_used, w.veh_active, w.veh_access,
        w.veh_rate_mbps, layout.cpu_hz, layout.hops,
    ))  # fmt: skip
    consts = w.bound("progress_constants", (cfg,), lambda: progress_constants(cfg))
    _progress_kernel(*args, blocked_s, float(cfg.dt_s), *consts, serving, charged, latency)
    return serving, charged, latency


@njit(cache=True)
def _energy_kernel(slots_used, node_up, max_jobs, is_uav, hover_w, compute_w, dt_s, out):
    B, N = out.shape
    for b in range(B):
        for n in range(N):
            out[b, n] = 0.0
            if is_uav[n] and node_up[b, n]:
                util = slots_used[b, n] / max_jobs[n]
                out[b, n] = (hover_w + compute_w * util) * dt_s


def uav_energy_j(world: World, layout: Layout, cfg: ScenarioConfig) -> np.ndarray:
    """Energy drawn by each live UAV this tick: (hover + compute * utilisation) * dt [J]."""
    out, w = np.empty(world.node_up.shape), world
    args = w.bound("uav_energy", (cfg, layout), lambda: (
        w.slots_used, w.node_up, layout.max_jobs, layout.is_uav, *energy_constants(cfg),
        float(cfg.dt_s),
    ))  # fmt: skip
    _energy_kernel(*args, out)
    return out


@njit(cache=True)
def _stalled_kernel(task_state, serving, blocked_s, dt_s, out):
    for b in range(out.shape[0]):
        stalled, blocked = 0, 0.0
        for t in range(task_state.shape[1]):
            state = task_state[b, t]
            stalled += (state == RUNNING and not serving[b, t]) or state == ORPHANED
            blocked += blocked_s[b, t]
        out[b] = stalled * dt_s + blocked


def downtime_s(world: World, serving: np.ndarray, blocked_s: np.ndarray, dt_s: float):
    """Service-seconds lost this tick, (B,): a tick per row that is orphaned or running on
    a dead host, plus each row's switch downtime."""
    out = np.empty(world.task_state.shape[0])
    _stalled_kernel(world.task_state, serving, blocked_s, float(dt_s), out)
    return out
