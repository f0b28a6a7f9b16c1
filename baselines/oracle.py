"""``oracle``: a PRIVILEGED controller that knows the future. It measures headroom.

It is not a baseline to beat and nothing a learner sees depends on it: it
reads the simulator's hidden state (``env.sim.world``), which no rule,
observation or mask does.

How it plans:

1. **The future.** When an episode starts, it copies the simulator and runs
   the copy to the horizon with no migrations or failovers. Vehicles, their
   routes and node failures are drawn from the episode key, the tick and the
   vehicle's entry serial, never from what the controller does (common random
   numbers, MODEL.md section 12), so the copy shows each vehicle's future
   access node and each node's up/down state (UAV battery returns, which
   depend on load, are the one approximation).
2. **One dynamic programme per session**, every tick, over the known future
   access-node sequence of its vehicle until the session ends (its vehicle
   leaves, or its planned end), capped at ``horizon_s``:

       V_t(h) = c_t(h) + min( V_{t+1}(h),  min_{h'} M(h, h') + V_{t+1}(h') )

   with the per-tick cost ``c_t(h) = w_lat * requests * hops(a_t, h) *
   per_hop_ms / 1000`` (zero when the vehicle is out of coverage) plus
   ``w_down * dt`` while ``h`` is truly down, and the one-off move cost
   ``M = w_mig * seed-000 cost / p_success + w_down * switch downtime`` (hosts that cannot
   run the service are excluded). Compute shares and slot limits are left to
   the action mask.
3. **Acting.** For every source node, the target whose move saves the most:
   the planned savings of the rows the simulator would actually take for
   that target (attached vehicles first, sessions first, at most 3), minus
   the cost of any task moved along, if positive and the mask allows it;
   nodes believed down are failed over by seed 001's ``failover`` rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from roadedge.envs.sim import formulas, migration
from roadedge.envs.sim.arrays import rank_within
from roadedge.envs.sim.compute import per_hop_ms
from roadedge.envs.sim.simulator import Simulator
from roadedge.envs.sim.world import KIND_SESSION, RUNNING

from . import rules

GONE = -2  # vehicle not on the map at that tick


class Future:
    """Access node per (env, vehicle serial, tick) and node truth per (env, tick, node)."""

    def __init__(self, sim: Simulator, horizon: int):
        probe = Simulator(sim.cfg, sim.batch_size, record_events=False)
        probe.world = sim.world.copy()
        w = probe.world
        B, N = w.node_up.shape
        start = w.tick.copy()
        steps = max(int(horizon - start.min()), 0)
        access, serials, node_up = [], [], []
        noop = np.zeros((B, N), dtype=np.int64)
        for _ in range(steps + 1):
            access.append(np.where(w.veh_active, w.veh_access, GONE))
            serials.append(w.veh_serial.copy())
            node_up.append(w.node_up.copy())
            probe.step(noop)
        max_serial = int(w.veh_spawned.max()) + 1
        self.start = start
        self.access = np.full((B, max_serial, steps + 1), GONE, dtype=np.int64)
        for k, (acc, ser) in enumerate(zip(access, serials, strict=True)):
            e, v = np.nonzero(acc != GONE)
            self.access[e, ser[e, v].astype(np.int64), k] = acc[e, v]
        self.node_up = np.stack(node_up, axis=1)  # (B, steps + 1, N)

    def window(self, env: np.ndarray, serial: np.ndarray, tick: np.ndarray, length: int):
        """Access nodes (K, length) and node truth (K, length, N) from ``tick`` on."""
        offset = (tick - self.start[env]).astype(np.int64)
        cols = offset[:, None] + np.arange(length)[None, :]
        inside = cols < self.access.shape[2]
        cols = np.minimum(cols, self.access.shape[2] - 1)
        serial = np.minimum(serial, self.access.shape[1] - 1)
        acc = self.access[env[:, None], serial[:, None], cols]
        acc = np.where(inside, acc, GONE)
        up = self.node_up[env[:, None], cols]
        return acc, up


class OraclePolicy:
    """The privileged look-ahead controller (see the module docstring).

    Args:
        env: a RoadEdge env, its vector env, or anything with ``.sim``.
        seed: unused (the oracle is deterministic); kept for the common signature.
        horizon_s: how far ahead each session's plan looks [s].
    """

    privileged = True
    name = "oracle"

    def __init__(self, env: Any, seed: Any = 0, horizon_s: float = 120.0):
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        self.cfg = self.env.cfg
        self.horizon_ticks = max(1, int(round(horizon_s / self.cfg.dt_s)))
        self.future: Future | None = None
        self._episode_keys: np.ndarray | None = None

    def reset(self) -> None:
        self.future = None
        self._episode_keys = None

    def predict(self, observation=None, state=None, episode_start=None, deterministic=True):
        sim: Simulator = self.env.sim
        w = sim.world
        if self._episode_keys is None or not np.array_equal(self._episode_keys, w.key):
            horizon = self.cfg.horizon
            self.future = Future(sim, horizon)
            self._episode_keys = w.key.copy()
        view = self.env.controller_view()
        mask = sim.action_mask()
        action = self._migrations(sim, mask)
        fo = rules.failover_rule(view, mask, self.cfg)
        action = np.where(view.up, action, fo)
        single = not hasattr(self.env, "num_envs")
        return (action[0] if single else action), state

    # ------------------------------------------------------------------ planning

    def _migrations(self, sim: Simulator, mask: np.ndarray) -> np.ndarray:
        """Per source node, the target whose move (the rows the simulator would
        actually take for it, MODEL.md 8.3) has the largest planned net saving."""
        w, lay, cfg = sim.world, sim.layout, sim.cfg
        B, N = w.slots_used.shape
        on_up = np.take_along_axis(w.view_up, np.maximum(w.task_host, 0), axis=1)
        movable = (w.task_state == RUNNING) & (w.task_mig_target < 0) & on_up
        env, row = np.nonzero(movable)
        if env.size == 0:
            return np.zeros((B, N), dtype=np.int64)
        src = w.task_host[env, row]
        session = w.task_kind[env, row] == KIND_SESSION
        gain = np.zeros((env.size, N))
        if session.any():
            gain[session] = self.plan_gains(sim, env[session], row[session])
        # a task moved along gains nothing here and pays its share of the cost
        mc, rw = cfg.migration, cfg.reward
        task_cost = rw.migration_cost * formulas.migration_cost(w.task_state_mb[env, row], 0.0, mc)
        gain[~session] = -task_cost[~session][:, None]
        # which rows "move src to j" takes: attached to j first (only those, if any),
        # sessions first, then seed 000 priority; at most max_tasks_per_migration
        veh = w.task_vehicle[env, row]
        access = np.where(w.veh_active[env, veh], w.veh_access[env, veh], -1)
        capable = lay.capability[:, w.task_service[env, row]].T  # (K, N)
        near = access[:, None] == np.arange(N)[None, :]
        group = (env * N + src)[:, None] * N + np.arange(N)[None, :]  # (K, N): move src -> j
        taken = capable & migration.attached_only(group, near & capable, B * N * N)
        remaining = w.task_deadline_s[env, row] - w.time_s[env]
        # (the urgency term of seed 000's priority is the same for every row of a source)
        base = formulas.task_priority(0.0, remaining)[:, None]
        prio = migration.selection_priority(base, near, session[:, None])
        k, j = np.nonzero(taken)
        rank = rank_within(group[k, j], -prio[k, j])
        keep = rank < mc.max_tasks_per_migration
        net = np.zeros(B * N * N)
        np.add.at(net, group[k[keep], j[keep]], gain[k[keep], j[keep]])
        net = net.reshape(B, N, N)
        valid = mask[:, :, 1:] & (net > 0)
        score = np.where(valid, net, -np.inf)
        best = np.argmax(score, axis=-1)
        ok = np.isfinite(np.take_along_axis(score, best[..., None], -1)[..., 0])
        return np.where(ok, best + 1, 0).astype(np.int64)

    def plan_gains(self, sim: Simulator, env: np.ndarray, row: np.ndarray) -> np.ndarray:
        """For each given session, the planned saving of moving it now to each node
        (value of staying minus value of moving), (K, N); <= 0 where moving does not pay."""
        w, lay, cfg = sim.world, sim.layout, sim.cfg
        N = lay.n_nodes
        rw, mc = cfg.reward, cfg.migration
        assert self.future is not None
        veh = w.task_vehicle[env, row]
        serial = w.veh_serial[env, veh].astype(np.int64)
        L = self.horizon_ticks
        acc, up = self.future.window(env, serial, w.tick[env], L + 1)
        end = w.task_deadline_s[env, row]
        t_abs = w.time_s[env][:, None] + cfg.dt_s * np.arange(L + 1)[None, :]
        alive = (acc != GONE) & (t_abs < end[:, None])
        requests = cfg.sessions.request_rate_hz * cfg.dt_s
        lat_w = rw.latency * requests * per_hop_ms(cfg) / 1000.0
        hops = lay.hops[np.maximum(acc, 0)]  # (K, L+1, N)
        cost = np.where((acc >= 0)[..., None], lat_w * hops, 0.0)
        cost = cost + np.where(up, 0.0, rw.downtime * cfg.dt_s)
        cost = np.where(alive[..., None], cost, 0.0)
        capable = lay.capability[:, w.task_service[env, row]].T  # (K, N)
        state_mb = w.task_state_mb[env, row]
        delay = formulas.migration_delay_s(
            state_mb[:, None, None], lay.hops[None], mc, cfg.radio.hop_latency_ms
        )
        _, _, switch = formulas.phase_durations_s(delay, mc)
        move = rw.migration_cost * formulas.migration_cost(state_mb[:, None, None], delay, mc)
        # a failed attempt (seed 000 success draw) pays the cost and moves nothing:
        # expected cost per successful move = cost / p
        load = (w.slots_used + w.slots_reserved)[env] / lay.max_jobs  # (K, N)
        p = formulas.success_probability(lay.distance_m[None], load[:, None, :], 0.0, mc)
        move = move / np.maximum(p, 1e-3) + rw.downtime * switch  # (K, N, N)
        move = np.where(capable[:, None, :], move, np.inf)
        idx = np.arange(N)
        move[:, idx, idx] = 0.0
        value = np.zeros((env.size, N))
        for t in range(L, 0, -1):  # backward: V_t(h) = c_t(h) + min_h' M(h, h') + V_{t+1}(h')
            value = cost[:, t] + np.min(move + value[:, None, :], axis=2)
        host = w.task_host[env, row]
        stay = value[np.arange(env.size), host]
        go = move[np.arange(env.size), host] + value
        return np.where(capable, stay[:, None] - go, -np.inf)
