r"""Exact interventional Shapley values of a small MLP, without building its inputs.

The engine of :class:`~rec_env.agents.explain.PolicyExplainer` for SB3 networks
(:class:`~rec_env.agents.sb3.network.NumpyNetwork`). For background row ``b`` and the ``k``
features ``p`` where the customer ``x`` differs from it (:mod:`~.shapley`):

1. **First layer by subset sums.** The input scaling is elementwise and the first layer is
   linear, so the first layer's pre-activations of coalition ``t`` are
   ``z(t) = z(b) + Σ_{j ∈ t} Δ_j`` with ``Δ_j = (s(x)_{p_j} - s(b)_{p_j}) W_{p_j}``:
   one addition per coalition and unit (:func:`~.shapley.subset_sums`), no matrix product.
2. **Tiles.** The ``2^k`` coalitions run in tiles of ``2^{11}`` (cache-sized): the subset sums
   of the low players, plus one subset sum of the high players per tile.
3. **Folding fixed ReLU units.** Within a tile, unit ``u`` lies between
   ``z_u + Σ min(Δ_{ju}, 0)`` and ``z_u + Σ max(Δ_{ju}, 0)``. If the upper bound is ≤ 0 the unit
   is dead in the whole tile and is dropped; if the lower bound is ≥ 0 it is always active,
   so ``relu`` is the identity and its share of the next layer,
   ``Σ_{u active} z_u(t) W'_u``, is itself a subset sum of the projected steps ``Δ_j W'``.
   Only the remaining *variable* units go through the matrix product of the second layer.
   This is exact: nothing is dropped that any coalition of the tile could switch on.
4. **Output.** The remaining layers run as float32 matrix products over the whole tile, and an
   :class:`OutputHead` turns the outputs into the explained value (a masked softmax with the
   consent mask of every coalition, or one Q-value).

The customer's own outputs are the tile rows of the grand coalition, so local accuracy holds up
to float32 rounding (tests check 1e-6 against the policy).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from rec_env.agents.explain.masking import ActionMasking
from rec_env.agents.explain.shapley import (
    ShapleyValues,
    differing_features,
    shapley_matrix,
    subset_sums,
)

if TYPE_CHECKING:  # the engine needs no torch: only its policies do
    from rec_env.agents.sb3.network import DenseLayer, NumpyNetwork

__all__ = ["TILE_BITS", "MaskedSoftmaxHead", "NetworkShapley", "OutputHead", "SingleOutputHead"]

TILE_BITS = 11
"""Coalitions per tile: ``2^11`` (about 0.5 MB per 64-wide float32 layer)."""

RowEvaluator = Callable[[np.ndarray, int], np.ndarray]
"""``(outputs (T, m), index of the tile's first coalition) -> (T,) explained values``."""


class OutputHead(ABC):
    """Turns the network's outputs of a tile of coalitions into the explained value."""

    @abstractmethod
    def columns(self, n_outputs: int) -> np.ndarray:
        """Output columns the head reads (the engine computes only these)."""

    @abstractmethod
    def for_row(self, x: np.ndarray, row: np.ndarray, players: np.ndarray) -> RowEvaluator:
        """The evaluator of the coalitions of one background row."""


class SingleOutputHead(OutputHead):
    """One output as it is: the Q-value of ``action``."""

    def __init__(self, action: int) -> None:
        self.action = action

    def columns(self, n_outputs: int) -> np.ndarray:
        """Only the explained action's column."""
        return np.array([self.action])

    def for_row(self, x: np.ndarray, row: np.ndarray, players: np.ndarray) -> RowEvaluator:
        """Read the single column."""
        return lambda outputs, _first: outputs[:, 0]


class MaskedSoftmaxHead(OutputHead):
    """The probability of ``action`` under the softmax of the logits over the allowed actions.

    The allowed actions of every coalition come from its own consent features
    (:meth:`ActionMasking.coalition_allowed`) and the caller's ``excluded`` actions.
    """

    def __init__(self, action: int, masking: ActionMasking, excluded: np.ndarray) -> None:
        self.action = action
        self.masking = masking
        self.excluded = excluded

    def columns(self, n_outputs: int) -> np.ndarray:
        """Every logit."""
        return np.arange(n_outputs)

    def for_row(self, x: np.ndarray, row: np.ndarray, players: np.ndarray) -> RowEvaluator:
        """Masked softmax with each coalition's mask."""
        allowed = self.masking.coalition_allowed(x, row, players, self.excluded)
        action = self.action

        def evaluate(logits: np.ndarray, first: int) -> np.ndarray:
            masks = allowed if allowed.shape[0] == 1 else allowed[first : first + logits.shape[0]]
            logits = np.where(masks, logits, -np.inf)
            weights = np.exp(logits - logits.max(axis=1, keepdims=True))
            return weights[:, action] / weights.sum(axis=1)

        return evaluate


class NetworkShapley:
    """Exact interventional Shapley values of one output of a :class:`NumpyNetwork`.

    Args:
        network: The network.
        background: ``(n_background, d)`` background contexts.
    """

    def __init__(self, network: NumpyNetwork, background: np.ndarray) -> None:
        self.network = network
        self.background = np.asarray(background, dtype=np.float32)
        first = network.layers[0]
        self._background_scaled = network.scaling(self.background)
        self._background_first = self._background_scaled @ first.weight + first.bias

    def shap_values(self, x: np.ndarray, head: OutputHead) -> ShapleyValues:
        """Shapley values of the head's value at ``x`` (``base_value + Σ values == output``)."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        layers = self._layers_for(head)
        x_scaled = self.network.scaling(x[None, :])[0]
        weight = layers[0].weight
        players = differing_features(x, self.background)
        phi = np.zeros(x.size)
        base = output = 0.0
        cost = _Cost()
        for b, p in enumerate(players):
            steps = (x_scaled[p] - self._background_scaled[b, p])[:, None] * weight[p]
            # Smallest steps first: they are the tiles' free players, so the bounds stay tight.
            order = np.argsort(np.abs(steps).sum(axis=1), kind="stable")
            p, steps = p[order], steps[order]
            evaluate = head.for_row(x, self.background[b], p)
            values = _row_values(layers, self._first_for(b, layers), steps, evaluate, cost)
            base += values[0]
            output += values[-1]
            if p.size:
                phi[p] += values @ shapley_matrix(p.size)
        n_rows = len(players)
        return ShapleyValues(
            phi / n_rows, base / n_rows, output / n_rows, cost.coalitions, cost.multiply_adds
        )

    def _layers_for(self, head: OutputHead) -> tuple[DenseLayer, ...]:
        """The network's layers, the output layer cut to the head's columns."""
        *hidden, last = self.network.layers
        columns = head.columns(last.weight.shape[1])
        if columns.size == last.weight.shape[1]:
            return self.network.layers
        cut = replace(
            last, weight=np.ascontiguousarray(last.weight[:, columns]), bias=last.bias[columns]
        )
        return (*hidden, cut)

    def _first_for(self, b: int, layers: tuple[DenseLayer, ...]) -> np.ndarray:
        """Background row ``b``'s first-layer pre-activations (cached, or cut to the head)."""
        if layers[0] is self.network.layers[0]:
            return self._background_first[b]
        return self._background_scaled[b] @ layers[0].weight + layers[0].bias


class _Cost:
    """Counters of the work done (deterministic, unlike wall-clock time)."""

    def __init__(self) -> None:
        self.coalitions = 0
        self.multiply_adds = 0


def _row_values(
    layers: tuple[DenseLayer, ...],
    start: np.ndarray,
    steps: np.ndarray,
    evaluate: RowEvaluator,
    cost: _Cost,
) -> np.ndarray:
    """The explained value of all ``2^k`` coalitions of one background row (module steps 1-4)."""
    k = steps.shape[0]
    low = min(k, TILE_BITS)
    low_steps = steps[:low]
    low_sums = subset_sums(np.zeros_like(start), low_steps)
    bounds = (np.minimum(low_steps, 0.0).sum(axis=0), np.maximum(low_steps, 0.0).sum(axis=0))
    tile_starts = subset_sums(start, steps[low:])
    size = 1 << low
    values = np.empty(1 << k)
    for h, tile_start in enumerate(tile_starts):
        outputs = _tile_outputs(layers, tile_start, low_sums, low_steps, bounds, cost)
        values[h * size : (h + 1) * size] = evaluate(outputs, h * size)
    cost.coalitions += 1 << k
    return values


def _tile_outputs(
    layers: tuple[DenseLayer, ...],
    tile_start: np.ndarray,
    low_sums: np.ndarray,
    low_steps: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray],
    cost: _Cost,
) -> np.ndarray:
    """``(T, m)`` network outputs of one tile's coalitions."""
    first, *rest = layers
    if not rest:  # no hidden layer: the outputs are the subset sums themselves
        return low_sums + tile_start
    second = rest[0]
    if first.activation == "relu":
        pre_second, n_variable = _folded_second_layer(
            second, tile_start, low_sums, low_steps, bounds
        )
    else:
        pre_second = first.activate(low_sums + tile_start) @ second.weight + second.bias
        n_variable = first.weight.shape[1]
    cost.multiply_adds += low_sums.shape[0] * n_variable * second.weight.shape[1]
    values = second.activate(pre_second)
    for layer in rest[1:]:
        values = layer(values)
        cost.multiply_adds += values.shape[0] * layer.weight.size
    return values


def _folded_second_layer(
    second: DenseLayer,
    tile_start: np.ndarray,
    low_sums: np.ndarray,
    low_steps: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, int]:
    """The second layer's pre-activations of a tile, with the fixed ReLU units folded (step 3).

    Returns:
        The ``(T, n_second)`` pre-activations and the number of variable units multiplied.
    """
    lowest, highest = tile_start + bounds[0], tile_start + bounds[1]
    active = lowest >= 0.0
    variable = np.flatnonzero(~active & (highest > 0.0))
    weight = second.weight
    linear_start = tile_start[active] @ weight[active] + second.bias
    pre_second = subset_sums(linear_start, low_steps[:, active] @ weight[active])
    if variable.size:
        hidden = low_sums[:, variable]
        hidden += tile_start[variable]
        np.maximum(hidden, 0.0, out=hidden)
        pre_second += hidden @ weight[variable]
    return pre_second, int(variable.size)
