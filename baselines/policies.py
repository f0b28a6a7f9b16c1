"""Rule-based policies with Stable-Baselines3's ``predict`` interface.

A policy is built from an environment (``make_policy(name, env)``) because
rule-based controllers read the controller's view (heartbeats, the
scheduler's ledger) through ``env.unwrapped.controller_view()`` and the
action mask, never the hidden truth. ``predict(obs, state, episode_start,
deterministic)`` returns ``(action, state)`` exactly like an SB3 model, so
one evaluation harness runs rules and trained agents alike.

Names: a migration rule (``noop``, ``random``, ``follow``, ``greedy``,
``threshold``), a failover rule (``failover``, ``backup``), or one of each
joined by ``+`` (``threshold+failover``). A migration rule acts on nodes the
controller believes up (``random`` excepted: it picks uniformly among every
node's valid choices, failovers included); a failover rule on nodes it
believes down.

A privileged policy (``oracle``, :data:`PRIVILEGED_POLICIES`) reads the hidden
future: it measures the headroom, it is no baseline, and ``policy_names()``
(``--policies all``) leaves it out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import rules

MIGRATION_RULES = ("noop", "random", "follow", "greedy", "threshold")
FAILOVER_RULES = ("failover", "backup")
COMBINATIONS = (
    "threshold+failover",
    "threshold+backup",
    "greedy+failover",
    "greedy+backup",
    "follow+failover",
)
PRIVILEGED_POLICIES = ("oracle",)


def is_privileged(name: str) -> bool:
    """True for a privileged evaluation policy (reads the hidden future; not a rule)."""
    return name in PRIVILEGED_POLICIES


def policy_names() -> list[str]:
    """All policy names ``make_policy`` accepts (``--policies all``)."""
    return list(MIGRATION_RULES + FAILOVER_RULES + COMBINATIONS)


class RulePolicy:
    """A rule-based controller bound to one environment (or a batched simulator).

    Args:
        env: a RoadEdge env (possibly wrapped); the policy reads its
            ``controller_view()`` and ``action_masks()``.
        migration: name of the migration rule, or None.
        failover: name of the failover rule, or None.
        seed: seed of the policy's own generator (``random`` only); for a
            batched env, one seed per row gives each row the generator a
            single env with that seed would have.
    """

    def __init__(
        self, env: Any, migration: str | None, failover: str | None, seed: int | list[int] = 0
    ):
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        self.cfg = self.env.cfg
        self.migration = migration
        self.failover = failover
        self.name = "+".join(n for n in (migration, failover) if n) or "noop"
        self.rng: np.random.Generator | list[np.random.Generator] = (
            [np.random.default_rng(s) for s in seed]
            if isinstance(seed, (list, tuple))
            else np.random.default_rng(seed)
        )
        self.backups = rules.BackupTable(self.cfg.faults.backup_count)

    def decide(self, view, mask: np.ndarray) -> np.ndarray:
        """Actions (B, N) from a controller view and the (B, N, N + 1) mask."""
        B, N = view.up.shape
        action = np.zeros((B, N), dtype=np.int64)
        if self.failover == "backup" or self.migration is None:
            table = self.backups.update(view) if self.failover == "backup" else None
        if self.migration == "random":
            action = rules.random_rule(view, mask, self.cfg, self.rng)
        elif self.migration in ("follow", "greedy", "threshold"):
            rule: Callable = getattr(rules, f"{self.migration}_rule")
            action = rule(view, mask, self.cfg)
        if self.failover == "failover":
            fo = rules.failover_rule(view, mask, self.cfg)
            action = np.where(view.up, action, fo)
        elif self.failover == "backup":
            fo = rules.backup_rule(view, mask, self.cfg, table)
            action = np.where(view.up, action, fo)
        return action

    def predict(
        self,
        observation: Any = None,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ):
        """SB3-style: ``(action, state)``; the action has shape (N,) for a single env."""
        view = self.env.controller_view()
        mask = self.env.sim.action_mask()
        action = self.decide(view, mask)
        batched = _is_batched(observation, self.env)
        return (action if batched else action[0]), state

    def reset(self) -> None:
        self.backups = rules.BackupTable(self.cfg.faults.backup_count)


def _is_batched(observation: Any, env: Any) -> bool:
    if observation is None:
        return False
    space = getattr(env, "single_observation_space", env.observation_space)
    if isinstance(observation, dict):
        key = next(iter(observation))
        return np.ndim(observation[key]) == len(space[key].shape) + 1
    return np.ndim(observation) == len(space.shape) + 1


def parse_name(name: str) -> tuple[str | None, str | None]:
    """Split a policy name into (migration rule, failover rule); ValueError if unknown.

    A privileged policy (``oracle``) is a known name with no rule: ``(None, None)``.
    """
    if is_privileged(name):
        return None, None
    migration = failover = None
    for part in name.split("+"):
        if part in MIGRATION_RULES and migration is None:
            migration = part
        elif part in FAILOVER_RULES and failover is None:
            failover = part
        else:
            raise ValueError(
                f"unknown policy {name!r}: use a migration rule {MIGRATION_RULES}, a failover "
                f"rule {FAILOVER_RULES}, or one of each joined by '+' (e.g. threshold+failover); "
                f"privileged: {', '.join(PRIVILEGED_POLICIES)}"
            )
    return (None if migration == "noop" else migration), failover


def make_policy(name: str, env: Any, seed: int | list[int] = 0):
    """Build a named baseline (or the privileged ``oracle``) for ``env``; raises
    ValueError listing the names."""
    if name == "oracle":
        from .oracle import OraclePolicy

        return OraclePolicy(env, seed)
    migration, failover = parse_name(name)
    return RulePolicy(env, migration, failover, seed=seed)
