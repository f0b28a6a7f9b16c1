"""Train an SB3 agent on a RoadEdge scenario and compare it with every baseline.

``python train.py --algo maskable_ppo --env RoadEdge-v1 --seed 0`` (the defaults)

A run writes ``runs/<env>__<algo>__<seed>__<time>/`` with:

* ``config.yml``: the resolved arguments and hyperparameters (for ``--resume``);
* ``tb/``: TensorBoard logs, including every reward term and ``info["metrics"]``;
* ``checkpoints/``: periodic checkpoints, and one more on Ctrl-C;
* ``best_model.zip``: the best model by periodic evaluation; ``final_model.zip``;
* ``eval/``: the final comparison with the baselines (``episodes.csv``,
  ``summary.json``, ``table.md``), also printed.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .evaluate import parse_pairs

ALGOS = ("ppo", "a2c", "maskable_ppo")
HYPERPARAM_DIR = Path(__file__).resolve().parent / "hyperparams"
TRAINING_KEYS = (
    "n_timesteps",
    "n_envs",
    "policy",
    "obs_mode",
    "normalize_reward",
    "noop_logit_bias",
)
DEFAULT_BASELINES = (
    "noop",
    "threshold",
    "failover",
    "backup",
    "threshold+failover",
    "greedy+failover",
    "greedy+backup",
)
EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes use seeds no training env ever got


@dataclass
class Args:
    """Command-line arguments of ``train.py`` (typed, CleanRL style)."""

    algo: str = "maskable_ppo"
    env: str = "RoadEdge-v1"
    scenario: str | None = None
    timesteps: int | None = None
    n_envs: int | None = None
    seed: int = 0
    hyperparams: str | None = None
    hp: list[str] = field(default_factory=list)
    env_kwargs: list[str] = field(default_factory=list)
    resume: str | None = None
    runs_dir: str = "runs"
    eval_episodes: int = 20
    eval_freq: int = 10_000
    checkpoint_freq: int = 25_000
    baselines: str = ",".join(DEFAULT_BASELINES)
    workers: int = 1
    progress: bool = True


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description=(
            "Train a PPO / A2C / MaskablePPO agent on RoadEdge and compare it with the baselines."
        ),
    )
    p.add_argument(
        "--algo", choices=ALGOS, default="maskable_ppo", help="default: maskable_ppo (tuned)"
    )
    p.add_argument("--env", default="RoadEdge-v1", help="a registered RoadEdge id")
    p.add_argument("--scenario", default=None, help="preset name or YAML path (overrides the id's)")
    p.add_argument("--timesteps", type=int, default=None, help="total env steps (default: yml)")
    p.add_argument("--n-envs", type=int, default=None, help="parallel envs (default: yml)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--hyperparams",
        default=None,
        help="YAML file keyed by env id (default agents/hyperparams/<algo>.yml)",
    )
    p.add_argument(
        "--hp",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override hyperparameters, e.g. learning_rate=1e-4 n_steps=128",
    )
    p.add_argument(
        "--env-kwargs",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="scenario overrides, e.g. horizon=200 faults__mttr_s=30",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue a run from its latest checkpoint",
    )
    p.add_argument("--runs-dir", default="runs")
    p.add_argument(
        "--eval-episodes",
        type=int,
        default=20,
        help="episodes of the final comparison (seeds unseen in training)",
    )
    p.add_argument(
        "--eval-freq",
        type=int,
        default=10_000,
        help="evaluate every this many env steps (best model); 0 disables",
    )
    p.add_argument("--checkpoint-freq", type=int, default=25_000, help="env steps; 0 disables")
    p.add_argument(
        "--baselines",
        default=",".join(DEFAULT_BASELINES),
        help="baselines in the final table: comma list, 'all' or 'none'",
    )
    p.add_argument("--workers", type=int, default=1, help="processes for the final evaluation")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def parse_args(argv: Sequence[str] | None = None) -> Args:
    ns = build_parser().parse_args(argv)
    args = Args(**vars(ns))
    for name in ("timesteps", "n_envs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.eval_episodes < 1:
        raise SystemExit("--eval-episodes must be at least 1")
    return args


def load_hyperparams(algo: str, env_id: str, path: str | None) -> dict[str, Any]:
    """The entry for ``env_id`` (else ``default``) of the algorithm's YAML file."""
    file = Path(path) if path else HYPERPARAM_DIR / f"{algo}.yml"
    if not file.is_file():
        raise SystemExit(f"hyperparameter file not found: {file}")
    table = yaml.safe_load(file.read_text()) or {}
    if env_id in table:
        return dict(table[env_id])
    if "default" in table:
        return dict(table["default"])
    raise SystemExit(f"{file} has no entry for {env_id} and no 'default'")


# ---------------------------------------------------------------------------- envs


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


SCHEDULED_KEYS = ("learning_rate", "clip_range")


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
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    from stable_baselines3 import A2C, PPO

    return {"ppo": PPO, "a2c": A2C}[algo]


# ---------------------------------------------------------------------------- callbacks


def make_metrics_callback():
    from stable_baselines3.common.callbacks import BaseCallback

    class EpisodeMetricsCallback(BaseCallback):
        """Logs each finished episode's reward terms (summed) and ``info["metrics"]``."""

        def _on_training_start(self) -> None:
            self.sums: list[dict[str, float]] = [{} for _ in range(self.training_env.num_envs)]

        def _on_step(self) -> bool:
            for i, info in enumerate(self.locals["infos"]):
                acc = self.sums[i]
                for k, v in info.get("reward_terms", {}).items():
                    acc[k] = acc.get(k, 0.0) + v
                if "episode" in info:
                    for k, v in acc.items():
                        self.logger.record_mean(f"reward_terms/{k}", v)
                    for k, v in info.get("metrics", {}).items():
                        self.logger.record_mean(f"metrics/{k}", v)
                    self.sums[i] = {}
            return True

    return EpisodeMetricsCallback()


# ---------------------------------------------------------------------------- runs


def run_name(env_id: str, algo: str, seed: int) -> str:
    return f"{env_id}__{algo}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = []
    for p in (run_dir / "checkpoints").glob("*.zip"):
        m = re.search(r"_(\d+)_steps", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def vecnormalize_path(checkpoint: Path) -> Path:
    """Where SB3's CheckpointCallback keeps the VecNormalize stats of a checkpoint."""
    return checkpoint.with_name(
        checkpoint.name.replace("model_", "model_vecnormalize_").replace(".zip", ".pkl")
    )


def resolve_config(args: Args) -> dict[str, Any]:
    hp = load_hyperparams(args.algo, args.env, args.hyperparams)
    hp.update(parse_pairs(args.hp, "--hp"))
    env_kwargs = parse_pairs(args.env_kwargs, "--env-kwargs")
    if args.scenario:
        env_kwargs["scenario"] = args.scenario
    env_kwargs.setdefault("obs_mode", hp.get("obs_mode", "flat"))
    total = args.timesteps or int(hp.get("n_timesteps", 100_000))
    n_envs = args.n_envs or int(hp.get("n_envs", 8))
    return {
        "args": asdict(args),
        "hyperparams": hp,
        "env_kwargs": env_kwargs,
        "total_timesteps": total,
        "n_envs": n_envs,
    }


def train(args: Args) -> Path:
    """Train (or resume), then evaluate against the baselines. Returns the run dir."""
    import torch

    torch.set_num_threads(1)
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
    from stable_baselines3.common.vec_env import VecNormalize

    resuming = args.resume is not None
    if resuming:
        run_dir = Path(args.resume)
        cfg_path = run_dir / "config.yml"
        if not cfg_path.is_file():
            raise SystemExit(f"--resume: {cfg_path} not found")
        config = yaml.safe_load(cfg_path.read_text())
        saved = Args(**config["args"])
        if args.timesteps:  # allow extending a finished run
            config["total_timesteps"] = args.timesteps
        saved.progress = args.progress
        args = saved
    else:
        config = resolve_config(args)
        run_dir = Path(args.runs_dir) / run_name(args.env, args.algo, args.seed)
        suffix = 1
        while run_dir.exists():  # two runs started within the same second
            run_dir = run_dir.with_name(f"{run_dir.name.split('.')[0]}.{suffix}")
            suffix += 1
        run_dir.mkdir(parents=True)
        (run_dir / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    hp = dict(config["hyperparams"])
    env_kwargs = dict(config["env_kwargs"])
    total, n_envs = int(config["total_timesteps"]), int(config["n_envs"])
    normalize = bool(hp.get("normalize_reward", False))
    model_kwargs = sb3_kwargs(hp)
    policy = resolve_policy(hp.get("policy", "MlpPolicy"), args.algo, env_kwargs)

    venv = make_vec_env(args.env, n_envs, args.seed, env_kwargs, normalize)
    cls = algo_class(args.algo)
    checkpoint = latest_checkpoint(run_dir) if resuming else None
    if resuming and checkpoint is None:
        raise SystemExit(f"--resume: no checkpoint in {run_dir / 'checkpoints'}")
    if checkpoint is not None:
        stats = vecnormalize_path(checkpoint)
        if normalize and stats.is_file():
            venv = VecNormalize.load(str(stats), venv.venv)
        model = cls.load(
            str(checkpoint), env=venv, device="cpu", tensorboard_log=str(run_dir / "tb")
        )
        print(f"resuming from {checkpoint} at {model.num_timesteps} steps")
    else:
        model = cls(
            policy,
            venv,
            seed=args.seed,
            device="cpu",
            verbose=0,
            tensorboard_log=str(run_dir / "tb"),
            **model_kwargs,
        )
        bias_noop_logits(model, float(hp.get("noop_logit_bias", 0.0)))

    callbacks = [make_metrics_callback()]
    if args.checkpoint_freq > 0:
        callbacks.append(
            CheckpointCallback(
                save_freq=max(args.checkpoint_freq // n_envs, 1),
                save_path=str(run_dir / "checkpoints"),
                name_prefix="model",
                save_vecnormalize=normalize,
            )
        )
    if args.eval_freq > 0:
        callbacks.append(_eval_callback(args, env_kwargs, run_dir, n_envs, normalize))

    remaining = total - model.num_timesteps
    start, start_steps = time.perf_counter(), model.num_timesteps
    try:
        if remaining > 0:
            model.learn(
                total_timesteps=remaining,
                callback=CallbackList(callbacks),
                progress_bar=args.progress,
                reset_num_timesteps=checkpoint is None,
                tb_log_name="run",
            )
    except KeyboardInterrupt:
        path = run_dir / "checkpoints" / f"model_{model.num_timesteps}_steps.zip"
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(str(path))
        if normalize:
            venv.save(str(vecnormalize_path(path)))
        print(f"\ninterrupted: saved {path}\nresume with: python train.py --resume {run_dir}")
        raise SystemExit(130) from None
    elapsed = time.perf_counter() - start
    steps = model.num_timesteps - start_steps
    model.save(str(run_dir / "final_model.zip"))
    if normalize:
        venv.save(str(run_dir / "vecnormalize.pkl"))
    venv.close()
    timing = {
        "train_wall_s": elapsed,
        "train_steps": steps,
        "steps_per_s": steps / elapsed if elapsed > 0 else 0.0,
    }
    (run_dir / "timing.json").write_text(json.dumps(timing, indent=2))
    print(f"trained {steps} steps in {elapsed:.0f} s ({timing['steps_per_s']:.0f} steps/s)")
    final_evaluation(args, env_kwargs, run_dir)
    return run_dir


EVAL_CALLBACK_EPISODES = 8  # per periodic evaluation: one batched episode per env


def periodic_eval_seed(args: Args) -> int:
    """First seed of the periodic evaluations (held out from training and the final table)."""
    return args.seed + EVAL_SEED_OFFSET // 2


def _eval_callback(
    args: Args, env_kwargs: dict[str, Any], run_dir: Path, n_envs: int, normalize: bool
):
    """Periodic evaluation on held-out seeds; keeps ``best_model.zip``.

    Every evaluation replays the *same* ``EVAL_CALLBACK_EPISODES`` seeds (one
    batched env each), so checkpoints are compared on the same traffic and
    failures. SB3's callbacks would run on whatever episodes come next, and
    with seed-to-seed spread of the return several times the differences
    between policies, the "best" model would mostly be the luckiest draw.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    seed = periodic_eval_seed(args)
    eval_env = make_vec_env(args.env, EVAL_CALLBACK_EPISODES, seed, env_kwargs, False)
    if normalize:  # same wrapper type as training (SB3 syncs stats); raw rewards reported
        eval_env = VecNormalize(eval_env, norm_obs=False, norm_reward=False, training=False)
    kwargs = dict(
        best_model_save_path=str(run_dir),
        log_path=str(run_dir / "evaluations"),
        eval_freq=max(args.eval_freq // n_envs, 1),
        n_eval_episodes=EVAL_CALLBACK_EPISODES,
        deterministic=True,
        verbose=0,
    )
    if args.algo == "maskable_ppo":
        from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback as Base
    else:
        from stable_baselines3.common.callbacks import EvalCallback as Base

    class SameSeedsEvalCallback(Base):
        def _on_step(self) -> bool:
            if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
                self.eval_env.seed(seed)  # applied at the evaluation's reset
            return super()._on_step()

    return SameSeedsEvalCallback(eval_env, **kwargs)


def final_evaluation(args: Args, env_kwargs: dict[str, Any], run_dir: Path) -> None:
    from .evaluate import (
        MODEL_PREFIX,
        evaluate,
        format_table,
        headroom_summary,
        paired_delta,
        resolve_policies,
        write_results,
    )

    model_path = run_dir / "best_model.zip"
    if not model_path.is_file():
        model_path = run_dir / "final_model.zip"
    spec = args.baselines
    names = [] if spec.strip() == "none" else resolve_policies(spec)
    policies = [MODEL_PREFIX + str(model_path)] + names
    seed = args.seed + EVAL_SEED_OFFSET
    print(
        f"evaluating the agent and {len(names)} baselines on {args.eval_episodes} episodes "
        f"(seeds {seed}..{seed + args.eval_episodes - 1}, unseen in training)"
    )
    eval_kwargs = {k: v for k, v in env_kwargs.items() if k != "obs_mode"}
    records, rows = evaluate(
        policies,
        args.env,
        args.eval_episodes,
        seed,
        args.workers,
        eval_kwargs,
        progress=args.progress,
        batched=True,  # each policy's episodes in one batched simulator: same numbers, faster
    )
    for row in rows:
        if row["policy"].startswith("agent:"):
            row["policy"] = f"agent ({args.algo})"
    out = run_dir / "eval"
    meta = {
        "env_id": args.env,
        "env_kwargs": eval_kwargs,
        "episodes": args.eval_episodes,
        "seed": seed,
        "model": str(model_path),
    }
    write_results(records, rows, out, meta)
    table = format_table(
        rows,
        f"{args.env}: agent vs baselines, {args.eval_episodes} episodes",
        headroom_summary(records),
    )
    (out / "table.md").write_text(table + "\n")
    print(table)
    _write_training_plots(records, rows, run_dir, args, eval_kwargs)
    # the best rule: a privileged policy (the oracle) is no baseline to beat
    best_base = next((r for r in rows if r["policy"] == rows[0].get("best_rule")), None)
    agent = rows[0]
    if best_base is not None and args.eval_episodes < 2:
        print("\none evaluation episode: too few for confidence intervals, no verdict")
    elif best_base is not None:
        ahead = agent["return_ci_low"] > best_base["return_ci_high"]
        verdict = "ahead of" if ahead else "NOT clearly ahead of"
        print(
            f"\nagent {agent['return_mean']:.1f} vs best baseline {best_base['policy']} "
            f"{best_base['return_mean']:.1f}: {verdict} it (95% CIs "
            f"{'do not overlap' if ahead else 'overlap or agent behind'})"
        )
        d, lo, hi = paired_delta(records, policies[0], best_base["policy"])
        print(
            f"paired on the same seeds: agent - {best_base['policy']} = "
            f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}] (95% CI)"
        )
    print(f"results in {out}")


def _baselines_on_eval_seeds(
    names: list[str], args: Args, env_kwargs: dict[str, Any]
) -> dict[str, float]:
    """Mean return of each baseline on the periodic evaluations' seeds (batched, a few s)."""
    from .evaluate import evaluate

    if not names:
        return {}
    _, rows = evaluate(
        names,
        args.env,
        EVAL_CALLBACK_EPISODES,
        periodic_eval_seed(args),
        args.workers,
        env_kwargs,
        progress=False,
        batched=True,
    )
    return {r["policy"]: float(r["return_mean"]) for r in rows}


def _write_training_plots(
    records, rows, run_dir: Path, args: Args, env_kwargs: dict[str, Any]
) -> None:
    """comparison.png (agent vs baselines) and learning_curve.png (the agent's periodic
    evaluations with the baselines run on the same seeds)."""
    from .evaluate import display_name, write_plot

    out = run_dir / "eval"
    names = {r["policy"]: r["policy"] for r in records}
    agent_key = next((p for p in names if p.startswith("model:")), None)

    def label(p: str) -> str:
        return f"agent ({args.algo})" if p == agent_key else display_name(p)

    try:
        from .plots import plot_comparison, plot_learning_curve
    except ImportError:
        write_plot(records, out / "comparison.png", "")  # prints the install hint
        return
    plot_comparison(
        records, out / "comparison.png", title=f"{args.env}: agent vs baselines", label=label
    )
    npz = run_dir / "evaluations" / "evaluations.npz"
    if npz.is_file():
        data = np.load(npz)
        names = [r["policy"] for r in rows if not r["policy"].startswith("agent")]
        plot_learning_curve(
            data["timesteps"],
            data["results"],
            out / "learning_curve.png",
            baselines=_baselines_on_eval_seeds(names, args, env_kwargs),
            title=(
                f"{args.env} {args.algo}: mean over the {EVAL_CALLBACK_EPISODES} "
                "periodic-evaluation seeds"
            ),
            ylabel=f"mean episode return ({EVAL_CALLBACK_EPISODES} seeds)",
        )
    print(f"plots in {out}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    np.set_printoptions(precision=3)
    train(args)
    return 0
