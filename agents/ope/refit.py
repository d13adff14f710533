r"""The refit bootstrap: the reward model is cross-fitted again inside every replicate.

A bootstrap that resamples the per-row terms of the direct method with :math:`\hat q` held fixed
sees only the variance of averaging :math:`\hat q` over contexts. It misses the variance of
:math:`\hat q` itself (the model was fitted on this one log), which is what dominates the direct
method's error: its intervals came out 30–50 times too narrow. Here each replicate draws the
rows with replacement (the same counts as :func:`~rec_env.agents.ope.bootstrap.bootstrap_sums`
with the same seed), cross-fits the reward model on the drawn rows and recomputes every per-row
term with the new :math:`\hat q`, so the interval holds both sources of variance.

Cross-fitting inside a replicate keeps the folds of the original rows
(:func:`~rec_env.agents.ope.reward_models.fold_assignment` with the same seed): a row drawn
several times is in one fold only, so it is never predicted by a model that saw a copy of it.

Cost: one cross-fit per replicate. The default ridge takes the bootstrap counts as weights
(no rows are copied); other scikit-learn estimators are fitted on the repeated rows, so use
fewer replicates (``n_refit_bootstrap``) for them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rec_env.agents.ope.bootstrap import bootstrap_counts
from rec_env.agents.ope.reward_models import (
    RewardEstimator,
    RewardModel,
    fold_assignment,
    reward_features,
    reward_model_for,
)
from rec_env.datasets.logged import LoggedBanditData

__all__ = ["refit_bootstrap_sums"]


def refit_bootstrap_sums(
    data: LoggedBanditData,
    columns: Callable[[np.ndarray], np.ndarray],
    *,
    estimator: RewardEstimator | None,
    n_folds: int,
    pooled: bool,
    n_replicates: int,
    random_state: int | None,
) -> np.ndarray:
    r"""``(n_replicates, k)`` column sums over resampled rows, refitting :math:`\hat q` each time.

    Args:
        data: The logged decisions.
        columns: Maps ``(n, n_actions)`` :math:`\hat q(x_i, a)` to the ``(n, k)`` per-row terms.
        estimator: The reward model's estimator (default ridge).
        n_folds: Cross-fitting folds (1: fit and predict on the drawn rows).
        pooled: One pooled model over action features instead of one per action.
        n_replicates: Number of bootstrap replicates.
        random_state: Seed of the resampling and of the folds.
    """
    from threadpoolctl import threadpool_limits

    model = reward_model_for(data, estimator, pooled)
    contexts = reward_features(data)
    folds = fold_assignment(data.n, n_folds, random_state)
    # Many small (d x d) products: BLAS threads only contend (10-30x slower on a busy machine).
    with threadpool_limits(limits=1, user_api="blas"):
        return _refit_sums(data, columns, model, contexts, folds, n_replicates, random_state)


def _refit_sums(
    data: LoggedBanditData,
    columns: Callable[[np.ndarray], np.ndarray],
    model: RewardModel,
    contexts: np.ndarray,
    folds: np.ndarray,
    n_replicates: int,
    random_state: int | None,
) -> np.ndarray:
    """The loop of :func:`refit_bootstrap_sums`: one cross-fit and one weighted sum a replicate."""
    n_folds = int(folds.max()) + 1
    out = []
    for chunk in bootstrap_counts(data.n, n_replicates, random_state):
        for counts in chunk.astype(np.float64):
            drawn = counts > 0
            predicted = np.zeros((data.n, data.n_actions))
            for k in range(n_folds):
                held_out = drawn & (folds == k) if n_folds > 1 else drawn
                train = drawn & (folds != k) if n_folds > 1 else drawn
                if not train.any():  # a tiny log can draw no row outside one fold
                    predicted[held_out] = counts[drawn] @ data.rewards[drawn] / counts.sum()
                    continue
                model.fit(contexts[train], data.actions[train], data.rewards[train], counts[train])
                predicted[held_out] = model.predict(contexts[held_out])
            out.append(counts[drawn] @ columns(predicted)[drawn])
    return np.array(out).reshape(n_replicates, -1)
