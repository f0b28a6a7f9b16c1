"""Pins of the model on hand-built states and hand-computed values (issue 18): the
cooldown boundary tick, the controller's blindness to the hidden truth, every reward
term with its own weight, every observation feature by name, failover restore versus
restart, and UAV battery returns. Each test was checked to fail on a planted bug."""

from __future__ import annotations

import numpy as np
import pytest
from _handbuilt import (
    act,
    noop,
    park,
    place,
    quiet_sim,
)

from roadedge.baselines import rules
from roadedge.envs.sim import migration
from roadedge.envs.sim.view import controller_view
from roadedge.envs.sim.world import (
    CAUSE_BATTERY,
    CAUSE_FAULT,
    CAUSE_NONE,
    KIND_SESSION,
    ORPHANED,
    RUNNING,
)

# small: RSUs 0, 1, 2 and UAV 3; service 2 runs on the RSUs only; hops 0-1: 1, 1-2: 2.
SERVICE_RSUS = 2


def kill_silently(sim, node: int) -> None:
    """Node ``node`` is truly down from now on (never repaired); nothing detected yet."""
    w = sim.world
    w.node_up[0, node] = False
    w.down_cause[0, node] = CAUSE_FAULT
    w.down_since_s[0, node] = w.time_s[0]
    w.repair_at_s[0, node] = 1e12


# --------------------------------------------------------------------------- 1 cooldown


def _migration_ending_at_4(success: bool):
    """Four sessions on RSU 0 whose vehicles are parked under RSU 1; at t = 1 a migration
    0 -> 1 of three of them (3 x 25 MB) starts. With no hop latency its delay is
    0.5 * 8 * 75 / 100 = 3.0 s exactly: it ends at T = 4.0, in the tick [3, 4). The
    outcome is forced through the migration record."""
    sim = quiet_sim({"radio.hop_latency_ms": 0.0})
    w = sim.world
    assert w.time_s[0] == 1.0
    for v in range(4):
        park(sim, v, 1)
        place(sim, veh=v, host=0, service=SERVICE_RSUS, kind=KIND_SESSION, state_mb=25.0)
    assert sim.action_mask()[0, 0, 2]
    sim.step(act(sim, n0=1))
    assert w.mig_active[0, 0] and w.mig_end_s[0, 0] == 4.0
    w.mig_success_p[0, 0] = 1.0 if success else 0.0
    while w.mig_active[0, 0]:
        sim.step(noop(sim))
    assert w.time_s[0] == 4.0
    moved = (w.task_state[0] == RUNNING) & (w.task_host[0] == 1)
    assert moved.sum() == (3 if success else 0)
    return sim


def _rules_on_node0(sim, ignore_cooldown_in_mask=False):
    view = controller_view(sim)
    mask = sim.action_mask()
    if ignore_cooldown_in_mask:
        probe = sim.world.copy()
        probe.cooldown_until_s[:] = -np.inf
        mask = migration.action_mask(probe, sim.layout, sim.cfg)
    return (
        int(rules.threshold_rule(view, mask, sim.cfg)[0, 0]),
        int(rules.greedy_rule(view, mask, sim.cfg)[0, 0]),
        float(view.cooldown_left_s[0, 0]),
    )


@pytest.mark.parametrize("success", [True, False])
def test_cooldown_blocks_the_source_until_exactly_end_plus_10s(success):
    sim = _migration_ending_at_4(success)
    w = sim.world
    # MODEL.md 8.5: cooldown_until = mig_end + cooldown_s = 4 + 10, from the end time
    assert w.cooldown_until_s[0, 0] == 14.0
    while w.time_s[0] < 13.0:
        assert not sim.action_mask()[0, 0, 1:].any(), w.time_s[0]
        sim.step(noop(sim))
    # t = 13 = T + 10 - dt: still cooling down, for the mask and for the rules
    assert w.time_s[0] == 13.0
    assert not sim.action_mask()[0, 0, 1:].any()
    thr, greedy, left = _rules_on_node0(sim, ignore_cooldown_in_mask=True)
    assert left == 1.0
    assert thr == 0 and greedy == 0  # the rules read the cooldown themselves too
    # t = 14 = T + 10: free again, in the mask and for the rules
    sim.step(noop(sim))
    assert w.time_s[0] == 14.0
    mask = sim.action_mask()[0, 0]
    assert mask[2] and mask[3]  # RSU 1 and RSU 2 run the service and have room
    thr, greedy, left = _rules_on_node0(sim)
    assert left == 0.0
    # the mobility trigger fires; target score 0.7 (1 - load) + 0.3 / (1 + d / 1000):
    # RSU 1 (250 m) 0.7 (1 - 3/8) + 0.24 = 0.6775 after the move, 0.94 if empty;
    # RSU 2 (500 m, empty) 0.7 + 0.2 = 0.9
    assert thr == (3 if success else 2)
    if not success:
        # four sessions a hop from their vehicles, RSU 1 empty: moving pays
        assert greedy == 2
    # and a migration can start again at T + 10 exactly
    started = sim.metrics()["migrations_started"][0]
    sim.step(act(sim, n0=1))
    assert sim.metrics()["migrations_started"][0] == started + 1


def test_cancelled_migration_cools_the_source_down_from_the_cancellation():
    sim = quiet_sim({"radio.hop_latency_ms": 0.0})
    w = sim.world
    for v in range(4):
        park(sim, v, 1)
        place(sim, veh=v, host=0, service=SERVICE_RSUS, kind=KIND_SESSION, state_mb=25.0)
    sim.step(act(sim, n0=1))  # t = 1, ends at 4
    assert w.mig_active[0, 0] and w.time_s[0] == 2.0
    kill_silently(sim, 1)  # the target dies at t = 2: cancelled in step 2 of that tick
    sim.step(noop(sim))
    assert not w.mig_active[0, 0]
    assert sim.metrics()["migrations_cancelled"][0] == 1
    assert w.cooldown_until_s[0, 0] == 12.0  # 2 + 10
    while w.time_s[0] < 11.0:
        sim.step(noop(sim))
    assert not sim.action_mask()[0, 0, 1:].any()
    sim.step(noop(sim))
    assert w.time_s[0] == 12.0
    mask = sim.action_mask()[0, 0]
    assert not w.view_up[0, 1] and not mask[2]  # the dead target, detected by now
    assert mask[3]  # RSU 2


# --------------------------------------------------------------------------- 5 failover restore


def _orphan_of_dead_rsu0(backup: int, replication=True, backup_dead=False):
    """A task orphaned from RSU 0 (declared down at t = 1): work done 7e10 cycles, its
    replica 4e10 (checkpointed earlier), 10 MB of state and 2 MB of input."""
    sim = quiet_sim({"faults.replication": replication})
    w = sim.world
    park(sim, 0, 1)
    t = place(
        sim,
        veh=0,
        host=0,
        service=SERVICE_RSUS,
        state=ORPHANED,
        priority=8,
        work=1e13,
        done=7e10,
        replica=4e10,
        backup=backup,
        state_mb=10.0,
        input_mb=2.0,
    )
    kill_silently(sim, 0)
    w.view_up[0, 0] = False
    w.task_interrupted_s[0, t] = 0.5
    if backup_dead:
        kill_silently(sim, backup)  # truly down, still believed up
    return sim, t


# (backup, replication, backup dead) -> (done after restart, restart delay [s])
# restore: 8 * 10 MB / 100 Mbps + hops(backup, 1) * 5 ms; from scratch: 8 * 2 MB / 100 Mbps
FAILOVER_CASES = {
    "replica_on_rsu2": (2, True, False, 4e10, 0.8 + 2 * 0.005),
    "replica_on_target": (1, True, False, 4e10, 0.0),
    "replica_on_uav": (3, True, False, 4e10, 0.8 + 2 * 0.005),
    "backup_dead": (2, True, True, 0.0, 0.16),
    "no_backup": (-1, True, False, 0.0, 0.16),
    "replication_off": (2, False, False, 0.0, 0.16),
}


@pytest.mark.parametrize("case", sorted(FAILOVER_CASES))
def test_failover_restores_the_replica_or_restarts_from_scratch(case):
    backup, replication, dead, done, delay = FAILOVER_CASES[case]
    sim, t = _orphan_of_dead_rsu0(backup, replication, dead)
    w, lay = sim.world, sim.layout
    if backup >= 0:
        assert lay.hops[backup, 1] == {1: 0, 2: 2, 3: 2}[backup]
    now = w.time_s[0]
    probe = w.copy()
    out = migration.apply_decisions(
        probe, lay, sim.cfg, act(sim, n0=1), sim._node_index
    )  # step 1 alone
    assert probe.task_state[0, t] == RUNNING and probe.task_host[0, t] == 1
    assert probe.task_done[0, t] == done
    assert probe.task_replica[0, t] == done
    assert probe.task_ready_s[0, t] == pytest.approx(now + delay, abs=1e-12)
    assert out["restart_downtime_s"][0] == pytest.approx(delay, abs=1e-12)
    assert out["recovery_s"][0] == pytest.approx(now + delay - 0.5, abs=1e-12)
    assert out["failovers"][0] == 1 and out["failover_failed"][0] == 0
    # the whole tick: the task progresses on RSU 1 (alone: 2e10 cycles/s) after its delay
    res = sim.step(act(sim, n0=1))
    assert w.task_host[0, t] == 1
    assert w.task_done[0, t] == pytest.approx(done + 2e10 * (1.0 - delay), rel=1e-12)
    assert res.terms["downtime"][0] == pytest.approx(delay, abs=1e-12)


# --------------------------------------------------------------------------- 6 UAV battery


def test_uav_below_return_fraction_leaves_recharges_and_comes_back_full():
    sim = quiet_sim({"uav.recharge_s": 37.0}, warmup=2)
    w, lay, cfg = sim.world, sim.layout, sim.cfg
    uav = 3
    cap = 60.0 * 3600.0  # 60 Wh
    # an idle UAV draws 150 W: 100 J above the return level now, 50 J below after a tick
    w.battery_j[0, uav] = 0.1 * cap + 100.0
    for v in range(3):
        park(sim, v, uav)
    # a session on RSU 0 whose vehicle hangs under the UAV: the UAV is a valid target
    place(sim, veh=0, host=0, service=0, kind=KIND_SESSION)
    assert sim.action_mask()[0, 0, uav + 1]
    sim.step(noop(sim))  # t = 2: still above in the fault phase; drains in compute
    assert w.node_up[0, uav]
    assert w.battery_j[0, uav] == pytest.approx(0.1 * cap - 50.0)
    assert (w.veh_access[0, :3] == uav).all()
    t_down = w.time_s[0]  # 3.0: the next fault phase sends it home
    sim.step(noop(sim))
    assert not w.node_up[0, uav]
    assert w.down_cause[0, uav] == CAUSE_BATTERY
    assert w.down_since_s[0, uav] == t_down
    assert w.repair_at_s[0, uav] == t_down + 37.0
    assert (w.veh_access[0, :3] != uav).all()  # no longer an access node, at once
    battery_away = w.battery_j[0, uav]
    assert battery_away == pytest.approx(0.1 * cap - 50.0)  # no drain while away
    while w.time_s[0] < t_down + 37.0:
        if w.time_s[0] > t_down + 3.0:  # detected (3 missed heartbeats): not a target
            assert not w.view_up[0, uav]
            assert not sim.action_mask()[0, :, uav + 1].any()
        assert not w.node_up[0, uav]
        assert w.battery_j[0, uav] == battery_away
        assert (w.veh_access[0, :3] != uav).all()
        sim.step(noop(sim))
    assert w.time_s[0] == t_down + 37.0
    sim.step(noop(sim))  # repaired in step 2 of the first tick with repair_at <= t
    assert w.node_up[0, uav] and w.view_up[0, uav]
    assert w.down_cause[0, uav] == CAUSE_NONE
    assert w.battery_j[0, uav] == pytest.approx(cap - 150.0 * cfg.dt_s)  # full, one tick drawn
    assert w.view_battery[0, uav] == 1.0
    assert (w.veh_access[0, :3] == uav).all()
    assert sim.action_mask()[0, 0, uav + 1]
    assert lay.is_uav[uav]
