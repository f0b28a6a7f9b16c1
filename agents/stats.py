"""Summary statistics for evaluation results: bootstrap CIs and the IQM.

The interquartile mean (IQM) and bootstrap confidence intervals follow the
recommendations of Agarwal et al., "Deep RL at the Edge of the Statistical
Precipice" (NeurIPS 2021): robust to outlier episodes and honest about the
uncertainty of a small number of runs.

Across training seeds, :mod:`roadedge.agents.seeds_report` uses the authors' library,
``rliable`` (stratified bootstrap, probability of improvement, performance profiles).
The single-run helpers here stay hand-written, on purpose:

* :func:`iqm` is ``rliable.metrics.aggregate_iqm`` (scipy's 25 % ``trim_mean``), and
  :func:`bootstrap_ci` is the percentile bootstrap of the mean that rliable's
  ``StratifiedBootstrap`` gives on one task (``tests/test_seeds_report.py`` checks
  both). Calling rliable instead would make ``roadedge-eval`` need the ``train`` extra
  (rliable pulls arch, statsmodels, seaborn and ``pandas<3``) and, since rliable 1.2
  draws from NumPy's global random state, would change every published CI for no gain.
* :func:`paired_delta` (the per-seed paired difference under common random numbers)
  has no rliable equivalent: rliable compares score distributions, not pairs.
"""

from __future__ import annotations

import numpy as np


def iqm(values: np.ndarray) -> float:
    """Mean of the middle 50 % of the values (trimming 25 % at each end)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    if n == 0:
        return float("nan")
    lo, hi = int(np.floor(0.25 * n)), int(np.ceil(0.75 * n))
    if hi <= lo:
        return float(x.mean())
    return float(x[lo:hi].mean())


def bootstrap_ci(
    values: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean; deterministic for a given ``seed``."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def paired_delta(records: list[dict], policy: str, reference: str) -> tuple[float, float, float]:
    """Mean per-seed return difference ``policy - reference`` with its 95 % bootstrap CI.

    Every policy meets the same traffic on a seed (common random numbers), so
    this paired difference is far tighter than comparing the two means' CIs.
    """
    ref = {r["seed"]: r["return"] for r in records if r["policy"] == reference}
    diff = np.array(
        [
            r["return"] - ref[r["seed"]]
            for r in records
            if r["policy"] == policy and r["seed"] in ref
        ]
    )
    if diff.size == 0:
        raise ValueError(f"no common seeds between {policy!r} and {reference!r}")
    lo, hi = bootstrap_ci(diff)
    return float(diff.mean()), lo, hi
