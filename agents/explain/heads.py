"""Output heads of the network engine: what is read off the network's last layer.

The network engine (:mod:`~.network_shapley`) evaluates the coalitions of a background row in
tiles. A head tells it which players must stay fixed within a tile, which output columns each
tile needs, and how to turn those outputs into the explained value:

* :class:`SingleOutputHead`: one output as it is (a DQN's Q-value);
* :class:`MaskedSoftmaxHead`: the probability of an action under the softmax of the logits over
  the allowed actions, with the consent mask of every coalition.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from rec_env.agents.explain.masking import ActionMasking

__all__ = ["MaskedSoftmaxHead", "OutputHead", "SingleOutputHead", "TileColumns"]

TileColumns = tuple[np.ndarray, np.ndarray]
"""``(columns (n_tiles, n_outputs), counts (n_tiles,))``: tile ``h`` needs the output columns
``columns[h, :counts[h]]``, the explained one first; ``counts[h] == 0`` means the explained
value is 0 on the whole tile."""


class OutputHead(ABC):
    """Turns the network's outputs of a tile of coalitions into the explained value."""

    softmax: bool = False
    """Whether the value is ``1 / Σ_c exp(o_c - o_0)`` of the columns ``o`` (else ``o_0``):
    what :meth:`reduce` computes, for the compiled kernel."""

    def fixed_players(self, players: np.ndarray) -> np.ndarray:
        """``(k,)`` bool: players that must not vary within a tile (none by default)."""
        return np.zeros(players.size, dtype=bool)

    @abstractmethod
    def tile_columns(
        self, x: np.ndarray, row: np.ndarray, players: np.ndarray, n_low: int, n_outputs: int
    ) -> TileColumns:
        """The output columns of each tile of one background row's coalitions.

        Args:
            x: The explained context.
            row: The background row.
            players: The row's players in coalition-bit order (bit ``j`` is ``players[j]``);
                the first ``n_low`` vary within a tile, tile ``h`` sets the others by its bits.
            n_low: Players that vary within a tile.
            n_outputs: The network's outputs.
        """

    @abstractmethod
    def reduce(self, outputs: np.ndarray) -> np.ndarray:
        """``(T,)`` explained values from the ``(T, c)`` outputs of a tile's columns."""


class SingleOutputHead(OutputHead):
    """One output as it is: the Q-value of ``action``."""

    def __init__(self, action: int) -> None:
        self.action = action

    def tile_columns(
        self, x: np.ndarray, row: np.ndarray, players: np.ndarray, n_low: int, n_outputs: int
    ) -> TileColumns:
        """Always the explained column."""
        n_tiles = 1 << (players.size - n_low)
        return np.full((n_tiles, 1), self.action, dtype=np.intp), np.ones(n_tiles, dtype=np.intp)

    def reduce(self, outputs: np.ndarray) -> np.ndarray:
        """The column itself."""
        return outputs[:, 0]


class MaskedSoftmaxHead(OutputHead):
    """``P(action)``: the softmax of the logits over the actions allowed to the coalition.

    The consent players are kept fixed within a tile, so a tile has one mask
    (:meth:`ActionMasking.allowed` of the tile's consent values and the caller's ``excluded``
    actions). Only the allowed logits are computed, the explained one first, and
    ``P(a) = 1 / Σ_c exp(l_c - l_a)`` needs no maximum (the term ``c = a`` is 1; an overflow
    means ``P(a) = 0`` to float32 precision). A tile where the action is masked is 0 without
    any arithmetic.
    """

    softmax = True

    def __init__(self, action: int, masking: ActionMasking, excluded: np.ndarray) -> None:
        self.action = action
        self.masking = masking
        self.excluded = excluded

    def fixed_players(self, players: np.ndarray) -> np.ndarray:
        """The consent features."""
        columns = self.masking.columns or []
        return (players[:, None] == np.asarray(columns, dtype=players.dtype)).any(axis=1)

    def tile_columns(
        self, x: np.ndarray, row: np.ndarray, players: np.ndarray, n_low: int, n_outputs: int
    ) -> TileColumns:
        """The allowed actions of each tile, from its consent values."""
        consent = np.flatnonzero(self.fixed_players(players))  # all among the high players
        # One mask per combination of the consent players: x's value or the row's.
        chosen = (np.arange(1 << consent.size)[:, None] >> np.arange(consent.size)) & 1
        hybrids = np.repeat(row[None, :], chosen.shape[0], axis=0)
        for i, j in enumerate(consent):
            hybrids[chosen[:, i] == 1, players[j]] = x[players[j]]
        allowed = self.masking.allowed(hybrids, self.excluded)
        counts = np.where(allowed[:, self.action], allowed.sum(axis=1), 0)
        # Allowed columns first, the explained action first of all.
        rank = 2 * ~allowed + (np.arange(n_outputs) != self.action)
        combinations = np.argsort(rank, axis=1, kind="stable")
        tiles = np.arange(1 << (players.size - n_low))
        keys = np.zeros(tiles.size, dtype=np.intp)
        for i, j in enumerate(consent):
            keys |= ((tiles >> (j - n_low)) & 1) << i
        return combinations[keys], counts[keys]

    def reduce(self, outputs: np.ndarray) -> np.ndarray:
        """``1 / Σ_c exp(l_c - l_a)`` with ``l_a`` in column 0."""
        with np.errstate(over="ignore"):
            return 1.0 / np.exp(outputs - outputs[:, :1]).sum(axis=1)
