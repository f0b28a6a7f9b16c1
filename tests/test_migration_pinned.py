"""Pins of migration.py on hand-built states (MODEL.md section 8): the selection order of a
move's rows (session affinity, sessions first, failover priority levels), admission per
environment of a batch, and seed 003's retry chain (busy source, the controller's outage,
the target score with the ledger's load, tried targets). Written against the survivors
of a mutation run; every expected value is computed by hand in the test.

small: RSUs 0, 1, 2 (8 slots each) and UAV 3 (4 slots); distances from RSU 0: 250 m to
RSU 1, 500 m to RSU 2, 293.6 m to UAV 3. Service 2 runs on the RSUs only."""

from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace

import numpy as np
import pytest
from _handbuilt import QUIET, act, noop, park, place, quiet_sim

from roadedge.envs.sim import migration
from roadedge.envs.sim.config import load_scenario
from roadedge.envs.sim.rng import key_from_seed
from roadedge.envs.sim.simulator import Simulator
from roadedge.envs.sim.world import KIND_SESSION, ORPHANED, RUNNING, World

# A numpy RuntimeWarning (a division by zero, an invalid cast) in a tick is a bug.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

SERVICE_RSUS = 2
ONE_PER_MOVE = {"migration.max_tasks_per_migration": 1}
# Every node runs every service (so the retries' choice is the score's alone); the
# controller only fails when a test says so.
ALL_SERVICES = {
    "tasks.n_services": 2,
    "rsu.services_per_node": 2,
    "faults.controller_outages": True,
    "faults.controller_mttf_s": 1e12,
}


def _decide(sim, **moves):
    """Step 1 alone (the controller's decisions) on a copy of the world."""
    probe = sim.world.copy()
    out = migration.apply_decisions(probe, sim.layout, sim.cfg, act(sim, **moves))
    return probe, out


# --------------------------------------------------------------------------- selection order


def test_an_attached_session_goes_before_an_attached_task():
    """Among the rows attached to the target, a session ranks before a task (seed 004),
    whatever the task's seed 000 priority: with one row per move the session moves."""
    sim = quiet_sim(ONE_PER_MOVE)
    park(sim, 0, 1)
    park(sim, 1, 1)
    task = place(sim, veh=0, host=0, service=SERVICE_RSUS, deadline_s=sim.world.time_s[0] + 1.0)
    session = place(sim, veh=1, host=0, service=SERVICE_RSUS, kind=KIND_SESSION)
    assert task < session  # a tie would go to the task
    probe, out = _decide(sim, n0=1)
    assert out["started"][0, 0]
    assert probe.task_mig_target[0, session] == 1
    assert probe.task_mig_target[0, task] == -1


def test_an_attached_low_level_orphan_goes_before_an_attached_session():
    """One decision 0 -> 1 of a node believed up with an orphan (its origin was repaired):
    an attached orphan of the lowest level (2 + 2 affinity = 4 + seed 000 priority) ranks
    before an attached migrating session (2 affinity + 1 session + seed 000 priority),
    both with no deadline and the same urgency: the session bonus stays below a level."""
    sim = quiet_sim(ONE_PER_MOVE)
    park(sim, 0, 1)
    park(sim, 1, 1)
    session = place(sim, veh=0, host=0, service=SERVICE_RSUS, kind=KIND_SESSION)
    orphan = place(
        sim, veh=1, host=0, service=SERVICE_RSUS, kind=KIND_SESSION, state=ORPHANED, priority=2
    )
    assert session < orphan  # a tie would go to the session
    assert sim.world.view_up[0, 0]
    probe, out = _decide(sim, n0=1)
    assert out["failovers"][0] == 1
    assert probe.task_state[0, orphan] == RUNNING and probe.task_host[0, orphan] == 1
    assert probe.task_mig_target[0, session] == -1 and not out["started"][0, 0]


def test_a_failover_takes_the_closer_deadline_first_within_a_priority_level():
    """Two level-5 orphans of RSU 0 (declared down: urgency 1). Priority 5 + 0.5 + 0.5 /
    max(1, remaining): 6.0 for 0.5 s left, 5.5005 for 1000 s left; one row per move."""
    sim = quiet_sim(ONE_PER_MOVE)
    w = sim.world
    now = w.time_s[0]
    park(sim, 0, 2)  # attached to neither source nor target
    far = place(sim, veh=0, host=0, service=SERVICE_RSUS, state=ORPHANED, deadline_s=now + 1000.0)
    close = place(sim, veh=0, host=0, service=SERVICE_RSUS, state=ORPHANED, deadline_s=now + 0.5)
    w.node_up[0, 0] = False
    w.repair_at_s[0, 0] = 1e12
    w.view_up[0, 0] = False
    probe, out = _decide(sim, n0=1)
    assert out["failovers"][0] == 1
    assert probe.task_state[0, close] == RUNNING and probe.task_host[0, close] == 1
    assert probe.task_state[0, far] == ORPHANED


def test_an_offload_takes_the_closer_deadline_first_at_time_zero():
    """The first decision (t = 0): RSU 0 offloads to RSU 1 (no vehicle attached to it)
    one of two tasks, 0.5 / max(1, remaining) = 0.1 for 5 s left, 0.005 for 100 s left."""
    sim = quiet_sim(ONE_PER_MOVE, warmup=0)
    assert sim.world.time_s[0] == 0.0
    park(sim, 0, 0)
    far = place(sim, veh=0, host=0, service=SERVICE_RSUS, deadline_s=100.0)
    close = place(sim, veh=0, host=0, service=SERVICE_RSUS, deadline_s=5.0)
    assert far < close  # a tie would go to the far one
    probe, out = _decide(sim, n0=1)
    assert out["started"][0, 0]
    assert probe.task_mig_target[0, close] == 1 and probe.task_mig_target[0, far] == -1


def test_two_sources_share_a_target_lower_source_first_whatever_the_priority():
    """RSUs 0 and 1 both move a task to RSU 2, which has one free slot (2 slots, one
    taken). RSU 1's task is attached to RSU 2 (priority above 2), RSU 0's is not (at most
    1): the admission key 1000 * source - priority still admits RSU 0's first."""
    sim = quiet_sim({"rsu.max_jobs": 2})
    park(sim, 0, 0)
    park(sim, 1, 2)
    low = place(sim, veh=0, host=0, service=SERVICE_RSUS)
    high = place(sim, veh=1, host=1, service=SERVICE_RSUS)
    place(sim, veh=1, host=2, service=SERVICE_RSUS)
    probe, out = _decide(sim, n0=2, n1=2)
    assert list(out["started"][0]) == [True, False, False, False]
    assert probe.task_mig_target[0, low] == 2 and probe.task_mig_target[0, high] == -1


def test_a_failover_restores_a_replica_kept_on_rsu_0_over_its_own_hops():
    """Orphan of RSU 1 (declared down) with its replica on RSU 0, failed over to RSU 2:
    restore delay 8 * 10 MB / 100 Mbps + hops(0, 2) = 1 x 5 ms = 0.805 s."""
    sim = quiet_sim()
    w, lay = sim.world, sim.layout
    park(sim, 0, 2)
    t = place(sim, veh=0, host=1, service=SERVICE_RSUS, state=ORPHANED, backup=0, replica=4e10)
    w.node_up[0, 1] = False
    w.repair_at_s[0, 1] = 1e12
    w.view_up[0, 1] = False
    assert lay.hops[0, 2] == 1 and lay.hops[1, 2] == 2
    probe, out = _decide(sim, n1=2)
    assert probe.task_host[0, t] == 2 and probe.task_done[0, t] == 4e10
    assert out["restart_downtime_s"][0] == pytest.approx(0.8 + 0.005, abs=1e-12)
    assert probe.task_ready_s[0, t] == pytest.approx(w.time_s[0] + 0.805, abs=1e-12)


# --------------------------------------------------------------------------- batch admission


def _env_view(sim, e):
    """A one-environment stand-in for ``sim`` whose world arrays are views of row ``e``
    (so the _handbuilt helpers write into that environment of the batch)."""
    w = sim.world
    view = World(**{f.name: getattr(w, f.name)[e : e + 1] for f in fields(w)})
    return SimpleNamespace(world=view, layout=sim.layout, cfg=sim.cfg)


def test_environments_of_a_batch_never_share_a_targets_free_slots():
    """Five environments (more than the 4 nodes): in environments 0 and 4 RSU 0 moves one
    task to a node with exactly one free slot (RSU 2, resp. RSU 1; 2 slots, one taken).
    Each is admitted: admission ranks the rows bound for a node within one environment."""
    cfg = load_scenario("small", {**QUIET, "rsu.max_jobs": 2})
    sim = Simulator(cfg, batch_size=5, check_invariants=True)
    sim.reset(np.array([key_from_seed(s) for s in range(5)], dtype=np.uint64))
    sim.world.veh_speed[:] = 0.0
    sim.step(np.zeros((5, 4), dtype=np.int64))
    actions = np.zeros((5, 4), dtype=np.int64)
    for e, target in ((0, 2), (4, 1)):
        one = _env_view(sim, e)
        park(one, 0, 0)
        park(one, 1, target)
        place(one, veh=0, host=0, service=SERVICE_RSUS)
        place(one, veh=1, host=target, service=SERVICE_RSUS)  # one of its 2 slots taken
        actions[e, 0] = target + 1
    sim.step(actions)
    assert list(sim.metrics()["migrations_started"]) == [1, 0, 0, 0, 1]


# --------------------------------------------------------------------------- retry chain


def _pending_retry(sim, n, tried, rows):
    """The state just after n's controller migration to ``tried`` failed and its backoff
    ended now: attempt 1 of the chain, rows ``rows`` waiting for the retry."""
    w = sim.world
    w.retry_pending[0, n] = True
    w.retry_attempt[0, n] = 1
    w.retry_fails[0, n] = 1
    w.retry_tried[0, n, tried] = True
    w.cooldown_until_s[0, n] = w.time_s[0]
    for t in rows:
        w.task_retry_src[0, t] = n


def _retry_sim(**overrides):
    """RSU 0 hosts one task (100 MB of state: a 4 s migration) that waits for a retry;
    its first attempt went to UAV 3."""
    sim = quiet_sim({**ALL_SERVICES, **overrides})
    park(sim, 0, 0)
    row = place(sim, veh=0, host=0, service=0, state_mb=100.0)
    _pending_retry(sim, 0, 3, [row])
    return sim, row


def _fail_running_migration(sim, n):
    sim.world.mig_success_p[0, n] = 0.0
    while sim.world.mig_active[0, n]:
        sim.step(noop(sim))


def test_a_source_with_a_pending_retry_is_busy_even_after_its_backoff():
    sim, _ = _retry_sim()
    w = sim.world
    assert not w.mig_active[0, 0] and w.time_s[0] >= w.cooldown_until_s[0, 0]
    assert not sim.action_mask()[0, 0, 1:].any()
    free = w.copy()
    free.retry_pending[0, 0] = False
    # otherwise every other node would be a valid target (column m + 1; 0 is itself)
    assert list(migration.action_mask(free, sim.layout, sim.cfg)[0, 0, 1:]) == [0, 1, 1, 1]


def test_the_chain_tries_each_peer_once_nearest_first_then_is_exhausted():
    """Loads all 0: score 0.7 + 0.3 / (1 + d / 1000): RSU 1 (250 m) 0.94 > RSU 2 (500 m)
    0.9. Retry 2 goes to RSU 1, fails; retry 3 to RSU 2 (RSU 1 is tried now), fails;
    with max_attempts 3 the chain is exhausted and nothing more is retried."""
    sim, row = _retry_sim()
    w = sim.world
    sim.step(noop(sim))
    assert w.mig_active[0, 0] and w.mig_target[0, 0] == 1
    assert w.task_mig_target[0, row] == 1
    _fail_running_migration(sim, 0)
    end = float(w.mig_end_s[0, 0])
    assert w.retry_pending[0, 0]
    assert w.cooldown_until_s[0, 0] == pytest.approx(end + 20.0)  # second failure: 2 x 10 s
    while not w.mig_active[0, 0]:
        sim.step(noop(sim))
    assert w.mig_target[0, 0] == 2
    retries = sim.events.history(0, "migration_retry")
    assert [(ev["target"], ev["attempt"]) for ev in retries] == [(1, 2), (2, 3)]
    _fail_running_migration(sim, 0)
    assert not w.retry_pending[0, 0]
    for _ in range(60):
        sim.step(noop(sim))
    m = sim.metrics()
    assert m["migration_retries"][0] == 2 and m["retries_exhausted"][0] == 1
    assert not w.mig_active[0, 0]


def test_no_retry_starts_while_the_controller_is_out():
    """The controller is out from t = 1 and elected again at t = 4.5 (stamped at the end
    of the tick [4, 5)): the due retry waits, and starts in the tick at t = 5."""
    sim, _ = _retry_sim()
    w = sim.world
    w.ctrl_up[0] = False
    w.ctrl_down_since_s[0] = w.time_s[0]
    w.ctrl_elected_s[0] = 4.5
    while w.time_s[0] < 5.0:
        sim.step(noop(sim))
        assert not w.mig_active[0, 0] and w.retry_pending[0, 0]
    assert w.ctrl_up[0]
    sim.step(noop(sim))
    assert w.mig_active[0, 0] and w.mig_target[0, 0] == 1
    assert sim.metrics()["migration_retries"][0] == 1


def test_retry_target_weighs_load_as_a_share_of_each_nodes_slots():
    """First attempt to RSU 2. RSU 1 holds 1 of 8 slots, UAV 3 1 of 4:
    RSU 1: 0.7 * (1 - 1/8) + 0.3 / 1.25 = 0.8525; UAV 3: 0.7 * (1 - 1/4) + 0.3 / 1.2936
    = 0.757. The retry goes to RSU 1."""
    sim, _ = _retry_sim()
    w, lay = sim.world, sim.layout
    w.retry_tried[0, 0] = False
    w.retry_tried[0, 0, 2] = True
    park(sim, 1, 1)
    park(sim, 2, 3)
    place(sim, veh=1, host=1, service=0)
    place(sim, veh=2, host=3, service=0)
    assert lay.distance_m[0, 1] == pytest.approx(250.0)
    assert lay.distance_m[0, 3] == pytest.approx(293.6, abs=0.05)
    assert list(lay.max_jobs) == [8, 8, 8, 4]
    sim.step(noop(sim))
    assert w.mig_active[0, 0] and w.mig_target[0, 0] == 1


def test_retry_target_counts_reserved_slots_as_load():
    """First attempt to UAV 3. In the same tick the controller moves UAV 3's task to RSU 1
    (step 1: decisions, then retries), so RSU 1 has 0 used + 1 reserved of 8 slots:
    RSU 1: 0.7 * (1 - 1/8) + 0.3 / 1.25 = 0.8525 < RSU 2 (empty): 0.7 + 0.3 / 1.5 = 0.9.
    The retry goes to RSU 2, the farther but emptier node."""
    sim, _ = _retry_sim()
    w = sim.world
    park(sim, 1, 3)
    uav_task = place(sim, veh=1, host=3, service=0, state_mb=100.0)
    sim.step(act(sim, n3=1))
    assert w.mig_active[0, 3] and w.task_mig_target[0, uav_task] == 1
    assert w.slots_used[0, 1] == 0 and w.slots_reserved[0, 1] == 1
    assert w.mig_active[0, 0] and w.mig_target[0, 0] == 2


def test_a_retry_waits_for_the_end_of_its_backoff():
    """The backoff of RSU 0 ends at t = 4 (3 s after now, t = 1): the due retry is not
    started in the ticks at t = 1, 2, 3 and starts in the tick at t = 4."""
    sim, _ = _retry_sim()
    w = sim.world
    assert w.time_s[0] == 1.0
    w.cooldown_until_s[0, 0] = 4.0
    for t in (1.0, 2.0, 3.0):
        assert w.time_s[0] == t
        sim.step(noop(sim))
        assert not w.mig_active[0, 0] and w.retry_pending[0, 0]
    sim.step(noop(sim))
    assert w.mig_active[0, 0] and w.mig_target[0, 0] == 1


def test_retry_target_prefers_an_empty_small_node_to_a_busier_large_one():
    """First attempt to RSU 2. RSU 1 holds 1 of its 8 slots, UAV 3 none of its 4:
    RSU 1: 0.7 * (1 - 1/8) + 0.3 / 1.25 = 0.8525 < UAV 3: 0.7 * 1 + 0.3 / 1.2936 = 0.9319.
    The load is a share of each node's slots, not a count of its free slots: the retry
    goes to UAV 3."""
    sim, _ = _retry_sim()
    w, lay = sim.world, sim.layout
    w.retry_tried[0, 0] = False
    w.retry_tried[0, 0, 2] = True
    park(sim, 1, 1)
    place(sim, veh=1, host=1, service=0)
    assert list(lay.max_jobs) == [8, 8, 8, 4]
    assert w.slots_used[0, 3] == 0
    sim.step(noop(sim))
    assert w.mig_active[0, 0] and w.mig_target[0, 0] == 3


def test_a_retry_can_go_to_node_0():
    """RSU 1's first attempt went to UAV 3. Loads all 0, from RSU 1: RSU 0 (250 m)
    0.7 + 0.3 / 1.25 = 0.94 > RSU 2 (559 m) 0.7 + 0.3 / 1.559 = 0.892: the retry goes to
    node 0 (index 0 is a valid target, not "none")."""
    sim = quiet_sim(ALL_SERVICES)
    park(sim, 0, 1)
    row = place(sim, veh=0, host=1, service=0, state_mb=100.0)
    _pending_retry(sim, 1, 3, [row])
    assert sim.layout.distance_m[1, 2] == pytest.approx(559.0, abs=0.5)
    sim.step(noop(sim))
    w = sim.world
    assert w.mig_active[0, 1] and w.mig_target[0, 1] == 0
    assert w.task_mig_target[0, row] == 0


def test_attached_only_keeps_attached_rows_or_every_row_of_an_offload():
    """Move 0 has an attached row (only it is kept); move 1 has none (an offload: all its
    rows are kept)."""
    group = np.array([0, 0, 1, 1])
    near = np.array([True, False, False, False])
    keep = migration.attached_only(group, near, 2)
    assert keep.dtype == bool
    assert keep.tolist() == [True, False, True, True]
