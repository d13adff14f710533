"""Off-policy evaluation: the value of a policy from decisions another policy logged.

* Estimators (:mod:`~rec_env.agents.ope.estimators`): :class:`InverseProbabilityWeighting`
  (IPS, optional clipping), :class:`SelfNormalizedIPS` (SNIPS), :class:`DirectMethod` (DM) and
  :class:`DoublyRobust` (DR), on one base class (:mod:`~rec_env.agents.ope.base`) and one
  seeded bootstrap (:mod:`~rec_env.agents.ope.bootstrap`). Each returns an :class:`OPEResult`:
  the estimate, a 95 % confidence interval, the effective sample size and the largest and mean
  importance weights.
* Slates (:mod:`~rec_env.agents.ope.slates`): :class:`SlateIPS`, whole-slate IPS and SNIPS of
  a slate policy on logged slate messages (one reward per message: no per-position
  estimators), with :func:`slate_target_probabilities`.
* Reward models (:mod:`~rec_env.agents.ope.reward_models`): any scikit-learn style regressor or
  classifier, one per action, cross-fitted.
* Input: :class:`~rec_env.datasets.LoggedBanditData` and the target policy's
  ``action_probabilities`` in the logged contexts (the strategy catalog, or the item action
  table of a single-product item run). :mod:`~rec_env.agents.ope.simulation` logs
  exploring decisions on the simulator, where the true value is known;
  :mod:`~rec_env.datasets.decision_log` reads the log of ``recenv serve``.

Example::

    import numpy as np

    from rec_env.agents.ope import evaluate_policy
    from rec_env.datasets import load_hillstrom

    data = load_hillstrom("visit")
    always_mens = np.zeros((data.n, 3)); always_mens[:, 0] = 1.0
    for result in evaluate_policy(data, always_mens):
        print(result.estimator, result.value, result.ci_low, result.ci_high)
"""

from __future__ import annotations

from rec_env.agents.ope.base import (
    BootstrapSettings,
    OffPolicyEstimator,
    OPEResult,
    check_target_probabilities,
    importance_weights,
    weight_diagnostics,
)
from rec_env.agents.ope.estimators import (
    ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    SelfNormalizedIPS,
    evaluate_policy,
)
from rec_env.agents.ope.reward_models import (
    PerActionRewardModel,
    cross_fitted_rewards,
    default_estimator,
)
from rec_env.agents.ope.slates import SlateIPS, slate_target_probabilities
from rec_env.datasets.logged import LoggedBanditData, LoggedSlateData

__all__ = [
    "ESTIMATORS",
    "BootstrapSettings",
    "DirectMethod",
    "DoublyRobust",
    "InverseProbabilityWeighting",
    "LoggedBanditData",
    "LoggedSlateData",
    "OPEResult",
    "OffPolicyEstimator",
    "PerActionRewardModel",
    "SelfNormalizedIPS",
    "SlateIPS",
    "check_target_probabilities",
    "cross_fitted_rewards",
    "default_estimator",
    "evaluate_policy",
    "importance_weights",
    "slate_target_probabilities",
    "weight_diagnostics",
]
