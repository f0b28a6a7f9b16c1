"""The command line of ``train.py``: typed arguments, ``KEY=VALUE`` pairs, ``--list``.

Every user mistake found here or later in the checks before training raises
:class:`~.cli.UsageError`; ``train.main`` prints it as one line on stderr and exits
with status 2 (argparse's own convention), never with a traceback.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .cli import UsageError, parse_pairs  # noqa: F401  (re-exported)

PROG = "train.py"
DEFAULT_BASELINES = (
    "noop",
    "threshold",
    "failover",
    "backup",
    "threshold+failover",
    "greedy+failover",
    "greedy+backup",
)


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
    log_interval: float = 30.0
    list: bool = False


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise UsageError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    from .train_config import ALGOS

    p = _Parser(
        prog=PROG,
        description=(
            "Train a PPO / A2C / MaskablePPO agent on RoadEdge and compare it with the baselines."
        ),
    )
    add = p.add_argument
    add("--algo", choices=ALGOS, default="maskable_ppo", help="default: maskable_ppo (tuned)")
    add("--env", default="RoadEdge-v1", help="a RoadEdge env id (see --list)")
    add("--scenario", default=None, help="preset name or YAML path (overrides the id's)")
    add("--timesteps", type=int, default=None, help="total env steps (default: the yml's)")
    add("--n-envs", type=int, default=None, help="parallel envs (default: the yml's)")
    add("--seed", type=int, default=0, help="seed of training (evaluation seeds derive from it)")
    add(
        "--hyperparams",
        default=None,
        help="YAML file keyed by env id (default agents/hyperparams/<algo>.yml)",
    )
    add(
        "--hp",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override hyperparameters, e.g. learning_rate=1e-4 n_steps=128",
    )
    add(
        "--env-kwargs",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="scenario overrides, e.g. horizon=200 faults__mttr_s=30",
    )
    add(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue a run from its newest good model (--timesteps: the new total)",
    )
    add("--runs-dir", default="runs", help="where new run directories go (default: runs)")
    add(
        "--eval-episodes",
        type=int,
        default=20,
        help="episodes of the final comparison (seeds unseen in training)",
    )
    add(
        "--eval-freq",
        type=int,
        default=10_000,
        help="evaluate every this many env steps (best model); 0 disables",
    )
    add("--checkpoint-freq", type=int, default=25_000, help="env steps; 0 disables")
    add(
        "--baselines",
        default=",".join(DEFAULT_BASELINES),
        help="baselines in the final table: comma list, 'all' or 'none'",
    )
    add("--workers", type=int, default=1, help="processes for the final evaluation")
    add(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bar (a log line every --log-interval seconds instead)",
    )
    add(
        "--log-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds between progress lines when there is no progress bar (default 30)",
    )
    add("--list", action="store_true", help="list env ids, scenarios, algorithms and baselines")
    return p


def parse_args(argv: Sequence[str] | None = None) -> Args:
    ns = build_parser().parse_args(argv)
    args = Args(**vars(ns))
    for name in ("timesteps", "n_envs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.eval_episodes < 1:
        raise UsageError("--eval-episodes must be at least 1")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.log_interval < 0:
        raise UsageError("--log-interval must be >= 0 seconds")
    return args


def check_writable(directory: Path, what: str) -> None:
    """Create ``directory`` if needed and write a scratch file in it, else ``UsageError``."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise UsageError(f"{what} {directory} is not writable: {exc.strerror or exc}") from None
    if not os.access(directory, os.W_OK):
        raise UsageError(f"{what} {directory} is not writable")


def list_text() -> str:
    """What ``--list`` prints: the names the other options take."""
    from roadedge.baselines import policy_names
    from roadedge.envs import env_ids, preset_names

    from .train_config import ALGOS

    return "\n".join(
        [
            "env ids (--env):       " + ", ".join(env_ids()),
            "scenarios (--scenario): " + ", ".join(preset_names()) + ", or a path to a .yaml",
            "algorithms (--algo):   " + ", ".join(ALGOS),
            "baselines (--baselines): " + ", ".join(policy_names()),
            "  (a comma list, 'all' or 'none'; default: " + ",".join(DEFAULT_BASELINES) + ")",
        ]
    )


def check_env_id(env_id: str) -> None:
    """``UsageError`` listing the RoadEdge ids unless ``env_id`` is one."""
    from roadedge.envs import env_ids

    if env_id not in env_ids():
        raise UsageError(f"unknown env id {env_id!r}; known: {', '.join(env_ids())}")


def resolve_config(args: Args) -> dict[str, Any]:
    """The run's configuration from the command line and the hyperparameter file, checked:
    an unknown key, env id or unparsable value is a ``UsageError`` before any work starts."""
    from .train_config import check_keys, env_kwargs_of, load_hyperparams

    check_env_id(args.env)
    hp = load_hyperparams(args.algo, args.env, args.hyperparams)
    check_keys(hp, args.algo, args.hyperparams or f"agents/hyperparams/{args.algo}.yml")
    overrides = parse_pairs(args.hp, "--hp")
    check_keys(overrides, args.algo, "--hp")
    hp.update(overrides)
    env_kwargs = {**env_kwargs_of(hp), **parse_pairs(args.env_kwargs, "--env-kwargs")}
    if args.scenario:
        env_kwargs["scenario"] = args.scenario
    try:
        total = args.timesteps or int(hp.get("n_timesteps", 100_000))
        n_envs = args.n_envs or int(hp.get("n_envs", 8))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"n_timesteps / n_envs must be integers ({exc})") from None
    return {
        "args": asdict(args),
        "hyperparams": hp,
        "env_kwargs": env_kwargs,
        "total_timesteps": total,
        "n_envs": n_envs,
    }
