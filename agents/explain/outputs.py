"""What is explained, and how: one class per kind of explained output.

* :class:`ActionProbability`: the probability of the chosen action after the mask, for any
  policy, by the model-agnostic exact engine (:class:`~.shapley.ExactShapley`);
* :class:`NetworkActionProbability`: the same value for an SB3 actor-critic (PPO, A2C,
  MaskablePPO), by the network engine (:class:`~.network_shapley.NetworkShapley`);
* :class:`NetworkQValue`: a DQN's Q-value of the chosen action, by the network engine;
* :class:`EstimatedReward`: a linear bandit's estimated reward ``c(x)^T θ̂_a``, in closed form.

:func:`explained_output` picks the class for a policy, once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from rec_env.agents.explain.heads import MaskedSoftmaxHead, SingleOutputHead
from rec_env.agents.explain.masking import ActionMasking
from rec_env.agents.explain.network_shapley import NetworkShapley
from rec_env.agents.explain.shapley import ExactShapley, ShapleyValues

if TYPE_CHECKING:
    from rec_env.agents.base import Policy
    from rec_env.agents.sb3.network import NumpyNetwork

__all__ = [
    "ActionProbability",
    "EstimatedReward",
    "ExplainedOutput",
    "NetworkActionProbability",
    "NetworkQValue",
    "OutputKind",
    "explained_output",
]

OutputKind = Literal["probability", "q_value", "estimated_reward"]


class ExplainedOutput(ABC):
    """One kind of explained value of a policy, and its Shapley engine.

    Args:
        policy: The explained policy.
        masking: The actions allowed per context.
        background: ``(n_background, d)`` float32 background contexts.
    """

    kind: ClassVar[OutputKind]
    symbol: ClassVar[str]
    """Written before the action name in labels, e.g. ``P`` in ``P(no_action)``."""
    masked_actions_allowed: ClassVar[bool] = False
    """Whether an action that is masked for the customer may be explained."""

    def __init__(self, policy: Policy, masking: ActionMasking, background: np.ndarray) -> None:
        self.policy = policy
        self.masking = masking
        self.background = background

    @abstractmethod
    def direct(self, obs: np.ndarray, actions: np.ndarray, excluded: np.ndarray) -> np.ndarray:
        """``(n,)`` explained values of ``actions`` computed directly (no Shapley values)."""

    @abstractmethod
    def default_actions(self, obs: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """``(n,)`` the policy's choice: the allowed action with the highest explained value."""

    @abstractmethod
    def shap_values(self, x: np.ndarray, action: int, excluded: np.ndarray) -> ShapleyValues:
        """Shapley values of the explained value of ``action`` for one context ``x``."""


class ActionProbability(ExplainedOutput):
    """``P(action)`` from ``policy.action_probabilities`` under each coalition's own mask."""

    kind: ClassVar[OutputKind] = "probability"
    symbol: ClassVar[str] = "P"

    def probabilities(self, obs: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """``(n, n_actions)`` action probabilities under the masks ``allowed``."""
        return np.asarray(self.policy.action_probabilities(obs, allowed), dtype=np.float64)

    def direct(self, obs: np.ndarray, actions: np.ndarray, excluded: np.ndarray) -> np.ndarray:
        """The probabilities of ``actions``."""
        allowed = self.masking.allowed(obs, excluded)
        return self.probabilities(obs, allowed)[np.arange(obs.shape[0]), actions]

    def default_actions(self, obs: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """The most likely allowed actions."""
        return np.argmax(self.probabilities(obs, allowed), axis=1)

    def shap_values(self, x: np.ndarray, action: int, excluded: np.ndarray) -> ShapleyValues:
        """Exact Shapley values by the model-agnostic engine."""

        def value(z: np.ndarray) -> np.ndarray:
            return self.probabilities(z, self.masking.allowed(z, excluded))[:, action]

        return ExactShapley(value, self.background, max_players=x.size).shap_values(x)


class NetworkActionProbability(ActionProbability):
    """``P(action)`` of an SB3 actor-critic, from its numpy network (the service's copy too)."""

    def __init__(
        self, policy: Policy, masking: ActionMasking, background: np.ndarray, network: NumpyNetwork
    ) -> None:
        super().__init__(policy, masking, background)
        self.network = network
        self.engine = NetworkShapley.for_network(network, background)

    def probabilities(self, obs: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """The numpy network's masked softmax (equal to the policy's to float32 rounding)."""
        return self.network.probabilities(obs, allowed)

    def shap_values(self, x: np.ndarray, action: int, excluded: np.ndarray) -> ShapleyValues:
        """Exact Shapley values by the network engine, each coalition with its own mask."""
        return self.engine.shap_values(x, MaskedSoftmaxHead(action, self.masking, excluded))


class NetworkQValue(ExplainedOutput):
    """A DQN's ``Q(s, action)``, from its numpy Q-network."""

    kind: ClassVar[OutputKind] = "q_value"
    symbol: ClassVar[str] = "Q"
    masked_actions_allowed: ClassVar[bool] = True

    def __init__(
        self, policy: Policy, masking: ActionMasking, background: np.ndarray, network: NumpyNetwork
    ) -> None:
        super().__init__(policy, masking, background)
        self.network = network
        self.engine = NetworkShapley.for_network(network, background)

    def direct(self, obs: np.ndarray, actions: np.ndarray, excluded: np.ndarray) -> np.ndarray:
        """The Q-values of ``actions``."""
        q_values = self.network.outputs(obs).astype(np.float64)
        return q_values[np.arange(obs.shape[0]), actions]

    def default_actions(self, obs: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """The allowed actions with the highest Q-value."""
        return np.argmax(np.where(allowed, self.network.outputs(obs), -np.inf), axis=1)

    def shap_values(self, x: np.ndarray, action: int, excluded: np.ndarray) -> ShapleyValues:
        """Exact Shapley values of one output of the Q-network."""
        return self.engine.shap_values(x, SingleOutputHead(action))


class EstimatedReward(ExplainedOutput):
    """A linear bandit's estimate ``c(x)^T θ̂_a``, on its contexts ``c(x) = (scaled(x), 1)``.

    The contexts scale each feature on its own (an affine map, :func:`linear_contexts`), so the
    model is additive in the features and the interventional Shapley value has a closed form,
    on any feature space: ``φ_i = θ̂_{a,i} (c(x)_i - mean_b c(b)_i)``.
    """

    kind: ClassVar[OutputKind] = "estimated_reward"
    symbol: ClassVar[str] = "E[reward]"
    masked_actions_allowed: ClassVar[bool] = True

    def __init__(self, policy: Policy, masking: ActionMasking, background: np.ndarray) -> None:
        super().__init__(policy, masking, background)
        self.theta = np.asarray(policy.theta_, dtype=np.float64)  # type: ignore[attr-defined]
        self._background_contexts = self.contexts(background)

    def contexts(self, obs: np.ndarray) -> np.ndarray:
        """``(n, d + 1)`` the bandit's own contexts."""
        from rec_env.agents.bandits.linear import linear_contexts

        return linear_contexts(
            np.atleast_2d(np.asarray(obs, dtype=np.float64)), self.policy.features
        )

    def direct(self, obs: np.ndarray, actions: np.ndarray, excluded: np.ndarray) -> np.ndarray:
        """The estimated rewards of ``actions``."""
        return np.einsum("nf,nf->n", self.contexts(obs), self.theta[actions])

    def default_actions(self, obs: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """The allowed actions with the highest estimated reward."""
        return np.argmax(np.where(allowed, self.contexts(obs) @ self.theta.T, -np.inf), axis=1)

    def shap_values(self, x: np.ndarray, action: int, excluded: np.ndarray) -> ShapleyValues:
        """The closed form (class docstring)."""
        theta = self.theta[action]
        context = self.contexts(x)[0]
        mean = self._background_contexts.mean(axis=0)
        phi = theta[:-1] * (context[:-1] - mean[:-1])
        base = float(mean @ theta)
        return ShapleyValues(phi, base, base + float(phi.sum()), coalitions=0)


def explained_output(
    policy: Policy, masking: ActionMasking, background: np.ndarray
) -> ExplainedOutput:
    """The explained output of ``policy`` (module docstring).

    Args:
        policy: The policy.
        masking: The actions allowed per context.
        background: ``(n_background, d)`` background contexts.

    Raises:
        ValueError: For a Q-value policy whose Q-network is not a plain MLP, or a network
            whose input width is not ``d``.
    """
    network = _numpy_network(policy)
    if network is not None and network.n_features != background.shape[1]:
        raise ValueError(
            f"the policy's network takes {network.n_features} features, the contexts have "
            f"{background.shape[1]}"
        )
    if callable(getattr(policy, "q_values", None)):
        if network is None:
            raise ValueError("cannot explain a Q-value policy whose Q-network is not a plain MLP")
        return NetworkQValue(policy, masking, background, network)
    if hasattr(policy, "theta_"):
        return EstimatedReward(policy, masking, background)
    if network is not None:
        return NetworkActionProbability(policy, masking, background, network)
    return ActionProbability(policy, masking, background)


def _numpy_network(policy: Policy) -> NumpyNetwork | None:
    """:func:`~rec_env.agents.sb3.network.numpy_network` (which imports torch only for SB3)."""
    from rec_env.agents.sb3.network import numpy_network

    return numpy_network(policy)
