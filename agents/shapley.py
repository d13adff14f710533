r"""Exact interventional Shapley values against a background sample, fast.

For a model output ``f`` and a background sample ``B``, the interventional value of a coalition
``S`` of features is ``v(S) = mean_b f(x_S, b_{N∖S})`` and the Shapley value of feature ``i`` is

.. math::

    \phi_i = \sum_{S \subseteq N \setminus \{i\}}
        \frac{|S|!\,(|N| - |S| - 1)!}{|N|!} \, [v(S \cup \{i\}) - v(S)]

(Lundberg & Lee 2017; Janzing et al. 2020 for the interventional form). Because ``v`` is an
average over background rows, ``φ`` is the average of the Shapley values of the per-row games
``v_b(S) = f(x_S, b_{N∖S})``. In the game of row ``b`` every feature with ``x_i = b_i`` is a null
player (it changes nothing), so only the ``k_b`` features where ``x`` and ``b`` differ need to be
enumerated: ``2^{k_b}`` evaluations instead of ``2^{|N|}``. Binary and count features often agree
with the background. All coalitions of all rows go through the model in one batch, and ``f(b)``
(the empty coalitions) is computed once per background. The result is exact (up to float
rounding): ``base + Σφ = f(x)`` holds to machine precision (local accuracy).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from math import factorial

import numpy as np

__all__ = ["ExactShapley", "brute_force_shapley"]

ValueFunction = Callable[[np.ndarray], np.ndarray]


@lru_cache(maxsize=32)
def _game_tables(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index tables of the ``k``-player game.

    For each player: the coalitions without it, the same coalitions with it, and the Shapley
    weight of each pair.
    """
    masks = np.arange(1 << k)
    sizes = np.array([bin(m).count("1") for m in masks])
    weights = np.array([factorial(s) * factorial(k - s - 1) / factorial(k) for s in range(k)])
    without = np.empty((k, 1 << max(k - 1, 0)), dtype=np.intp)
    for j in range(k):
        without[j] = masks[(masks >> j) & 1 == 0]
    with_ = without | (1 << np.arange(k))[:, None]
    return without, with_, weights[sizes[without]]


def _coalition_inputs(x: np.ndarray, row: np.ndarray, players: np.ndarray) -> np.ndarray:
    """``2^k`` inputs: the background row with ``x`` on each coalition of ``players``."""
    k = players.size
    inputs = np.repeat(row[None, :], 1 << k, axis=0)
    bits = ((np.arange(1 << k)[:, None] >> np.arange(k)) & 1).astype(bool)
    values = np.broadcast_to(x[players], bits.shape)
    inputs[:, players] = np.where(bits, values, inputs[:, players])
    return inputs


class ExactShapley:
    """Exact interventional Shapley values of ``f`` at ``x`` against a background sample.

    Args:
        value_fn: Batched model output, ``(m, F) -> (m,)``.
        background: ``(n_background, F)`` background sample.
        max_players: Refuse rows that differ from ``x`` in more features than this (the cost is
            ``2^k`` per row); exactness is never traded away silently.
    """

    def __init__(self, value_fn: ValueFunction, background: np.ndarray, max_players: int = 20):
        self.value_fn = value_fn
        self.background = np.asarray(background, dtype=np.float32)
        if self.background.ndim != 2 or self.background.shape[0] == 0:
            raise ValueError("background must be a non-empty (n, F) array")
        self.max_players = max_players
        self.background_values = np.asarray(value_fn(self.background), dtype=np.float64)
        self.base_value = float(self.background_values.mean())

    def shap_values(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """Shapley values ``(F,)`` of ``x`` and the model output ``f(x)``."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        differing = [np.flatnonzero(x != row) for row in self.background]
        widest = max(d.size for d in differing)
        if widest > self.max_players:
            raise ValueError(f"x differs from a background row in {widest} features")
        # one batch: for every row, its coalitions except the empty one (cached f(b))
        blocks = [
            _coalition_inputs(x, row, d)[1:]
            for row, d in zip(self.background, differing, strict=True)
        ]
        outputs = np.asarray(self.value_fn(np.concatenate(blocks)), dtype=np.float64)
        phi = np.zeros(x.size)
        start = 0
        for b, players in enumerate(differing):
            size = (1 << players.size) - 1
            values = np.concatenate(([self.background_values[b]], outputs[start : start + size]))
            start += size
            if players.size == 0:
                continue
            without, with_, weights = _game_tables(players.size)
            phi[players] += (weights * (values[with_] - values[without])).sum(axis=1)
        phi /= len(differing)
        fx = float(np.asarray(self.value_fn(x[None, :]), dtype=np.float64)[0])
        return phi, fx


def brute_force_shapley(
    value_fn: ValueFunction, x: np.ndarray, background: np.ndarray
) -> tuple[np.ndarray, float]:
    """Reference implementation: every coalition of every feature, straight from the formula.

    ``O(2^F · F · n_background)`` model evaluations; for tests on small feature sets only.
    """
    x = np.asarray(x, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64)
    n = x.size

    def v(coalition: tuple[int, ...]) -> float:
        z = background.copy()
        z[:, list(coalition)] = x[list(coalition)]
        return float(np.mean(value_fn(z)))

    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for mask in range(1 << (n - 1)):
            coalition = tuple(others[j] for j in range(n - 1) if (mask >> j) & 1)
            weight = factorial(len(coalition)) * factorial(n - len(coalition) - 1) / factorial(n)
            phi[i] += weight * (v((*coalition, i)) - v(coalition))
    return phi, float(np.mean(value_fn(background)))
