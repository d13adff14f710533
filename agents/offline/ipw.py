r"""Off-policy learning by weighted classification: maximise the IPS or DR value directly.

The value of a deterministic policy :math:`\pi` on the log is estimated by

.. math::

    \hat V(\pi) = \frac1n \sum_i \Gamma_{i,\pi(x_i)}, \qquad
    \Gamma^{\mathrm{IPS}}_{i,a} = \frac{\mathbb 1[a = a_i]\, r_i}{p_i}, \qquad
    \Gamma^{\mathrm{DR}}_{i,a} = \hat q(x_i, a)
        + \frac{\mathbb 1[a = a_i]\,(r_i - \hat q(x_i, a))}{p_i},

with :math:`\hat q` cross-fitted
(:func:`~rec_env.agents.offline.nuisance.cross_fitted_outcomes`).
Maximising it is cost-sensitive classification, reduced to weighted classification: every row
:math:`i` and action :math:`a` becomes an example with label :math:`a` and weight
:math:`w_{i,a} = \Gamma_{i,a} - \min_b \Gamma_{i,b} \ge 0`. Since
:math:`\sum_i w_{i,\pi(x_i)} = n\hat V(\pi) - \sum_i \min_b \Gamma_{i,b}` and the last sum does
not depend on :math:`\pi`, the classifier that maximises the weighted accuracy maximises
:math:`\hat V`. Examples of weight 0 are dropped.

**Negative rewards.** For IPS with :math:`r_i \ge 0` this is exactly Open Bandit Pipeline's
``IPWLearner`` (label :math:`a_i`, weight :math:`r_i / p_i`). A negative reward cannot be a
sample weight; here it gives the logged action weight 0 and every *other* action weight
:math:`|r_i| / p_i` ("avoid what lost money"), which is the same reduction, not a shift of the
rewards (a shift would change the sample objective). Weights are divided by their mean, so that
the classifier's regularisation means the same whatever the reward's units.

Reference:
    M. Dudík, J. Langford and L. Li. Doubly robust policy evaluation and learning. ICML 2011.
    B. Zadrozny, J. Langford and N. Abe. Cost-sensitive learning by cost-proportionate
    example weighting. ICDM 2003.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from rec_env.agents.base import FeaturesLike
from rec_env.agents.offline.base import OfflinePolicy
from rec_env.agents.offline.models import FittedModel, LinearModel, fit_model, is_classifier
from rec_env.agents.offline.nuisance import cross_fitted_outcomes
from rec_env.agents.offline.trees import TreeEnsembleModel
from rec_env.datasets.logged import LoggedBanditData

__all__ = ["OBJECTIVES", "IPWLearnerPolicy", "fit_ipw_learner", "policy_rewards"]

OBJECTIVES: tuple[str, ...] = ("ips", "dr")
CLASSIFIER = "classifier"


class IPWLearnerPolicy(OfflinePolicy):
    """The action a weighted classifier finds most likely (lowest index on ties).

    Args:
        n_actions: Number of actions.
        action_names: Names of the actions.
        random_state: Seed of the policy's generator.
        action_channels: Channel of each action (consent-safe when known).
        features: Feature space of the observations.
        models: ``classifier``: the fitted classifier over action indices.
        model_links: Links of the models, when loading.
        objective: ``"ips"`` or ``"dr"`` (recorded for reports).
    """

    algorithm: ClassVar[str] = "ipw_learner"

    def __init__(
        self,
        n_actions: int,
        action_names: Sequence[str] | None = None,
        random_state: int | None = None,
        *,
        action_channels: Sequence[str] | None = None,
        features: FeaturesLike = None,
        models: Mapping[str, FittedModel] | None = None,
        model_links: Mapping[str, str] | None = None,
        objective: str = "ips",
    ) -> None:
        super().__init__(
            n_actions,
            action_names,
            random_state,
            action_channels=action_channels,
            features=features,
            models=models,
            model_links=model_links,
        )
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        self.objective = objective
        if models is not None:
            self._check_models()

    def required_models(self) -> list[str]:
        """The one classifier."""
        return [CLASSIFIER]

    def scores(self, obs: np.ndarray) -> np.ndarray:
        """``(n, A)`` the classifier's probability of each action (-1 for unseen labels)."""
        model = self.models[CLASSIFIER]
        inputs = self.inputs(obs)
        out = np.full((inputs.shape[0], self.n_actions), -1.0)
        out[:, self._labels()] = model.probabilities(inputs)
        return out

    def _labels(self) -> np.ndarray:
        """The action of each of the classifier's classes."""
        model = self.models[CLASSIFIER]
        if isinstance(model, LinearModel | TreeEnsembleModel):
            return model.class_values.astype(np.intp)
        return np.asarray(model.estimator.classes_).astype(np.intp)  # type: ignore[attr-defined]

    def _check_models(self) -> None:
        """The base checks, and that the classifier is one over action indices.

        Raises:
            ValueError: If it is a regressor or its classes are not actions.
        """
        super()._check_models()
        model = self.models[CLASSIFIER]
        if getattr(model, "link", None) == "identity":
            raise ValueError("the ipw_learner's classifier is a regressor")
        labels = self._labels()
        if labels.size == 0 or labels.min() < 0 or labels.max() >= self.n_actions:
            raise ValueError(f"the classifier's classes must be actions in [0, {self.n_actions})")

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, with the objective."""
        return {**super().get_config(), "objective": self.objective}


def policy_rewards(
    data: LoggedBanditData,
    objective: str,
    estimated_rewards: np.ndarray | None = None,
) -> np.ndarray:
    r"""``(n, A)`` :math:`\Gamma_{i,a}`: each row's IPS or DR reward of every action.

    Raises:
        ValueError: For an unknown objective, or DR without ``(n, A)`` estimated rewards.
    """
    rows = np.arange(data.n)
    if objective == "ips":
        out = np.zeros((data.n, data.n_actions))
        out[rows, data.actions] = data.rewards / data.propensities
        return out
    if objective != "dr":
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if estimated_rewards is None or estimated_rewards.shape != (data.n, data.n_actions):
        raise ValueError(f"DR needs ({data.n}, {data.n_actions}) estimated rewards")
    out = estimated_rewards.copy()
    logged = estimated_rewards[rows, data.actions]
    out[rows, data.actions] += (data.rewards - logged) / data.propensities
    return out


def fit_ipw_learner(
    data: LoggedBanditData,
    classifier: Any = None,
    *,
    objective: str = "ips",
    reward_estimator: Any = None,
    n_folds: int = 2,
    features: FeaturesLike = None,
    action_channels: Sequence[str] | None = None,
    random_state: int | None = 0,
) -> IPWLearnerPolicy:
    r"""Learn a policy by maximising the IPS or DR value (weighted classification).

    Args:
        data: The logged decisions (rewards may be negative; see the module docstring).
        classifier: A scikit-learn style classifier taking ``sample_weight`` (default:
            ``LogisticRegression(max_iter=1000)``, multinomial).
        objective: ``"ips"`` or ``"dr"``.
        reward_estimator: Reward regressor of DR's :math:`\hat q` (default: ridge).
        n_folds: Cross-fitting folds of :math:`\hat q`.
        features: Feature space of the contexts (default: standardised on ``data``).
        action_channels: Channel of each action, for consent safety.
        random_state: Seed of the folds and of the policy's generator.

    Raises:
        ValueError: For an unknown objective, a regressor as classifier, or a log whose
            weights are all zero (nothing to learn).
    """
    from rec_env.agents.ope.reward_models import RidgeRewardEstimator
    from rec_env.feature_space import FeatureSpace

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if classifier is None:
        from sklearn.linear_model import LogisticRegression

        classifier = LogisticRegression(max_iter=1000)
    if not is_classifier(classifier):
        raise ValueError(f"{type(classifier).__name__} is not a classifier")
    space = (
        features
        if features is not None
        else FeatureSpace.standardised(data.feature_names, data.contexts)
    )
    policy = IPWLearnerPolicy(
        data.n_actions,
        data.action_names,
        random_state,
        action_channels=action_channels,
        features=space,
        objective=objective,
    )
    inputs = policy.inputs(data.contexts)
    estimated = None
    if objective == "dr":
        template = reward_estimator if reward_estimator is not None else RidgeRewardEstimator()
        rng = np.random.default_rng(random_state)
        estimated = cross_fitted_outcomes(
            template, inputs, data.rewards, data.actions, data.n_actions, n_folds, rng
        )
    gamma = policy_rewards(data, objective, estimated)
    weights = gamma - gamma.min(axis=1, keepdims=True)
    rows, labels = np.nonzero(weights > 0)
    if rows.size == 0:
        raise ValueError("every weight is zero: the log does not favour any action")
    sample_weight = weights[rows, labels]
    sample_weight = sample_weight / sample_weight.mean()
    if np.unique(labels).size == 1:  # one label: a classifier cannot fit, the policy is constant
        model: FittedModel = LinearModel(
            np.zeros((1, inputs.shape[1])),
            np.zeros(1),
            np.zeros(inputs.shape[1]),
            np.ones(inputs.shape[1]),
            np.array([float(labels[0])]),
            "softmax",
        )
    else:
        model = fit_model(
            classifier,
            inputs[rows],
            labels.astype(np.float64),
            sample_weight,
            constant_if_single=False,
        )
    policy.models = {CLASSIFIER: model}
    policy._check_models()
    return policy
