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
Everything is checked before the first episode (policy names, env id, scenario,
overrides, each model file and whether it fits the env, the output folder); a mistake
is one line ``roadedge-eval: error: ...`` and exit code 2.

This module holds the entry points (:func:`evaluate`, the checks, the command line);
episodes run in :mod:`.episodes`, models load in :mod:`.models`, results are reported
by :mod:`.report`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The pieces live in their own modules (running episodes, models, reporting); their
# names stay importable from here, where train.py and the tests import them.
from .cli import UsageError, check_writable_dir, parse_pairs, run, yaml_problem
from .episodes import (  # noqa: F401  (re-exported)
    METRIC_COLUMNS,
    BatchJob,
    EvalJob,
    run_batch,
    run_batches,
    run_episode,
    run_jobs,
)
from .episodes import make_env as _make_env
from .headroom import MODEL_PREFIX, headroom_summary
from .models import (  # noqa: F401  (re-exported)
    ModelError,
    ModelPolicy,
    check_model_fits,
    load_model,
    model_obs_mode,
)
from .report import (  # noqa: F401  (re-exported)
    display_name,
    format_table,
    summarize,
    write_plot,
    write_results,
)
from .stats import paired_delta  # noqa: F401  (re-exported)

PROG = "roadedge-eval"


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
    records, faster); ``workers`` processes then share the policies. Everything is
    checked first (:func:`check_setup`): a bad name, env or model raises
    :class:`~.cli.UsageError` (a ``ValueError``) before any episode runs.
    """
    env_kwargs = dict(env_kwargs or {})
    check_setup(policies, env_id, env_kwargs)
    if batched:
        seeds = tuple(seed + i for i in range(episodes))
        batches = [BatchJob(p, seeds, env_id, env_kwargs) for p in policies]
        records = run_batches(batches, workers=workers, progress=progress)
        return records, summarize(records)
    jobs = [EvalJob(p, seed + i, env_id, env_kwargs) for p in policies for i in range(episodes)]
    records = run_jobs(jobs, workers=workers, progress=progress)
    return records, summarize(records)


def check_setup(policies: Sequence[str], env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Raise :class:`~.cli.UsageError` unless every policy can run on the env: the
    rule names exist, the env id, scenario and overrides make an env, and each model
    (``model:<path>``) loads and has the env's observation and action spaces.

    Costs one env per observation mode and one load per model, so a model trained on
    another scenario is reported at once, not after every baseline has run."""
    for policy in policies:
        if not policy.startswith(MODEL_PREFIX):
            _check_policy_name(policy)
    checked_env(env_id, env_kwargs).close()
    for policy in policies:
        if policy.startswith(MODEL_PREFIX):
            path = policy[len(MODEL_PREFIX) :]
            model = load_model(path)
            env = checked_env(env_id, {"obs_mode": model_obs_mode(model), **env_kwargs})
            try:
                where = f"{env_id} (scenario {env.unwrapped.cfg.name!r})"
                check_model_fits(model, env, path, where)
            finally:
                env.close()


def checked_env(env_id: str, env_kwargs: dict[str, Any]):
    """``gym.make(env_id, **env_kwargs)``; a bad id, scenario, override key or value
    raises :class:`~.cli.UsageError` with the env's own one-line message."""
    import gymnasium as gym
    import yaml

    try:
        return _make_env(env_id, env_kwargs)
    except yaml.YAMLError as exc:
        raise UsageError(f"cannot read the scenario: {yaml_problem(exc)}") from None
    except (ValueError, TypeError, KeyError, OSError, gym.error.Error) as exc:
        text = str(exc).strip().splitlines()
        raise UsageError(text[0] if text else f"{type(exc).__name__} making {env_id}") from None


def resolve_policies(spec: str, models: Sequence[str] = ()) -> list[str]:
    """Policy names from a comma list; ``all`` (alone or as an item, e.g. ``all,oracle``)
    stands for every rule. Duplicates are dropped; each model adds ``model:<path>``.
    An unknown name or a missing model file raises :class:`~.cli.UsageError`."""
    from roadedge.baselines import policy_names

    names: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        expanded = policy_names() if item == "all" else [item]
        names += [name for name in expanded if name and name not in names]
    for name in names:  # validate early with a clear error
        _check_policy_name(name)
    for m in models:
        if not Path(m).is_file():
            raise ModelError(f"model file not found: {m}")
    if not names and not models:
        raise UsageError("no policy to evaluate: give --policies or --model")
    return names + [MODEL_PREFIX + m for m in models]


def _check_policy_name(name: str) -> None:
    """Raise :class:`~.cli.UsageError` with the baselines' own message if ``name`` is
    not a valid policy."""
    from roadedge.baselines.policies import parse_name

    try:
        parse_name(name)
    except ValueError as exc:
        raise UsageError(f"{exc}; see --list") from None


def print_policy_list() -> None:
    """The rules, one a line, then the privileged policies, marked as such."""
    from roadedge.baselines import policy_names
    from roadedge.baselines.policies import PRIVILEGED_POLICIES

    print("\n".join(policy_names()))
    for name in PRIVILEGED_POLICIES:
        print(f"{name} (privileged: reads the hidden future)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--scenario",
        default=None,
        help="preset name or YAML path (default: the env id's own scenario)",
    )
    p.add_argument(
        "--env-id", default="RoadEdge-v1", help="registered env id (default: RoadEdge-v1)"
    )
    p.add_argument(
        "--policies",
        default="all",
        help="comma-separated names; 'all' is every rule (e.g. all,oracle); see --list",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="a trained SB3 model .zip to evaluate too (repeatable)",
    )
    p.add_argument("--episodes", type=int, default=20, help="episodes per policy (default: 20)")
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``roadedge-eval``; a user mistake is one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    return run(PROG, lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    if args.list:
        print_policy_list()
        return 0
    if args.episodes < 1:
        raise UsageError("--episodes must be at least 1")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    env_kwargs = parse_pairs(args.env_kwargs, "--env-kwargs")
    if args.scenario:
        env_kwargs["scenario"] = args.scenario
    policies = resolve_policies(args.policies, args.model)
    scen = env_kwargs.get("scenario", args.env_id)
    out = Path(args.out) if args.out else Path("results") / f"eval-{Path(str(scen)).stem}"
    check_writable_dir(out, "--out")
    start = time.perf_counter()
    records, rows = evaluate(  # checks policies, env and models before the first episode
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
