"""One evaluation harness for every policy: rule-based baselines and trained SB3 models.

Every policy runs the same episodes (seeds ``seed, seed + 1, ...``), so the
comparison is paired. Per episode it records the return and the episode
metrics; per policy it reports the mean return with a 95 % bootstrap CI, the
IQM, completion / miss / drop rates, migrations, downtime, latency and
failovers. Episodes can run in worker processes (``workers > 1``), or all
episodes of a policy as rows of one batched simulator (``batched=True``,
``--batched``: the native vector env, several times faster), with results
identical to the serial run either way (each episode is a pure function of
policy, scenario and seed).

Each row also gives the paired difference to the best rule and, with the
privileged ``oracle`` evaluated (``--policies all,oracle``), the share of the
oracle's headroom over ``failover`` the policy closes; the gaps are printed under
the table and saved in ``summary.json`` (see :mod:`roadedge.agents.headroom`).

Command line: ``roadedge-eval --scenario city --policies all --episodes 20 --seed 0``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .headroom import (
    MODEL_PREFIX,
    format_headroom,
    headroom_fields,
    headroom_summary,
    policy_order,
    privileged_label,
)
from .stats import bootstrap_ci, iqm, paired_delta

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


def _make_env(env_id: str, env_kwargs: dict[str, Any]):
    import gymnasium as gym

    import roadedge.envs  # noqa: F401  (registers the ids)

    return gym.make(env_id, **env_kwargs)


def load_model(path: str):
    """Load an SB3 / sb3-contrib model zip, whichever algorithm saved it."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        data = json.loads(zf.read("data").decode("utf-8"))
    policy_class = json.dumps(data.get("policy_class", ""))
    if "sb3_contrib" in policy_class or "Maskable" in policy_class:
        from sb3_contrib import MaskablePPO

        return MaskablePPO.load(path, device="cpu")
    from stable_baselines3 import A2C, PPO

    # PPO.load also accepts an A2C file (same policy classes), so tell them apart by a
    # field only PPO saves rather than by which load succeeds first.
    cls = PPO if "clip_range" in data else A2C
    try:
        return cls.load(path, device="cpu")
    except Exception as exc:
        raise ValueError(f"could not load model {path} as {cls.__name__}: {exc}") from exc


class ModelPolicy:
    """Wraps a trained SB3 model; passes action masks to MaskablePPO."""

    def __init__(self, model: Any, env: Any):
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


def _model_obs_mode(model: Any) -> str:
    from gymnasium import spaces

    return "dict" if isinstance(model.observation_space, spaces.Dict) else "flat"


def _policy_and_env(policy: str, env_kwargs: dict[str, Any], make_env, seed):
    """Build the env with ``make_env(kwargs)`` and the policy that acts in it.

    A model (``model:<path>``) fixes the observation mode it was trained with;
    a baseline gets ``seed`` for its own generator (one per row when batched).
    """
    kwargs = dict(env_kwargs)
    if policy.startswith(MODEL_PREFIX):
        import torch

        torch.set_num_threads(1)
        model = load_model(policy[len(MODEL_PREFIX) :])
        kwargs.setdefault("obs_mode", _model_obs_mode(model))
        env = make_env(kwargs)
        return ModelPolicy(model, env), env
    from roadedge.baselines import make_policy

    env = make_env(kwargs)
    return make_policy(policy, env, seed=seed), env


def run_episode(job: EvalJob) -> dict[str, Any]:
    """Run one episode; returns a flat record (policy, seed, return, length, metrics)."""
    policy, env = _policy_and_env(
        job.policy, job.env_kwargs, lambda kw: _make_env(job.env_id, kw), job.seed
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

    def make_env(kwargs):
        return RoadEdgeVectorEnv(
            K,
            autoreset_mode=AutoresetMode.SAME_STEP,
            max_episode_steps=spec.max_episode_steps,
            **{**spec.kwargs, **kwargs},
        )

    policy, env = _policy_and_env(job.policy, job.env_kwargs, make_env, list(job.seeds))
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


def summarize(records: list[dict], reference: str | None = "noop") -> list[dict[str, Any]]:
    """Per-policy summary rows, in first-appearance order.

    With ``reference`` among the policies, each row also has the paired
    return difference to it (``delta_*``, see :func:`paired_delta`). Every row
    has ``privileged``, the ``best_rule`` and the paired difference to it
    (``delta_best_mean/low/high``), and its ``headroom_share`` of the oracle's
    headroom over ``headroom_ref`` (see :mod:`roadedge.agents.headroom`).
    """
    order = policy_order(records)
    if reference not in order:
        reference = None
    rows = []
    for name in order:
        rs = [r for r in records if r["policy"] == name]
        ret = np.array([r["return"] for r in rs])
        lo, hi = bootstrap_ci(ret)
        gen = np.array([max(r["tasks_generated"], 1.0) for r in rs])

        def rate(key, rs=rs, gen=gen):
            return float(np.mean(np.array([r[key] for r in rs]) / gen))

        def mean(key, rs=rs):
            return float(np.mean([r[key] for r in rs]))

        rows.append(
            {
                "policy": display_name(name),
                "episodes": len(rs),
                "return_mean": float(ret.mean()),
                "return_ci_low": lo,
                "return_ci_high": hi,
                "return_iqm": iqm(ret),
                "completed_rate": rate("tasks_completed"),
                "missed_rate": rate("tasks_missed"),
                "dropped_rate": rate("tasks_dropped"),
                "tasks_dropped": mean("tasks_dropped"),
                "migrations": mean("migrations_started"),
                "migration_success": float(
                    np.sum([r["migrations_completed"] for r in rs])
                    / max(np.sum([r["migrations_started"] for r in rs]), 1)
                ),
                "downtime_s": mean("downtime_s"),
                "mean_latency_ms": mean("mean_latency_ms"),
                "failovers": mean("failovers"),
                "mean_recovery_s": mean("mean_recovery_s"),
            }
        )
        if reference is not None:
            d, d_lo, d_hi = paired_delta(records, name, reference)
            rows[-1].update(
                {
                    "paired_vs": reference,
                    "delta_mean": d,
                    "delta_ci_low": d_lo,
                    "delta_ci_high": d_hi,
                }
            )
        rows[-1].update(headroom_fields(records, name))
    return rows


def display_name(policy: str) -> str:
    if policy.startswith(MODEL_PREFIX):
        return "agent:" + Path(policy[len(MODEL_PREFIX) :]).stem
    return policy


def format_table(
    rows: list[dict[str, Any]], title: str = "", headroom: dict[str, Any] | None = None
) -> str:
    """A plain-text table (also valid Markdown); with ``headroom`` (a
    :func:`headroom_summary`), one line per available gap under it."""
    paired = next((r["paired_vs"] for r in rows if "paired_vs" in r), None)
    best = next((r["best_rule"] for r in rows if r.get("best_rule")), None)
    if len(rows) < 2:
        best = None  # the best rule's column would be its own zeros
    shares = any(r.get("headroom_share") is not None for r in rows)
    header = [
        "policy",
        "return (95% CI)",
        *([f"vs {paired}, paired (95% CI)"] if paired else []),
        *([f"vs best rule ({best}), paired (95% CI)"] if best else []),
        *(["headroom %"] if shares else []),
        "IQM",
        "done %",
        "missed %",
        "dropped %",
        "migr.",
        "downtime s",
        "latency ms",
        "failovers",
    ]
    lines = [
        f"{title}\n" if title else "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for r in rows:
        cells = [
            privileged_label(r["policy"]) if r.get("privileged") else r["policy"],
            f"{r['return_mean']:.1f} [{r['return_ci_low']:.1f}, {r['return_ci_high']:.1f}]",
            *(
                [f"{r['delta_mean']:+.1f} [{r['delta_ci_low']:+.1f}, {r['delta_ci_high']:+.1f}]"]
                if paired
                else []
            ),
            *([_delta_best_cell(r)] if best else []),
            *([_share_cell(r.get("headroom_share"))] if shares else []),
            f"{r['return_iqm']:.1f}",
            f"{100 * r['completed_rate']:.1f}",
            f"{100 * r['missed_rate']:.1f}",
            f"{100 * r['dropped_rate']:.2f}",
            f"{r['migrations']:.0f}",
            f"{r['downtime_s']:.1f}",
            f"{r['mean_latency_ms']:.1f}",
            f"{r['failovers']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    note = format_headroom(headroom) if headroom else ""
    if note:
        lines += ["\n" + note]
    return "\n".join(line for line in lines if line != "")


def _delta_best_cell(row: dict[str, Any]) -> str:
    if row.get("delta_best_mean") is None:
        return "—"
    return (
        f"{row['delta_best_mean']:+.1f} "
        f"[{row['delta_best_low']:+.1f}, {row['delta_best_high']:+.1f}]"
    )


def _share_cell(share: float | None) -> str:
    return "—" if share is None or not np.isfinite(share) else f"{100 * share:.1f}"


def write_results(
    records: list[dict], rows: list[dict], out_dir: Path, meta: dict[str, Any]
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "episodes.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0].keys()))
        writer.writeheader()
        writer.writerows(records)
    json_path = out_dir / "summary.json"
    with open(json_path, "w", encoding="utf-8") as fh:
        summary = {"meta": meta, "policies": rows, "headroom": headroom_summary(records)}
        json.dump(summary, fh, indent=2)
    return csv_path, json_path


def write_plot(records: list[dict], path: Path, title: str) -> Path | None:
    """The comparison figure, or None (with a note) when matplotlib is missing."""
    try:
        from .plots import plot_comparison
    except ImportError:
        print("(install matplotlib, the 'viz' extra, for the comparison plot)")
        return None
    try:
        return plot_comparison(records, path, title=title, label=display_name)
    except ImportError:
        print("(install matplotlib, the 'viz' extra, for the comparison plot)")
        return None


def evaluate(
    policies: Sequence[str],
    env_id: str = "RoadEdge-v1",
    episodes: int = 20,
    seed: int = 0,
    workers: int = 1,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
    batched: bool = False,
) -> tuple[list[dict], list[dict]]:
    """Run ``policies`` on the same ``episodes`` seeds. Returns (records, summary rows).

    ``batched`` runs each policy's episodes as rows of one simulator (same
    records, faster); ``workers`` processes then share the policies.
    """
    env_kwargs = dict(env_kwargs or {})
    _make_env(env_id, env_kwargs).close()  # fail fast on a bad id or config
    if batched:
        seeds = tuple(seed + i for i in range(episodes))
        batches = [BatchJob(p, seeds, env_id, env_kwargs) for p in policies]
        records = run_batches(batches, workers=workers, progress=progress)
        return records, summarize(records)
    jobs = [EvalJob(p, seed + i, env_id, env_kwargs) for p in policies for i in range(episodes)]
    records = run_jobs(jobs, workers=workers, progress=progress)
    return records, summarize(records)


def resolve_policies(spec: str, models: Sequence[str] = ()) -> list[str]:
    """Policy names from a comma list; ``all`` (alone or as an item, e.g. ``all,oracle``)
    stands for every rule. Duplicates are dropped; each model adds ``model:<path>``."""
    from roadedge.baselines import policy_names

    names: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        expanded = policy_names() if item == "all" else [item]
        names += [name for name in expanded if name and name not in names]
    for name in names:  # validate early with a clear error
        _check_policy_name(name)
    for m in models:
        if not Path(m).is_file():
            raise SystemExit(f"model file not found: {m}")
    if not names and not models:
        raise SystemExit("no policy to evaluate: give --policies or --model")
    return names + [MODEL_PREFIX + m for m in models]


def _check_policy_name(name: str) -> None:
    """Exit with the baselines' own message if ``name`` is not a valid policy."""
    from roadedge.baselines.policies import parse_name

    try:
        parse_name(name)
    except ValueError as exc:
        raise SystemExit(f"{exc}; see --list") from None


def parse_pairs(items: Sequence[str], flag: str) -> dict[str, Any]:
    """``key=value`` command-line pairs (values parsed as YAML: numbers, bools, dicts);
    ``flag`` names the option in the error. Shared by roadedge-eval and train.py."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"{flag} expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roadedge-eval", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--scenario",
        default=None,
        help="preset name or YAML path (default: the env id's own scenario)",
    )
    p.add_argument("--env-id", default="RoadEdge-v1")
    p.add_argument(
        "--policies",
        default="all",
        help="comma-separated names; 'all' is every rule (e.g. all,oracle)",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="a trained SB3 model .zip to evaluate too (repeatable)",
    )
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0, help="first episode seed")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument(
        "--batched",
        action="store_true",
        help="run each policy's episodes as one batched simulator (same results, faster)",
    )
    p.add_argument(
        "--env-kwargs",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="env/config overrides, e.g. horizon=100 faults__mttr_s=30",
    )
    p.add_argument("--out", default=None, help="output folder (default results/eval-...)")
    p.add_argument("--list", action="store_true", help="list the policy names and exit")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from roadedge.baselines import policy_names
    from roadedge.baselines.policies import PRIVILEGED_POLICIES

    if args.list:
        print("\n".join(policy_names()))
        for name in PRIVILEGED_POLICIES:
            print(f"{name} (privileged: reads the hidden future)")
        return 0
    if args.episodes < 1:
        raise SystemExit("--episodes must be at least 1")
    if args.workers < 1:
        raise SystemExit("--workers must be at least 1")
    env_kwargs = parse_pairs(args.env_kwargs, "--env-kwargs")
    if args.scenario:
        env_kwargs["scenario"] = args.scenario
    policies = resolve_policies(args.policies, args.model)
    import gymnasium as gym

    try:  # a bad id, scenario or override: one line before any episode runs
        _make_env(args.env_id, env_kwargs).close()
    except (ValueError, gym.error.Error) as exc:
        raise SystemExit(f"roadedge-eval: {exc}") from None
    start = time.perf_counter()
    records, rows = evaluate(
        policies,
        args.env_id,
        args.episodes,
        args.seed,
        args.workers,
        env_kwargs,
        progress=not args.no_progress,
        batched=args.batched,
    )
    elapsed = time.perf_counter() - start
    scen = env_kwargs.get("scenario", args.env_id)
    out = Path(args.out) if args.out else Path("results") / f"eval-{Path(str(scen)).stem}"
    meta = {
        "env_id": args.env_id,
        "env_kwargs": env_kwargs,
        "episodes": args.episodes,
        "seed": args.seed,
        "workers": args.workers,
        "batched": args.batched,
        "wall_time_s": elapsed,
    }
    csv_path, json_path = write_results(records, rows, out, meta)
    title = (
        f"{args.env_id} {env_kwargs or ''}: {args.episodes} episodes, seeds "
        f"{args.seed}..{args.seed + args.episodes - 1}"
    )
    print(format_table(rows, title, headroom_summary(records)))
    plot = write_plot(records, out / "comparison.png", title)
    print(f"\nwrote {csv_path}, {json_path}{', ' + str(plot) if plot else ''} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
