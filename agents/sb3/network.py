r"""The one numpy copy of an SB3 policy network, and the one definition of its input scaling.

SB3 networks here are small MLPs behind :class:`~rec_env.agents.sb3.policy.ScaledFeatures`.
Two readers need them without torch's per-call dispatch (about half a millisecond, several times
the arithmetic of a 16-64-64-16 MLP): the explainer, which pushes millions of coalitions through
the network, and the service, which decides one customer at a time. Both use
:func:`numpy_network`; nothing else re-implements the forward pass.

Input scaling. Every feature is mapped to [0, 1] by

.. math::

    s(x) = \min\bigl(1,\ a \cdot x^+ + b \cdot \log(1 + x^+)\bigr), \qquad x^+ = \max(x, 0),

with ``a = 1 / high, b = 0`` for linearly scaled features and ``a = 0, b = 1 / log1p(high)``
for logarithmically scaled ones (:class:`InputScaling`). :func:`scale_observations` is written
once for numpy arrays and torch tensors alike; the torch feature extractor and the numpy copy
both call it. (Importing this module imports torch, as the package does.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from rec_env.features import FEATURES

if TYPE_CHECKING:
    from rec_env.agents.base import Policy

__all__ = [
    "ACTIVATIONS",
    "DenseLayer",
    "InputScaling",
    "NumpyNetwork",
    "Scaling",
    "numpy_network",
    "scale_observations",
]

Scaling = Literal["linear", "log"]
"""How :class:`InputScaling` maps a non-binary feature with an upper bound above 1."""

ArrayT = TypeVar("ArrayT")


def scale_observations(
    obs: ArrayT, linear: ArrayT, logarithmic: ArrayT, log1p: Callable[[Any], Any] = np.log1p
) -> ArrayT:
    """``min(1, linear * x + logarithmic * log1p(x))`` with ``x = max(obs, 0)``, per feature.

    The one implementation of the input scaling, for numpy arrays (the default ``log1p``) and
    torch tensors (pass ``torch.log1p``); both support ``clip`` and the arithmetic operators.

    Args:
        obs: ``(n, d)`` raw features.
        linear: ``(d,)`` factors ``a`` (:attr:`InputScaling.linear`).
        logarithmic: ``(d,)`` factors ``b`` (:attr:`InputScaling.logarithmic`).
        log1p: ``log(1 + x)`` of the array library.
    """
    positive = obs.clip(min=0.0)  # type: ignore[attr-defined]
    return (positive * linear + log1p(positive) * logarithmic).clip(max=1.0)  # type: ignore[operator]


@dataclass(frozen=True)
class InputScaling:
    """The per-feature factors of the input scaling (module docstring), float32.

    Attributes:
        high: ``(d,)`` upper bounds.
        log_mask: ``(d,)`` True for the logarithmically scaled features.
        linear: ``(d,)`` ``1 / high`` where linear, else 0.
        logarithmic: ``(d,)`` ``1 / log1p(high)`` where logarithmic, else 0.
    """

    high: np.ndarray
    log_mask: np.ndarray
    linear: np.ndarray
    logarithmic: np.ndarray

    @classmethod
    def from_mask(cls, high: np.ndarray, log_mask: np.ndarray) -> InputScaling:
        """The factors for upper bounds ``high`` and the log-scaled columns ``log_mask``."""
        high = np.asarray(high, dtype=np.float32).reshape(-1)
        log_mask = np.asarray(log_mask, dtype=bool).reshape(-1)
        with np.errstate(divide="ignore"):
            linear = np.where(log_mask, 0.0, 1.0 / high).astype(np.float32)
            logarithmic = np.where(log_mask, 1.0 / np.log1p(high), 0.0).astype(np.float32)
        return cls(high, log_mask, linear, logarithmic)

    @classmethod
    def from_bounds(cls, high: np.ndarray, scaling: Scaling = "log") -> InputScaling:
        """The scaling of features with upper bounds ``high``.

        ``"log"`` scales the non-binary features whose upper bound exceeds 1 (days, counts, USD)
        logarithmically. Which features are binary is known for the env's own features
        (:data:`~rec_env.features.FEATURES`, when ``high`` has their count); for any other
        feature space no feature is taken as binary.

        Raises:
            ValueError: If ``scaling`` is not ``"linear"`` or ``"log"``.
        """
        if scaling not in ("linear", "log"):
            raise ValueError(f"scaling must be 'linear' or 'log', got {scaling!r}")
        high = np.asarray(high, dtype=np.float32).reshape(-1)
        binary = np.array([f.binary for f in FEATURES], dtype=bool)
        if binary.size != high.size:
            binary = np.zeros(high.size, dtype=bool)
        log_mask = (~binary) & (high > 1.0) if scaling == "log" else np.zeros(high.size, bool)
        return cls.from_mask(high, log_mask)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """``(n, d)`` float32 scaled features."""
        obs = np.asarray(obs, dtype=np.float32)
        return scale_observations(obs, self.linear, self.logarithmic)


def _relu(values: np.ndarray) -> np.ndarray:
    return np.maximum(values, 0.0, out=values)


def _tanh(values: np.ndarray) -> np.ndarray:
    return np.tanh(values, out=values)


def _elu(values: np.ndarray) -> np.ndarray:
    negative = values < 0.0
    values[negative] = np.expm1(values[negative])
    return values


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": _relu,
    "tanh": _tanh,
    "elu": _elu,
}
"""In-place numpy activations, by the name of SB3's ``activation_fn``."""


@dataclass(frozen=True)
class DenseLayer:
    """``activation(inputs @ weight + bias)``.

    Attributes:
        weight: ``(n_in, n_out)`` float32, C-contiguous.
        bias: ``(n_out,)`` float32.
        activation: Key of :data:`ACTIVATIONS`, or None for the output layer.
    """

    weight: np.ndarray
    bias: np.ndarray
    activation: str | None = None

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """``(n, n_out)`` outputs."""
        return self.activate(inputs @ self.weight + self.bias)

    def activate(self, pre_activations: np.ndarray) -> np.ndarray:
        """Apply the activation to ``pre_activations`` in place."""
        if self.activation is None:
            return pre_activations
        return ACTIVATIONS[self.activation](pre_activations)


@dataclass(frozen=True)
class NumpyNetwork:
    """An SB3 MLP in numpy: :class:`InputScaling`, hidden layers, a linear output layer.

    The output is the actor's logits (PPO, A2C, MaskablePPO) or the Q-values (DQN).

    Attributes:
        scaling: The feature extractor's input scaling.
        layers: Dense layers; every one but the last has an activation.
    """

    scaling: InputScaling
    layers: tuple[DenseLayer, ...]

    @property
    def n_features(self) -> int:
        """Width of the raw input."""
        return int(self.layers[0].weight.shape[0])

    def outputs(self, obs: np.ndarray) -> np.ndarray:
        """``(n, n_outputs)`` float32 logits or Q-values of raw observations ``(n, d)``."""
        values = self.scaling(np.atleast_2d(obs))
        for layer in self.layers:
            values = layer(values)
        return values

    def probabilities(self, obs: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """``(n, n_actions)`` float64 softmax of the logits over the allowed actions.

        The same renormalised softmax as
        :meth:`~rec_env.agents.sb3.policy.SB3Policy.action_probabilities` (MaskablePPO's masked
        logits give the same). A row without an allowed action is not valid input.
        """
        logits = self.outputs(obs).astype(np.float64)
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        if masks is not None:
            weights *= masks
        return weights / weights.sum(axis=1, keepdims=True)


def numpy_network(policy: Policy) -> NumpyNetwork | None:
    """The policy's network copied to numpy, or ``None`` if it is not a plain scaled MLP.

    PPO, A2C and MaskablePPO give their actor (``pi_features_extractor``, ``policy_net``,
    ``action_net``: the output is the logits); DQN its Q-network. Any other policy, or a
    network with another feature extractor or layer type, gives ``None``.
    """
    from torch import nn

    from rec_env.agents.sb3.policy import DQNPolicy, SB3Policy, ScaledFeatures

    if not isinstance(policy, SB3Policy):
        return None
    if isinstance(policy, DQNPolicy):
        q_net = policy.model.q_net
        extractor, modules = q_net.features_extractor, list(q_net.q_net)
    else:
        sb3 = policy.model.policy
        extractor = sb3.pi_features_extractor
        modules = [*sb3.mlp_extractor.policy_net, sb3.action_net]
    if not isinstance(extractor, ScaledFeatures):
        return None
    names = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.ELU: "elu"}
    layers: list[DenseLayer] = []
    for module in modules:
        if isinstance(module, nn.Linear):
            weight = module.weight.detach().cpu().numpy().T.astype(np.float32)
            bias = module.bias.detach().cpu().numpy().astype(np.float32)
            layers.append(DenseLayer(np.ascontiguousarray(weight), bias))
        elif type(module) in names and layers and layers[-1].activation is None:
            last = layers[-1]
            layers[-1] = DenseLayer(last.weight, last.bias, names[type(module)])
        else:
            return None
    if not layers or layers[-1].activation is not None:
        return None
    return NumpyNetwork(extractor.input_scaling(), tuple(layers))
