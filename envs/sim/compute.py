"""Processor sharing, per-tick service latency, completions and deadline misses.

A node of capacity ``f`` [cycles/s] hosting ``k`` tasks gives each ``f / k``.
A running task on a live host progresses ``(f / k) * t_eff`` cycles per tick,
where ``t_eff`` is the part of the tick after its ready time (input upload,
failover restart) minus migration switch downtime.

Per-tick latency of a running task (what its vehicle experiences):

    radio    = 8 * request_mb / rate_access            (vehicle <-> access node)
    backhaul = hops(access node, host) * (hop_latency + 8 * request_mb / backhaul_rate)
    compute  = request_cycles / (f / k)
    latency  = radio + backhaul + compute              (out of coverage: a fixed
                                                        penalty replaces radio + backhaul)
"""

from __future__ import annotations

import numpy as np

from .arrays import gather
from .config import ScenarioConfig
from .layout import Layout
from .world import RUNNING, World


def per_hop_ms(cfg: ScenarioConfig) -> float:
    """Backhaul latency of one hop for a request: propagation/switching plus
    store-and-forward of ``request_mb`` at the backhaul rate [ms]."""
    return (
        cfg.radio.hop_latency_ms + 1000.0 * 8.0 * cfg.radio.request_mb / cfg.migration.backhaul_mbps
    )


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
    """Advance running tasks on live hosts. Returns (serving mask, latency_ms)."""
    host = np.maximum(world.task_host, 0)
    host_up = gather(world.node_up, host)
    serving = (world.task_state == RUNNING) & host_up
    share = host_share_hz(world, layout)
    t0 = world.time_s[:, None]
    t_eff = np.clip(t0 + cfg.dt_s - np.maximum(t0, world.task_ready_s), 0.0, cfg.dt_s)
    t_eff = np.maximum(t_eff - blocked_s, 0.0)
    gain = gather(share, host) * t_eff
    world.task_done += np.where(serving, gain, 0.0)
    latency = task_latency_ms(world, layout, cfg, serving, share)
    world.task_latency_ms[:] = latency
    return serving, latency


def uav_energy_j(world: World, layout: Layout, cfg: ScenarioConfig) -> np.ndarray:
    """Energy drawn by each live UAV this tick: (hover + compute * utilisation) * dt [J]."""
    util = world.slots_used / layout.max_jobs
    power = cfg.uav.hover_power_w + cfg.uav.compute_power_w * util
    return np.where(layout.is_uav & world.node_up, power * cfg.dt_s, 0.0)
