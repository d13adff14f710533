r"""Exact interventional Shapley values of a small MLP, without building its inputs.

The engine of :class:`~rec_env.agents.explain.PolicyExplainer` for SB3 networks
(:class:`~rec_env.agents.sb3.network.NumpyNetwork`). For background row ``b`` and the ``k``
features ``p`` where the customer ``x`` differs from it (:mod:`~.shapley`):

1. **First layer by subset sums.** The input scaling is elementwise and the first layer is
   linear, so the first layer's pre-activations of coalition ``t`` are
   ``z(t) = z(b) + Σ_{j ∈ t} Δ_j`` with ``Δ_j = (s(x)_{p_j} - s(b)_{p_j}) W_{p_j}``:
   one addition per coalition and unit (:func:`~.shapley.subset_sums`), no matrix product.
2. **Tiles.** The ``2^k`` coalitions run in tiles of at most ``2^11`` (cache-sized): every
   subset of the *low* players on top of one subset of the *high* players. The players with
   the smallest steps are the low ones, so that few units can change sign within a tile; the
   players the output head needs fixed per tile (the consent features, which set the mask)
   are always high.
3. **Folding** (:mod:`~.tiles`): ReLU units that no coalition of a tile can switch are dropped
   (dead) or folded into subset sums (always active); only the others enter matrix products.
4. **Output** (:mod:`~.heads`): only the output columns the tile needs are computed, and the
   head turns them into the explained value.

Row ``b``'s Shapley values are ``values_b @ C_k`` (:func:`~.shapley.shapley_matrix`), averaged
over the rows. The customer's own output is the average of the rows' grand coalitions, so local
accuracy holds up to float32 rounding (tests check 1e-6 against the policy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rec_env.agents.explain.heads import OutputHead, TileColumns
from rec_env.agents.explain.shapley import (
    ShapleyValues,
    differing_features,
    shapley_matrix,
    subset_sums,
)
from rec_env.agents.explain.tiles import Tile, tile_outputs

if TYPE_CHECKING:  # the engine needs no torch: only its policies do
    from rec_env.agents.sb3.network import NumpyNetwork

__all__ = ["TILE_BITS", "NetworkShapley"]

TILE_BITS = 11
"""Coalitions per tile: at most ``2^11`` (about 0.5 MB per 64-wide float32 layer)."""


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
        low = min(n_free, TILE_BITS)
        low_steps = steps[:low]
        bounds = np.stack([np.minimum(low_steps, 0.0).sum(0), np.maximum(low_steps, 0.0).sum(0)])
        low_sums = subset_sums(np.zeros_like(start), low_steps)
        size = 1 << low
        values = np.zeros(1 << steps.shape[0])
        work = 0
        for h, tile_start in enumerate(subset_sums(start, steps[low:])):
            tile_columns = columns(h * size)
            if tile_columns is None:  # the explained value is 0 on the whole tile
                continue
            tile = Tile(tile_start, low_sums, low_steps, bounds)
            outputs, tile_work = tile_outputs(self.network.layers, tile, tile_columns)
            values[h * size : (h + 1) * size] = head.reduce(outputs)
            work += tile_work
        return values, work


def _player_order(steps: np.ndarray, fixed: np.ndarray) -> tuple[np.ndarray, int]:
    """Coalition-bit order of a row's players, and how many may vary within a tile.

    The free players come first, smallest steps first; the players the head needs fixed last.
    """
    size = np.abs(steps).sum(axis=1)
    order = np.lexsort((size, fixed))
    return order, int((~fixed).sum())
