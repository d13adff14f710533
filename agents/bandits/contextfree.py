"""Context-free bandits: ε-greedy, UCB1 and Gaussian Thompson sampling.

They ignore the observation (any number of features): they learn one value per action and differ
from customer to customer only through the action masks (consent). The shared base is in
:mod:`rec_env.agents.bandits.base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit

from rec_env.agents.bandits.base import (
    _ACTIONS_OUT_OF_RANGE,
    BanditPolicy,
    _argmax_frequencies,
    _check_finite_observations,
    _check_number,
    _feedback_arrays,
    _full_masks,
    _masked_argmax,
    _one_hot,
    _sample_allowed,
)
from rec_env.agents.base import _as_batch, uniform_over_allowed

_OVERFLOW = "rewards too large: the learned moments would overflow; not learned"

__all__ = ["UCB1", "EpsilonGreedy", "ThompsonSampling"]


@dataclass(eq=False)
class _ContextFreeBandit(BanditPolicy):
    r"""One running mean per action, updated from whole batches.

    Attributes:
        counts_: ``(n_actions,)`` rewards observed per action, :math:`n_a`.
        means_: ``(n_actions,)`` mean reward per action, :math:`\bar r_a` (0 before any).
        squared_deviations_: ``(n_actions,)`` sum of squared deviations from the mean,
            :math:`\sum (r - \bar r_a)^2`.
    """

    state_names: ClassVar[tuple[str, ...]] = ("counts_", "means_", "squared_deviations_")

    def _init_state(self) -> None:
        self.counts_ = np.zeros(self.n_actions, dtype=np.int64)
        self.means_ = np.zeros(self.n_actions)
        self.squared_deviations_ = np.zeros(self.n_actions)

    @property
    def n_rewards(self) -> int:
        r"""Rewards observed so far, :math:`t = \sum_a n_a`."""
        return int(self.counts_.sum())

    def update(self, obs: np.ndarray | None, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Fold a batch into the per-action moments (Chan et al.'s parallel update).

        Exactly the running mean and sum of squared deviations of the whole stream, up to
        rounding, whatever the batch size. The new moments are computed aside and kept only
        if they are all finite, so a batch is learned whole or not at all.

        Args:
            obs: ``(n, n_features)`` observations (only their number and finiteness are
                checked).
            actions: ``(n,)`` actions taken.
            rewards: ``(n,)`` rewards received.

        Raises:
            ValueError: On mismatched lengths, actions out of range, non-finite observations
                or rewards, or rewards so large that the moments would overflow; the state is
                unchanged then.
        """
        if obs is not None:
            obs = _as_batch(obs)
            _check_finite_observations(obs)
        n = np.size(actions) if obs is None else obs.shape[0]
        actions, rewards = _feedback_arrays(n, actions, rewards)
        means, squared_deviations, counts = _folded_moments(
            self.counts_, self.means_, self.squared_deviations_, actions, rewards
        )
        self.means_, self.squared_deviations_, self.counts_ = means, squared_deviations, counts


@njit(cache=True)
def _folded_moments(
    counts: np.ndarray,
    means: np.ndarray,
    squared_deviations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The per-action moments after a batch, as new arrays (Chan et al.'s parallel update).

    With the batch's :math:`m` rewards of action :math:`a`, their mean :math:`\bar r_B` and
    squared deviations :math:`S_B`, and :math:`\delta = \bar r_B - \bar r_a`:
    :math:`\bar r_a \leftarrow \bar r_a + \delta\, m / (n_a + m)` and
    :math:`S_a \leftarrow S_a + S_B + \delta^2 n_a m / (n_a + m)`.

    Raises:
        ValueError: If an action is out of range, or the new moments would not be finite
            (the inputs are left untouched either way).
    """
    n_actions = counts.shape[0]
    batch_counts = np.zeros(n_actions, dtype=np.int64)
    sums = np.zeros(n_actions)
    for i in range(actions.shape[0]):
        if actions[i] < 0 or actions[i] >= n_actions:
            raise ValueError(_ACTIONS_OUT_OF_RANGE)
        batch_counts[actions[i]] += 1
        sums[actions[i]] += rewards[i]
    batch_means = np.zeros(n_actions)
    for a in range(n_actions):
        if batch_counts[a] > 0:
            batch_means[a] = sums[a] / batch_counts[a]
    batch_squares = np.zeros(n_actions)
    for i in range(actions.shape[0]):
        deviation = rewards[i] - batch_means[actions[i]]
        batch_squares[actions[i]] += deviation * deviation
    new_means, new_squares = means.copy(), squared_deviations.copy()
    total = counts + batch_counts
    for a in range(n_actions):
        if batch_counts[a] > 0:
            delta = batch_means[a] - means[a]
            share = batch_counts[a] / total[a]
            new_means[a] = means[a] + delta * share
            new_squares[a] = squared_deviations[a] + batch_squares[a]
            if counts[a] > 0:  # the first rewards of an action: no term (not inf * 0 = NaN)
                new_squares[a] = squared_deviations[a] + (
                    batch_squares[a] + delta * delta * counts[a] * share
                )
            if not (np.isfinite(new_means[a]) and np.isfinite(new_squares[a])):
                raise ValueError(_OVERFLOW)
    return new_means, new_squares, total


@dataclass(eq=False, kw_only=True)
class EpsilonGreedy(_ContextFreeBandit):
    r"""ε-greedy with a hyperbolically decaying exploration rate.

    With probability :math:`\varepsilon_t` a uniformly random allowed action, otherwise the
    allowed action with the highest mean reward :math:`\bar r_a` (the lowest index on ties):

    .. math::

        \varepsilon_t = \max\left(\varepsilon_{\min},\
            \frac{\varepsilon}{1 + \text{decay}\cdot t}\right),

    where :math:`t` is the number of rewards observed so far. The :math:`1/t` schedule is the
    one with logarithmic regret in Auer et al. (2002); ``decay=0`` gives a constant ε. Actions
    not yet tried have mean 0.

    ``action_probabilities`` is :math:`(1 - \varepsilon_t)\,\text{onehot}(\text{greedy}) +
    \varepsilon_t\,\text{uniform(allowed)}`, exactly the law of ``predict(deterministic=False)``;
    ``predict(deterministic=True)`` is the greedy action.

    Args:
        n_actions: Number of actions.
        action_names: Names of the actions, for reports.
        random_state: Seed of ``self.random_``.
        epsilon: Initial exploration rate :math:`\varepsilon \in [0, 1]`.
        decay: Decay speed per observed reward (``>= 0``; 0 keeps ε constant).
        min_epsilon: Floor :math:`\varepsilon_{\min} \in [0, \varepsilon]`.

    References:
        P. Auer, N. Cesa-Bianchi and P. Fischer. Finite-time analysis of the multiarmed bandit
        problem. Machine Learning 47, 235–256, 2002.
    """

    algorithm: ClassVar[str] = "egreedy"

    epsilon: float = 0.1
    decay: float = 1e-5
    min_epsilon: float = 0.01

    def _check_hyperparameters(self) -> None:
        self.epsilon = _check_number("epsilon", self.epsilon, low=0.0, high=1.0)
        self.decay = _check_number("decay", self.decay, low=0.0)
        self.min_epsilon = _check_number("min_epsilon", self.min_epsilon, low=0.0, high=1.0)
        if self.min_epsilon > self.epsilon:
            raise ValueError(
                f"min_epsilon must be <= epsilon ({self.epsilon}), got {self.min_epsilon}"
            )

    @property
    def current_epsilon(self) -> float:
        r"""The exploration rate :math:`\varepsilon_t` of the next decisions."""
        return max(self.min_epsilon, self.epsilon / (1.0 + self.decay * self.n_rewards))

    def _predict(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> np.ndarray:
        n = obs.shape[0]
        greedy = _masked_argmax(self.means_[None, :], masks, n)
        if deterministic:
            return greedy
        explore = self.random_.random(n) < self.current_epsilon
        masks = _full_masks(masks, n, self.n_actions)
        return np.where(explore, _sample_allowed(masks, self.random_), greedy)

    def _probabilities(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        epsilon = self.current_epsilon
        greedy = _one_hot(_masked_argmax(self.means_[None, :], masks, obs.shape[0]), self.n_actions)
        uniform = uniform_over_allowed(masks.shape[0], self.n_actions, masks)
        return (1.0 - epsilon) * greedy + epsilon * uniform


@dataclass(eq=False, kw_only=True)
class UCB1(_ContextFreeBandit):
    r"""UCB1: the allowed action with the highest upper confidence bound.

    .. math::

        a_t = \arg\max_a\ \bar r_a + c\,\sqrt{\frac{2 \ln t}{n_a}},

    with :math:`t` the rewards observed so far and :math:`n_a` those of action :math:`a`.
    Actions never tried come first. Batch-first: when a customer's allowed actions include
    several untried ones, the customers of the batch are spread over them in turn (customer
    ``i`` of the batch takes the ``i mod k``-th of its ``k`` untried allowed actions), so one
    batch tries them all; with batches of one this is UCB1's usual "play each arm once".

    The bonus assumes rewards in :math:`[0, 1]`; scale ``c`` with the range of the reward
    (profit in currency units). Deterministic: ``action_probabilities`` is one-hot and
    ``predict`` ignores ``deterministic``.

    Args:
        n_actions: Number of actions.
        action_names: Names of the actions, for reports.
        random_state: Seed of ``self.random_`` (unused: UCB1 draws nothing).
        c: Width of the confidence bonus (``>= 0``).

    References:
        P. Auer, N. Cesa-Bianchi and P. Fischer. Finite-time analysis of the multiarmed bandit
        problem. Machine Learning 47, 235–256, 2002.
    """

    algorithm: ClassVar[str] = "ucb1"

    c: float = 1.0

    def _check_hyperparameters(self) -> None:
        self.c = _check_number("c", self.c, low=0.0)

    def upper_confidence_bounds(self) -> np.ndarray:
        """``(n_actions,)`` UCB of each action (``+inf`` for actions never tried)."""
        tried = self.counts_ > 0
        log_t = np.log(max(self.n_rewards, 1))
        bonus = self.c * np.sqrt(2.0 * log_t / np.maximum(self.counts_, 1))
        return np.where(tried, self.means_ + bonus, np.inf)

    def _predict(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> np.ndarray:
        n = obs.shape[0]
        actions = _masked_argmax(self.upper_confidence_bounds()[None, :], masks, n)
        untried = _full_masks(masks, n, self.n_actions) & (self.counts_ == 0)
        n_untried = untried.sum(axis=1)
        if n_untried.any():
            turn = np.arange(n) % np.maximum(n_untried, 1)
            spread = np.argmax(untried.cumsum(axis=1) > turn[:, None], axis=1)
            actions = np.where(n_untried > 0, spread, actions)
        return actions

    def _probabilities(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return _one_hot(self._predict(obs, masks, True), self.n_actions)


@dataclass(eq=False, kw_only=True)
class ThompsonSampling(_ContextFreeBandit):
    r"""Gaussian Thompson sampling with a Normal–Inverse-Gamma prior (unknown mean and variance).

    Each action's reward is modelled as :math:`r \sim \mathcal N(\mu_a, \sigma_a^2)` with the
    conjugate prior :math:`\sigma_a^2 \sim \text{Inv-Gamma}(\alpha_0, \beta_0)`,
    :math:`\mu_a \mid \sigma_a^2 \sim \mathcal N(\mu_0, \sigma_a^2 / \kappa_0)`. After
    :math:`n` rewards with mean :math:`\bar r` and squared deviations :math:`S`:

    .. math::

        \kappa_n = \kappa_0 + n,\quad
        \mu_n = \frac{\kappa_0 \mu_0 + n \bar r}{\kappa_n},\quad
        \alpha_n = \alpha_0 + \frac n2,\quad
        \beta_n = \beta_0 + \frac S2 + \frac{\kappa_0 n (\bar r - \mu_0)^2}{2 \kappa_n}.

    A decision draws :math:`\tau_a \sim \text{Gamma}(\alpha_n, \text{rate}=\beta_n)` and
    :math:`\tilde\mu_a \sim \mathcal N(\mu_n, 1 / (\kappa_n \tau_a))` for every action and takes
    the allowed argmax; each customer of a batch gets its own draw.

    **Why this likelihood.** The reward is continuous profit: mostly 0 or a small negative
    contact cost, sometimes a large margin from a purchase. A Beta–Bernoulli model of "reward
    > 0" would throw away the size of the margin and prefer frequent small sales to rarer large
    ones (in the default population a 20 % e-mail discount converts more often than a
    recommendation e-mail but earns less per customer). A Gaussian with *known* variance needs
    a noise scale in currency units, which differs between catalogs, reward modes and actions
    (the standard deviation of one cycle's profit ranges from about 3 to 6 across the default
    actions). The Normal–Inverse-Gamma learns each action's variance from its own rewards, so
    exploration scales with each action's noise, and its Student-t marginal explores more while
    data are few.

    ``predict(deterministic=True)`` takes the highest posterior mean :math:`\mu_n` (no draw).
    ``action_probabilities`` estimates :math:`P(a = \arg\max)` by Monte Carlo with
    ``n_mc_draws`` posterior draws from ``self.random_`` shared by the batch (customers with the
    same masks get the same row); its standard error is at most
    :math:`0.5 / \sqrt{n\_mc\_draws}`, and an action that wins no draw gets probability 0.

    Args:
        n_actions: Number of actions.
        action_names: Names of the actions, for reports.
        random_state: Seed of ``self.random_``.
        prior_mean: :math:`\mu_0`.
        prior_count: :math:`\kappa_0 > 0`, pseudo-observations behind the prior mean.
        prior_shape: :math:`\alpha_0 > 0`.
        prior_rate: :math:`\beta_0 > 0` (with :math:`\alpha_0` it sets the prior reward scale).
        n_mc_draws: Monte Carlo draws of ``action_probabilities``.

    References:
        K. P. Murphy. Conjugate Bayesian analysis of the Gaussian distribution. Technical
        report, 2007, section 3.
        J. Honda and A. Takemura. Optimality of Thompson sampling for Gaussian bandits depends
        on priors. AISTATS 2014.
    """

    algorithm: ClassVar[str] = "thompson"

    prior_mean: float = 0.0
    prior_count: float = 1.0
    prior_shape: float = 1.0
    prior_rate: float = 1.0
    n_mc_draws: int = 1000

    def _check_hyperparameters(self) -> None:
        self.prior_mean = _check_number("prior_mean", self.prior_mean)
        for name in ("prior_count", "prior_shape", "prior_rate"):
            value = _check_number(name, getattr(self, name), low=0.0, low_inclusive=False)
            setattr(self, name, value)
        self.n_mc_draws = _check_number("n_mc_draws", self.n_mc_draws, low=1, integer=True)

    def posterior(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        r"""``(mu_n, kappa_n, alpha_n, beta_n)``, each ``(n_actions,)``."""
        n = self.counts_.astype(np.float64)
        kappa = self.prior_count + n
        mean = (self.prior_count * self.prior_mean + n * self.means_) / kappa
        shape = self.prior_shape + 0.5 * n
        shift = self.means_ - self.prior_mean
        rate = (
            self.prior_rate
            + 0.5 * self.squared_deviations_
            + self.prior_count * n * shift * shift / (2.0 * kappa)
        )
        return mean, kappa, shape, rate

    def sample_means(self, n_draws: int) -> np.ndarray:
        r"""``(n_draws, n_actions)`` draws of :math:`\tilde\mu_a` from the posterior."""
        mean, kappa, shape, rate = self.posterior()
        size = (n_draws, self.n_actions)
        precision = self.random_.gamma(shape, 1.0 / rate, size=size)
        return mean + self.random_.standard_normal(size) / np.sqrt(kappa * precision)

    def _predict(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> np.ndarray:
        n = obs.shape[0]
        if deterministic:
            return _masked_argmax(self.posterior()[0][None, :], masks, n)
        return _masked_argmax(self.sample_means(n), masks, n)

    def _probabilities(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        patterns, rows = np.unique(masks, axis=0, return_inverse=True)
        draws = self.sample_means(self.n_mc_draws)
        zeros = np.zeros(patterns.shape)
        frequencies = _argmax_frequencies(zeros, np.ones(patterns.shape), draws, patterns)
        return frequencies[rows.reshape(-1)]
