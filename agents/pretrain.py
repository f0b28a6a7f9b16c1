"""Behaviour cloning of a rule before RL: the agent starts where the best rule is.

A policy trained from scratch on RoadEdge pays a migration's cost at once and
sees its benefit (a shorter access-to-host path) only over the following
minutes, spread over many ticks and mixed with every other node's choices.
From random or do-nothing behaviour PPO did not find that credit in 300k
steps (README, Training). So, as in kickstarting and DQfD, the policy first
imitates a rule that already migrates well (``greedy+failover`` on ``city``),
and RL then improves on it instead of rediscovering it:

1. **Collect** ``steps`` env steps of the rule in the training env itself
   (the rule reads the controller's view and the action mask, as in
   ``roadedge-eval``; training seeds only, never an evaluation seed).
2. **Fit** the policy by maximum likelihood of the rule's choices (masked
   like in training) and the value head to the discounted returns of those
   episodes, in the reward scale the training env's ``VecNormalize`` uses, so
   PPO's first advantages are not those of an untrained critic. Returns are
   Monte Carlo within the collected stretch; samples closer than
   ``value_margin`` steps to an episode end or to the end of the stretch are
   left out of the value loss (an episode is truncated, not over, so its
   true value does not drop to zero there).

``train.py`` runs it when the hyperparameters have a ``pretrain`` entry
(``agents/hyperparams/maskable_ppo.yml``); its steps are not counted in the
model's ``num_timesteps`` but its wall time is in ``timing.json``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Pretrain:
    """The ``pretrain`` hyperparameter entry (every key optional)."""

    policy: str = "greedy+failover"  # the rule to imitate (a roadedge-eval policy name)
    steps: int = 24_000  # env steps of the rule (all envs together)
    epochs: int = 8  # passes over the collected data
    batch_size: int = 256
    learning_rate: float = 1e-3
    value_margin: int = 150  # ticks before an episode/stretch end left out of the value loss

    @classmethod
    def from_hp(cls, spec: Any) -> Pretrain | None:
        """``None`` for no entry (or ``false``); else the validated entry. ``ValueError``
        names an unknown key or a bad value."""
        if spec is None or spec is False:
            return None
        if spec is True:
            return cls()
        if not isinstance(spec, dict):
            raise ValueError(f"pretrain must be a mapping of {_keys()}, got {spec!r}")
        unknown = sorted(set(spec) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"pretrain: unknown key(s) {unknown}; known: {_keys()}")
        out = cls(**spec)
        from roadedge.baselines.policies import is_privileged, parse_name

        if not isinstance(out.policy, str) or is_privileged(out.policy):
            raise ValueError(f"pretrain.policy must be a rule name, got {out.policy!r}")
        parse_name(out.policy)  # ValueError naming the known rules
        for key in ("steps", "epochs", "batch_size"):
            value = getattr(out, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"pretrain.{key} must be a positive integer, got {value!r}")
        if not isinstance(out.value_margin, int) or out.value_margin < 0:
            raise ValueError(f"pretrain.value_margin must be >= 0, got {out.value_margin!r}")
        lr = out.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 1:
            raise ValueError(f"pretrain.learning_rate must be in (0, 1], got {lr!r}")
        return out


def _keys() -> list[str]:
    return [f.name for f in dataclasses.fields(Pretrain)]


def roadedge_vector_env(venv):
    """The :class:`RoadEdgeVectorEnv` under SB3 wrappers (``VecNormalize``, the adapter)."""
    env = venv
    while not hasattr(env, "controller_view"):
        if not hasattr(env, "venv"):
            raise ValueError(f"{type(venv).__name__} does not wrap a RoadEdgeVectorEnv")
        env = env.venv
    return env


@dataclass
class Demonstrations:
    """The rule's rollout: ``obs`` (dict or array, leading axes (T, B)), ``actions``
    (T, B, N), ``masks`` (T, B, N * (N + 1)), raw ``rewards`` and ``dones`` (T, B)."""

    obs: Any
    actions: np.ndarray
    masks: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray


def collect(venv, policy_name: str, steps: int, seed: int = 0) -> Demonstrations:
    """Run the rule ``policy_name`` for ``ceil(steps / n_envs)`` ticks of ``venv`` (an SB3
    VecEnv over RoadEdge, possibly normalised; its reward statistics are updated)."""
    from roadedge.baselines.policies import make_policy

    env = roadedge_vector_env(venv)
    rule = make_policy(policy_name, env, seed=[seed + i for i in range(venv.num_envs)])
    ticks = -(-steps // venv.num_envs)
    obs = venv.reset()
    obs_list, actions, masks, rewards, dones = [], [], [], [], []
    for _ in range(ticks):
        mask = env.sim.action_mask()  # (B, N, N + 1): the rule's input, kept flat
        action = rule.decide(env.controller_view(), mask)
        obs_list.append(obs)
        actions.append(action)
        masks.append(mask.reshape(venv.num_envs, -1))
        obs, reward, done, _ = venv.step(action)
        if hasattr(venv, "get_original_reward"):  # VecNormalize: the unscaled reward
            reward = venv.get_original_reward()
        rewards.append(np.asarray(reward, dtype=np.float64))
        dones.append(done)
    if isinstance(obs_list[0], dict):
        stacked = {k: np.stack([o[k] for o in obs_list]) for k in obs_list[0]}
    else:
        stacked = np.stack(obs_list)
    return Demonstrations(
        stacked, np.stack(actions), np.stack(masks), np.stack(rewards), np.stack(dones)
    )


def discounted_returns(
    rewards: np.ndarray, dones: np.ndarray, gamma: float, margin: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per (t, b): the discounted sum of rewards from t to the end of t's episode within
    the stretch, and whether at least ``margin`` ticks follow t before that end (the
    samples whose return is close to the infinite-horizon value)."""
    T, B = rewards.shape
    returns = np.zeros((T, B))
    left = np.zeros((T, B), dtype=np.int64)  # ticks until the episode/stretch end
    acc = np.zeros(B)
    count = np.zeros(B, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        acc = np.where(dones[t], 0.0, acc)
        count = np.where(dones[t], 0, count)
        acc = rewards[t] + gamma * acc
        count = count + 1
        returns[t] = acc
        left[t] = count
    return returns, left >= margin


def _maskable(policy) -> bool:
    """Whether the policy takes action masks (sb3-contrib's maskable policies)."""
    return "action_masks" in policy.evaluate_actions.__code__.co_varnames


def clone(model, demos: Demonstrations, spec: Pretrain, scale_rewards=None) -> dict[str, float]:
    """Fit ``model``'s policy to the demonstrations (cross-entropy of the rule's choices)
    and its value head to the discounted returns of ``scale_rewards(rewards)`` (the
    training env's ``VecNormalize.normalize_reward``, so the head learns PPO's scale;
    None: the raw rewards). Returns the last epoch's mean policy loss, value loss and
    agreement (share of node choices the policy's most likely action gets right)."""
    import torch

    policy = model.policy
    T, B = demos.rewards.shape
    gamma = float(model.gamma)
    rewards = demos.rewards if scale_rewards is None else scale_rewards(demos.rewards)
    returns, use_value = discounted_returns(rewards, demos.dones, gamma, spec.value_margin)

    def flat(x):
        return x.reshape(T * B, *x.shape[2:])

    obs = (
        {k: flat(v) for k, v in demos.obs.items()}
        if isinstance(demos.obs, dict)
        else flat(demos.obs)
    )
    actions = torch.as_tensor(flat(demos.actions))
    masks = flat(demos.masks)
    targets = torch.as_tensor(flat(returns), dtype=torch.float32)
    weights = torch.as_tensor(flat(use_value), dtype=torch.float32)
    maskable = _maskable(policy)
    optimizer = torch.optim.Adam(policy.parameters(), lr=spec.learning_rate)
    rng = np.random.default_rng(0)
    n = T * B
    stats: dict[str, float] = {}
    policy.set_training_mode(True)
    for _ in range(spec.epochs):
        order = rng.permutation(n)
        sums = np.zeros(2)
        for start in range(0, n, spec.batch_size):
            idx = order[start : start + spec.batch_size]
            obs_t, _ = policy.obs_to_tensor(
                {k: v[idx] for k, v in obs.items()} if isinstance(obs, dict) else obs[idx]
            )
            kwargs = {"action_masks": masks[idx]} if maskable else {}
            values, log_prob, _ = policy.evaluate_actions(obs_t, actions[idx], **kwargs)
            w = weights[idx]
            value_loss = ((values.flatten() - targets[idx]) ** 2 * w).sum() / w.sum().clamp(min=1)
            policy_loss = -log_prob.mean()
            loss = policy_loss + model.vf_coef * value_loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), model.max_grad_norm)
            optimizer.step()
            sums += [policy_loss.item() * idx.size, value_loss.item() * idx.size]
        stats = {"policy_loss": sums[0] / n, "value_loss": sums[1] / n}
    policy.set_training_mode(False)
    stats["agreement"] = agreement(model, obs, masks, flat(demos.actions))
    return stats


def agreement(model, obs, masks: np.ndarray, actions: np.ndarray, chunk: int = 1024) -> float:
    """Share of node choices where the policy's most likely (masked) action is the rule's."""
    import torch

    maskable = _maskable(model.policy)
    hits = 0
    n = actions.shape[0]
    with torch.no_grad():
        for start in range(0, n, chunk):
            sl = slice(start, start + chunk)
            batch = {k: v[sl] for k, v in obs.items()} if isinstance(obs, dict) else obs[sl]
            kwargs = {"action_masks": masks[sl]} if maskable else {}
            pred, _ = model.predict(batch, deterministic=True, **kwargs)
            hits += int((pred == actions[sl]).sum())
    return hits / actions.size


def pretrain(model, venv, spec: Pretrain, seed: int, log=print) -> dict[str, float]:
    """Collect the rule's demonstrations in ``venv`` and clone them into ``model``; the
    statistics (with ``wall_s``) are returned and printed by ``log``."""
    start = time.perf_counter()
    log(f"pretraining: imitating {spec.policy} for {spec.steps} steps ...")
    demos = collect(venv, spec.policy, spec.steps, seed)
    collected = time.perf_counter() - start
    stats = clone(model, demos, spec, getattr(venv, "normalize_reward", None))
    stats["rule_return"] = float(demos.rewards.sum() / max(demos.dones.sum(), 1))
    stats["wall_s"] = time.perf_counter() - start
    log(
        f"pretraining: {spec.policy} imitated in {stats['wall_s']:.0f} s "
        f"(rollouts {collected:.0f} s): agreement {stats['agreement']:.1%} of node choices, "
        f"policy loss {stats['policy_loss']:.3f}, value loss {stats['value_loss']:.3f}"
    )
    return stats
