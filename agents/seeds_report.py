"""Results across training seeds, as the field reports them, computed with ``rliable``.

``python -m roadedge.agents.seeds_report RUN_DIR [RUN_DIR ...] --out DIR`` reads the
final comparison of each training run (``RUN_DIR/eval/episodes.csv``, written by
``train.py``; a folder written by ``roadedge-eval`` or the ``episodes.csv`` file itself
also works) and reports, following Agarwal et al., "Deep RL at the Edge of the
Statistical Precipice" (NeurIPS 2021), with their library ``rliable``:

* the IQM and the mean return of every policy with stratified-bootstrap 95 % CIs
  (``rliable.library.get_interval_estimates`` with ``metrics.aggregate_iqm`` and
  ``metrics.aggregate_mean``);
* the probability of improvement of the agent over the best rule
  (``metrics.probability_of_improvement``), with its CI;
* performance profiles (the fraction of runs x episodes with return > tau), with CIs,
  as a PNG (``rliable.plot_utils.plot_performance_profiles``).

It prints a Markdown table and writes ``seeds_report.json`` and
``performance_profiles.png`` into ``--out``.

**Score matrices.** Every policy has a (runs, tasks) matrix of raw returns (not
normalized: one environment, one scale). A *run* is one training seed (one run folder);
a *task* is one evaluation episode, the k-th evaluation seed of the run (seeds sorted).
When the runs evaluated on the same seeds (``roadedge-eval --seed S`` on each model)
task k is the same traffic for every run and policy; ``train.py`` evaluates run ``s`` on
seeds ``s + EVAL_SEED_OFFSET ...``, so there task k is the k-th episode, a different
draw per run, and the runs' spread then also holds evaluation-seed noise. Within a run,
the agent and the rules always share seeds (common random numbers). The stratified
bootstrap resamples runs within each task, so the CIs measure the uncertainty over
training seeds (plus evaluation draws when the seeds differ between runs); with a
single run every CI has zero width.

**Rules are deterministic**: a rule's row of a run is its returns on that run's
seeds, so it has one row per run like the agent. When the runs share evaluation seeds
those rows are identical and the rule's CIs have zero width, rightly: re-running it
changes nothing. A rule given to :func:`seeds_report` as a single row (shape
``(1, tasks)``) is repeated to the agent's number of runs, which gives the same numbers
(a bootstrap of identical rows). For the probability of improvement rliable resamples
the agent's and the rule's runs independently (``StratifiedIndependentBootstrap``).

The per-policy, per-run paired differences on common seeds stay in
:mod:`roadedge.agents.stats` (:func:`~roadedge.agents.stats.paired_delta`):
rliable has no paired-difference estimate.

Needs the ``train`` extra (``rliable``; it imports ``arch``, which needs ``pandas<3``)
and matplotlib (the ``viz`` extra) for the plot.
"""

from __future__ import annotations

import argparse
import csv
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from roadedge.baselines.policies import is_privileged

from .cli import UsageError, run
from .headroom import MODEL_PREFIX, is_rule

PROG = "python -m roadedge.agents.seeds_report"
AGENT = "agent"
DEFAULT_REPS = 2000
JSON_NAME = "seeds_report.json"
PLOT_NAME = "performance_profiles.png"


def _interval_estimates(rly, score_dict, func, seed: int, **kwargs):
    """``rly.get_interval_estimates`` made reproducible: rliable 1.2's
    ``StratifiedBootstrap`` draws its resampled runs from NumPy's *global* random
    state (``np.random.choice``) and ignores ``random_state``, so the global state is
    seeded here and put back afterwards. Quiet about arch's FutureWarning on the
    ``random_state`` rliable passes (rliable's call, not ours)."""
    saved = np.random.get_state()  # noqa: NPY002  (the state rliable draws from)
    np.random.seed(seed)  # noqa: NPY002
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "random_state is deprecated", FutureWarning)
            return rly.get_interval_estimates(
                score_dict, func, random_state=np.random.RandomState(seed), **kwargs
            )
    finally:
        np.random.set_state(saved)  # noqa: NPY002


def _rliable():
    try:
        from rliable import library as rly
        from rliable import metrics
    except ImportError as exc:  # arch on pandas 3 fails with a TypeError, caught below
        raise UsageError(f"needs rliable (the 'train' extra): {exc}") from None
    except TypeError as exc:
        raise UsageError(f"rliable does not import ({exc}); install 'pandas<3'") from None
    return rly, metrics


def _broadcast(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The score matrices as float arrays with one number of runs (single rows repeated)."""
    mats = {k: np.atleast_2d(np.asarray(v, dtype=np.float64)) for k, v in scores.items()}
    if not mats:
        raise ValueError("no policies")
    shapes = {m.shape for m in mats.values()}
    tasks = {s[1] for s in shapes}
    if len(tasks) != 1 or 0 in tasks:
        raise ValueError(f"every policy needs the same nonzero number of tasks, got {shapes}")
    runs = {s[0] for s in shapes} - {1}
    if len(runs) > 1:
        raise ValueError(f"policies have different numbers of runs: {sorted(runs)}")
    n = runs.pop() if runs else 1
    return {k: np.repeat(m, n, axis=0) if m.shape[0] != n else m for k, m in mats.items()}


def best_rule(scores: Mapping[str, np.ndarray], agent: str = AGENT) -> str | None:
    """The rule (neither ``agent`` nor privileged, e.g. not the oracle) with the highest
    mean return over all runs and tasks (the first one on a tie), or None."""
    best, best_mean = None, -np.inf
    for name, m in scores.items():
        if name == agent or not is_rule(name):
            continue
        mean = float(np.mean(m))
        if mean > best_mean:
            best, best_mean = name, mean
    return best


def seeds_report(
    scores: Mapping[str, np.ndarray],
    agent: str = AGENT,
    reps: int = DEFAULT_REPS,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """IQM and mean with stratified-bootstrap CIs per policy, and the agent's
    probability of improvement over the best rule, all with rliable.

    ``scores`` maps each policy to its (runs, tasks) return matrix (see the module
    docstring: runs are training seeds, tasks evaluation episodes); a ``(1, tasks)``
    matrix (a deterministic rule given once) is repeated to the agent's runs.
    ``reps`` bootstrap resamples; every estimate starts from ``seed`` (see
    :func:`_interval_estimates`), so the result does not depend on the order of the
    policies. Without ``agent`` among the policies there is no probability of
    improvement (``None``).
    """
    rly, metrics = _rliable()
    mats = _broadcast(scores)
    runs, tasks = next(iter(mats.values())).shape

    def aggregates(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    def estimate(score_dict, func):
        point, ci = _interval_estimates(
            rly,
            score_dict,
            func,
            reps=reps,
            confidence_interval_size=confidence,
            seed=seed,
        )
        return point, ci

    policies: dict[str, Any] = {}
    for name, m in mats.items():
        point, ci = estimate({name: m}, aggregates)
        p, c = point[name], ci[name]  # c: (2, n_metrics), rows low and high
        policies[name] = {
            "iqm": float(p[0]),
            "iqm_ci": [float(c[0, 0]), float(c[1, 0])],
            "mean": float(p[1]),
            "mean_ci": [float(c[0, 1]), float(c[1, 1])],
            "agent": name == agent,
            "privileged": is_privileged(name),
            # identical rows: rerunning it changes nothing (a deterministic rule on shared seeds)
            "same_every_run": bool(np.all(m == m[0])),
        }
    best = best_rule(mats, agent)
    poi = None
    if agent in mats and best is not None:
        key = f"{agent},{best}"
        point, ci = estimate({key: (mats[agent], mats[best])}, metrics.probability_of_improvement)
        poi = {
            "policy": agent,
            "over": best,
            "value": float(point[key]),
            "ci": [float(np.ravel(ci[key])[0]), float(np.ravel(ci[key])[1])],
        }
    return {
        "runs": int(runs),
        "tasks": int(tasks),
        "reps": int(reps),
        "confidence": float(confidence),
        "seed": int(seed),
        "best_rule": best,
        "policies": policies,
        "probability_of_improvement": poi,
    }


def performance_profiles(
    scores: Mapping[str, np.ndarray],
    path: Path,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    n_tau: int = 101,
    title: str = "",
) -> Path:
    """Save the score distributions (fraction of runs x tasks with return > tau) with
    stratified-bootstrap 95 % CIs, drawn by ``rliable.plot_utils.plot_performance_profiles``.

    The CIs come from ``get_interval_estimates`` with ``library.score_distributions``
    (what ``create_performance_profile`` does, but seeded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from rliable import plot_utils

    rly, _ = _rliable()
    mats = _broadcast(scores)
    allv = np.concatenate([m.ravel() for m in mats.values()])
    lo, hi = float(allv.min()), float(allv.max())
    pad = 0.02 * (hi - lo) if hi > lo else 1.0
    taus = np.linspace(lo - pad, hi + pad, n_tau)
    profiles, cis = {}, {}
    for name, m in mats.items():
        point, ci = _interval_estimates(
            rly,
            {name: m},
            lambda x: rly.score_distributions(x, taus),
            reps=reps,
            seed=seed,
        )
        profiles[name], cis[name] = point[name], ci[name]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    try:
        colors = dict(
            zip(mats, plt.get_cmap("tab20")(np.linspace(0, 1, max(len(mats), 2))), strict=False)
        )
        plot_utils.plot_performance_profiles(
            profiles,
            taus,
            performance_profile_cis=cis,
            ax=ax,
            colors=colors,
            xlabel=r"Episode return ($\tau$)",
            ylabel=r"Fraction with return $> \tau$",
        )
        handles = [Line2D([0], [0], color=colors[n], lw=2) for n in mats]
        ax.legend(handles, list(mats), fontsize=7, loc="lower left")
        if title:
            ax.set_title(title)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path


# ---- reading run folders ---------------------------------------------------------


def episodes_path(run_dir: Path) -> Path:
    """The ``episodes.csv`` of a training run (``RUN/eval/``), an eval folder, or the file."""
    run_dir = Path(run_dir)
    for cand in (run_dir / "eval" / "episodes.csv", run_dir / "episodes.csv", run_dir):
        if cand.is_file():
            return cand
    raise UsageError(f"{run_dir}: no eval/episodes.csv or episodes.csv")


def read_episodes(path: Path) -> dict[str, dict[int, float]]:
    """``{policy: {seed: return}}`` from one ``episodes.csv``; the model policy is
    renamed ``agent``."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None
    if not rows or not {"policy", "seed", "return"} <= set(rows[0]):
        raise UsageError(f"{path}: needs rows with columns policy, seed, return")
    out: dict[str, dict[int, float]] = {}
    models = set()
    for i, r in enumerate(rows, start=2):
        name = r["policy"]
        if name.startswith(MODEL_PREFIX) or name.startswith("agent"):
            models.add(name)
            name = AGENT
        try:
            seed, ret = int(r["seed"]), float(r["return"])
        except (TypeError, ValueError):
            raise UsageError(f"{path}:{i}: bad seed or return") from None
        if not np.isfinite(ret):
            raise UsageError(f"{path}:{i}: return is not finite")
        out.setdefault(name, {})[seed] = ret
    if len(models) > 1:
        raise UsageError(f"{path}: more than one agent ({', '.join(sorted(models))})")
    return out


def score_matrices(runs: Sequence[Mapping[str, Mapping[int, float]]]) -> dict[str, np.ndarray]:
    """(runs, tasks) return matrices from the runs' ``{policy: {seed: return}}``; task k
    is each run's k-th seed in sorted order. Every run needs the same policies, and all
    policies of a run the same seeds, as many in every run."""
    if not runs:
        raise UsageError("no runs")
    names = list(runs[0])
    mats: dict[str, list[list[float]]] = {n: [] for n in names}
    n_tasks = None
    for i, r in enumerate(runs):
        if set(r) != set(names):
            raise UsageError(f"run {i + 1} has policies {sorted(r)}, run 1 has {sorted(names)}")
        seeds = sorted(r[names[0]])
        for n in names:
            if sorted(r[n]) != seeds:
                raise UsageError(f"run {i + 1}: {n} and {names[0]} ran on different seeds")
        if n_tasks is None:
            n_tasks = len(seeds)
        elif len(seeds) != n_tasks:
            raise UsageError(f"run {i + 1} has {len(seeds)} episodes, run 1 has {n_tasks}")
        for n in names:
            mats[n].append([r[n][s] for s in seeds])
    return {n: np.array(m) for n, m in mats.items()}


def format_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table, policies by IQM (best first), and the
    probability of improvement under it."""
    pct = int(round(100 * report["confidence"]))
    lines = [
        f"{report['runs']} training seeds x {report['tasks']} evaluation episodes, "
        f"stratified bootstrap ({report['reps']} resamples, {pct}% CIs, rliable)",
        "",
        f"| policy | IQM return | {pct}% CI | mean return | {pct}% CI |",
        "|---|---:|---:|---:|---:|",
    ]
    items = sorted(report["policies"].items(), key=lambda kv: -kv[1]["iqm"])
    for name, p in items:
        label = name + (" (privileged)" if p["privileged"] else "")
        if name == report["best_rule"]:
            label += " (best rule)"
        lines.append(
            f"| {label} | {p['iqm']:.1f} | [{p['iqm_ci'][0]:.1f}, {p['iqm_ci'][1]:.1f}] "
            f"| {p['mean']:.1f} | [{p['mean_ci'][0]:.1f}, {p['mean_ci'][1]:.1f}] |"
        )
    poi = report["probability_of_improvement"]
    if poi is not None:
        lines += [
            "",
            f"P({poi['policy']} > {poi['over']}) = {poi['value']:.3f} "
            f"[{poi['ci'][0]:.3f}, {poi['ci'][1]:.3f}] ({pct}% CI)",
        ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="IQM, mean, probability of improvement and performance profiles "
        "across training seeds (rliable).",
    )
    p.add_argument("runs", nargs="+", type=Path, help="training run folders (one per seed)")
    p.add_argument("--out", type=Path, required=True, help="folder for the JSON and the PNG")
    p.add_argument("--reps", type=int, default=DEFAULT_REPS, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--no-plot", action="store_true", help="skip the performance profiles")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(PROG, lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    if args.reps < 1:
        raise UsageError(f"--reps must be at least 1, got {args.reps}")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: not a folder")
    paths = [episodes_path(r) for r in args.runs]
    mats = score_matrices([read_episodes(p) for p in paths])
    if AGENT not in mats:
        raise UsageError("no agent (a model: policy) in the runs' episodes.csv")
    report = seeds_report(mats, reps=args.reps, seed=args.seed)
    report["sources"] = [str(p) for p in paths]
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / JSON_NAME).write_text(json.dumps(report, indent=2) + "\n")
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write ({exc})") from None
    print(format_table(report))
    if not args.no_plot:
        try:
            png = performance_profiles(mats, args.out / PLOT_NAME, reps=args.reps, seed=args.seed)
        except ImportError:
            print("(install matplotlib, the 'viz' extra, for the performance profiles)")
        else:
            print(f"performance profiles in {png}")
    print(f"results in {args.out / JSON_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
