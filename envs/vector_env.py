"""A native batched RoadEdge vector environment (no copies, no processes).

``RoadEdgeVectorEnv`` runs ``num_envs`` environments as rows of one
:class:`Simulator`, so a step of 64 environments is one set of array
operations. Because every random draw depends only on an environment's own
episode key (see ``sim/rng.py``), row ``i`` reproduces exactly what a single
``RoadEdgeEnv`` would do with the same seeds, whatever the batch size.

Get one with ``gymnasium.make_vec("RoadEdge-v1", num_envs=64,
vectorization_mode="vector_entry_point")`` or construct it directly.
:class:`SB3VecEnv` adapts it to Stable-Baselines3's ``VecEnv`` interface
(terminal observations in ``infos``, Monitor-style ``episode`` entries,
``env_method("action_masks")`` for MaskablePPO).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from .migration_env import check_bool, make_observation_space, weighted_terms
from .observation import Observer
from .sim.config import ScenarioConfig, load_scenario
from .sim.simulator import REWARD_TERMS, Simulator
from .sim.view import controller_view


class RoadEdgeVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` RoadEdge environments stepped as one batch.

    Spaces, reward and info entries are those of :class:`RoadEdgeEnv`, with a
    leading batch axis; ``infos["reward_terms"][k]`` and
    ``infos["metrics"][k]`` are arrays of shape (num_envs,). Episodes are
    truncated at the horizon and reset automatically (``autoreset_mode``:
    Gymnasium's default ``NEXT_STEP``, or ``SAME_STEP`` with the last step's
    observation and info in ``final_obs`` and ``final_info`` of the infos).
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str | Path | ScenarioConfig = "city",
        obs_mode: str = "flat",
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        record_events: bool = False,
        check_invariants: bool = False,
        render_mode: str | None = None,
        max_episode_steps: int | None = None,
        **overrides: Any,
    ):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if render_mode is not None:
            raise ValueError("RoadEdgeVectorEnv does not render; use RoadEdgeEnv(render_mode=...)")
        mode = AutoresetMode(autoreset_mode)
        if mode == AutoresetMode.DISABLED:
            raise ValueError("autoreset_mode must be NEXT_STEP or SAME_STEP")
        if obs_mode not in ("flat", "dict"):
            raise ValueError(f"obs_mode must be 'flat' or 'dict', got {obs_mode!r}")
        record_events = check_bool("record_events", record_events)
        check_invariants = check_bool("check_invariants", check_invariants)
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, (bool, np.bool_))
            or not isinstance(max_episode_steps, (int, np.integer))
            or max_episode_steps < 1
        ):
            raise ValueError(
                f"max_episode_steps must be a positive integer or None, got {max_episode_steps!r}"
            )
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.autoreset_mode = mode
        self.cfg = load_scenario(scenario, overrides)
        self.obs_mode = obs_mode
        self.num_envs = num_envs
        # Truncate at the horizon, or earlier if gymnasium.make_vec passes a limit.
        self.max_episode_steps = min(self.cfg.horizon, max_episode_steps or self.cfg.horizon)
        self.sim = Simulator(
            self.cfg, num_envs, record_events=record_events, check_invariants=check_invariants
        )
        N = self.cfg.n_nodes
        self.n_nodes = N
        self.single_action_space = spaces.MultiDiscrete(np.full(N, N + 1, dtype=np.int64))
        self.single_observation_space = make_observation_space(self.cfg, obs_mode)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._needs_reset = np.zeros(num_envs, dtype=bool)
        self._observer = Observer(self.sim, self.obs_mode)
        self._has_reset = np.zeros(num_envs, dtype=bool)  # each row reset at least once

    # ------------------------------------------------------------------ API

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ):
        seeds = self._check_seed(seed)
        rows = np.arange(self.num_envs)
        if options and "reset_mask" in options:
            rows = np.flatnonzero(self._check_reset_mask(options["reset_mask"]))
        self._reset_rows(rows, [seeds[i] for i in rows])
        obs = self._observe()
        return obs, self._infos(None)

    def step(self, actions):
        if not self._has_reset.all():
            never = np.flatnonzero(~self._has_reset).tolist()
            raise ResetNeeded(
                f"RoadEdgeVectorEnv.step() called before reset() of env rows {never}: "
                "call reset() first"
            )
        actions = self._check_actions(actions)
        done_before = self._needs_reset.copy()
        if self.autoreset_mode == AutoresetMode.NEXT_STEP and done_before.any():
            actions = actions.copy()
            actions[done_before] = 0
        result = self.sim.step(actions)
        rewards = result.reward.copy()
        truncated = self.sim.world.tick >= np.uint64(self.max_episode_steps)
        terminated = np.zeros(self.num_envs, dtype=bool)
        infos = self._infos(result)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            if done_before.any():  # these rows only reset on this step
                rows = np.flatnonzero(done_before)
                self._reset_rows(rows, [None] * rows.size)
                rewards[rows] = 0.0
                truncated[rows] = False
                infos = self._infos(result, reset_rows=rows)
            self._needs_reset = truncated.copy()
            return self._observe(), rewards, terminated, truncated, infos
        # SAME_STEP: report the final observation, then reset in place.
        if truncated.any():
            rows = np.flatnonzero(truncated)
            final_obs = self._observe()
            final_obs_arr = np.empty(self.num_envs, dtype=object)
            for i in rows:
                final_obs_arr[i] = _row(final_obs, i)
            # Gymnasium 1.x layout: a dict of batched arrays, zero in rows that did not end.
            final_info = _select_rows(infos, truncated)
            self._reset_rows(rows, [None] * rows.size)
            # As Gymnasium's SAME_STEP: obs and info of a reset row start the new episode.
            infos = self._infos(result, reset_rows=rows)
            infos["final_obs"] = final_obs_arr
            infos["_final_obs"] = truncated.copy()
            infos["final_info"] = final_info
            infos["_final_info"] = truncated.copy()
        return self._observe(), rewards, terminated, truncated, infos

    def action_masks(self) -> np.ndarray:
        """Valid choices per env, (num_envs, N * (N + 1)) bool (MaskablePPO layout)."""
        return self.sim.action_mask().reshape(self.num_envs, -1)

    def controller_view(self):
        return controller_view(self.sim)

    # ------------------------------------------------------------------ internals

    def _check_seed(self, seed) -> list[int | None]:
        """One seed (or None) per row from ``reset(seed=...)``: None, an int (row i gets
        ``seed + i``) or a sequence of ``num_envs`` ints or Nones."""
        n = self.num_envs
        if seed is None:
            return [None] * n
        if _is_int(seed):
            if seed < 0:
                raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
            return [int(seed) + i for i in range(n)]
        if isinstance(seed, (str, bytes)) or not isinstance(seed, (Sequence, np.ndarray)):
            raise TypeError(
                f"seed must be None, an int or a sequence of {n} ints (or None), got {seed!r}"
            )
        if len(seed) != n:
            raise ValueError(f"seed must hold one seed per env: need {n} seeds, got {len(seed)}")
        for s in seed:
            if s is not None and not _is_int(s):
                raise TypeError(f"seed entries must be ints or None, got {s!r} in {seed!r}")
            if s is not None and s < 0:
                raise ValueError(f"seed entries must be non-negative, got {s!r} in {seed!r}")
        return [None if s is None else int(s) for s in seed]

    def _check_reset_mask(self, mask) -> np.ndarray:
        arr = np.asarray(mask)
        if arr.shape != (self.num_envs,) or arr.dtype != np.bool_:
            raise ValueError(
                f"options['reset_mask'] must be {self.num_envs} bools (one per env), "
                f"got {arr.dtype} of shape {arr.shape}"
            )
        return arr

    def _check_actions(self, actions) -> np.ndarray:
        arr = np.asarray(actions)
        shape = (self.num_envs, self.n_nodes)
        if arr.shape != shape or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                f"actions must be integers of shape {shape}, got {arr.dtype} {arr.shape}"
            )
        if arr.min(initial=0) < 0 or arr.max(initial=0) > self.n_nodes:
            raise ValueError(f"actions must lie in [0, {self.n_nodes}]")
        return arr.astype(np.int64)

    def _reset_rows(self, rows: np.ndarray, seeds: list[int | None]) -> None:
        if len(rows) == 0:
            return
        keys = np.empty(len(rows), dtype=np.uint64)
        for j, (row, s) in enumerate(zip(rows.tolist(), seeds, strict=True)):
            if s is not None or self._rngs[row] is None:
                self._rngs[row], _ = seeding.np_random(s)
            rng = self._rngs[row]
            keys[j] = rng.integers(0, 2**63 - 1, dtype=np.int64)  # as RoadEdgeEnv.reset
        self.sim.reset(keys, rows)
        self._needs_reset[rows] = False
        self._has_reset[rows] = True

    def _observe(self):
        return self._observer()

    def _infos(self, result, reset_rows: np.ndarray | None = None) -> dict[str, Any]:
        metrics = self.sim.metrics()
        if result is None:
            terms = {k: np.zeros(self.num_envs) for k in REWARD_TERMS}
            invalid = np.zeros(self.num_envs, dtype=np.int64)
        else:
            terms = weighted_terms(self.cfg, result.terms)
            invalid = np.asarray(result.invalid, dtype=np.int64).copy()
        if reset_rows is not None:
            for v in terms.values():
                v[reset_rows] = 0.0
            invalid[reset_rows] = 0
        return {"reward_terms": terms, "metrics": metrics, "invalid": invalid}


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _row(obs, i: int):
    if isinstance(obs, dict):
        return {k: v[i].copy() for k, v in obs.items()}
    return obs[i].copy()


def _select_rows(infos: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """Copy of batched ``infos`` keeping ``rows`` (bool mask) and zeroing the others."""
    out: dict[str, Any] = {}
    for k, v in infos.items():
        if isinstance(v, dict):
            out[k] = _select_rows(v, rows)
        else:
            out[k] = np.where(rows, v, np.zeros_like(v))
    return out


def _row_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    return {
        "reward_terms": {k: float(v[i]) for k, v in infos["reward_terms"].items()},
        "metrics": {k: float(v[i]) for k, v in infos["metrics"].items()},
        "invalid": int(infos["invalid"][i]),
    }


def _sb3_vec_env_class():
    from stable_baselines3.common.vec_env import VecEnv

    class SB3VecEnv(VecEnv):
        """Stable-Baselines3 ``VecEnv`` over a :class:`RoadEdgeVectorEnv` (in process).

        ``infos[i]`` carries ``reward_terms``, ``metrics``, and on episode end
        ``terminal_observation``, ``TimeLimit.truncated`` and a Monitor-style
        ``episode`` entry (return ``r``, length ``l``, time ``t``).
        """

        def __init__(self, venv: RoadEdgeVectorEnv):
            if venv.autoreset_mode != AutoresetMode.SAME_STEP:
                raise ValueError("SB3VecEnv needs a RoadEdgeVectorEnv with SAME_STEP autoreset")
            self.venv = venv
            super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
            self._actions: np.ndarray | None = None
            self._returns = np.zeros(venv.num_envs)
            self._lengths = np.zeros(venv.num_envs, dtype=np.int64)
            self._t = 0.0

        def reset(self):
            seeds = self._seeds if any(s is not None for s in self._seeds) else None
            obs, _ = self.venv.reset(seed=seeds)
            self._reset_seeds()
            self._reset_options()
            self._returns[:] = 0.0
            self._lengths[:] = 0
            return obs

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = np.asarray(actions).reshape(self.num_envs, -1).astype(np.int64)

        def step_wait(self):
            obs, rew, term, trunc, infos = self.venv.step(self._actions)
            self._returns += rew
            self._lengths += 1
            dones = term | trunc
            out = []
            for i in range(self.num_envs):
                info = _row_info(infos, i)
                if dones[i]:
                    info = _row_info(infos["final_info"], i)
                    info["terminal_observation"] = infos["final_obs"][i]
                    info["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
                    info["episode"] = {
                        "r": float(self._returns[i]),
                        "l": int(self._lengths[i]),
                        "t": 0.0,
                    }
                    self._returns[i] = 0.0
                    self._lengths[i] = 0
                out.append(info)
            return obs, rew.astype(np.float32), dones, out

        def close(self) -> None:
            self.venv.close()

        def get_attr(self, attr_name, indices=None):
            return [getattr(self.venv, attr_name) for _ in self._indices(indices)]

        def set_attr(self, attr_name, value, indices=None) -> None:
            setattr(self.venv, attr_name, value)

        def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
            idx = list(self._indices(indices))
            if method_name == "action_masks":
                masks = self.venv.action_masks()
                return [masks[i] for i in idx]
            result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
            return [result for _ in idx]

        def env_is_wrapped(self, wrapper_class, indices=None):
            # The adapter reports Monitor's "episode" entries itself, so it stands in
            # for a Monitor wrapper (SB3's evaluate_policy relies on them).
            from stable_baselines3.common.monitor import Monitor

            return [wrapper_class is Monitor for _ in self._indices(indices)]

        def _indices(self, indices):
            if indices is None:
                return range(self.num_envs)
            if isinstance(indices, int):
                return [indices]
            return indices

    return SB3VecEnv


def make_sb3_vec_env(num_envs: int, **kwargs: Any):
    """An SB3 ``VecEnv`` of ``num_envs`` RoadEdge environments in one batch."""
    kwargs["autoreset_mode"] = AutoresetMode.SAME_STEP
    return _sb3_vec_env_class()(RoadEdgeVectorEnv(num_envs, **kwargs))
