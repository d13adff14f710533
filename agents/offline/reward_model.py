r"""Reward-model argmax: predict every action's reward, take the best (the direct method's policy).

:func:`fit_reward_model` fits a scikit-learn style regressor or classifier to the log and
returns a :class:`RewardModelPolicy` choosing :math:`\arg\max_a \hat r(x, a)`. Two designs:

* one model per action (default), fitted on the rows that took it:
  :math:`\hat y(x, a) = f_a(x)`;
* one pooled model (``pooled=True``) over the design
  :math:`[x,\ z_a,\ x \otimes z_a]`, with :math:`z_a` the one-hot of the action or the
  action's features (``action_features``, ``(A, d_a)``), fitted on every row. With action
  features, actions that were rarely logged borrow strength from similar ones.

The target :math:`y` is the reward, or an ``outcome`` column (e.g. purchase 0/1) with an
:class:`~rec_env.agents.offline.models.OutcomeReward` :math:`r = c + v\,y - \mathrm{cost}_a`.
Then a classifier's :math:`P(y = 1 \mid x, a)` becomes the expected profit
:math:`c + v\,P(y = 1 \mid x, a) - \mathrm{cost}_a` — the way to use a classifier for a
continuous reward (a classifier fitted on a profit itself fails: the target is not discrete).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from rec_env.agents.base import FeaturesLike
from rec_env.agents.offline.base import OfflinePolicy
from rec_env.agents.offline.models import FittedModel, OutcomeReward, fit_model
from rec_env.agents.offline.nuisance import per_action_models
from rec_env.datasets.logged import LoggedBanditData

__all__ = ["RewardModelPolicy", "fit_reward_model", "pooled_design"]

POOLED = "pooled"


def _action_model(a: int) -> str:
    return f"action_{a}"


def pooled_design(inputs: np.ndarray, action_features: np.ndarray) -> np.ndarray:
    r"""``(n, A, d + d_a + d\,d_a)`` design :math:`[x, z_a, x \otimes z_a]` of every action.

    Args:
        inputs: ``(n, d)`` scaled contexts.
        action_features: ``(A, d_a)`` features :math:`z_a` of the actions.
    """
    n, d = inputs.shape
    n_actions, d_a = action_features.shape
    x = np.broadcast_to(inputs[:, None, :], (n, n_actions, d))
    z = np.broadcast_to(action_features[None, :, :], (n, n_actions, d_a))
    cross = (inputs[:, None, :, None] * action_features[None, :, None, :]).reshape(
        n, n_actions, d * d_a
    )
    return np.concatenate([x, z, cross], axis=2)


class RewardModelPolicy(OfflinePolicy):
    r"""Greedy targeting: the allowed action with the highest predicted reward.

    Chooses :math:`\arg\max_a \hat r(x, a)` with
    :math:`\hat r(x, a) = c + v\,\hat y(x, a) - \mathrm{cost}_a` (lowest index on ties);
    :math:`\hat y` is the models' expected target (the reward itself when ``value`` is 1 and
    the costs and constant 0).

    Args:
        n_actions: Number of actions.
        action_names: Names of the actions.
        random_state: Seed of the policy's generator.
        action_channels: Channel of each action (consent-safe when known).
        features: Feature space of the observations (the models see ``features.scaled``).
        models: ``action_<a>`` for every action, or one ``pooled`` model.
        model_links: Links of the models, when loading.
        reward: ``{"value", "cost", "constant"}`` of the
            :class:`~rec_env.agents.offline.models.OutcomeReward` (default: the target is the
            reward).
        action_features: ``(A, d_a)`` action features of a pooled model (``None``: one-hot).
        pooled: One pooled model instead of one per action.
    """

    algorithm: ClassVar[str] = "reward_model"

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
        reward: Mapping[str, Any] | None = None,
        action_features: Any = None,
        pooled: bool = False,
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
        self.reward = OutcomeReward(**(reward or {}))
        self.costs = self.reward.costs(self.n_actions)
        self.pooled = bool(pooled)
        self.action_features = (
            np.eye(self.n_actions)
            if action_features is None
            else np.asarray(action_features, dtype=np.float64)
        )
        if self.action_features.ndim != 2 or self.action_features.shape[0] != self.n_actions:
            raise ValueError(
                f"action_features must have shape ({self.n_actions}, d_a), "
                f"got {self.action_features.shape}"
            )
        self._explicit_action_features = action_features is not None
        if models is not None:
            self._check_models()

    def required_models(self) -> list[str]:
        """``pooled``, or ``action_<a>`` for every action."""
        return [POOLED] if self.pooled else [_action_model(a) for a in range(self.n_actions)]

    def input_dim(self, name: str) -> int:
        """The features, or the pooled design's width."""
        if name != POOLED:
            return self.features.d
        d, d_a = self.features.d, self.action_features.shape[1]
        return d + d_a + d * d_a

    def expected_targets(self, obs: np.ndarray) -> np.ndarray:
        r"""``(n, A)`` :math:`\hat y(x, a)`, the models' expected target of every action."""
        inputs = self.inputs(obs)
        if self.pooled:
            design = pooled_design(inputs, self.action_features)
            n, n_actions, width = design.shape
            flat = self.models[POOLED].expected(design.reshape(n * n_actions, width))
            return flat.reshape(n, n_actions)
        return np.stack(
            [self.models[_action_model(a)].expected(inputs) for a in range(self.n_actions)], axis=1
        )

    def scores(self, obs: np.ndarray) -> np.ndarray:
        r"""``(n, A)`` predicted rewards :math:`c + v\,\hat y(x, a) - \mathrm{cost}_a`."""
        return self.reward.rewards(self.expected_targets(obs))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (the reward spec, the design; arrays go to ``state.npz``)."""
        return {
            **super().get_config(),
            "reward": {
                "value": float(self.reward.value),
                "cost": self.costs.tolist(),
                "constant": float(self.reward.constant),
            },
            "action_features": (
                self.action_features.tolist() if self._explicit_action_features else None
            ),
            "pooled": self.pooled,
        }


def fit_reward_model(
    data: LoggedBanditData,
    estimator: Any = None,
    *,
    outcome: np.ndarray | None = None,
    reward: OutcomeReward | Mapping[str, Any] | None = None,
    pooled: bool = False,
    action_features: np.ndarray | None = None,
    features: FeaturesLike = None,
    action_channels: Sequence[str] | None = None,
    random_state: int | None = 0,
) -> RewardModelPolicy:
    """Fit the reward model(s) of a :class:`RewardModelPolicy` on a log.

    Args:
        data: The logged decisions.
        estimator: A scikit-learn style regressor or classifier (default: ridge regression,
            :class:`~rec_env.agents.ope.reward_models.RidgeRewardEstimator`); copied per model.
        outcome: ``(n,)`` outcome to model instead of the rewards (a classifier needs a
            discrete one); the reward is then ``reward`` applied to it.
        reward: How the outcome becomes a reward (default: the outcome is the reward).
        pooled: One model over :func:`pooled_design` instead of one per action.
        action_features: ``(A, d_a)`` action features of the pooled design (default one-hot).
        features: Feature space of the contexts (default: standardised on ``data``).
        action_channels: Channel of each action, for consent safety.
        random_state: Seed of the policy's generator.

    Raises:
        ValueError: If the outcome has the wrong length, or a classifier is given a
            continuous target.
    """
    from rec_env.agents.ope.reward_models import RidgeRewardEstimator
    from rec_env.feature_space import FeatureSpace

    template = estimator if estimator is not None else RidgeRewardEstimator()
    reward = OutcomeReward.coerce(reward)
    target = data.rewards if outcome is None else np.asarray(outcome, dtype=np.float64)
    if target.shape != (data.n,):
        raise ValueError(f"outcome must have shape ({data.n},), got {target.shape}")
    space = (
        features
        if features is not None
        else FeatureSpace.standardised(data.feature_names, data.contexts)
    )
    policy = RewardModelPolicy(
        data.n_actions,
        data.action_names,
        random_state,
        action_channels=action_channels,
        features=space,
        reward=None if reward is None else reward.to_dict(),
        action_features=action_features,
        pooled=pooled,
    )
    inputs = policy.inputs(data.contexts)
    models: dict[str, FittedModel] = {}
    if pooled:
        design = pooled_design(inputs, policy.action_features)[np.arange(data.n), data.actions]
        models[POOLED] = fit_model(template, design, target)
    else:
        fitted = per_action_models(template, inputs, target, data.actions, data.n_actions)
        models.update({_action_model(a): model for a, model in enumerate(fitted)})
    policy.models = models
    policy._check_models()
    return policy
