r"""The one numpy copy of an SB3 policy network.

SB3 networks here are small MLPs behind :class:`~rec_env.agents.sb3.policy.ScaledFeatures`.
Two readers need them without torch's per-call dispatch (about half a millisecond, several times
the arithmetic of a 16-64-64-16 MLP): the explainer, which pushes millions of coalitions through
the network, and the service, which decides one customer at a time. Both use
:func:`numpy_network`; nothing else re-implements the forward pass.

A network also travels on its own, as plain arrays (:meth:`NumpyNetwork.to_arrays`, saved as a
run's ``network.npz``), so that a serving process decides without torch
(:mod:`~rec_env.agents.sb3.network_policy`).

The input scaling is :mod:`rec_env.scaling`'s, shared with the env wrappers. (Importing this
module imports numpy only, and so does :func:`numpy_network` unless the SB3 policies are
loaded.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rec_env.scaling import InputScaling

if TYPE_CHECKING:
    from rec_env.agents.base import Policy

__all__ = [
    "ACTIVATIONS",
    "NETWORK_FORMAT",
    "DenseLayer",
    "NumpyNetwork",
    "numpy_network",
    "output_difference",
]


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

NETWORK_FORMAT = 1
"""Version of the array layout of :meth:`NumpyNetwork.to_arrays`."""


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

    The output is the actor's logits (PPO, A2C, MaskablePPO), its action means (a ``Box``
    actor, e.g. the slate world's) or the Q-values (DQN).

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

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The network as named plain arrays (no objects: ``np.load`` needs no pickle).

        ``format``, ``scaling.high``, ``scaling.log_mask``, then per layer ``i``
        ``layers.<i>.weight``, ``layers.<i>.bias`` and ``layers.<i>.activation`` (a string
        array, empty for none). :meth:`from_arrays` reads them back bit for bit.
        """
        arrays = {
            "format": np.array(NETWORK_FORMAT),
            "scaling.high": self.scaling.high,
            "scaling.log_mask": self.scaling.log_mask,
        }
        for i, layer in enumerate(self.layers):
            arrays[f"layers.{i}.weight"] = layer.weight
            arrays[f"layers.{i}.bias"] = layer.bias
            arrays[f"layers.{i}.activation"] = np.array(layer.activation or "")
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> NumpyNetwork:
        """The network written by :meth:`to_arrays`.

        Raises:
            ValueError: If an array is missing or of the wrong kind, the layers do not chain, or
                an activation is unknown (the message names the array).
        """
        try:
            if int(arrays["format"]) != NETWORK_FORMAT:
                raise ValueError(f"format {int(arrays['format'])}, not {NETWORK_FORMAT}")
            scaling = InputScaling.from_mask(arrays["scaling.high"], arrays["scaling.log_mask"])
            n_layers = sum(1 for name in arrays if name.endswith(".weight"))
            layers = tuple(_layer(arrays, i) for i in range(n_layers))
        except KeyError as exc:
            raise ValueError(f"no array {exc.args[0]!r}") from None
        width = scaling.high.size
        for i, layer in enumerate(layers):
            if layer.weight.ndim != 2 or layer.weight.shape[0] != width:
                raise ValueError(f"layers.{i}.weight does not take {width} inputs")
            if layer.bias.shape != (layer.weight.shape[1],):
                raise ValueError(f"layers.{i}.bias does not match its weight")
            width = layer.weight.shape[1]
        if not layers or layers[-1].activation is not None:
            raise ValueError("the network must end with a linear layer")
        return cls(scaling, layers)


def _layer(arrays: Mapping[str, np.ndarray], i: int) -> DenseLayer:
    """Layer ``i`` of :meth:`NumpyNetwork.from_arrays`."""
    activation = str(arrays[f"layers.{i}.activation"]) or None
    if activation is not None and activation not in ACTIVATIONS:
        raise ValueError(f"layers.{i}.activation {activation!r} is not one of {list(ACTIVATIONS)}")
    weight = np.ascontiguousarray(arrays[f"layers.{i}.weight"], dtype=np.float32)
    bias = np.asarray(arrays[f"layers.{i}.bias"], dtype=np.float32)
    return DenseLayer(weight, bias, activation)


def output_difference(network: NumpyNetwork, first: int, second: int) -> NumpyNetwork:
    """``network`` with one output: output ``first`` minus output ``second``.

    The output layer is linear, so the difference is a linear layer too: for an actor, the
    log-odds ``log P(first) / P(second)`` (the softmax's normaliser cancels); for a Q-network,
    the advantage of ``first`` over ``second``.
    """
    *hidden, last = network.layers
    weight = last.weight[:, [first]] - last.weight[:, [second]]
    bias = last.bias[[first]] - last.bias[[second]]
    return NumpyNetwork(network.scaling, (*hidden, DenseLayer(np.ascontiguousarray(weight), bias)))


def numpy_network(policy: Policy) -> NumpyNetwork | None:
    """The policy's network copied to numpy, or ``None`` if it is not a plain scaled MLP.

    PPO, A2C and MaskablePPO give their actor (``pi_features_extractor``, ``policy_net``,
    ``action_net``: the output is the logits); DQN its Q-network. A policy loaded without torch
    (:class:`~rec_env.agents.sb3.network_policy.NetworkPolicy`) gives the network it holds. Any
    other policy, or a network with another feature extractor or layer type, gives ``None``.
    """
    network = getattr(policy, "network", None)
    if isinstance(network, NumpyNetwork):
        return network
    if "rec_env.agents.sb3.policy" not in sys.modules:
        return None  # no SB3 policy exists in this process: do not import torch to find none
    from torch import nn

    from rec_env.agents.sb3.heads import ProductHead
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
        if isinstance(module, (nn.Linear, ProductHead)):  # a ProductHead is a composed Linear
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
