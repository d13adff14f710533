r"""Served item actions drawn from a policy with exploration, one fused pass per customer.

An item policy has ~600 actions (200 products × 3 channels, and no action). The service draws
each customer's action from the serving probabilities :math:`q` of
:class:`~rec_env.serve.exploration.Exploration` (the same formulas as in the strategy world):

.. math::

    p(a) = \frac{w_a}{\sum_{b \in M} w_b}, \qquad
    q(a) = (1 - \varepsilon)\,p(a) + \frac{\varepsilon}{|M|}
    \quad\text{or}\quad q(a) \propto \max(p(a), p_{\min})^{1/\tau}
    \quad\text{or}\quad q(a) = p(a),

over the allowed actions :math:`M` (consent on the action's channel, read from the features, and
what the request allows: products in stock and not excluded). :math:`w_a` is
:math:`\exp(\ell_a - \max \ell)` for an actor's logits :math:`\ell` (PPO, A2C, MaskablePPO:
the masked softmax they define) or the policy's own probabilities (DQN, bandits).

:func:`sample_item_actions` computes :math:`q` and draws the action by the inverse of its
cumulative distribution with one uniform number per customer, row by row in a compiled kernel
that reads the masks from the consent flags and the request's allowed actions instead of
materialising them: at 10,000 customers and 601 actions, numpy's version sweeps six 48 MB
arrays. The exponentials are numpy's (vectorised, float32, :func:`policy_weights`). The
propensity is :math:`q` of the drawn action. :func:`serving_probabilities` gives whole rows of
:math:`q` from the same weights (for the response's most probable actions, and the tests).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rec_env.features import consent_masks
from rec_env.serve.exploration import MIN_PROBABILITY, Exploration

__all__ = [
    "EXPLORATION_CODES",
    "policy_weights",
    "sample_item_actions",
    "serving_probabilities",
]

EXPLORATION_CODES = {"epsilon": 0, "temperature": 1, "none": 2}
"""The kernel's code of each exploration kind."""


@njit(cache=True, nogil=True)
def _sample_kernel(
    weights: np.ndarray,
    consent: np.ndarray,
    channel: np.ndarray,
    request_allowed: np.ndarray,
    kind: int,
    epsilon: float,
    temperature: float,
    min_probability: float,
    uniforms: np.ndarray,
    actions: np.ndarray,
    propensities: np.ndarray,
) -> None:
    """Draw each row's action from the serving probabilities of its policy ``weights``."""
    n, n_actions = weights.shape
    n_channels = consent.shape[1]
    open_ = np.ones(n_channels + 1, dtype=np.bool_)
    code = np.where(request_allowed, channel, -1)  # the action's channel, -1: not allowed
    q = np.empty(n_actions)
    mix = epsilon if kind == 0 else 0.0
    for i in range(n):
        open_[:n_channels] = consent[i]
        # 1. the policy's total weight over the allowed actions (uniform if it is 0)
        count = 0
        total = 0.0
        for a in range(n_actions):
            if code[a] >= 0 and open_[code[a]]:
                count += 1
                total += weights[i, a]
        uniform = not total > 0.0
        scale = 1.0 / count if uniform else 1.0 / total
        # 2. q through its CDF with one uniform; ε-mixing and none sum to 1 by construction,
        # so the walk stops at the drawn action (half a pass on average)
        chosen = -1
        value = 0.0
        if kind != 1:
            target = uniforms[i]
            cumulative = 0.0
            for a in range(n_actions):
                if code[a] >= 0 and open_[code[a]]:
                    p = scale if uniform else weights[i, a] * scale
                    v = (1.0 - mix) * p + mix / count
                    if v > 0.0:
                        chosen, value = a, v
                        cumulative += v
                        if cumulative > target:
                            break
            actions[i] = chosen
            propensities[i] = value
            continue
        q_total = 0.0
        for a in range(n_actions):
            v = 0.0
            if code[a] >= 0 and open_[code[a]]:
                p = scale if uniform else weights[i, a] * scale
                v = max(p, min_probability) ** (1.0 / temperature)
            q[a] = v
            q_total += v
        target = uniforms[i] * q_total
        cumulative = 0.0
        for a in range(n_actions):
            if q[a] > 0.0:
                chosen = a
                cumulative += q[a]
                if cumulative > target:
                    break
        actions[i] = chosen
        propensities[i] = q[chosen] / q_total


def policy_weights(scores: np.ndarray, logits: bool, overwrite: bool = False) -> np.ndarray:
    """``(n, A)`` the policy's unnormalised weights: ``exp(l - max l)`` of logits, else ``scores``.

    The softmax of the actor's logits over all actions, renormalised over the allowed ones, as
    the policy computes it (:meth:`~rec_env.agents.sb3.policy.SB3Policy.action_probabilities`):
    a row whose allowed actions all underflow gets the uniform distribution over them, in both.

    Args:
        scores: ``(n, A)`` logits or probabilities.
        logits: Whether ``scores`` are logits.
        overwrite: Compute the weights in ``scores``' memory (it is not needed afterwards).
    """
    if not logits:
        return np.ascontiguousarray(scores)
    out = scores if overwrite else np.empty_like(scores)
    np.subtract(scores, scores.max(axis=1, keepdims=True), out=out)
    return np.exp(out, out=out)


def sample_item_actions(
    weights: np.ndarray,
    consent: np.ndarray,
    channel: np.ndarray,
    request_allowed: np.ndarray,
    exploration: Exploration,
    uniforms: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw each customer's action from the serving probabilities (module docstring).

    Args:
        weights: ``(n, A)`` the policy's weights (:func:`policy_weights`).
        consent: ``(n, n_channels)`` bool consent of each customer.
        channel: ``(A,)`` channel index of each action (``n_channels``: no channel).
        request_allowed: ``(A,)`` bool, what the request allows before consent; the do-nothing
            action must be allowed, so every customer has an allowed action.
        exploration: The exploration around the policy.
        uniforms: ``(n,)`` uniform numbers in [0, 1), one per customer.

    Returns:
        ``(actions (n,), propensities (n,))``.
    """
    n = weights.shape[0]
    actions = np.empty(n, dtype=np.int64)
    propensities = np.empty(n)
    consent = np.ascontiguousarray(consent, dtype=np.bool_)
    channel = np.ascontiguousarray(channel, dtype=np.int64)
    request_allowed = np.ascontiguousarray(request_allowed, dtype=np.bool_)
    _sample_kernel(
        np.ascontiguousarray(weights),
        consent,
        channel,
        request_allowed,
        EXPLORATION_CODES[exploration.kind],
        float(exploration.epsilon),
        float(exploration.temperature),
        MIN_PROBABILITY,
        np.ascontiguousarray(uniforms, dtype=np.float64),
        actions,
        propensities,
    )
    return actions, propensities


def serving_probabilities(
    weights: np.ndarray,
    consent: np.ndarray,
    channel: np.ndarray,
    request_allowed: np.ndarray,
    exploration: Exploration,
) -> np.ndarray:
    """``(n, A)`` serving probabilities :math:`q` of :func:`sample_item_actions`, in numpy.

    The policy's weights renormalised over the allowed actions (uniform if they have none),
    explored by :meth:`Exploration.apply`.
    """
    allowed = consent_masks(consent, channel) & request_allowed
    weights = np.where(allowed, weights, 0.0).astype(np.float64)
    totals = weights.sum(axis=1, keepdims=True)
    empty = totals[:, 0] <= 0.0
    weights[empty] = allowed[empty]
    totals[empty] = allowed[empty].sum(axis=1, keepdims=True)
    return exploration.apply(weights / totals, allowed)
