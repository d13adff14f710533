"""Per-action outcome models and their cross-fitted predictions, shared by the learners."""

from __future__ import annotations

from typing import Any

import numpy as np

from rec_env.agents.offline.models import FittedModel, fit_model

__all__ = ["cross_fitted_outcomes", "per_action_models"]


def per_action_models(
    template: Any, inputs: np.ndarray, target: np.ndarray, actions: np.ndarray, n_actions: int
) -> list[FittedModel]:
    """One model of ``target`` per action, fitted on the rows that took it.

    An action never logged is predicted by the mean target of all rows; a single-valued
    target by that value (see :func:`~rec_env.agents.offline.models.fit_model`).
    """
    models = []
    for a in range(n_actions):
        rows = actions == a
        if rows.any():
            models.append(fit_model(template, inputs[rows], target[rows]))
        else:
            models.append(fit_model(template, inputs[:1], np.array([float(target.mean())])))
    return models


def cross_fitted_outcomes(
    template: Any,
    inputs: np.ndarray,
    target: np.ndarray,
    actions: np.ndarray,
    n_actions: int,
    n_folds: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n, A)`` expected target of every action, each row predicted by models that never saw it.

    Rows are split into ``n_folds`` folds at random (from ``rng``); ``n_folds = 1`` predicts
    in-sample.

    Raises:
        ValueError: If ``n_folds`` is not an integer in ``[1, n]``.
    """
    n = inputs.shape[0]
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or not 1 <= n_folds <= n:
        raise ValueError(f"n_folds must be an integer between 1 and {n}, got {n_folds!r}")
    folds = rng.permutation(n) % n_folds
    out = np.empty((n, n_actions))
    for k in range(n_folds):
        held_out = folds == k
        train = ~held_out if n_folds > 1 else held_out
        models = per_action_models(
            template, inputs[train], target[train], actions[train], n_actions
        )
        out[held_out] = np.stack([m.expected(inputs[held_out]) for m in models], axis=1)
    return out
