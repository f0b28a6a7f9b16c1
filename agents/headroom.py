"""How far the rules are from a privileged oracle: the best rule and the headroom.

A policy is one of three kinds:

* an *agent*: a trained model, named ``model:<path.zip>``;
* a *privileged* policy (``oracle``): it reads the hidden future, so it is an
  upper reference that measures the headroom, never a baseline to beat;
* a *rule*: every other policy (the baselines of :mod:`roadedge.baselines`).

The *best rule* is the rule with the highest mean return among those evaluated.
The *headroom* is ``G = mean(R_oracle - R_ref)`` with the reference ``failover``
(never migrate, only fail over) when it was evaluated, else ``noop``; a policy's
*headroom share* is ``mean(R - R_ref) / G`` on the seeds the policy, the
reference and the oracle share (0: no better than the reference, 1: as good as
the oracle). Every difference is paired on seeds (common random numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from roadedge.baselines.policies import PRIVILEGED_POLICIES, is_privileged

from .stats import paired_delta

MODEL_PREFIX = "model:"
# reference policies of the headroom, in order of preference
HEADROOM_REFERENCES = ("failover", "noop")
# the best rule is also compared with this one (the simple "follow the vehicle" rule)
FOLLOW_FAILOVER = "follow+failover"


def is_agent(policy: str) -> bool:
    """A trained model (``model:<path>``)."""
    return policy.startswith(MODEL_PREFIX)


def is_rule(policy: str) -> bool:
    """Neither an agent nor a privileged policy."""
    return not is_agent(policy) and not is_privileged(policy)


def privileged_label(name: str) -> str:
    """``name`` marked as privileged (``oracle (privileged)``); other names unchanged."""
    return f"{name} (privileged)" if is_privileged(name) else name


def policy_order(records: Sequence[dict[str, Any]]) -> list[str]:
    """The policies of ``records``, in first-appearance order."""
    order: list[str] = []
    for r in records:
        if r["policy"] not in order:
            order.append(r["policy"])
    return order


def _returns(records: Sequence[dict[str, Any]], policy: str) -> dict[Any, float]:
    return {r["seed"]: float(r["return"]) for r in records if r["policy"] == policy}


def best_rule(records: Sequence[dict[str, Any]]) -> str | None:
    """The rule with the highest mean return (the first one on a tie), or None."""
    best, best_mean = None, -np.inf
    for name in policy_order(records):
        if not is_rule(name):
            continue
        mean = float(np.mean(list(_returns(records, name).values())))
        if mean > best_mean:
            best, best_mean = name, mean
    return best


def headroom_reference(policies: Sequence[str]) -> str | None:
    """``failover`` if evaluated, else ``noop`` if evaluated, else None."""
    return next((p for p in HEADROOM_REFERENCES if p in policies), None)


def oracle_policy(policies: Sequence[str]) -> str | None:
    """The privileged policy among ``policies`` (the first known one), or None."""
    return next((p for p in PRIVILEGED_POLICIES if p in policies), None)


def headroom_share(
    records: Sequence[dict[str, Any]],
    policy: str,
    reference: str | None = None,
    oracle: str | None = None,
) -> float | None:
    """``(mean R - mean R_ref) / (mean R_oracle - mean R_ref)`` on the seeds all three share.

    ``reference`` and ``oracle`` default to :func:`headroom_reference` and
    :func:`oracle_policy` of the evaluated policies. None when the policy, the
    reference or the oracle is missing, they share no seed, or the oracle is
    not ahead of the reference (denominator <= 0: no headroom to share).
    """
    policies = policy_order(records)
    reference = reference or headroom_reference(policies)
    oracle = oracle or oracle_policy(policies)
    if reference is None or oracle is None:
        return None
    r_pol, r_ref, r_orc = (_returns(records, p) for p in (policy, reference, oracle))
    seeds = [s for s in r_pol if s in r_ref and s in r_orc]
    if not seeds:
        return None
    gain = np.mean([r_pol[s] - r_ref[s] for s in seeds])
    room = np.mean([r_orc[s] - r_ref[s] for s in seeds])
    if not room > 0:
        return None
    return float(gain / room)


def _gap(records: Sequence[dict[str, Any]], policy: str, minus: str) -> dict[str, Any] | None:
    """``policy - minus`` paired on seeds, with its 95 % CI, or None without common seeds."""
    try:
        mean, lo, hi = paired_delta(list(records), policy, minus)
    except ValueError:
        return None
    seeds = set(_returns(records, policy)) & set(_returns(records, minus))
    return {
        "policy": policy,
        "minus": minus,
        "mean": mean,
        "ci_low": lo,
        "ci_high": hi,
        "seeds": len(seeds),
    }


def headroom_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The gaps a closing note quotes, each a paired mean with its 95 % bootstrap CI.

    Keys: ``reference``, ``oracle``, ``best_rule`` (names or None) and the gaps
    ``G`` (oracle - reference), ``best_minus_failover``,
    ``best_minus_follow_failover`` and ``oracle_minus_best``: each a dict
    (``policy``, ``minus``, ``mean``, ``ci_low``, ``ci_high``, ``seeds``), or None
    when a policy it needs was not evaluated (or is the same policy).
    """
    policies = policy_order(records)
    reference = headroom_reference(policies)
    oracle = oracle_policy(policies)
    best = best_rule(records)

    def gap(policy: str | None, minus: str | None) -> dict[str, Any] | None:
        if policy is None or minus is None or policy == minus:
            return None
        if policy not in policies or minus not in policies:
            return None
        return _gap(records, policy, minus)

    return {
        "reference": reference,
        "oracle": oracle,
        "best_rule": best,
        "G": gap(oracle, reference),
        "best_minus_failover": gap(best, "failover"),
        "best_minus_follow_failover": gap(best, FOLLOW_FAILOVER),
        "oracle_minus_best": gap(oracle, best),
    }


def _fmt(g: dict[str, Any]) -> str:
    return f"{g['mean']:+.1f} [{g['ci_low']:+.1f}, {g['ci_high']:+.1f}]"


def format_headroom(summary: dict[str, Any]) -> str:
    """One line per available gap of :func:`headroom_summary` (empty when none is)."""
    lines = []
    best = summary.get("best_rule")
    if summary.get("G"):
        g = summary["G"]
        lines.append(
            f"G = {g['policy']} − {g['minus']} = {_fmt(g)} (headroom, paired, 95% CI, "
            f"{g['seeds']} seeds)"
        )
    for key in ("best_minus_failover", "best_minus_follow_failover"):
        if summary.get(key):
            g = summary[key]
            lines.append(f"best rule {best} − {g['minus']} = {_fmt(g)}")
    if summary.get("oracle_minus_best"):
        g = summary["oracle_minus_best"]
        lines.append(f"{g['policy']} − best rule {best} = {_fmt(g)}")
    return "\n".join(lines)


def headroom_fields(records: Sequence[dict[str, Any]], policy: str) -> dict[str, Any]:
    """The summary-row fields of ``policy``: ``privileged``, ``best_rule``,
    ``delta_best_mean/low/high`` (paired difference to the best rule, None without
    one), ``headroom_share`` (None when undefined) and ``headroom_ref``."""
    policies = policy_order(records)
    best = best_rule(records)
    delta = _gap(records, policy, best) if best is not None else None
    return {
        "privileged": is_privileged(policy),
        "best_rule": best,
        "delta_best_mean": delta["mean"] if delta else None,
        "delta_best_low": delta["ci_low"] if delta else None,
        "delta_best_high": delta["ci_high"] if delta else None,
        "headroom_share": headroom_share(records, policy),
        "headroom_ref": headroom_reference(policies),
    }
