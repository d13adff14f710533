"""A compiled forward pass of a :class:`~rec_env.agents.sb3.network.NumpyNetwork`'s dense layers.

For a million customers the numpy forward pass is a few small matrix products per chunk, each
followed by a pass over memory for the bias and another for the activation; with 16 inputs and
64 units BLAS runs far below its peak. This kernel pushes four customers at a time through each
layer (each weight read once for the four), in parallel over blocks of customers, with every
intermediate in a few kilobytes of scratch that stays in cache: about three times as fast as
numpy on two cores. The products are summed in input order, as numpy's might not be, so the
outputs agree with :meth:`NumpyNetwork.outputs
<rec_env.agents.sb3.network.NumpyNetwork.outputs>` to float32 rounding (tested).

Only SB3's default shape is compiled, two ReLU or tanh hidden layers and a linear output
(:func:`supported`); :func:`compile_network` gives None for any other network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numba as nb
import numpy as np

if TYPE_CHECKING:
    from rec_env.agents.sb3.network import NumpyNetwork

__all__ = ["CompiledLayers", "compile_network", "forward", "supported"]

_CODES = {None: 0, "relu": 1, "tanh": 2}
_BLOCK = 256


class CompiledLayers:
    """Three dense layers (two hidden, SB3's default shape) ready for :func:`forward`.

    Args:
        weights: Per layer ``(n_in, n_out)`` float32.
        biases: Per layer ``(n_out,)`` float32.
        activations: Per layer ``"relu"``, ``"tanh"`` or None (the last one).

    Raises:
        ValueError: If the layers are not :func:`supported` or do not chain.
    """

    def __init__(
        self,
        weights: Sequence[np.ndarray],
        biases: Sequence[np.ndarray],
        activations: Sequence[str | None],
    ) -> None:
        if not supported(activations):
            raise ValueError(
                f"only two ReLU or tanh hidden layers are compiled, not {list(activations)}"
            )
        width = int(weights[0].shape[0])
        for weight, bias in zip(weights, biases, strict=True):
            if weight.shape[0] != width or bias.shape != (weight.shape[1],):
                raise ValueError("the layers do not chain")
            width = int(weight.shape[1])
        self.weights = tuple(np.ascontiguousarray(w, dtype=np.float32) for w in weights)
        self.biases = tuple(np.ascontiguousarray(b, dtype=np.float32) for b in biases)
        self.codes = np.array([_CODES[a] for a in activations], dtype=np.int64)

    @property
    def n_inputs(self) -> int:
        """Width of the scaled input."""
        return int(self.weights[0].shape[0])

    @property
    def n_outputs(self) -> int:
        """Width of the last layer."""
        return int(self.weights[-1].shape[1])

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """``(n, n_outputs)`` float32 outputs of scaled ``(n, n_in)`` inputs."""
        return forward(self, inputs)


def compile_network(network: NumpyNetwork) -> CompiledLayers | None:
    """The compiled layers of ``network``, or None if its shape is not compiled."""
    activations = [layer.activation for layer in network.layers]
    if not supported(activations):
        return None
    return CompiledLayers(
        [layer.weight for layer in network.layers],
        [layer.bias for layer in network.layers],
        activations,
    )


def supported(activations: Sequence[str | None]) -> bool:
    """Whether layers with these activations compile: two ReLU or tanh layers, a linear one."""
    return (
        len(activations) == 3
        and activations[-1] is None
        and all(a in ("relu", "tanh") for a in activations[:-1])
    )


def forward(layers: CompiledLayers, inputs: np.ndarray) -> np.ndarray:
    """``(n, n_outputs)`` float32 outputs of ``layers`` on scaled ``(n, n_in)`` inputs."""
    x = np.ascontiguousarray(inputs, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != layers.n_inputs:
        raise ValueError(f"inputs must have shape (n, {layers.n_inputs}), got {x.shape}")
    out = np.empty((x.shape[0], layers.n_outputs), dtype=np.float32)
    (w0, w1, w2), (b0, b1, b2) = layers.weights, layers.biases
    _forward3(x, w0, b0, w1, b1, w2, b2, layers.codes, out)
    return out


_TILE = 4
"""Customers pushed through a layer together: each weight read serves four of them."""


@nb.njit(inline="always")
def _dense(  # pragma: no cover - compiled
    inputs: np.ndarray, weight: np.ndarray, bias: np.ndarray, code: int, out: np.ndarray
) -> None:
    """``out[r] = activation(bias + sum_k inputs[r, k] * weight[k])`` for :data:`_TILE` rows.

    Each output is summed in input order, ``k = 0, 1, ...``, whatever the tile: a customer's
    logits do not depend on their neighbours.
    """
    n_in, n_out = weight.shape
    o0, o1, o2, o3 = out[0], out[1], out[2], out[3]
    i0, i1, i2, i3 = inputs[0], inputs[1], inputs[2], inputs[3]
    for j in range(n_out):
        o0[j] = bias[j]
        o1[j] = bias[j]
        o2[j] = bias[j]
        o3[j] = bias[j]
    for k in range(n_in):
        row = weight[k]
        a0, a1, a2, a3 = i0[k], i1[k], i2[k], i3[k]
        for j in range(n_out):
            w = row[j]
            o0[j] += a0 * w
            o1[j] += a1 * w
            o2[j] += a2 * w
            o3[j] += a3 * w
    for r in range(_TILE):
        o = out[r]
        if code == 1:
            for j in range(n_out):
                o[j] = max(o[j], np.float32(0.0))
        elif code == 2:
            for j in range(n_out):
                o[j] = np.tanh(o[j])


@nb.njit(inline="always")
def _forward_block(  # pragma: no cover - compiled
    x: np.ndarray,
    start: int,
    stop: int,
    w0: np.ndarray,
    b0: np.ndarray,
    w1: np.ndarray,
    b1: np.ndarray,
    w2: np.ndarray,
    b2: np.ndarray,
    codes: np.ndarray,
    out: np.ndarray,
) -> None:
    """The outputs ``out[start:stop]`` of the scaled rows ``x[start:stop]``."""
    tile = np.zeros((_TILE, w0.shape[0]), dtype=np.float32)
    h0 = np.empty((_TILE, w0.shape[1]), dtype=np.float32)
    h1 = np.empty((_TILE, w1.shape[1]), dtype=np.float32)
    h2 = np.empty((_TILE, w2.shape[1]), dtype=np.float32)
    for first in range(start, stop, _TILE):
        rows = min(_TILE, stop - first)
        for r in range(rows):
            tile[r, :] = x[first + r]
        _dense(tile, w0, b0, codes[0], h0)
        _dense(h0, w1, b1, codes[1], h1)
        _dense(h1, w2, b2, codes[2], h2)
        for r in range(rows):
            out[first + r, :] = h2[r]


@nb.njit(parallel=True, cache=True, fastmath=True)
def _forward3(  # pragma: no cover - compiled
    x: np.ndarray,
    w0: np.ndarray,
    b0: np.ndarray,
    w1: np.ndarray,
    b1: np.ndarray,
    w2: np.ndarray,
    b2: np.ndarray,
    codes: np.ndarray,
    out: np.ndarray,
) -> None:
    n = x.shape[0]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for block in nb.prange(n_blocks):
        start = block * _BLOCK
        _forward_block(x, start, min(n, start + _BLOCK), w0, b0, w1, b1, w2, b2, codes, out)
