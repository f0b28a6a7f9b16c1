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

import numpy as np

from . import formulas, ledger
from .arrays import gather, rank_within
from .config import ScenarioConfig
from .layout import Layout
from .rng import Stream, uniform
from .triggers import Trigger, node_triggers
from .world import KIND_SESSION, ORPHANED, RUNNING, World

AFFINITY_PRIORITY = 2.0  # above any seed 000 priority (<= 1), below a priority level gap (3)
SESSION_PRIORITY = 1.0  # attached sessions before attached tasks (migrations only)
MAX_BACKOFF_DOUBLINGS = 20  # backoff cap: cooldown_s * 2**20 (121 days at 10 s), no overflow


def candidate_source(world: World) -> tuple[np.ndarray, np.ndarray]:
    """For every task row: the node whose decision can move it (-1 if none) and whether
    that would be a failover. Migratable: running, not migrating, on a node believed up.
    Failover-able: orphaned (its origin node was declared down)."""
    host = world.task_host
    on_up = gather(world.view_up, np.maximum(host, 0))
    movable = (world.task_state == RUNNING) & (world.task_mig_target < 0) & on_up
    orphan = world.task_state == ORPHANED
    source = np.where(movable, host, np.where(orphan, world.task_origin, -1))
    return source, orphan


def action_mask(world: World, layout: Layout, cfg: ScenarioConfig) -> np.ndarray:
    """Valid decisions, (B, N, N + 1) bool; column 0 (do nothing) is always valid.

    A source believed up is refused while it migrates, cools down (backs off) or has
    a retry pending; while the controller is out only column 0 is valid."""
    B, N = world.slots_used.shape
    source, _ = candidate_source(world)
    env, task = np.nonzero(source >= 0)
    serves, _ = _serving_targets(world, layout, env, task, source[env, task])
    target_ok = _open_targets(world, layout)
    source_ok = np.where(
        world.view_up,
        ~world.mig_active
        & ~world.retry_pending
        & (world.time_s[:, None] >= world.cooldown_until_s),
        True,
    )
    valid = serves & target_ok[:, None, :] & source_ok[:, :, None]
    valid &= ~np.eye(N, dtype=bool)[None]
    valid &= world.ctrl_up[:, None, None]  # controller out: nothing but "do nothing"
    mask = np.ones((B, N, N + 1), dtype=bool)
    mask[:, :, 1:] = valid
    return mask


def _serving_targets(
    world: World, layout: Layout, env: np.ndarray, task: np.ndarray, src: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For the rows ``(env, task)`` of sources ``src``: (B, N, N) whether node m runs the
    service of at least one row of source n, and (B, N) whether n has any row."""
    B, N = world.slots_used.shape
    S = layout.capability.shape[1]
    svc = world.task_service[env, task]
    counts = np.bincount((env * N + src) * S + svc, minlength=B * N * S).reshape(B, N, S)
    present = (counts > 0).astype(np.float64)
    serves = np.einsum("bns,ms->bnm", present, layout.capability.astype(np.float64)) > 0
    return serves, counts.any(-1)


def _open_targets(world: World, layout: Layout) -> np.ndarray:
    """(B, N) nodes that can take a row now: believed up, with a free slot."""
    return world.view_up & (ledger.free_slots(world, layout) > 0)


def selection_priority(base: np.ndarray, near: np.ndarray, session: np.ndarray) -> np.ndarray:
    """The order in which a move toward a target takes a source's rows: rows whose
    vehicle is attached to the target first (session affinity, seed 004), sessions first
    among those, then seed 000's priority ``base``."""
    return base + AFFINITY_PRIORITY * near + SESSION_PRIORITY * (session & near)


def attached_only(group: np.ndarray, near: np.ndarray, n_groups: int) -> np.ndarray:
    """Keep mask of the rows a move takes: in a move (``group``) that has rows attached to
    its target (``near``), only those; in one without (an offload), all."""
    has_near = np.zeros(n_groups, dtype=bool)
    has_near[group[near]] = True
    return near | ~has_near[group]


def _admit(world, layout, cfg, env, task, src, tgt, prio):
    """Seed 000: the highest-priority rows of each source, at most
    ``max_tasks_per_migration``, within the target's free slots (several sources may
    pick one target: the lower source index first, then priority)."""
    N = world.slots_used.shape[1]
    keep = rank_within(env * N + src, -prio) < cfg.migration.max_tasks_per_migration
    env, task, src, tgt, prio = env[keep], task[keep], src[keep], tgt[keep], prio[keep]
    key = src.astype(np.float64) * 1e3 - prio
    admit = rank_within(env * N + tgt, key) < ledger.free_slots(world, layout)[env, tgt]
    return env[admit], task[admit], src[admit], tgt[admit]


def apply_decisions(
    world: World, layout: Layout, cfg: ScenarioConfig, actions: np.ndarray, node_index: np.ndarray
) -> dict[str, np.ndarray]:
    """Start the migrations and failovers that ``actions`` (B, N) ask for.

    Returns a dict of arrays: ``invalid`` (B,) choices that were no-ops;
    ``started`` (B, N) sources whose migration began; ``started_cost`` (B,);
    ``failovers``, ``failover_failed``, ``recovery_s``, ``restart_downtime_s``
    (B,); ``exhausted`` (B, T) tasks that used up their failover attempts.
    """
    B, N = world.slots_used.shape
    now = world.time_s
    mask = action_mask(world, layout, cfg)
    chosen = np.take_along_axis(mask, actions[..., None], axis=2)[..., 0]
    wants = actions > 0
    invalid = (wants & ~chosen).sum(1)
    go = wants & chosen
    target_of = actions - 1  # (B, N)

    code, urgency, *_ = node_triggers(world, layout, cfg)
    source, orphan = candidate_source(world)
    src0 = np.maximum(source, 0)
    tgt = gather(target_of, src0)
    cand = (source >= 0) & gather(go, src0)
    cand &= layout.capability[np.maximum(tgt, 0), world.task_service]
    env, task = np.nonzero(cand)
    src, tgt = source[env, task], tgt[env, task]
    remaining = world.task_deadline_s[env, task] - now[env]
    # Seed 000 task priority for migrations; failovers serve high priority levels
    # first (seed 001, priority_based_reassignment), then by the same formula.
    # Session affinity (seed 004): tasks whose vehicle is attached to the target
    # come first, so "move to m" hands over the sessions that now live near m.
    prio = formulas.task_priority(urgency[env, src], remaining)
    veh = world.task_vehicle[env, task]
    near = (world.veh_access[env, veh] == tgt) & world.veh_active[env, veh]
    migrating = ~orphan[env, task]
    # Sessions first only among attached rows of a migration: an offload ranks by seed
    # 000's priority alone, and a failover's priority levels (seed 001) must stay apart.
    session = (world.task_kind[env, task] == KIND_SESSION) & migrating
    prio = selection_priority(prio, near, session)
    prio = np.where(orphan[env, task], world.task_priority[env, task] + prio, prio)
    # A migration toward the vehicles attached to the target moves only those: the
    # other rows' vehicles are elsewhere and would move away from them. With none
    # attached it is an offload (seed 000's overload case) and takes the best rows.
    keep = ~migrating | attached_only(env * N + src, near & migrating, B * N)
    env, task, src, tgt, prio = env[keep], task[keep], src[keep], tgt[keep], prio[keep]
    env, task, src, tgt = _admit(world, layout, cfg, env, task, src, tgt, prio)
    is_fo = orphan[env, task]

    out: dict[str, np.ndarray] = {"invalid": invalid}
    out.update(
        _start_migrations(
            world, layout, cfg, env[~is_fo], task[~is_fo], src[~is_fo], tgt[~is_fo], code, urgency
        )
    )
    # A controller migration opens a new retry chain of its source (seed 003).
    started = out["started"]
    world.mig_retry &= ~started
    world.retry_attempt[:] = np.where(started, 1, world.retry_attempt)
    world.retry_tried &= ~started[:, :, None]
    e, n = np.nonzero(started)
    world.retry_tried[e, n, world.mig_target[e, n]] = True
    out.update(_failover(world, layout, cfg, env[is_fo], task[is_fo], src[is_fo], tgt[is_fo]))
    return out


def _start_migrations(world, layout, cfg, env, task, src, tgt, code, urgency):
    B, N = world.slots_used.shape
    mc = cfg.migration
    idx = env * N + src
    n_tasks = np.bincount(idx, minlength=B * N).reshape(B, N)
    state_mb = np.bincount(idx, weights=world.task_state_mb[env, task], minlength=B * N).reshape(
        B, N
    )
    started = n_tasks > 0
    target = np.full((B, N), -1, dtype=np.int64)
    target[env, src] = tgt
    t0 = np.maximum(target, 0)
    n_idx = np.arange(N)[None, :]
    hops = layout.hops[n_idx, t0]
    dist = layout.distance_m[n_idx, t0]
    delay = formulas.migration_delay_s(state_mb, hops, mc, cfg.radio.hop_latency_ms)
    _, _, switch = formulas.phase_durations_s(delay, mc)
    target_load = gather(world.view_load, t0)
    p = formulas.success_probability(dist, target_load, urgency, mc)
    cost = formulas.migration_cost(state_mb, delay, mc)
    trig = np.where(code == Trigger.NONE, Trigger.POLICY, code)
    now = world.time_s[:, None]
    ledger.reserve(world, layout, env, task, tgt)
    world.mig_active |= started
    world.mig_target[:] = np.where(started, target, world.mig_target)
    world.mig_start_s[:] = np.where(started, now, world.mig_start_s)
    world.mig_end_s[:] = np.where(started, now + delay, world.mig_end_s)
    world.mig_downtime_s[:] = np.where(started, switch, world.mig_downtime_s)
    world.mig_success_p[:] = np.where(started, p, world.mig_success_p)
    world.mig_cost[:] = np.where(started, cost, world.mig_cost)
    world.mig_trigger[:] = np.where(started, trig, world.mig_trigger)
    return {
        "started": started,
        "started_cost": np.where(started, cost, 0.0).sum(1),
    }


def _failover(world, layout, cfg, env, task, src, tgt):
    B, T = world.task_state.shape
    fc = cfg.faults
    if env.size == 0:
        zeros = np.zeros(B)
        return {
            "failovers": zeros,
            "failover_failed": zeros,
            "exhausted": np.zeros((B, T), dtype=bool),
            "recovery_s": zeros,
            "restart_downtime_s": zeros,
        }
    now = world.time_s[env]
    alive = world.node_up[env, tgt]
    # Failed attempts: the controller's view of the target was stale.
    e_bad, t_bad = env[~alive], task[~alive]
    world.task_attempts[e_bad, t_bad] += 1
    exhausted = np.zeros((B, T), dtype=bool)
    over = world.task_attempts[e_bad, t_bad] >= fc.max_reassignment_attempts
    exhausted[e_bad[over], t_bad[over]] = True
    failed_attempts = np.bincount(e_bad, minlength=B)

    env, task, tgt = env[alive], task[alive], tgt[alive]
    now = now[alive]
    backup = world.task_backup[env, task]
    restore = fc.replication & (backup >= 0)
    restore &= world.node_up[env, np.maximum(backup, 0)]
    hop_s = cfg.radio.hop_latency_ms / 1000.0
    replica_delay = (
        formulas.transfer_time_s(world.task_state_mb[env, task], cfg.migration.backhaul_mbps)
        + layout.hops[np.maximum(backup, 0), tgt] * hop_s
    )
    scratch_delay = formulas.transfer_time_s(
        world.task_input_mb[env, task], cfg.migration.backhaul_mbps
    )
    delay = np.where(restore, np.where(backup == tgt, 0.0, replica_delay), scratch_delay)
    ledger.dispatch(world, layout, env, task, tgt)
    world.task_done[env, task] = np.where(restore, world.task_replica[env, task], 0.0)
    world.task_replica[env, task] = world.task_done[env, task]
    world.task_ready_s[env, task] = now + delay
    world.veh_serving[env, world.task_vehicle[env, task]] = tgt
    interrupted = world.task_interrupted_s[env, task]
    recovery = now + delay - interrupted
    world.task_interrupted_s[env, task] = np.nan
    return {
        "failovers": np.bincount(env, minlength=B),
        "failover_failed": failed_attempts,
        "exhausted": exhausted,
        "recovery_s": np.bincount(env, weights=recovery, minlength=B),
        "restart_downtime_s": np.bincount(env, weights=delay, minlength=B),
    }


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
    mc = cfg.migration
    now = world.time_s
    pending = world.retry_pending
    dead = pending & ~world.view_up
    due = pending & world.view_up & world.ctrl_up[:, None] & ~world.mig_active
    due &= now[:, None] >= world.cooldown_until_s - 1e-9
    host0 = np.maximum(world.task_host, 0)
    rows = (world.task_state == RUNNING) & (world.task_mig_target < 0)
    rows &= (world.task_retry_src == world.task_host) & gather(due, host0)
    env, task = np.nonzero(rows)
    src = world.task_host[env, task]
    svc = world.task_service[env, task]
    serves, has_rows = _serving_targets(world, layout, env, task, src)
    valid = serves & ~world.retry_tried & ~np.eye(N, dtype=bool)[None]
    valid &= _open_targets(world, layout)[:, None, :]
    load = (world.slots_used + world.slots_reserved) / layout.max_jobs
    w = np.where(layout.is_uav, mc.uav_capacity_weight, mc.rsu_capacity_weight)[None, :, None]
    score = formulas.target_score(load[:, None, :], layout.distance_m[None], w, mc.distance_scale_m)
    score = np.where(valid, score, -np.inf)
    best = np.argmax(score, axis=-1)
    fire = due & has_rows & valid.any(-1)
    exhausted = due & has_rows & ~valid.any(-1)
    gone = dead | (due & ~has_rows) | exhausted

    tgt = best[env, src]
    keep = fire[env, src] & layout.capability[tgt, svc]
    env, task, src, tgt = env[keep], task[keep], src[keep], tgt[keep]
    remaining = world.task_deadline_s[env, task] - now[env]
    prio = formulas.task_priority(urgency[env, src], remaining)
    env, task, src, tgt = _admit(world, layout, cfg, env, task, src, tgt, prio)
    out = _start_migrations(world, layout, cfg, env, task, src, tgt, code, urgency)
    started = out["started"]
    world.mig_retry |= started
    world.retry_attempt += started
    e, n = np.nonzero(started)
    world.retry_tried[e, n, world.mig_target[e, n]] = True
    world.retry_pending &= ~started
    _clear_chain(world, gone)
    _clear_rows(world, started | gone)
    out["exhausted"] = exhausted
    return out


def _clear_chain(world: World, which: np.ndarray) -> None:
    """Forget the retry chains of sources ``which`` (B, N) (the backoff count stays)."""
    world.retry_pending &= ~which
    world.retry_attempt[:] = np.where(which, 0, world.retry_attempt)
    world.retry_tried &= ~which[:, :, None]
    _clear_rows(world, which)


def _clear_rows(world: World, which: np.ndarray) -> None:
    """Unmark the rows waiting for the retries of sources ``which`` (B, N)."""
    src = world.task_retry_src
    world.task_retry_src[:] = np.where(gather(which, np.maximum(src, 0)) & (src >= 0), -1, src)


def _migration_failed(
    world: World, cfg: ScenarioConfig, failed: np.ndarray, end_s: np.ndarray
) -> np.ndarray:
    """Sources ``failed`` (B, N) whose migration failed or was cancelled at ``end_s``:
    start the cooldown (``retry_policy = none``) or the exponential backoff and, with
    attempts left, schedule a retry of its rows. Call before :func:`_end`. Returns the
    chains exhausted by this failure (B, N)."""
    mc = cfg.migration
    if mc.retry_policy == "none":
        world.cooldown_until_s[:] = np.where(failed, end_s + mc.cooldown_s, world.cooldown_until_s)
        return np.zeros_like(failed)
    world.retry_fails += failed
    wait = mc.cooldown_s * np.exp2(np.clip(world.retry_fails - 1, 0, MAX_BACKOFF_DOUBLINGS))
    world.cooldown_until_s[:] = np.where(failed, end_s + wait, world.cooldown_until_s)
    host = np.maximum(world.task_host, 0)
    rows = (world.task_mig_target >= 0) & gather(failed, host)
    world.task_retry_src[:] = np.where(rows, world.task_host, world.task_retry_src)
    more = failed & (world.retry_attempt < mc.max_attempts)
    world.retry_pending |= more
    exhausted = failed & ~more
    _clear_chain(world, exhausted)
    return exhausted


def cancel_broken(world: World, cfg: ScenarioConfig) -> tuple[np.ndarray, np.ndarray]:
    """Migrations whose source or target is down end CANCELLED (rollback, then the
    source's cooldown or backoff starts, as after a failed migration). Returns the
    (B, N) masks (cancelled, chains exhausted)."""
    t0 = np.maximum(world.mig_target, 0)
    target_up = gather(world.node_up, t0)
    broken = world.mig_active & ~(world.node_up & target_up)
    exhausted = np.zeros_like(broken)
    if broken.any():
        now = np.broadcast_to(world.time_s[:, None], broken.shape)
        exhausted = _migration_failed(world, cfg, broken, now)
        _end(world, broken)
    return broken, exhausted


def due_outcomes(world: World, cfg: ScenarioConfig, node_index: np.ndarray):
    """Migrations ending within this tick and whether each succeeds (seed 000 draw)."""
    due = world.mig_active & (world.mig_end_s <= world.time_s[:, None] + cfg.dt_s + 1e-9)
    u = uniform(world.key[:, None], world.tick[:, None], Stream.MIGRATION_SUCCESS, node_index)
    return due, due & (u < world.mig_success_p)


def switch_blocked_s(world: World, success: np.ndarray) -> np.ndarray:
    """Per task, the switch downtime it suffers this tick (for the compute step), (B, T)."""
    host = np.maximum(world.task_host, 0)
    moving = (world.task_mig_target >= 0) & gather(success, host)
    return np.where(moving, gather(world.mig_downtime_s, host), 0.0)


def finish(world: World, cfg: ScenarioConfig, due: np.ndarray, success: np.ndarray):
    """Commit successful migrations, roll back failed ones, start cooldowns (a failed
    one: the backoff, and its retry, see :func:`_migration_failed`). Returns the
    (B, N) masks (retries succeeded, chains exhausted)."""
    host = np.maximum(world.task_host, 0)
    migrating = world.task_mig_target >= 0
    moving = migrating & gather(success, host)
    e, t = np.nonzero(moving)
    veh = world.task_vehicle[e, t]
    ledger.commit_move(world, e, t)
    world.veh_serving[e, veh] = world.task_host[e, t]
    failing = migrating & gather(due & ~success, host)
    ok = due & success
    world.cooldown_until_s[:] = np.where(
        ok, world.mig_end_s + cfg.migration.cooldown_s, world.cooldown_until_s
    )
    exhausted = _migration_failed(world, cfg, due & ~success, world.mig_end_s)
    e, t = np.nonzero(failing)
    ledger.unreserve(world, e, t)
    retry_ok = ok & world.mig_retry
    world.retry_fails[:] = np.where(ok, 0, world.retry_fails)
    _clear_chain(world, ok)
    world.mig_retry &= ~due
    _end(world, due)
    return retry_ok, exhausted


def _end(world: World, which: np.ndarray) -> None:
    """Close the migrations in ``which`` (B, N): release what is still reserved."""
    host = np.maximum(world.task_host, 0)
    still = (world.task_mig_target >= 0) & gather(which, host)
    e, t = np.nonzero(still)
    ledger.unreserve(world, e, t)
    world.mig_active &= ~which
