"""The ledger: the one place that changes slot ownership (seed 002).

Seed 002 replaces a scheduler's scattered locked state with four atomic
operations on a single source of truth: ``register_node``, ``heartbeat``,
``dispatch_task`` and ``complete_task``. Here every change of which node
holds which task, and of slot counts, is one of the compiled row operations
below (``*_row``: one row or node of one environment), which the simulator's
kernels call. The array functions (``dispatch``, ``release``, ...) take a
vector of rows (``env`` and ``task`` arrays), check every precondition and
raise :class:`LedgerError` before touching anything, then apply the row
operation to each: they are the checked entry points for hand-built states
and tests.

Invariants (:func:`check`):

* ``slots_used[n] == #tasks hosted on n`` and ``slots_used + slots_reserved <= max_jobs``;
* ``slots_reserved[n] == #tasks migrating to n``;
* a task is hosted by at most one node, and only RUNNING tasks are hosted;
* no task is hosted on a node the controller has declared down.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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


# ---------------------------------------------------------------- row operations


@njit(cache=True)
def register_node_row(view_up, last_heartbeat_s, view_load, b, n, now):
    """A (re)started node joins empty, believed up, as if it had just reported."""
    view_up[b, n] = True
    last_heartbeat_s[b, n] = now
    view_load[b, n] = 0.0  # it joins empty; battery is set by the caller


@njit(cache=True)
def heartbeat_row(view_up, last_heartbeat_s, view_load, view_battery, b, n, now, load, battery):
    """Node ``n`` reports its load and battery."""
    last_heartbeat_s[b, n] = now
    view_up[b, n] = True
    view_load[b, n] = load
    view_battery[b, n] = battery


@njit(cache=True)
def dispatch_row(slots_used, task_state, task_host, task_origin, b, t, node):
    """A waiting row starts on ``node``, taking one of its free slots."""
    slots_used[b, node] += 1
    task_state[b, t] = RUNNING
    task_host[b, t] = node
    task_origin[b, t] = node


@njit(cache=True)
def reserve_row(slots_reserved, task_mig_target, b, t, target):
    """Keep-before-break, phase 1: hold one slot on ``target`` for a migrating row."""
    slots_reserved[b, target] += 1
    task_mig_target[b, t] = target


@njit(cache=True)
def unreserve_row(slots_reserved, task_mig_target, b, t):
    """Roll back a reservation: the row stays where it is."""
    slots_reserved[b, task_mig_target[b, t]] -= 1
    task_mig_target[b, t] = NO_NODE


@njit(cache=True)
def commit_row(slots_used, slots_reserved, task_host, task_origin, task_mig_target, b, t):
    """Two-phase handoff, phase 2: the target has the row, then the source lets go."""
    target, source = task_mig_target[b, t], task_host[b, t]
    slots_reserved[b, target] -= 1
    slots_used[b, target] += 1
    slots_used[b, source] -= 1
    task_host[b, t] = target
    task_origin[b, t] = target
    task_mig_target[b, t] = NO_NODE


@njit(cache=True)
def release_row(slots_used, slots_reserved, task_host, task_mig_target, b, t):
    """A hosted row gives up its slot (end, orphaning), and any reservation."""
    if task_mig_target[b, t] >= 0:
        unreserve_row(slots_reserved, task_mig_target, b, t)
    slots_used[b, task_host[b, t]] -= 1
    task_host[b, t] = NO_NODE


@njit(cache=True)
def complete_row(slots_used, slots_reserved, task_state, task_host, task_mig_target,
                 task_vehicle, veh_tasks, b, t):  # fmt: skip
    """A row ends (completed, missed, dropped, session over): free its slot and the row."""
    if task_host[b, t] >= 0:
        release_row(slots_used, slots_reserved, task_host, task_mig_target, b, t)
    task_state[b, t] = FREE
    veh_tasks[b, task_vehicle[b, t]] -= 1


# ---------------------------------------------------------------- checked array entry points


def register_node(world: World, env: np.ndarray, node: np.ndarray) -> None:
    """A (re)started node joins empty: it holds no task and no reservation."""
    _require(world.node_up[env, node], "register_node: node is not up")
    _require(world.slots_used[env, node] == 0, "register_node: node still holds tasks")
    w = world
    for b, n in zip(np.ravel(env).tolist(), np.ravel(node).tolist(), strict=True):
        register_node_row(w.view_up, w.last_heartbeat_s, w.view_load, b, n, w.time_s[b])


def heartbeat(world: World, beating: np.ndarray, load: np.ndarray, battery: np.ndarray) -> None:
    """Nodes in the (B, N) mask ``beating`` report their load and battery."""
    w = world
    for b, n in zip(*np.nonzero(beating), strict=True):
        heartbeat_row(
            w.view_up, w.last_heartbeat_s, w.view_load, w.view_battery, b, n, w.time_s[b],
            load[b, n], battery[b, n],
        )  # fmt: skip


def _rows(env: np.ndarray, task: np.ndarray):
    return zip(np.ravel(env).tolist(), np.ravel(task).tolist(), strict=True)


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
    w = world
    for (b, t), n in zip(_rows(env, task), np.ravel(node).tolist(), strict=True):
        dispatch_row(w.slots_used, w.task_state, w.task_host, w.task_origin, b, t, n)


def _check_release(world: World, env: np.ndarray, task: np.ndarray, op: str) -> None:
    B, N = world.slots_used.shape
    _require_distinct(world, env, task, op)
    host = world.task_host[env, task]
    _require(host >= 0, f"{op}: task is not hosted")
    used = node_counts(env, host, B, N)
    _require(used <= world.slots_used, f"{op}: more releases than slots in use")
    migrating = world.task_mig_target[env, task] >= 0
    e, t = env[migrating], task[migrating]
    held = node_counts(e, world.task_mig_target[e, t], B, N)
    _require(held <= world.slots_reserved, "unreserve: more than reserved")


def release(world: World, env: np.ndarray, task: np.ndarray) -> None:
    """Hosted tasks give up their slot (completion, miss, orphaning).

    An in-flight migration of such a task also gives back its reservation.
    """
    if env.size == 0:
        return
    _check_release(world, env, task, "release")
    w = world
    for b, t in _rows(env, task):
        release_row(w.slots_used, w.slots_reserved, w.task_host, w.task_mig_target, b, t)


def complete(world: World, env: np.ndarray, task: np.ndarray) -> None:
    """A task ends (completed, missed or dropped): free its slot and its row."""
    if env.size == 0:
        return
    _require_distinct(world, env, task, "complete")
    _require(world.task_state[env, task] != FREE, "complete: task is not live")
    hosted = world.task_host[env, task] >= 0
    if hosted.any():
        _check_release(world, env[hosted], task[hosted], "release")
    w = world
    for b, t in _rows(env, task):
        complete_row(
            w.slots_used, w.slots_reserved, w.task_state, w.task_host, w.task_mig_target,
            w.task_vehicle, w.veh_tasks, b, t,
        )  # fmt: skip


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
    w = world
    for (b, t), m in zip(_rows(env, task), np.ravel(target).tolist(), strict=True):
        reserve_row(w.slots_reserved, w.task_mig_target, b, t, m)


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
    w = world
    for b, t in _rows(env, task):
        unreserve_row(w.slots_reserved, w.task_mig_target, b, t)


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
    _require(arriving <= world.slots_reserved, "commit_move: target lost its reservation")
    w = world
    for b, t in _rows(env, task):
        commit_row(
            w.slots_used, w.slots_reserved, w.task_host, w.task_origin, w.task_mig_target, b, t
        )


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
