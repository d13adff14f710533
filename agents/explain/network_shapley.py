r"""Exact interventional Shapley values of a small MLP, without building its inputs.

The engine of :class:`~rec_env.agents.explain.PolicyExplainer` for SB3 networks
(:class:`~rec_env.agents.sb3.network.NumpyNetwork`). For background row ``b`` and the ``k``
features ``p`` where the customer ``x`` differs from it (:mod:`~.shapley`):

1. **First layer by subset sums.** The input scaling is elementwise and the first layer is
   linear, so the first layer's pre-activations of coalition ``t`` are
   ``z(t) = z(b) + Σ_{j ∈ t} Δ_j`` with ``Δ_j = (s(x)_{p_j} - s(b)_{p_j}) W_{p_j}``:
   one addition per coalition and unit (:func:`~.shapley.subset_sums`), no matrix product.
2. **Tiles.** The ``2^k`` coalitions run in tiles: every subset of the *low* players on top of
   one subset of the *high* players. The players with the smallest steps are the low ones, so
   that few units can change sign within a tile; the players the output head needs fixed per
   tile (the consent features, which set the mask) are always high.
3. **Folding.** For SB3's usual network (two ReLU layers, then the output layer) a compiled
   kernel (:mod:`~._network_kernels`) drops the ReLU units that no coalition of a tile can
   switch on, folds those no coalition can switch off into subset sums, bounds the second
   layer by a linear relaxation and folds it the same way, and multiplies only the units
   that remain. Any other network runs layer by layer on the tile.
4. **Output** (:mod:`~.heads`): only the output columns the tile needs are computed, and the
   head turns them into the explained value; a tile where the value is 0 (a masked action)
   costs nothing.

Row ``b``'s Shapley values are ``values_b @ C_k`` (:func:`~.shapley.shapley_matrix`), averaged
over the rows. The customer's own output is the average of the rows' grand coalitions, so local
accuracy holds up to float32 rounding (tests check 1e-6 against the policy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rec_env.agents.explain._network_kernels import row_values
from rec_env.agents.explain.heads import OutputHead, TileColumns
from rec_env.agents.explain.shapley import (
    ShapleyValues,
    differing_features,
    shapley_matrix,
    subset_sums,
)

if TYPE_CHECKING:  # the engine needs no torch: only its policies do
    from rec_env.agents.sb3.network import NumpyNetwork

__all__ = ["FOLDED_TILE_BITS", "TILE_BITS", "NetworkShapley"]

TILE_BITS = 11
"""Coalitions per tile layer by layer: at most ``2^11`` (0.5 MB per 64-wide float32 layer)."""

FOLDED_TILE_BITS = 9
"""Coalitions per tile of the folding kernel: at most ``2^9``. Smaller tiles leave fewer units
variable (tighter bounds) but cost more set-up per coalition."""

_MARGIN = 1e-6
"""A unit counts as fixed only this far from 0, so float rounding of the bounds cannot fool it."""


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
        self._folded: tuple[np.ndarray, ...] | None = None
        activations = [layer.activation for layer in network.layers]
        if activations == ["relu", "relu", None]:  # the kernel's network
            _, second, last = network.layers
            self._folded = tuple(
                np.ascontiguousarray(a, dtype=np.float32)
                for a in (second.weight, second.bias, last.weight, last.bias)
            )

    def shap_values(self, x: np.ndarray, head: OutputHead) -> ShapleyValues:
        """Shapley values of the head's value at ``x`` (``base_value + Σ values == output``)."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        x_scaled = self.network.scaling(x[None, :])[0]
        weight = self.network.layers[0].weight
        phi = np.zeros(x.size)
        base = output = 0.0
        coalitions = multiply_adds = 0
        players = differing_features(x, self.background)
        for b, p in enumerate(players):
            steps = (x_scaled[p] - self._background_scaled[b, p])[:, None] * weight[p]
            order, n_free = _player_order(steps, head.fixed_players(p))
            p, steps = p[order], steps[order]
            columns = head.for_row(x, self.background[b], p)
            values, work = self._row_values(self._background_first[b], steps, n_free, columns, head)
            base += values[0]
            output += values[-1]
            if p.size:
                phi[p] += values @ shapley_matrix(p.size)
            coalitions += values.size
            multiply_adds += work
        n_rows = len(players)
        return ShapleyValues(
            phi / n_rows, base / n_rows, output / n_rows, coalitions, multiply_adds
        )

    def _row_values(
        self,
        start: np.ndarray,
        steps: np.ndarray,
        n_free: int,
        columns: TileColumns,
        head: OutputHead,
    ) -> tuple[np.ndarray, int]:
        """The explained value of all ``2^k`` coalitions of one background row, and the work."""
        if self._folded is None:
            return self._layer_by_layer(start, steps, n_free, columns, head)
        n_low = min(n_free, FOLDED_TILE_BITS)
        n_tiles = 1 << (steps.shape[0] - n_low)
        table = np.zeros((n_tiles, self.network.layers[-1].bias.size), dtype=np.intp)
        counts = np.zeros(n_tiles, dtype=np.intp)
        for h in range(n_tiles):
            tile_columns = columns(h << n_low)
            if tile_columns is not None:
                counts[h] = tile_columns.size
                table[h, : tile_columns.size] = tile_columns
        return row_values(
            start, np.ascontiguousarray(steps), n_low, *self._folded, table, counts,
            head.softmax, _MARGIN,
        )  # fmt: skip

    def _layer_by_layer(
        self,
        start: np.ndarray,
        steps: np.ndarray,
        n_free: int,
        columns: TileColumns,
        head: OutputHead,
    ) -> tuple[np.ndarray, int]:
        """:meth:`_row_values` for any network: every layer on every coalition of a tile."""
        *hidden, last = self.network.layers
        low = min(n_free, TILE_BITS)
        low_sums = subset_sums(np.zeros_like(start), steps[:low])
        size = 1 << low
        values = np.zeros(1 << steps.shape[0])
        work = 0
        for h, tile_start in enumerate(subset_sums(start, steps[low:])):
            tile_columns = columns(h * size)
            if tile_columns is None:  # the explained value is 0 on the whole tile
                continue
            outputs = low_sums + tile_start
            if hidden:
                outputs = hidden[0].activate(outputs)
                for layer in hidden[1:]:
                    outputs = layer(outputs)
                    work += size * layer.weight.size
                outputs = outputs @ last.weight[:, tile_columns] + last.bias[tile_columns]
                work += size * last.weight.shape[0] * tile_columns.size
            else:
                outputs = outputs[:, tile_columns]
            values[h * size : (h + 1) * size] = head.reduce(outputs)
        return values, work


def _player_order(steps: np.ndarray, fixed: np.ndarray) -> tuple[np.ndarray, int]:
    """Coalition-bit order of a row's players, and how many may vary within a tile.

    The free players come first, smallest steps first; the players the head needs fixed last.
    """
    size = np.abs(steps).sum(axis=1)
    order = np.lexsort((size, fixed))
    return order, int((~fixed).sum())
