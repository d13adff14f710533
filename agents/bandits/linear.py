r"""Linear contextual bandits on any feature space: disjoint LinUCB and linear Thompson sampling.

Both keep, for every action :math:`a`, the ridge-regression statistics of Li et al. (2010)

.. math::

    A_a = \lambda I + \sum x x^\top, \qquad b_a = \sum r\, x, \qquad
    \hat\theta_a = A_a^{-1} b_a,

over the contexts :math:`x` of the customers who got :math:`a`. A context is the observation
scaled by the policy's :class:`~rec_env.feature_space.FeatureSpace` plus a bias term
(:func:`linear_contexts`), so :math:`d` is the number of features plus one: 17 for the env's 16
features, and whatever another data set brings. :math:`A_a^{-1}` is kept up to date by the
Sherman–Morrison formula

.. math::

    (A + x x^\top)^{-1} = A^{-1} - \frac{A^{-1} x\, x^\top A^{-1}}{1 + x^\top A^{-1} x},

applied one sample at a time in a compiled loop (:mod:`~rec_env.agents.bandits._linear_kernels`),
so a batch update is exactly the sequential one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rec_env.agents.bandits._linear_kernels import (
    _linear_moments,
    _padded,
    _refresh_derived,
    _scaled_contexts,
    _sherman_morrison_updates,
    _upper_confidence_actions,
)
from rec_env.agents.bandits.base import (
    BanditPolicy,
    _argmax_frequencies,
    _check_finite_observations,
    _check_number,
    _feedback_arrays,
    _masked_argmax,
    _one_hot,
)
from rec_env.feature_space import FeatureSpace

__all__ = ["LinUCB", "LinearThompsonSampling", "linear_contexts"]


def _scaling(features: FeatureSpace) -> np.ndarray:
    """``(2, F)`` centre and inverse width of each feature, as the kernels take them."""
    return np.ascontiguousarray(np.stack([features.center, features.inverse_width]))


def linear_contexts(obs: np.ndarray, features: FeatureSpace | None = None) -> np.ndarray:
    """The contexts of the linear bandits: the scaled features and a bias term 1.

    Args:
        obs: ``(n, F)`` observations (one customer may be 1-D).
        features: Their feature space (default: the env's 16 features, scaled by
            ``obs / OBS_HIGH`` into [0, 1]).

    Returns:
        ``(n, F + 1)`` float64 contexts.

    Raises:
        ValueError: If the observations do not have the feature space's columns.
    """
    features = features or FeatureSpace.env()
    return _scaled_contexts(features.check(obs), _scaling(features))


# ---------------------------------------------------------------------------- policies
@dataclass(eq=False, kw_only=True)
class _LinearBandit(BanditPolicy):
    r"""Per-action ridge regression on :func:`linear_contexts`, updated by Sherman–Morrison.

    The context size is :math:`d` = ``features.d + 1``; the learned arrays follow it.

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

    @property
    def d(self) -> int:
        """Context size: the number of features plus the bias."""
        return self.features.d + 1

    def _init_state(self) -> None:
        self._scaling = _scaling(self.features)
        d = self.d
        self.gram_inverse_ = np.tile(np.eye(d) / self.regularization, (self.n_actions, 1, 1))
        self.reward_vectors_ = np.zeros((self.n_actions, d))
        self.counts_ = np.zeros(self.n_actions, dtype=np.int64)
        self._state_loaded()

    def _state_loaded(self) -> None:
        d = self.d
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
        return self._theta[: self.n_actions, : self.d]

    def contexts(self, obs: np.ndarray) -> np.ndarray:
        """``(n, d)`` contexts of ``obs`` (see :func:`linear_contexts`)."""
        return linear_contexts(obs, self.features)

    def moments(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Per-customer predicted rewards and squared confidence widths.

        Returns:
            ``(n, n_actions)`` arrays :math:`x^\top\hat\theta_a` and :math:`x^\top A_a^{-1} x`.
        """
        obs = self.features.check(obs)
        return _linear_moments(obs, self._scaling, self._theta, self._packed, self.n_actions)

    def update(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from a batch, sample by sample in order (exactly the sequential result).

        Args:
            obs: ``(n, F)`` observations of the policy's feature space.
            actions: ``(n,)`` actions taken.
            rewards: ``(n,)`` rewards received.

        Raises:
            ValueError: On mismatched lengths, actions out of range, non-finite observations or
                rewards, or values so large that the state would overflow; the state is
                unchanged then.
        """
        obs = self.features.check(obs)
        _check_finite_observations(obs)
        actions, rewards = _feedback_arrays(obs.shape[0], actions, rewards)
        _sherman_morrison_updates(
            obs,
            self._scaling,
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
        action_channels: Channel of each action (consent-safe when known).
        features: Feature space of the observations (default: the env's 16 features).
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

    def _predict(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> np.ndarray:
        return _upper_confidence_actions(
            self.features.check(obs),
            self._scaling,
            self._theta,
            self._packed,
            self.n_actions,
            self.alpha,
            masks,
        )

    def _probabilities(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return _one_hot(self._predict(obs, masks, True), self.n_actions)


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
        action_channels: Channel of each action (consent-safe when known).
        features: Feature space of the observations (default: the env's 16 features).
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

    def _predict(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> np.ndarray:
        means, quadratic = self.moments(obs)
        if not deterministic:
            means += self.v * np.sqrt(quadratic) * self.random_.standard_normal(means.shape)
        return _masked_argmax(means, masks, obs.shape[0])

    def _probabilities(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        means, quadratic = self.moments(obs)
        draws = self.random_.standard_normal((self.n_mc_draws, self.n_actions))
        return _argmax_frequencies(means, self.v * np.sqrt(quadratic), draws, masks)
