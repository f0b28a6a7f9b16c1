"""RoadEdge environments.

Importing this package registers, idempotently:

* ``RoadEdge-v1``: the default ``city`` scenario;
* ``RoadEdge-<preset>-v1`` for every preset in ``envs/scenarios`` (``small``,
  ``city``, ``failures``, ...).

So ``gymnasium.make("roadedge.envs:RoadEdge-v1")`` works from any code.
"""

from __future__ import annotations

import gymnasium as gym

from .migration_env import RoadEdgeEnv
from .sim.config import ConfigError, ScenarioConfig, load_scenario, preset_names

ENTRY_POINT = "roadedge.envs.migration_env:RoadEdgeEnv"
VECTOR_ENTRY_POINT = "roadedge.envs.vector_env:RoadEdgeVectorEnv"


def env_ids() -> list[str]:
    """Every registered RoadEdge id."""
    return ["RoadEdge-v1"] + [f"RoadEdge-{name}-v1" for name in preset_names()]


def register_envs() -> None:
    """Register the RoadEdge ids with Gymnasium (safe to call more than once)."""
    for env_id in env_ids():
        if env_id in gym.registry:
            continue
        preset = "city" if env_id == "RoadEdge-v1" else env_id[len("RoadEdge-") : -len("-v1")]
        gym.register(
            id=env_id,
            entry_point=ENTRY_POINT,
            vector_entry_point=VECTOR_ENTRY_POINT,
            kwargs={"scenario": preset},
            max_episode_steps=load_scenario(preset).horizon,
        )


register_envs()

__all__ = [
    "RoadEdgeEnv",
    "ConfigError",
    "ScenarioConfig",
    "env_ids",
    "load_scenario",
    "preset_names",
    "register_envs",
]
