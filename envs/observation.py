"""Observations built from the controller's view, for a whole batch at once.

Every feature is normalised to [0, 1]. The flat vector (``obs_mode="flat"``)
is the per-node matrix flattened row by row, followed by the global
features; the dict (``obs_mode="dict"``) keeps the matrix, a node mask, the
pairwise distance matrix and the globals apart, for set/graph encoders.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .sim.config import ScenarioConfig
from .sim.triggers import mean_rsu_load
from .sim.view import ControllerView
from .sim.world import ORPHANED, QUEUED, RUNNING

NODE_FEATURES = (
    "up",  # believed up (heartbeats)
    "load",  # slot load from the last heartbeat
    "reserved",  # slots reserved for incoming migrations / max_jobs
    "battery",  # battery fraction (1 for RSUs)
    "is_uav",
    "cooldown",  # migration cooldown left / cooldown_s
    "migrating",  # an active migration leaves this node
    "orphans",  # orphaned tasks of this node / max_jobs (clipped)
    "away",  # share of hosted tasks whose vehicle is attached elsewhere
    "hops",  # mean hops from those vehicles' access nodes / max hops
    "urgency",  # seed 000 trigger urgency
    "slack_min",  # least time to deadline among hosted tasks / deadline_s_max
    "slack_mean",  # mean time to deadline among hosted tasks / deadline_s_max
    "heartbeat_age",  # time since the last heartbeat / detection delay
    "recent_failure",  # exp(-time since last detected failure / failure_cooldown_s)
    "attached",  # vehicles attached to this node / max_jobs (clipped)
    "cpu",  # CPU capacity / the largest in the scenario
)
GLOBAL_FEATURES = (
    "time",  # tick / horizon
    "mean_rsu_load",
    "queued",  # queued tasks / total slots (clipped)
    "orphans",  # orphaned tasks / total slots (clipped)
    "vehicles",  # vehicles on the map / max_vehicles
    "controller_up",  # 1 while the controller is the elected leader (seed 003), else 0
)


def n_node_features(cfg: ScenarioConfig) -> int:
    return len(NODE_FEATURES) + cfg.tasks.n_services


def flat_size(cfg: ScenarioConfig) -> int:
    return cfg.n_nodes * n_node_features(cfg) + len(GLOBAL_FEATURES)


@njit(cache=True)
def _clip01(x):
    return min(max(x, 0.0), 1.0)


@njit(cache=True)
def _node_kernel(
    up, load, slots_reserved, battery, is_uav, cooldown_left_s, migrating, task_state,
    task_host, task_origin, task_remaining_s, away, mean_hops, urgency, heartbeat_age_s,
    since_failure_s, attached, cpu_hz, capability, max_jobs, cooldown_s, max_hops, detect_s,
    failure_cooldown_s, deadline_max_s, out,
):  # fmt: skip
    B, N = up.shape
    T = task_state.shape[1]
    S = capability.shape[1]
    F0 = out.shape[2] - S
    n_hosted, slack_sum = np.empty(N), np.empty(N)
    slack_min, n_orphans = np.empty(N), np.empty(N)
    cpu_max = cpu_hz.max()
    for b in range(B):
        n_hosted[:] = 0.0
        slack_sum[:] = 0.0
        slack_min[:] = 1.0
        n_orphans[:] = 0.0
        for t in range(T):
            state = task_state[b, t]
            if state == RUNNING:
                h = task_host[b, t]
                slack = _clip01(task_remaining_s[b, t] / deadline_max_s)
                n_hosted[h] += 1.0
                slack_sum[h] += slack
                slack_min[h] = min(slack_min[h], slack)
            elif state == ORPHANED:
                n_orphans[max(task_origin[b, t], 0)] += 1.0
        for n in range(N):
            jobs = float(max_jobs[n])
            f = out[b, n]
            f[0] = 1.0 if up[b, n] else 0.0
            f[1] = _clip01(load[b, n])
            f[2] = _clip01(slots_reserved[b, n] / jobs)
            f[3] = _clip01(battery[b, n])
            f[4] = 1.0 if is_uav[n] else 0.0
            f[5] = _clip01(cooldown_left_s[b, n] / cooldown_s)
            f[6] = 1.0 if migrating[b, n] else 0.0
            f[7] = _clip01(n_orphans[n] / jobs)
            f[8] = _clip01(away[b, n])
            f[9] = _clip01(mean_hops[b, n] / max_hops)
            f[10] = _clip01(urgency[b, n])
            f[11] = _clip01(slack_min[n])
            f[12] = _clip01(slack_sum[n] / n_hosted[n] if n_hosted[n] > 0 else 1.0)
            f[13] = _clip01(heartbeat_age_s[b, n] / detect_s)
            f[14] = _clip01(math.exp(-since_failure_s[b, n] / failure_cooldown_s))
            f[15] = _clip01(attached[b, n] / jobs)
            f[16] = _clip01(cpu_hz[n] / cpu_max)
            for k in range(S):
                f[F0 + k] = 1.0 if capability[n, k] else 0.0


def node_matrix(view: ControllerView, cfg: ScenarioConfig, tick: np.ndarray) -> np.ndarray:
    """(B, N, F) float32 node features (NODE_FEATURES, then one capability column per
    service), each computed in double precision, clipped to [0, 1], stored as float32."""
    lay, v = view.layout, view
    B, N = view.up.shape
    out = np.empty((B, N, n_node_features(cfg)), np.float32)
    _node_kernel(
        v.up, v.load, v.slots_reserved, v.battery, lay.is_uav, v.cooldown_left_s, v.migrating,
        v.task_state, v.task_host, v.task_origin, v.task_remaining_s, v.away_fraction,
        v.mean_hops, v.urgency, v.heartbeat_age_s, v.since_failure_s, v.attached_vehicles,
        lay.cpu_hz, lay.capability, lay.max_jobs, max(cfg.migration.cooldown_s, 1e-9),
        max(float(lay.hops.max()), 1.0),
        float(cfg.faults.heartbeat_misses * cfg.faults.heartbeat_interval_s),
        max(cfg.faults.failure_cooldown_s, 1e-9), float(cfg.tasks.deadline_s_max), out,
    )  # fmt: skip
    return out


@njit(cache=True)
def _globals_kernel(
    tick, horizon, load, is_uav, task_state, total_slots, veh_active, max_vehicles,
    controller_up, out,
):  # fmt: skip
    for b in range(out.shape[0]):
        vehicles = 0
        for v in range(veh_active.shape[1]):
            vehicles += veh_active[b, v]
        queued = orphaned = 0
        for t in range(task_state.shape[1]):
            queued += task_state[b, t] == QUEUED
            orphaned += task_state[b, t] == ORPHANED
        out[b, 0] = _clip01(tick[b] / horizon)
        out[b, 1] = _clip01(mean_rsu_load(load[b], is_uav))
        out[b, 2] = _clip01(queued / total_slots)
        out[b, 3] = _clip01(orphaned / total_slots)
        out[b, 4] = _clip01(vehicles / max_vehicles)
        out[b, 5] = 1.0 if controller_up[b] else 0.0


def global_vector(
    view: ControllerView, cfg: ScenarioConfig, tick: np.ndarray, veh_active: np.ndarray
) -> np.ndarray:
    """(B, G) float32 global features (GLOBAL_FEATURES), each clipped to [0, 1];
    ``veh_active`` (B, V) marks the vehicles on the map."""
    lay = view.layout
    out = np.empty((view.up.shape[0], len(GLOBAL_FEATURES)), np.float32)
    _globals_kernel(
        np.asarray(tick, np.float64), float(cfg.horizon), view.load, lay.is_uav,
        view.task_state, float(lay.max_jobs.sum()), veh_active,
        float(cfg.vehicles.max_vehicles), view.controller_up, out,
    )  # fmt: skip
    return out


def distance_matrix(view: ControllerView) -> np.ndarray:
    """(N, N) node distances divided by the largest, float32."""
    return layout_distances(view.layout)


def layout_distances(layout) -> np.ndarray:
    d = layout.distance_m
    return (d / max(float(d.max()), 1e-9)).astype(np.float32)


class Observer:
    """Builds the observations of all rows of a simulator, tick after tick.

    The same kernels as :func:`node_matrix` and :func:`global_vector` on
    :func:`~roadedge.envs.sim.view.controller_view`'s arrays (a test holds them
    equal bit for bit), but without the view's snapshot copies: the kernels read
    the world's controller-side arrays (``view_*``, the ledger) and write into
    buffers allocated once, with their argument tuples built once (the world's
    arrays are only ever written in place). Each call returns fresh arrays.
    """

    def __init__(self, sim, obs_mode: str):
        from .sim.triggers import _node_triggers_kernel, trigger_params
        from .sim.view import _derived_kernel

        w, lay, cfg = sim.world, sim.layout, sim.cfg
        B, N = w.view_up.shape
        T = w.task_state.shape[1]
        self.obs_mode = obs_mode
        self._kernels = (_node_triggers_kernel, _derived_kernel, _node_kernel, _globals_kernel)
        code = np.empty((B, N), np.int8)
        urgency, thr, away, hops, age, cooldown, since = (np.empty((B, N)) for _ in range(7))
        free, attached = np.empty((B, N), np.int64), np.empty((B, N), np.int64)
        remaining, progress = np.empty((B, T)), np.empty((B, T))
        access, migrating = np.empty((B, T), np.int64), np.empty((B, T), np.bool_)
        F, G = n_node_features(cfg), len(GLOBAL_FEATURES)
        self._flat = np.empty((B, N * F + G), np.float32)
        self._nodes = self._flat[:, : N * F].reshape(B, N, F)
        self._globals = self._flat[:, N * F :]
        self._distances = layout_distances(lay)
        self._args = (
            (
                w.task_state, w.task_host, w.task_vehicle, w.veh_access, w.veh_active,
                lay.hops, w.view_load, w.view_battery, lay.is_uav, w.view_up,
                trigger_params(cfg.migration), code, urgency, thr, away, hops,
            ),
            (
                w.time_s, w.last_heartbeat_s, w.cooldown_until_s, w.last_failure_s,
                w.slots_used, w.slots_reserved, lay.max_jobs, w.veh_active, w.veh_access,
                w.task_vehicle, w.task_deadline_s, w.task_done, w.task_work, w.task_mig_target,
                age, free, cooldown, since, attached, remaining, progress, access, migrating,
            ),
            (
                w.view_up, w.view_load, w.slots_reserved, w.view_battery, lay.is_uav,
                cooldown, w.mig_active, w.task_state, w.task_host, w.task_origin, remaining,
                away, hops, urgency, age, since, attached, lay.cpu_hz, lay.capability,
                lay.max_jobs, max(cfg.migration.cooldown_s, 1e-9),
                max(float(lay.hops.max()), 1.0),
                float(cfg.faults.heartbeat_misses * cfg.faults.heartbeat_interval_s),
                max(cfg.faults.failure_cooldown_s, 1e-9), float(cfg.tasks.deadline_s_max),
                self._nodes,
            ),
            (
                w.tick, float(cfg.horizon), w.view_load, lay.is_uav, w.task_state,
                float(lay.max_jobs.sum()), w.veh_active, float(cfg.vehicles.max_vehicles),
                w.ctrl_up, self._globals,
            ),
        )  # fmt: skip
        self._view_up = w.view_up
        self._sim = sim

    def __getstate__(self):
        # The buffers are views of one another and the tuples hold the world's arrays:
        # a copy rebuilds them on the copied simulator rather than copy them apart.
        return {"sim": self._sim, "obs_mode": self.obs_mode}

    def __setstate__(self, state):
        self.__init__(state["sim"], state["obs_mode"])

    def __call__(self, row: int | None = None):
        """The observation of batch ``row`` (an int), or of all rows (None)."""
        for kernel, args in zip(self._kernels, self._args, strict=True):
            kernel(*args)
        sel = slice(None) if row is None else row
        if self.obs_mode == "flat":
            return self._flat[sel].copy()
        B = self._flat.shape[0]
        out = {
            "nodes": self._nodes[sel].copy(),
            "node_mask": self._view_up[sel].astype(np.float32),
            "distances": np.broadcast_to(self._distances, (B,) + self._distances.shape)[sel].copy(),
            "globals": self._globals[sel].copy(),
        }
        return out
