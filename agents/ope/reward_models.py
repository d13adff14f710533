r"""Reward models :math:`\hat q(x, a)`: one scikit-learn style estimator per action.

The direct method and the doubly robust estimator need an estimate :math:`\hat q(x, a)` of the
expected reward of every action in every logged context. :class:`PerActionRewardModel` fits one
copy of any scikit-learn style regressor (``fit`` / ``predict``) or classifier (``fit`` /
``predict_proba`` / ``classes_``; the prediction is then :math:`\sum_c P(c \mid x)\,c`, the
expected class value) on the rows that took each action. :func:`cross_fitted_rewards` predicts
every row with models that did not see it (Chernozhukov et al. 2018), so that the doubly robust
correction is not fooled by an overfitted model.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import numpy as np

from rec_env.datasets.logged import LoggedBanditData

__all__ = [
    "PerActionRewardModel",
    "RewardEstimator",
    "RidgeRewardEstimator",
    "cross_fitted_rewards",
    "default_estimator",
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

    def fit(self, X: np.ndarray, y: np.ndarray) -> RidgeRewardEstimator:  # noqa: N803
        """Fit on features ``X`` ``(n, d)`` and targets ``y`` ``(n,)``; returns ``self``."""
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        z = (X - self.mean_) / self.scale_
        self.intercept_ = float(y.mean())
        gram = z.T @ z + self.alpha * np.eye(X.shape[1])
        self.coef_ = np.linalg.lstsq(gram, z.T @ (y - self.intercept_), rcond=None)[0]
        return self

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
        self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray
    ) -> PerActionRewardModel:
        """Fit one model per action on the rows that took it.

        Args:
            contexts: ``(n, d)`` contexts.
            actions: ``(n,)`` logged actions in ``[0, n_actions)``.
            rewards: ``(n,)`` rewards.

        Returns:
            ``self``.
        """
        template = self.estimator if self.estimator is not None else default_estimator()
        self.models_ = []
        for a in range(self.n_actions):
            rows = actions == a
            observed = rewards[rows]
            if observed.size == 0:
                self.models_.append(float(rewards.mean()))
            elif np.all(observed == observed[0]):
                self.models_.append(float(observed[0]))
            else:
                self.models_.append(_fresh_copy(template).fit(contexts[rows], observed))
        return self

    def predict(self, contexts: np.ndarray) -> np.ndarray:
        r"""``(n, n_actions)`` predicted expected rewards :math:`\hat q(x, a)`.

        Raises:
            RuntimeError: If the model is not fitted.
        """
        if not self.models_:
            raise RuntimeError("PerActionRewardModel.predict needs fit() first")
        out = np.empty((contexts.shape[0], self.n_actions))
        for a, model in enumerate(self.models_):
            if isinstance(model, float):
                out[:, a] = model
            elif hasattr(model, "predict_proba"):
                out[:, a] = model.predict_proba(contexts) @ np.asarray(model.classes_, float)
            else:
                out[:, a] = model.predict(contexts)
        return out


def cross_fitted_rewards(
    data: LoggedBanditData,
    estimator: RewardEstimator | None = None,
    n_folds: int = 2,
    random_state: int | None = 0,
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
    model = PerActionRewardModel(data.n_actions, estimator)
    if n_folds == 1:
        return model.fit(data.contexts, data.actions, data.rewards).predict(data.contexts)
    folds = np.random.default_rng(random_state).permutation(data.n) % n_folds
    out = np.empty((data.n, data.n_actions))
    for k in range(n_folds):
        held_out = folds == k
        train = ~held_out
        model.fit(data.contexts[train], data.actions[train], data.rewards[train])
        out[held_out] = model.predict(data.contexts[held_out])
    return out
