r"""Offline learning: targeting policies learned from logged bandit data.

Every learner takes a :class:`~rec_env.datasets.LoggedBanditData` and returns a
:class:`~rec_env.agents.base.Policy` (consent-safe, batch-first, seeded, saveable without
pickle when its models are linear or scikit-learn tree models). By name, through :func:`learn`:

=================  =====================================================================
``reward_model``   reward-model argmax, any regressor or classifier, per action or pooled
                   (:mod:`~rec_env.agents.offline.reward_model`)
``t_learner``      uplift: one outcome model per action (:mod:`~rec_env.agents.offline.uplift`)
``x_learner``      uplift: Künzel et al. 2019, propensity-weighted
``dr_learner``     uplift: Kennedy 2020, cross-fitted doubly robust pseudo-outcomes
``ipw``            weighted classification maximising the IPS or DR value
                   (:mod:`~rec_env.agents.offline.ipw`)
``linucb_replay``  LinUCB / linear TS trained by rejection-sampling replay
``lin_ts_replay``  (:mod:`~rec_env.agents.offline.bandits`)
=================  =====================================================================

A classifier on an outcome with a cost model (:class:`OutcomeReward`,
``reward = constant + value·outcome − cost[action]``) turns :math:`P(\text{outcome})` into
expected profit.

Example::

    from rec_env.agents.offline import OutcomeReward, learn
    from rec_env.datasets import load_hillstrom

    data = load_hillstrom("conversion")
    policy = learn("t_learner", data, control="no_email",
                   reward=OutcomeReward(value=30.0, cost=[0.1, 0.1, 0.0]))
    actions = policy.predict(data.contexts)
"""

from __future__ import annotations

from rec_env.agents.offline.bandits import fit_lin_ts_replay, fit_linucb_replay
from rec_env.agents.offline.base import STATE_FILE, OfflinePolicy
from rec_env.agents.offline.ipw import IPWLearnerPolicy, fit_ipw_learner, policy_rewards
from rec_env.agents.offline.learners import (
    LEARNERS,
    learn,
    learner_options,
    offline_policy_classes,
)
from rec_env.agents.offline.models import (
    EstimatorModel,
    LinearModel,
    OutcomeReward,
    fit_model,
)
from rec_env.agents.offline.pipeline import (
    OfflineRun,
    evaluate_saved_run,
    run_offline,
    write_run,
)
from rec_env.agents.offline.reward_model import RewardModelPolicy, fit_reward_model
from rec_env.agents.offline.synthetic import SyntheticCampaign, synthetic_campaign
from rec_env.agents.offline.trees import TreeEnsembleModel
from rec_env.agents.offline.uplift import (
    DRLearnerPolicy,
    TLearnerPolicy,
    UpliftPolicy,
    XLearnerPolicy,
    fit_dr_learner,
    fit_t_learner,
    fit_x_learner,
)

__all__ = [
    "LEARNERS",
    "STATE_FILE",
    "DRLearnerPolicy",
    "EstimatorModel",
    "IPWLearnerPolicy",
    "LinearModel",
    "OfflinePolicy",
    "OfflineRun",
    "OutcomeReward",
    "RewardModelPolicy",
    "SyntheticCampaign",
    "TLearnerPolicy",
    "TreeEnsembleModel",
    "UpliftPolicy",
    "XLearnerPolicy",
    "evaluate_saved_run",
    "fit_dr_learner",
    "fit_ipw_learner",
    "fit_lin_ts_replay",
    "fit_linucb_replay",
    "fit_model",
    "fit_reward_model",
    "fit_t_learner",
    "fit_x_learner",
    "learn",
    "learner_options",
    "offline_policy_classes",
    "policy_rewards",
    "run_offline",
    "synthetic_campaign",
    "write_run",
]
