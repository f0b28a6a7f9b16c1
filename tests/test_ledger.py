"""The ledger (seed 002): every slot change applies fully or raises, leaving the world as it was.

Layout used throughout: the ``small`` preset, nodes 0-2 are RSUs with 8 slots,
node 3 is a UAV with 4 slots.
"""

from __future__ import annotations

import numpy as np
import pytest

from roadedge.envs.sim import ledger
from roadedge.envs.sim.ledger import LedgerError
from roadedge.envs.sim.world import FREE, NO_NODE, ORPHANED, QUEUED, RUNNING, allocate

UAV = 3  # 4 slots


def a(*values):
    return np.array(values, dtype=np.int64)


def make_world(layout, n_queued=10, batch=1, n_tasks=16):
    """``n_queued`` waiting tasks per env, all owned by vehicle 0."""
    w = allocate(batch, layout.n_nodes, 4, n_tasks)
    w.task_state[:, :n_queued] = QUEUED
    w.task_vehicle[:, :n_queued] = 0
    w.veh_tasks[:, 0] = n_queued
    return w


def rejected(assert_same_world, world, op, *args, match):
    """``op(world, *args)`` raises LedgerError and leaves every World field unchanged."""
    before = world.copy()
    with pytest.raises(LedgerError, match=match):
        op(world, *args)
    assert_same_world(before, world)


# --------------------------------------------------------------------------- dispatch


def test_dispatch_applies_fully(small_layout):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0, 0), a(0, 1, 2), a(0, 0, UAV))
    assert w.slots_used[0].tolist() == [2, 0, 0, 1]
    assert w.task_state[0, :3].tolist() == [RUNNING] * 3
    assert w.task_host[0, :4].tolist() == [0, 0, UAV, NO_NODE]
    assert w.task_origin[0, :3].tolist() == [0, 0, UAV]
    ledger.check(w, small_layout)
    # a second dispatch of the same (now running) task is refused
    assert w.task_state[0, 3] == QUEUED


def test_dispatch_onto_full_node_is_all_or_nothing(small_layout, assert_same_world):
    w = make_world(small_layout)
    # 5 tasks onto the 4-slot UAV: the first 4 would fit, but nothing may be applied
    rejected(
        assert_same_world,
        w,
        ledger.dispatch,
        small_layout,
        a(0, 0, 0, 0, 0),
        a(0, 1, 2, 3, 4),
        a(UAV, UAV, UAV, UAV, UAV),
        match="no free slot",
    )
    assert w.slots_used.sum() == 0
    ledger.dispatch(w, small_layout, a(0, 0, 0), a(0, 1, 2), a(UAV, UAV, UAV))
    # 3 used, 1 free: two more do not fit, together with a valid one elsewhere
    rejected(
        assert_same_world,
        w,
        ledger.dispatch,
        small_layout,
        a(0, 0, 0),
        a(3, 4, 5),
        a(0, UAV, UAV),
        match="no free slot",
    )
    ledger.dispatch(w, small_layout, a(0), a(3), a(UAV))
    assert w.slots_used[0, UAV] == 4


def test_dispatch_counts_reservations_as_taken(small_layout, assert_same_world):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0, 0, 0), a(0, 1, 2, 3), a(UAV, UAV, UAV, 0))
    ledger.reserve(w, small_layout, a(0), a(3), a(UAV))  # the last UAV slot is held
    assert w.slots_reserved[0, UAV] == 1
    rejected(
        assert_same_world,
        w,
        ledger.dispatch,
        small_layout,
        a(0),
        a(4),
        a(UAV),
        match="no free slot",
    )


def test_dispatch_rejects_running_task_in_a_mixed_batch(small_layout, assert_same_world):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0), a(0), a(1))
    rejected(
        assert_same_world,
        w,
        ledger.dispatch,
        small_layout,
        a(0, 0),
        a(1, 0),
        a(2, 2),
        match="not waiting",
    )


def test_dispatch_rejects_free_row(small_layout, assert_same_world):
    w = make_world(small_layout, n_queued=2)
    rejected(
        assert_same_world, w, ledger.dispatch, small_layout, a(0), a(5), a(0), match="not waiting"
    )


def test_dispatch_onto_node_declared_down(small_layout, assert_same_world):
    w = make_world(small_layout)
    w.view_up[0, 2] = False
    rejected(
        assert_same_world,
        w,
        ledger.dispatch,
        small_layout,
        a(0, 0),
        a(0, 1),
        a(1, 2),
        match="declared down",
    )


def test_dispatch_rejects_a_task_listed_twice(small_layout, assert_same_world):
    # the same task twice would take two slots for one task
    w = make_world(small_layout)
    rejected(
        assert_same_world,
        w,
        ledger.dispatch,
        small_layout,
        a(0, 0),
        a(1, 1),
        a(0, 0),
        match="more than once",
    )
    rejected(
        assert_same_world,
        w,
        ledger.dispatch,
        small_layout,
        a(0, 0),
        a(1, 1),
        a(0, 2),
        match="more than once",
    )


def test_dispatch_of_orphan(small_layout):
    w = make_world(small_layout)
    w.task_state[0, 0] = ORPHANED
    ledger.dispatch(w, small_layout, a(0), a(0), a(2))
    assert w.task_host[0, 0] == 2 and w.task_state[0, 0] == RUNNING
    ledger.check(w, small_layout)


def test_operations_are_per_environment(small_layout):
    w = make_world(small_layout, batch=2)
    # 4 tasks to the UAV in each env: fits in both (4 slots each)
    ledger.dispatch(
        w,
        small_layout,
        a(0, 0, 0, 0, 1, 1, 1, 1),
        a(0, 1, 2, 3, 0, 1, 2, 3),
        a(UAV, UAV, UAV, UAV, UAV, UAV, UAV, UAV),
    )
    assert w.slots_used[:, UAV].tolist() == [4, 4]
    ledger.release(w, a(1), a(2))
    assert w.slots_used[:, UAV].tolist() == [4, 3]
    assert w.task_host[:, 2].tolist() == [UAV, NO_NODE]
    w.task_state[1, 2] = ORPHANED  # what the caller does after a release
    ledger.check(w, small_layout)


# --------------------------------------------------------------------------- release and complete


def test_release_unhosted_task(small_layout, assert_same_world):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0), a(0), a(1))
    rejected(assert_same_world, w, ledger.release, a(0), a(5), match="not hosted")
    # a mixed call (one hosted, one not) changes nothing either
    rejected(assert_same_world, w, ledger.release, a(0, 0), a(0, 5), match="not hosted")
    rejected(assert_same_world, w, ledger.release, a(0, 0), a(0, 0), match="more than once")


def test_release_frees_slot_and_reservation(small_layout):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0), a(0, 1), a(0, 0))
    ledger.reserve(w, small_layout, a(0), a(0), a(2))
    ledger.release(w, a(0, 0), a(0, 1))
    assert w.slots_used[0].tolist() == [0, 0, 0, 0]
    assert w.slots_reserved[0].tolist() == [0, 0, 0, 0]
    assert w.task_host[0, :2].tolist() == [NO_NODE, NO_NODE]
    assert w.task_mig_target[0, 0] == NO_NODE
    # the ledger state is consistent once the tasks are no longer RUNNING
    w.task_state[0, :2] = ORPHANED
    ledger.check(w, small_layout)


def test_complete_frees_slot_row_and_vehicle_count(small_layout, assert_same_world):
    w = make_world(small_layout, n_queued=3)
    ledger.dispatch(w, small_layout, a(0, 0), a(0, 1), a(0, 1))
    ledger.complete(w, a(0, 0), a(0, 2))  # one hosted, one still queued
    assert w.slots_used[0].tolist() == [0, 1, 0, 0]
    assert w.task_state[0, :3].tolist() == [FREE, RUNNING, FREE]
    assert w.veh_tasks[0, 0] == 1
    ledger.check(w, small_layout)
    # a FREE row has nothing to complete
    rejected(assert_same_world, w, ledger.complete, a(0), a(0), match="not live")
    rejected(assert_same_world, w, ledger.complete, a(0, 0), a(1, 1), match="more than once")


# --------------------------------------------------------------------------- reserve / migrate


def test_reserve_on_own_host(small_layout, assert_same_world):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0), a(0, 1), a(0, 1))
    rejected(
        assert_same_world,
        w,
        ledger.reserve,
        small_layout,
        a(0),
        a(0),
        a(0),
        match="target is the task's host",
    )
    # mixed with a valid reservation: nothing is reserved
    rejected(
        assert_same_world,
        w,
        ledger.reserve,
        small_layout,
        a(0, 0),
        a(0, 1),
        a(2, 1),
        match="target is the task's host",
    )


def test_reserve_rejections(small_layout, assert_same_world):
    w = make_world(small_layout)
    ledger.dispatch(
        w, small_layout, a(0, 0, 0, 0, 0, 0), a(0, 1, 2, 3, 4, 5), a(0, 0, 0, UAV, UAV, UAV)
    )
    # not running
    rejected(
        assert_same_world, w, ledger.reserve, small_layout, a(0), a(7), a(1), match="not running"
    )
    # the UAV has one free slot: two reservations onto it do not fit
    rejected(
        assert_same_world,
        w,
        ledger.reserve,
        small_layout,
        a(0, 0),
        a(0, 1),
        a(UAV, UAV),
        match="no free slot",
    )
    ledger.reserve(w, small_layout, a(0), a(0), a(UAV))
    # already migrating
    rejected(
        assert_same_world,
        w,
        ledger.reserve,
        small_layout,
        a(0),
        a(0),
        a(2),
        match="already migrating",
    )
    # target full now (3 used + 1 reserved)
    rejected(
        assert_same_world, w, ledger.reserve, small_layout, a(0), a(1), a(UAV), match="no free slot"
    )
    ledger.check(w, small_layout)


def test_unreserve_and_commit_rejections(small_layout, assert_same_world):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0), a(0, 1), a(0, 0))
    ledger.reserve(w, small_layout, a(0), a(0), a(2))
    rejected(assert_same_world, w, ledger.unreserve, a(0, 0), a(0, 1), match="not migrating")
    rejected(assert_same_world, w, ledger.commit_move, a(0, 0), a(0, 1), match="not migrating")
    rejected(assert_same_world, w, ledger.commit_move, a(0, 0), a(0, 0), match="more than once")


def test_keep_before_break_then_commit(small_layout):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0, 0), a(0, 1, 2), a(0, 0, 0))
    ledger.reserve(w, small_layout, a(0, 0), a(0, 1), a(UAV, UAV))
    # phase 1: the source still holds both tasks, the target holds reservations
    assert w.slots_used[0].tolist() == [3, 0, 0, 0]
    assert w.slots_reserved[0].tolist() == [0, 0, 0, 2]
    assert w.task_host[0, :2].tolist() == [0, 0]
    ledger.check(w, small_layout)
    # phase 2: the target takes them, then the source lets go
    ledger.commit_move(w, a(0, 0), a(0, 1))
    assert w.slots_used[0].tolist() == [1, 0, 0, 2]
    assert w.slots_reserved[0].tolist() == [0, 0, 0, 0]
    assert w.task_host[0, :3].tolist() == [UAV, UAV, 0]
    assert w.task_origin[0, :2].tolist() == [UAV, UAV]
    assert w.task_mig_target[0, :2].tolist() == [NO_NODE, NO_NODE]
    ledger.check(w, small_layout)


def test_unreserve_rolls_back(small_layout):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0), a(0), a(1))
    ledger.reserve(w, small_layout, a(0), a(0), a(2))
    ledger.unreserve(w, a(0), a(0))
    assert w.task_host[0, 0] == 1
    assert w.slots_used[0].tolist() == [0, 1, 0, 0]
    assert w.slots_reserved[0].tolist() == [0, 0, 0, 0]
    ledger.check(w, small_layout)


# --------------------------------------------------------------------------- register / heartbeat


def test_register_node(small_layout, assert_same_world):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0), a(0), a(1))
    rejected(assert_same_world, w, ledger.register_node, a(0), a(1), match="still holds tasks")
    w.node_up[0, 2] = False
    rejected(assert_same_world, w, ledger.register_node, a(0), a(2), match="not up")
    w.node_up[0, 2] = True
    w.view_up[0, 2] = False
    w.time_s[0] = 42.0
    ledger.register_node(w, a(0), a(2))
    assert w.view_up[0, 2] and w.last_heartbeat_s[0, 2] == 42.0


def test_heartbeat_updates_only_beating_nodes(small_layout):
    w = make_world(small_layout)
    w.time_s[0] = 7.0
    w.view_up[0, :] = [True, False, False, True]
    beating = np.array([[True, True, False, False]])
    load = np.array([[0.5, 0.25, 0.75, 1.0]])
    batt = np.array([[1.0, 1.0, 1.0, 0.3]])
    ledger.heartbeat(w, beating, load, batt)
    assert w.last_heartbeat_s[0].tolist() == [7.0, 7.0, 0.0, 0.0]
    assert w.view_up[0].tolist() == [True, True, False, True]
    assert w.view_load[0].tolist() == [0.5, 0.25, 0.0, 0.0]
    assert w.view_battery[0, 3] == 1.0  # not beating: keeps the old report


# --------------------------------------------------------------------------- check


@pytest.fixture
def busy_world(small_layout):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0, 0, 0), a(0, 1, 2, 3), a(0, 0, 1, UAV))
    ledger.reserve(w, small_layout, a(0), a(0), a(2))
    ledger.check(w, small_layout)  # consistent to start with
    return w


def test_check_catches_corrupted_slots_used(small_layout, busy_world):
    busy_world.slots_used[0, 0] += 1
    with pytest.raises(LedgerError, match="slots_used"):
        ledger.check(busy_world, small_layout)


def test_check_catches_corrupted_reservations(small_layout, busy_world):
    busy_world.slots_reserved[0, 2] = 0
    with pytest.raises(LedgerError, match="slots_reserved"):
        ledger.check(busy_world, small_layout)


def test_check_catches_task_on_node_declared_down(small_layout, busy_world):
    busy_world.view_up[0, 1] = False
    with pytest.raises(LedgerError, match="declared down"):
        ledger.check(busy_world, small_layout)


def test_check_catches_running_without_host(small_layout, busy_world):
    busy_world.task_state[0, 5] = RUNNING
    with pytest.raises(LedgerError, match="running without a host"):
        ledger.check(busy_world, small_layout)


def test_check_catches_vehicle_count_mismatch(small_layout, busy_world):
    busy_world.veh_tasks[0, 0] -= 1
    with pytest.raises(LedgerError, match="veh_tasks"):
        ledger.check(busy_world, small_layout)


def test_check_catches_over_capacity(small_layout):
    w = make_world(small_layout)
    # 5 tasks hosted on the 4-slot UAV, written behind the ledger's back
    w.task_state[0, :5] = RUNNING
    w.task_host[0, :5] = UAV
    w.slots_used[0, UAV] = 5
    with pytest.raises(LedgerError, match="max_jobs"):
        ledger.check(w, small_layout)


# ---------------------------------------------------------------------- boundaries (mutants)
# Written against the ledger mutants that survived `make mutants`: node 0 as a target,
# single-task commits, batches of more than one environment, guards that must fire.


def test_node_counts_and_free_slots_hand_values(small_layout):
    # 5 nodes (not a power of two, so env * N + node is not env * N ^ node)
    counts = ledger.node_counts(a(0, 1, 1, 1), a(2, 1, 1, 3), 2, 5)
    assert counts.tolist() == [[0, 0, 1, 0, 0], [0, 2, 0, 1, 0]]
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0), a(0), a(UAV))
    ledger.reserve(w, small_layout, a(0), a(0), a(1))
    w.slots_used[0, 2], w.slots_reserved[0, 2] = 3, 2  # 8 - 3 - 2 (not (8 - 3) >> 2)
    assert ledger.free_slots(w, small_layout)[0].tolist() == [8, 7, 3, 3]


def test_the_same_row_in_two_environments_is_two_tasks(small_layout):
    """Rows are told apart per environment (env * T + row): row 8 of env 0 and row 2 of
    env 1 are different tasks, even with a table size that is not a power of two."""
    w = make_world(small_layout, n_queued=10, batch=2, n_tasks=10)
    ledger.dispatch(w, small_layout, a(0, 1), a(8, 2), a(0, 0))
    assert w.slots_used[:, 0].tolist() == [1, 1]
    with pytest.raises(LedgerError, match="more than once"):
        ledger.dispatch(w, small_layout, a(1, 1), a(5, 5), a(1, 1))


def test_migrations_to_and_from_node_0_and_single_commits(small_layout):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0, 0), a(0, 1, 2), a(1, 1, 0))
    ledger.reserve(w, small_layout, a(0, 0, 0), a(0, 1, 2), a(0, 0, 1))
    ledger.unreserve(w, a(0), a(1))  # a reservation on node 0 rolls back
    assert w.slots_reserved[0].tolist() == [1, 1, 0, 0]
    ledger.commit_move(w, a(0), a(0))  # one task, onto node 0
    assert w.task_host[0, 0] == 0 and w.slots_used[0].tolist() == [2, 1, 0, 0]
    ledger.commit_move(w, a(0), a(2))  # one task, from node 0
    assert w.task_host[0, 2] == 1 and w.slots_used[0].tolist() == [1, 2, 0, 0]
    assert w.slots_reserved[0].tolist() == [0, 0, 0, 0]
    ledger.check(w, small_layout)


def test_committing_one_of_two_reservations_on_a_target(small_layout):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0), a(0, 1), a(0, 0))
    ledger.reserve(w, small_layout, a(0, 0), a(0, 1), a(2, 2))
    ledger.commit_move(w, a(0), a(0))
    assert w.slots_reserved[0, 2] == 1 and w.slots_used[0].tolist() == [1, 0, 1, 0]
    ledger.check(w, small_layout)


def test_completing_a_task_frees_its_slot_on_any_node(small_layout):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0), a(0, 1), a(2, UAV))
    ledger.complete(w, a(0, 0), a(0, 1))
    assert w.slots_used[0].tolist() == [0, 0, 0, 0]
    assert (w.task_host[0, :2] == NO_NODE).all() and (w.task_state[0, :2] == FREE).all()


def test_guards_fire(small_layout, assert_same_world):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0), a(0), a(1))
    w.task_state[0, 0] = QUEUED  # hosted but waiting: a corrupted row
    args = (small_layout, a(0), a(0), a(2))
    rejected(assert_same_world, w, ledger.dispatch, *args, match="already hosted")
    w.task_state[0, 0] = RUNNING
    w.slots_used[0, 1] = 0  # a release with no slot in use
    rejected(assert_same_world, w, ledger.release, a(0), a(0), match="more releases")


def test_register_node_reports_it_empty(small_layout):
    w = make_world(small_layout)
    w.view_up[0, 2], w.view_load[0, 2] = False, 0.75
    ledger.register_node(w, a(0), a(2))
    assert w.view_load[0, 2] == 0.0


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (None, "max_jobs"),  # 4 hosted + 1 reserved on the 4-slot UAV
        (lambda w: w.slots_used.__setitem__((0, 2), -1), "negative|slots_used"),
        (lambda w: w.slots_reserved.__setitem__((0, 2), -1), "negative|slots_reserved"),
        (lambda w: w.task_mig_target.__setitem__((0, 6), 0), "migrates without running"),
    ],
)
def test_check_catches_each_broken_invariant(small_layout, corrupt, match):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0, 0), a(0, 1, 2), a(UAV, UAV, UAV))
    ledger.check(w, small_layout)
    if corrupt is None:  # consistent counts, over capacity: 3 + 1 hosted, 1 reserved
        ledger.dispatch(w, small_layout, a(0), a(3), a(0))
        ledger.reserve(w, small_layout, a(0), a(3), a(UAV))
        w.task_state[0, 4], w.task_host[0, 4] = RUNNING, UAV
        w.slots_used[0, UAV] += 1
    else:
        corrupt(w)
    if "migrates" in match:
        w.slots_reserved[0, 0] = 1  # keep the reservation count consistent
    with pytest.raises(LedgerError, match=match):
        ledger.check(w, small_layout)


# ------------------------------------------------------------- boundaries (mutants, round 2)
# Written against the ledger mutants still alive after the first round: tables smaller
# than the batch, empty calls, a reservation on node 0, corrupted rows the guards must
# refuse, and check() on counts that are consistent but break one invariant.


def test_distinct_rows_are_never_repeats_with_more_environments_than_rows(small_layout):
    """(env, row) pairs are told apart exactly: with 4 environments of 3 rows, env 1's
    rows 0 and 1 (3 | 0 == 3 | 1) and env 0 row 1 / env 3 row 0 (0/3 + 1 == 3/3 + 0)
    are all different tasks, so all 12 rows dispatch in one call."""
    w = make_world(small_layout, n_queued=3, batch=4, n_tasks=3)
    env = np.repeat(np.arange(4), 3)
    task = np.tile(np.arange(3), 4)
    ledger.dispatch(w, small_layout, env, task, np.zeros(12, dtype=np.int64))
    assert w.slots_used[:, 0].tolist() == [3, 3, 3, 3]
    assert (w.task_state == RUNNING).all()
    ledger.check(w, small_layout)


@pytest.mark.parametrize(
    "op, extra",
    [
        (ledger.dispatch, "layout+node"),
        (ledger.release, ""),
        (ledger.complete, ""),
        (ledger.reserve, "layout+node"),
        (ledger.unreserve, ""),
        (ledger.commit_move, ""),
    ],
)
def test_an_empty_call_is_a_no_op_even_with_untyped_arrays(
    small_layout, assert_same_world, op, extra
):
    """No task, no change: also for ``np.array([])`` (float64, as built from an empty
    list), which could not index the task table."""
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0), a(0, 1), a(0, 1))
    ledger.reserve(w, small_layout, a(0), a(0), a(2))
    before = w.copy()
    empty = np.array([])
    args = (small_layout, empty, empty, empty) if extra else (empty, empty)
    op(w, *args)
    assert_same_world(before, w)


def test_releasing_a_task_migrating_to_node_0_gives_back_that_reservation(small_layout):
    """The in-flight migration of a released task is rolled back whatever its target,
    node 0 included: no reservation is left behind on node 0."""
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0), a(0), a(UAV))
    ledger.reserve(w, small_layout, a(0), a(0), a(0))
    assert w.slots_reserved[0].tolist() == [1, 0, 0, 0]
    ledger.release(w, a(0), a(0))
    assert w.slots_reserved[0].tolist() == [0, 0, 0, 0]
    assert w.slots_used[0].tolist() == [0, 0, 0, 0]
    assert w.task_mig_target[0, 0] == NO_NODE
    w.task_state[0, 0] = ORPHANED  # what the caller does after a release
    ledger.check(w, small_layout)


def test_reserve_refuses_an_orphaned_task(small_layout, assert_same_world):
    """Only a RUNNING task can migrate: an orphan (waiting for failover, no host) has
    nothing to hand off, even though its state number is above RUNNING."""
    w = make_world(small_layout)
    w.task_state[0, 0] = ORPHANED
    rejected(
        assert_same_world, w, ledger.reserve, small_layout, a(0), a(0), a(1), match="not running"
    )


def test_commit_move_refuses_a_waiting_task(small_layout, assert_same_world):
    """A QUEUED task has neither a host nor a target: there is nothing to commit."""
    w = make_world(small_layout)
    rejected(assert_same_world, w, ledger.commit_move, a(0), a(0), match="not migrating")


@pytest.mark.parametrize("env", [0, 1])
def test_commit_move_refuses_a_target_without_a_source(small_layout, assert_same_world, env):
    """A row with a migration target but no host (corrupted: only running tasks, which
    are hosted, can reserve) is refused as a whole, not half-applied to a node of
    another environment."""
    w = make_world(small_layout, batch=2)
    w.task_state[env, 0] = RUNNING  # running, unhosted, reserved on node 2
    w.task_mig_target[env, 0] = 2
    w.slots_reserved[env, 2] = 1
    rejected(assert_same_world, w, ledger.commit_move, a(env), a(0), match="not migrating")


def test_commit_move_refuses_a_target_that_lost_its_reservation(small_layout, assert_same_world):
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0), a(0), a(1))
    ledger.reserve(w, small_layout, a(0), a(0), a(2))
    w.slots_reserved[0, 2] = 0  # written behind the ledger's back
    rejected(assert_same_world, w, ledger.commit_move, a(0), a(0), match="lost its reservation")


def test_check_counts_used_plus_reserved_against_max_jobs(small_layout):
    """3 hosted + 2 reserved on the 4-slot UAV is over capacity (3 + 2 = 5 > 4), with
    every count consistent with the rows."""
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0, 0, 0, 0), a(0, 1, 2, 3, 4), a(UAV, UAV, UAV, 0, 0))
    w.task_mig_target[0, 3:5] = UAV  # two reservations on the UAV, behind the ledger
    w.slots_reserved[0, UAV] = 2
    with pytest.raises(LedgerError, match="max_jobs"):
        ledger.check(w, small_layout)


def test_check_catches_a_hosted_task_that_is_not_running(small_layout):
    """Hosted but ORPHANED, with slots_used consistent: the state and the host disagree."""
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0), a(0, 1), a(1, 1))
    w.task_state[0, 1] = ORPHANED
    with pytest.raises(LedgerError, match="hosted without running"):
        ledger.check(w, small_layout)


def test_check_catches_an_orphan_migrating_to_node_1(small_layout):
    """An ORPHANED task (state above RUNNING) with a migration target other than node 0,
    reservation counted: a task that is not running cannot migrate."""
    w = make_world(small_layout)
    w.task_state[0, 0] = ORPHANED
    w.task_mig_target[0, 0] = 1
    w.slots_reserved[0, 1] = 1
    with pytest.raises(LedgerError, match="migrates without running"):
        ledger.check(w, small_layout)


@pytest.mark.filterwarnings("error")
def test_ledger_operations_and_check_emit_no_numpy_warning(small_layout, assert_same_world):
    """A whole migration lifecycle, a refused commit and check() run clean with warnings
    as errors (no division by zero hidden in a boolean combination)."""
    w = make_world(small_layout)
    ledger.dispatch(w, small_layout, a(0, 0, 0), a(0, 1, 2), a(0, 0, 1))
    ledger.reserve(w, small_layout, a(0, 0), a(0, 2), a(UAV, 2))
    ledger.check(w, small_layout)
    rejected(assert_same_world, w, ledger.commit_move, a(0), a(5), match="not migrating")
    ledger.commit_move(w, a(0), a(0))
    ledger.unreserve(w, a(0), a(2))
    ledger.release(w, a(0), a(1))
    w.task_state[0, 1] = ORPHANED
    ledger.complete(w, a(0, 0), a(0, 1))
    ledger.check(w, small_layout)
    assert w.slots_used[0].tolist() == [0, 1, 0, 0] and w.slots_reserved.sum() == 0
