r"""Kernels of the hybrid linear bandits (:mod:`rec_env.agents.bandits.hybrid`).

Notation: :math:`d` context size, :math:`u` interaction features of the context (a subset of its
columns, the bias included; :math:`u = d` by default), :math:`k` action features,
:math:`m = u k` shared parameters :math:`B` (a :math:`u \times k` matrix, ``vec`` row-major, so
the shared feature of action :math:`a` is :math:`z = x_P \otimes f_a`). Symmetric matrices over
pairs are kept as their upper triangles in the row-major order of :func:`numpy.triu_indices`.

* :func:`_shared_updates` folds samples, in order, into the shared statistics of the model
  without per-action parameters: :math:`\sum z z^\top` (as ``(u_sym, k_sym)`` products of the
  upper triangles of :math:`x_P x_P^\top` and :math:`f_a f_a^\top`) and :math:`\sum r z`.
* :func:`per_action_shared_gram` is the same data term for the hybrid model, in closed form
  from the per-action :math:`A_a^{-1}` (module docstring of ``hybrid``).
* :func:`hybrid_posterior` and :func:`shared_only_posterior` build the derived arrays
  (:class:`HybridPosterior`) of either model; :func:`bilinear_variances` the quadratic forms of
  the model without per-action parameters; :func:`shared_draws` posterior draws of :math:`B`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from rec_env.agents.bandits._linear_kernels import _OVERFLOW, _scaled_context
from rec_env.agents.bandits.base import _ACTIONS_OUT_OF_RANGE, _all_finite

CHUNK = 256
"""Actions (or customers) per block of the numpy steps: bounds their temporaries."""

_ROWS_PER_BLOCK = 32
"""Rows of the shared Gram matrix kept in cache while every sample of a batch is folded in."""


# ---------------------------------------------------------------------------- pairs
def n_pairs(size: int) -> int:
    """Entries of the upper triangle of a ``size × size`` matrix."""
    return size * (size + 1) // 2


@lru_cache(maxsize=16)
def pair_index(size: int) -> np.ndarray:
    """``(size, size)`` position of entry ``(j, l)`` (or ``(l, j)``) in the upper triangle."""
    rows, cols = np.triu_indices(size)
    index = np.empty((size, size), dtype=np.intp)
    index[rows, cols] = index[cols, rows] = np.arange(rows.shape[0])
    index.setflags(write=False)
    return index


def symmetric(upper: np.ndarray, size: int) -> np.ndarray:
    """``(..., size, size)`` symmetric matrices from their upper triangles ``(..., n_pairs)``."""
    return upper[..., pair_index(size)]


def pair_products(vectors: np.ndarray) -> np.ndarray:
    """``(n, n_pairs)`` products ``v_j v_l`` (``j <= l``) of each row of ``vectors``."""
    rows, cols = np.triu_indices(vectors.shape[1])
    return vectors[:, rows] * vectors[:, cols]


# ---------------------------------------------------------------------------- shared-only model
@njit(cache=True)
def _shared_updates(
    obs: np.ndarray,
    scaling: np.ndarray,
    select: np.ndarray,
    action_features: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    gram: np.ndarray,
    reward_sums: np.ndarray,
    counts: np.ndarray,
) -> None:
    r"""Fold the samples, in order, into :math:`\sum z z^\top`, :math:`\sum r z` and the counts.

    Every entry of ``gram`` (``(u_sym, k_sym)``) and ``reward_sums`` (``(u, k)``) adds the
    samples' terms in sample order, whatever the blocking, so a batch is exactly the sequential
    result. The state is copied first and put back if it comes out non-finite.

    Raises:
        ValueError: Before any change, if an action is out of range or a reward not finite;
            after restoring the state, if the update would make it non-finite.
    """
    n, n_actions = actions.shape[0], action_features.shape[0]
    u, k = select.shape[0], action_features.shape[1]
    for t in range(n):
        if actions[t] < 0 or actions[t] >= n_actions:
            raise ValueError(_ACTIONS_OUT_OF_RANGE)
        if not np.isfinite(rewards[t]):
            raise ValueError("rewards must be finite")
    x = np.empty((1, scaling.shape[1] + 1))
    interactions = np.empty((n, u))
    for t in range(n):
        _scaled_context(obs, t, scaling, x, 0)
        for j in range(u):
            interactions[t, j] = x[0, select[j]]
    left = np.empty((n, gram.shape[0]))  # upper triangle of x_P x_P^T per sample
    right = np.empty((n, gram.shape[1]))  # upper triangle of f_a f_a^T per sample
    for t in range(n):
        p = 0
        for j in range(u):
            for q in range(j, u):
                left[t, p] = interactions[t, j] * interactions[t, q]
                p += 1
        a, p = actions[t], 0
        for j in range(k):
            for q in range(j, k):
                right[t, p] = action_features[a, j] * action_features[a, q]
                p += 1
    saved_gram, saved_sums = gram.copy(), reward_sums.copy()
    for start in range(0, gram.shape[0], _ROWS_PER_BLOCK):
        stop = min(start + _ROWS_PER_BLOCK, gram.shape[0])
        for t in range(n):
            for row in range(start, stop):
                weight = left[t, row]
                for col in range(gram.shape[1]):
                    gram[row, col] += weight * right[t, col]
    for t in range(n):
        a = actions[t]
        for j in range(u):
            weighted = rewards[t] * interactions[t, j]
            for p in range(k):
                reward_sums[j, p] += weighted * action_features[a, p]
        counts[a] += 1
    if not (_all_finite(gram) and _all_finite(reward_sums)):
        gram[:] = saved_gram
        reward_sums[:] = saved_sums
        for t in range(n):
            counts[actions[t]] -= 1
        raise ValueError(_OVERFLOW)


def shared_precision(gram: np.ndarray, u: int, k: int, regularization: float) -> np.ndarray:
    r"""``(m, m)`` precision :math:`\lambda_0 I + D` of ``vec B`` from the data term ``gram``.

    Args:
        gram: ``(u_sym, k_sym)`` upper triangles of :math:`D` in Kronecker form:
            :math:`D_{(j,p),(l,q)}` = ``gram[pair(j, l), pair(p, q)]``.
        u: Interaction features.
        k: Action features.
        regularization: :math:`\lambda_0 > 0`.
    """
    customer_pairs = pair_index(u)[:, None, :, None]
    action_pairs = pair_index(k)[None, :, None, :]
    precision = gram[customer_pairs, action_pairs].reshape(u * k, u * k)  # [(j, p), (l, q)]
    precision[np.diag_indices(u * k)] += regularization
    return precision


def invert_precision(precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lower Cholesky factor of an SPD ``precision`` and its inverse (the covariance).

    Raises:
        ValueError: If the matrix is not positive definite (a state too large to learn from).
    """
    from scipy.linalg import lapack  # imported on first use: importing the bandits stays light

    factor, info = lapack.dpotrf(precision, lower=1, clean=1)
    if info == 0:
        inverse, info = lapack.dpotri(factor, lower=1)
    if info != 0:
        raise ValueError("the shared precision is not positive definite: " + _OVERFLOW)
    return factor, inverse + np.tril(inverse, -1).T  # dpotri leaves the upper triangle at 0


# ---------------------------------------------------------------------------- hybrid model
def _interaction_block(gram_inverse: np.ndarray, select: np.ndarray | None) -> np.ndarray:
    """``A_a^{-1} P^T``: the interaction columns of each ``A_a^{-1}`` (``None``: all)."""
    return gram_inverse if select is None else gram_inverse[:, :, select]


def per_action_shared_gram(
    gram_inverse: np.ndarray,
    select: np.ndarray | None,
    action_features: np.ndarray,
    regularization: float,
) -> np.ndarray:
    r"""``(u_sym, k_sym)`` data term of the hybrid model's shared precision.

    :math:`\lambda\sum_a P(I - \lambda A_a^{-1})P^\top \otimes f_a f_a^\top`: the Schur
    complement of the per-action blocks (``hybrid`` docstring).
    """
    u = gram_inverse.shape[1] if select is None else select.shape[0]
    rows, cols = np.triu_indices(u)
    identity = (rows == cols).astype(np.float64)
    features = pair_products(action_features)
    gram = np.zeros((rows.shape[0], features.shape[1]))
    for start in range(0, gram_inverse.shape[0], CHUNK):
        block = gram_inverse[start : start + CHUNK]
        if select is not None:
            block = block[:, select][:, :, select]
        residual = regularization * (identity - regularization * block[:, rows, cols])
        gram += residual.T @ features[start : start + CHUNK]
    return gram


def per_action_posterior(
    gram_inverse: np.ndarray,
    theta: np.ndarray,
    select: np.ndarray | None,
    action_features: np.ndarray,
    shared_mean: np.ndarray,
    shared_covariance: np.ndarray,
    regularization: float,
    out_theta: np.ndarray,
    out_packed: np.ndarray,
) -> None:
    r"""Every action's effective coefficients and packed covariance, into the padded outputs.

    :math:`\bar\theta_a = \hat\theta_a + \lambda A_a^{-1}P^\top B f_a` and
    :math:`\Sigma_a = A_a^{-1} + \lambda^2 A_a^{-1}P^\top K_a P A_a^{-1}` with
    :math:`K_a = (I_u \otimes f_a)^\top S^{-1} (I_u \otimes f_a)`; ``out_packed`` gets the
    upper triangle of :math:`\Sigma_a` with doubled off-diagonal entries, as the scoring
    kernels of :mod:`~rec_env.agents.bandits._linear_kernels` read it.

    Args:
        gram_inverse: ``(A, d, d)`` per-action :math:`A_a^{-1}`.
        theta: ``(A, d)`` per-action ridge estimates :math:`\hat\theta_a = A_a^{-1} b_a`.
        select: Interaction columns of the context (``None``: all).
        action_features: ``(A, k)`` :math:`f_a`.
        shared_mean: ``(u, k)`` :math:`\hat B`.
        shared_covariance: ``(m, m)`` :math:`S^{-1}`.
        regularization: :math:`\lambda`.
        out_theta: Padded ``(≥A, ≥d)`` output of :math:`\bar\theta_a`.
        out_packed: Padded ``(≥A, ≥d_sym)`` output of the packed :math:`\Sigma_a`.
    """
    n_actions, d = theta.shape
    u, k = shared_mean.shape
    by_pair = shared_covariance.reshape(u, k, u, k).transpose(0, 2, 1, 3)  # [j, l, p, q]
    rows, cols = np.triu_indices(u)
    covariance_terms = by_pair[rows, cols].reshape(rows.shape[0], k * k)
    d_rows, d_cols = np.triu_indices(d)
    doubled = np.where(d_rows == d_cols, 1.0, 2.0)
    for start in range(0, n_actions, CHUNK):
        stop = min(start + CHUNK, n_actions)
        features = action_features[start:stop]
        outer = (features[:, :, None] * features[:, None, :]).reshape(stop - start, k * k)
        shared_cov = symmetric(outer @ covariance_terms.T, u)  # K_a, (chunk, u, u)
        spread = regularization * _interaction_block(gram_inverse[start:stop], select)
        out_theta[start:stop, :d] = theta[start:stop] + np.matmul(
            spread, (features @ shared_mean.T)[:, :, None]
        ).squeeze(2)
        covariance = gram_inverse[start:stop] + spread @ shared_cov @ spread.transpose(0, 2, 1)
        out_packed[start:stop, : d_rows.shape[0]] = covariance[:, d_rows, d_cols] * doubled


def bilinear_variances(
    interactions: np.ndarray, shared_covariance: np.ndarray, action_features: np.ndarray
) -> np.ndarray:
    r"""``(n, A)`` quadratic forms :math:`z^\top S^{-1} z`, :math:`z = x_P \otimes f_a`.

    Per customer :math:`W_i = (x_{P,i} \otimes I_k)^\top S^{-1} (x_{P,i} \otimes I_k)`
    (``k × k``), then :math:`f_a^\top W_i f_a`: :math:`O(n m^2 + n A k^2)`, linear in the
    number of actions.
    """
    n, u = interactions.shape
    k = action_features.shape[1]
    by_customer = shared_covariance.reshape(u, k * u * k)
    outer = (action_features[:, :, None] * action_features[:, None, :]).reshape(-1, k * k)
    variances = np.empty((n, action_features.shape[0]))
    for start in range(0, n, CHUNK // 4):
        block = interactions[start : start + CHUNK // 4]
        half = (block @ by_customer).reshape(-1, k, u, k)  # [i, p, l, q]
        per_customer = np.einsum("iplq,il->ipq", half, block)
        variances[start : start + block.shape[0]] = per_customer.reshape(-1, k * k) @ outer.T
    return np.maximum(variances, 0.0)


# ---------------------------------------------------------------------------- posteriors
@dataclass(frozen=True, eq=False)
class HybridPosterior:
    r"""Derived arrays of a hybrid bandit, rebuilt from its learned state after an update.

    Attributes:
        shared_mean: ``(u, k)`` :math:`\hat B`.
        shared_factor: ``(m, m)`` lower Cholesky factor of the shared precision :math:`S`.
        shared_covariance: ``(m, m)`` :math:`S^{-1}`.
        theta: Padded ``(≥A, ≥d)`` effective coefficients :math:`\hat{\bar\theta}_a`.
        packed: Padded packed :math:`\Sigma_a` (hybrid model only).
    """

    shared_mean: np.ndarray
    shared_factor: np.ndarray
    shared_covariance: np.ndarray
    theta: np.ndarray
    packed: np.ndarray | None


def _shared_part(
    gram: np.ndarray, rewards: np.ndarray, regularization: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r""":math:`\hat B`, the Cholesky factor of :math:`S` and :math:`S^{-1}`."""
    u, k = rewards.shape
    factor, covariance = invert_precision(shared_precision(gram, u, k, regularization))
    return (covariance @ rewards.ravel()).reshape(u, k), factor, covariance


def _checked(posterior: HybridPosterior) -> HybridPosterior:
    r"""``posterior`` if its arrays are finite.

    Raises:
        ValueError: Otherwise (a learned state too large to decide with).
    """
    packed = posterior.packed
    if not (_all_finite(posterior.theta) and (packed is None or _all_finite(packed))):
        raise ValueError(_OVERFLOW)
    return posterior


def hybrid_posterior(
    gram_inverse: np.ndarray,
    theta: np.ndarray,
    select: np.ndarray | None,
    action_features: np.ndarray,
    regularization: float,
    shared_regularization: float,
    packed_shape: tuple[int, int],
) -> HybridPosterior:
    r"""The hybrid model's posterior from the disjoint statistics (``hybrid`` docstring).

    Args:
        gram_inverse: ``(A, d, d)`` :math:`A_a^{-1}`.
        theta: ``(A, d)`` :math:`\hat\theta_a`.
        select: Interaction columns (``None``: all).
        action_features: ``(A, k)``.
        regularization: :math:`\lambda`.
        shared_regularization: :math:`\lambda_0`.
        packed_shape: Padded shape of the packed covariances (rows and columns multiples of 4).
    """
    interactions = theta if select is None else theta[:, select]
    rewards = regularization * (interactions.T @ action_features)
    gram = per_action_shared_gram(gram_inverse, select, action_features, regularization)
    mean, factor, covariance = _shared_part(gram, rewards, shared_regularization)
    out_theta = np.zeros((packed_shape[0], -(-theta.shape[1] // 4) * 4))
    out_packed = np.zeros(packed_shape)
    per_action_posterior(
        gram_inverse, theta, select, action_features, mean, covariance, regularization,
        out_theta, out_packed,
    )  # fmt: skip
    return _checked(HybridPosterior(mean, factor, covariance, out_theta, out_packed))


def shared_only_posterior(
    gram: np.ndarray,
    rewards: np.ndarray,
    select: np.ndarray,
    action_features: np.ndarray,
    shared_regularization: float,
    theta_shape: tuple[int, int],
) -> HybridPosterior:
    r"""The posterior of the model without per-action parameters: :math:`x_P^\top B f_a`."""
    mean, factor, covariance = _shared_part(gram, rewards, shared_regularization)
    theta = np.zeros(theta_shape)
    theta[: action_features.shape[0], select] = action_features @ mean.T
    return _checked(HybridPosterior(mean, factor, covariance, theta, None))


def shared_draws(posterior: HybridPosterior, noise: np.ndarray, scale: float) -> np.ndarray:
    r"""``(G, u, k)`` draws of :math:`B \sim N(\hat B, scale^2 S^{-1})` from ``(m, G)`` noise.

    With :math:`S = L L^\top`, :math:`L^{-\top}\xi` has covariance :math:`S^{-1}`.
    """
    from scipy.linalg import solve_triangular

    deviations = solve_triangular(posterior.shared_factor, noise, lower=True, trans="T")
    u, k = posterior.shared_mean.shape
    return posterior.shared_mean + scale * deviations.T.reshape(-1, u, k)
