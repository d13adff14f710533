r"""Compiled kernels of the linear bandits (:mod:`rec_env.agents.bandits.linear`).

Every kernel takes the context transform as arrays: a context is
:math:`x = ((\mathrm{obs} - c) \odot w^{-1}, 1)` with the centre :math:`c` and inverse width
:math:`w^{-1}` of the policy's :class:`~rec_env.feature_space.FeatureSpace`, so
:math:`d = \dim c + 1` is a runtime value and one compiled copy serves every feature space.

The ridge statistics (per action :math:`A_a^{-1}`, :math:`b_a`) are updated by Sherman–Morrison
one sample at a time, so a batch update is exactly the sequential one. Scores need
:math:`x^\top \hat\theta_a` and the quadratic forms :math:`x^\top A_a^{-1} x`; they are computed
as dot products of the pairwise products :math:`x_j x_k` (:math:`j \le k`) with the packed
upper triangles of the :math:`A_a^{-1}`, two customers against four actions at a time.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rec_env.agents.bandits.base import _ACTIONS_OUT_OF_RANGE, _NO_ALLOWED_ACTION

_OVERFLOW = "rewards or observations too large: the learned state would overflow; not learned"

_REASSOCIATE = {"reassoc", "contract"}
"""Fast-math flags of the score kernels: reassociation lets the dot products vectorise."""


# ---------------------------------------------------------------------------- contexts
@njit(cache=True)
def _scaled_context(
    obs: np.ndarray, i: int, scaling: np.ndarray, out: np.ndarray, row: int
) -> None:
    """The context transform: ``out[row] = ((obs[i] - centre) * inverse_width, 1)``.

    ``scaling`` is ``(2, F)``: the centre and the inverse width of each feature.
    """
    n_features = scaling.shape[1]
    for j in range(n_features):
        out[row, j] = (obs[i, j] - scaling[0, j]) * scaling[1, j]
    out[row, n_features] = 1.0


@njit(cache=True)
def _scaled_contexts(obs: np.ndarray, scaling: np.ndarray) -> np.ndarray:
    """``(n, F + 1)`` contexts of every row of ``obs``."""
    contexts = np.empty((obs.shape[0], scaling.shape[1] + 1))
    for i in range(obs.shape[0]):
        _scaled_context(obs, i, scaling, contexts, i)
    return contexts


# ---------------------------------------------------------------------------- kernels
def _padded(size: int) -> int:
    """``size`` rounded up to a multiple of 4 (so the score loops have no tails)."""
    return -(-size // 4) * 4


@njit(cache=True)
def _refresh_derived(
    gram_inverse: np.ndarray,
    reward_vectors: np.ndarray,
    changed: np.ndarray,
    theta: np.ndarray,
    packed: np.ndarray,
) -> None:
    r"""Refresh :math:`\hat\theta_a` and the packed :math:`A_a^{-1}` of the changed actions.

    ``theta[a]`` gets :math:`\hat\theta_a = A_a^{-1} b_a`; ``packed[a]`` the upper triangle of
    :math:`A_a^{-1}` with doubled off-diagonal entries, so that :math:`x^\top A_a^{-1} x` is
    ``packed[a]`` dotted with the products ``x_j x_k``, ``j <= k``. Both arrays are zero-padded
    to multiples of 4 rows and columns.
    """
    n_actions, d = reward_vectors.shape
    for a in range(n_actions):
        if not changed[a]:
            continue
        inverse = gram_inverse[a]
        theta[a, :] = 0.0
        for k in range(d):
            b_k = reward_vectors[a, k]
            for j in range(d):
                theta[a, j] += inverse[k, j] * b_k
        p = 0
        for j in range(d):
            packed[a, p] = inverse[j, j]
            p += 1
            for k in range(j + 1, d):
                packed[a, p] = 2.0 * inverse[j, k]
                p += 1


@njit(cache=True, fastmath=_REASSOCIATE)
def _pair_dot_products(matrix: np.ndarray, vectors: np.ndarray, out: np.ndarray) -> None:
    """``out[r, a] = matrix[a] · vectors[r]`` for two vectors ``r`` and every row ``a``.

    Two vectors against four rows at a time: each load feeds two of eight independent
    accumulators, about twice the throughput of one vector at a time.
    """
    for a in range(0, matrix.shape[0], 4):
        s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = 0.0
        for p in range(matrix.shape[1]):
            v0, v1 = vectors[0, p], vectors[1, p]
            c0, c1, c2, c3 = matrix[a, p], matrix[a + 1, p], matrix[a + 2, p], matrix[a + 3, p]
            s00 += c0 * v0
            s01 += c1 * v0
            s02 += c2 * v0
            s03 += c3 * v0
            s10 += c0 * v1
            s11 += c1 * v1
            s12 += c2 * v1
            s13 += c3 * v1
        out[0, a], out[0, a + 1], out[0, a + 2], out[0, a + 3] = s00, s01, s02, s03
        out[1, a], out[1, a + 1], out[1, a + 2], out[1, a + 3] = s10, s11, s12, s13


@njit(cache=True)
def _scratch(
    theta: np.ndarray, packed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Zeroed ``(contexts, products, means, quadratic)`` buffers for two customers."""
    return (
        np.zeros((2, theta.shape[1])),
        np.zeros((2, packed.shape[1])),
        np.zeros((2, theta.shape[0])),
        np.zeros((2, packed.shape[0])),
    )


@njit(cache=True, inline="always")
def _moments_of_pair(
    obs: np.ndarray,
    i: int,
    scaling: np.ndarray,
    theta: np.ndarray,
    packed: np.ndarray,
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> int:
    r"""Means and quadratic forms of customers ``i`` and ``i + 1`` for every action.

    Writes :math:`x^\top\hat\theta_a` and :math:`x^\top A_a^{-1} x` into ``scratch = (contexts,
    products, means, quadratic)``; the last customer of an odd batch is scored twice.

    Returns:
        How many customers were scored (1 or 2).
    """
    x, products, means, quadratic = scratch
    second = min(i + 1, obs.shape[0] - 1)
    _scaled_context(obs, i, scaling, x, 0)
    _scaled_context(obs, second, scaling, x, 1)
    d, p = scaling.shape[1] + 1, 0
    for j in range(d):
        first_j, second_j = x[0, j], x[1, j]
        for k in range(j, d):
            products[0, p] = first_j * x[0, k]
            products[1, p] = second_j * x[1, k]
            p += 1
    _pair_dot_products(packed, products, quadratic)
    _pair_dot_products(theta, x, means)
    return second - i + 1


@njit(cache=True)
def _linear_moments(
    obs: np.ndarray,
    scaling: np.ndarray,
    theta: np.ndarray,
    packed: np.ndarray,
    n_actions: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(n, A)`` means and (non-negative) quadratic forms of every customer and action."""
    n = obs.shape[0]
    means = np.empty((n, n_actions))
    quadratic = np.empty((n, n_actions))
    scratch = _scratch(theta, packed)
    for i in range(0, n, 2):
        for r in range(_moments_of_pair(obs, i, scaling, theta, packed, scratch)):
            means[i + r] = scratch[2][r, :n_actions]
            quadratic[i + r] = np.maximum(scratch[3][r, :n_actions], 0.0)
    return means, quadratic


@njit(cache=True)
def _upper_confidence_actions(
    obs: np.ndarray,
    scaling: np.ndarray,
    theta: np.ndarray,
    packed: np.ndarray,
    n_actions: int,
    alpha: float,
    masks: np.ndarray | None,
) -> np.ndarray:
    r"""LinUCB's choice for each customer, the lowest index on ties.

    The allowed :math:`\arg\max_a x^\top\hat\theta_a + \alpha\sqrt{x^\top A_a^{-1} x}`.

    Raises:
        ValueError: If a row of ``masks`` allows no action.
    """
    n = obs.shape[0]
    actions = np.empty(n, dtype=np.intp)
    scratch = _scratch(theta, packed)
    means, quadratic = scratch[2], scratch[3]
    scores = np.empty(n_actions)
    for i in range(0, n, 2):
        for r in range(_moments_of_pair(obs, i, scaling, theta, packed, scratch)):
            for a in range(n_actions):
                scores[a] = means[r, a] + alpha * np.sqrt(max(quadratic[r, a], 0.0))
            best = -1
            for a in range(n_actions):
                allowed = masks is None or masks[i + r, a]
                if allowed and (best < 0 or scores[a] > scores[best]):
                    best = a
            if best < 0:
                raise ValueError(_NO_ALLOWED_ACTION)
            actions[i + r] = best
    return actions


@njit(cache=True, fastmath=_REASSOCIATE)
def _matrix_vector(matrices: np.ndarray, a: int, x: np.ndarray, out: np.ndarray) -> None:
    """``out = matrices[a] @ x[0]``, four rows at a time (independent accumulators)."""
    d = out.shape[0]
    j = 0
    while j < d:
        rows = min(4, d - j)
        s0 = s1 = s2 = s3 = 0.0
        if rows == 4:
            for k in range(d):
                x_k = x[0, k]
                s0 += matrices[a, j, k] * x_k
                s1 += matrices[a, j + 1, k] * x_k
                s2 += matrices[a, j + 2, k] * x_k
                s3 += matrices[a, j + 3, k] * x_k
            out[j], out[j + 1], out[j + 2], out[j + 3] = s0, s1, s2, s3
        else:
            for r in range(rows):
                s0 = 0.0
                for k in range(d):
                    s0 += matrices[a, j + r, k] * x[0, k]
                out[j + r] = s0
        j += rows


@njit(cache=True, fastmath={"contract"})
def _sherman_morrison_updates(
    obs: np.ndarray,
    scaling: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    gram_inverse: np.ndarray,
    reward_vectors: np.ndarray,
    counts: np.ndarray,
    theta: np.ndarray,
    packed: np.ndarray,
) -> None:
    r"""Fold the samples one at a time, in order, into the per-action statistics, in place.

    Updates :math:`A_a^{-1}` (Sherman–Morrison), :math:`b_a` and the counts, then refreshes the
    derived arrays of the changed actions. The changed actions' rows are copied first and put
    back if any learned or derived value came out non-finite (a reward of 1e308 twice overflows
    :math:`b_a`), so a batch is learned whole or not at all.

    With :math:`u = A^{-1} x` and :math:`v = u / \sqrt{1 + x^\top u}` the update is
    :math:`A^{-1} \leftarrow A^{-1} - v v^\top`: both halves subtract the same product
    :math:`v_j v_k`, so :math:`A^{-1}` stays symmetric.

    Raises:
        ValueError: Before any change, if an action is out of range or a reward not finite;
            after restoring the state, if the update would make it non-finite.
    """
    n_actions, d = reward_vectors.shape
    changed = np.zeros(n_actions, dtype=np.bool_)
    for i in range(actions.shape[0]):
        if actions[i] < 0 or actions[i] >= n_actions:
            raise ValueError(_ACTIONS_OUT_OF_RANGE)
        if not np.isfinite(rewards[i]):
            raise ValueError("rewards must be finite")
        changed[actions[i]] = True
    touched = np.flatnonzero(changed)
    saved_inverse = np.empty((touched.shape[0], d, d))
    saved_vectors = np.empty((touched.shape[0], d))
    for m in range(touched.shape[0]):
        saved_inverse[m] = gram_inverse[touched[m]]
        saved_vectors[m] = reward_vectors[touched[m]]
    x = np.empty((1, d))
    u = np.empty(d)
    for i in range(actions.shape[0]):
        a = actions[i]
        _scaled_context(obs, i, scaling, x, 0)
        _matrix_vector(gram_inverse, a, x, u)
        denominator = 1.0
        for j in range(d):
            denominator += x[0, j] * u[j]
        scale = 1.0 / np.sqrt(denominator)
        for j in range(d):
            u[j] *= scale
        reward = rewards[i]
        for j in range(d):
            u_j = u[j]
            for k in range(d):
                gram_inverse[a, j, k] -= u_j * u[k]
            reward_vectors[a, j] += reward * x[0, j]
        counts[a] += 1
    _refresh_derived(gram_inverse, reward_vectors, changed, theta, packed)
    if not _rows_finite(touched, gram_inverse, reward_vectors, theta, packed):
        for m in range(touched.shape[0]):
            gram_inverse[touched[m]] = saved_inverse[m]
            reward_vectors[touched[m]] = saved_vectors[m]
        for i in range(actions.shape[0]):
            counts[actions[i]] -= 1
        _refresh_derived(gram_inverse, reward_vectors, changed, theta, packed)
        raise ValueError(_OVERFLOW)


@njit(cache=True)
def _rows_finite(
    rows: np.ndarray,
    gram_inverse: np.ndarray,
    reward_vectors: np.ndarray,
    theta: np.ndarray,
    packed: np.ndarray,
) -> bool:
    """Whether the learned and derived arrays of the actions ``rows`` are all finite."""
    d = reward_vectors.shape[1]
    total = 0.0  # value * 0 is 0 for a finite value and NaN otherwise: no branch per value
    for a in rows:
        for j in range(d):
            total += reward_vectors[a, j] * 0.0
            for k in range(d):
                total += gram_inverse[a, j, k] * 0.0
        for j in range(theta.shape[1]):
            total += theta[a, j] * 0.0
        for j in range(packed.shape[1]):
            total += packed[a, j] * 0.0
    return np.isfinite(total)
