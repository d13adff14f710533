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

Row ``b``'s Shapley values are ``values_b @ C_k`` (:func:`~.shapley.game_shapley_values`), averaged
over the rows. The customer's own output is the average of the rows' grand coalitions, so local
accuracy holds up to float32 rounding (tests check 1e-6 against the policy).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

from rec_env.agents.explain._network_kernels import row_values
from rec_env.agents.explain.heads import OutputHead, TileColumns
from rec_env.agents.explain.shapley import (
    ShapleyValues,
    differing_features,
    game_shapley_values,
    subset_sums,
)

if TYPE_CHECKING:  # the engine needs no torch: only its policies do
    from rec_env.agents.sb3.network import NumpyNetwork

__all__ = [
    "FOLDED_TILE_BITS",
    "TILE_BITS",
    "FoldedNetworkShapley",
    "LayerByLayerShapley",
    "NetworkShapley",
]

TILE_BITS = 11
"""Coalitions per tile layer by layer: at most ``2^11`` (0.5 MB per 64-wide float32 layer)."""

FOLDED_TILE_BITS = 9
"""Coalitions per tile of the folding kernel: at most ``2^9``. Smaller tiles leave fewer units
variable (tighter bounds) but cost more set-up per coalition."""

_MARGIN = 1e-6
"""A unit counts as fixed only this far from 0, so float rounding of the bounds cannot fool it."""


class NetworkShapley(ABC):
    """Exact interventional Shapley values of one output of a :class:`NumpyNetwork`.

    Use :meth:`for_network`, which picks the folding kernel for SB3's usual network and the
    layer-by-layer evaluation for any other.

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
        self._n_outputs = network.layers[-1].bias.size

    @property
    @abstractmethod
    def tile_bits(self) -> int:
        """Tiles hold at most ``2^tile_bits`` coalitions."""

    @staticmethod
    def for_network(network: NumpyNetwork, background: np.ndarray) -> NetworkShapley:
        """The engine for ``network``."""
        if FoldedNetworkShapley.fits(network):
            return FoldedNetworkShapley(network, background)
        return LayerByLayerShapley(network, background)

    def shap_values(
        self, x: np.ndarray, head: OutputHead, groups: np.ndarray | None = None
    ) -> ShapleyValues:
        """Shapley values of the head's value at ``x`` (``base_value + Σ values == output``).

        Args:
            x: ``(d,)`` the explained context.
            head: What is explained.
            groups: ``(d,)`` group index of every feature, ``0 .. G - 1``: the players are then
                the groups (each moves all its features at once), and ``values`` has ``G``
                entries: the exact Shapley values of the grouped game. The features the head
                keeps fixed (consent) must be groups of their own. None: one player per feature.

        Raises:
            ValueError: If ``groups`` is malformed or puts a fixed feature in a larger group.
        """
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        x_scaled = self.network.scaling(x[None, :])[0]
        weight = self.network.layers[0].weight
        if groups is not None:
            groups = _checked_groups(groups, x.size, head)
        phi = np.zeros(x.size if groups is None else int(groups.max()) + 1)
        base = output = 0.0
        coalitions = multiply_adds = 0
        players = differing_features(x, self.background)
        for b, p in enumerate(players):
            steps = (x_scaled[p] - self._background_scaled[b, p])[:, None] * weight[p]
            if groups is not None:
                # The first layer is linear in the scaled inputs, so a group's step is the sum of
                # its features' steps; a group is represented by one feature (for the head, which
                # only reads fixed players, alone in their groups).
                p, steps = _grouped(p, steps, groups)
            order, n_free = _player_order(steps, head.fixed_players(p))
            p, steps = p[order], steps[order]
            n_low = min(n_free, self.tile_bits)
            columns = head.tile_columns(x, self.background[b], p, n_low, self._n_outputs)
            values, work = self._row_values(self._background_first[b], steps, n_low, columns, head)
            base += values[0]
            output += values[-1]
            if p.size:
                phi[p if groups is None else groups[p]] += game_shapley_values(values)
            coalitions += values.size
            multiply_adds += work
        n_rows = len(players)
        return ShapleyValues(
            phi / n_rows, base / n_rows, output / n_rows, coalitions, multiply_adds
        )

    @abstractmethod
    def _row_values(
        self,
        start: np.ndarray,
        steps: np.ndarray,
        n_low: int,
        columns: TileColumns,
        head: OutputHead,
    ) -> tuple[np.ndarray, int]:
        """The explained value of all ``2^k`` coalitions of one background row, and the work.

        Args:
            start: ``(h1,)`` the row's first-layer pre-activations.
            steps: ``(k, h1)`` the players' steps in coalition-bit order.
            n_low: The first ``n_low`` players vary within a tile, the others set the tile.
            columns: The output columns of each tile (:meth:`OutputHead.tile_columns`).
            head: The output head.
        """


class FoldedNetworkShapley(NetworkShapley):
    """SB3's usual network (two ReLU layers, then linear), by the folding kernel."""

    def __init__(self, network: NumpyNetwork, background: np.ndarray) -> None:
        super().__init__(network, background)
        _, second, last = network.layers
        self._weights = tuple(
            np.ascontiguousarray(a, dtype=np.float32)
            for a in (second.weight, second.bias, last.weight, last.bias)
        )

    @staticmethod
    def fits(network: NumpyNetwork) -> bool:
        """Whether the kernel computes this network."""
        return [layer.activation for layer in network.layers] == ["relu", "relu", None]

    @property
    def tile_bits(self) -> int:
        """:data:`FOLDED_TILE_BITS`."""
        return FOLDED_TILE_BITS

    def _row_values(
        self,
        start: np.ndarray,
        steps: np.ndarray,
        n_low: int,
        columns: TileColumns,
        head: OutputHead,
    ) -> tuple[np.ndarray, int]:
        table, counts = columns
        return row_values(
            start, np.ascontiguousarray(steps), n_low, *self._weights, table, counts,
            head.softmax, _MARGIN,
        )  # fmt: skip


class LayerByLayerShapley(NetworkShapley):
    """Any network: every layer on every coalition of a tile (no folding)."""

    @property
    def tile_bits(self) -> int:
        """:data:`TILE_BITS`."""
        return TILE_BITS

    def _row_values(
        self,
        start: np.ndarray,
        steps: np.ndarray,
        n_low: int,
        columns: TileColumns,
        head: OutputHead,
    ) -> tuple[np.ndarray, int]:
        *hidden, last = self.network.layers
        table, counts = columns
        low_sums = subset_sums(np.zeros_like(start), steps[:n_low])
        size = 1 << n_low
        values = np.zeros(1 << steps.shape[0])
        work = 0
        for h, tile_start in enumerate(subset_sums(start, steps[n_low:])):
            if counts[h] == 0:  # the explained value is 0 on the whole tile
                continue
            tile_columns = table[h, : counts[h]]
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


def _checked_groups(groups: np.ndarray, n_features: int, head: OutputHead) -> np.ndarray:
    """``groups`` as an index array, checked against the features and the head."""
    groups = np.asarray(groups)
    if groups.shape != (n_features,) or not np.issubdtype(groups.dtype, np.integer):
        raise ValueError(f"groups must be ({n_features},) integers, got {groups.shape}")
    if groups.min() < 0:
        raise ValueError("group indices must be non-negative")
    sizes = np.bincount(groups)
    fixed = head.fixed_players(np.arange(n_features))
    if (sizes[groups[fixed]] > 1).any():
        raise ValueError("the features the head keeps fixed (consent) must be groups of their own")
    return groups.astype(np.intp)


def _grouped(
    features: np.ndarray, steps: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One player per group of ``features``: its first feature, and the sum of the steps."""
    ids, first, inverse = np.unique(groups[features], return_index=True, return_inverse=True)
    summed = np.zeros((ids.size, steps.shape[1]), dtype=steps.dtype)
    np.add.at(summed, inverse, steps)
    return features[first], summed
