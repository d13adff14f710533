r"""Linear contextual bandits: disjoint LinUCB and linear Thompson sampling.

Both keep, for every action :math:`a`, the ridge-regression statistics of Li et al. (2010)

.. math::

    A_a = \lambda I + \sum x x^\top, \qquad b_a = \sum r\, x, \qquad
    \hat\theta_a = A_a^{-1} b_a,

over the contexts :math:`x` (see :func:`linear_contexts`, :math:`d = 17`) of the customers who
got :math:`a`. :math:`A_a^{-1}` is kept up to date by the Sherman–Morrison formula

.. math::

    (A + x x^\top)^{-1} = A^{-1} - \frac{A^{-1} x\, x^\top A^{-1}}{1 + x^\top A^{-1} x},

applied one sample at a time in a compiled loop, so a batch update is exactly the sequential
one. Scores need :math:`x^\top \hat\theta_a` and the quadratic forms
:math:`x^\top A_a^{-1} x`; a compiled kernel computes them as dot products of the pairwise
products :math:`x_j x_k` (:math:`j \le k`) with the packed upper triangles of the
:math:`A_a^{-1}`, two customers against four actions at a time (about 8 GFLOP/s of
multiply-adds on one core).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit

from rec_env.agents.bandits.base import (
    _ACTIONS_OUT_OF_RANGE,
    _NO_ALLOWED_ACTION,
    BanditPolicy,
    _argmax_frequencies,
    _as_batch,
    _check_number,
    _feedback_arrays,
    _masked_argmax,
    _one_hot,
)
from rec_env.features import OBS_HIGH

__all__ = ["N_CONTEXT_FEATURES", "LinUCB", "LinearThompsonSampling", "linear_contexts"]

N_CONTEXT_FEATURES = 17
"""Context size :math:`d`: the 16 observed features and a bias term.

A literal on purpose: the score kernel uses it as a compile-time constant (its triangular loop
then unrolls, about 10 % faster), and numba's cache only notices changes to this file.
"""
if OBS_HIGH.shape[0] + 1 != N_CONTEXT_FEATURES:  # pragma: no cover
    raise ImportError(
        f"the observation has {OBS_HIGH.shape[0]} features: set N_CONTEXT_FEATURES in "
        f"{__name__} to {OBS_HIGH.shape[0] + 1}"
    )

_INVERSE_OBS_HIGH = 1.0 / OBS_HIGH.astype(np.float64)
_REASSOCIATE = {"reassoc", "contract"}
"""Fast-math flags of the score kernels: reassociation lets the dot products vectorise."""


# ---------------------------------------------------------------------------- contexts
@njit(cache=True)
def _scaled_context(
    obs: np.ndarray, i: int, inverse_high: np.ndarray, out: np.ndarray, row: int
) -> None:
    """The context transform, for the kernels: ``out[row] = (obs[i] / OBS_HIGH, 1)``."""
    n_features = inverse_high.shape[0]
    for j in range(n_features):
        out[row, j] = obs[i, j] * inverse_high[j]
    out[row, n_features] = 1.0


@njit(cache=True)
def _scaled_contexts(obs: np.ndarray, inverse_high: np.ndarray) -> np.ndarray:
    contexts = np.empty((obs.shape[0], inverse_high.shape[0] + 1))
    for i in range(obs.shape[0]):
        _scaled_context(obs, i, inverse_high, contexts, i)
    return contexts


def _check_observations(obs: np.ndarray) -> np.ndarray:
    """``obs`` as ``(n, 16)``.

    Raises:
        ValueError: If the observations do not have the env's 16 features.
    """
    obs = _as_batch(obs)
    if obs.ndim != 2 or obs.shape[1] != _INVERSE_OBS_HIGH.shape[0]:
        raise ValueError(f"obs must have shape (n, {_INVERSE_OBS_HIGH.shape[0]}), got {obs.shape}")
    return obs


def linear_contexts(obs: np.ndarray) -> np.ndarray:
    """The contexts of the linear bandits: ``obs / OBS_HIGH`` (in [0, 1]) and a bias term 1.

    The kernels apply the same transform (:func:`_scaled_context`) customer by customer.

    Args:
        obs: ``(n, 16)`` observations (one customer may be 1-D).

    Returns:
        ``(n, 17)`` float64 contexts.

    Raises:
        ValueError: If the observations do not have the env's 16 features.
    """
    return _scaled_contexts(_check_observations(obs), _INVERSE_OBS_HIGH)


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
    inverse_high: np.ndarray,
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
    _scaled_context(obs, i, inverse_high, x, 0)
    _scaled_context(obs, second, inverse_high, x, 1)
    d, p = N_CONTEXT_FEATURES, 0
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
    inverse_high: np.ndarray,
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
        for r in range(_moments_of_pair(obs, i, inverse_high, theta, packed, scratch)):
            means[i + r] = scratch[2][r, :n_actions]
            quadratic[i + r] = np.maximum(scratch[3][r, :n_actions], 0.0)
    return means, quadratic


@njit(cache=True)
def _upper_confidence_actions(
    obs: np.ndarray,
    inverse_high: np.ndarray,
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
        for r in range(_moments_of_pair(obs, i, inverse_high, theta, packed, scratch)):
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
    inverse_high: np.ndarray,
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
    derived arrays of the changed actions.

    With :math:`u = A^{-1} x` and :math:`v = u / \sqrt{1 + x^\top u}` the update is
    :math:`A^{-1} \leftarrow A^{-1} - v v^\top`: both halves subtract the same product
    :math:`v_j v_k`, so :math:`A^{-1}` stays symmetric.

    Raises:
        ValueError: Before any change, if an action is out of range or a reward not finite.
    """
    n_actions, d = reward_vectors.shape
    for i in range(actions.shape[0]):
        if actions[i] < 0 or actions[i] >= n_actions:
            raise ValueError(_ACTIONS_OUT_OF_RANGE)
        if not np.isfinite(rewards[i]):
            raise ValueError("rewards must be finite")
    x = np.empty((1, d))
    u = np.empty(d)
    changed = np.zeros(n_actions, dtype=np.bool_)
    for i in range(actions.shape[0]):
        a = actions[i]
        _scaled_context(obs, i, inverse_high, x, 0)
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
        changed[a] = True
    _refresh_derived(gram_inverse, reward_vectors, changed, theta, packed)


# ---------------------------------------------------------------------------- policies
@dataclass(eq=False, kw_only=True)
class _LinearBandit(BanditPolicy):
    r"""Per-action ridge regression on :func:`linear_contexts`, updated by Sherman–Morrison.

    Attributes:
        gram_inverse_: ``(n_actions, d, d)`` :math:`A_a^{-1}`.
        reward_vectors_: ``(n_actions, d)`` :math:`b_a`.
        counts_: ``(n_actions,)`` rewards observed per action.
        theta_: ``(n_actions, d)`` :math:`\hat\theta_a = A_a^{-1} b_a` (derived, not saved).
    """

    state_names: ClassVar[tuple[str, ...]] = ("gram_inverse_", "reward_vectors_", "counts_")

    regularization: float = 1.0

    def _check_hyperparameters(self) -> None:
        self.regularization = _check_number(
            "regularization", self.regularization, low=0.0, low_inclusive=False
        )

    def _init_state(self) -> None:
        d = N_CONTEXT_FEATURES
        self.gram_inverse_ = np.tile(np.eye(d) / self.regularization, (self.n_actions, 1, 1))
        self.reward_vectors_ = np.zeros((self.n_actions, d))
        self.counts_ = np.zeros(self.n_actions, dtype=np.int64)
        self._state_loaded()

    def _state_loaded(self) -> None:
        d = N_CONTEXT_FEATURES
        rows = _padded(self.n_actions)
        self._theta = np.zeros((rows, _padded(d)))
        self._packed = np.zeros((rows, _padded(d * (d + 1) // 2)))
        changed = np.ones(self.n_actions, dtype=bool)
        _refresh_derived(
            self.gram_inverse_, self.reward_vectors_, changed, self._theta, self._packed
        )

    @property
    def theta_(self) -> np.ndarray:
        r"""``(n_actions, d)`` ridge estimates :math:`\hat\theta_a = A_a^{-1} b_a`."""
        return self._theta[: self.n_actions, :N_CONTEXT_FEATURES]

    def moments(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Per-customer predicted rewards and squared confidence widths.

        Returns:
            ``(n, n_actions)`` arrays :math:`x^\top\hat\theta_a` and :math:`x^\top A_a^{-1} x`.
        """
        obs = _check_observations(obs)
        return _linear_moments(obs, _INVERSE_OBS_HIGH, self._theta, self._packed, self.n_actions)

    def update(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from a batch, sample by sample in order (exactly the sequential result).

        Args:
            obs: ``(n, 16)`` observations.
            actions: ``(n,)`` actions taken.
            rewards: ``(n,)`` rewards received.

        Raises:
            ValueError: On mismatched lengths, actions out of range or non-finite rewards
                (before anything is learned).
        """
        obs = _check_observations(obs)
        actions, rewards = _feedback_arrays(obs.shape[0], actions, rewards)
        _sherman_morrison_updates(
            obs,
            _INVERSE_OBS_HIGH,
            actions,
            rewards,
            self.gram_inverse_,
            self.reward_vectors_,
            self.counts_,
            self._theta,
            self._packed,
        )


@dataclass(eq=False, kw_only=True)
class LinUCB(_LinearBandit):
    r"""Disjoint LinUCB: the allowed action with the highest upper confidence bound.

    .. math::

        a = \arg\max_a\ x^\top \hat\theta_a + \alpha \sqrt{x^\top A_a^{-1} x},

    with :math:`x` the context of :func:`linear_contexts` (lowest index on ties). Deterministic:
    ``action_probabilities`` is one-hot and ``predict`` ignores ``deterministic``.

    Args:
        n_actions: Number of actions.
        action_names: Names of the actions, for reports.
        random_state: Seed of ``self.random_`` (unused: LinUCB draws nothing).
        alpha: Width of the confidence bonus :math:`\alpha \ge 0`.
        regularization: Ridge penalty :math:`\lambda > 0` (:math:`A_a = \lambda I` before data).

    References:
        L. Li, W. Chu, J. Langford and R. E. Schapire. A contextual-bandit approach to
        personalized news article recommendation. WWW 2010, algorithm 1.
    """

    algorithm: ClassVar[str] = "linucb"

    alpha: float = 1.0

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        self.alpha = _check_number("alpha", self.alpha, low=0.0)

    def _select(self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool) -> np.ndarray:
        return _upper_confidence_actions(
            _check_observations(obs),
            _INVERSE_OBS_HIGH,
            self._theta,
            self._packed,
            self.n_actions,
            self.alpha,
            masks,
        )

    def _probabilities(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return _one_hot(self._select(obs, masks, True), self.n_actions)


@dataclass(eq=False, kw_only=True)
class LinearThompsonSampling(_LinearBandit):
    r"""Linear Thompson sampling: act greedily on a draw from the ridge posterior.

    For each decision draw :math:`\tilde\theta_a \sim \mathcal N(\hat\theta_a, v^2 A_a^{-1})`
    for every action and take the allowed :math:`\arg\max_a x^\top\tilde\theta_a`. Only the
    scores matter and the actions' draws are independent, so this samples the scores directly:
    :math:`x^\top\tilde\theta_a \sim \mathcal N(x^\top\hat\theta_a, v^2 x^\top A_a^{-1} x)`,
    the same law at :math:`O(A)` normal draws per customer instead of :math:`O(A d)`. Every
    customer of a batch gets its own draw.

    ``predict(deterministic=True)`` takes the highest posterior mean :math:`x^\top\hat\theta_a`.
    ``action_probabilities`` estimates :math:`P(a = \arg\max)` per customer by Monte Carlo with
    ``n_mc_draws`` standard-normal draws per action from ``self.random_``, shared by the batch;
    its standard error is at most :math:`0.5/\sqrt{n\_mc\_draws}`, and an action that wins no
    draw gets probability 0. It costs :math:`O(n \cdot n\_mc\_draws \cdot A)`.

    Args:
        n_actions: Number of actions.
        action_names: Names of the actions, for reports.
        random_state: Seed of ``self.random_``.
        v: Scale :math:`v > 0` of the posterior (about the reward noise's standard deviation).
        regularization: Ridge penalty :math:`\lambda > 0`.
        n_mc_draws: Monte Carlo draws of ``action_probabilities``.

    References:
        S. Agrawal and N. Goyal. Thompson sampling for contextual bandits with linear payoffs.
        ICML 2013, algorithm 1.
    """

    algorithm: ClassVar[str] = "lin_ts"

    v: float = 1.0
    n_mc_draws: int = 1000

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        self.v = _check_number("v", self.v, low=0.0, low_inclusive=False)
        self.n_mc_draws = _check_number("n_mc_draws", self.n_mc_draws, low=1, integer=True)

    def _select(self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool) -> np.ndarray:
        means, quadratic = self.moments(obs)
        if not deterministic:
            means += self.v * np.sqrt(quadratic) * self.random_.standard_normal(means.shape)
        return _masked_argmax(means, masks, obs.shape[0])

    def _probabilities(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        means, quadratic = self.moments(obs)
        draws = self.random_.standard_normal((self.n_mc_draws, self.n_actions))
        return _argmax_frequencies(means, self.v * np.sqrt(quadratic), draws, masks)
