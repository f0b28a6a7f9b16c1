"""Pins of the scheduler (MODEL.md §5 task generation, §6.1 dispatch, §9.6 replicas) on
hand-built worlds and hand-computed values: the per-vehicle arrival cap, the draw index
(vehicle serial, arrival ordinal), every attribute from its own uniform, a new row's reset
replica, the backup chosen at dispatch and the replica checkpoint's timing and rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roadedge.envs.sim.config import load_scenario
from roadedge.envs.sim.layout import build_layout
from roadedge.envs.sim.rng import Stream, key_from_seed, uniform
from roadedge.envs.sim.scheduler import checkpoint_replicas, dispatch_waiting, generate_tasks
from roadedge.envs.sim.world import (
    FREE,
    KIND_TASK,
    ORPHANED,
    QUEUED,
    RUNNING,
    allocate,
)

# --------------------------------------------------------------------------- 5 generation

KEY, TICK, NOW = key_from_seed(7), 3, 12.0
MEAN = 0.5  # the largest arrival mean per vehicle and tick the config accepts


def _poisson_cdf(k: int, mean: float) -> float:
    return sum(math.exp(-mean) * mean**i / math.factorial(i) for i in range(k + 1))


def _u(stream: int, index) -> np.ndarray:
    return uniform(np.array([KEY]), np.array([TICK]), stream, np.asarray(index, np.uint64))


def _serial_with(lo: float, hi: float, not_multiple_of_4=False) -> int:
    """The first vehicle serial whose arrival uniform lies in [lo, hi), with a margin so
    that no rounding of the CDF can move it across a boundary."""
    serials = np.arange(50_000)
    u = _u(Stream.TASK_ARRIVALS, serials)
    ok = (u >= lo + 1e-9) & (u < hi - 1e-9)
    if not_multiple_of_4:  # serial * 5 + j differs from serial * 5 ^ j for some j < 4
        ok &= serials % 4 != 0
    return int(serials[np.flatnonzero(ok)[0]])


def _generation_world(serials, n_rows=8):
    """One env at (KEY, TICK, NOW), active vehicles with the given serials, all rows FREE
    but holding stale progress and replica values from earlier tasks."""
    w = allocate(1, 4, len(serials), n_rows)
    w.key[0], w.tick[0], w.time_s[0] = KEY, TICK, NOW
    w.veh_active[0] = True
    w.veh_serial[0] = np.asarray(serials, np.uint64)
    w.task_done[0] = 3.0e10
    w.task_replica[0] = 7.0e10
    return w


def test_arrivals_are_capped_at_four_per_vehicle_and_tick():
    """A vehicle whose arrival uniform is beyond F(4) (Poisson CDF at the largest accepted
    mean) still generates 4 tasks: the draw is truncated at 4 (MODEL.md §5.1); a vehicle
    with F(0) <= u < F(1) generates exactly one."""
    four = _serial_with(_poisson_cdf(4, MEAN), 1.0)
    one = _serial_with(_poisson_cdf(0, MEAN), _poisson_cdf(1, MEAN))
    cfg = load_scenario("small", {"tasks.rate_per_vehicle_hz": MEAN, "dt_s": 1.0})
    w = _generation_world([four, one])
    generated, dropped = generate_tasks(w, cfg)
    assert generated.tolist() == [5] and dropped.tolist() == [0]
    assert (w.task_state[0] == QUEUED).sum() == 5
    assert w.task_vehicle[0, :5].tolist() == [0, 0, 0, 0, 1]  # rows in vehicle order
    assert w.veh_tasks[0].tolist() == [4, 1]


def test_task_attributes_come_from_their_uniforms_at_serial_times_5_plus_ordinal():
    """Each generated task draws every attribute at index ``serial * 5 + j`` (j = its
    arrival ordinal this tick), uniformly in [min, max] of ``tasks.*`` (MODEL.md §5.2);
    a new row starts with no progress and no replica, whatever the row held before."""
    serial = _serial_with(_poisson_cdf(4, MEAN), 1.0, not_multiple_of_4=True)
    cfg = load_scenario("small", {"tasks.rate_per_vehicle_hz": MEAN, "dt_s": 1.0})
    w = _generation_world([serial])
    generate_tasks(w, cfg)
    index = serial * 5 + np.arange(4)
    u_service = _u(Stream.TASK_SERVICE, index)
    u_work, u_input = _u(Stream.TASK_WORK, index), _u(Stream.TASK_INPUT, index)
    u_state, u_deadline = _u(Stream.TASK_STATE, index), _u(Stream.TASK_DEADLINE, index)
    u_priority = _u(Stream.TASK_PRIORITY, index)
    for j in range(4):
        assert w.task_state[0, j] == QUEUED and w.task_kind[0, j] == KIND_TASK
        assert w.task_vehicle[0, j] == 0
        assert w.task_service[0, j] == min(int(u_service[j] * 4), 3)
        # defaults: work U[20, 80] Gcycles, input U[1, 5] MB, state U[5, 50] MB,
        # deadline t + U[40, 80] s, priority 8 / 5 / 2 with P = 0.2 / 0.5 / 0.3
        assert w.task_work[0, j] == pytest.approx((20.0 + 60.0 * u_work[j]) * 1e9, rel=1e-12)
        assert w.task_input_mb[0, j] == pytest.approx(1.0 + 4.0 * u_input[j], rel=1e-12)
        assert w.task_state_mb[0, j] == pytest.approx(5.0 + 45.0 * u_state[j], rel=1e-12)
        assert w.task_deadline_s[0, j] == pytest.approx(
            NOW + 40.0 + 40.0 * u_deadline[j], rel=1e-12
        )
        u = u_priority[j]
        assert w.task_priority[0, j] == (8 if u < 0.2 else 5 if u < 0.7 else 2)
        assert w.task_created_s[0, j] == NOW and w.task_ready_s[0, j] == NOW
        assert w.task_done[0, j] == 0.0
        assert w.task_replica[0, j] == 0.0
        assert w.task_host[0, j] == -1 and w.task_backup[0, j] == -1
    assert (w.task_state[0, 4:] == FREE).all()


def test_task_attributes_span_their_configured_ranges():
    """Over many draws each attribute fills [min, max] of a non-default ``tasks.*`` range:
    the bounds are hit within 2 % of the width and never left (MODEL.md §5.2)."""
    ranges = {
        "input_mb": (2.0, 3.0),
        "state_mb": (4.0, 10.0),
        "deadline_s": (3.0, 7.0),
    }
    over = {f"tasks.{a}_min": lo for a, (lo, _) in ranges.items()}
    over |= {f"tasks.{a}_max": hi for a, (_, hi) in ranges.items()}
    cfg = load_scenario("small", {"tasks.rate_per_vehicle_hz": MEAN, **over})
    serials = np.arange(2000)
    w = _generation_world(serials, n_rows=2000)
    generated, _ = generate_tasks(w, cfg)
    live = w.task_state[0] == QUEUED
    assert generated[0] == live.sum() > 400
    values = {
        "input_mb": w.task_input_mb[0, live],
        "state_mb": w.task_state_mb[0, live],
        "deadline_s": w.task_deadline_s[0, live] - NOW,
    }
    for name, (lo, hi) in ranges.items():
        v, slack = values[name], 0.02 * (hi - lo)
        assert lo <= v.min() <= lo + slack, name
        assert hi - slack <= v.max() <= hi, name


# --------------------------------------------------------------------------- 6.1 dispatch


def _queued_task(layout, veh_xy, service):
    """One env, one QUEUED task of vehicle 0 at ``veh_xy``, all nodes empty and believed up,
    the vehicle served by no node yet."""
    w = allocate(1, layout.n_nodes, 1, 4)
    w.veh_active[0, 0] = True
    w.veh_x[0, 0], w.veh_y[0, 0] = veh_xy
    w.veh_rate_mbps[0, 0] = 10.0
    w.task_state[0, 0] = QUEUED
    w.task_vehicle[0, 0] = 0
    w.task_service[0, 0] = service
    w.task_input_mb[0, 0] = 2.0
    w.veh_tasks[0, 0] = 1
    w.view_up[0] = True
    return w


# small layout: RSUs 0, 1, 2 at (125, 0), (375, 0), (125, 500); UAV 3 at (250, 250).
# service 0 runs on nodes 0, 2, 3; service 3 on nodes 1, 2, 3. Empty nodes, no affinity:
# score = 0.5 * km. From (125, 0): 0, 0.125, 0.25, 0.5 * 0.2795 = 0.140 -> host 0, backup 3.
# From (375, 0): 0.125 (node 0, not capable of service 3), 0, 0.5 * 0.559, 0.140 -> host 1,
# backup 3 (node 0 scores better than the backup but does not run the service).
@pytest.mark.parametrize(
    "veh_xy, service, host, backup", [((125.0, 0.0), 0, 0, 3), ((375.0, 0.0), 3, 1, 3)]
)
def test_dispatch_backup_is_the_best_scoring_other_capable_node(veh_xy, service, host, backup):
    """With replication on, a dispatched task's backup is the best-scoring node other than
    its host that runs its service and is believed up (MODEL.md §6.1), never the host and
    never a node without the service."""
    cfg = load_scenario("small", {"faults.replication": True})
    lay = build_layout(cfg)
    assert lay.capability[:, service].tolist() == {0: [1, 0, 1, 1], 3: [0, 1, 1, 1]}[service]
    w = _queued_task(lay, veh_xy, service)
    dispatch_waiting(w, lay, cfg)
    assert w.task_state[0, 0] == RUNNING and w.task_host[0, 0] == host
    assert w.task_backup[0, 0] == backup


def test_dispatch_without_replication_keeps_no_backup():
    cfg = load_scenario("small", {"faults.replication": False})
    lay = build_layout(cfg)
    w = _queued_task(lay, (125.0, 0.0), 0)
    dispatch_waiting(w, lay, cfg)
    assert w.task_host[0, 0] == 0 and w.task_backup[0, 0] == -1


# --------------------------------------------------------------------------- 9.6 replicas


# time t of the tick -> due: (t, t + 1] contains a multiple of replica_interval_s = 5
DUE = {0.0: False, 3.0: False, 4.0: True, 4.5: True, 5.0: False, 9.25: True, 10.0: False}


def _replica_world(time_s):
    """Rows at time ``time_s`` (progress done = 1e10 * (row + 1), replica 5e8 in all):
    0 RUNNING on live node 0, backup 1; 1 RUNNING on live node 1, backup 0; 2 RUNNING on
    live node 0, no backup; 3 RUNNING on dead node 2, backup 1; 4 ORPHANED, backup 1;
    5 QUEUED; 6 FREE."""
    w = allocate(1, 4, 1, 8)
    w.time_s[0] = time_s
    w.node_up[0, 2] = False
    states = [RUNNING, RUNNING, RUNNING, RUNNING, ORPHANED, QUEUED, FREE, FREE]
    hosts = [0, 1, 0, 2, -1, -1, -1, -1]
    backups = [1, 0, -1, 1, 1, -1, -1, -1]
    w.task_state[0] = states
    w.task_host[0] = hosts
    w.task_backup[0] = backups
    w.task_done[0] = 1e10 * np.arange(1, 9)
    w.task_replica[0] = 5e8
    return w


@pytest.mark.parametrize("time_s", sorted(DUE))
def test_replica_checkpoint_is_due_when_the_tick_reaches_a_multiple_of_the_interval(time_s):
    """The checkpoint runs in the ticks whose interval (t, t + dt] contains a multiple of
    ``replica_interval_s`` (MODEL.md §9.6), and only then."""
    cfg = load_scenario("small", {"faults.replication": True, "faults.replica_interval_s": 5.0})
    assert cfg.dt_s == 1.0
    w = _replica_world(time_s)
    checkpoint_replicas(w, cfg)
    synced = w.task_replica[0, 0] == w.task_done[0, 0]
    assert synced == DUE[time_s]
    if not DUE[time_s]:
        assert (w.task_replica[0] == 5e8).all()


def test_replica_checkpoint_copies_only_running_rows_on_live_hosts_with_a_backup():
    """In a due tick ``replica <- done`` for RUNNING rows on a truly-up host that have a
    backup (any node, 0 included); rows without a backup, on a dead host, ORPHANED, QUEUED
    or FREE keep their replica (MODEL.md §9.6)."""
    cfg = load_scenario("small", {"faults.replication": True, "faults.replica_interval_s": 5.0})
    w = _replica_world(4.0)
    checkpoint_replicas(w, cfg)
    expected = [1e10, 2e10, 5e8, 5e8, 5e8, 5e8, 5e8, 5e8]
    assert w.task_replica[0].tolist() == expected


def test_replica_checkpoint_off_without_replication():
    cfg = load_scenario("small", {"faults.replication": False})
    w = _replica_world(4.0)
    checkpoint_replicas(w, cfg)
    assert (w.task_replica[0] == 5e8).all()
