"""Running evaluation episodes: one episode, or all of a policy's episodes batched.

Each episode is a pure function of (policy, env id, env kwargs, seed), so episodes
can run in any order, in worker processes (:func:`run_jobs`) or as rows of one
batched simulator (:func:`run_batches`), with identical records. A record is flat:
policy, seed, return, length, the episode metrics of :data:`METRIC_COLUMNS` and the
summed weighted reward terms (``term_<name>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .headroom import MODEL_PREFIX
from .models import ModelPolicy, load_model, model_obs_mode

METRIC_COLUMNS = (
    "tasks_generated",
    "tasks_completed",
    "tasks_missed",
    "tasks_dropped",
    "tasks_active",
    "sessions_started",
    "sessions_ended",
    "sessions_dropped",
    "session_latency_ms",
    "session_hops",
    "migrations_started",
    "migrations_completed",
    "migrations_failed",
    "downtime_s",
    "mean_latency_ms",
    "failovers",
    "mean_recovery_s",
    "invalid_actions",
    "migrations_cancelled",
    "controller_outages",
    "controller_down_s",
    "decisions_ignored",
    "migration_retries",
    "retries_succeeded",
    "retries_exhausted",
)


@dataclass(frozen=True)
class EvalJob:
    """One episode to run: a policy spec on a scenario with a seed."""

    policy: str  # a baseline name, or "model:<path.zip>"
    seed: int
    env_id: str = "RoadEdge-v1"
    env_kwargs: dict[str, Any] = field(default_factory=dict)


def make_env(env_id: str, env_kwargs: dict[str, Any]):
    """``gym.make(env_id, **env_kwargs)``, with the RoadEdge ids registered."""
    import gymnasium as gym

    import roadedge.envs  # noqa: F401  (registers the ids)

    return gym.make(env_id, **env_kwargs)


def _policy_and_env(policy: str, env_kwargs: dict[str, Any], build, seed):
    """Build the env with ``build(kwargs)`` and the policy that acts in it.

    A model (``model:<path>``) fixes the observation mode it was trained with;
    a baseline gets ``seed`` for its own generator (one per row when batched).
    """
    kwargs = dict(env_kwargs)
    if policy.startswith(MODEL_PREFIX):
        import torch

        torch.set_num_threads(1)
        model = load_model(policy[len(MODEL_PREFIX) :])
        kwargs.setdefault("obs_mode", model_obs_mode(model))
        env = build(kwargs)
        return ModelPolicy(model, env), env
    from roadedge.baselines import make_policy

    env = build(kwargs)
    return make_policy(policy, env, seed=seed), env


def run_episode(job: EvalJob) -> dict[str, Any]:
    """Run one episode; returns a flat record (policy, seed, return, length, metrics)."""
    policy, env = _policy_and_env(
        job.policy, job.env_kwargs, lambda kw: make_env(job.env_id, kw), job.seed
    )
    obs, info = env.reset(seed=job.seed)
    total, steps, done = 0.0, 0, False
    terms_sum: dict[str, float] = {}
    while not done:
        action, _ = policy.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        steps += 1
        for k, v in info["reward_terms"].items():
            terms_sum[k] = terms_sum.get(k, 0.0) + v
        done = terminated or truncated
    env.close()
    record: dict[str, Any] = {
        "policy": job.policy,
        "seed": job.seed,
        "return": total,
        "length": steps,
    }
    record.update({k: info["metrics"][k] for k in METRIC_COLUMNS})
    record.update({f"term_{k}": v for k, v in terms_sum.items()})
    return record


@dataclass(frozen=True)
class BatchJob:
    """All episodes of one policy, run as rows of one batched simulator."""

    policy: str
    seeds: tuple[int, ...]
    env_id: str = "RoadEdge-v1"
    env_kwargs: dict[str, Any] = field(default_factory=dict)


def run_batch(job: BatchJob) -> list[dict[str, Any]]:
    """Run ``len(job.seeds)`` episodes at once in a :class:`RoadEdgeVectorEnv`.

    Row ``i`` reproduces the single-env episode with seed ``job.seeds[i]``
    exactly, so the records equal :func:`run_episode`'s, in seed order.
    """
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    import roadedge.envs  # noqa: F401  (registers the ids)
    from roadedge.envs.vector_env import RoadEdgeVectorEnv

    spec = gym.spec(job.env_id)
    K = len(job.seeds)

    def make_vector(kwargs):
        return RoadEdgeVectorEnv(
            K,
            autoreset_mode=AutoresetMode.SAME_STEP,
            max_episode_steps=spec.max_episode_steps,
            **{**spec.kwargs, **kwargs},
        )

    policy, env = _policy_and_env(job.policy, job.env_kwargs, make_vector, list(job.seeds))
    obs, _ = env.reset(seed=list(job.seeds))
    returns, lengths = np.zeros(K), np.zeros(K, dtype=np.int64)
    terms_sum: dict[str, np.ndarray] = {}
    records: list[dict[str, Any] | None] = [None] * K
    done = np.zeros(K, dtype=bool)
    while not done.all():
        action, _ = policy.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, infos = env.step(action)
        live = ~done
        returns[live] += reward[live]
        lengths[live] += 1
        ended = (terminated | truncated) & live
        # rows that just ended were reset: their step's info is in final_info
        info = infos["final_info"] if ended.any() else infos
        for k, v in infos["reward_terms"].items():
            step = np.where(ended, info["reward_terms"][k], v)
            terms_sum[k] = terms_sum.get(k, np.zeros(K)) + np.where(live, step, 0.0)
        for i in np.flatnonzero(ended):
            record: dict[str, Any] = {
                "policy": job.policy,
                "seed": job.seeds[i],
                "return": float(returns[i]),
                "length": int(lengths[i]),
            }
            record.update({k: float(info["metrics"][k][i]) for k in METRIC_COLUMNS})
            record.update({f"term_{k}": float(v[i]) for k, v in terms_sum.items()})
            records[i] = record
        done |= ended
    env.close()
    return [r for r in records if r is not None]


def _run_all(fn, jobs: Sequence, sizes: Sequence[int], workers: int, progress: bool) -> list:
    """``fn(job)`` for every job, in order, serially or in ``workers`` processes; the
    progress bar advances ``sizes[i]`` episodes when job ``i`` finishes."""
    bar = _progress(sum(sizes), progress)
    outputs: list = []
    try:
        if workers <= 1:
            for job, size in zip(jobs, sizes, strict=True):
                outputs.append(fn(job))
                bar.update(size)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for out, size in zip(pool.map(fn, jobs), sizes, strict=True):
                    outputs.append(out)
                    bar.update(size)
    finally:
        bar.close()
    return outputs


def run_batches(jobs: Sequence[BatchJob], workers: int = 1, progress: bool = True) -> list[dict]:
    """Run every batch job (one per policy), in ``workers`` processes if asked."""
    outputs = _run_all(run_batch, jobs, [len(j.seeds) for j in jobs], workers, progress)
    return [record for records in outputs for record in records]


def run_jobs(jobs: Sequence[EvalJob], workers: int = 1, progress: bool = True) -> list[dict]:
    """Run every job, serially or in ``workers`` processes; results in job order."""
    return _run_all(run_episode, jobs, [1] * len(jobs), workers, progress)


def _progress(total: int, enabled: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is in the training extra; run without a bar
        enabled = False
    if not enabled:

        class _Null:
            def update(self, n):
                pass

            def close(self):
                pass

        return _Null()
    return tqdm(total=total, desc="episodes", unit="ep")
