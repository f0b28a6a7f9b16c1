"""Hyperparameters of ``train.py``: the YAML files, their project keys, and what SB3 gets.

The files in ``agents/hyperparams`` are RL Zoo files, keyed by env id
(``default`` for any other id). Besides the algorithm's constructor keywords
they hold RL Zoo's own keys, which ``train.py`` reads the same way:

* ``n_timesteps``, ``n_envs``, ``policy``;
* ``env_kwargs``: passed to the env (``obs_mode: dict`` for the dict observation);
* ``normalize``: ``{norm_obs: false, norm_reward: true}`` wraps the training
  env in ``VecNormalize`` for rewards (observations are never normalised).

``noop_logit_bias`` is train.py's alone (see :func:`bias_noop_logits`); the
older spellings ``obs_mode`` and ``normalize_reward`` (top level) are still
read, so runs saved before the RL Zoo layout resume.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .train_args import UsageError

ALGOS = ("ppo", "a2c", "maskable_ppo")
HYPERPARAM_DIR = Path(__file__).resolve().parent / "hyperparams"
TRAINING_KEYS = (  # read by train.py, never passed to the SB3 constructor
    "n_timesteps",
    "n_envs",
    "policy",
    "env_kwargs",
    "normalize",
    "noop_logit_bias",
    "pretrain",
    "obs_mode",  # legacy: now env_kwargs.obs_mode
    "normalize_reward",  # legacy: now normalize.norm_reward
)
SCHEDULED_KEYS = ("learning_rate", "clip_range")


def load_hyperparams(algo: str, env_id: str, path: str | None) -> dict[str, Any]:
    """The entry for ``env_id`` (else ``default``) of the algorithm's YAML file."""
    file = Path(path) if path else HYPERPARAM_DIR / f"{algo}.yml"
    if not file.is_file():
        raise UsageError(f"hyperparameter file not found: {file}")
    try:
        table = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{file} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if env_id in table:
        return dict(table[env_id])
    if "default" in table:
        return dict(table["default"])
    raise UsageError(f"{file} has no entry for {env_id} and no 'default'")


def env_kwargs_of(hp: dict[str, Any]) -> dict[str, Any]:
    """The env keywords the hyperparameters ask for (``env_kwargs``, legacy ``obs_mode``)."""
    out = dict(hp.get("env_kwargs") or {})
    if "obs_mode" in hp:
        out["obs_mode"] = hp["obs_mode"]
    out.setdefault("obs_mode", "flat")
    return out


def normalizes_reward(hp: dict[str, Any]) -> bool:
    """Whether ``normalize`` (RL Zoo) or legacy ``normalize_reward`` asks for reward scaling."""
    if "normalize_reward" in hp:
        return bool(hp["normalize_reward"])
    spec = hp.get("normalize", False)
    if isinstance(spec, bool):
        if spec:
            raise UsageError("normalize: true would normalise observations; use {norm_obs: false}")
        return False
    if isinstance(spec, dict) and not spec.get("norm_obs", True):
        return bool(spec.get("norm_reward", True))
    raise UsageError(f"normalize: expected false or {{norm_obs: false, ...}}, got {spec!r}")


def check_keys(hp: dict[str, Any], algo: str, source: str) -> None:
    """Every key is the algorithm's constructor keyword or a training key, else ``UsageError``
    naming it and the nearest known keys (a misspelled key fails before any training)."""
    params = inspect.signature(algo_class(algo).__init__).parameters
    known = (set(params) - {"self", "policy", "env"}) | set(TRAINING_KEYS)
    for key in hp:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise UsageError(f"{source}: unknown hyperparameter {key!r} for {algo}{hint}")


def bias_noop_logits(model, bias: float) -> None:
    """Add ``bias`` to the initial logit of choice 0 ("do nothing") of every node.

    A fresh policy picks uniformly among N + 1 choices per node, so it starts by
    migrating nearly everything every tick, which costs far more than doing
    nothing; a positive bias starts it near the ``noop`` baseline instead and
    lets it explore migrations and failovers from there. ``hyperparams``:
    ``noop_logit_bias`` (0 = SB3's default initialisation).
    """
    if bias == 0.0:
        return
    import torch
    from gymnasium import spaces

    space = model.action_space
    if not isinstance(space, spaces.MultiDiscrete):
        raise ValueError(f"noop_logit_bias needs a MultiDiscrete action space, got {space}")
    starts = np.concatenate([[0], np.cumsum(space.nvec)[:-1]])
    with torch.no_grad():
        head = model.policy.action_net
        if hasattr(head, "noop_bias"):  # the pointer head has one shared "do nothing" offset
            head.noop_bias += bias
        else:
            head.bias[torch.as_tensor(starts)] += bias


def resolve_policy_kwargs(policy_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """``policy_kwargs`` from YAML with ``features_extractor_class`` given by name made a class.

    YAML cannot hold a Python class, so the hyperparameter files name the
    extractor (``features_extractor_class: NodeSetExtractor``); an unknown
    name raises ``ValueError`` listing the known ones.
    """
    out = dict(policy_kwargs or {})
    name = out.get("features_extractor_class")
    if isinstance(name, str):
        from .encoder import NodeSetExtractor

        known = {"NodeSetExtractor": NodeSetExtractor}
        if name not in known:
            raise ValueError(
                f"unknown features_extractor_class {name!r}; known: {', '.join(sorted(known))}"
            )
        out["features_extractor_class"] = known[name]
    return out


def sb3_kwargs(hp: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters the SB3 constructor takes, made what it expects.

    Drops train.py's own keys (``TRAINING_KEYS``), turns an extractor named
    in ``policy_kwargs`` into its class and ``lin_<v>`` into a schedule.
    """
    out = {k: v for k, v in hp.items() if k not in TRAINING_KEYS}
    if "policy_kwargs" in out:
        out["policy_kwargs"] = resolve_policy_kwargs(out["policy_kwargs"])
    for key in SCHEDULED_KEYS:
        if key in out:
            out[key] = resolve_schedule(key, out[key])
    return out


def resolve_schedule(key: str, value: Any):
    """A number, or RL Zoo's ``lin_<value>``: decays linearly from ``value`` to 0 over the run.

    Anything else raises ``ValueError`` naming the key. A numeric string
    (YAML reads ``3e-4``, without a dot, as one) counts as the number.
    """
    linear = isinstance(value, str) and value.startswith("lin_")
    raw = value[4:] if linear else value
    try:
        number = -1.0 if isinstance(raw, bool) else float(raw)
    except (TypeError, ValueError):
        number = -1.0
    if linear and number > 0:
        return LinearSchedule(number)
    if not linear and number >= 0:
        return number
    raise ValueError(f"{key}: expected a number >= 0 or 'lin_<number > 0>', got {value!r}")


@dataclass(frozen=True)
class LinearSchedule:
    """``start * progress_remaining`` (SB3 calls it with 1 at the start, 0 at the end)."""

    start: float

    def __call__(self, progress_remaining: float) -> float:
        return self.start * progress_remaining


def resolve_policy(name: str, algo: str, env_kwargs: dict[str, Any]):
    """The ``policy`` hyperparameter made what SB3 takes: a stock name or a class.

    ``MlpPolicy`` becomes ``MultiInputPolicy`` for ``obs_mode: dict``;
    ``NodePointerPolicy`` (per-node action head, dict observations only) is
    the class for PPO / A2C and its maskable twin for MaskablePPO.
    """
    dict_obs = env_kwargs.get("obs_mode") == "dict"
    if name == "NodePointerPolicy":
        if not dict_obs:
            raise ValueError("policy NodePointerPolicy needs obs_mode: dict")
        from .pointer import MaskableNodePointerPolicy, NodePointerPolicy

        return MaskableNodePointerPolicy if algo == "maskable_ppo" else NodePointerPolicy
    if name == "MlpPolicy" and dict_obs:
        return "MultiInputPolicy"
    if name not in ("MlpPolicy", "MultiInputPolicy"):
        raise ValueError(
            f"unknown policy {name!r}; known: MlpPolicy, MultiInputPolicy, NodePointerPolicy"
        )
    return name


def algo_class(algo: str):
    """The SB3 / sb3-contrib class of an ``--algo`` name."""
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    from stable_baselines3 import A2C, PPO

    return {"ppo": PPO, "a2c": A2C}[algo]


def make_vec_env(
    env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any], normalize_reward: bool
):
    """The native batched env (all ``n_envs`` in one simulator, in process) as an SB3 VecEnv."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import VecNormalize

    import roadedge.envs  # noqa: F401
    from roadedge.envs.vector_env import make_sb3_vec_env

    kwargs = {**gym.spec(env_id).kwargs, **env_kwargs}
    venv = make_sb3_vec_env(n_envs, **kwargs)
    venv.seed(seed)
    if normalize_reward:
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True)
    return venv
