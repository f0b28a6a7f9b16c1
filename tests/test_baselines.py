"""Rule-based baselines: each seed rule on hand-built controller views, the simulator's
task choice and failover limits in real envs, and valid actions from every baseline in
random rollouts of every preset.

Hand-built states use a small ``ControllerView`` (B = 1, 4-6 nodes, max_jobs = 100 so a
load of 0.81 is 81 slots) with trigger / urgency / threshold produced by
``triggers.analyse`` exactly as the simulator's view does. Expected winners are computed
by hand in the comments from seed 000's and seed 001's formulas.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

import roadedge.envs  # noqa: F401  (registers the ids)
from roadedge.baselines import make_policy, policy_names, rules
from roadedge.baselines.policies import FAILOVER_RULES, MIGRATION_RULES
from roadedge.envs import RoadEdgeEnv
from roadedge.envs.sim.config import ScenarioConfig, preset_names
from roadedge.envs.sim.layout import Layout
from roadedge.envs.sim.triggers import Trigger, analyse
from roadedge.envs.sim.view import ControllerView
from roadedge.envs.sim.world import FREE, KIND_SESSION, KIND_TASK, ORPHANED, RUNNING

CFG = ScenarioConfig()  # seed defaults: thresholds 0.8 / 0.7, weights 0.7 / 0.8, rel. 0.8
NO_FAULTS = {"faults": {"rsu_mttf_s": 1e12, "uav_mttf_s": 1e12}}


# --- factories


def make_layout(distance, is_uav=None, max_jobs=100, capability=None) -> Layout:
    """A hand-made layout: the distance matrix is given directly (symmetric, metres)."""
    d = np.asarray(distance, dtype=np.float64)
    N = d.shape[0]
    assert d.shape == (N, N) and np.allclose(d, d.T)
    uav = np.zeros(N, dtype=bool) if is_uav is None else np.asarray(is_uav, dtype=bool)
    cap = np.ones((N, 2), dtype=bool) if capability is None else np.asarray(capability, bool)
    return Layout(
        pos_xyz=np.zeros((N, 3)),
        is_uav=uav,
        cpu_hz=np.full(N, 1e10),
        max_jobs=np.broadcast_to(np.asarray(max_jobs, dtype=np.int64), (N,)).copy(),
        coverage_m=np.full(N, 300.0),
        tx_power_dbm=np.full(N, 30.0),
        capability=cap,
        distance_m=d,
        hops=np.where(np.eye(N, dtype=bool), 0, 1),
        map_size_m=1000.0,
    )


@dataclass
class Task:
    state: int = RUNNING
    host: int = -1  # defaults to origin for RUNNING tasks
    origin: int = 0
    service: int = 0
    priority: int = 5
    remaining_s: float = 50.0
    backup: int = -1
    access: int = -1
    kind: int = KIND_TASK


def make_view(layout: Layout, used, *, up=None, battery=None, tasks=(), cfg=CFG, **over):
    """A ControllerView of one environment. ``used``: slots used per node (load =
    used / max_jobs, both in the ledger and in the last heartbeat). Trigger, urgency and
    threshold come from ``triggers.analyse``; per-node / per-task overrides are given
    without the batch axis (``cooldown_left_s=[5, 0, 0, 0]``)."""
    N = layout.n_nodes
    used = np.asarray(used, dtype=np.int64)
    up = np.ones(N, dtype=bool) if up is None else np.asarray(up, dtype=bool)
    battery = np.ones(N) if battery is None else np.asarray(battery, dtype=np.float64)
    load = used / layout.max_jobs
    zeros = np.zeros((1, N))
    trig, urg, thr = analyse(
        load[None], battery[None], layout.is_uav, up[None], zeros, zeros, cfg.migration
    )
    tasks = list(tasks) or [Task(state=FREE)]

    def col(name, dtype):
        return np.array([[getattr(t, name) for t in tasks]], dtype=dtype)

    state = col("state", np.int8)
    host = np.array(
        [[t.host if t.host >= 0 or t.state != RUNNING else t.origin for t in tasks]], dtype=np.int64
    )
    host = np.where(state == RUNNING, host, -1)
    fields = dict(
        time_s=np.zeros(1),
        layout=layout,
        controller_up=np.ones(1, dtype=bool),
        up=up[None],
        load=load[None],
        battery=battery[None],
        heartbeat_age_s=zeros.copy(),
        slots_used=used[None],
        slots_reserved=np.zeros((1, N), dtype=np.int64),
        free_slots=(layout.max_jobs - used)[None],
        cooldown_left_s=zeros.copy(),
        migrating=np.zeros((1, N), dtype=bool),
        failures=np.zeros((1, N), dtype=np.int64),
        since_failure_s=np.full((1, N), np.inf),
        completed=np.zeros((1, N), dtype=np.int64),
        lost=np.zeros((1, N), dtype=np.int64),
        trigger=trig,
        urgency=urg,
        threshold=thr,
        away_fraction=zeros.copy(),
        mean_hops=zeros.copy(),
        attached_vehicles=np.zeros((1, N), dtype=np.int64),
        task_state=state,
        task_kind=col("kind", np.int8),
        task_host=host,
        task_origin=col("origin", np.int64),
        task_backup=col("backup", np.int64),
        task_service=col("service", np.int64),
        task_priority=col("priority", np.int64),
        task_remaining_s=col("remaining_s", np.float64),
        task_progress=np.zeros((1, len(tasks))),
        task_access=col("access", np.int64),
        task_migrating=np.zeros((1, len(tasks)), dtype=bool),
        task_attempts=np.zeros((1, len(tasks)), dtype=np.int64),
        task_state_mb=np.full((1, len(tasks)), 10.0),
    )
    for name, value in over.items():
        assert name in fields, name
        fields[name] = np.asarray(value)[None]
    return ControllerView(**fields)


def make_mask(view: ControllerView, blocked=()) -> np.ndarray:
    """(1, N, N + 1): "nothing" always valid; a move n -> m valid iff m is believed up and
    m != n, except the ``blocked`` (n, m) pairs."""
    N = view.layout.n_nodes
    mask = np.ones((1, N, N + 1), dtype=bool)
    mask[0, :, 1:] = view.up[0][None, :] & ~np.eye(N, dtype=bool)
    for n, m in blocked:
        mask[0, n, m + 1] = False
    return mask


# Nodes 0, 1, 2 are RSUs, node 3 a UAV. From RSU 0 and from UAV 3 alike: node 1 is 250 m
# away, node 2 3000 m; RSU 0 and UAV 3 are 100 m apart.
DIST4 = [
    [0, 250, 3000, 100],
    [250, 0, 2750, 250],
    [3000, 2750, 0, 3000],
    [100, 250, 3000, 0],
]
LAY4 = make_layout(DIST4, is_uav=[False, False, False, True])


def threshold(view, mask=None):
    return rules.threshold_rule(view, make_mask(view) if mask is None else mask, CFG)[0]


# --- threshold rule


def test_threshold_rsu_overload_fires_above_0_8_not_below():
    # Mean RSU load (0.81 + 0.2 + 0.2) / 3 = 0.40 < 0.7: the static threshold 0.8 holds.
    view = make_view(LAY4, [81, 20, 20, 0])
    assert view.threshold[0, 0] == pytest.approx(0.8)
    assert view.trigger[0, 0] == Trigger.RSU_OVERLOAD
    act = threshold(view)
    assert act[0] != 0
    assert (act[1:] == 0).all()  # nobody else is over its threshold

    view = make_view(LAY4, [79, 20, 20, 0])
    assert view.trigger[0, 0] == Trigger.NONE
    assert (threshold(view) == 0).all()


def test_threshold_dynamic_threshold_when_mean_rsu_load_above_0_7():
    # RSU loads 0.75, 0.80, 0.70: mean 0.75 > 0.7, so thresholds x0.9: RSU 0.72, UAV 0.63.
    view = make_view(LAY4, [75, 80, 70, 10])
    np.testing.assert_allclose(view.threshold[0], [0.72, 0.72, 0.72, 0.63])
    act = threshold(view)
    assert act[0] != 0  # 0.75 > 0.72 fires
    assert act[2] == 0  # 0.70 < 0.72 does not
    # From RSU 0 the valid, non-overloaded targets are RSU 2 (0.70 < 0.72):
    # 0.7 * 0.3 + 0.3 / 4 = 0.285 and the UAV (0.10 < 0.63): 0.7 * 0.9 + 0.3 / 1.1 = 0.903.
    assert act[0] == 3 + 1

    # The same node at 0.75 while the mean RSU load is 0.52: threshold 0.8, no trigger.
    view = make_view(LAY4, [75, 40, 40, 10])
    assert view.threshold[0, 0] == pytest.approx(0.8)
    assert threshold(view)[0] == 0


def test_threshold_respects_cooldown_and_active_migration():
    used = [81, 20, 20, 0]
    assert threshold(make_view(LAY4, used, cooldown_left_s=[0.0, 0, 0, 0]))[0] != 0
    assert threshold(make_view(LAY4, used, cooldown_left_s=[5.0, 0, 0, 0]))[0] == 0
    assert threshold(make_view(LAY4, used, cooldown_left_s=[0.5, 0, 0, 0]))[0] == 0
    assert threshold(make_view(LAY4, used, migrating=[True, False, False, False]))[0] == 0
    # A believed-down node never migrates (its tasks are the failover rule's business).
    assert threshold(make_view(LAY4, used, up=[False, True, True, True]))[0] == 0


def test_threshold_target_score_from_rsu_uses_0_7_0_3():
    # RSU 0 overloaded (0.85); mean RSU load (0.85 + 0.4 + 0.2) / 3 = 0.48: threshold 0.8.
    # UAV 3 not allowed from RSU 0 (mask). Scores with w_cap = 0.7:
    #   RSU 1: 0.7 * 0.6 + 0.3 / (1 + 0.25) = 0.42 + 0.24 = 0.660   <- winner
    #   RSU 2: 0.7 * 0.8 + 0.3 / (1 + 3.00) = 0.56 + 0.075 = 0.635
    # (with 0.8 / 0.2 RSU 2 would win: 0.64 + 0.05 = 0.69 > 0.48 + 0.16 = 0.64).
    view = make_view(LAY4, [85, 40, 20, 0])
    mask = make_mask(view, blocked=[(0, 3)])
    assert threshold(view, mask)[0] == 1 + 1
    # The winner invalid in the mask: the runner-up.
    mask = make_mask(view, blocked=[(0, 3), (0, 1)])
    assert threshold(view, mask)[0] == 2 + 1
    # No valid target at all: nothing.
    mask = make_mask(view, blocked=[(0, 1), (0, 2), (0, 3)])
    assert threshold(view, mask)[0] == 0


def test_threshold_target_score_from_uav_uses_0_8_0_2():
    # UAV 3 at 0.75 > 0.7 (UAV threshold); same target loads as above; RSU 0 at 0.5.
    # Scores with w_cap = 0.8 from the UAV:
    #   RSU 0: 0.8 * 0.5 + 0.2 / 1.1  = 0.40 + 0.182 = 0.582
    #   RSU 1: 0.8 * 0.6 + 0.2 / 1.25 = 0.48 + 0.16  = 0.640
    #   RSU 2: 0.8 * 0.8 + 0.2 / 4    = 0.64 + 0.05  = 0.690   <- winner
    view = make_view(LAY4, [50, 40, 20, 75])
    assert view.trigger[0, 3] == Trigger.UAV_OVERLOAD
    act = threshold(view)
    assert act[3] == 2 + 1
    assert (act[:3] == 0).all()


def test_threshold_uav_battery_trigger_and_uavs_go_to_rsus():
    # RSUs 0, 1 and UAVs 2, 3. UAV 3 (battery 0.1 < 0.2) is 50 m from idle UAV 2 and
    # 2000 m from RSU 1 (RSU 0 invalid). UAV 2 scores 0.8 + 0.2 / 1.05 = 0.99, RSU 1
    # (load 0.5) 0.4 + 0.2 / 3 = 0.47, yet a UAV moves to an RSU when one is valid.
    lay = make_layout(
        [[0, 500, 500, 500], [500, 0, 2000, 2000], [500, 2000, 0, 50], [500, 2000, 50, 0]],
        is_uav=[False, False, True, True],
    )
    view = make_view(lay, [10, 50, 0, 10], battery=[1, 1, 1, 0.1])
    assert view.trigger[0, 3] == Trigger.UAV_BATTERY
    mask = make_mask(view, blocked=[(3, 0)])
    assert threshold(view, mask)[3] == 1 + 1
    # No RSU valid: the other UAV is acceptable.
    mask = make_mask(view, blocked=[(3, 0), (3, 1)])
    assert threshold(view, mask)[3] == 2 + 1


def test_threshold_never_picks_an_overloaded_target():
    # RSU 0 at 0.85 (source). UAV 3, 10 m away, at 0.75 >= its threshold 0.7 would score
    # 0.7 * 0.25 + 0.3 / 1.01 = 0.472 > RSU 1 (0.5, 3000 m): 0.35 + 0.075 = 0.425.
    # Mean RSU load (0.85 + 0.5 + 0.5) / 3 = 0.62: thresholds stay 0.8 / 0.7.
    lay = make_layout(
        [[0, 3000, 3000, 10], [3000, 0, 100, 3000], [3000, 100, 0, 3000], [10, 3000, 3000, 0]],
        is_uav=[False, False, False, True],
    )
    view = make_view(lay, [85, 50, 50, 75])
    assert threshold(view)[0] == 1 + 1  # RSU 1 (ties with RSU 2: lowest index)
    # The same UAV at 0.65 (not overloaded): 0.7 * 0.35 + 0.297 = 0.542 wins.
    view = make_view(lay, [85, 50, 50, 65])
    assert threshold(view)[0] == 3 + 1


# --- simulator's task choice


def test_simulator_migrates_top_priority_tasks_affinity_first():
    """A migration n -> m moves at most 3 of n's tasks. If some tasks' vehicles are attached
    to m, only those (session affinity; v1: the others' vehicles are elsewhere); otherwise
    (an offload) the top 3 by 0.5 * urgency + 0.5 / max(1, remaining_s) (urgency is the
    source's, the same for all its tasks, so: the nearest deadlines). Task-only run
    (no sessions) so that the rows are the seed's tasks."""
    env = RoadEdgeEnv(
        "small",
        migration={"backhaul_mbps": 1.0},  # transfers of >= 5 MB take >= 20 s: in flight
        tasks={
            "rate_per_vehicle_hz": 0.06,
            "work_gcycles_min": 5000.0,
            "work_gcycles_max": 6000.0,
            "deadline_s_min": 300.0,
            "deadline_s_max": 400.0,
        },
        sessions={"vehicle_share": 0.0},
        **NO_FAULTS,
    )
    env.reset(seed=1)
    w, lay = env.sim.world, env.sim.layout
    N = lay.n_nodes
    rsus = np.flatnonzero(~lay.is_uav)
    for _ in range(80):
        env.step(np.zeros(N, dtype=np.int64))
        hosted = np.bincount(w.task_host[0][w.task_state[0] == RUNNING], minlength=N)
        n = rsus[np.argmax(hosted[rsus])]
        if hosted[n] >= 5:
            break
    else:
        pytest.fail("no RSU hosted 5 tasks within 80 ticks")
    free = lay.max_jobs - w.slots_used[0] - w.slots_reserved[0]
    m = next(
        int(j)
        for j in rsus
        if j != n and free[j] >= 3 and (lay.capability[n] & lay.capability[j]).any()
    )
    service = int(np.flatnonzero(lay.capability[n] & lay.capability[m])[0])
    rows = np.flatnonzero((w.task_state[0] == RUNNING) & (w.task_host[0] == n))
    veh = w.task_vehicle[0, rows]
    # Affinity for one task whose vehicle owns no other task on n: the one with the
    # farthest deadline, so that affinity, not the formula, is what moves it.
    unique = [i for i in range(len(rows)) if (veh == veh[i]).sum() == 1 and w.veh_active[0, veh[i]]]
    assert unique, "no task with its own vehicle"
    remaining = np.array([3.0, 6.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0][: len(rows)])
    near = unique[-1]
    order = [i for i in range(len(rows)) if i != near] + [near]  # near gets the last deadline
    now = w.time_s[0]
    for rank, i in enumerate(order):
        w.task_deadline_s[0, rows[i]] = now + remaining[rank]
    w.task_service[0, rows] = service
    w.veh_access[0, veh] = n
    saved = w.copy()
    action = np.zeros(N, dtype=np.int64)
    action[n] = m + 1

    # offload: no vehicle attached to m: the three nearest deadlines (3, 6 and 30 s)
    assert env.sim.action_mask()[0, n, m + 1]
    _, _, _, _, info = env.step(action)
    assert info["metrics"]["migrations_started"] == 1
    moving = set(np.flatnonzero(w.task_mig_target[0] == m).tolist())
    assert moving == {int(rows[order[0]]), int(rows[order[1]]), int(rows[order[2]])}

    # the same state with one task's vehicle attached to m: that task alone
    env.sim.world = w = saved
    w.veh_access[0, veh[near]] = m
    assert env.sim.action_mask()[0, n, m + 1]
    _, _, _, _, info = env.step(action)
    assert info["metrics"]["migrations_started"] == 2
    moving = set(np.flatnonzero(w.task_mig_target[0] == m).tolist())
    assert moving == {int(rows[near])}


# --- failover rule

DIST_ALL = [[0, 100, 200, 300], [100, 0, 100, 200], [200, 100, 0, 100], [300, 200, 100, 0]]


def _orphans(origin=0, services=(0,), priority=8):
    return [Task(state=ORPHANED, origin=origin, service=s, priority=priority) for s in services]


def failover(view, mask=None):
    return rules.failover_rule(view, make_mask(view) if mask is None else mask, CFG)[0]


def test_failover_prefers_reliable_nodes():
    # Node 0 down with an orphan; 4 RSUs with max_jobs 10, all capable (match 1).
    # Reliability (completed + 1) / (completed + lost + 1); perf = completed / max completed.
    #   node 1: completed 9, lost 3: rel 10/13 = 0.769 < 0.8 (unreliable), perf 1, load 0
    #           score 0.35 * 0.769 + 0.25 + 0.25 * 1 + 0.15 * 1 = 0.919 (best score)
    #   node 2: rel 1, perf 0, load 0.5: 0.35 + 0.25 + 0.125 + 0 = 0.725   <- reliable best
    #   node 3: rel 1, perf 0, load 0.9: 0.35 + 0.25 + 0.025 + 0 = 0.625
    lay = make_layout(DIST_ALL, max_jobs=10)
    kw = dict(
        up=[False, True, True, True], tasks=_orphans(), completed=[0, 9, 0, 0], lost=[0, 3, 0, 0]
    )
    view = make_view(lay, [0, 0, 5, 9], **kw)
    np.testing.assert_allclose(rules.node_reliability(view, CFG)[0, 1:], [10 / 13, 1, 1])
    assert list(failover(view)) == [2 + 1, 0, 0, 0]
    assert failover(view, make_mask(view, blocked=[(0, 2)]))[0] == 3 + 1
    # Only the unreliable node valid: it is used.
    assert failover(view, make_mask(view, blocked=[(0, 2), (0, 3)]))[0] == 1 + 1
    # A failure 100 s ago (< 300 s) halves node 2's reliability to 0.5: node 3 instead.
    view = make_view(lay, [0, 0, 5, 9], since_failure_s=[np.inf, np.inf, 100.0, np.inf], **kw)
    assert failover(view)[0] == 3 + 1


def test_failover_score_weights_capability_load_and_performance():
    # Orphans of node 0 need services 0 and 1. Node 1 runs only service 0 (match 0.5),
    # node 2 both (match 1); node 3 is down. Both reliable (rel 1).
    #   node 1: 0.35 + 0.25 * 0.5 + 0.25 * (1 - load1) + 0.15 * 1 (completed 10, the max)
    #   node 2: 0.35 + 0.25 * 1.0 + 0.25 * 1           + 0.15 * 0
    # load1 = 0: 0.875 vs 0.850 -> node 1; load1 = 0.2: 0.825 vs 0.850 -> node 2.
    cap = [[True, True], [True, False], [True, True], [True, True]]
    lay = make_layout(DIST_ALL, max_jobs=10, capability=cap)
    kw = dict(
        up=[False, True, True, False], tasks=_orphans(services=(0, 1)), completed=[0, 10, 0, 0]
    )
    assert failover(make_view(lay, [0, 0, 0, 0], **kw))[0] == 1 + 1
    assert failover(make_view(lay, [0, 2, 0, 0], **kw))[0] == 2 + 1


def test_failover_acts_only_on_believed_down_nodes_with_orphans():
    lay = make_layout(DIST_ALL, max_jobs=10)
    # Node 0 down with orphans, node 1 down without, nodes 2 and 3 up: node 2 runs a task
    # and, just repaired, still has an orphan from before its failure (a migration rule's
    # business now that it is believed up).
    tasks = _orphans(origin=0) + [Task(state=RUNNING, origin=2)] + _orphans(origin=2)
    view = make_view(lay, [0, 0, 1, 0], up=[False, False, True, True], tasks=tasks)
    mask = make_mask(view)
    mask[0, :, 1:] = ~np.eye(4, dtype=bool)  # even a mask allowing everything
    mask[0, :, 1:3] = False  # ... except the down targets
    act = failover(view, mask)
    assert act[0] in (2 + 1, 3 + 1)
    assert (act[1:] == 0).all()


def test_failover_and_backup_targets_valid_and_believed_up_on_random_states():
    rng = np.random.default_rng(7)
    N, T, S = 6, 12, 3
    for _ in range(300):
        cap = rng.random((N, S)) < 0.6
        d = rng.uniform(50, 3000, (N, N))
        d = np.triu(d, 1) + np.triu(d, 1).T
        lay = make_layout(d, max_jobs=4, capability=cap)
        up = rng.random(N) < 0.6
        tasks = []
        for _t in range(T):
            kind = rng.integers(3)
            origin = int(rng.integers(N))
            if kind == 0 and not up[origin]:
                tasks.append(
                    Task(
                        state=ORPHANED,
                        origin=origin,
                        service=int(rng.integers(S)),
                        priority=int(rng.choice([2, 5, 8])),
                        remaining_s=float(rng.uniform(1, 80)),
                        backup=int(rng.integers(-1, N)),
                    )
                )
            elif kind == 1 and up[origin]:
                tasks.append(Task(state=RUNNING, origin=origin, service=int(rng.integers(S))))
            else:
                tasks.append(Task(state=FREE))
        used = np.where(up, rng.integers(0, 5, N), 0)
        view = make_view(
            lay,
            used,
            up=up,
            tasks=tasks,
            completed=rng.integers(0, 20, N),
            lost=rng.integers(0, 5, N),
            since_failure_s=rng.choice([50.0, 1000.0, np.inf], N),
        )
        mask = make_mask(view)
        mask[0, :, 1:] &= rng.random((N, N)) < 0.7  # random subset of the allowed moves
        orphaned_on = (
            np.bincount(
                np.array([t.origin for t in tasks if t.state == ORPHANED], dtype=np.int64),
                minlength=N,
            )
            > 0
        )
        table = rules.BackupTable(CFG.faults.backup_count).update(view)
        for act in (failover(view, mask), rules.backup_rule(view, mask, CFG, table)[0]):
            assert mask[0, np.arange(N), act].all()
            acting = np.flatnonzero(act)
            assert up[act[acting] - 1].all()
            assert (~up[acting]).all() and orphaned_on[acting].all()


# --- failover in the simulator


def _stale_target_setup(seed=0):
    """`failures` preset (random faults off): an RSU ``h`` with tasks dies and is declared
    down; its top orphan ``o`` (the only priority-8 one) and a live RSU ``g`` that can
    take it."""
    env = RoadEdgeEnv("failures", **NO_FAULTS)
    env.reset(seed=seed)
    w, lay = env.sim.world, env.sim.layout
    N = lay.n_nodes
    noop = np.zeros(N, dtype=np.int64)
    rsus = np.flatnonzero(~lay.is_uav)
    for _ in range(20):
        env.step(noop)
        hosted = np.bincount(w.task_host[0][w.task_state[0] == RUNNING], minlength=N)
        if hosted[rsus].max() >= 2:
            break
    h = int(rsus[np.argmax(hosted[rsus])])
    assert hosted[h] >= 1
    w.node_up[0, h] = False  # dies (for good) unbeknownst to the controller
    w.down_since_s[0, h] = w.time_s[0]
    w.repair_at_s[0, h] = np.inf
    for _ in range(8):
        env.step(noop)
        if not w.view_up[0, h]:
            break
    assert not w.view_up[0, h], "failure not detected"
    orphans = np.flatnonzero((w.task_state[0] == ORPHANED) & (w.task_origin[0] == h))
    assert orphans.size >= 1
    o = int(orphans[0])
    w.task_priority[0, orphans] = env.cfg.faults.priority_low  # 2
    w.task_priority[0, o] = env.cfg.faults.priority_high  # 8: o is moved first, whatever else
    free = lay.max_jobs - w.slots_used[0] - w.slots_reserved[0]
    able = [
        int(g)
        for g in rsus
        if g != h and w.view_up[0, g] and lay.capability[g, w.task_service[0, o]]
    ]
    g = max(able, key=lambda j: free[j])
    return env, h, o, g


def test_failover_to_stale_target_drops_task_after_three_attempts():
    env, h, o, g = _stale_target_setup()
    w, N, fc = env.sim.world, env.sim.layout.n_nodes, env.cfg.faults
    assert fc.max_reassignment_attempts == 3  # seed 001
    # g dies too, but the controller's view is stale: it keeps believing g is up (g's
    # heartbeat is refreshed so the controller never declares it down during the test).
    w.node_up[0, g] = False
    w.repair_at_s[0, g] = np.inf
    action = np.zeros(N, dtype=np.int64)
    action[h] = g + 1
    failovers0 = env.sim.metrics()["failovers"][0]
    # o may be a task or a session: each kind's drops are counted apart
    counter = "sessions_dropped" if w.task_kind[0, o] == KIND_SESSION else "tasks_dropped"
    for attempt in (1, 2, 3):
        w.last_heartbeat_s[0, g] = w.time_s[0]
        assert env.sim.action_mask()[0, h, g + 1], "the controller should see g as valid"
        dropped0 = env.sim.metrics()[counter][0]
        _, _, _, _, info = env.step(action)
        assert w.task_attempts[0, o] == attempt
        if attempt < 3:
            assert w.task_state[0, o] == ORPHANED
        else:
            # Dropped on the third failed attempt, well before the 10 s orphan timeout.
            assert w.task_state[0, o] == FREE
            assert w.time_s[0] - w.task_orphaned_s[0, o] < fc.orphan_timeout_s
            assert info["metrics"][counter] >= dropped0 + 1
            # drop term: -(drop weight) * 8 / 5 (o's priority weight) for o alone, at least
            assert info["reward_terms"]["drop"] <= -env.cfg.reward.drop * 8 / 5 + 1e-9
    assert env.sim.metrics()["failovers"][0] == failovers0  # none succeeded


def test_failover_to_live_target_restarts_task_there():
    env, h, o, g = _stale_target_setup()
    w, N = env.sim.world, env.sim.layout.n_nodes
    action = np.zeros(N, dtype=np.int64)
    action[h] = g + 1
    _, _, _, _, info = env.step(action)
    assert w.task_state[0, o] == RUNNING and w.task_host[0, o] == g
    assert info["metrics"]["failovers"] >= 1


# --- backup table and rule

# Node 0 is the primary. From node 0: node 1 at 250 m, node 2 at 1000 m, node 3 at 3000 m,
# node 4 at 100 m (cannot run service 0), node 5 at 100 m (capable, may be down).
DIST6 = np.array(
    [
        [0, 250, 1000, 3000, 100, 100],
        [250, 0, 800, 2800, 300, 300],
        [1000, 800, 0, 2000, 1000, 1000],
        [3000, 2800, 2000, 0, 3000, 3000],
        [100, 300, 1000, 3000, 0, 50],
        [100, 300, 1000, 3000, 50, 0],
    ]
)
CAP6 = [[True, True]] * 4 + [[False, True], [True, True]]
LAY6 = make_layout(DIST6, max_jobs=10, capability=CAP6)


def test_backup_table_lists_replica_holder_first_then_capable_up_nodes():
    # Task on node 0, replica on node 2. Other candidates by (1 - load) / (1 + d / 1000):
    #   node 1: 0.5 / 1.25 = 0.40,  node 3: 1.0 / 4 = 0.25,  node 2 (replica): 0.1 / 2,
    #   node 4: cannot run service 0, node 5: believed down.
    used = [3, 5, 9, 0, 0, 0]
    up = [True, True, True, True, True, False]
    view = make_view(LAY6, used, up=up, tasks=[Task(origin=0, service=0, backup=2)])
    assert rules.BackupTable(3).update(view)[0, 0].tolist() == [2, 1, 3]
    assert rules.BackupTable(2).update(view)[0, 0].tolist() == [2, 1]
    assert rules.BackupTable(5).update(view)[0, 0].tolist() == [2, 1, 3, -1, -1]
    # No replica: just the scores.
    view = make_view(LAY6, used, up=up, tasks=[Task(origin=0, service=0, backup=-1)])
    assert rules.BackupTable(3).update(view)[0, 0].tolist() == [1, 3, 2]


def test_backup_table_keeps_live_entries_and_replaces_down_ones():
    up = [True, True, True, True, True, False]
    task = [Task(origin=0, service=0, backup=2)]
    table = rules.BackupTable(2)
    assert table.update(make_view(LAY6, [3, 5, 9, 0, 0, 0], up=up, tasks=task))[0, 0].tolist() == [
        2,
        1,
    ]
    # Node 1 gets busy (0.1 / 1.25 = 0.08 < node 3's 0.25): live entries stay in place.
    assert table.update(make_view(LAY6, [3, 9, 9, 0, 0, 0], up=up, tasks=task))[0, 0].tolist() == [
        2,
        1,
    ]
    # Node 2 believed down: replaced; node 1 is kept, node 3 (best remaining) fills in.
    up2 = [True, True, False, True, True, False]
    assert table.update(make_view(LAY6, [3, 9, 0, 0, 0, 0], up=up2, tasks=task))[0, 0].tolist() == [
        1,
        3,
    ]
    # The task ends: its row is cleared.
    free = [Task(state=FREE)]
    assert table.update(make_view(LAY6, [3, 9, 0, 0, 0, 0], up=up2, tasks=free))[0, 0].tolist() == [
        -1,
        -1,
    ]


def test_backup_rule_fails_over_to_first_valid_backup_of_top_orphan():
    # Node 0 down with two orphans: t0 (priority 2, backups [3, 1]) and t1 (priority 8,
    # backups [2, 1]). The rule follows t1's list.
    lay = make_layout(DIST_ALL, max_jobs=10)
    tasks = [Task(state=ORPHANED, origin=0, priority=2), Task(state=ORPHANED, origin=0, priority=8)]
    view = make_view(lay, [0, 0, 0, 0], up=[False, True, True, True], tasks=tasks)
    backups = np.array([[[3, 1], [2, 1]]])
    act = rules.backup_rule(view, make_mask(view), CFG, backups)[0]
    assert act.tolist() == [2 + 1, 0, 0, 0]
    # First backup invalid: the second.
    act = rules.backup_rule(view, make_mask(view, blocked=[(0, 2)]), CFG, backups)[0]
    assert act[0] == 1 + 1
    # No table: nothing.
    assert (rules.backup_rule(view, make_mask(view), CFG, None) == 0).all()


def test_backup_policy_uses_table_from_replica_holder():
    # Through the policy: orphan of node 0 with its replica on node 3 -> fail over to 3;
    # node 3 invalid (e.g. full) -> the next table entry, the best-scoring other node:
    # node 1 (100 m, idle: 1 / 1.1 = 0.91) over node 2 (200 m: 1 / 1.2 = 0.83).
    lay = make_layout(DIST_ALL, max_jobs=10)
    view = make_view(
        lay,
        [0, 0, 0, 0],
        up=[False, True, True, True],
        tasks=[Task(state=ORPHANED, origin=0, priority=8, backup=3)],
    )
    pol = make_policy("backup", SimpleNamespace(cfg=CFG))
    assert pol.decide(view, make_mask(view))[0].tolist() == [3 + 1, 0, 0, 0]
    pol = make_policy("backup", SimpleNamespace(cfg=CFG))
    assert pol.decide(view, make_mask(view, blocked=[(0, 3)]))[0].tolist() == [1 + 1, 0, 0, 0]


def test_combined_policy_migrates_up_nodes_and_fails_over_down_ones():
    # Node 0 down with an orphan, node 1 overloaded (0.85), nodes 2, 3 idle.
    lay = make_layout(DIST_ALL, max_jobs=100)
    view = make_view(lay, [0, 85, 0, 0], up=[False, True, True, True], tasks=_orphans())
    mask = make_mask(view)
    act = make_policy("threshold+failover", SimpleNamespace(cfg=CFG)).decide(view, mask)[0]
    assert act[0] != 0 and act[1] != 0 and act[2] == 0 and act[3] == 0
    only_mig = make_policy("threshold", SimpleNamespace(cfg=CFG)).decide(view, mask)[0]
    only_fo = make_policy("failover", SimpleNamespace(cfg=CFG)).decide(view, mask)[0]
    assert only_mig[0] == 0 and only_fo[1] == 0
    assert act.tolist() == [only_fo[0], only_mig[1], 0, 0]


# --- every baseline, every preset


def _random_valid(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.argmax(np.where(mask, rng.random(mask.shape), -1.0), axis=-1)


@pytest.mark.long
@pytest.mark.parametrize("preset", preset_names())
def test_every_policy_returns_valid_actions_on_1000_states(preset):
    """Random rollouts (actions taken in turn from each policy and from a uniform random
    valid choice) visit 1,000 states; every policy is asked on every state."""
    env = RoadEdgeEnv(preset, record_events=False)
    N = env.n_nodes
    names = policy_names()
    policies = {name: make_policy(name, env, seed=3) for name in names}
    rng = np.random.default_rng(11)
    nodes = np.arange(N)
    states = failover_acts = down_states = 0
    acted = dict.fromkeys(names, 0)
    for episode in range(4):
        env.reset(seed=100 + episode)
        for pol in policies.values():
            pol.reset()
        for step in range(250):
            mask = env.sim.action_mask()[0]
            view = env.controller_view()
            up = view.up[0]
            orphaned = (
                np.bincount(view.task_origin[0][view.task_state[0] == ORPHANED], minlength=N) > 0
            )
            down_states += int((~up & orphaned).any())
            chosen = {}
            for name, pol in policies.items():
                # predict() is decide() on this same view and mask (see the predict tests);
                # sharing the view keeps 12 policies x 1,000 states fast.
                a = pol.decide(view, mask[None])[0]
                assert a.shape == (N,), name
                bad = ~mask[nodes, a]
                assert not bad.any(), f"{name}: invalid {a} at nodes {np.flatnonzero(bad)}"
                src = np.flatnonzero(a)
                assert up[a[src] - 1].all(), f"{name}: target believed down"
                parts = name.split("+")
                if not set(parts) & set(FAILOVER_RULES) and "random" not in parts:
                    assert up[src].all(), f"{name}: a migration rule acted on a down node"
                if not set(parts) & (set(MIGRATION_RULES) - {"noop"}):
                    assert (~up[src] & orphaned[src]).all(), f"{name}: failover misfired"
                    failover_acts += int(src.size > 0)
                if "threshold" in parts:
                    tgt = a[src] - 1
                    ok = rules.target_load(view)[0, tgt] < view.threshold[0, tgt]
                    assert (ok | ~up[src]).all(), "threshold picked an overloaded target"
                acted[name] += int(src.size > 0)
                chosen[name] = a
            states += 1
            turn = step % (len(names) + 1)
            action = _random_valid(mask, rng) if turn == len(names) else chosen[names[turn]]
            env.step(action)
    assert states == 1000
    assert acted["noop"] == 0
    idle = [name for name in names if name != "noop" and acted[name] == 0]
    assert not idle, f"never acted on {preset}: {idle}"
    if preset == "failures":  # the failover rules were exercised
        assert down_states > 0 and failover_acts > 0


def _read_only(value):
    """A deep copy of ``value`` (array, view or layout dataclass) whose arrays reject writes."""
    if isinstance(value, np.ndarray):
        out = value.copy()
        out.flags.writeable = False
        return out
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(
            value,
            **{
                f.name: _read_only(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.init and isinstance(getattr(value, f.name), np.ndarray | Layout)
            },
        )
    return value


@pytest.mark.parametrize("name", [*policy_names(), "oracle"])
def test_policies_do_not_modify_their_inputs(name):
    """Every policy runs on read-only observations, controller views and action masks
    (a write raises), on states with failed nodes and orphans, so the failover rules act.
    The long test above shares one mask between policies: a rule writing into it would
    change what the next policy may choose."""
    env = RoadEdgeEnv("small", **{"faults.rsu_mttf_s": 40.0, "faults.uav_mttf_s": 40.0})
    policy = make_policy(name, env, seed=1)
    true_view, true_mask = env.controller_view, env.sim.action_mask
    env.controller_view = lambda: _read_only(true_view())
    env.sim.action_mask = lambda: _read_only(true_mask())
    obs, _ = env.reset(seed=5)
    down = 0
    for _ in range(40):
        obs.flags.writeable = False
        action, _ = policy.predict(obs)
        assert true_mask()[0, np.arange(env.n_nodes), action].all(), f"{name}: invalid {action}"
        down += int((~true_view().up).any())
        obs, *_ = env.step(action)
    assert down > 0  # failed nodes were seen, so the failover rules ran


# --- construction and predict


@pytest.mark.parametrize(
    "name",
    [
        "foo",
        "threshold+greedy",
        "failover+backup",
        "noop+noop",
        "threshold+failover+backup",
        "",
        "Threshold",
    ],
)
def test_make_policy_rejects_unknown_and_double_rules(name):
    env = SimpleNamespace(cfg=CFG)
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy(name, env)


def test_policy_names_all_build():
    env = SimpleNamespace(cfg=CFG)
    names = policy_names()
    assert len(names) == len(set(names))
    for name in (
        "noop",
        "random",
        "follow",
        "greedy",
        "threshold",
        "failover",
        "backup",
        "threshold+failover",
        "threshold+backup",
    ):
        assert name in names
    for name in names:
        make_policy(name, env)
    assert make_policy("failover+threshold", env).migration == "threshold"


@pytest.mark.parametrize("obs_mode", ["flat", "dict"])
def test_predict_shapes_single_and_batched(obs_mode):
    env = gym.make("RoadEdge-small-v1", obs_mode=obs_mode)
    obs, _ = env.reset(seed=0)
    N = env.unwrapped.n_nodes
    pol = make_policy("threshold+failover", env)
    a, state = pol.predict(obs, state="s", deterministic=True)
    assert a.shape == (N,) and state == "s"
    batched = {k: v[None] for k, v in obs.items()} if obs_mode == "dict" else obs[None]
    ab, _ = pol.predict(batched)
    assert ab.shape == (1, N)
    np.testing.assert_array_equal(ab[0], a)
    u = env.unwrapped
    np.testing.assert_array_equal(a, pol.decide(u.controller_view(), u.sim.action_mask())[0])
    env.step(a)  # a single-env action is accepted by the env
    env.close()
