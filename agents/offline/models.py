r"""Fitted models of the offline learners, and how they are saved without pickle.

Every learner fits scikit-learn style estimators (``fit`` / ``predict``, or ``predict_proba`` /
``classes_`` for classifiers) and keeps each fitted one as a :class:`FittedModel`:

* :class:`LinearModel` when the estimator is linear (the project's
  :class:`~rec_env.agents.ope.reward_models.RidgeRewardEstimator`, scikit-learn's ordinary
  least squares / ridge / lasso / elastic-net / Huber / SGD regressors and
  ``LogisticRegression``).
* :class:`~rec_env.agents.offline.trees.TreeEnsembleModel` when it is one of scikit-learn's
  tree models: decision and extra trees, random forests, extra-trees, gradient boosting and
  histogram gradient boosting, regressors and classifiers (see
  :mod:`~rec_env.agents.offline.trees` for what it refuses, such as categorical splits).
* :class:`EstimatorModel` for any other estimator (nearest neighbours, pipelines, networks …)
  or a tree model that could not be converted (the reason is kept). A policy holding one works
  in memory but **refuses to save**: the only general way to store an arbitrary scikit-learn
  object is pickle (or joblib), and loading a pickle runs whatever code it holds — a run
  directory is input, and :mod:`rec_env.agents.integrity` only checks that its files match the
  ``run.json`` next to them, which whoever can write one can write too. Refit from the log, or
  use a linear or tree estimator, to get a saved run.

The first two are plain arrays, so a policy built on them saves to ``state.npz`` and loads with
``allow_pickle=False``. Each conversion is checked: the arrays must reproduce the estimator's
predictions on the training rows (to ``1e-8``), else the estimator is kept as it is.

A classifier needs a discrete target. :func:`fit_model` refuses a continuous one (the
``Unknown label type: continuous`` of scikit-learn) with a message that says what to do: fit the
classifier on a 0/1 outcome and turn :math:`P(\text{outcome} \mid x, a)` into a reward with an
:class:`OutcomeReward`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rec_env.agents.offline.trees import (
    TreeEnsembleModel,
    as_tree_ensemble,
    is_tree_ensemble,
    link_probabilities,
)

__all__ = [
    "EstimatorModel",
    "FittedModel",
    "LinearModel",
    "OutcomeReward",
    "TreeEnsembleModel",
    "fit_model",
    "is_classifier",
]

LINKS: tuple[str, ...] = ("identity", "logistic", "softmax")
"""How a :class:`LinearModel` maps its scores to predictions."""

_LINEAR_REGRESSORS = frozenset(
    {
        "LinearRegression",
        "Ridge",
        "RidgeCV",
        "Lasso",
        "LassoCV",
        "ElasticNet",
        "ElasticNetCV",
        "BayesianRidge",
        "HuberRegressor",
        "SGDRegressor",
    }
)
_LINEAR_CLASSIFIERS = frozenset({"LogisticRegression", "LogisticRegressionCV"})
_CHECK_TOLERANCE = 1e-8


@dataclass(frozen=True)
class OutcomeReward:
    r"""A reward linear in one outcome: :math:`r = c + v \cdot y - \mathrm{cost}_a`.

    With it, a model of the outcome :math:`\hat y(x, a)` (a classifier's
    :math:`P(y = 1 \mid x, a)`) becomes an expected reward
    :math:`c + v\,\hat y(x, a) - \mathrm{cost}_a`, and an uplift
    :math:`v\,(\hat y_t - \hat y_c) - (\mathrm{cost}_t - \mathrm{cost}_c)`.

    Args:
        value: :math:`v`, the reward of one unit of outcome (e.g. the margin of a purchase).
        cost: :math:`\mathrm{cost}_a`, one number per action, or one for every action.
        constant: :math:`c`.
    """

    value: float = 1.0
    cost: Any = 0.0
    constant: float = 0.0

    def costs(self, n_actions: int) -> np.ndarray:
        """``(n_actions,)`` cost of each action.

        Raises:
            ValueError: If ``cost`` is neither one number nor one per action, or not finite.
        """
        cost = np.asarray(self.cost, dtype=np.float64)
        if cost.ndim == 0:
            cost = np.full(n_actions, float(cost))
        if cost.shape != (n_actions,):
            raise ValueError(
                f"cost must be one number or one per action ({n_actions}), got shape {cost.shape}"
            )
        if not (np.isfinite(cost).all() and np.isfinite(self.value) and np.isfinite(self.constant)):
            raise ValueError("value, cost and constant must be finite")
        return cost

    @classmethod
    def coerce(cls, reward: OutcomeReward | Mapping[str, Any] | None) -> OutcomeReward | None:
        """``reward`` as an :class:`OutcomeReward` (a mapping gives its fields; ``None`` stays)."""
        if reward is None or isinstance(reward, OutcomeReward):
            return reward
        if isinstance(reward, Mapping):
            unknown = sorted(set(reward) - {"value", "cost", "constant"})
            if unknown:
                raise ValueError(
                    f"reward has no field {', '.join(unknown)} (value, cost, constant)"
                )
            return cls(**reward)
        raise ValueError(
            f"reward must be an OutcomeReward or a mapping, got {type(reward).__name__}"
        )

    @classmethod
    def from_reward_spec(
        cls, spec: Any, action_names: Sequence[str], control: str | None = None
    ) -> OutcomeReward:
        """The outcome reward of a one-term :class:`~rec_env.datasets.reward_spec.RewardSpec`.

        ``"10*purchase - 0.15*treated"`` gives value 10 on the outcome ``purchase`` (the caller
        passes ``spec.term_values(...)[:, 0]`` as ``outcome``) and cost 0.15 for every action
        but the control.

        Raises:
            ValueError: If the reward has no term or several (model each term instead).
        """
        if len(spec.terms) != 1:
            raise ValueError(
                f"reward {spec.expression!r} has {len(spec.terms)} outcome terms; an outcome "
                "model takes exactly one (e.g. '10*purchase - 0.15*treated')"
            )
        offsets = np.asarray(spec.action_offsets(action_names, control), dtype=np.float64)
        return cls(float(spec.coefficients[0]), (-offsets).tolist(), float(spec.constant))

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (``cost`` as given: one number or a list)."""
        cost = np.asarray(self.cost, dtype=np.float64)
        return {
            "value": float(self.value),
            "cost": float(cost) if cost.ndim == 0 else cost.tolist(),
            "constant": float(self.constant),
        }

    def rewards(self, outcome_means: np.ndarray) -> np.ndarray:
        """``(n, A)`` expected rewards from ``(n, A)`` expected outcomes."""
        costs = self.costs(outcome_means.shape[1])
        return self.constant + self.value * outcome_means - costs


class FittedModel(Protocol):
    """A fitted model: expected target and, for classifiers, class probabilities.

    A saveable one (:class:`LinearModel`, :class:`TreeEnsembleModel`) also has a ``kind``,
    ``arrays()``, ``from_arrays(arrays, link)`` and ``n_inputs``.
    """

    saveable: bool
    link: str

    def expected(self, inputs: np.ndarray) -> np.ndarray:
        r"""``(n,)`` expected target (a classifier's :math:`\sum_c P(c \mid x)\,c`)."""
        ...

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """``(n, k)`` class probabilities (classifiers only)."""
        ...


@dataclass(frozen=True, eq=False)
class LinearModel:
    r"""A linear regressor or logistic classifier as plain arrays.

    Scores :math:`s = ((x - m) / w)\,B^\top + b`; the prediction is :math:`s` (``identity``),
    :math:`P(c_1) = \sigma(s)` (``logistic``, two classes) or :math:`\mathrm{softmax}(s)`
    (``softmax``). The expected target is :math:`\sum_c P(c)\,c` over ``class_values``.

    Attributes:
        coef: ``(k, d)`` :math:`B` (``k`` = 1 for ``identity`` and ``logistic``).
        intercept: ``(k,)`` :math:`b`.
        center: ``(d,)`` :math:`m` (zeros unless the estimator standardised its inputs).
        scale: ``(d,)`` :math:`w`.
        class_values: ``(k,)`` values of the classes (two for ``logistic``; empty for
            ``identity``).
        link: ``"identity"``, ``"logistic"`` or ``"softmax"``.
    """

    coef: np.ndarray
    intercept: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    class_values: np.ndarray
    link: str = "identity"

    saveable = True
    kind = "linear"
    array_names: tuple[str, ...] = ("coef", "intercept", "center", "scale", "class_values")

    @property
    def n_inputs(self) -> int:
        """Number of inputs."""
        return self.coef.shape[1]

    @classmethod
    def constant(cls, value: float, d: int) -> LinearModel:
        """A model that predicts ``value`` everywhere."""
        zeros = np.zeros(d)
        return cls(np.zeros((1, d)), np.array([float(value)]), zeros, np.ones(d), np.zeros(0))

    def _scores(self, inputs: np.ndarray) -> np.ndarray:
        # The same operations, in the same order, as RidgeRewardEstimator.predict: bit-equal.
        z = (inputs - self.center) / self.scale
        if self.coef.shape[0] == 1:
            return (self.intercept[0] + z @ self.coef[0])[:, None]
        return z @ self.coef.T + self.intercept

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """``(n, k)`` class probabilities (``(n, 2)`` for ``logistic``).

        Raises:
            ValueError: For a regressor (``identity``).
        """
        if self.link == "identity":
            raise ValueError("a regressor has no class probabilities")
        return link_probabilities(self._scores(inputs), self.link)

    def expected(self, inputs: np.ndarray) -> np.ndarray:
        """``(n,)`` prediction (regressor) or expected class value (classifier)."""
        if self.link == "identity":
            return self._scores(inputs)[:, 0]
        return self.probabilities(inputs) @ self.class_values

    def arrays(self) -> dict[str, np.ndarray]:
        """The parameters by name (what ``state.npz`` stores)."""
        return {name: getattr(self, name) for name in self.array_names}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], link: str) -> LinearModel:
        """Rebuild from :meth:`arrays` and the link, checking shapes and values.

        Raises:
            ValueError: If the link is unknown, an array is missing or not finite, or the
                shapes do not agree.
        """
        if link not in LINKS:
            raise ValueError(f"unknown link {link!r}; expected one of {', '.join(LINKS)}")
        missing = [name for name in cls.array_names if name not in arrays]
        if missing:
            raise ValueError(f"missing arrays {', '.join(missing)}")
        values = {name: np.asarray(arrays[name], dtype=np.float64) for name in cls.array_names}
        if not all(np.isfinite(v).all() for v in values.values()):
            raise ValueError("a model array holds non-finite values")
        k, d = values["coef"].shape if values["coef"].ndim == 2 else (-1, -1)
        expected_classes = {"identity": 0, "logistic": 2, "softmax": k}[link]
        if (
            k < 1
            or values["intercept"].shape != (k,)
            or values["center"].shape != (d,)
            or values["scale"].shape != (d,)
            or values["class_values"].shape != (expected_classes,)
            or (link != "softmax" and k != 1)
            or (values["scale"] == 0).any()
        ):
            raise ValueError("model arrays of inconsistent shapes")
        return cls(link=link, **values)


class EstimatorModel:
    """A fitted estimator kept as it is (neither linear nor a convertible tree model).

    Usable, but not saveable (saving it would need pickle).

    Args:
        estimator: The fitted estimator.
        reason: Why it was not converted to arrays, when it is a kind recenv converts.
    """

    saveable = False

    def __init__(self, estimator: Any, reason: str | None = None) -> None:
        self.estimator = estimator
        self.reason = reason
        self.link = "estimator"

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """``(n, k)`` the classifier's ``predict_proba``."""
        return self.estimator.predict_proba(inputs)

    def expected(self, inputs: np.ndarray) -> np.ndarray:
        """``(n,)`` the regressor's ``predict``, or the classifier's expected class value."""
        if hasattr(self.estimator, "predict_proba"):
            classes = np.asarray(self.estimator.classes_, dtype=np.float64)
            return self.estimator.predict_proba(inputs) @ classes
        return np.asarray(self.estimator.predict(inputs), dtype=np.float64)


def is_classifier(estimator: Any) -> bool:
    """Whether ``estimator`` is a classifier (``predict_proba``, else scikit-learn's tag)."""
    if hasattr(estimator, "predict_proba"):
        return True
    try:
        from sklearn.base import is_classifier as sklearn_is_classifier

        return bool(sklearn_is_classifier(estimator))
    except (ImportError, AttributeError, TypeError):  # not a scikit-learn estimator
        return False


def _fresh_copy(estimator: Any) -> Any:
    """An unfitted copy: ``sklearn.base.clone`` for scikit-learn estimators, else a deep copy."""
    if hasattr(estimator, "get_params"):
        from sklearn.base import clone

        return clone(estimator)
    return copy.deepcopy(estimator)


def _check_discrete(target: np.ndarray, estimator: Any) -> None:
    """Refuse a continuous target for a classifier, saying what to do instead.

    Raises:
        ValueError: If ``target`` holds non-integer values.
    """
    if np.all(target == np.round(target)):
        return
    name = type(estimator).__name__
    raise ValueError(
        f"{name} is a classifier, but the target is continuous (e.g. a profit): fit it on a "
        "discrete outcome instead (outcome=<0/1 column>) and give the reward as "
        "value·outcome − cost[action] (OutcomeReward / value=, cost=), or use a regressor"
    )


def _as_linear(estimator: Any, inputs: np.ndarray) -> LinearModel | None:
    """``estimator`` as a :class:`LinearModel` if it is linear and the form reproduces it."""
    name = type(estimator).__name__
    d = inputs.shape[1]
    zeros, ones = np.zeros(d), np.ones(d)
    model: LinearModel | None = None
    if name == "RidgeRewardEstimator":
        model = LinearModel(
            np.asarray(estimator.coef_, dtype=np.float64)[None, :],
            np.array([estimator.intercept_], dtype=np.float64),
            np.asarray(estimator.mean_, dtype=np.float64),
            np.asarray(estimator.scale_, dtype=np.float64),
            np.zeros(0),
        )
    elif name in _LINEAR_REGRESSORS and type(estimator).__module__.startswith("sklearn."):
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        if coef.ndim == 1:
            intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
            model = LinearModel(coef[None, :], intercept[:1], zeros, ones, np.zeros(0))
    elif name in _LINEAR_CLASSIFIERS and type(estimator).__module__.startswith("sklearn."):
        classes = np.asarray(estimator.classes_)
        if classes.dtype.kind in "biuf":
            coef = np.asarray(estimator.coef_, dtype=np.float64)
            intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
            link = "logistic" if classes.size == 2 else "softmax"
            model = LinearModel(coef, intercept, zeros, ones, classes.astype(np.float64), link)
    if model is None or model.coef.shape[1] != d:
        return None
    reference = EstimatorModel(estimator)
    check = inputs[: min(len(inputs), 2_000)]
    if is_classifier(estimator):
        same = np.allclose(
            model.probabilities(check), reference.probabilities(check), atol=_CHECK_TOLERANCE
        )
    else:
        got, want = model.expected(check), reference.expected(check)
        same = np.allclose(got, want, atol=_CHECK_TOLERANCE * (1.0 + np.abs(want).max()))
    return model if same else None


def fit_model(
    template: Any,
    inputs: np.ndarray,
    target: np.ndarray,
    sample_weight: np.ndarray | None = None,
    constant_if_single: bool = True,
) -> FittedModel:
    """Fit a fresh copy of ``template`` and keep it as a :class:`FittedModel`.

    A target with a single value (a segment that never bought) gives a constant model instead
    of a fit (a classifier cannot learn one class). Linear estimators become a
    :class:`LinearModel`, scikit-learn tree models a :class:`TreeEnsembleModel` (both
    saveable), others an :class:`EstimatorModel` (as do tree models that cannot be converted,
    with the reason).

    Args:
        template: A scikit-learn style regressor or classifier (not modified).
        inputs: ``(n, d)`` inputs.
        target: ``(n,)`` targets; discrete for a classifier.
        sample_weight: Optional ``(n,)`` weights, passed to ``fit`` as ``sample_weight``.
        constant_if_single: Replace a fit on a single-valued target by a constant.

    Raises:
        ValueError: If there are no rows, or a classifier is given a continuous target.
    """
    if inputs.shape[0] == 0:
        raise ValueError("no rows to fit the model on")
    target = np.asarray(target, dtype=np.float64)
    if constant_if_single and np.all(target == target[0]):
        return LinearModel.constant(float(target[0]), inputs.shape[1])
    classifier = is_classifier(template)
    if classifier:
        _check_discrete(target, template)
    estimator = _fresh_copy(template)
    fit_target = target.astype(np.int64) if classifier else target
    if sample_weight is None:
        estimator.fit(inputs, fit_target)
    else:
        estimator.fit(inputs, fit_target, sample_weight=sample_weight)
    linear = _as_linear(estimator, inputs)
    if linear is not None:
        return linear
    if is_tree_ensemble(estimator):
        try:
            return as_tree_ensemble(estimator, inputs)
        except ValueError as exc:
            return EstimatorModel(estimator, reason=f"{type(estimator).__name__}: {exc}")
    return EstimatorModel(estimator)
