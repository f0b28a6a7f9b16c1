"""Observations built from the controller's view, for a whole batch at once.

Every feature is normalised to [0, 1]. The flat vector (``obs_mode="flat"``)
is the per-node matrix flattened row by row, followed by the global
features, followed by the (N, N, P) pair features flattened (source node,
then target node, then feature); the dict (``obs_mode="dict"``) keeps the
matrix, a node mask, the pairwise distance matrix, the globals and the pair
features apart, for set/graph encoders. MODEL.md Appendix A defines every
feature.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .sim.config import ScenarioConfig
from .sim.radio import _radio_args, strongest_nodes
from .sim.triggers import mean_rsu_load
from .sim.view import ControllerView
from .sim.world import KIND_SESSION, ORPHANED, QUEUED, RUNNING

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
    "detached_max",  # 1 - exp(-longest time a hosted session's vehicle is off this node / tau)
    "detached_mean",  # mean over the hosted sessions of 1 - exp(-that time / tau)
)
# Per ordered node pair (i, j), over node i's RUNNING sessions (tasks are not counted):
PAIR_FEATURES = (
    "attached",  # sessions of i whose vehicle is attached to j now / max_jobs of i
    "heading",  # sessions of i whose vehicle, projected ahead by speed x horizon, lands at j
    "migrating",  # 1 if the migration in flight from i goes to j
    "hops_saved",  # backhaul hops i's attached sessions would save on j (0 if none)
    "hops_saved_heading",  # the same from the access nodes they are heading for
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
    N = cfg.n_nodes
    return N * n_node_features(cfg) + len(GLOBAL_FEATURES) + N * N * len(PAIR_FEATURES)


def detach_tau_s(cfg: ScenarioConfig) -> float:
    """Time scale of the ``detached_*`` features: the migration cooldown (at least one tick)."""
    return max(cfg.migration.cooldown_s, cfg.dt_s)


def heading_horizon_s(cfg: ScenarioConfig) -> float:
    """How far ahead ``heading`` projects a vehicle: the migration cooldown, the earliest
    a node that migrates now can migrate again, so the sessions it moves should suit
    where their vehicles are by then."""
    return float(cfg.migration.cooldown_s)


@njit(cache=True)
def _clip01(x):
    return min(max(x, 0.0), 1.0)


@njit(cache=True)
def _node_kernel(
    up, load, slots_reserved, battery, is_uav, cooldown_left_s, migrating, task_state,
    task_host, task_origin, task_remaining_s, away, mean_hops, urgency, heartbeat_age_s,
    since_failure_s, attached, cpu_hz, capability, max_jobs, cooldown_s, max_hops, detect_s,
    failure_cooldown_s, deadline_max_s, task_kind, task_detached_s, detach_tau_s, out,
):  # fmt: skip
    B, N = up.shape
    T = task_state.shape[1]
    S = capability.shape[1]
    F0 = out.shape[2] - S
    n_hosted, slack_sum = np.empty(N), np.empty(N)
    slack_min, n_orphans = np.empty(N), np.empty(N)
    n_sessions, detached_sum, detached_max = np.empty(N), np.empty(N), np.empty(N)
    cpu_max = cpu_hz.max()
    for b in range(B):
        n_hosted[:] = 0.0
        slack_sum[:] = 0.0
        slack_min[:] = 1.0
        n_orphans[:] = 0.0
        n_sessions[:] = 0.0
        detached_sum[:] = 0.0
        detached_max[:] = 0.0
        for t in range(T):
            state = task_state[b, t]
            if state == RUNNING:
                h = task_host[b, t]
                slack = _clip01(task_remaining_s[b, t] / deadline_max_s)
                n_hosted[h] += 1.0
                slack_sum[h] += slack
                slack_min[h] = min(slack_min[h], slack)
                if task_kind[b, t] == KIND_SESSION:
                    off = 1.0 - math.exp(-task_detached_s[b, t] / detach_tau_s)
                    n_sessions[h] += 1.0
                    detached_sum[h] += off
                    detached_max[h] = max(detached_max[h], off)
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
            f[17] = _clip01(detached_max[n])
            f[18] = _clip01(detached_sum[n] / n_sessions[n] if n_sessions[n] > 0 else 0.0)
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
        max(cfg.faults.failure_cooldown_s, 1e-9), float(cfg.tasks.deadline_s_max),
        v.task_kind, _need(v.task_detached_s, "task_detached_s"), detach_tau_s(cfg), out,
    )  # fmt: skip
    return out


def _need(value, name: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"the observation needs the view's {name} (see controller_view)")
    return value


@njit(cache=True)
def _pairs_kernel(
    task_state, task_kind, task_host, task_access, task_vehicle, veh_active, veh_x, veh_y,
    veh_dir, veh_speed, up, pos_xyz, coverage_m, gain_mw, half_exponent, horizon_s, max_jobs,
    hops, max_hops, migrating, mig_target, out,
):  # fmt: skip
    """(B, N, N, P) PAIR_FEATURES into ``out``. ``heading`` projects the vehicle straight
    ahead (``veh_dir``: 0 +x, 1 +y, 2 -x, 3 -y) by ``speed * horizon_s`` and takes the
    node the access rule (MODEL.md section 4) would pick there among the nodes believed
    up: in coverage (ground distance), strongest received power, lowest index on a tie
    (:func:`radio.strongest_nodes <roadedge.envs.sim.radio.strongest_nodes>`, the radio's
    own loop, over all the projected points at once).
    ``hops_saved[i, j]`` is ``max(0, sum over i's sessions attached to a of
    (hops[a, i] - hops[a, j]))`` / (max_jobs of i x ``max_hops``): what hosting all of
    them on j would save per request, clipped to [0, 1]; ``hops_saved_heading`` the
    same with the projected access nodes."""
    B, N = up.shape
    T = task_state.shape[1]
    count = np.empty((N, N, 4))
    # the projected points of the sessions of active vehicles, and their hosts
    xs, ys, host = np.empty(T), np.empty(T), np.empty(T, np.int64)
    total, signal, heading = np.empty(T), np.empty(T), np.empty(T, np.int64)
    for b in range(B):
        count[:] = 0.0
        K = 0
        for t in range(T):
            if task_state[b, t] != RUNNING or task_kind[b, t] != KIND_SESSION:
                continue
            i = task_host[b, t]
            a = task_access[b, t]
            if a >= 0:
                count[i, a, 0] += 1.0
                for j in range(N):
                    count[i, j, 2] += hops[a, i] - hops[a, j]
            v = task_vehicle[b, t]
            if not veh_active[b, v]:
                continue
            ahead = veh_speed[b, v] * horizon_s
            d = veh_dir[b, v]
            xs[K] = veh_x[b, v] + (ahead if d == 0 else (-ahead if d == 2 else 0.0))
            ys[K] = veh_y[b, v] + (ahead if d == 1 else (-ahead if d == 3 else 0.0))
            host[K] = i
            K += 1
        strongest_nodes(
            xs, ys, K, up[b], pos_xyz, coverage_m, gain_mw, half_exponent, total, signal,
            heading,
        )  # fmt: skip
        for k in range(K):
            best, i = heading[k], host[k]
            if best >= 0:
                count[i, best, 1] += 1.0
                for j in range(N):
                    count[i, j, 3] += hops[best, i] - hops[best, j]
        for i in range(N):
            jobs = float(max_jobs[i])
            target = mig_target[b, i] if migrating[b, i] else -1
            for j in range(N):
                out[b, i, j, 0] = _clip01(count[i, j, 0] / jobs)
                out[b, i, j, 1] = _clip01(count[i, j, 1] / jobs)
                out[b, i, j, 2] = 1.0 if j == target else 0.0
                out[b, i, j, 3] = _clip01(count[i, j, 2] / (jobs * max_hops))
                out[b, i, j, 4] = _clip01(count[i, j, 3] / (jobs * max_hops))


def _pairs_constants(layout, cfg: ScenarioConfig) -> tuple:
    pos, coverage, gain, half_exponent = _radio_args(layout, cfg.radio)[:4]
    hops = layout.hops.astype(np.float64)
    max_hops = max(float(hops.max()), 1.0)
    return (
        pos,
        coverage,
        gain,
        half_exponent,
        heading_horizon_s(cfg),
        layout.max_jobs,
        hops,
        max_hops,
    )


def pair_tensor(view: ControllerView, cfg: ScenarioConfig) -> np.ndarray:
    """(B, N, N, P) float32 pair features (PAIR_FEATURES) of ordered node pairs (i, j)."""
    v = view
    B, N = v.up.shape
    out = np.empty((B, N, N, len(PAIR_FEATURES)), np.float32)
    need = {
        name: _need(getattr(v, name), name)
        for name in (
            "task_vehicle", "veh_active", "veh_x", "veh_y", "veh_dir", "veh_speed", "mig_target"
        )
    }  # fmt: skip
    _pairs_kernel(
        v.task_state, v.task_kind, v.task_host, v.task_access, need["task_vehicle"],
        need["veh_active"], need["veh_x"], need["veh_y"], need["veh_dir"], need["veh_speed"],
        v.up, *_pairs_constants(v.layout, cfg), v.migrating, need["mig_target"], out,
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
        self._kernels = (
            _node_triggers_kernel, _derived_kernel, _node_kernel, _globals_kernel, _pairs_kernel
        )  # fmt: skip
        code = np.empty((B, N), np.int8)
        urgency, thr, away, hops, age, cooldown, since = (np.empty((B, N)) for _ in range(7))
        free, attached = np.empty((B, N), np.int64), np.empty((B, N), np.int64)
        remaining, progress = np.empty((B, T)), np.empty((B, T))
        access, migrating = np.empty((B, T), np.int64), np.empty((B, T), np.bool_)
        detached = np.empty((B, T))
        F, G, P = n_node_features(cfg), len(GLOBAL_FEATURES), len(PAIR_FEATURES)
        self._flat = np.empty((B, N * F + G + N * N * P), np.float32)
        self._nodes = self._flat[:, : N * F].reshape(B, N, F)
        self._globals = self._flat[:, N * F : N * F + G]
        self._pairs = self._flat[:, N * F + G :].reshape(B, N, N, P)
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
                w.task_host, w.veh_left_s, age, free, cooldown, since, attached, remaining,
                progress, access, migrating, detached,
            ),
            (
                w.view_up, w.view_load, w.slots_reserved, w.view_battery, lay.is_uav,
                cooldown, w.mig_active, w.task_state, w.task_host, w.task_origin, remaining,
                away, hops, urgency, age, since, attached, lay.cpu_hz, lay.capability,
                lay.max_jobs, max(cfg.migration.cooldown_s, 1e-9),
                max(float(lay.hops.max()), 1.0),
                float(cfg.faults.heartbeat_misses * cfg.faults.heartbeat_interval_s),
                max(cfg.faults.failure_cooldown_s, 1e-9), float(cfg.tasks.deadline_s_max),
                w.task_kind, detached, detach_tau_s(cfg), self._nodes,
            ),
            (
                w.tick, float(cfg.horizon), w.view_load, lay.is_uav, w.task_state,
                float(lay.max_jobs.sum()), w.veh_active, float(cfg.vehicles.max_vehicles),
                w.ctrl_up, self._globals,
            ),
            (
                w.task_state, w.task_kind, w.task_host, access, w.task_vehicle, w.veh_active,
                w.veh_x, w.veh_y, w.veh_dir, w.veh_speed, w.view_up,
                *_pairs_constants(lay, cfg), w.mig_active, w.mig_target, self._pairs,
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
            "pairs": self._pairs[sel].copy(),
        }
        return out
