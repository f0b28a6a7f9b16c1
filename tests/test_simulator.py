"""The simulator: invariants over long random runs, reproducibility, batching, and the
migration / failover mechanics end to end."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from roadedge.envs.sim import ledger, migration
from roadedge.envs.sim.config import load_scenario
from roadedge.envs.sim.ledger import LedgerError
from roadedge.envs.sim.rng import key_from_seed
from roadedge.envs.sim.simulator import REWARD_TERMS, Simulator
from roadedge.envs.sim.triggers import Trigger
from roadedge.envs.sim.world import FREE, KIND_SESSION, ORPHANED, QUEUED, RUNNING

# Frequent faults on the small map: failures, detections and failovers within a few ticks.
FAULTY_SMALL = {
    "faults.rsu_mttf_s": 400.0,
    "faults.uav_mttf_s": 300.0,
    "faults.mttr_s": 30.0,
    "uav.battery_wh": 5.0,
    "uav.recharge_s": 40.0,
}

# Long tasks (no completion mid-migration) and a slow backhaul (migrations span ticks).
SLOW_MIGRATION = {
    "migration.backhaul_mbps": 20.0,
    "tasks.rate_per_vehicle_hz": 0.04,
    "tasks.work_gcycles_min": 150.0,
    "tasks.work_gcycles_max": 200.0,
    "tasks.deadline_s_min": 300.0,
    "tasks.deadline_s_max": 400.0,
    "tasks.state_mb_min": 20.0,
    "tasks.state_mb_max": 30.0,
}
SURE_SUCCESS = {
    "migration.success_base": 1.0,
    "migration.success_distance_cap": 0.0,
    "migration.success_load_weight": 0.0,
}
SURE_FAILURE = {"migration.success_base": 0.0, "migration.success_urgency_weight": 0.0}


def keys(*seeds):
    return np.array([key_from_seed(s) for s in seeds], dtype=np.uint64)


def make_sim(scenario="small", overrides=None, seeds=(0,), check=True):
    sim = Simulator(
        load_scenario(scenario, overrides), batch_size=len(seeds), check_invariants=check
    )
    sim.reset(keys(*seeds))
    return sim


def noop(sim):
    return np.zeros((sim.batch_size, sim.layout.n_nodes), dtype=np.int64)


def random_actions(mask, rng, p=0.3):
    """One env: each node decides with probability ``p``, uniformly among valid choices."""
    n_nodes = mask.shape[0]
    out = np.zeros(n_nodes, dtype=np.int64)
    for n in range(n_nodes):
        if rng.random() < p:
            out[n] = rng.choice(np.flatnonzero(mask[n]))
    return out


def batch_actions(sim, rngs, p=0.3):
    mask = sim.action_mask()
    return np.stack([random_actions(mask[b], rngs[b], p) for b in range(sim.batch_size)])


def accounting_holds(sim):
    """Conservation per kind: tasks generated = completed + missed + dropped + active;
    sessions started = ended + dropped + active."""
    m = sim.metrics()
    lhs = m["tasks_generated"]
    rhs = m["tasks_completed"] + m["tasks_missed"] + m["tasks_dropped"] + m["tasks_active"]
    s_rhs = m["sessions_ended"] + m["sessions_dropped"] + m["sessions_active"]
    return np.array_equal(lhs, rhs) and np.array_equal(m["sessions_started"], s_rhs), m


def run_until(sim, cond, max_ticks):
    """Step with no decisions until ``cond(sim)`` is truthy (checked before each step)."""
    for _ in range(max_ticks):
        found = cond(sim)
        if found:
            return found
        sim.step(noop(sim))
    return None


def diff_fields(a, b, row_a=None, row_b=None):
    out = []
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if row_a is not None:
            x, y = x[row_a], y[row_b]
        if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            out.append(f.name)
    return out


# --------------------------------------------------------------------------- long random runs


def test_failures_preset_long_random_run_keeps_invariants():
    """3 episodes x horizon of random valid actions on ``failures``, ledger checked every tick.
    Tasks at v0's rate (0.05/s, v1's background is 0.01) so that misses and drops occur."""
    cfg = load_scenario("failures", {"tasks.rate_per_vehicle_hz": 0.05})
    sim = Simulator(cfg, batch_size=1, check_invariants=True)
    rng = np.random.default_rng(1234)
    detection = cfg.faults.heartbeat_misses * cfg.faults.heartbeat_interval_s
    totals = dict.fromkeys(
        (
            "failures_detected",
            "failovers",
            "migrations_started",
            "migrations_completed",
            "migrations_failed",
            "migrations_cancelled",
            "tasks_completed",
            "tasks_missed",
            "tasks_dropped",
            "sessions_started",
            "sessions_ended",
            "sessions_dropped",
        ),
        0.0,
    )
    for episode in range(3):
        sim.reset(keys(100 + episode))
        for tick in range(cfg.horizon):
            result = sim.step(batch_actions(sim, [rng]))
            ok, m = accounting_holds(sim)
            assert ok, f"episode {episode} tick {tick}: tasks do not add up: {m}"
            assert np.isfinite(result.reward).all()
            assert result.invalid[0] == 0  # sampled from the mask: always valid
            w = sim.world
            # no task stays on a dead node past detection (plus the tick that detects it)
            e, t = np.nonzero(w.task_host >= 0)
            on_dead = ~w.node_up[e, w.task_host[e, t]]
            since = w.down_since_s[e[on_dead], w.task_host[e[on_dead], t[on_dead]]]
            assert np.all(w.time_s[0] - since <= detection + cfg.dt_s + 1e-9)
            assert np.all(w.task_state[w.task_host < 0] != RUNNING)
        for k in totals:
            totals[k] += float(sim.metrics()[k][0])
        status = sim.cluster_status()
        assert status["failure_count"] == sim.metrics()["failures_detected"][0]
        assert len(status["failure_history"]) == status["failure_count"]
    assert totals["failures_detected"] > 0, totals
    assert totals["failovers"] > 0, totals
    assert totals["migrations_started"] > 0 and totals["migrations_completed"] > 0, totals
    assert totals["migrations_failed"] > 0, totals
    assert totals["migrations_cancelled"] > 0, totals  # an endpoint died mid-migration
    assert totals["tasks_missed"] > 0 and totals["tasks_dropped"] > 0, totals
    assert totals["tasks_completed"] > 0, totals
    assert totals["sessions_ended"] > 0 and totals["sessions_dropped"] > 0, totals


@pytest.mark.long
def test_city_10000_ticks_of_random_decisions_keep_every_invariant():
    """One 10,000-tick ``city`` episode (horizon raised, no reset) of random valid
    decisions: the ledger invariants and task conservation hold on every tick."""
    cfg = load_scenario("city", {"horizon": 10_000})
    sim = Simulator(cfg, batch_size=1, record_events=False, check_invariants=True)
    rng = np.random.default_rng(77)
    sim.reset(keys(5))
    for tick in range(cfg.horizon):
        sim.step(batch_actions(sim, [rng]))
        ok, m = accounting_holds(sim)
        assert ok, f"tick {tick}: tasks do not add up: {m}"
    m = sim.metrics()
    # v1: tasks are background load (0.01/s per vehicle, v0 had 0.05), sessions the workload
    assert m["migrations_completed"][0] > 100 and m["tasks_completed"][0] > 5_000, m
    assert m["sessions_started"][0] > 1_000 and m["sessions_ended"][0] > 1_000, m


def _task_stream(sim, decide, ticks):
    """Every task created in ``ticks`` ticks as (time, vehicle serial, service, work, deadline,
    priority, input, state), sorted: the traffic, independent of where tasks landed."""
    w = sim.world
    seen = []
    for _ in range(ticks):
        sim.step(decide(sim))
        new = (w.task_state[0] != FREE) & (w.task_created_s[0] == w.time_s[0] - sim.cfg.dt_s)
        for t in np.flatnonzero(new):
            seen.append(
                (
                    float(w.task_created_s[0, t]),
                    int(w.veh_serial[0, w.task_vehicle[0, t]]),  # which vehicle, not its row
                    int(w.task_service[0, t]),
                    float(w.task_work[0, t]),
                    float(w.task_deadline_s[0, t]),
                    int(w.task_priority[0, t]),
                    float(w.task_input_mb[0, t]),
                    float(w.task_state_mb[0, t]),
                )
            )
    return sorted(seen), sim.metrics()


def test_every_policy_faces_the_same_task_stream_on_a_seed():
    """Common random numbers: migrating (which changes which task rows are free)
    leaves the generated tasks and their attributes exactly as under noop."""
    rng = np.random.default_rng(9)
    roomy = {"tasks.max_tasks": 512, "vehicles.max_vehicles": 200}  # rows never run out
    calm, m_calm = _task_stream(make_sim("small", roomy, seeds=(21,)), noop, 150)
    busy, m_busy = _task_stream(
        make_sim("small", roomy, seeds=(21,)), lambda sim: batch_actions(sim, [rng], p=0.5), 150
    )
    assert m_busy["migrations_completed"][0] > 0  # the decisions did change the run
    assert m_busy["tasks_completed"][0] != m_calm["tasks_completed"][0] or not np.array_equal(
        m_busy["downtime_s"], m_calm["downtime_s"]
    )
    assert len(calm) > 50
    assert calm == busy


def test_tasks_beyond_row_capacity_are_dropped_and_counted():
    """Rows run out: tasks and sessions that find none are dropped, each in its own counter,
    and ``StepResult.dropped`` is their sum."""
    sim = make_sim("small", {"tasks.max_tasks": 6, "tasks.rate_per_vehicle_hz": 0.3}, seeds=(4,))
    dropped = 0
    for tick in range(40):
        r = sim.step(noop(sim))
        dropped += r.dropped[0]
        ok, m = accounting_holds(sim)
        assert ok, f"tick {tick}: {m}"
        assert m["tasks_active"][0] + m["sessions_active"][0] <= 6
    m = sim.metrics()
    assert m["tasks_dropped"][0] > 0 and m["sessions_dropped"][0] > 0, m
    assert m["tasks_dropped"][0] + m["sessions_dropped"][0] == dropped
    # task-only: every drop is a task's
    sim = make_sim(
        "small",
        {"tasks.max_tasks": 6, "tasks.rate_per_vehicle_hz": 0.3, "sessions.vehicle_share": 0.0},
        seeds=(4,),
    )
    dropped = sum(sim.step(noop(sim)).dropped[0] for _ in range(40))
    assert dropped > 0
    assert sim.metrics()["tasks_dropped"][0] == dropped
    assert sim.metrics()["sessions_started"][0] == 0


def test_failures_are_detected_after_missed_heartbeats():
    cfg = load_scenario("failures")
    sim = make_sim("failures", seeds=(7,), check=False)
    for _ in range(cfg.horizon):
        sim.step(noop(sim))
    failed = sim.events.history(0, "node_failed")
    detected = sim.events.history(0, "failure_detected")
    assert len(detected) > 0
    assert len(failed) >= len(detected)
    delay = cfg.faults.heartbeat_misses * cfg.faults.heartbeat_interval_s  # 3 x 1 s
    for event in detected:
        # the controller learns of it exactly 3 missed heartbeats after the failure
        assert event["time_s"] - event["down_since_s"] == pytest.approx(delay)
    assert sim.metrics()["failures_detected"][0] == len(detected)


def test_check_invariants_runs_every_step():
    sim = make_sim("small", seeds=(1,))
    for _ in range(5):
        sim.step(noop(sim))
    sim.world.slots_used[0, 0] += 1  # corrupt the ledger behind its back
    with pytest.raises(LedgerError, match="slots_used"):
        sim.step(noop(sim))


def test_reward_is_the_weighted_sum_of_terms():
    sim = make_sim("small", FAULTY_SMALL, seeds=(2,))
    rng = np.random.default_rng(0)
    seen = dict.fromkeys(REWARD_TERMS, 0.0)
    for _ in range(120):
        r = sim.step(batch_actions(sim, [rng], p=0.5))
        t = {k: v[0] for k, v in r.terms.items()}
        # completion is a gain, every other term a weighted penalty
        wt = sim.cfg.reward
        expected = (
            wt.completion * t["completion"]
            - wt.latency * t["latency"]
            - wt.deadline_miss * t["deadline_miss"]
            - wt.drop * t["drop"]
            - wt.migration_cost * t["migration_cost"]
            - wt.downtime * t["downtime"]
            - wt.uav_energy * t["uav_energy"]
        )
        assert r.reward[0] == pytest.approx(expected, abs=1e-9)
        for k in seen:
            assert t[k] >= 0.0
            seen[k] += t[k]
    for k in ("completion", "latency", "migration_cost", "downtime", "uav_energy"):
        assert seen[k] > 0, k


# --------------------------------------------------------------------------- reproducibility


def _trajectory(sim, seed_actions, ticks):
    rng = np.random.default_rng(seed_actions)
    rewards = []
    for _ in range(ticks):
        rewards.append(sim.step(batch_actions(sim, [rng])).reward.copy())
    return np.concatenate(rewards)


def test_same_key_same_trajectory():
    a = make_sim("small", FAULTY_SMALL, seeds=(5,))
    b = make_sim("small", FAULTY_SMALL, seeds=(5,))
    ra, rb = _trajectory(a, 9, 150), _trajectory(b, 9, 150)
    np.testing.assert_array_equal(ra, rb)
    assert diff_fields(a.world, b.world) == []
    for k, v in a.metrics().items():
        np.testing.assert_array_equal(v, b.metrics()[k], err_msg=k)
    assert a.events.history(0) == b.events.history(0)


def test_different_key_different_trajectory():
    a = make_sim("small", FAULTY_SMALL, seeds=(5,))
    b = make_sim("small", FAULTY_SMALL, seeds=(6,))
    # the very first state already differs (vehicle placement)
    assert "veh_x" in diff_fields(a.world, b.world)
    ra, rb = _trajectory(a, 9, 60), _trajectory(b, 9, 60)
    assert not np.array_equal(ra, rb)
    assert len(diff_fields(a.world, b.world)) > 5


def test_reset_with_the_same_key_replays_exactly():
    sim = make_sim("small", FAULTY_SMALL, seeds=(5,))
    first = _trajectory(sim, 9, 100)
    fresh = make_sim("small", FAULTY_SMALL, seeds=(5,))
    sim.reset(keys(5))  # nothing of the previous episode may leak into this one
    assert diff_fields(sim.world, fresh.world) == []
    assert sim.metrics()["tasks_generated"][0] == 0
    assert sim.events.history(0) == []
    np.testing.assert_array_equal(_trajectory(sim, 9, 100), first)


def test_reset_needs_one_key_per_row():
    sim = make_sim("small", seeds=(0, 1))
    with pytest.raises(ValueError, match="one key per reset row"):
        sim.reset(keys(1, 2, 3))
    with pytest.raises(ValueError, match="one key per reset row"):
        sim.reset(keys(1, 2), rows=np.array([0]))


# --------------------------------------------------------------------------- batching


def test_batch_equals_single_environments_bit_for_bit():
    """A batch of 3 with keys k0, k1, k2 == three single simulators with those keys, with
    decisions on every tick, faults, and a mid-episode reset of row 1 (new key k3)."""
    scenario, over = "small", FAULTY_SMALL
    k = keys(11, 22, 33, 44)
    batch = make_sim(scenario, over, seeds=(11, 22, 33))
    singles = [make_sim(scenario, over, seeds=(s,)) for s in (11, 22, 33)]
    rng_batch = [np.random.default_rng(50 + b) for b in range(3)]
    rng_single = [np.random.default_rng(50 + b) for b in range(3)]
    reset_at = 90
    for tick in range(200):
        if tick == reset_at:
            batch.reset(k[3:4], rows=np.array([1]))
            singles[1].reset(k[3:4])
            assert batch.metrics()["tasks_generated"][1] == 0
            assert batch.metrics()["tasks_generated"][0] > 0  # other rows untouched
        acts = batch_actions(batch, rng_batch)
        rb = batch.step(acts)
        mb = batch.metrics()
        for b, single in enumerate(singles):
            a = batch_actions(single, [rng_single[b]])
            np.testing.assert_array_equal(a[0], acts[b], err_msg=f"masks differ, tick {tick}")
            rs = single.step(a)
            assert rs.reward[0] == rb.reward[b], f"tick {tick} env {b}"
            for name in REWARD_TERMS:
                assert rs.terms[name][0] == rb.terms[name][b], (tick, b, name)
            for name in ("completed", "missed", "dropped", "invalid"):
                assert getattr(rs, name)[0] == getattr(rb, name)[b], (tick, b, name)
            ms = single.metrics()
            for name, v in ms.items():
                assert v[0] == mb[name][b], (tick, b, name)
        if tick % 20 == 0 or tick == reset_at:
            for b, single in enumerate(singles):
                assert diff_fields(single.world, batch.world, 0, b) == [], (tick, b)
    for b, single in enumerate(singles):
        assert diff_fields(single.world, batch.world, 0, b) == []
        assert single.events.history(0) == batch.events.history(b)
    # the run exercised what it claims to: failures, failovers and migrations
    m = batch.metrics()
    assert m["failures_detected"].sum() > 0
    assert m["failovers"].sum() > 0
    assert m["migrations_started"].sum() > 0


def test_batch_rows_with_the_same_key_are_identical():
    sim = make_sim("small", FAULTY_SMALL, seeds=(3, 3, 4))
    for _ in range(80):
        r = sim.step(noop(sim))
        assert r.reward[0] == r.reward[1]
    assert diff_fields(sim.world, sim.world, 0, 1) == []
    assert diff_fields(sim.world, sim.world, 0, 2) != []


# --------------------------------------------------------------------------- actions


def test_invalid_actions_are_counted_no_ops():
    a = make_sim("small", FAULTY_SMALL, seeds=(8,))
    b = make_sim("small", FAULTY_SMALL, seeds=(8,))
    n = a.layout.n_nodes
    to_self = np.arange(1, n + 1)[None, :]  # node i -> node i: never valid
    for _ in range(40):
        ra = a.step(noop(a))
        rb = b.step(to_self)
        assert rb.invalid[0] == n
        assert ra.reward[0] == rb.reward[0]
    assert diff_fields(a.world, b.world) == []
    assert b.metrics()["invalid_actions"][0] == 40 * n
    assert a.metrics()["invalid_actions"][0] == 0


@pytest.mark.parametrize("bad", [-1, 5])
def test_out_of_range_actions_raise(bad):
    sim = make_sim("small")  # 4 nodes: actions in [0, 4]
    actions = noop(sim)
    actions[0, 1] = bad
    before = sim.world.copy()
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        sim.step(actions)
    assert diff_fields(before, sim.world) == []


def test_action_mask_shape_and_noop_column():
    sim = make_sim("small", seeds=(0, 1))
    for _ in range(20):
        sim.step(noop(sim))
    mask = sim.action_mask()
    n = sim.layout.n_nodes
    assert mask.shape == (2, n, n + 1)
    assert mask[:, :, 0].all()
    assert not mask[:, np.arange(n), np.arange(n) + 1].any()  # never to itself
    assert mask[:, :, 1:].any()


# --------------------------------------------------------------------------- migrations


def _find_migration(sim, min_tasks=4):
    """A (source, target) pair where the target is valid, has 3 free slots, and at least
    ``min_tasks`` of the source's movable tasks can run on it (so one is left behind)."""
    mask = sim.action_mask()[0]
    w, lay = sim.world, sim.layout
    movable = (w.task_state[0] == RUNNING) & (w.task_mig_target[0] < 0)
    free = ledger.free_slots(w, lay)[0]
    for n in range(lay.n_nodes):
        for m in np.flatnonzero(mask[n, 1:] & (free >= 3)):
            capable = lay.capability[m, w.task_service[0]]
            if (movable & capable & (w.task_host[0] == n)).sum() >= min_tasks:
                return int(n), int(m)
    return None


def _start_migration(overrides, seed=1):
    sim = make_sim("small", {**SLOW_MIGRATION, **overrides}, seeds=(seed,))
    found = run_until(sim, _find_migration, 150)
    assert found, "no migration opportunity found"
    n, m = found
    w = sim.world
    eligible = np.flatnonzero(
        (w.task_host[0] == n)
        & (w.task_state[0] == RUNNING)
        & sim.layout.capability[m, w.task_service[0]]
    )
    before = w.copy()
    actions = noop(sim)
    actions[0, n] = m + 1
    r = sim.step(actions)
    assert r.invalid[0] == 0
    moving = np.flatnonzero(w.task_mig_target[0] == m)
    # which rows: if some rows' vehicles are attached to the target (session affinity), only
    # those, sessions first; otherwise (an offload) any, by seed 000 task priority
    # 0.5*urgency + 0.5/max(1, remaining); with one source (one urgency) and deadlines > 1 s
    # away, that is the nearest deadline first (a session, remaining = inf, comes last)
    veh = before.task_vehicle[0]
    near = (before.veh_access[0, veh] == m) & before.veh_active[0, veh]
    pool = eligible[near[eligible]] if near[eligible].any() else eligible
    expected_k = min(3, pool.size)
    assert moving.size == expected_k
    assert set(moving) <= set(pool)
    session = before.task_kind[0] == KIND_SESSION
    rank = [(bool(session[t] and near[t]), -before.task_deadline_s[0, t]) for t in range(veh.size)]
    rest = np.setdiff1d(pool, moving)
    if rest.size:
        assert min(rank[t] for t in moving) >= max(rank[t] for t in rest)
    return sim, n, m, moving, before, r


def test_migration_plan_keep_before_break_and_commit():
    sim, n, m, moving, before, r = _start_migration(SURE_SUCCESS)
    w, cfg = sim.world, sim.cfg
    k = moving.size
    assert w.mig_active[0, n] and w.mig_target[0, n] == m
    assert sim.metrics()["migrations_started"][0] == 1
    # seed 000 delay: 0.5 * 8 * state / 20 Mbps + hops * hop latency; the switch is 5 % of it
    state = w.task_state_mb[0, moving].sum()
    delay = 0.5 * 8.0 * state / 20.0 + sim.layout.hops[n, m] * cfg.radio.hop_latency_ms / 1e3
    assert w.mig_end_s[0, n] - w.mig_start_s[0, n] == pytest.approx(delay)
    assert w.mig_downtime_s[0, n] == pytest.approx(0.05 * delay)
    assert w.mig_success_p[0, n] == 1.0
    assert r.terms["migration_cost"][0] == pytest.approx(w.mig_cost[0, n])
    assert delay > 3 * cfg.dt_s  # spans several ticks: the in-flight phase is observable
    stats = sim.migration_statistics()
    assert stats["planned"] == 1 and stats["active_migrations"] == 1
    assert stats["average_cost_ewma"] == pytest.approx(w.mig_cost[0, n])  # first migration
    ticks = 0
    while True:
        # keep-before-break: the source still hosts and serves them; the target holds slots
        assert np.all(w.task_host[0, moving] == n)
        assert w.slots_reserved[0, m] == k
        done_before = w.task_done[0, moving].copy()
        pre = w.copy()
        sim.step(noop(sim))
        ticks += 1
        if not w.mig_active[0, n]:
            break
        assert np.all(w.task_done[0, moving] > done_before)  # still progressing on n
        assert ticks < 60
    # committed: the tasks run on the target, the reservation became used slots
    assert np.all(w.task_host[0, moving] == m)
    assert np.all(w.task_origin[0, moving] == m)
    assert np.all(w.task_mig_target[0, moving] == -1)
    assert np.all(w.veh_serving[0, w.task_vehicle[0, moving]] == m)
    assert w.slots_reserved[0, m] == 0

    def moved_in_out(x):
        was = set(np.flatnonzero(pre.task_host[0] == x))
        now = set(np.flatnonzero(w.task_host[0] == x))
        new = now - was - set(moving)
        assert all(pre.task_state[0, t] == QUEUED for t in new)  # fresh dispatches only
        lost = (was - set(moving)) - now  # ended this tick
        return len(new), len(lost)

    new_n, lost_n = moved_in_out(n)
    new_m, lost_m = moved_in_out(m)
    assert w.slots_used[0, n] == pre.slots_used[0, n] - k + new_n - lost_n
    assert w.slots_used[0, m] == pre.slots_used[0, m] + k + new_m - lost_m
    m_ = sim.metrics()
    assert m_["migrations_completed"][0] == 1 and m_["migrations_failed"][0] == 0
    assert m_["downtime_s"][0] > 0
    assert w.cooldown_until_s[0, n] == pytest.approx(w.mig_end_s[0, n] + cfg.migration.cooldown_s)
    ended = sim.events.history(0, "migration_ended")
    assert len(ended) == 1 and ended[0]["success"] is True
    assert ended[0]["source"] == n and ended[0]["target"] == m
    assert sim.migration_statistics()["overall_success_rate"] == 1.0


def test_failed_migration_rolls_back():
    sim, n, m, moving, before, r = _start_migration(SURE_FAILURE)
    w = sim.world
    assert w.mig_success_p[0, n] == 0.0
    cost = w.mig_cost[0, n]
    assert cost > 0
    reserved_during = w.slots_reserved[0, m]
    assert reserved_during == moving.size
    while w.mig_active[0, n]:
        sim.step(noop(sim))
        assert sim.world.time_s[0] < 200
    # rollback: tasks stay on the source, the reservation is released, the cost was paid
    live = w.task_state[0, moving] != FREE
    assert live.all()
    assert np.all(w.task_host[0, moving] == n)
    assert np.all(w.task_mig_target[0, moving] == -1)
    assert w.slots_reserved[0, m] == 0
    m_ = sim.metrics()
    assert m_["migrations_failed"][0] == 1
    assert m_["migrations_completed"][0] == 0
    assert sim.counters.migration_cost_total[0] == pytest.approx(cost)
    assert w.cooldown_until_s[0, n] == pytest.approx(w.mig_end_s[0, n] + 10.0)
    ended = sim.events.history(0, "migration_ended")
    assert len(ended) == 1 and ended[0]["success"] is False


def test_one_active_migration_per_source():
    sim, n, m, moving, before, r = _start_migration(SURE_SUCCESS)
    w = sim.world
    blocked_ticks = 0
    while w.mig_active[0, n]:
        mask = sim.action_mask()[0]
        assert not mask[n, 1:].any(), "a second migration from a busy source was allowed"
        # without the active migration the source would have something else to move
        probe = w.copy()
        probe.mig_active[0, n] = False
        alt = migration.action_mask(probe, sim.layout, sim.cfg)[0, n, 1:]
        if alt.any():
            blocked_ticks += 1
            actions = noop(sim)
            actions[0, n] = int(np.flatnonzero(alt)[0]) + 1
            started = sim.metrics()["migrations_started"][0]
            reserved = w.slots_reserved[0].copy()
            res = sim.step(actions)
            assert res.invalid[0] == 1
            assert sim.metrics()["migrations_started"][0] == started
            if w.mig_active[0, n]:
                assert np.array_equal(w.slots_reserved[0], reserved)
        else:
            sim.step(noop(sim))
    assert blocked_ticks > 0, "the test never exercised the one-migration rule"


def test_cooldown_blocks_the_source():
    sim, n, m, moving, before, r = _start_migration(SURE_SUCCESS)
    w, cfg = sim.world, sim.cfg
    while w.mig_active[0, n]:
        sim.step(noop(sim))
    until = w.cooldown_until_s[0, n]
    assert until == pytest.approx(w.mig_end_s[0, n] + cfg.migration.cooldown_s)
    assert w.time_s[0] < until
    blocked_ticks = 0
    while w.time_s[0] < until:
        mask = sim.action_mask()[0]
        assert not mask[n, 1:].any(), f"source {n} not cooled down at t={w.time_s[0]}"
        probe = w.copy()
        probe.cooldown_until_s[0, n] = -np.inf
        alt = migration.action_mask(probe, sim.layout, sim.cfg)[0, n, 1:]
        actions = noop(sim)
        if alt.any():
            blocked_ticks += 1
            actions[0, n] = int(np.flatnonzero(alt)[0]) + 1
        started = sim.metrics()["migrations_started"][0]
        res = sim.step(actions)
        assert res.invalid[0] == int(alt.any())
        assert sim.metrics()["migrations_started"][0] == started
    assert blocked_ticks > 0, "the test never exercised the cooldown"
    # once the cooldown is over the mask is what it would be without one
    probe = w.copy()
    probe.cooldown_until_s[0, n] = -np.inf
    np.testing.assert_array_equal(
        sim.action_mask()[0, n], migration.action_mask(probe, sim.layout, sim.cfg)[0, n]
    )


def test_migration_trigger_is_recorded():
    sim, n, m, moving, before, r = _start_migration(SURE_SUCCESS)
    code = sim.world.mig_trigger[0, n]
    assert code not in (Trigger.NONE, Trigger.FAILOVER)
    planned = sim.events.history(0, "migration_planned")
    assert len(planned) == 1 and planned[0]["trigger"] == code
    dist = sim.migration_statistics()["trigger_distribution"]
    assert sum(dist.values()) == 1
    assert dist[Trigger(code).name.lower()] == 1


# --------------------------------------------------------------------------- failover


FAST_FAULTS = {
    "faults.rsu_mttf_s": 60.0,
    "faults.uav_mttf_s": 60.0,
    "faults.mttr_s": 500.0,
    "faults.orphan_timeout_s": 100.0,
}


def _failover_opportunity(need_dead_target):
    def cond(sim):
        w = sim.world
        mask = sim.action_mask()[0]
        for n in np.flatnonzero(~w.view_up[0]):
            orphans = (w.task_state[0] == ORPHANED) & (w.task_origin[0] == n)
            if not orphans.any():
                continue
            ok = mask[n, 1:] & (w.node_up[0] != need_dead_target)
            if ok.any():
                return int(n), int(np.flatnonzero(ok)[0])
        return None

    return cond


def _orphans_for(sim, n, m):
    """Orphans of node ``n`` that node ``m`` can run, and how many one failover moves
    (at most 3 per decision, and no more than ``m``'s free slots)."""
    w = sim.world
    orphans = np.flatnonzero(
        (w.task_state[0] == ORPHANED)
        & (w.task_origin[0] == n)
        & sim.layout.capability[m, w.task_service[0]]
    )
    free = ledger.free_slots(w, sim.layout)[0, m]
    return orphans, min(3, orphans.size, free)


def test_failover_moves_orphans_to_a_live_node():
    sim = make_sim("small", FAST_FAULTS, seeds=(0,))
    found = run_until(sim, _failover_opportunity(need_dead_target=False), 200)
    assert found, "no failover opportunity"
    n, m = found
    w = sim.world
    assert not w.view_up[0, n] and w.view_up[0, m] and w.node_up[0, m]
    orphans, expected = _orphans_for(sim, n, m)
    prio_before = w.task_priority[0, orphans].copy()
    actions = noop(sim)
    actions[0, n] = m + 1
    r = sim.step(actions)
    assert r.invalid[0] == 0
    assert sim.metrics()["failovers"][0] == expected
    placed = orphans[w.task_host[0, orphans] == m]
    assert placed.size == expected
    assert np.all(w.task_state[0, placed] == RUNNING)
    assert np.all(w.task_attempts[0, placed] == 0)  # only failed attempts count
    assert np.all(np.isnan(w.task_interrupted_s[0, placed]))
    assert sim.metrics()["mean_recovery_s"][0] > 0
    # seed 001: the highest priority levels are reassigned first
    left = orphans[w.task_host[0, orphans] != m]
    if left.size:
        placed_levels = prio_before[np.isin(orphans, placed)]
        left_levels = prio_before[np.isin(orphans, left)]
        assert placed_levels.min() >= left_levels.max()
    ledger.check(w, sim.layout)


def test_failover_onto_a_dead_node_counts_an_attempt_then_drops():
    # one attempt allowed: a failover onto a node that died unbeknownst to the controller
    # exhausts it, and the task is dropped
    over = {**FAST_FAULTS, "faults.mttr_s": 30.0, "faults.max_reassignment_attempts": 1}
    for seed in range(3, 13):
        sim = make_sim("small", over, seeds=(seed,))
        found = run_until(sim, _failover_opportunity(need_dead_target=True), 200)
        if found:
            break
    assert found, "no stale-view failover opportunity in 10 seeds"
    n, m = found
    w = sim.world
    assert w.view_up[0, m] and not w.node_up[0, m]
    orphans, expected = _orphans_for(sim, n, m)

    def lost(s):  # orphans are tasks and sessions: each kind's drops in its counter
        return s.metrics()["tasks_dropped"][0] + s.metrics()["sessions_dropped"][0]

    dropped_before = lost(sim)
    actions = noop(sim)
    actions[0, n] = m + 1
    r = sim.step(actions)
    assert r.invalid[0] == 0
    assert sim.counters.failover_attempts_failed[0] == expected
    assert sim.metrics()["failovers"][0] == 0
    assert r.dropped[0] >= expected
    assert lost(sim) - dropped_before >= expected
    assert (w.task_state[0, orphans] == FREE).sum() >= expected
    ok, m_ = accounting_holds(sim)
    assert ok, m_


def test_orphans_not_failed_over_are_dropped_after_the_timeout():
    over = {**FAST_FAULTS, "faults.orphan_timeout_s": 5.0}
    sim = make_sim("small", over, seeds=(0,))

    def orphaned(s):
        return (s.world.task_state[0] == ORPHANED).any()

    assert run_until(sim, orphaned, 200)
    w = sim.world
    rows = np.flatnonzero(w.task_state[0] == ORPHANED)
    since = w.task_orphaned_s[0, rows].copy()

    def ended_count():  # orphans of both kinds; a task may also miss its deadline first
        m = sim.metrics()
        return m["tasks_dropped"][0] + m["tasks_missed"][0] + m["sessions_dropped"][0]

    ended_before = ended_count()
    for _ in range(4):  # orphaned for 4 s < 5 s: still waiting
        sim.step(noop(sim))
        assert np.all(w.task_state[0, rows] == ORPHANED)
    sim.step(noop(sim))  # 5 s: dropped
    # every one of them has ended (its row is free, or reused by a newer task)
    gone = (w.task_state[0, rows] == FREE) | (w.task_created_s[0, rows] > since)
    assert gone.all()
    assert ended_count() - ended_before >= rows.size
    assert sim.metrics()["tasks_dropped"][0] + sim.metrics()["sessions_dropped"][0] > 0


# --------------------------------------------------------------------------- dispatch


def _dispatch_world(cfg, layout, veh_xy, used):
    """One env, one queued task of vehicle 0 at ``veh_xy``, with ``used`` slots taken."""
    from roadedge.envs.sim.world import allocate

    w = allocate(1, layout.n_nodes, 2, 4)
    w.veh_active[0, 0] = True
    w.veh_x[0, 0], w.veh_y[0, 0] = veh_xy
    w.veh_serving[0, 0] = 1
    w.task_state[0, 0] = QUEUED
    w.task_vehicle[0, 0] = 0
    w.task_service[0, 0] = 1  # runs on nodes 0 and 1 only
    w.veh_tasks[0, 0] = 1
    w.slots_used[0] = used
    return w


def test_dispatch_score_is_weighted_load_distance_and_affinity():
    """Score = w_l * load + w_d * km - w_a * [serving], by hand on the small layout."""
    from roadedge.envs.sim.layout import build_layout
    from roadedge.envs.sim.scheduler import dispatch_score

    cfg = load_scenario("small")
    lay = build_layout(cfg)  # RSUs at (125,0), (375,0), (125,500); UAV at (250,250)
    w = _dispatch_world(cfg, lay, (125.0, 0.0), np.array([4, 0, 0, 2]))
    score = dispatch_score(w, lay, cfg, np.array([0]), np.array([0]))[0]
    # load 4/8, 0 km; load 0, 0.25 km, serving; load 0, 0.5 km; load 2/4, hypot(125, 250) m
    expected = [0.5, 0.5 * 0.25 - 0.3, 0.5 * 0.5, 0.5 + 0.5 * np.hypot(125, 250) / 1000]
    np.testing.assert_allclose(score, expected)

    nearest = load_scenario(
        "small", {"tasks__dispatch_load_weight": 0.0, "tasks__dispatch_affinity_bonus": 0.0}
    )
    score = dispatch_score(w, lay, nearest, np.array([0]), np.array([0]))[0]
    np.testing.assert_allclose(score, [0.0, 0.125, 0.25, 0.5 * np.hypot(125, 250) / 1000])


@pytest.mark.parametrize("load_weight, expected_node", [(1.0, 1), (0.0, 0)])
def test_dispatch_load_weight_zero_sends_tasks_to_the_nearest_node(load_weight, expected_node):
    """Balanced dispatch avoids a half-full node next door; nearest dispatch takes it."""
    from roadedge.envs.sim.layout import build_layout
    from roadedge.envs.sim.scheduler import dispatch_waiting

    cfg = load_scenario(
        "small",
        {"tasks__dispatch_load_weight": load_weight, "tasks__dispatch_affinity_bonus": 0.0},
    )
    lay = build_layout(cfg)
    w = _dispatch_world(cfg, lay, (125.0, 0.0), np.array([4, 0, 0, 0]))
    w.view_up[0] = True
    dispatch_waiting(w, lay, cfg)
    assert w.task_state[0, 0] == RUNNING
    assert w.task_host[0, 0] == expected_node
