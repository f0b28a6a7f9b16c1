"""The ledger: the one place that changes slot ownership (seed 002).

Seed 002 replaces a scheduler's scattered locked state with four atomic
operations on a single source of truth: ``register_node``, ``heartbeat``,
``dispatch_task`` and ``complete_task``. Here every change of which node
holds which task, and of slot counts, goes through the functions below. Each
takes a vector of tasks (``env`` and ``task`` row arrays) and either applies
fully or raises :class:`LedgerError` before touching anything.

Invariants (:func:`check`):

* ``slots_used[n] == #tasks hosted on n`` and ``slots_used + slots_reserved <= max_jobs``;
* ``slots_reserved[n] == #tasks migrating to n``;
* a task is hosted by at most one node, and only RUNNING tasks are hosted;
* no task is hosted on a node the controller has declared down.
"""

from __future__ import annotations

import numpy as np

from .layout import Layout
from .world import FREE, NO_NODE, ORPHANED, QUEUED, RUNNING, World


class LedgerError(RuntimeError):
    """A ledger operation would break an invariant; nothing was changed."""


def node_counts(env: np.ndarray, node: np.ndarray, batch: int, n_nodes: int) -> np.ndarray:
    """How many of the given (env, node) pairs fall on each node: shape (B, N)."""
    flat = np.bincount(env * n_nodes + node, minlength=batch * n_nodes)
    return flat.reshape(batch, n_nodes)


def free_slots(world: World, layout: Layout) -> np.ndarray:
    """Slots neither used nor reserved, (B, N)."""
    return layout.max_jobs - world.slots_used - world.slots_reserved


def _require(cond: np.ndarray | bool, message: str) -> None:
    if not np.all(cond):
        raise LedgerError(message)


def _require_distinct(world: World, env: np.ndarray, task: np.ndarray, op: str) -> None:
    """A task may appear once per call: a repeat would count its slot twice."""
    flat = env * world.task_state.shape[1] + task
    _require(np.unique(flat).size == flat.size, f"{op}: a task is listed more than once")


def register_node(world: World, env: np.ndarray, node: np.ndarray) -> None:
    """A (re)started node joins empty: it holds no task and no reservation."""
    _require(world.node_up[env, node], "register_node: node is not up")
    _require(world.slots_used[env, node] == 0, "register_node: node still holds tasks")
    world.view_up[env, node] = True
    world.last_heartbeat_s[env, node] = world.time_s[env]
    world.view_load[env, node] = 0.0  # it joins empty; battery is set by the caller


def heartbeat(world: World, beating: np.ndarray, load: np.ndarray, battery: np.ndarray) -> None:
    """Nodes in the (B, N) mask ``beating`` report their load and battery."""
    t = np.broadcast_to(world.time_s[:, None], beating.shape)
    world.last_heartbeat_s[beating] = t[beating]
    world.view_up |= beating
    world.view_load[beating] = load[beating]
    world.view_battery[beating] = battery[beating]


def dispatch(world: World, layout: Layout, env: np.ndarray, task: np.ndarray, node: np.ndarray):
    """QUEUED or ORPHANED tasks start on ``node``; each takes one free slot."""
    if env.size == 0:
        return
    B, N = world.slots_used.shape
    _require_distinct(world, env, task, "dispatch")
    state = world.task_state[env, task]
    _require((state == QUEUED) | (state == ORPHANED), "dispatch: task is not waiting")
    _require(world.task_host[env, task] == NO_NODE, "dispatch: task already hosted")
    _require(world.view_up[env, node], "dispatch: node is declared down")
    demand = node_counts(env, node, B, N)
    _require(demand <= free_slots(world, layout), "dispatch: node has no free slot")
    world.slots_used += demand
    world.task_state[env, task] = RUNNING
    world.task_host[env, task] = node
    world.task_origin[env, task] = node


def release(world: World, env: np.ndarray, task: np.ndarray) -> None:
    """Hosted tasks give up their slot (completion, miss, orphaning).

    An in-flight migration of such a task also gives back its reservation.
    """
    if env.size == 0:
        return
    B, N = world.slots_used.shape
    _require_distinct(world, env, task, "release")
    host = world.task_host[env, task]
    _require(host >= 0, "release: task is not hosted")
    migrating = world.task_mig_target[env, task] >= 0
    used = node_counts(env, host, B, N)
    _require(used <= world.slots_used, "release: more releases than slots in use")
    if migrating.any():
        e, t = env[migrating], task[migrating]
        unreserve(world, e, t)
    world.slots_used -= used
    world.task_host[env, task] = NO_NODE


def complete(world: World, env: np.ndarray, task: np.ndarray) -> None:
    """A task ends (completed, missed or dropped): free its slot and its row."""
    if env.size == 0:
        return
    _require_distinct(world, env, task, "complete")
    _require(world.task_state[env, task] != FREE, "complete: task is not live")
    hosted = world.task_host[env, task] >= 0
    release(world, env[hosted], task[hosted])
    world.task_state[env, task] = FREE
    np.subtract.at(world.veh_tasks, (env, world.task_vehicle[env, task]), 1)


def reserve(world: World, layout: Layout, env: np.ndarray, task: np.ndarray, target: np.ndarray):
    """Hold one slot on ``target`` per migrating task (keep-before-break, phase 1)."""
    if env.size == 0:
        return
    B, N = world.slots_used.shape
    _require_distinct(world, env, task, "reserve")
    _require(world.task_state[env, task] == RUNNING, "reserve: task is not running")
    _require(world.task_mig_target[env, task] == NO_NODE, "reserve: task already migrating")
    _require(world.task_host[env, task] != target, "reserve: target is the task's host")
    demand = node_counts(env, target, B, N)
    _require(demand <= free_slots(world, layout), "reserve: target has no free slot")
    world.slots_reserved += demand
    world.task_mig_target[env, task] = target


def unreserve(world: World, env: np.ndarray, task: np.ndarray) -> None:
    """Roll back a reservation: the task stays where it is (failed/cancelled migration)."""
    if env.size == 0:
        return
    B, N = world.slots_used.shape
    _require_distinct(world, env, task, "unreserve")
    target = world.task_mig_target[env, task]
    _require(target >= 0, "unreserve: task is not migrating")
    held = node_counts(env, target, B, N)
    _require(held <= world.slots_reserved, "unreserve: more than reserved")
    world.slots_reserved -= held
    world.task_mig_target[env, task] = NO_NODE


def commit_move(world: World, env: np.ndarray, task: np.ndarray) -> None:
    """Two-phase handoff, phase 2: the target has the task, then the source lets go."""
    if env.size == 0:
        return
    B, N = world.slots_used.shape
    _require_distinct(world, env, task, "commit_move")
    target = world.task_mig_target[env, task]
    source = world.task_host[env, task]
    _require((target >= 0) & (source >= 0), "commit_move: task is not migrating")
    arriving = node_counts(env, target, B, N)
    leaving = node_counts(env, source, B, N)
    _require(arriving <= world.slots_reserved, "commit_move: target lost its reservation")
    world.slots_reserved -= arriving
    world.slots_used += arriving - leaving
    world.task_host[env, task] = target
    world.task_origin[env, task] = target
    world.task_mig_target[env, task] = NO_NODE


def check(world: World, layout: Layout) -> None:
    """Raise :class:`LedgerError` naming the first broken invariant."""
    B, N = world.slots_used.shape
    env, task = np.nonzero(world.task_host >= 0)
    hosted = node_counts(env, world.task_host[env, task], B, N)
    if not np.array_equal(hosted, world.slots_used):
        raise LedgerError("slots_used differs from the number of hosted tasks")
    env_m, task_m = np.nonzero(world.task_mig_target >= 0)
    incoming = node_counts(env_m, world.task_mig_target[env_m, task_m], B, N)
    if not np.array_equal(incoming, world.slots_reserved):
        raise LedgerError("slots_reserved differs from the number of incoming migrations")
    if np.any(world.slots_used + world.slots_reserved > layout.max_jobs):
        raise LedgerError("a node holds more tasks and reservations than max_jobs")
    if np.any(world.slots_used < 0) or np.any(world.slots_reserved < 0):
        raise LedgerError("negative slot count")
    if np.any((world.task_host >= 0) != (world.task_state == RUNNING)):
        raise LedgerError("a task is hosted without running, or running without a host")
    if np.any((world.task_mig_target >= 0) & (world.task_state != RUNNING)):
        raise LedgerError("a task migrates without running")
    if len(env) and np.any(~world.view_up[env, world.task_host[env, task]]):
        raise LedgerError("a task is hosted on a node the controller declared down")
    live = world.task_state != FREE
    per_vehicle = np.zeros_like(world.veh_tasks)
    le, lt = np.nonzero(live)
    np.add.at(per_vehicle, (le, world.task_vehicle[le, lt]), 1)
    if not np.array_equal(per_vehicle, world.veh_tasks):
        raise LedgerError("veh_tasks differs from the live tasks per vehicle")
