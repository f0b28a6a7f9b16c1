"""Migration and failover: decisions, keep-before-break plans, outcomes (seeds 000, 001, 003).

The controller's decision for node ``n`` is a target node ``m`` (or none).

* If the controller believes ``n`` is up, this plans a **migration** of up to
  ``max_tasks_per_migration`` of ``n``'s running tasks to ``m`` among the
  tasks ``m`` can run: if some have their vehicle attached to ``m``
  (session affinity, seed 004), only those (sessions first: a session follows
  its vehicle, a task ends soon); otherwise (an offload) any, by seed 000's task priority
  ``0.5 * urgency + 0.5 / max(1, remaining_s)``. The target reserves slots at once; the
  tasks keep running on ``n`` through the prepare (70 %) and sync (25 %)
  phases; the switch (5 %) is downtime. At the end a Bernoulli draw with
  seed 000's success probability decides: success moves the tasks (two-phase
  handoff: the target takes them, then the source slot is released); failure
  rolls back (tasks stay, reservation released, cost paid). One active
  migration per source node; after it, a cooldown.
* If the controller believes ``n`` is down, this is a **failover** of up to
  the same number of ``n``'s orphaned tasks to ``m`` (seed 001), highest
  priority level (8/5/2) first, then by the seed 000 formula. A task
  restarts on ``m`` from its replica if its backup node is alive, else from
  scratch; a failed attempt (the target turns out to be dead) counts towards
  ``max_reassignment_attempts``, after which the task is dropped.

Seed 003 (``migration.retry_policy = next_peer``): a migration that fails its
success draw or is cancelled is retried automatically on the next-best untried
target by seed 000's target score, up to ``max_attempts`` attempts, after an
exponential backoff of its source (``cooldown_s * 2 ** (k - 1)`` after the k-th
consecutive failure; a success resets k). While the controller is out (seed
003: only the leader acts) no decision and no retry starts.

Invalid decisions (see :func:`action_mask`) are no-ops, counted.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, prange

from . import parallel
from .config import ScenarioConfig
from .formulas import (
    migration_cost_at,
    migration_delay_at,
    success_probability_at,
    target_score_at,
    task_priority_at,
    transfer_time_at,
)
from .layout import Layout
from .ledger import commit_row, dispatch_row, reserve_row, unreserve_row
from .parallel import compile_both
from .rng import Stream, uniform_at
from .triggers import Trigger, node_triggers
from .world import KIND_SESSION, ORPHANED, RUNNING, World

AFFINITY_PRIORITY = 2.0  # above any seed 000 priority (<= 1), below a priority level gap (3)
SESSION_PRIORITY = 1.0  # attached sessions before attached tasks (migrations only)
MAX_BACKOFF_DOUBLINGS = 20  # backoff cap: cooldown_s * 2**20 (121 days at 10 s), no overflow
_NONE, _POLICY = int(Trigger.NONE), int(Trigger.POLICY)
_S_SUCCESS = np.uint64(Stream.MIGRATION_SUCCESS)

# The kernels read the layout and the migration settings as named tuples of arrays and
# numbers (Numba compiles attribute access on them); the world's arrays: World.subset.
LayoutArrays = namedtuple(
    "LayoutArrays", ["hops", "distance_m", "capability", "max_jobs", "is_uav"]
)
MigrationParams = namedtuple(
    "MigrationParams",
    [
        "max_tasks", "parallel_factor", "backhaul_mbps", "hop_latency_ms", "switch_fraction",
        "state_mb_ref", "alpha_comp", "alpha_tx", "alpha_lat", "success_base",
        "success_distance_m", "success_distance_cap", "success_load_weight",
        "success_urgency_weight", "cooldown_s", "next_peer", "max_attempts",
        "rsu_capacity_weight", "uav_capacity_weight", "distance_scale_m", "replication",
        "max_reassignment_attempts", "dt_s",
    ],
)  # fmt: skip


# The world's arrays the migration kernels read and write (a named tuple of the same
# arrays, World.subset): passing only these, not all ~90, halves their compile time.
MigrationState = namedtuple(
    "MigrationState",
    [
        "cooldown_until_s",
        "ctrl_up",
        "key",
        "mig_active",
        "mig_cost",
        "mig_downtime_s",
        "mig_end_s",
        "mig_retry",
        "mig_start_s",
        "mig_success_p",
        "mig_target",
        "mig_trigger",
        "node_up",
        "retry_attempt",
        "retry_fails",
        "retry_pending",
        "retry_tried",
        "slots_reserved",
        "slots_used",
        "task_attempts",
        "task_backup",
        "task_deadline_s",
        "task_done",
        "task_host",
        "task_input_mb",
        "task_interrupted_s",
        "task_kind",
        "task_mig_target",
        "task_origin",
        "task_priority",
        "task_ready_s",
        "task_replica",
        "task_retry_src",
        "task_service",
        "task_state",
        "task_state_mb",
        "task_vehicle",
        "tick",
        "time_s",
        "veh_access",
        "veh_active",
        "veh_serving",
        "view_load",
        "view_up",
    ],
)


# Smaller subsets for the kernels called every tick: each array in the tuple costs an
# unboxing per call (the full MigrationState: ~8 us at batch 1).
MaskState = namedtuple(
    "MaskState",
    [
        "cooldown_until_s", "ctrl_up", "mig_active", "retry_pending", "slots_reserved",
        "slots_used", "task_host", "task_mig_target", "task_origin", "task_service",
        "task_state", "time_s", "view_up",
    ],
)  # fmt: skip
CancelState = namedtuple(
    "CancelState",
    [
        "cooldown_until_s", "mig_active", "mig_target", "node_up", "retry_attempt",
        "retry_fails", "retry_pending", "retry_tried", "slots_reserved", "task_host",
        "task_mig_target", "task_retry_src", "task_state", "time_s",
    ],
)  # fmt: skip


def layout_tuple(layout: Layout) -> tuple:
    """:func:`layout_arrays` as a plain tuple, built once per layout (a kernel unboxes a
    plain tuple about twice as fast as a named one, then names it inside)."""
    cached = layout.__dict__.get("_layout_tuple")
    if cached is None:
        cached = layout.__dict__["_layout_tuple"] = tuple(layout_arrays(layout))
    return cached


def layout_arrays(layout: Layout) -> LayoutArrays:
    return LayoutArrays(
        layout.hops, layout.distance_m, layout.capability, layout.max_jobs, layout.is_uav
    )


def migration_params(cfg: ScenarioConfig) -> MigrationParams:
    """The migration settings the kernels take, built once per (immutable) scenario and
    kept on it (hashing a scenario for a cache costs more than building them)."""
    cached = cfg.__dict__.get("_migration_params")
    if cached is None:
        cached = _build_params(cfg)
        object.__setattr__(cfg, "_migration_params", cached)
    return cached


def _build_params(cfg: ScenarioConfig) -> MigrationParams:
    mc, fc = cfg.migration, cfg.faults
    return MigrationParams(
        int(mc.max_tasks_per_migration), float(mc.parallel_factor), float(mc.backhaul_mbps),
        float(cfg.radio.hop_latency_ms), float(mc.switch_fraction), float(mc.state_mb_ref),
        float(mc.alpha_comp), float(mc.alpha_tx), float(mc.alpha_lat), float(mc.success_base),
        float(mc.success_distance_m), float(mc.success_distance_cap),
        float(mc.success_load_weight), float(mc.success_urgency_weight), float(mc.cooldown_s),
        mc.retry_policy == "next_peer", int(mc.max_attempts), float(mc.rsu_capacity_weight),
        float(mc.uav_capacity_weight), float(mc.distance_scale_m), bool(fc.replication),
        int(fc.max_reassignment_attempts), float(cfg.dt_s),
    )  # fmt: skip


@njit(cache=True)
def selection_priority_at(base, near, session):
    """The order in which a move toward a target takes a source's rows: rows whose
    vehicle is attached to the target first (session affinity, seed 004), sessions first
    among those, then seed 000's priority ``base`` (numbers or, uncompiled, arrays)."""
    return base + AFFINITY_PRIORITY * near + SESSION_PRIORITY * (session & near)


selection_priority = selection_priority_at.py_func  # the same function, on arrays


def attached_only(group: np.ndarray, near: np.ndarray, n_groups: int) -> np.ndarray:
    """Keep mask of the rows a move takes: in a move (``group``) that has rows attached to
    its target (``near``), only those; in one without (an offload), all. (The array
    form, for the oracle's look-ahead; the kernels apply the same rule per move.)"""
    has_near = np.zeros(n_groups, dtype=bool)
    has_near[group[near]] = True
    return near | ~has_near[group]


# ---------------------------------------------------------------- per-environment helpers


@njit(cache=True)
def _source_of(state, host, mig_target, origin, host_believed_up):
    """The node whose decision can move a row (-1: none) and whether that is a failover.
    Migratable: running, not migrating, on a node believed up. Failover-able: orphaned
    (its origin node was declared down). Takes the row's values, not the world: passing
    the world's tuple per row would cost a reference count per array."""
    if state == RUNNING:
        if mig_target < 0 and host_believed_up:
            return host, False
    elif state == ORPHANED:
        return origin, True
    return -1, False


@njit(cache=True, inline="always")
def _free_slots(max_jobs, slots_used, slots_reserved, b, n):
    return max_jobs[n] - slots_used[b, n] - slots_reserved[b, n]


@njit(cache=True)
def _mask_env(w, lay, b, present, serves, mask):
    """Valid decisions of environment ``b`` into ``mask`` (N, N + 1). Scratch: ``present``
    (N, S), whether source n has a movable row of service s; ``serves`` (N, N), whether
    node m runs the service of at least one movable row of source n."""
    N, S = present.shape
    present[:, :] = False
    for t in range(w.task_state.shape[1]):
        host = w.task_host[b, t]
        src, _ = _source_of(
            w.task_state[b, t], host, w.task_mig_target[b, t], w.task_origin[b, t],
            w.view_up[b, max(host, 0)],
        )  # fmt: skip
        if src >= 0:
            present[src, w.task_service[b, t]] = True
    serves[:, :] = False
    for n in range(N):
        for svc in range(S):
            if present[n, svc]:
                for m in range(N):
                    serves[n, m] |= lay.capability[m, svc]
    now = w.time_s[b]
    for n in range(N):
        mask[n, 0] = True
        # a source believed up is refused while it migrates, cools down or awaits a retry
        source_ok = not w.view_up[b, n] or (
            not w.mig_active[b, n] and not w.retry_pending[b, n] and now >= w.cooldown_until_s[b, n]
        )
        for m in range(N):
            mask[n, m + 1] = (
                serves[n, m]
                and w.view_up[b, m]
                and _free_slots(lay.max_jobs, w.slots_used, w.slots_reserved, b, m) > 0
                and source_ok
                and n != m
                and w.ctrl_up[b]  # controller out: nothing but "do nothing"
            )


@njit(cache=True)
def _mask_kernel(ws, ls, mask):
    w, lay = MaskState(*ws), LayoutArrays(*ls)
    N = mask.shape[1]
    present = np.empty((N, lay.capability.shape[1]), np.bool_)
    serves = np.empty((N, N), np.bool_)
    for b in range(mask.shape[0]):
        _mask_env(w, lay, b, present, serves, mask[b])


@njit(cache=True)
def _rank_in_group(k, group, key, keep):
    """Rank of candidate ``k`` among the kept candidates of its group, by ascending
    ``key`` (ties: the lower candidate index, i.e. the lower row, first)."""
    rank = 0
    for j in range(group.shape[0]):
        if keep[j] and j != k and group[j] == group[k]:
            if key[j] < key[k] or (key[j] == key[k] and j < k):
                rank += 1
    return rank


@njit(cache=True)
def _admit(max_jobs, slots_used, slots_reserved, max_tasks, b, K, src, tgt, prio, keep,
           scratch_key, scratch_keep):  # fmt: skip
    """Seed 000: the highest-priority rows of each source, at most ``max_tasks``, within
    the target's free slots (several sources may pick one target: the lower source
    index first, then priority). Updates ``keep[:K]`` in place."""
    for k in range(K):
        scratch_key[k] = -prio[k]
    for k in range(K):
        scratch_keep[k] = keep[k] and _rank_in_group(k, src[:K], scratch_key[:K], keep[:K]) < (
            max_tasks
        )
    for k in range(K):
        scratch_key[k] = src[k] * 1e3 - prio[k]
    for k in range(K):
        if scratch_keep[k]:
            rank = _rank_in_group(k, tgt[:K], scratch_key[:K], scratch_keep[:K])
            keep[k] = rank < _free_slots(max_jobs, slots_used, slots_reserved, b, tgt[k])
        else:
            keep[k] = False


@njit(cache=True)
def _start_migrations(w, lay, p, b, K, rows, src, tgt, keep, orphan, code, urgency, n_rows,
                      state_mb, target, started):  # fmt: skip
    """Reserve the target slots of the kept migrating candidates and open one migration
    per source (keep-before-break plan, cost, success probability). Returns its cost."""
    N = state_mb.shape[0]
    n_rows[:] = 0
    state_mb[:] = 0.0
    for k in range(K):
        if keep[k] and not orphan[k]:
            n = src[k]
            n_rows[n] += 1
            state_mb[n] += w.task_state_mb[b, rows[k]]
            target[n] = tgt[k]
            reserve_row(w.slots_reserved, w.task_mig_target, b, rows[k], tgt[k])
    now = w.time_s[b]
    cost_sum = 0.0
    for n in range(N):
        started[b, n] = n_rows[n] > 0
        if not started[b, n]:
            continue
        m = target[n]
        delay = migration_delay_at(
            state_mb[n], lay.hops[n, m], p.parallel_factor, p.backhaul_mbps, p.hop_latency_ms
        )
        cost = migration_cost_at(
            state_mb[n], delay, p.state_mb_ref, p.backhaul_mbps, p.alpha_comp, p.alpha_tx,
            p.alpha_lat,
        )  # fmt: skip
        w.mig_active[b, n] = True
        w.mig_target[b, n] = m
        w.mig_start_s[b, n] = now
        w.mig_end_s[b, n] = now + delay
        w.mig_downtime_s[b, n] = p.switch_fraction * delay  # the switch phase
        w.mig_success_p[b, n] = success_probability_at(
            lay.distance_m[n, m], w.view_load[b, m], urgency[b, n], p.success_base,
            p.success_distance_m, p.success_distance_cap, p.success_load_weight,
            p.success_urgency_weight,
        )  # fmt: skip
        w.mig_cost[b, n] = cost
        w.mig_trigger[b, n] = _POLICY if code[b, n] == _NONE else code[b, n]
        cost_sum += cost
    return cost_sum


@njit(cache=True)
def _clear_rows(task_retry_src, b, which):
    """Unmark the rows waiting for the retries of sources ``which`` (N,)."""
    for t in range(task_retry_src.shape[1]):
        s = task_retry_src[b, t]
        if s >= 0 and which[s]:
            task_retry_src[b, t] = -1


@njit(cache=True)
def _clear_chain(retry_pending, retry_attempt, retry_tried, task_retry_src, b, which):
    """Forget the retry chains of sources ``which`` (N,) (the backoff count stays)."""
    for n in range(which.shape[0]):
        if which[n]:
            retry_pending[b, n] = False
            retry_attempt[b, n] = 0
            retry_tried[b, n, :] = False
    _clear_rows(task_retry_src, b, which)


# ---------------------------------------------------------------- step 1: decisions


@njit(cache=True)
def _admit_and_start(
    w, lay, p, b, K, rows, src, tgt, prio, keep, key, keep2, orphan, code, urgency, n_rows,
    state_mb, target, started,
):  # fmt: skip
    """Admit the ``K`` candidate rows of env ``b`` (:func:`_admit`), then start the
    migrations of the sources left with rows (:func:`_start_migrations`); their cost."""
    _admit(
        lay.max_jobs, w.slots_used, w.slots_reserved, p.max_tasks, b, K, src, tgt, prio,
        keep, key, keep2,
    )  # fmt: skip
    return _start_migrations(
        w, lay, p, b, K, rows, src, tgt, keep, orphan, code, urgency, n_rows, state_mb,
        target, started,
    )  # fmt: skip


@njit(cache=True)
def _decide_env(
    w, lay, p, actions, code, urgency, mask, invalid, started, started_cost, failovers,
    failover_failed, recovery_s, restart_s, exhausted, hop_s, present, serves, rows, src,
    tgt, prio, key, near, orphan, keep, keep2, has_near, n_rows, state_mb, target, b,
):  # fmt: skip
    """The body of :func:`_decisions` for environment ``b``."""
    T, N = w.task_state.shape[1], code.shape[1]
    _mask_env(w, lay, b, present, serves, mask[b])
    now = w.time_s[b]
    invalid[b] = 0
    for n in range(N):
        if actions[b, n] > 0 and not mask[b, n, actions[b, n]]:
            invalid[b] += 1
    K = 0
    for t in range(T):
        host = w.task_host[b, t]
        s, is_orphan = _source_of(
            w.task_state[b, t], host, w.task_mig_target[b, t], w.task_origin[b, t],
            w.view_up[b, max(host, 0)],
        )  # fmt: skip
        if s < 0:
            continue
        a = actions[b, s]
        if a <= 0 or not mask[b, s, a] or not lay.capability[a - 1, w.task_service[b, t]]:
            continue
        v = w.task_vehicle[b, t]
        rows[K], src[K], tgt[K], orphan[K] = t, s, a - 1, is_orphan
        near[K] = w.veh_access[b, v] == a - 1 and w.veh_active[b, v]
        # seed 000 priority; sessions first among attached rows of a migration only; a
        # failover serves high priority levels first (seed 001), then the same formula
        pr = task_priority_at(urgency[b, s], w.task_deadline_s[b, t] - now)
        session = w.task_kind[b, t] == KIND_SESSION and not is_orphan
        pr = selection_priority_at(pr, near[K], session)
        prio[K] = w.task_priority[b, t] + pr if is_orphan else pr
        K += 1
    # a migration toward the vehicles attached to its target moves only those; with
    # none attached it is an offload (seed 000's overload case) and takes the best rows
    has_near[:] = False
    for k in range(K):
        if near[k] and not orphan[k]:
            has_near[src[k]] = True
    for k in range(K):
        keep[k] = orphan[k] or near[k] or not has_near[src[k]]
    started_cost[b] = _admit_and_start(
        w, lay, p, b, K, rows, src, tgt, prio, keep, key, keep2, orphan, code, urgency,
        n_rows, state_mb, target, started,
    )  # fmt: skip
    for n in range(N):  # a controller migration opens a new retry chain (seed 003)
        if started[b, n]:
            w.mig_retry[b, n] = False
            w.retry_attempt[b, n] = 1
            w.retry_tried[b, n, :] = False
            w.retry_tried[b, n, w.mig_target[b, n]] = True
    failovers[b] = failover_failed[b] = 0
    recovery_s[b] = restart_s[b] = 0.0
    exhausted[b, :] = False
    for k in range(K):
        if not (keep[k] and orphan[k]):
            continue
        t, m = rows[k], tgt[k]
        if not w.node_up[b, m]:  # the controller's view of the target was stale
            w.task_attempts[b, t] += 1
            failover_failed[b] += 1
            exhausted[b, t] = w.task_attempts[b, t] >= p.max_reassignment_attempts
            continue
        backup = w.task_backup[b, t]
        restore = p.replication and backup >= 0 and w.node_up[b, max(backup, 0)]
        if restore:  # from the replica: its state over the backhaul (none if local)
            delay = 0.0
            if backup != m:
                delay = transfer_time_at(w.task_state_mb[b, t], p.backhaul_mbps)
                delay += lay.hops[backup, m] * hop_s
            w.task_done[b, t] = w.task_replica[b, t]
        else:  # from scratch: the input again
            delay = transfer_time_at(w.task_input_mb[b, t], p.backhaul_mbps)
            w.task_done[b, t] = 0.0
        w.task_replica[b, t] = w.task_done[b, t]
        dispatch_row(w.slots_used, w.task_state, w.task_host, w.task_origin, b, t, m)
        w.task_ready_s[b, t] = now + delay
        w.veh_serving[b, w.task_vehicle[b, t]] = m
        failovers[b] += 1
        recovery_s[b] += now + delay - w.task_interrupted_s[b, t]
        restart_s[b] += delay
        w.task_interrupted_s[b, t] = np.nan


def _decisions(ws, ls, p, actions, code, urgency, mask, invalid, started, started_cost,
               failovers, failover_failed, recovery_s, restart_s, exhausted):  # fmt: skip
    w, lay = MigrationState(*ws), LayoutArrays(*ls)
    B, T = w.task_state.shape
    N = actions.shape[1]
    S = lay.capability.shape[1]
    hop_s = p.hop_latency_ms / 1000.0
    chunks = min(B, parallel.CHUNKS)
    for c in prange(chunks):  # scratch per chunk of the batch: the parallel variant shares none
        present, serves = np.empty((N, S), np.bool_), np.empty((N, N), np.bool_)
        rows, src, tgt = np.empty(T, np.int64), np.empty(T, np.int64), np.empty(T, np.int64)
        prio, key = np.empty(T), np.empty(T)
        near, orphan = np.empty(T, np.bool_), np.empty(T, np.bool_)
        keep, keep2 = np.empty(T, np.bool_), np.empty(T, np.bool_)
        has_near = np.empty(N, np.bool_)
        n_rows, state_mb, target = np.empty(N, np.int64), np.empty(N), np.empty(N, np.int64)
        for b in range(c * B // chunks, (c + 1) * B // chunks):
            _decide_env(
                w, lay, p, actions, code, urgency, mask, invalid, started,
                started_cost, failovers, failover_failed, recovery_s, restart_s,
                exhausted, hop_s, present, serves, rows, src, tgt, prio, key, near,
                orphan, keep, keep2, has_near, n_rows, state_mb, target, b,
            )  # fmt: skip


def action_mask(world: World, layout: Layout, cfg: ScenarioConfig) -> np.ndarray:
    """Valid decisions, (B, N, N + 1) bool; column 0 (do nothing) is always valid.

    A source believed up is refused while it migrates, cools down (backs off) or has
    a retry pending; while the controller is out only column 0 is valid."""
    B, N = world.slots_used.shape
    mask = np.empty((B, N, N + 1), dtype=bool)
    _mask_kernel(world.subset_arrays(MaskState), layout_tuple(layout), mask)
    return mask


_decisions_kernel, _decisions_parallel = compile_both("decisions", _decisions)


def apply_decisions(
    world: World, layout: Layout, cfg: ScenarioConfig, actions: np.ndarray
) -> dict[str, np.ndarray]:
    """Start the migrations and failovers that ``actions`` (B, N) ask for.

    Returns a dict of arrays: ``invalid`` (B,) choices that were no-ops;
    ``started`` (B, N) sources whose migration began; ``started_cost`` (B,);
    ``failovers``, ``failover_failed``, ``recovery_s``, ``restart_downtime_s``
    (B,); ``exhausted`` (B, T) tasks that used up their failover attempts.
    """
    B, N = world.slots_used.shape
    T = world.task_state.shape[1]
    actions = np.asarray(actions, np.int64)
    if not (actions > 0).any():  # nothing asked: nothing starts, nothing is invalid
        return {
            "invalid": np.zeros(B, np.int64),
            "started": np.zeros((B, N), bool),
            "started_cost": np.zeros(B),
            "failovers": np.zeros(B, np.int64),
            "failover_failed": np.zeros(B, np.int64),
            "recovery_s": np.zeros(B),
            "restart_downtime_s": np.zeros(B),
            "exhausted": np.zeros((B, T), bool),
        }
    code, urgency, *_ = node_triggers(world, layout, cfg)
    out = {
        "invalid": np.empty(B, np.int64),
        "started": np.empty((B, N), bool),
        "started_cost": np.empty(B),
        "failovers": np.empty(B, np.int64),
        "failover_failed": np.empty(B, np.int64),
        "recovery_s": np.empty(B),
        "restart_downtime_s": np.empty(B),
        "exhausted": np.empty((B, T), bool),
    }
    parallel.run(
        world, "decisions", B,
        world.subset_arrays(MigrationState), layout_tuple(layout), migration_params(cfg), actions,
        code, urgency, np.empty((B, N, N + 1), bool),
        *out.values(),
    )  # fmt: skip
    return out


# ---------------------------------------------------------------- step 1: retries


@njit(cache=True)
def _retry_env(
    w, lay, p, code, urgency, started, started_cost, exhausted, orphan, due, gone, has_rows,
    best, serves, rows, src, tgt, prio, key, keep, keep2, n_rows, state_mb, target, b,
):  # fmt: skip
    """The body of :func:`_retries` for environment ``b``."""
    T, N = w.task_state.shape[1], code.shape[1]
    now = w.time_s[b]
    started[b, :] = False
    started_cost[b] = 0.0
    exhausted[b, :] = False
    if not w.retry_pending[b].any():
        return
    for n in range(N):
        pending = w.retry_pending[b, n]
        due[n] = (
            pending
            and w.view_up[b, n]
            and w.ctrl_up[b]
            and not w.mig_active[b, n]
            and now >= w.cooldown_until_s[b, n] - 1e-9
        )
        gone[n] = pending and not w.view_up[b, n]  # its source is believed down
        has_rows[n] = False
    # the rows of a due retry: still running on its source and not migrating
    serves[:, :] = False
    for t in range(T):
        host = w.task_host[b, t]
        if (
            w.task_state[b, t] == RUNNING
            and w.task_mig_target[b, t] < 0
            and w.task_retry_src[b, t] == host
            and due[host]
        ):
            has_rows[host] = True
            for m in range(N):
                if lay.capability[m, w.task_service[b, t]]:
                    serves[host, m] = True
    # the target: the valid untried node of best seed 000 score (ties: lowest index)
    for n in range(N):
        best[n] = -1
        if not (due[n] and has_rows[n]):
            gone[n] |= due[n]  # its rows are gone: the chain ends silently
            continue
        w_cap = p.uav_capacity_weight if lay.is_uav[n] else p.rsu_capacity_weight
        top = -np.inf
        for m in range(N):
            if (
                serves[n, m]
                and not w.retry_tried[b, n, m]
                and m != n
                and w.view_up[b, m]
                and _free_slots(lay.max_jobs, w.slots_used, w.slots_reserved, b, m) > 0
            ):
                load = (w.slots_used[b, m] + w.slots_reserved[b, m]) / lay.max_jobs[m]
                score = target_score_at(load, lay.distance_m[n, m], w_cap, p.distance_scale_m)
                if best[n] < 0 or score > top:
                    best[n], top = m, score
        if best[n] < 0:  # no untried target is valid: the chain is exhausted
            exhausted[b, n] = True
            gone[n] = True
    K = 0
    for t in range(T):
        host = w.task_host[b, t]
        if (
            w.task_state[b, t] != RUNNING
            or w.task_mig_target[b, t] >= 0
            or w.task_retry_src[b, t] != host
            or not due[host]
            or best[host] < 0
            or not lay.capability[best[host], w.task_service[b, t]]
        ):
            continue
        rows[K], src[K], tgt[K] = t, host, best[host]
        prio[K] = task_priority_at(urgency[b, host], w.task_deadline_s[b, t] - now)
        keep[K] = True
        K += 1
    started_cost[b] = _admit_and_start(
        w, lay, p, b, K, rows, src, tgt, prio, keep, key, keep2, orphan, code, urgency,
        n_rows, state_mb, target, started,
    )  # fmt: skip
    for n in range(N):
        if started[b, n]:
            w.mig_retry[b, n] = True
            w.retry_attempt[b, n] += 1
            w.retry_tried[b, n, w.mig_target[b, n]] = True
            w.retry_pending[b, n] = False
    _clear_chain(w.retry_pending, w.retry_attempt, w.retry_tried, w.task_retry_src, b, gone)
    _clear_rows(w.task_retry_src, b, started[b])


def _retries(ws, ls, p, code, urgency, started, started_cost, exhausted):
    w, lay = MigrationState(*ws), LayoutArrays(*ls)
    B, T = w.task_state.shape
    N = code.shape[1]
    orphan = np.zeros(T, np.bool_)  # read only: retried rows are never orphans
    chunks = min(B, parallel.CHUNKS)
    for c in prange(chunks):  # scratch per chunk of the batch: the parallel variant shares none
        due, gone = np.empty(N, np.bool_), np.empty(N, np.bool_)
        has_rows, best = np.empty(N, np.bool_), np.empty(N, np.int64)
        serves = np.empty((N, N), np.bool_)
        rows, src, tgt = np.empty(T, np.int64), np.empty(T, np.int64), np.empty(T, np.int64)
        prio, key = np.empty(T), np.empty(T)
        keep, keep2 = np.empty(T, np.bool_), np.empty(T, np.bool_)
        n_rows, state_mb, target = np.empty(N, np.int64), np.empty(N), np.empty(N, np.int64)
        for b in range(c * B // chunks, (c + 1) * B // chunks):
            _retry_env(
                w, lay, p, code, urgency, started, started_cost, exhausted, orphan,
                due, gone, has_rows, best, serves, rows, src, tgt, prio, key, keep,
                keep2, n_rows, state_mb, target, b,
            )  # fmt: skip


_retries_kernel, _retries_parallel = compile_both("retries", _retries)


def start_retries(
    world: World, layout: Layout, cfg: ScenarioConfig, code: np.ndarray, urgency: np.ndarray
) -> dict[str, np.ndarray]:
    """Seed 003's retry on another peer, after the controller's decisions (step 1).

    A pending retry of source ``n`` is due once its backoff is over (``t >=
    cooldown_until[n]``) and the controller is up. Its rows are those of the failed
    migration still RUNNING on ``n`` and not migrating. The target is the valid
    ``m`` (believed up, a free slot, runs the service of one of the rows, ``m != n``)
    not yet tried by the chain that maximises seed 000's score ``w (1 - load_m) +
    (1 - w) / (1 + d_nm / 1000)`` (``w`` 0.7 from an RSU, 0.8 from a UAV; load from
    the ledger: used + reserved slots over max_jobs; ties: lowest index). Rows are
    admitted as in :func:`apply_decisions` (seed 000 priority, at most
    ``max_tasks_per_migration``, within the target's free slots). A chain ends
    silently when its source is believed down or its rows are gone, and counts as
    exhausted when no untried target is valid. A due retry none of whose rows fits
    the target's free slots (taken by another source's retry this tick) waits a tick.

    Returns ``started``, ``started_cost`` (as :func:`apply_decisions`) and
    ``exhausted`` (B, N).
    """
    B, N = world.slots_used.shape
    out = {
        "started": np.empty((B, N), bool),
        "started_cost": np.empty(B),
        "exhausted": np.empty((B, N), bool),
    }
    parallel.run(
        world, "retries", B,
        world.subset_arrays(MigrationState), layout_tuple(layout), migration_params(cfg), code,
        urgency,
        *out.values(),
    )  # fmt: skip
    return out


# ---------------------------------------------------------------- steps 2, 7, 8: outcomes


@njit(cache=True)
def _migration_failed(cooldown_until_s, retry_fails, retry_pending, retry_attempt, retry_tried,
                      task_state, task_host, task_mig_target, task_retry_src, next_peer,
                      cooldown_s, max_attempts, b, failed, end_s, exhausted):  # fmt: skip
    """Sources ``failed`` (N,) whose migration failed or was cancelled at ``end_s`` (N,):
    start the cooldown (``retry_policy = none``) or the exponential backoff and, with
    attempts left, schedule a retry of its rows. Call before :func:`_end`. Marks the
    chains exhausted by this failure in ``exhausted`` (N,)."""
    N = failed.shape[0]
    exhausted[:] = False
    if not next_peer:
        for n in range(N):
            if failed[n]:
                cooldown_until_s[b, n] = end_s[n] + cooldown_s
        return
    for n in range(N):
        if failed[n]:
            retry_fails[b, n] += 1
            doublings = min(max(retry_fails[b, n] - 1, 0), MAX_BACKOFF_DOUBLINGS)
            cooldown_until_s[b, n] = end_s[n] + cooldown_s * 2.0**doublings
    for t in range(task_state.shape[1]):
        host = task_host[b, t]
        if task_mig_target[b, t] >= 0 and failed[max(host, 0)]:
            task_retry_src[b, t] = host
    for n in range(N):
        if failed[n]:
            if retry_attempt[b, n] < max_attempts:
                retry_pending[b, n] = True
            else:
                exhausted[n] = True
    _clear_chain(retry_pending, retry_attempt, retry_tried, task_retry_src, b, exhausted)


@njit(cache=True)
def _end(task_mig_target, task_host, slots_reserved, mig_active, b, which):
    """Close the migrations of sources ``which`` (N,): release what is still reserved."""
    for t in range(task_mig_target.shape[1]):
        if task_mig_target[b, t] >= 0 and which[max(task_host[b, t], 0)]:
            unreserve_row(slots_reserved, task_mig_target, b, t)
    for n in range(which.shape[0]):
        if which[n]:
            mig_active[b, n] = False


@njit(cache=True)
def _cancel_kernel(ws, p, broken, exhausted):
    w = CancelState(*ws)
    B, N = broken.shape
    end_s = np.empty(N)
    for b in range(B):
        any_broken = False
        for n in range(N):
            target_up = w.node_up[b, max(w.mig_target[b, n], 0)]
            broken[b, n] = w.mig_active[b, n] and not (w.node_up[b, n] and target_up)
            any_broken |= broken[b, n]
        exhausted[b, :] = False
        if any_broken:
            end_s[:] = w.time_s[b]
            _migration_failed(
                w.cooldown_until_s, w.retry_fails, w.retry_pending, w.retry_attempt,
                w.retry_tried, w.task_state, w.task_host, w.task_mig_target, w.task_retry_src,
                p.next_peer, p.cooldown_s, p.max_attempts, b, broken[b], end_s, exhausted[b],
            )  # fmt: skip
            _end(w.task_mig_target, w.task_host, w.slots_reserved, w.mig_active, b, broken[b])


def cancel_broken(world: World, cfg: ScenarioConfig) -> tuple[np.ndarray, np.ndarray]:
    """Migrations whose source or target is down end CANCELLED (rollback, then the
    source's cooldown or backoff starts, as after a failed migration). Returns the
    (B, N) masks (cancelled, chains exhausted)."""
    shape = world.mig_active.shape
    broken, exhausted = np.empty(shape, bool), np.empty(shape, bool)
    _cancel_kernel(world.subset_arrays(CancelState), migration_params(cfg), broken, exhausted)
    return broken, exhausted


@njit(cache=True)
def _due_kernel(key, tick, time_s, mig_active, mig_end_s, mig_success_p, dt_s, node_index,
                due, success):  # fmt: skip
    B, N = due.shape
    for b in range(B):
        for n in range(N):
            due[b, n] = mig_active[b, n] and mig_end_s[b, n] <= time_s[b] + dt_s + 1e-9
            u = uniform_at(key[b], tick[b], _S_SUCCESS, node_index[n])
            success[b, n] = due[b, n] and u < mig_success_p[b, n]


def due_outcomes(world: World, cfg: ScenarioConfig, node_index: np.ndarray):
    """Migrations ending within this tick and whether each succeeds (seed 000 draw)."""
    w = world
    due, success = np.empty(w.mig_active.shape, bool), np.empty(w.mig_active.shape, bool)
    _due_kernel(
        w.key, w.tick, w.time_s, w.mig_active, w.mig_end_s, w.mig_success_p, float(cfg.dt_s),
        np.ravel(node_index).astype(np.uint64), due, success,
    )  # fmt: skip
    return due, success


@njit(cache=True)
def _blocked_kernel(task_host, task_mig_target, mig_downtime_s, success, out):
    for b in range(out.shape[0]):
        for t in range(out.shape[1]):
            host = max(task_host[b, t], 0)
            moving = task_mig_target[b, t] >= 0 and success[b, host]
            out[b, t] = mig_downtime_s[b, host] if moving else 0.0


def switch_blocked_s(world: World, success: np.ndarray) -> np.ndarray:
    """Per task, the switch downtime it suffers this tick (for the compute step), (B, T)."""
    w = world
    out = np.empty(w.task_host.shape)
    _blocked_kernel(w.task_host, w.task_mig_target, w.mig_downtime_s, success, out)
    return out


@njit(cache=True)
def _finish_kernel(ws, p, due, success, retry_ok, exhausted):
    w = MigrationState(*ws)
    B, N = due.shape
    T = w.task_state.shape[1]
    failed, ok = np.empty(N, np.bool_), np.empty(N, np.bool_)
    end_s = np.empty(N)
    for b in range(B):
        retry_ok[b, :] = False
        exhausted[b, :] = False
        if not due[b].any():
            continue
        for n in range(N):
            ok[n] = due[b, n] and success[b, n]
            failed[n] = due[b, n] and not success[b, n]
            end_s[n] = w.mig_end_s[b, n]
        for t in range(T):  # commit: the target has the row, then the source lets it go
            if w.task_mig_target[b, t] >= 0 and ok[max(w.task_host[b, t], 0)]:
                commit_row(
                    w.slots_used, w.slots_reserved, w.task_host, w.task_origin,
                    w.task_mig_target, b, t,
                )  # fmt: skip
                w.veh_serving[b, w.task_vehicle[b, t]] = w.task_host[b, t]
        for n in range(N):
            if ok[n]:
                w.cooldown_until_s[b, n] = end_s[n] + p.cooldown_s
        _migration_failed(
                w.cooldown_until_s, w.retry_fails, w.retry_pending, w.retry_attempt,
                w.retry_tried, w.task_state, w.task_host, w.task_mig_target, w.task_retry_src,
                p.next_peer, p.cooldown_s, p.max_attempts, b, failed, end_s, exhausted[b],
            )  # fmt: skip
        for n in range(N):
            retry_ok[b, n] = ok[n] and w.mig_retry[b, n]
            if ok[n]:
                w.retry_fails[b, n] = 0
        _clear_chain(w.retry_pending, w.retry_attempt, w.retry_tried, w.task_retry_src, b, ok)
        for n in range(N):
            if due[b, n]:
                w.mig_retry[b, n] = False
        _end(
            w.task_mig_target, w.task_host, w.slots_reserved, w.mig_active, b, due[b]
        )  # a failed one rolls back: its reservations are released


def finish(world: World, cfg: ScenarioConfig, due: np.ndarray, success: np.ndarray):
    """Commit successful migrations, roll back failed ones, start cooldowns (a failed
    one: the backoff, and its retry, see :func:`_migration_failed`). Returns the
    (B, N) masks (retries succeeded, chains exhausted)."""
    shape = due.shape
    retry_ok, exhausted = np.empty(shape, bool), np.empty(shape, bool)
    _finish_kernel(
        world.subset_arrays(MigrationState),
        migration_params(cfg),
        due,
        success,
        retry_ok,
        exhausted,
    )
    return retry_ok, exhausted
