"""The end of a ``train.py`` run: the agent against the baselines, and the training plots.

The final table uses ``--eval-episodes`` seeds from ``seed + EVAL_SEED_OFFSET``
on, which neither training nor the periodic evaluations ever saw; the best
model by periodic evaluation is compared (else the final one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .train_args import Args, UsageError
from .train_callbacks import EVAL_CALLBACK_EPISODES, EVAL_SEED_OFFSET, periodic_eval_seed


def baseline_names(spec: str) -> list[str]:
    """The ``--baselines`` names, checked (``UsageError`` for an unknown one)."""
    from .evaluate import resolve_policies

    if spec.strip() == "none":
        return []
    try:
        return resolve_policies(spec)
    except SystemExit as exc:  # evaluate's own one-line message
        raise UsageError(f"--baselines: {exc.code}") from None


def final_evaluation(args: Args, env_kwargs: dict[str, Any], run_dir: Path) -> None:
    from .evaluate import (
        MODEL_PREFIX,
        evaluate,
        format_table,
        headroom_summary,
        paired_delta,
        write_results,
    )

    model_path = run_dir / "best_model.zip"
    if not model_path.is_file():
        model_path = run_dir / "final_model.zip"
    names = baseline_names(args.baselines)
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
        periodic_eval_seed(args.seed),
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
