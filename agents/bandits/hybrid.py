r"""Hybrid linear bandits with action features: hybrid LinUCB and hybrid linear Thompson sampling.

The disjoint bandits of :mod:`~rec_env.agents.bandits.linear` learn one ridge regression per
action, so an action they have rarely tried is a blank. Here each action has features
:math:`f_a \in \mathbb R^k` (``action_features``: a product's topics, scaled log price, margin,
new flag, channel one-hot, ...) and the reward model is the hybrid one of Li et al. (2010,
algorithm 2), on the contexts :math:`x` of :func:`~rec_env.agents.bandits.linear.linear_contexts`:

.. math::

    E[r \mid x, a] = z_{x,a}^\top \beta + x^\top \theta_a, \qquad
    z_{x,a} = x_P \otimes f_a, \qquad \beta = \mathrm{vec}\, B,

shared parameters :math:`B` (:math:`u \times k`) and, if ``per_action``, per-action
:math:`\theta_a`. :math:`x_P` is the context's ``interaction_features`` and its bias
(:math:`u` columns; all :math:`d` by default).

**Why** :math:`z = x_P \otimes f_a`. The outer product of customer and item features holds,
through the bias of :math:`x_P`, :math:`f_a` itself (item quality: margin, price, new), and
every customer × item interaction the reward needs to generalise across products: purchases
in a category × a product's weight on that topic, monetary value × price, discount
sensitivity × margin, consent or channel habits × channel. :math:`z^\top\beta = x_P^\top B
f_a` is bilinear, so one :math:`B` scores every product, including products never recommended.
Its Kronecker form also makes the model cheap (below); ``interaction_features`` bounds its size
:math:`m = uk` when :math:`d k` is large (the refresh is cubic in :math:`m`).

**Closed form.** With ridge penalties :math:`\lambda` on each :math:`\theta_a` and
:math:`\lambda_0` on :math:`\beta`, :math:`\bar\theta_a = \theta_a + P^\top B f_a` (the
action's coefficients over :math:`x`) has prior :math:`N(P^\top B f_a, \lambda^{-1} I)`: a
hierarchical model. As :math:`f_a` is fixed per action, Li et al.'s statistics follow from the
disjoint ones (:math:`A_a = \lambda I + \sum x x^\top`, :math:`b_a`,
:math:`\hat\theta_a = A_a^{-1} b_a`; their :math:`B_a = (A_a - \lambda I) P^\top (I_u \otimes
f_a^\top)`):

.. math::

    S = A_0 = \lambda_0 I + \lambda \sum_a P (I - \lambda A_a^{-1}) P^\top \otimes f_a f_a^\top,
    \qquad \hat\beta = S^{-1} \lambda \sum_a P \hat\theta_a \otimes f_a,

    \hat{\bar\theta}_a = \hat\theta_a + \lambda A_a^{-1} P^\top \hat B f_a, \qquad
    \Sigma_a = A_a^{-1} + \lambda^2 A_a^{-1} P^\top K_a P A_a^{-1}, \qquad
    K_a = (I_u \otimes f_a)^\top S^{-1} (I_u \otimes f_a),

and :math:`x^\top\Sigma_a x` is algorithm 2's :math:`s_{t,a}`. So the learned state is the
disjoint LinUCB's (:math:`A_a^{-1}` by Sherman–Morrison, :math:`b_a`, counts; a batch update is
exactly the sequential one), the scores are exactly algorithm 2's (a test checks a plain
transcription), and with zero action features the decisions are exactly disjoint LinUCB's. The
derived arrays are rebuilt at the first decision after an update, in
:math:`O(A(u^2k^2 + d^3) + m^3)`; deciding then costs what disjoint LinUCB costs. Without
per-action parameters (``per_action=False``) the model is :math:`x_P^\top B f_a`, the state
:math:`\sum z z^\top` and :math:`\sum r z` (kernels in
:mod:`~rec_env.agents.bandits._hybrid_kernels`), and a decision costs
:math:`O(m^2 + A k^2)` per customer.

**Memory.** ``per_action``: :math:`A_a^{-1}` and two packed covariances, about :math:`2d^2`
floats per action (45 kB at :math:`d = 53`: 27 MB for 601 actions, 450 MB for 10,000; use
``per_action=False`` beyond a few thousand actions, which keeps :math:`u^2k^2/4 + A d` floats:
2.4 MB + 0.4 kB per action at :math:`d = 53, k = 20`). Both keep :math:`S^{-1}` and its
factor, :math:`2m^2` floats (18 MB at :math:`m = 1060`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rec_env.agents.bandits._hybrid_kernels import shared_draws
from rec_env.agents.bandits._hybrid_model import _HybridBandit
from rec_env.agents.bandits._linear_kernels import (
    _linear_moments,
    _scaled_contexts,
    _upper_confidence_actions,
)
from rec_env.agents.bandits.base import (
    _argmax_frequencies,
    _check_number,
    _masked_argmax,
    _one_hot,
)
from rec_env.agents.threads import pinned_threads

__all__ = ["HybridLinUCB", "HybridLinearThompsonSampling"]


@dataclass(eq=False, kw_only=True)
class HybridLinUCB(_HybridBandit):
    r"""Hybrid LinUCB: the allowed action with the highest upper confidence bound.

    .. math::

        a = \arg\max_a\ x^\top\hat{\bar\theta}_a + \alpha\sqrt{x^\top \Sigma_a x}

    (module docstring; lowest index on ties), algorithm 2 of Li et al. Deterministic:
    ``action_probabilities`` is one-hot and ``predict`` ignores ``deterministic``.

    Args:
        n_actions: Number of actions.
        action_names: Names of the actions, for reports.
        random_state: Seed of ``self.random_`` (unused: LinUCB draws nothing).
        action_channels: Channel of each action (consent-safe when known).
        features: Feature space of the observations (default: the env's 16 features).
        action_features: ``(n_actions, k)`` features of each action, of order 1 (``None``: one
            constant feature, so the shared part is one linear model for every action).
        alpha: Width of the confidence bonus :math:`\alpha \ge 0`.
        regularization: Ridge penalty :math:`\lambda > 0` of the per-action parameters.
        shared_regularization: Ridge penalty :math:`\lambda_0 > 0` of the shared ones.
        per_action: Learn per-action parameters :math:`\theta_a` too (module docstring).
        interaction_features: Names of the features in :math:`x_P` (``None``: all).

    References:
        L. Li, W. Chu, J. Langford and R. E. Schapire. A contextual-bandit approach to
        personalized news article recommendation. WWW 2010, algorithm 2.
    """

    algorithm: ClassVar[str] = "hybrid_linucb"

    alpha: float = 1.0

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        self.alpha = _check_number("alpha", self.alpha, low=0.0)

    def _predict(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> np.ndarray:
        obs = self.features.check(obs)
        if self.per_action:
            posterior = self.posterior()
            return _upper_confidence_actions(
                obs, self._scaling, posterior.theta, posterior.packed, self.n_actions,
                self.alpha, masks,
            )  # fmt: skip
        means, variances = self.moments(obs)
        return _masked_argmax(means + self.alpha * np.sqrt(variances), masks, obs.shape[0])

    def _probabilities(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return _one_hot(self._predict(obs, masks, True), self.n_actions)


@dataclass(eq=False, kw_only=True)
class HybridLinearThompsonSampling(_HybridBandit):
    r"""Hybrid linear Thompson sampling: act greedily on a draw from the hybrid posterior.

    The posterior of the model of the module docstring, scaled by :math:`v^2`, factorises as
    :math:`\beta \sim N(\hat\beta, v^2 S^{-1})` and, given :math:`\beta`, independent
    :math:`\bar\theta_a \sim N(\hat\theta_a + \lambda A_a^{-1}P^\top B f_a, v^2 A_a^{-1})`.
    A batch is split into at most ``shared_draws`` groups of consecutive customers; each
    group draws :math:`\tilde B` once, and each customer draws its own per-action part as
    scores, :math:`x^\top\bar\theta_a \mid \tilde B \sim N(\cdot, v^2 x^\top A_a^{-1} x)`.
    A customer alone (serving) gets an exact Thompson draw; a group shares its shared-parameter
    hypothesis, as in batched Thompson sampling, at :math:`O(G A d u)` instead of
    :math:`O(n A d u)`. With many actions, raise ``regularization`` (items follow their
    features more closely): at :math:`\lambda = 1` every untried action's own part is as wide
    as the signal, and the draws spread over all of them.

    ``predict(deterministic=True)`` takes the highest posterior mean. ``action_probabilities``
    estimates :math:`P(a = \arg\max)` by Monte Carlo: :math:`G' = \min(` ``shared_draws``,
    ``n_mc_draws`` :math:`)` draws of :math:`\tilde B`, each with ``n_mc_draws // G'`` draws of
    the per-action parts (one without ``per_action``, which has none), shared by the batch. Its
    standard error is at most :math:`0.5/\sqrt{G'}`.

    Args:
        n_actions: Number of actions.
        action_names: Names of the actions, for reports.
        random_state: Seed of ``self.random_``.
        action_channels: Channel of each action (consent-safe when known).
        features: Feature space of the observations (default: the env's 16 features).
        action_features: ``(n_actions, k)`` features of each action (see :class:`HybridLinUCB`).
        v: Scale :math:`v > 0` of the posterior (about the reward noise's standard deviation).
        regularization: Ridge penalty :math:`\lambda > 0` of the per-action parameters.
        shared_regularization: Ridge penalty :math:`\lambda_0 > 0` of the shared ones.
        per_action: Learn per-action parameters :math:`\theta_a` too.
        interaction_features: Names of the features in :math:`x_P` (``None``: all).
        n_mc_draws: Monte Carlo draws of ``action_probabilities``.
        shared_draws: Draws of the shared parameters per batch (:math:`G`).

    References:
        S. Agrawal and N. Goyal. Thompson sampling for contextual bandits with linear payoffs.
        ICML 2013. L. Li et al., WWW 2010 (the hybrid model).
    """

    algorithm: ClassVar[str] = "hybrid_lin_ts"

    v: float = 1.0
    n_mc_draws: int = 1000
    shared_draws: int = 32

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        self.v = _check_number("v", self.v, low=0.0, low_inclusive=False)
        self.n_mc_draws = _check_number("n_mc_draws", self.n_mc_draws, low=1, integer=True)
        self.shared_draws = _check_number("shared_draws", self.shared_draws, low=1, integer=True)

    def _per_action_scores(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""``(n, A)`` disjoint means :math:`x^\top\hat\theta_a` and scales of their draws."""
        if not self.per_action:
            return np.zeros((obs.shape[0], self.n_actions)), np.zeros((1, 1))
        means, quadratic = _linear_moments(
            obs, self._scaling, self._theta, self._packed, self.n_actions
        )
        return means, self.v * np.sqrt(quadratic)

    def _shared_shifts(self, obs: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
        r"""``groups`` draws of :math:`\tilde B` as coefficient shifts, and their contexts.

        ``(G, A, d)`` :math:`\lambda A_a^{-1}P^\top\tilde B f_a` with all the context's
        columns (``per_action``), else ``(G, A, u)`` :math:`\tilde B f_a` with the interactions.
        """
        posterior = self.posterior()
        noise = self.random_.standard_normal((posterior.shared_mean.size, groups))
        with pinned_threads():
            draws = shared_draws(posterior, noise, self.v)
        coefficients = np.einsum("ak,guk->aug", self.action_features, draws)  # (A, u, G)
        contexts = _scaled_contexts(obs, self._scaling)
        if not self.per_action:
            return coefficients.transpose(2, 0, 1), contexts[:, self._select]
        spread = self.gram_inverse_
        if self.interaction_features is not None:
            spread = spread[:, :, self._select]
        shifts = self.regularization * np.matmul(spread, coefficients)  # (A, d, G)
        return shifts.transpose(2, 0, 1), contexts

    def _predict(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> np.ndarray:
        obs = self.features.check(obs)
        n = obs.shape[0]
        if deterministic or n == 0:
            return _masked_argmax(self.contexts(obs) @ self.theta_.T, masks, n)
        size = -(-n // self.shared_draws)  # customers per shared draw
        groups = -(-n // size)
        shifts, contexts = self._shared_shifts(obs, groups)
        scores, scales = self._per_action_scores(obs)
        blocks = np.zeros((groups * size, contexts.shape[1]))
        blocks[:n] = contexts
        with pinned_threads():  # one stacked product: group g is customers g*size, ...
            shifted = np.matmul(blocks.reshape(groups, size, -1), shifts.transpose(0, 2, 1))
        scores += shifted.reshape(groups * size, -1)[:n]
        if self.per_action:
            scores += scales * self.random_.standard_normal(scores.shape)
        return _masked_argmax(scores, masks, n)

    def _probabilities(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        obs = self.features.check(obs)
        groups = min(self.shared_draws, self.n_mc_draws)
        inner = self.n_mc_draws // groups if self.per_action else 1
        shifts, contexts = self._shared_shifts(obs, groups)
        means, scales = self._per_action_scores(obs)
        scales = np.broadcast_to(scales, means.shape)
        probabilities = np.zeros_like(means)
        for g in range(groups):
            draws = self.random_.standard_normal((inner, self.n_actions))
            with pinned_threads():
                shifted = means + contexts @ shifts[g].T
            probabilities += _argmax_frequencies(shifted, scales, draws, masks)
        return probabilities / groups
