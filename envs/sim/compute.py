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

from .arrays import gather
from .config import ScenarioConfig
from .layout import Layout
from .world import KIND_SESSION, KIND_TASK, RUNNING, World


def per_hop_ms(cfg: ScenarioConfig) -> float:
    """Backhaul latency of one hop for a request: propagation/switching plus
    store-and-forward of ``request_mb`` at the backhaul rate [ms]."""
    return (
        cfg.radio.hop_latency_ms + 1000.0 * 8.0 * cfg.radio.request_mb / cfg.migration.backhaul_mbps
    )


def requests_per_tick(kind: np.ndarray, cfg: ScenarioConfig) -> np.ndarray:
    """Requests each row sends in a tick, each charged its latency: one for a task,
    ``sessions.request_rate_hz * dt_s`` for a session. Same shape as ``kind``."""
    per_session = cfg.sessions.request_rate_hz * cfg.dt_s
    return np.where(kind == KIND_SESSION, per_session, 1.0)


def host_share_hz(world: World, layout: Layout) -> np.ndarray:
    """CPU share per hosted task on each node, (B, N) [cycles/s]."""
    return layout.cpu_hz / np.maximum(world.slots_used, 1)


def task_latency_ms(
    world: World, layout: Layout, cfg: ScenarioConfig, running: np.ndarray, share: np.ndarray
) -> np.ndarray:
    """Latency [ms] of every task row this tick (0 where ``running`` is False)."""
    r = cfg.radio
    host = np.maximum(world.task_host, 0)
    veh = world.task_vehicle
    access = gather(world.veh_access, veh)
    rate = gather(world.veh_rate_mbps, veh)
    attached = (access >= 0) & gather(world.veh_active, veh)
    hops = layout.hops[np.maximum(access, 0), host]
    radio_ms = 1000.0 * 8.0 * r.request_mb / np.maximum(rate, 1e-9)
    backhaul_ms = hops * per_hop_ms(cfg)
    network_ms = np.where(attached, radio_ms + backhaul_ms, r.out_of_coverage_ms)
    task_share = gather(share, host)
    compute_ms = 1000.0 * r.compute_request_gcycles * 1e9 / task_share
    return np.where(running, network_ms + compute_ms, 0.0)


def progress(world: World, layout: Layout, cfg: ScenarioConfig, blocked_s: np.ndarray):
    """Advance running tasks on live hosts.

    Returns (serving, charged, latency_ms), (B, T) each: ``serving`` rows run on
    a live host; ``charged`` are the serving rows whose latency counts (not a
    session whose vehicle has left); ``latency_ms`` is 0 outside ``charged``.
    """
    host = np.maximum(world.task_host, 0)
    host_up = gather(world.node_up, host)
    serving = (world.task_state == RUNNING) & host_up
    share = host_share_hz(world, layout)
    t0 = world.time_s[:, None]
    t_eff = np.clip(t0 + cfg.dt_s - np.maximum(t0, world.task_ready_s), 0.0, cfg.dt_s)
    t_eff = np.maximum(t_eff - blocked_s, 0.0)
    gain = gather(share, host) * t_eff
    world.task_done += np.where(serving, gain, 0.0)
    vehicle_here = gather(world.veh_active, world.task_vehicle)
    charged = serving & ((world.task_kind == KIND_TASK) | vehicle_here)
    latency = task_latency_ms(world, layout, cfg, charged, share)
    world.task_latency_ms[:] = latency
    return serving, charged, latency


def uav_energy_j(world: World, layout: Layout, cfg: ScenarioConfig) -> np.ndarray:
    """Energy drawn by each live UAV this tick: (hover + compute * utilisation) * dt [J]."""
    util = world.slots_used / layout.max_jobs
    power = cfg.uav.hover_power_w + cfg.uav.compute_power_w * util
    return np.where(layout.is_uav & world.node_up, power * cfg.dt_s, 0.0)
