r"""The probabilities of an SB3 actor-critic policy computed in numpy, for fast serving.

A one-customer forward pass through torch costs about half a millisecond of operator dispatch,
several times the arithmetic of a 16-64-64-16 MLP. The service decides with the numpy copy of
the network that the explainer uses too (:func:`~rec_env.agents.sb3.network.numpy_network`):

.. math::

    p(a \mid s) = \frac{m_a \, \mathrm{softmax}(f(s))_a}{\sum_b m_b \, \mathrm{softmax}(f(s))_b}

with ``f`` the policy network and ``m`` the action mask
(:meth:`~rec_env.agents.sb3.network.NumpyNetwork.probabilities`). :func:`numpy_probabilities`
checks the copy against the policy on a cohort of customers and returns None, so that the
service calls the policy itself, if the network is not a plain MLP or the two disagree by more
than :data:`TOLERANCE`. A run loaded without torch
(:class:`~rec_env.agents.sb3.network_policy.NetworkPolicy`) *is* that copy, checked against
the SB3 policy when the run was written: it decides with it directly, with the same
probabilities, bit for bit, as the SB3 policy's copy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rec_env.agents.base import Policy
from rec_env.agents.sb3.network_policy import NETWORK_ALGORITHMS, NetworkPolicy
from rec_env.agents.sb3.network_policy import TOLERANCE as TOLERANCE
from rec_env.catalog import ActionTable

__all__ = [
    "CHECK_CUSTOMERS",
    "NUMPY_ALGORITHMS",
    "TOLERANCE",
    "ProbabilityFunction",
    "numpy_probabilities",
    "serving_probabilities",
]

ProbabilityFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(obs (n, 16), masks (n, A)) -> probabilities (n, A)``."""

CHECK_CUSTOMERS = 256
"""Customers of the run's population on which the numpy copy must match the policy."""

NUMPY_ALGORITHMS = NETWORK_ALGORITHMS
"""Algorithms whose probabilities are a masked softmax of an MLP (the ones this applies to)."""


def numpy_probabilities(
    policy: Policy, actions: ActionTable, check_obs: np.ndarray
) -> ProbabilityFunction | None:
    """A numpy version of ``policy.action_probabilities``, or None if there is none.

    Args:
        policy: The served policy.
        actions: Its action table (for the consent masks of the check).
        check_obs: ``(n, 16)`` customers on which the copy must match the policy.
    """
    if policy.algorithm not in NUMPY_ALGORITHMS:
        return None
    from rec_env.agents.sb3.network import numpy_network

    network = numpy_network(policy)
    if network is None:
        return None
    masks = actions.consent_masks(check_obs)
    expected = policy.action_probabilities(check_obs, masks)
    if not np.allclose(network.probabilities(check_obs, masks), expected, rtol=0, atol=TOLERANCE):
        return None
    return network.probabilities


def serving_probabilities(
    policy: Policy, actions: ActionTable, population: str, catalog: str
) -> ProbabilityFunction:
    """The fastest exact probability function of ``policy``: the numpy copy or the policy's own.

    Args:
        policy: The served policy.
        actions: Its action table.
        population: The run's population, whose customers the copy is checked on.
        catalog: The run's action catalog.
    """
    if isinstance(policy, NetworkPolicy):  # the copy itself, checked when it was written
        return policy.network.probabilities
    if policy.algorithm not in NUMPY_ALGORITHMS:
        return policy.action_probabilities
    from rec_env.agents.explain import population_background

    cohort = population_background(CHECK_CUSTOMERS, population, catalog, seed=0)
    fast = numpy_probabilities(policy, actions, cohort.astype(np.float64))
    return fast if fast is not None else policy.action_probabilities
