"""The Gymnasium environment around the RoadEdge simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from . import observation as obs_lib
from .sim.config import ScenarioConfig, load_scenario
from .sim.simulator import REWARD_TERMS, Simulator, StepResult, reward_coefficients
from .sim.view import ControllerView, controller_view

OBS_MODES = ("flat", "dict")


class RoadEdgeEnv(gym.Env):
    """Service migration and failover in a vehicular edge network.

    ## Description

    Vehicles drive on a Manhattan road grid (or a highway) and use edge nodes:
    roadside units (RSUs) and battery-powered UAVs linked by a metro backhaul.
    The main workload is **sessions**: a vehicle's long-lived service instance,
    hosted on one node at a time, charged every tick the latency of its
    requests (radio + backhaul hops between the vehicle's access node and the
    host + compute share), so it costs more the further its vehicle drives from
    it; it ends when the vehicle leaves. Short compute **tasks** run as
    background load. A central controller decides, once per tick (``dt_s``,
    default 1 s), for every node whether to move some of its sessions/tasks
    ("rows") to another node. On a node it believes up this is a
    keep-before-break **migration** (seed 000: delay, cost, success
    probability, 10 s cooldown, one per node); on a node it believes down
    (heartbeats missed) it is a **failover** of the node's orphaned tasks
    (seed 001: restart from a replica or from scratch, at most 3 attempts).
    The full model, with every equation, is in MODEL.md.

    ## Action space

    ``MultiDiscrete([N + 1] * N)`` for ``N`` nodes (RSUs first, then UAVs).
    Entry ``n`` is 0 for "do nothing" or ``j`` to move up to 3 of node ``n``'s
    rows to node ``j - 1``, among those node ``j - 1`` can run: if any has its
    vehicle attached to ``j - 1``, only those (sessions first: session
    affinity); otherwise (an offload) any, by seed 000's priority ``0.5 *
    urgency + 0.5 / max(1, remaining_s)``; orphans of a failed node go by
    priority level (8/5/2) first.
    Choices that are impossible from the controller's view (target believed
    down, full, or lacking the service; source cooling down or already
    migrating; same node; nothing to move) are no-ops counted in
    ``info["metrics"]["invalid_actions"]``. :meth:`action_masks` returns the
    valid choices as a flat boolean vector of length ``N * (N + 1)``, the
    layout sb3-contrib's ``MaskablePPO`` expects. An action outside the
    space raises ``ValueError``.

    A migration that fails its success draw or is cancelled is **retried
    automatically** by the simulator (seed 003, ``migration.retry_policy =
    next_peer``, the default) on the next-best untried target by seed 000's
    target score, up to ``migration.max_attempts`` (3) attempts, after an
    exponential backoff of its source (``cooldown_s * 2 ** (k - 1)`` after the
    k-th consecutive failure). A source with a retry pending is busy: choices
    for it are invalid. With ``faults.controller_outages`` (on in ``failures``)
    the **controller fails** (MTTF/MTTR, then ``election_delay_s`` of leader
    election): while it is out its decisions and retries are ignored (non-zero
    choices counted in ``decisions_ignored``), the action mask allows only 0
    ("do nothing") everywhere, and the ``controller_up`` global is 0; the
    world (heartbeats, dispatch, in-flight migrations, orphan timeouts) goes on.

    ## Observation space

    From the controller's view (heartbeats and its own ledger), never the
    hidden truth; every feature is in [0, 1] (see ``observation.py``):

    | ``obs_mode`` | space |
    |---|---|
    | ``"flat"`` (default) | ``Box(0, 1, (N*F + G + N*N*P,), float32)``: nodes, globals, pairs |
    | ``"dict"`` | ``Dict(nodes=(N, F), node_mask=(N,), distances=(N, N), globals=(G,), ...)`` |

    The dict's last key is ``pairs=(N, N, P)``.

    ``F = 19 + n_services`` node features (believed up, load, reserved,
    battery, is UAV, cooldown, migrating, orphans, away share, hops, urgency,
    min/mean deadline slack, heartbeat age, recent failure, attached vehicles,
    CPU, detached max/mean: how long hosted sessions' vehicles have been off
    this node, then the service capability bits); ``G = 6`` globals (time, mean
    RSU load, queued, orphaned, vehicles, controller up). ``node_mask`` is 1 for
    nodes believed up. ``P = 5`` features per ordered node pair ``(i, j)``:
    node ``i``'s sessions whose vehicle is attached to ``j`` now, and those
    whose vehicle, projected ahead by speed x ``migration.cooldown_s`` along its
    heading, lands in the coverage of ``j`` (the access rule among the nodes
    believed up), each / ``max_jobs`` of ``i``; 1 if the migration in
    flight from ``i`` goes to ``j``; and ``hops_saved``, ``hops_saved_heading``:
    the backhaul hops per request that hosting all of ``i``'s sessions on ``j``
    would save, from the vehicles' access nodes now and from where they are
    heading. MODEL.md Appendix A defines each.

    ## Rewards

    ``reward = completion - latency - deadline_miss - drop - migration_cost
    - downtime - uav_energy``, each term weighted by ``ScenarioConfig.reward``.
    ``info["reward_terms"]`` holds each weighted term (signed, Python floats)
    and they sum to the reward. ``latency`` is the summed latency of the tick's
    requests [s]: a task sends one a tick, a session ``request_rate_hz * dt_s``
    (3 by default). Completions (tasks), misses (tasks) and drops (tasks and
    sessions) count ``priority / 5`` each (high 8, medium 5, low 2); a row lost
    because the table was full counts 1. A dropped session is started again by
    its vehicle, so dropping one never ends its latency bill.

    ## Starting state

    ``initial_vehicles`` vehicles on random roads, all nodes up, UAV
    batteries uniform in ``[initial_battery_min_fraction, 1]``, no tasks; the
    vehicles' entry session draws happen in the first tick.

    ## Episode end

    No termination (a continuing task). Truncation after ``horizon`` ticks
    (300 by default); the registered ids also set ``max_episode_steps`` to
    the preset's horizon. If you override ``horizon``, pass a matching
    ``max_episode_steps`` to ``gymnasium.make``.

    ## Arguments

    ``gymnasium.make("RoadEdge-v1", scenario="city", obs_mode="flat",
    render_mode=None, **overrides)``: ``scenario`` is a preset name, a YAML
    path or a ``ScenarioConfig``; overrides are config keys, nested dicts or
    dotted/``__`` paths (``vehicles__max_vehicles=50``); an unknown key or an
    out-of-range value raises ``ConfigError`` naming it.

    ## Info

    ``reward_terms``, ``metrics`` (cumulative episode metrics: tasks
    generated/completed/missed/dropped/active, sessions
    started/ended/dropped/active, session_latency_ms (mean per request),
    session_hops (mean access-to-host hops), migrations
    started/completed/failed/cancelled, downtime_s, mean_latency_ms,
    failovers, mean_recovery_s, invalid_actions, failures_detected,
    uav_energy_kj, controller_outages, controller_down_s, decisions_ignored,
    migration_retries, retries_succeeded, retries_exhausted), and ``invalid``
    (invalid choices this step; choices ignored during an outage are not
    invalid).

    ## Version history

    * v1 (issue 15, agent): two more pair features, ``hops_saved`` and
      ``hops_saved_heading`` (P 3 -> 5): which target is closer, in backhaul
      hops, to a node's vehicles now and where they are heading. Observations
      (and models trained on them) of earlier v1 are incompatible.
    * v1 (issue 15, observation): features to anticipate where vehicles go. The
      dict observation gains ``pairs`` (N, N, 3): sessions of i attached to j,
      heading for j, migration i -> j in flight; the flat vector appends them
      after the globals. Two node features (``detached_max``,
      ``detached_mean``; F 17 + S -> 19 + S), from a new controller-side world
      array ``veh_left_s`` stamped when an access link ends. Dynamics unchanged;
      observations (and models trained on them) of earlier v1 are incompatible.
    * v1 (issue 13, compiled core): every phase of a tick, the action mask and the
      observation run as Numba kernels; dynamics unchanged but for float rounding
      (received power as a power law). Fixed: vehicle arrivals above ~745 per tick
      were stuck at the Poisson cap; a session ending at its planned end counted its
      last hops to the last node.
    * v1 (issue 17, seed 003): controller outages (``faults.controller_*``,
      ``election_delay_s``; on in ``failures``), the ``controller_up`` global
      (G 5 -> 6), automatic retry of failed migrations on the next peer with
      exponential backoff (``migration.retry_policy``, ``max_attempts``).
    * v1: sessions (long-lived per-vehicle services, the migration workload of
      the literature) with tasks as background load; latency charged per request
      (sessions: ``sessions.request_rate_hz``); a metro backhaul (RSU mesh on the
      placement grid, UAVs one wireless hop to their nearest RSU: 1-6 hops on
      ``city``) instead of ``ceil(distance / 300 m)``; no network latency charged
      out of coverage by default; a migration toward vehicles attached to the
      target moves only those; a ``highway`` preset; ``city`` recalibrated
      (background task rate 0.05 -> 0.01 /s). v0 ids are gone.
    * v0: initial release.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 8}

    def __init__(
        self,
        scenario: str | Path | ScenarioConfig = "city",
        obs_mode: str = "flat",
        render_mode: str | None = None,
        record_events: bool = True,
        check_invariants: bool = False,
        **overrides: Any,
    ):
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        record_events = check_bool("record_events", record_events)
        check_invariants = check_bool("check_invariants", check_invariants)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}"
            )
        self.cfg = load_scenario(scenario, overrides)
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self.sim = Simulator(
            self.cfg, 1, record_events=record_events, check_invariants=check_invariants
        )
        N = self.cfg.n_nodes
        self.n_nodes = N
        self.action_space = spaces.MultiDiscrete(np.full(N, N + 1, dtype=np.int64))
        self.observation_space = make_observation_space(self.cfg, obs_mode)
        self._last: StepResult | None = None
        self._renderer = None
        self._observer: obs_lib.Observer | None = None  # built at the first observation
        self._has_reset = False

    # ---------------------------------------------------------------- gym API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        key = self.np_random.integers(0, 2**63 - 1, dtype=np.int64)
        self.sim.reset(np.array([key], dtype=np.uint64))
        self._last = None
        self._has_reset = True
        if self.render_mode == "human":
            self.render()
        return self._observe(), self._info()

    def step(self, action):
        if not self._has_reset:
            raise ResetNeeded("RoadEdgeEnv.step() called before reset(): call reset() first")
        arr = np.asarray(action)
        integers = arr.dtype.kind in "iu" and arr.shape == (self.n_nodes,)
        if not integers and (arr.shape != (self.n_nodes,) or not self.action_space.contains(arr)):
            raise self._bad_action(action)
        try:  # the simulator checks the range of integer actions before it changes anything
            self._last = self.sim.step(arr.astype(np.int64)[None])
        except ValueError as err:
            raise self._bad_action(action) from err
        truncated = int(self.sim.world.tick[0]) >= self.cfg.horizon
        if self.render_mode == "human":
            self.render()
        return self._observe(), float(self._last.reward[0]), False, truncated, self._info()

    def _bad_action(self, action) -> ValueError:
        return ValueError(
            f"action {action!r} is not in the action space {self.action_space}: "
            f"expected {self.n_nodes} integers in [0, {self.n_nodes}]"
        )

    def action_masks(self) -> np.ndarray:
        """Valid choices, flat bool of length N * (N + 1) (MaskablePPO layout)."""
        return self.sim.action_mask()[0].reshape(-1)

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode= to make()")
            return None
        if self._renderer is None:
            from .render import Renderer

            self._renderer = Renderer(self.sim, self.render_mode)
        return self._renderer.draw(env=0, last=self._last)

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ---------------------------------------------------------------- views

    def controller_view(self) -> ControllerView:
        """What the controller knows now (for rule-based policies); batch axis of 1."""
        return controller_view(self.sim)

    def _observe(self):
        if self._observer is None:
            self._observer = obs_lib.Observer(self.sim, self.obs_mode)
        return self._observer(0)

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"metrics": self.sim.metrics_of(0)}
        if self._last is not None:
            terms = self._last.terms
            info["reward_terms"] = {
                k: float(c * terms[k][0])
                for k, c in zip(REWARD_TERMS, self.sim.reward_coef, strict=True)
            }
            info["invalid"] = int(self._last.invalid[0])
        else:
            info["reward_terms"] = {k: 0.0 for k in REWARD_TERMS}
            info["invalid"] = 0
        return info


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool if it is one (Python or NumPy); else a TypeError naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def weighted_terms(cfg: ScenarioConfig, terms: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Signed, weighted reward terms (B,) each; they sum to the reward."""
    coef = reward_coefficients(cfg)
    return {k: coef[i] * np.asarray(terms[k]) for i, k in enumerate(REWARD_TERMS)}


def make_observation_space(cfg: ScenarioConfig, obs_mode: str) -> spaces.Space:
    N = cfg.n_nodes
    F = obs_lib.n_node_features(cfg)
    G = len(obs_lib.GLOBAL_FEATURES)
    P = len(obs_lib.PAIR_FEATURES)
    if obs_mode == "flat":
        return spaces.Box(0.0, 1.0, (obs_lib.flat_size(cfg),), dtype=np.float32)
    return spaces.Dict(
        {
            "nodes": spaces.Box(0.0, 1.0, (N, F), dtype=np.float32),
            "node_mask": spaces.Box(0.0, 1.0, (N,), dtype=np.float32),
            "distances": spaces.Box(0.0, 1.0, (N, N), dtype=np.float32),
            "globals": spaces.Box(0.0, 1.0, (G,), dtype=np.float32),
            "pairs": spaces.Box(0.0, 1.0, (N, N, P), dtype=np.float32),
        }
    )


def build_observation(
    sim: Simulator,
    cfg: ScenarioConfig,
    obs_mode: str,
    view: ControllerView,
    row: int | slice | None = None,
):
    """Observation(s) for batch ``row`` (an int for one env, None for all rows)."""
    tick = sim.world.tick.astype(np.float64)
    nodes = obs_lib.node_matrix(view, cfg, tick)
    globs = obs_lib.global_vector(view, cfg, tick, sim.world.veh_active)
    pairs = obs_lib.pair_tensor(view, cfg)
    sel = slice(None) if row is None else row
    if obs_mode == "flat":
        B = nodes.shape[0]
        return np.concatenate([nodes.reshape(B, -1), globs, pairs.reshape(B, -1)], axis=1)[sel]
    dist = obs_lib.distance_matrix(view)
    B = nodes.shape[0]
    out = {
        "nodes": nodes,
        "node_mask": view.up.astype(np.float32),
        "distances": np.broadcast_to(dist, (B,) + dist.shape).copy(),
        "globals": globs,
        "pairs": pairs,
    }
    return {k: v[sel] for k, v in out.items()}
