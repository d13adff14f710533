r"""The network outputs of one tile of coalitions, with the fixed ReLU units folded.

A tile holds ``T = 2^low`` coalitions of one background row: the *tile start* (the first-layer
pre-activations with the tile's high players set, a vector ``z``) plus every subset sum of the
low players' steps ``Δ_j``. Over the tile, unit ``u`` of the first layer stays within

.. math::

    [\,z_u + \sum_j \min(Δ_{ju}, 0),\ z_u + \sum_j \max(Δ_{ju}, 0)\,].

A ReLU unit whose upper bound is ≤ 0 is *dead* on the whole tile; one whose lower bound is ≥ 0
is *active*, its ReLU is the identity, and its share of the next layer
``Σ_{u active} (z_u + Σ_{j ∈ t} Δ_{ju}) W_u`` is a subset sum of the projected steps
``Δ_j W``: one addition per coalition instead of a matrix product. Only the *variable* units
enter a matrix product.

With two ReLU hidden layers before the output (SB3's default ``[64, 64]``), the second layer
is folded the same way, with interval bounds: its pre-activations are the exact subset sums of
the active units plus ``Σ_{u variable} relu(·)_u W_u`` with ``relu(·)_u ∈ [0, hi_u]``. Its
active units are folded into the output layer (``W₂ W₃``), its dead units dropped. Per
coalition, the work falls from ``64·64 + 64·c`` multiply-adds to
``|V₁|·(|V₂| + c) + |V₂|·c``, with ``V₁``, ``V₂`` the variable units and ``c`` the output
columns. Nothing any coalition of the tile could switch is dropped, so the outputs are exact
(up to float32 rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rec_env.agents.explain.shapley import subset_sums

if TYPE_CHECKING:  # the engine needs no torch: only its policies do
    from rec_env.agents.sb3.network import DenseLayer

__all__ = ["Tile", "tile_outputs"]


@dataclass(frozen=True)
class Tile:
    """The first-layer pre-activations of a tile's coalitions, as subset sums.

    Attributes:
        start: ``(h,)`` the tile start ``z``.
        low_sums: ``(T, h)`` the subset sums of the low players' steps (without ``z``).
        low_steps: ``(low, h)`` the low players' steps ``Δ_j``.
        low_bounds: ``(2, h)`` ``Σ_j min(Δ_j, 0)`` and ``Σ_j max(Δ_j, 0)``.
    """

    start: np.ndarray
    low_sums: np.ndarray
    low_steps: np.ndarray
    low_bounds: np.ndarray

    @property
    def size(self) -> int:
        """Coalitions in the tile."""
        return int(self.low_sums.shape[0])


def tile_outputs(
    layers: tuple[DenseLayer, ...], tile: Tile, columns: np.ndarray
) -> tuple[np.ndarray, int]:
    """The ``(T, len(columns))`` outputs of the tile's coalitions, and the multiply-adds spent.

    Args:
        layers: The network's dense layers (the first one's pre-activations are the tile's).
        tile: The tile.
        columns: Output columns to compute.
    """
    *hidden, last = layers
    weight, bias = last.weight[:, columns], last.bias[columns]
    if not hidden:  # the first layer is the output layer: its subset sums are the outputs
        return (tile.low_sums + tile.start)[:, columns], 0
    first = hidden[0]
    if first.activation != "relu":
        values = first.activate(tile.low_sums + tile.start)
        work = 0
        for layer in hidden[1:]:
            work += values.shape[0] * layer.weight.size
            values = layer(values)
        return values @ weight + bias, work + values.shape[0] * weight.size
    if len(hidden) == 2 and hidden[1].activation == "relu":
        return _two_folded_layers(hidden[1], weight, bias, tile)
    second = hidden[1] if len(hidden) > 1 else None
    if second is None:
        return _folded_layer(weight, bias, tile)
    pre_second, work = _folded_layer(second.weight, second.bias, tile)
    values = second.activate(pre_second)
    for layer in hidden[2:]:
        work += values.shape[0] * layer.weight.size
        values = layer(values)
    return values @ weight + bias, work + values.shape[0] * weight.size


def _first_layer_units(tile: Tile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Active mask, variable indices and upper bounds of the first layer's units."""
    lowest = tile.start + tile.low_bounds[0]
    highest = tile.start + tile.low_bounds[1]
    active = lowest >= 0.0
    return active, np.flatnonzero(~active & (highest > 0.0)), highest


def _variable_activations(tile: Tile, variable: np.ndarray) -> np.ndarray:
    """``(T, |V|)`` ReLU of the variable units."""
    hidden = tile.low_sums[:, variable]
    hidden += tile.start[variable]
    return np.maximum(hidden, 0.0, out=hidden)


def _folded_layer(weight: np.ndarray, bias: np.ndarray, tile: Tile) -> tuple[np.ndarray, int]:
    """Pre-activations of the layer after the first, its fixed ReLU units folded."""
    active, variable, _ = _first_layer_units(tile)
    start = tile.start[active] @ weight[active] + bias
    pre = subset_sums(start, tile.low_steps[:, active] @ weight[active])
    if variable.size:
        pre += _variable_activations(tile, variable) @ weight[variable]
    return pre, tile.size * variable.size * weight.shape[1]


def _two_folded_layers(
    second: DenseLayer, weight: np.ndarray, bias: np.ndarray, tile: Tile
) -> tuple[np.ndarray, int]:
    """Outputs of ``first → relu → second → relu → (weight, bias)``, both layers folded."""
    active, variable, highest = _first_layer_units(tile)
    w2 = second.weight
    linear_start = tile.start[active] @ w2[active] + second.bias
    linear_steps = tile.low_steps[:, active] @ w2[active]  # exact part of the second layer
    spread = w2[variable] * highest[variable, None]  # relu(u) ∈ [0, highest_u]
    lowest2 = linear_start + np.minimum(linear_steps, 0.0).sum(0) + np.minimum(spread, 0.0).sum(0)
    highest2 = linear_start + np.maximum(linear_steps, 0.0).sum(0) + np.maximum(spread, 0.0).sum(0)
    active2 = lowest2 >= 0.0
    variable2 = np.flatnonzero(~active2 & (highest2 > 0.0))
    w3 = weight[active2]
    outputs = subset_sums(linear_start[active2] @ w3 + bias, linear_steps[:, active2] @ w3)
    pre2 = subset_sums(linear_start[variable2], linear_steps[:, variable2])
    if variable.size:
        through = np.concatenate(
            [w2[np.ix_(variable, variable2)], w2[variable][:, active2] @ w3], 1
        )
        product = _variable_activations(tile, variable) @ through
        pre2 += product[:, : variable2.size]
        outputs += product[:, variable2.size :]
    if variable2.size:
        outputs += np.maximum(pre2, 0.0, out=pre2) @ weight[variable2]
    n_out = weight.shape[1]
    work = tile.size * (variable.size * (variable2.size + n_out) + variable2.size * n_out)
    return outputs, work
