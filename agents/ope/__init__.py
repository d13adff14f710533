"""Off-policy evaluation: the value of a policy from decisions another policy logged.

* Estimators (:mod:`~rec_env.agents.ope.estimators`): :class:`InverseProbabilityWeighting`
  (IPS, optional clipping), :class:`SelfNormalizedIPS` (SNIPS), :class:`DirectMethod` (DM) and
  :class:`DoublyRobust` (DR); in :mod:`~rec_env.agents.ope.doubly_robust`
  :class:`SelfNormalizedDoublyRobust` (SNDR), :class:`SwitchDoublyRobust` (Switch-DR) and
  :class:`DoublyRobustWithShrinkage` (DRos). One base class (:mod:`~rec_env.agents.ope.base`)
  and one seeded bootstrap (:mod:`~rec_env.agents.ope.bootstrap`; the direct method refits its
  reward model in every replicate, :mod:`~rec_env.agents.ope.refit`). Each returns an
  :class:`OPEResult`: the estimate, a 95 % confidence interval, the effective sample size and
  weight statistics after clipping, the unsupported mass, the DR correction's share and the
  count of undefined bootstrap replicates (:class:`OPEWarning` when they matter).
* Positions: a log with ``positions`` (one row per shown position) takes 3-D
  ``(n, n_actions, n_positions)`` target distributions, as Open Bandit Pipeline does.
* Slates (:mod:`~rec_env.agents.ope.slates`): :class:`SlateIPS`, whole-slate IPS and SNIPS of
  a slate policy on logged slate messages (one reward per message), with
  :func:`slate_target_probabilities`; :class:`SlateIndependentIPS`, the per-position
  (item-position model) IPS for logs with one reward per position.
* Reward models (:mod:`~rec_env.agents.ope.reward_models`): any scikit-learn style regressor or
  classifier, one per action or one pooled over (context, action features), cross-fitted.
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
    TINY_PROPENSITY,
    UNSUPPORTED_MASS_WARNING,
    BootstrapSettings,
    OffPolicyEstimator,
    OPEResult,
    OPEWarning,
    check_target_probabilities,
    importance_weights,
    unsupported_mass,
    weight_diagnostics,
)
from rec_env.agents.ope.doubly_robust import (
    DoublyRobustWithShrinkage,
    SelfNormalizedDoublyRobust,
    SwitchDoublyRobust,
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
    PooledRewardModel,
    cross_fitted_rewards,
    default_estimator,
)
from rec_env.agents.ope.slates import SlateIndependentIPS, SlateIPS, slate_target_probabilities
from rec_env.datasets.logged import LoggedBanditData, LoggedSlateData

ALL_ESTIMATORS: dict[str, type[OffPolicyEstimator]] = {
    **ESTIMATORS,
    **{
        cls.name: cls
        for cls in (SelfNormalizedDoublyRobust, SwitchDoublyRobust, DoublyRobustWithShrinkage)
    },
}
"""Every estimator by short name: :data:`ESTIMATORS` (the default four) and ``sndr``,
``switch_dr``, ``dros``."""

__all__ = [
    "ALL_ESTIMATORS",
    "ESTIMATORS",
    "TINY_PROPENSITY",
    "UNSUPPORTED_MASS_WARNING",
    "BootstrapSettings",
    "DirectMethod",
    "DoublyRobust",
    "DoublyRobustWithShrinkage",
    "InverseProbabilityWeighting",
    "LoggedBanditData",
    "LoggedSlateData",
    "OPEResult",
    "OPEWarning",
    "OffPolicyEstimator",
    "PerActionRewardModel",
    "PooledRewardModel",
    "SelfNormalizedDoublyRobust",
    "SelfNormalizedIPS",
    "SlateIPS",
    "SlateIndependentIPS",
    "SwitchDoublyRobust",
    "check_target_probabilities",
    "cross_fitted_rewards",
    "default_estimator",
    "evaluate_policy",
    "importance_weights",
    "slate_target_probabilities",
    "unsupported_mass",
    "weight_diagnostics",
]
