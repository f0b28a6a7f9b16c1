"""Rule-based decisions, vectorised over a batch of controller views.

Each rule maps ``(view, mask, cfg)`` to actions of shape (B, N) in the env's
action layout (0 = nothing, j = move to node j - 1). Migration rules act only
on nodes the controller believes up; failover rules only on nodes it believes
down, so a migration rule and a failover rule combine by taking, per node,
whichever of the two acts.

Rules read only the controller's view (``roadedge.envs.sim.view``) and the
action mask; never the simulator's hidden state. They never write into them.
"""

from __future__ import annotations

import numpy as np

from roadedge.envs.sim import formulas
from roadedge.envs.sim.compute import per_hop_ms, requests_per_tick
from roadedge.envs.sim.config import ScenarioConfig
from roadedge.envs.sim.triggers import Trigger
from roadedge.envs.sim.view import ControllerView
from roadedge.envs.sim.world import ORPHANED, RUNNING


def _valid_targets(mask: np.ndarray) -> np.ndarray:
    """(B, N, N) bool: node n may move tasks to node m. A view of ``mask``: never write
    into it (rules must not modify their inputs)."""
    return mask[:, :, 1:]


def _pick(score: np.ndarray, valid: np.ndarray, acting: np.ndarray) -> np.ndarray:
    """Per source, 1 + the best-scoring valid target, or 0. Ties: lowest index."""
    masked = np.where(valid, score, -np.inf)
    best = np.argmax(masked, axis=-1)
    ok = acting & np.isfinite(np.take_along_axis(masked, best[..., None], -1)[..., 0])
    return np.where(ok, best + 1, 0).astype(np.int64)


def target_load(view: ControllerView) -> np.ndarray:
    """The freshest load the controller knows: its own ledger (used + reserved slots)."""
    return (view.slots_used + view.slots_reserved) / view.layout.max_jobs


# ----------------------------------------------------------------------- migration rules


def threshold_rule(view: ControllerView, mask: np.ndarray, cfg: ScenarioConfig) -> np.ndarray:
    """Seed 000 in full.

    A node believed up migrates when one of the five triggers fires (RSU
    overload > 0.8, UAV overload > 0.7, UAV battery < 0.2, vehicle mobility,
    congestion; overload thresholds x0.9 while mean RSU load > 0.7), it is not
    cooling down (10 s) and has no active migration. The target maximises
    ``w_cap * (1 - load) + w_dist / (1 + d / 1000)`` with (0.7, 0.3) from an
    RSU and (0.8, 0.2) from a UAV (UAVs move to RSUs), among valid targets
    that are not overloaded themselves. The simulator then picks at most 3
    tasks by ``0.5 * urgency + 0.5 / max(1, remaining_s)``.
    """
    mc = cfg.migration
    lay = view.layout
    trig = view.trigger
    fires = (trig != Trigger.NONE) & (trig != Trigger.FAILOVER) & view.up
    fires &= (view.cooldown_left_s <= 0) & ~view.migrating
    load = target_load(view)
    w = np.where(lay.is_uav, mc.uav_capacity_weight, mc.rsu_capacity_weight)[None, :, None]
    score = formulas.target_score(load[:, None, :], lay.distance_m[None], w, mc.distance_scale_m)
    valid = _valid_targets(mask) & (load < view.threshold)[:, None, :]
    uav_src = lay.is_uav[None, :, None]
    rsu_tgt = ~lay.is_uav[None, None, :]
    has_rsu = (valid & rsu_tgt).any(-1, keepdims=True)
    valid &= ~(uav_src & has_rsu) | rsu_tgt  # UAV sources go to RSUs when one is valid
    return _pick(score, valid, fires)


def follow_rule(view: ControllerView, mask: np.ndarray, cfg: ScenarioConfig) -> np.ndarray:
    """Move tasks after their vehicles: to the access node most of a node's
    away tasks (vehicle attached elsewhere) are attached to."""
    B, N = view.up.shape
    running = (view.task_state == RUNNING) & ~view.task_migrating
    away = running & (view.task_access >= 0) & (view.task_access != view.task_host)
    b, t = np.nonzero(away)
    votes = np.zeros((B, N, N))
    np.add.at(votes, (b, view.task_host[b, t], view.task_access[b, t]), 1.0)
    acting = view.up & (votes.sum(-1) > 0)
    valid = _valid_targets(mask) & (votes > 0)
    return _pick(votes, valid, acting)


def greedy_rule(
    view: ControllerView, mask: np.ndarray, cfg: ScenarioConfig, lookahead_s: float = 30.0
) -> np.ndarray:
    """One-step estimated net benefit with the env's own models.

    For each source n and valid target m: the latency saved by moving n's
    tasks (backhaul hops from each vehicle's access node, compute share at
    the new load) over ``min(remaining, lookahead_s)``, weighted by the
    success probability, minus the seed 000 migration cost and the switch
    downtime, all in reward units. Act where the best is positive.
    """
    lay, r, rw, mc = view.layout, cfg.radio, cfg.reward, cfg.migration
    B, N = view.up.shape
    running = (view.task_state == RUNNING) & ~view.task_migrating
    used = view.slots_used + view.slots_reserved
    share_now = lay.cpu_hz / np.maximum(view.slots_used, 1)  # (B, N)
    share_new = lay.cpu_hz / (used + 1)
    req = r.compute_request_gcycles * 1e9
    b, t = np.nonzero(running)
    host = view.task_host[b, t]
    access = view.task_access[b, t]
    attached = access >= 0
    hops_now = np.where(attached, lay.hops[np.maximum(access, 0), host], 0)
    hops_new = np.where(attached[:, None], lay.hops[np.maximum(access, 0)], 0)  # (K, N)
    hop_ms = per_hop_ms(cfg)
    lat_now = hop_ms * hops_now + 1000 * req / share_now[b, host]
    lat_new = hop_ms * hops_new + 1000 * req / share_new[b]
    horizon = np.clip(view.task_remaining_s[b, t], 0, lookahead_s)
    requests = requests_per_tick(view.task_kind[b, t], cfg) / cfg.dt_s * horizon  # in horizon
    can_run = lay.capability[:, view.task_service[b, t]].T  # (K, N)
    saving = np.where(can_run, (lat_now[:, None] - lat_new) / 1000 * requests[:, None], 0.0)
    gain = np.zeros((B, N, N))
    np.add.at(gain, (b, host), saving * rw.latency)
    count = np.zeros((B, N, N))
    np.add.at(count, (b, host), can_run.astype(np.float64))
    state_mb = np.zeros((B, N, N))
    np.add.at(state_mb, (b, host), can_run * view.task_state_mb[b, t][:, None])
    k = np.minimum(count, mc.max_tasks_per_migration)
    frac = np.where(count > 0, k / np.maximum(count, 1), 0.0)
    moved_mb = state_mb * frac
    delay = formulas.migration_delay_s(moved_mb, lay.hops[None], mc, r.hop_latency_ms)
    _, _, switch = formulas.phase_durations_s(delay, mc)
    p = formulas.success_probability(
        lay.distance_m[None], target_load(view)[:, None, :], view.urgency[..., None], mc
    )
    benefit = p * (gain * frac - rw.downtime * switch * k)
    benefit -= rw.migration_cost * formulas.migration_cost(moved_mb, delay, mc)
    acting = view.up & ~view.migrating & (view.cooldown_left_s <= 0)
    valid = _valid_targets(mask) & (benefit > 0)
    return _pick(benefit, valid, acting)


def random_rule(view, mask, cfg, rng) -> np.ndarray:
    """Uniform over each node's valid choices (including doing nothing).

    ``rng``: one Generator, or one per batch row (row ``i`` then draws what a
    single env with that generator would).
    """
    if isinstance(rng, list):
        u = np.stack([g.random(mask.shape[1:]) for g in rng])
    else:
        u = rng.random(mask.shape)
    return np.argmax(np.where(mask, u, -1.0), axis=-1).astype(np.int64)


# ----------------------------------------------------------------------- failover rules


def node_reliability(view: ControllerView, cfg: ScenarioConfig) -> np.ndarray:
    """Seed 001 reliability in [0, 1] from failure history and past performance.

    ``(completed + 1) / (completed + lost + 1)``, halved while the node is
    within ``failure_cooldown_s`` (300 s) of its last detected failure.
    """
    rel = (view.completed + 1.0) / (view.completed + view.lost + 1.0)
    recent = view.since_failure_s < cfg.faults.failure_cooldown_s
    return np.where(recent, 0.5 * rel, rel)


def failover_rule(view: ControllerView, mask: np.ndarray, cfg: ScenarioConfig) -> np.ndarray:
    """Seed 001 FailoverStrategy, for nodes the controller believes down.

    Targets are scored by ``0.35 * reliability + 0.25 * capability match
    + 0.25 * (1 - load) + 0.15 * past performance``; nodes under the
    reliability threshold (0.8) are used only when no reliable node is valid.
    The simulator moves the highest-priority orphans first (8/5/2) and drops
    a task after 3 failed attempts.
    """
    B, N = view.up.shape
    lay = view.layout
    orphan = view.task_state == ORPHANED
    b, t = np.nonzero(orphan)
    need = np.zeros((B, N, lay.capability.shape[1]))
    np.add.at(need, (b, view.task_origin[b, t], view.task_service[b, t]), 1.0)
    total = need.sum(-1)
    match = np.einsum("bns,ms->bnm", need, lay.capability.astype(np.float64))
    match = match / np.maximum(total, 1)[..., None]
    rel = node_reliability(view, cfg)
    perf = view.completed / np.maximum(view.completed.max(-1, keepdims=True), 1)
    score = (0.35 * rel + 0.25 * (1 - target_load(view)) + 0.15 * perf)[:, None, :]
    score = score + 0.25 * match
    valid = _valid_targets(mask)
    reliable = (rel >= cfg.faults.reliability_threshold)[:, None, :]
    any_reliable = (valid & reliable).any(-1, keepdims=True)
    valid = valid & (reliable | ~any_reliable)  # a new array: the mask is the caller's
    acting = ~view.up & (total > 0)
    return _pick(score, valid, acting)


def backup_rule(
    view: ControllerView, mask: np.ndarray, cfg: ScenarioConfig, backups: np.ndarray | None = None
) -> np.ndarray:
    """Seed 001 BackupAgentStrategy: fail over to the first live backup.

    ``backups`` (B, T, K) is each task's ordered backup list (see
    :class:`BackupTable`); for each down node, the target is the first
    backup of its highest-priority orphan that is a valid target.
    """
    B, N = view.up.shape
    orphan = view.task_state == ORPHANED
    acting = np.zeros((B, N), dtype=bool)
    actions = np.zeros((B, N), dtype=np.int64)
    b, t = np.nonzero(orphan)
    if b.size == 0 or backups is None:
        return actions
    origin = view.task_origin[b, t]
    key = -(view.task_priority[b, t] + 0.5 / np.maximum(1, view.task_remaining_s[b, t]))
    order = np.lexsort((key, origin, b))
    b, t, origin = b[order], t[order], origin[order]
    first = np.r_[True, (b[1:] != b[:-1]) | (origin[1:] != origin[:-1])]
    b, t, origin = b[first], t[first], origin[first]
    cand = backups[b, t]  # (K_tasks, K)
    valid = _valid_targets(mask)[b, origin]  # (K_tasks, N)
    ok = (cand >= 0) & np.take_along_axis(valid, np.maximum(cand, 0), axis=1)
    has = ok.any(1)
    idx = np.argmax(ok, axis=1)
    target = cand[np.arange(cand.shape[0]), idx]
    acting[b[has], origin[has]] = True
    actions[b[has], origin[has]] = target[has] + 1
    return actions


class BackupTable:
    """Primary plus an ordered list of ``k`` backups per task, kept current.

    The first backup is the node holding the task's replica (the scheduler
    placed it, so the controller knows it); the rest are the best other
    nodes that run the service, by ``(1 - load) / (1 + d / 1000)`` from the
    primary. Entries that die (believed down) are replaced as node state
    changes; live entries are kept, so the order is stable.
    """

    def __init__(self, k: int):
        self.k = max(int(k), 1)
        self.table: np.ndarray | None = None

    def update(self, view: ControllerView) -> np.ndarray:
        """Refresh the table for the tasks alive in ``view``; returns (B, T, k)."""
        lay = view.layout
        B, T = view.task_state.shape
        N = lay.n_nodes
        if self.table is None or self.table.shape[:2] != (B, T):
            self.table = np.full((B, T, self.k), -1, dtype=np.int64)
        table = self.table
        live = view.task_state != 0
        table[~live] = -1
        b, t = np.nonzero(live)
        if b.size == 0:
            return table
        primary = np.where(view.task_state == RUNNING, view.task_host, view.task_origin)[b, t]
        p = np.maximum(primary, 0)
        can = lay.capability[:, view.task_service[b, t]].T & view.up[b]
        can &= np.arange(N)[None, :] != p[:, None]
        # Order key per node: kept entries first (0..k-1), then the replica
        # holder (k), then the others by score (k+1...); unusable nodes: inf.
        score = np.where(can, (1 - target_load(view)[b]) / (1 + lay.distance_m[p] / 1000), -np.inf)
        rank_pos = np.argsort(np.argsort(-score, axis=1, kind="stable"), axis=1)
        key = np.where(can, self.k + 1.0 + rank_pos, np.inf)
        replica = view.task_backup[b, t]
        has_rep = replica >= 0
        rep_key = key[np.arange(b.size), np.maximum(replica, 0)]
        key[np.arange(b.size)[has_rep], replica[has_rep]] = np.where(
            np.isfinite(rep_key[has_rep]), float(self.k), np.inf
        )
        cur = table[b, t]
        for j in range(self.k):  # k is tiny (2 by default)
            col = np.maximum(cur[:, j], 0)
            ok = (cur[:, j] >= 0) & np.isfinite(key[np.arange(b.size), col])
            key[np.arange(b.size)[ok], col[ok]] = float(j)
        order = np.argsort(key, axis=1, kind="stable")[:, : self.k]
        usable = np.isfinite(np.take_along_axis(key, order, axis=1))
        table[b, t] = np.where(usable, order, -1)
        return table
