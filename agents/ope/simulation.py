r"""Logged bandit data from the simulator, with the on-policy truth to check estimators against.

The simulator gives what real logs never do: the true value of any policy. Here each customer
of a fresh cohort gets one decision (a contextual bandit: one step of
:meth:`~rec_env.dynamics.CustomerModel.step`), drawn from a known exploring logging policy

.. math::

    \mu(a \mid x) = (1 - \varepsilon)\, \pi_0(a \mid x) + \varepsilon / |M(x)|
    \quad \text{for allowed } a \in M(x),

an ε-greedy mixture of a base policy :math:`\pi_0` with the uniform distribution over the allowed
actions. The true value of a target policy, :math:`V(\pi) = \mathbb E_x \sum_a \pi(a \mid x)\,
q(x, a)`, is computed from the model's closed-form expected rewards
(:meth:`~rec_env.dynamics.CustomerModel.expected_rewards`, the same formulas ``step`` samples
from) over a large independent cohort.
"""

from __future__ import annotations

import numpy as np

from rec_env.agents.base import Policy, uniform_over_allowed
from rec_env.datasets.logged import LoggedBanditData
from rec_env.dynamics import CustomerModel
from rec_env.features import FEATURE_NAMES

__all__ = ["epsilon_greedy_probabilities", "simulate_logged_data", "true_policy_value"]


def epsilon_greedy_probabilities(
    base: Policy, obs: np.ndarray, masks: np.ndarray, epsilon: float
) -> np.ndarray:
    r"""``(n, A)`` :math:`(1 - \varepsilon)\,\pi_0 + \varepsilon \cdot` uniform over allowed.

    Raises:
        ValueError: If ``epsilon`` is not in [0, 1].
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    uniform = uniform_over_allowed(obs.shape[0], base.n_actions, masks)
    return (1.0 - epsilon) * base.action_probabilities(obs, masks) + epsilon * uniform


def _sample(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row, drawn with one uniform number per row."""
    cumulative = probabilities.cumsum(axis=1)
    draws = rng.random(probabilities.shape[0]) * cumulative[:, -1]
    actions = (cumulative <= draws[:, None]).sum(axis=1)
    return np.minimum(actions, probabilities.shape[1] - 1)


def simulate_logged_data(
    model: CustomerModel,
    logging_policy: Policy,
    n_customers: int,
    seed: int | None,
    epsilon: float = 1.0,
) -> tuple[LoggedBanditData, np.ndarray]:
    r"""Log one exploring decision for each of ``n_customers`` new customers.

    Customers, logged actions and rewards all come from one generator seeded by ``seed``.

    Args:
        model: The customer model (population, catalog, reward mode).
        logging_policy: The base policy :math:`\pi_0` of the logging mixture.
        n_customers: Number of logged decisions.
        seed: Seed of every draw.
        epsilon: Weight of uniform exploration over the allowed actions (1: uniform logging).

    Returns:
        The logged data (contexts are the 16 observed features, with the consent masks) and
        the ``(n, A)`` true expected reward of every action for every logged customer.

    Raises:
        ValueError: If ``n_customers`` is below 1 or ``epsilon`` outside [0, 1].
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}")
    rng = np.random.default_rng(seed)
    batch = model.new_batch(n_customers)
    model.draw_customers(batch, np.arange(n_customers), rng)
    obs = model.observe(batch).astype(np.float64)
    masks = model.action_masks(batch)
    expected = model.expected_rewards(batch)
    probabilities = epsilon_greedy_probabilities(logging_policy, obs, masks, epsilon)
    actions = _sample(probabilities, rng)
    outcome = model.step(batch, actions, rng)
    data = LoggedBanditData(
        contexts=obs,
        actions=actions,
        propensities=probabilities[np.arange(n_customers), actions],
        rewards=outcome.reward,
        n_actions=model.actions.n_actions,
        action_masks=masks,
        action_names=model.actions.names,
        feature_names=FEATURE_NAMES,
    )
    return data, expected


def true_policy_value(
    model: CustomerModel, policy: Policy, n_customers: int = 200_000, seed: int | None = 0
) -> tuple[float, float]:
    r"""The one-step value of ``policy`` on new customers, from the closed-form rewards.

    Averages :math:`\sum_a \pi(a \mid x)\, q(x, a)` over ``n_customers`` customers drawn with
    ``seed``: no reward noise, only the sampling of customers.

    Returns:
        The value and the standard error of that mean.
    """
    batch = model.new_batch(n_customers)
    model.draw_customers(batch, np.arange(n_customers), np.random.default_rng(seed))
    obs = model.observe(batch).astype(np.float64)
    probabilities = policy.action_probabilities(obs, model.action_masks(batch))
    values = np.sum(probabilities * model.expected_rewards(batch), axis=1)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(n_customers))
