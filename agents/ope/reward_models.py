r"""Reward models :math:`\hat q(x, a)`: one scikit-learn style estimator per action.

The direct method and the doubly robust estimator need an estimate :math:`\hat q(x, a)` of the
expected reward of every action in every logged context. :class:`PerActionRewardModel` fits one
copy of any scikit-learn style regressor (``fit`` / ``predict``) or classifier (``fit`` /
``predict_proba`` / ``classes_``; the prediction is then :math:`\sum_c P(c \mid x)\,c`, the
expected class value) on the rows that took each action; :class:`PooledRewardModel` fits one
estimator on (context, action features) pairs over all rows, which shares strength between
actions when there are many of them with few rows each (an item catalog). With positions (item
logs), the position is one-hot encoded and appended to the context, so each row is predicted at
its own position. :func:`cross_fitted_rewards` predicts every row with models that did not see
it (Chernozhukov et al. 2018), so that the doubly robust correction is not fooled by an
overfitted model.

Both models take ``sample_weight`` (a row's bootstrap count): the default ridge uses it
directly, any other estimator sees each row repeated that many times, which is exactly the
bootstrap resample.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import numpy as np

from rec_env.datasets.logged import LoggedBanditData

__all__ = [
    "PerActionRewardModel",
    "PooledRewardModel",
    "RewardEstimator",
    "RewardModel",
    "RidgeRewardEstimator",
    "cross_fitted_rewards",
    "default_estimator",
    "fold_assignment",
    "reward_features",
    "reward_model_for",
]


class RewardEstimator(Protocol):
    """A scikit-learn style regressor or classifier."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Any:  # noqa: N803 (scikit-learn's name)
        """Learn from contexts ``X`` ``(n, d)`` and rewards ``y`` ``(n,)``."""
        ...


class RidgeRewardEstimator:
    r"""Ridge regression on standardised features with an unpenalised intercept.

    Solves :math:`\min_\beta \lVert y - \bar y - Z\beta \rVert^2 + \alpha \lVert\beta\rVert^2`
    in closed form, with :math:`Z` the features standardised by their training mean and
    standard deviation (constant features are left unscaled). The default reward model: fast,
    deterministic and hard to overfit. Any scikit-learn estimator can replace it.

    Args:
        alpha: Ridge penalty :math:`\alpha \ge 0`.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)

    def fit(
        self,
        X: np.ndarray,  # noqa: N803
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
    ) -> RidgeRewardEstimator:
        """Fit on features ``X`` ``(n, d)`` and targets ``y`` ``(n,)``; returns ``self``.

        ``sample_weight`` (non-negative) gives the same fit as repeating each row that many
        times (integer weights).
        """
        w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
        total = w.sum()
        self.mean_ = w @ X / total
        centred = X - self.mean_
        scale = np.sqrt(w @ centred**2 / total)
        self.scale_ = np.where(scale > 1e-12 * (1.0 + np.abs(self.mean_)), scale, 1.0)
        z = centred / self.scale_
        self.intercept_ = float(w @ y / total)
        weighted = z.T * w
        gram = weighted @ z + self.alpha * np.eye(X.shape[1])
        moment = weighted @ (y - self.intercept_)
        try:  # positive definite for alpha > 0: a Cholesky-speed solve
            self.coef_ = np.linalg.solve(gram, moment)
        except np.linalg.LinAlgError:  # alpha = 0 with collinear features
            self.coef_ = np.linalg.lstsq(gram, moment, rcond=None)[0]
        return self

    def raw_coefficients(self) -> tuple[np.ndarray, float]:
        """``(coef, intercept)`` on the unstandardised features: ``predict(X) = X @ coef + b``."""
        coef = self.coef_ / self.scale_
        return coef, self.intercept_ - float(self.mean_ @ coef)

    def predict(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """``(n,)`` predictions for features ``X`` ``(n, d)``."""
        return self.intercept_ + ((X - self.mean_) / self.scale_) @ self.coef_


def default_estimator() -> RidgeRewardEstimator:
    """The default reward model: :class:`RidgeRewardEstimator` with ``alpha = 1``."""
    return RidgeRewardEstimator(alpha=1.0)


def _fresh_copy(estimator: Any) -> Any:
    """An unfitted copy: ``sklearn.base.clone`` for scikit-learn estimators, else a deep copy."""
    if hasattr(estimator, "get_params"):
        from sklearn.base import clone

        return clone(estimator)
    return copy.deepcopy(estimator)


class PerActionRewardModel:
    r"""One copy of an estimator per action, fitted on the rows that took that action.

    An action with no logged rows, or whose rewards are all equal, is predicted by a constant:
    the mean reward of all rows, or that common value.

    Args:
        n_actions: Number of actions.
        estimator: A scikit-learn style regressor or classifier, copied with
            ``sklearn.base.clone`` (or a deep copy) for each action (default
            :class:`RidgeRewardEstimator`).

    Attributes:
        models_: After :meth:`fit`, the fitted estimator of each action, or a float constant.
    """

    def __init__(self, n_actions: int, estimator: RewardEstimator | None = None) -> None:
        if n_actions < 1:
            raise ValueError(f"n_actions must be at least 1, got {n_actions}")
        self.n_actions = int(n_actions)
        self.estimator = estimator
        self.models_: list[Any] = []

    def fit(
        self,
        contexts: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        sample_weight: np.ndarray | None = None,
    ) -> PerActionRewardModel:
        """Fit one model per action on the rows that took it.

        Args:
            contexts: ``(n, d)`` contexts.
            actions: ``(n,)`` logged actions in ``[0, n_actions)``.
            rewards: ``(n,)`` rewards.
            sample_weight: Optional ``(n,)`` non-negative integer weights (bootstrap counts).

        Returns:
            ``self``.
        """
        template = self.estimator if self.estimator is not None else default_estimator()
        weights = np.ones(len(rewards)) if sample_weight is None else np.asarray(sample_weight)
        self.models_ = []
        for a in range(self.n_actions):
            rows = (actions == a) & (weights > 0)
            observed = rewards[rows]
            if observed.size == 0:
                self.models_.append(float(weights @ rewards / weights.sum()))
            elif np.all(observed == observed[0]):
                self.models_.append(float(observed[0]))
            else:
                model = _fit(template, contexts[rows], observed, weights[rows], sample_weight)
                self.models_.append(model)
        return self

    def predict(self, contexts: np.ndarray) -> np.ndarray:
        r"""``(n, n_actions)`` predicted expected rewards :math:`\hat q(x, a)`.

        Raises:
            RuntimeError: If the model is not fitted.
        """
        if not self.models_:
            raise RuntimeError("PerActionRewardModel.predict needs fit() first")
        if all(isinstance(m, float | RidgeRewardEstimator) for m in self.models_):
            # every action linear: one matrix product (the refit bootstrap calls this a lot)
            coef = np.zeros((contexts.shape[1], self.n_actions))
            intercept = np.empty(self.n_actions)
            for a, model in enumerate(self.models_):
                if isinstance(model, float):
                    intercept[a] = model
                else:
                    coef[:, a], intercept[a] = model.raw_coefficients()
            return contexts @ coef + intercept
        out = np.empty((contexts.shape[0], self.n_actions))
        for a, model in enumerate(self.models_):
            out[:, a] = _predict(model, contexts)
        return out


def _fit(
    template: Any,
    X: np.ndarray,  # noqa: N803
    y: np.ndarray,
    w: np.ndarray,
    given: np.ndarray | None,
) -> Any:
    """A fresh copy of ``template`` fitted on ``X, y`` with integer weights ``w``.

    The default ridge takes the weights; any other estimator sees each row repeated ``w``
    times (the bootstrap resample itself), since not every estimator takes ``sample_weight``.
    """
    model = _fresh_copy(template)
    if given is None:
        return model.fit(X, y)
    if isinstance(model, RidgeRewardEstimator):
        return model.fit(X, y, sample_weight=w)
    rows = np.repeat(np.arange(len(y)), w.astype(np.intp))
    return model.fit(X[rows], y[rows])


def _predict(model: Any, features: np.ndarray) -> np.ndarray:
    """``(n,)`` expected reward: ``predict``, or the expected class value of a classifier."""
    if isinstance(model, float):
        return np.full(features.shape[0], model)
    if hasattr(model, "predict_proba"):
        return model.predict_proba(features) @ np.asarray(model.classes_, float)
    return model.predict(features)


class PooledRewardModel:
    r"""One estimator over all rows, on features :math:`(x, \phi_a)`: context and action features.

    :math:`\hat q(x, a) = f(x, \phi_a)` with :math:`\phi_a` the action's row of
    ``action_context`` (default: one-hot actions, as Open Bandit Pipeline's
    ``RegressionModel``). With ``interactions`` the features also hold the outer product
    :math:`x \otimes \phi_a`, so that a linear model can rank actions differently in different
    contexts; tree ensembles need no interactions.

    Args:
        action_context: ``(n_actions, d_a)`` features of each action.
        estimator: A scikit-learn style regressor or classifier (default
            :class:`RidgeRewardEstimator`).
        interactions: Add the context × action-feature products.

    Attributes:
        model_: After :meth:`fit`, the fitted estimator (or a float constant if all rewards
            were equal).
    """

    _CHUNK_CELLS = 4_000_000
    """Feature cells built at a time when predicting every action for every row."""

    def __init__(
        self,
        action_context: np.ndarray,
        estimator: RewardEstimator | None = None,
        interactions: bool = False,
    ) -> None:
        self.action_context = np.asarray(action_context, dtype=np.float64)
        if self.action_context.ndim != 2:
            raise ValueError(f"action_context must be 2-D, got {self.action_context.shape}")
        self.n_actions = self.action_context.shape[0]
        self.estimator = estimator
        self.interactions = bool(interactions)
        self.model_: Any = None

    def features(self, contexts: np.ndarray, actions: np.ndarray) -> np.ndarray:
        r"""``(n, d')`` features of the pairs ``(contexts[i], actions[i])``."""
        phi = self.action_context[actions]
        parts = [contexts, phi]
        if self.interactions:
            parts.append((contexts[:, :, None] * phi[:, None, :]).reshape(len(contexts), -1))
        return np.hstack(parts)

    def fit(
        self,
        contexts: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        sample_weight: np.ndarray | None = None,
    ) -> PooledRewardModel:
        """Fit the one estimator on every row's (context, logged action) pair; returns ``self``.

        Args:
            contexts: ``(n, d)`` contexts.
            actions: ``(n,)`` logged actions.
            rewards: ``(n,)`` rewards.
            sample_weight: Optional ``(n,)`` non-negative integer weights (bootstrap counts).
        """
        template = self.estimator if self.estimator is not None else default_estimator()
        weights = np.ones(len(rewards)) if sample_weight is None else np.asarray(sample_weight)
        rows = weights > 0
        observed = rewards[rows]
        if np.all(observed == observed[0]):
            self.model_ = float(observed[0])
            return self
        features = self.features(contexts[rows], actions[rows])
        self.model_ = _fit(template, features, observed, weights[rows], sample_weight)
        return self

    def predict(self, contexts: np.ndarray) -> np.ndarray:
        r"""``(n, n_actions)`` :math:`\hat q(x, a)` for every action (built in chunks of rows).

        Raises:
            RuntimeError: If the model is not fitted.
        """
        if self.model_ is None:
            raise RuntimeError("PooledRewardModel.predict needs fit() first")
        n = contexts.shape[0]
        out = np.empty((n, self.n_actions))
        width = contexts.shape[1] * (1 + self.action_context.shape[1]) + self.n_actions
        step = max(1, self._CHUNK_CELLS // (self.n_actions * width))
        every = np.arange(self.n_actions)
        for start in range(0, n, step):
            chunk = contexts[start : start + step]
            pairs = self.features(
                np.repeat(chunk, self.n_actions, axis=0), np.tile(every, len(chunk))
            )
            out[start : start + step] = _predict(self.model_, pairs).reshape(len(chunk), -1)
        return out


RewardModel = PerActionRewardModel | PooledRewardModel
"""A reward model: :class:`PerActionRewardModel` or :class:`PooledRewardModel`."""


def reward_model_for(
    data: LoggedBanditData, estimator: RewardEstimator | None = None, pooled: bool = False
) -> RewardModel:
    """The reward model of ``data``: one per action, or pooled over its action features.

    A pooled model uses ``data.action_context`` (one-hot actions when the log has none).
    """
    if not pooled:
        return PerActionRewardModel(data.n_actions, estimator)
    context = data.action_context
    return PooledRewardModel(np.eye(data.n_actions) if context is None else context, estimator)


def reward_features(data: LoggedBanditData) -> np.ndarray:
    """The reward model's inputs: the contexts, with the one-hot position appended if any."""
    if data.positions is None:
        return data.contexts
    one_hot = np.eye(data.n_positions or 1)[data.positions]
    return np.hstack([data.contexts, one_hot])


def fold_assignment(n: int, n_folds: int, random_state: int | None) -> np.ndarray:
    """``(n,)`` fold of each row, ``0 … n_folds - 1``, balanced and shuffled by the seed."""
    return np.random.default_rng(random_state).permutation(n) % n_folds


def cross_fitted_rewards(
    data: LoggedBanditData,
    estimator: RewardEstimator | None = None,
    n_folds: int = 2,
    random_state: int | None = 0,
    pooled: bool = False,
) -> np.ndarray:
    r"""``(n, n_actions)`` :math:`\hat q(x_i, a)`, each row predicted by models that never saw it.

    The rows are split into ``n_folds`` folds at random (seeded); each fold is predicted by a
    :class:`PerActionRewardModel` fitted on the other folds. ``n_folds=1`` fits and predicts on
    all rows (in-sample).

    Args:
        data: The logged data.
        estimator: Scikit-learn style estimator (default :func:`default_estimator`).
        n_folds: Number of folds, at least 1 and at most the number of rows.
        random_state: Seed of the fold assignment.
        pooled: One :class:`PooledRewardModel` over (context, action features) instead of
            one model per action.

    Raises:
        ValueError: If ``n_folds`` is out of range.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 1:
        raise ValueError(f"n_folds must be a positive integer, got {n_folds!r}")
    if n_folds > data.n:
        raise ValueError(
            f"the log has {data.n} decision(s) with a reward, too few for {n_folds}-fold "
            "cross-fitting of the reward model; log more decisions"
        )
    model = reward_model_for(data, estimator, pooled)
    contexts = reward_features(data)
    if n_folds == 1:
        return model.fit(contexts, data.actions, data.rewards).predict(contexts)
    folds = fold_assignment(data.n, n_folds, random_state)
    out = np.empty((data.n, data.n_actions))
    for k in range(n_folds):
        held_out = folds == k
        train = ~held_out
        model.fit(contexts[train], data.actions[train], data.rewards[train])
        out[held_out] = model.predict(contexts[held_out])
    return out
