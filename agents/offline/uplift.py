r"""Uplift meta-learners for campaigns with several treatments and one control action.

Each learner estimates, for every treatment :math:`t` against the control :math:`c`, the
conditional effect on the outcome :math:`\tau_t(x) = E[Y \mid x, t] - E[Y \mid x, c]`, and the
:class:`UpliftPolicy` treats a customer with the treatment of highest net uplift

.. math::

    u_t(x) = v\,\hat\tau_t(x) - (\mathrm{cost}_t - \mathrm{cost}_c)

if it is positive, else takes the control (with :math:`v` and the costs of an
:class:`~rec_env.agents.offline.models.OutcomeReward`; :math:`v = 1`, no costs by default).

* **T-learner** (two models): :math:`\hat\tau_t = \hat\mu_t - \hat\mu_c`, one outcome model
  per action.
* **X-learner** (Künzel et al. 2019): from the T-learner's :math:`\hat\mu`, imputed effects
  :math:`D^1_i = Y_i - \hat\mu_c(x_i)` on the treated and :math:`D^0_i = \hat\mu_t(x_i) - Y_i`
  on the controls, regressed into :math:`\hat\tau^1_t` and :math:`\hat\tau^0_t`, combined as
  :math:`\hat\tau_t = g_t\,\hat\tau^0_t + (1 - g_t)\,\hat\tau^1_t` with the propensity
  :math:`g_t(x) = P(A = t \mid x, A \in \{t, c\})`, fitted by logistic regression.
* **DR-learner** (Kennedy 2020): cross-fitted outcome models :math:`\hat\mu_a` give the
  doubly robust pseudo-outcomes
  :math:`\varphi_a = \hat\mu_a(x) + \mathbb 1[A = a]\,(Y - \hat\mu_a(x)) / \mu(a \mid x)`
  with the *logged* propensities, and :math:`\varphi_t - \varphi_c` is regressed on :math:`x`
  over all rows. No propensity is clipped: small ones make the pseudo-outcomes noisy.

References:
    S. R. Künzel, J. S. Sekhon, P. J. Bickel and B. Yu. Metalearners for estimating
    heterogeneous treatment effects using machine learning. PNAS 116(10), 2019.

    E. H. Kennedy. Towards optimal doubly robust estimation of heterogeneous causal effects.
    arXiv:2004.14497, 2020 (Electronic Journal of Statistics 17(2), 2023).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from rec_env.agents.base import FeaturesLike
from rec_env.agents.offline.base import OfflinePolicy
from rec_env.agents.offline.models import FittedModel, OutcomeReward, fit_model
from rec_env.agents.offline.nuisance import cross_fitted_outcomes, per_action_models
from rec_env.datasets.logged import LoggedBanditData

__all__ = [
    "DRLearnerPolicy",
    "TLearnerPolicy",
    "UpliftPolicy",
    "XLearnerPolicy",
    "fit_dr_learner",
    "fit_t_learner",
    "fit_x_learner",
]


class UpliftPolicy(OfflinePolicy):
    r"""Treat with the treatment of highest positive net uplift, else the control.

    :meth:`scores` is the net uplift :math:`u_a(x)` of every action (0 for the control).
    Allowed actions only: if the best allowed treatment's uplift is not positive the control is
    taken, and if the control is not allowed, the best allowed treatment.

    Args:
        n_actions: Number of actions.
        action_names: Names of the actions.
        random_state: Seed of the policy's generator.
        action_channels: Channel of each action (consent-safe when known).
        features: Feature space of the observations.
        models: The learner's fitted models by name.
        model_links: Links of the models, when loading.
        control: Index of the control action.
        reward: ``{"value", "cost", "constant"}`` of the outcome's reward.
    """

    algorithm: ClassVar[str] = "uplift"

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
        control: int = 0,
        reward: Mapping[str, Any] | None = None,
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
        if isinstance(control, bool) or not isinstance(control, int | np.integer):
            raise ValueError(f"control must be an action index, got {control!r}")
        if not 0 <= control < self.n_actions:
            raise ValueError(f"control must be in [0, {self.n_actions}), got {control}")
        if self.n_actions < 2:
            raise ValueError("an uplift policy needs a control and at least one treatment")
        self.control = int(control)
        self.reward = OutcomeReward(**(reward or {}))
        self.costs = self.reward.costs(self.n_actions)
        if models is not None:
            self._check_models()

    @property
    def treatments(self) -> list[int]:
        """Indices of the treatments (every action but the control)."""
        return [a for a in range(self.n_actions) if a != self.control]

    def effects(self, inputs: np.ndarray) -> np.ndarray:
        r"""``(n, A)`` :math:`\hat\tau_a(x)` on the outcome (0 for the control)."""
        out = np.zeros((inputs.shape[0], self.n_actions))
        for t in self.treatments:
            out[:, t] = self._effect(inputs, t)
        return out

    def _effect(self, inputs: np.ndarray, t: int) -> np.ndarray:
        raise NotImplementedError

    def scores(self, obs: np.ndarray) -> np.ndarray:
        r"""``(n, A)`` net uplift :math:`v\,\hat\tau_a(x) - (\mathrm{cost}_a - \mathrm{cost}_c)`."""
        net_costs = self.costs - self.costs[self.control]
        return self.reward.value * self.effects(self.inputs(obs)) - net_costs

    def choose(self, scores: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """The best allowed treatment where its uplift is positive, else the control."""
        best = super().choose(scores, masks)
        n = scores.shape[0]
        control_allowed = np.ones(n, bool) if masks is None else masks[:, self.control]
        take_control = control_allowed & (scores[np.arange(n), best] <= 0.0)
        return np.where(take_control, self.control, best)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments: the control and the reward spec, with the base ones."""
        return {
            **super().get_config(),
            "control": self.control,
            "reward": {
                "value": float(self.reward.value),
                "cost": self.costs.tolist(),
                "constant": float(self.reward.constant),
            },
        }


class TLearnerPolicy(UpliftPolicy):
    r"""T-learner: :math:`\hat\tau_t = \hat\mu_t - \hat\mu_c` (models ``mu_<a>``)."""

    algorithm: ClassVar[str] = "t_learner"

    def required_models(self) -> list[str]:
        """``mu_<a>`` for every action."""
        return [f"mu_{a}" for a in range(self.n_actions)]

    def _effect(self, inputs: np.ndarray, t: int) -> np.ndarray:
        control = self.models[f"mu_{self.control}"].expected(inputs)
        return self.models[f"mu_{t}"].expected(inputs) - control


class XLearnerPolicy(UpliftPolicy):
    r"""X-learner: :math:`g_t\,\hat\tau^0_t + (1 - g_t)\,\hat\tau^1_t`.

    Models ``tau0_<t>``, ``tau1_<t>`` and ``g_<t>`` for every treatment :math:`t`.
    """

    algorithm: ClassVar[str] = "x_learner"

    def required_models(self) -> list[str]:
        """``tau0_<t>``, ``tau1_<t>`` and ``g_<t>`` of every treatment."""
        return [f"{kind}_{t}" for t in self.treatments for kind in ("tau0", "tau1", "g")]

    def _effect(self, inputs: np.ndarray, t: int) -> np.ndarray:
        g = self.models[f"g_{t}"].expected(inputs)  # P(t | x, t or c): its classes are 0 and 1
        tau0 = self.models[f"tau0_{t}"].expected(inputs)
        tau1 = self.models[f"tau1_{t}"].expected(inputs)
        return g * tau0 + (1.0 - g) * tau1


class DRLearnerPolicy(UpliftPolicy):
    r"""DR-learner: a regression of doubly robust pseudo-outcomes (models ``tau_<t>``)."""

    algorithm: ClassVar[str] = "dr_learner"

    def required_models(self) -> list[str]:
        """``tau_<t>`` of every treatment."""
        return [f"tau_{t}" for t in self.treatments]

    def _effect(self, inputs: np.ndarray, t: int) -> np.ndarray:
        return self.models[f"tau_{t}"].expected(inputs)


# ---------------------------------------------------------------------------- learners
def _setup(
    cls: type[UpliftPolicy],
    data: LoggedBanditData,
    control: int | str,
    outcome: np.ndarray | None,
    reward: OutcomeReward | Mapping[str, Any] | None,
    features: FeaturesLike,
    action_channels: Sequence[str] | None,
    random_state: int | None,
) -> tuple[UpliftPolicy, np.ndarray, np.ndarray]:
    """An empty policy of ``cls``, its inputs on ``data`` and the target."""
    from rec_env.feature_space import FeatureSpace

    if isinstance(control, str):
        if control not in data.action_names:
            names = ", ".join(data.action_names or ())
            raise ValueError(f"control {control!r} is not an action; choose one of: {names}")
        control = data.action_names.index(control)  # type: ignore[union-attr]
    target = data.rewards if outcome is None else np.asarray(outcome, dtype=np.float64)
    if target.shape != (data.n,):
        raise ValueError(f"outcome must have shape ({data.n},), got {target.shape}")
    space = (
        features
        if features is not None
        else FeatureSpace.standardised(data.feature_names, data.contexts)
    )
    reward = OutcomeReward.coerce(reward)
    spec = None if reward is None else reward.to_dict()
    policy = cls(
        data.n_actions,
        data.action_names,
        random_state,
        action_channels=action_channels,
        features=space,
        control=control,
        reward=spec,
    )
    for a in (policy.control, *policy.treatments):
        if not (data.actions == a).any():
            raise ValueError(f"action {data.action_names[a]!r} was never logged: no uplift for it")  # type: ignore[index]
    return policy, policy.inputs(data.contexts), target


def _templates(estimator: Any, effect_estimator: Any) -> tuple[Any, Any]:
    from rec_env.agents.ope.reward_models import RidgeRewardEstimator

    outcome_template = estimator if estimator is not None else RidgeRewardEstimator()
    effect_template = effect_estimator if effect_estimator is not None else RidgeRewardEstimator()
    return outcome_template, effect_template


def fit_t_learner(
    data: LoggedBanditData,
    estimator: Any = None,
    *,
    control: int | str = 0,
    outcome: np.ndarray | None = None,
    reward: OutcomeReward | Mapping[str, Any] | None = None,
    features: FeaturesLike = None,
    action_channels: Sequence[str] | None = None,
    random_state: int | None = 0,
) -> TLearnerPolicy:
    """Fit a T-learner: one outcome model per action.

    Args:
        data: The logged decisions.
        estimator: Outcome regressor or classifier (default: ridge regression).
        control: Index or name of the control action.
        outcome: ``(n,)`` outcome to model instead of the rewards.
        reward: How the outcome becomes a reward (value and per-action costs).
        features: Feature space of the contexts (default: standardised on ``data``).
        action_channels: Channel of each action, for consent safety.
        random_state: Seed of the policy's generator.

    Raises:
        ValueError: For an unknown control, an action never logged, or a classifier on a
            continuous target.
    """
    policy, inputs, target = _setup(
        TLearnerPolicy, data, control, outcome, reward, features, action_channels, random_state
    )
    template, _ = _templates(estimator, None)
    fitted = per_action_models(template, inputs, target, data.actions, data.n_actions)
    policy.models = {f"mu_{a}": model for a, model in enumerate(fitted)}
    policy._check_models()
    return policy  # type: ignore[return-value]


def fit_x_learner(
    data: LoggedBanditData,
    estimator: Any = None,
    *,
    effect_estimator: Any = None,
    propensity_estimator: Any = None,
    control: int | str = 0,
    outcome: np.ndarray | None = None,
    reward: OutcomeReward | Mapping[str, Any] | None = None,
    features: FeaturesLike = None,
    action_channels: Sequence[str] | None = None,
    random_state: int | None = 0,
) -> XLearnerPolicy:
    """Fit an X-learner (Künzel et al. 2019) for every treatment against the control.

    Args:
        data: The logged decisions.
        estimator: Outcome regressor or classifier of the first stage (default: ridge).
        effect_estimator: Regressor of the imputed effects (default: ridge).
        propensity_estimator: Classifier of the treatment propensity :math:`g_t` (default:
            scikit-learn's ``LogisticRegression``).
        control: Index or name of the control action.
        outcome: ``(n,)`` outcome to model instead of the rewards.
        reward: How the outcome becomes a reward.
        features: Feature space of the contexts (default: standardised on ``data``).
        action_channels: Channel of each action, for consent safety.
        random_state: Seed of the policy's generator.

    Raises:
        ValueError: As :func:`fit_t_learner`, or if ``effect_estimator`` is a classifier.
    """
    from rec_env.agents.offline.models import is_classifier

    policy, inputs, target = _setup(
        XLearnerPolicy, data, control, outcome, reward, features, action_channels, random_state
    )
    template, effect_template = _templates(estimator, effect_estimator)
    if is_classifier(effect_template):
        raise ValueError("effect_estimator must be a regressor: imputed effects are continuous")
    if propensity_estimator is None:
        from sklearn.linear_model import LogisticRegression

        propensity_estimator = LogisticRegression()
    mu = per_action_models(template, inputs, target, data.actions, data.n_actions)
    c = policy.control
    controls = data.actions == c
    models: dict[str, FittedModel] = {}
    for t in policy.treatments:
        treated = data.actions == t
        imputed_treated = target[treated] - mu[c].expected(inputs[treated])
        imputed_control = mu[t].expected(inputs[controls]) - target[controls]
        models[f"tau1_{t}"] = fit_model(effect_template, inputs[treated], imputed_treated)
        models[f"tau0_{t}"] = fit_model(effect_template, inputs[controls], imputed_control)
        pair = treated | controls
        models[f"g_{t}"] = fit_model(
            propensity_estimator, inputs[pair], treated[pair].astype(np.float64)
        )
    policy.models = models
    policy._check_models()
    return policy  # type: ignore[return-value]


def fit_dr_learner(
    data: LoggedBanditData,
    estimator: Any = None,
    *,
    effect_estimator: Any = None,
    n_folds: int = 2,
    control: int | str = 0,
    outcome: np.ndarray | None = None,
    reward: OutcomeReward | Mapping[str, Any] | None = None,
    features: FeaturesLike = None,
    action_channels: Sequence[str] | None = None,
    random_state: int | None = 0,
) -> DRLearnerPolicy:
    """Fit a DR-learner (Kennedy 2020) with cross-fitted outcome models.

    Args:
        data: The logged decisions (their propensities weight the pseudo-outcomes).
        estimator: Outcome regressor or classifier of the nuisance models (default: ridge).
        effect_estimator: Regressor of the pseudo-outcomes (default: ridge).
        n_folds: Folds of the cross-fitting (2: sample splitting, then swapped).
        control: Index or name of the control action.
        outcome: ``(n,)`` outcome to model instead of the rewards.
        reward: How the outcome becomes a reward.
        features: Feature space of the contexts (default: standardised on ``data``).
        action_channels: Channel of each action, for consent safety.
        random_state: Seed of the fold assignment and of the policy's generator.

    Raises:
        ValueError: As :func:`fit_x_learner`, or for ``n_folds`` out of range.
    """
    from rec_env.agents.offline.models import is_classifier

    policy, inputs, target = _setup(
        DRLearnerPolicy, data, control, outcome, reward, features, action_channels, random_state
    )
    template, effect_template = _templates(estimator, effect_estimator)
    if is_classifier(effect_template):
        raise ValueError("effect_estimator must be a regressor: pseudo-outcomes are continuous")
    rng = np.random.default_rng(random_state)
    mu = cross_fitted_outcomes(template, inputs, target, data.actions, data.n_actions, n_folds, rng)
    pseudo = dr_pseudo_outcomes(mu, data.actions, target, data.propensities)
    c = policy.control
    policy.models = {
        f"tau_{t}": fit_model(effect_template, inputs, pseudo[:, t] - pseudo[:, c])
        for t in policy.treatments
    }
    policy._check_models()
    return policy  # type: ignore[return-value]


def dr_pseudo_outcomes(
    mu: np.ndarray, actions: np.ndarray, target: np.ndarray, propensities: np.ndarray
) -> np.ndarray:
    r"""``(n, A)`` :math:`\hat\mu_a(x_i) + \mathbb 1[a_i = a]\,(y_i - \hat\mu_a(x_i)) / p_i`."""
    n = mu.shape[0]
    pseudo = mu.copy()
    rows = np.arange(n)
    pseudo[rows, actions] += (target - mu[rows, actions]) / propensities
    return pseudo
