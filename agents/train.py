"""Train an SB3 agent on a RoadEdge scenario and compare it with every baseline.

``python train.py --algo maskable_ppo --env RoadEdge-v1 --seed 0`` (the defaults)

A run writes ``runs/<env>__<algo>__<seed>__<time>/`` with:

* ``config.yml``: the resolved arguments and hyperparameters (for ``--resume``);
* ``tb/``: TensorBoard logs, including every reward term and ``info["metrics"]``;
* ``checkpoints/``: periodic checkpoints, and one more on Ctrl-C;
* ``best_model.zip``: the best model by periodic evaluation; ``final_model.zip``;
* ``evaluations/evaluations.npz``: the periodic evaluations (RL Zoo's layout);
* ``eval/``: the final comparison with the baselines (``episodes.csv``,
  ``summary.json``, ``table.md``), also printed.

Everything the user gives is checked before training starts (``UsageError``:
one line on stderr, exit status 2); a run that fails before its first
checkpoint leaves no directory behind. The pieces live in ``train_args``
(command line), ``train_config`` (hyperparameters), ``train_run`` (run
directory, atomic saves, resume), ``train_callbacks`` and ``train_report``
(the final comparison); their public names are re-exported here.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from .pretrain import Pretrain, pretrain
from .train_args import (
    PROG,
    Args,
    UsageError,
    build_parser,
    check_writable,
    list_text,
    parse_args,
    resolve_config,
)
from .train_callbacks import (
    EVAL_CALLBACK_EPISODES,
    EVAL_SEED_OFFSET,
    make_checkpoint_callback,
    make_eval_callback,
    make_metrics_callback,
    make_progress_callback,
)
from .train_config import (
    ALGOS,
    HYPERPARAM_DIR,
    TRAINING_KEYS,
    LinearSchedule,
    algo_class,
    bias_noop_logits,
    env_kwargs_of,
    load_hyperparams,
    make_vec_env,
    normalizes_reward,
    resolve_policy,
    resolve_policy_kwargs,
    resolve_schedule,
    sb3_kwargs,
)
from .train_report import baseline_names, final_evaluation
from .train_run import (
    atomic_write,
    discard_if_empty,
    latest_checkpoint,
    load_newest,
    new_run_dir,
    run_name,
    save_model,
    vecnormalize_path,
)

__all__ = [
    "ALGOS", "Args", "EVAL_CALLBACK_EPISODES", "EVAL_SEED_OFFSET", "HYPERPARAM_DIR",
    "LinearSchedule", "TRAINING_KEYS", "UsageError", "algo_class", "bias_noop_logits",
    "build_parser", "env_kwargs_of", "latest_checkpoint", "load_hyperparams", "main",
    "make_vec_env", "parse_args", "resolve_config", "resolve_policy", "resolve_policy_kwargs",
    "resolve_schedule", "run_name", "sb3_kwargs", "train", "vecnormalize_path",
]  # fmt: skip


def _load_run(args: Args) -> tuple[Args, dict, Path]:
    """The saved arguments and configuration of ``--resume RUN_DIR`` (with this command's
    ``--timesteps`` as the new total and its display options)."""
    run_dir = Path(args.resume)
    cfg_path = run_dir / "config.yml"
    if not cfg_path.is_file():
        raise UsageError(f"--resume: {cfg_path} not found (is {run_dir} a run directory?)")
    try:
        config = yaml.safe_load(cfg_path.read_text())
        saved = Args(**config["args"])
        for key in ("hyperparams", "env_kwargs", "total_timesteps", "n_envs"):
            config[key]  # noqa: B018  (present, or the file is not a run's config)
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        reason = getattr(exc, "problem", None) or f"{type(exc).__name__}: {exc}"
        raise UsageError(f"--resume: {cfg_path} is corrupt ({reason})") from None
    if args.timesteps:  # allow extending a finished run
        config["total_timesteps"] = args.timesteps
    saved.progress, saved.log_interval, saved.resume = args.progress, args.log_interval, args.resume
    check_writable(run_dir, "run directory")
    return saved, config, run_dir


def train(args: Args) -> Path:
    """Check everything, train (or resume), then evaluate against the baselines.
    Returns the run dir."""
    import torch
    from stable_baselines3.common.vec_env import VecNormalize

    from roadedge.envs import ConfigError

    torch.set_num_threads(1)
    resuming = args.resume is not None
    if resuming:
        args, config, run_dir = _load_run(args)
    else:
        config = resolve_config(args)
    hp, env_kwargs = dict(config["hyperparams"]), dict(config["env_kwargs"])
    total, n_envs = int(config["total_timesteps"]), int(config["n_envs"])
    baseline_names(args.baselines)  # an unknown baseline fails now, not after training
    try:
        normalize = normalizes_reward(hp)
        model_kwargs = sb3_kwargs(hp)
        policy = resolve_policy(hp.get("policy", "MlpPolicy"), args.algo, env_kwargs)
        bias = float(hp.get("noop_logit_bias", 0.0))
        warm_start = Pretrain.from_hp(hp.get("pretrain"))
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None

    def make_raw():
        return make_vec_env(args.env, n_envs, args.seed, env_kwargs, False)

    try:
        venv = make_raw()
    except (ConfigError, ValueError, TypeError) as exc:
        raise UsageError(f"{args.env} with env_kwargs {env_kwargs}: {exc}") from None
    cls = algo_class(args.algo)
    if resuming:
        venv.close()
        resumed = load_newest(run_dir, cls, make_raw, normalize, str(run_dir / "tb"))
        model, venv = resumed.model, resumed.venv
        print(f"resuming from {resumed.path} at {model.num_timesteps} steps")
    else:
        if normalize:
            venv = VecNormalize(venv, norm_obs=False, norm_reward=True)
        try:
            model = cls(policy, venv, seed=args.seed, device="cpu", verbose=0, **model_kwargs)
            bias_noop_logits(model, bias)
        except (TypeError, ValueError, AssertionError) as exc:
            raise UsageError(f"hyperparameters rejected by {cls.__name__}: {exc}") from None
        check_writable(Path(args.runs_dir), "--runs-dir")  # last check: it may create the dir
        run_dir = new_run_dir(Path(args.runs_dir), args.env, args.algo, args.seed)
        model.tensorboard_log = str(run_dir / "tb")
        atomic_write(run_dir / "config.yml", lambda fh: fh.write(_yaml_bytes(config)))

    pretrain_stats = None
    try:
        if warm_start is not None and not resuming:
            pretrain_stats = pretrain(model, venv, warm_start, args.seed)
        elapsed, steps = _learn(model, venv, args, env_kwargs, run_dir, total, normalize)
    except KeyboardInterrupt:
        _save_interrupted(model, venv if normalize else None, run_dir)
        raise SystemExit(130) from None
    except BaseException:
        if not resuming and discard_if_empty(run_dir):
            print(f"{PROG}: failed before the first checkpoint; removed {run_dir}", file=sys.stderr)
        raise
    save_model(model, run_dir / "final_model.zip", venv if normalize else None,
               run_dir / "vecnormalize.pkl")  # fmt: skip
    venv.close()
    timing = {
        "train_wall_s": elapsed,
        "train_steps": steps,
        "steps_per_s": steps / elapsed if elapsed > 0 else 0.0,
    }
    if pretrain_stats is not None:
        timing["pretrain"] = {k: float(v) for k, v in pretrain_stats.items()}
    text = json.dumps(timing, indent=2).encode()
    atomic_write(run_dir / "timing.json", lambda fh: fh.write(text))
    print(f"trained {steps} steps in {elapsed:.0f} s ({timing['steps_per_s']:.0f} steps/s)")
    final_evaluation(args, env_kwargs, run_dir)
    return run_dir


def _yaml_bytes(config: dict) -> bytes:
    return yaml.safe_dump(config, sort_keys=False).encode()


def _learn(model, venv, args: Args, env_kwargs, run_dir: Path, total: int, normalize: bool):
    """Train up to ``total`` steps; (wall seconds, steps trained). A progress bar on a
    terminal, else a line every ``--log-interval`` seconds; evaluations always print."""
    from stable_baselines3.common.callbacks import CallbackList

    n_envs = venv.num_envs
    bar = args.progress and sys.stdout.isatty()
    callbacks = [make_metrics_callback()]
    if args.checkpoint_freq > 0:
        callbacks.append(make_checkpoint_callback(args.checkpoint_freq, run_dir, normalize))
    evaluator = None
    if args.eval_freq > 0:
        every = max(args.eval_freq // n_envs, 1)
        evaluator = make_eval_callback(
            args.algo, args.env, args.seed, env_kwargs, run_dir, every, normalize
        )
        callbacks.append(evaluator)
    if not bar:
        callbacks.append(make_progress_callback(total, args.log_interval, evaluator))
    start, start_steps = time.perf_counter(), model.num_timesteps
    remaining = total - model.num_timesteps
    if remaining > 0:
        model.learn(
            total_timesteps=remaining,
            callback=CallbackList(callbacks),
            progress_bar=bar,
            reset_num_timesteps=args.resume is None,
            tb_log_name="run",
        )
    return time.perf_counter() - start, model.num_timesteps - start_steps


def _save_interrupted(model, stats_venv, run_dir: Path) -> None:
    """The Ctrl-C checkpoint; a second Ctrl-C while it is written leaves the older ones."""
    path = run_dir / "checkpoints" / f"model_{model.num_timesteps}_steps.zip"
    try:
        save_model(model, path, stats_venv, vecnormalize_path(path))
    except KeyboardInterrupt:
        print(f"\ninterrupted again: {path} not written (older models are intact)", file=sys.stderr)
        return
    print(f"\ninterrupted: saved {path}\nresume with: python train.py --resume {run_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    """``train.py``: 0 on success, 2 (one line on stderr) for a user mistake."""
    try:
        args = parse_args(argv)
        if args.list:
            print(list_text())
            return 0
        np.set_printoptions(precision=3)
        train(args)
    except UsageError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        print(f"{PROG}: error: {'; '.join(lines)}", file=sys.stderr)  # one line
        return 2
    return 0
