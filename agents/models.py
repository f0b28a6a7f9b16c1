"""Trained SB3 models as policies: loading a model zip, and checking that it fits an env.

A model only works in an env whose observation and action spaces are the ones it was
trained with (same scenario size, same observation mode); a ``NodePointerPolicy``
model, whose weights do not depend on the node count, is rebound to another node
count with the same feature widths (:func:`adapt_node_count`). :func:`check_model_fits`
compares them before any episode runs, so a model trained on another scenario is
reported at once, naming the model and the env, instead of failing inside SB3 after
the baselines have run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .cli import UsageError


class ModelError(UsageError):
    """A model file that is missing, is no SB3 model zip, or does not fit the env
    (a :class:`~.cli.UsageError`: a ``ValueError`` the command lines print as one line)."""


def load_model(path: str):
    """Load an SB3 / sb3-contrib model zip, whichever algorithm saved it.

    Raises :class:`ModelError` naming ``path`` if the file is missing or is no SB3
    model zip (not a zip, no ``data`` entry, or a load that fails)."""
    import zipfile

    if not Path(path).is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read("data").decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise ModelError(f"model {path} is not an SB3 model zip ({_short(exc)})") from None
    policy_class = json.dumps(data.get("policy_class", ""))
    if "sb3_contrib" in policy_class or "Maskable" in policy_class:
        from sb3_contrib import MaskablePPO as cls
    else:
        from stable_baselines3 import A2C, PPO

        # PPO.load also accepts an A2C file (same policy classes), so tell them apart by a
        # field only PPO saves rather than by which load succeeds first.
        cls = PPO if "clip_range" in data else A2C
    try:
        return cls.load(path, device="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure inside SB3 means a bad file
        raise ModelError(f"could not load model {path} as {cls.__name__}: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    """The exception's first line, with its type when the message is empty."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def adapt_node_count(model: Any, env: Any) -> bool:
    """Rebind a ``NodePointerPolicy`` model to an env with another node count.

    No weight of the pointer policy depends on ``N`` (``agents/pointer.py``): the
    per-node encoder, the pair head and the value head on the pooled summary are
    shared by every node. So a model trained on ``city`` (13 nodes) can act on a
    scenario with 9 or 20 nodes if the per-node, global and pair feature widths are
    the same; only the spaces and the layouts the heads unpack by change. Returns
    True if the model was rebound, False if nothing had to change or it cannot be
    (another policy, another feature width); :func:`check_model_fits` then decides.
    """
    from gymnasium import spaces

    from .pointer import NodeEmbeddingExtractor

    env = getattr(env, "unwrapped", env)
    obs_space = getattr(env, "single_observation_space", env.observation_space)  # batched
    act_space = getattr(env, "single_action_space", env.action_space)
    policy = getattr(model, "policy", None)
    extractor = getattr(policy, "features_extractor", None)
    if not isinstance(extractor, NodeEmbeddingExtractor):
        return False
    mine = model.observation_space
    if not isinstance(obs_space, spaces.Dict) or set(obs_space.spaces) != set(mine.spaces):
        return False
    n = int(obs_space["nodes"].shape[0])
    if n == extractor.layout[0]:
        return False
    widths = [(mine[k].shape[-1], obs_space[k].shape[-1]) for k in ("nodes", "globals", "pairs")]
    if any(a != b for a, b in widths) or not isinstance(act_space, spaces.MultiDiscrete):
        return False
    from stable_baselines3.common.distributions import make_proba_distribution

    _, e, p, q = extractor.layout
    layout = (n, e, p, q)
    extractor.layout = layout
    extractor._features_dim = n * e + p + n * n * (1 + q)
    policy.action_net.layout = layout
    policy.value_net[0].layout = layout
    for holder in (model, policy):
        holder.observation_space, holder.action_space = obs_space, act_space
    if "Maskable" in type(policy).__name__:
        from sb3_contrib.common.maskable.distributions import make_masked_proba_distribution

        policy.action_dist = make_masked_proba_distribution(act_space)
    else:
        policy.action_dist = make_proba_distribution(act_space)
    return True


class ModelPolicy:
    """Wraps a trained SB3 model; passes action masks to MaskablePPO. A pointer-policy
    model meets an env with another node count rebound (:func:`adapt_node_count`)."""

    def __init__(self, model: Any, env: Any):
        adapt_node_count(model, env)
        self.model = model
        self.env = env.unwrapped
        self.masked = type(model).__name__ == "MaskablePPO"

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        if self.masked:
            return self.model.predict(
                obs,
                state=state,
                episode_start=episode_start,
                deterministic=deterministic,
                action_masks=self.env.action_masks(),
            )
        return self.model.predict(
            obs, state=state, episode_start=episode_start, deterministic=deterministic
        )


def model_obs_mode(model: Any) -> str:
    """The observation mode the model was trained with: ``dict`` or ``flat``."""
    from gymnasium import spaces

    return "dict" if isinstance(model.observation_space, spaces.Dict) else "flat"


def space_summary(space: Any) -> str:
    """A short text of what must match: Box shapes, Dict keys' shapes, MultiDiscrete
    sizes, Discrete n (bounds are left out: they do not decide whether a model runs)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return "{" + ", ".join(f"{k}: {space_summary(v)}" for k, v in space.spaces.items()) + "}"
    if isinstance(space, spaces.Box):
        return f"Box{tuple(space.shape)}"
    if isinstance(space, spaces.MultiDiscrete):
        nvec = space.nvec.reshape(-1)
        if nvec.size and (nvec == nvec[0]).all():
            return f"MultiDiscrete({nvec.size} x {int(nvec[0])})"
        return f"MultiDiscrete({nvec.tolist()})"
    if isinstance(space, spaces.Discrete):
        return f"Discrete({int(space.n)})"
    return repr(space)


def check_model_fits(model: Any, env: Any, path: str, where: str) -> None:
    """Raise :class:`ModelError` unless ``model`` (loaded from ``path``) has the
    observation and action spaces of the single env ``env``; ``where`` names the env
    (id and scenario) in the message. A pointer-policy model is first rebound to the
    env's node count where it can be (:func:`adapt_node_count`)."""
    adapt_node_count(model, env)
    for kind, mine, theirs in (
        ("observation", model.observation_space, env.observation_space),
        ("action", model.action_space, env.action_space),
    ):
        trained, here = space_summary(mine), space_summary(theirs)
        if trained != here:
            raise ModelError(
                f"model {path} does not fit {where}: it was trained with {kind} space "
                f"{_clip(trained)}, the env has {_clip(here)} (a model runs only on the "
                "scenario size and obs mode it was trained on; a NodePointerPolicy model also on "
                "other node counts with the same feature widths)"
            )


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
