"""Rule-based baselines: ``make_policy(name, env)``, ``policy_names()``.

See :mod:`roadedge.baselines.policies` for the names and
:mod:`roadedge.baselines.rules` for each rule and the seed it comes from.
"""

from .policies import RulePolicy, make_policy, policy_names

__all__ = ["RulePolicy", "make_policy", "policy_names"]
