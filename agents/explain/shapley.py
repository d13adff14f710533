r"""Exact interventional Shapley values against a background sample, fast.

For a model output ``f`` and a background sample ``B``, the interventional value of a coalition
``S`` of features is ``v(S) = mean_b f(x_S, b_{N∖S})`` and the Shapley value of feature ``i`` is

.. math::

    \phi_i = \sum_{S \subseteq N \setminus \{i\}}
        \frac{|S|!\,(|N| - |S| - 1)!}{|N|!} \, [v(S \cup \{i\}) - v(S)]

(Lundberg & Lee 2017; Janzing et al. 2020 for the interventional form). Because ``v`` is an
average over background rows, ``φ`` is the average of the Shapley values of the per-row games
``v_b(S) = f(x_S, b_{N∖S})``. In the game of row ``b`` every feature with ``x_i = b_i`` is a null
player (it changes nothing), so only the ``k_b`` features where ``x`` and ``b`` differ are
enumerated: ``2^{k_b}`` evaluations instead of ``2^{|N|}``. Binary flags and counts often agree
with the background.

The ``2^k`` coalitions of a row are laid out in binary order (bit ``j`` of the coalition index is
player ``j``), which lets every per-coalition quantity be built by doubling:
``values[2^j : 2^{j+1}] = values[:2^j] + delta_j``. The Shapley values of a row are then
``f_row @ C_k`` with the ``(2^k, k)`` coefficients of :func:`shapley_matrix`, computed in one
pass over the coalitions (:func:`game_shapley_values`).

Efficiency (local accuracy) holds by construction: for every row the coefficients of player
``j`` sum, over the players, to ``f(x) - f(b)``, so ``base + Σφ = f(x)`` up to float64
rounding of the aggregation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from math import factorial

import numpy as np
from numba import njit

__all__ = [
    "ExactShapley",
    "ShapleyValues",
    "brute_force_shapley",
    "coalition_bits",
    "differing_features",
    "game_shapley_values",
    "row_chunks",
    "shapley_matrix",
    "subset_sums",
]

ValueFunction = Callable[[np.ndarray], np.ndarray]

MAX_COALITIONS_PER_CHUNK = 1 << 17
"""Coalitions evaluated in one model call (bounds memory: ~32 MB per 64-wide float32 layer)."""


@dataclass(frozen=True)
class ShapleyValues:
    """One customer's Shapley values and what they cost.

    Attributes:
        values: ``(F,)`` contributions.
        base_value: The mean output over the background, ``v(∅)``.
        output: The output at ``x``, ``base_value + values.sum()``.
        coalitions: Coalitions evaluated, ``Σ_b 2^{k_b}`` (a deterministic measure of the work).
        multiply_adds: Multiply-adds spent in network layers (0 if the engine does not count).
    """

    values: np.ndarray
    base_value: float
    output: float
    coalitions: int
    multiply_adds: int = 0


@lru_cache(maxsize=32)
def coalition_bits(k: int) -> np.ndarray:
    """``(2^k, k)`` bool: bit ``j`` of each coalition index (coalition ``t`` holds player ``j``)."""
    return ((np.arange(1 << k)[:, None] >> np.arange(k)) & 1).astype(bool)


@lru_cache(maxsize=32)
def shapley_matrix(k: int) -> np.ndarray:
    """``(2^k, k)`` coefficients ``C`` with ``φ = f @ C`` for a ``k``-player game.

    ``f`` holds the game's value of every coalition in binary order. Player ``j``'s Shapley
    value is ``Σ_{S ∌ j} w(|S|) (f(S ∪ j) - f(S))`` with ``w(s) = s! (k - s - 1)! / k!``, so
    ``C[t, j] = w(|t| - 1)`` if ``t`` holds ``j`` and ``-w(|t|)`` otherwise.
    """
    bits = coalition_bits(k)
    sizes = bits.sum(axis=1)
    weights = np.array([factorial(s) * factorial(k - s - 1) / factorial(k) for s in range(k)])
    weights = np.append(weights, 0.0)  # w(k): the grand coalition has no player to add
    with_j = weights[np.maximum(sizes - 1, 0)][:, None]
    without_j = -weights[sizes][:, None]
    matrix = np.where(bits, with_j, without_j)
    matrix.setflags(write=False)
    return matrix


@lru_cache(maxsize=32)
def _size_weights(k: int) -> tuple[np.ndarray, np.ndarray]:
    """``w(|t| - 1)`` and ``w(|t|)`` for every coalition ``t`` of ``k`` players (binary order)."""
    sizes = coalition_bits(k).sum(axis=1)
    weights = np.array([factorial(s) * factorial(k - s - 1) / factorial(k) for s in range(k)])
    weights = np.append(weights, 0.0)  # w(k): the grand coalition has no player to add
    return weights[np.maximum(sizes - 1, 0)], weights[sizes]


def game_shapley_values(values: np.ndarray) -> np.ndarray:
    """``(k,)`` Shapley values of a ``k``-player game from its ``2^k`` values in binary order.

    The same as ``values @ shapley_matrix(k)``, without the ``(2^k, k)`` matrix: with
    ``a(t) = w(|t| - 1) v(t)`` and ``b(t) = w(|t|) v(t)``, player ``j`` gets
    ``Σ_{t ∋ j} a(t) - Σ_{t ∌ j} b(t) = Σ_{t ∋ j} (a + b)(t) - Σ_t b(t)``: one pass over the
    coalitions.
    """
    k = values.size.bit_length() - 1
    with_j, without_j = _size_weights(k)
    lacking = values * without_j
    return _sums_by_player(values * with_j + lacking, k) - lacking.sum()


@njit(cache=True, fastmath={"reassoc"})
def _sums_by_player(values: np.ndarray, k: int) -> np.ndarray:
    """``Σ_{t ∋ j} values[t]`` for every player ``j`` (contiguous runs: bit ``j`` set)."""
    sums = np.zeros(k)
    for j in range(k):
        half = 1 << j
        total = 0.0
        for block in range(half, values.size, 2 * half):
            for t in range(block, block + half):
                total += values[t]
        sums[j] = total
    return sums


def subset_sums(start: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """``(2^k, d)``: ``start + Σ_{j ∈ t} steps[j]`` for every coalition ``t``, in binary order.

    Built by doubling, ``sums[2^j : 2^{j+1}] = sums[:2^j] + steps[j]``: one addition per entry.
    """
    k = steps.shape[0]
    sums = np.empty((1 << k, start.shape[0]), dtype=np.result_type(start, steps))
    sums[0] = start
    for j in range(k):
        half = 1 << j
        np.add(sums[:half], steps[j], out=sums[half : 2 * half])
    return sums


def differing_features(x: np.ndarray, background: np.ndarray) -> list[np.ndarray]:
    """For each background row, the indices of the features where it differs from ``x``."""
    return [np.flatnonzero(row) for row in x[None, :] != background]


def row_chunks(players: list[np.ndarray]) -> Iterator[list[int]]:
    """Group background rows into chunks of at most :data:`MAX_COALITIONS_PER_CHUNK` coalitions."""
    chunk: list[int] = []
    size = 0
    for b, p in enumerate(players):
        n = 1 << p.size
        if chunk and size + n > MAX_COALITIONS_PER_CHUNK:
            yield chunk
            chunk, size = [], 0
        chunk.append(b)
        size += n
    if chunk:
        yield chunk


def _hybrid_inputs(x: np.ndarray, row: np.ndarray, players: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` ``(2^k, F)`` with the row, ``x`` on each coalition of ``players``."""
    out[0] = row
    for j, feature in enumerate(players):
        half = 1 << j
        out[half : 2 * half] = out[:half]
        out[half : 2 * half, feature] = x[feature]


class ExactShapley:
    """Exact interventional Shapley values of any batched model output, against a background.

    The model-agnostic engine: it builds the hybrid inputs ``(x_S, b_{N∖S})`` of every
    non-trivial coalition and calls ``value_fn`` on them in large batches. For a small MLP,
    :class:`~rec_env.agents.explain.PolicyExplainer` uses a faster path that never builds the
    inputs.

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

    def shap_values(self, x: np.ndarray) -> ShapleyValues:
        """Shapley values of ``x``, with ``base_value + values.sum() == output``.

        Raises:
            ValueError: If ``x`` differs from a background row in more than ``max_players``
                features.
        """
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        players = differing_features(x, self.background)
        widest = max(p.size for p in players)
        if widest > self.max_players:
            raise ValueError(f"x differs from a background row in {widest} features")
        phi = np.zeros(x.size)
        base = fx = 0.0
        for chunk in row_chunks(players):
            sizes = [1 << players[b].size for b in chunk]
            inputs = np.empty((sum(sizes), x.size), dtype=np.float32)
            start = 0
            for b, n in zip(chunk, sizes, strict=True):
                _hybrid_inputs(x, self.background[b], players[b], inputs[start : start + n])
                start += n
            values = np.asarray(self.value_fn(inputs), dtype=np.float64)
            start = 0
            for b, n in zip(chunk, sizes, strict=True):
                block = values[start : start + n]
                base += block[0]
                fx += block[-1]
                if n > 1:
                    phi[players[b]] += game_shapley_values(block)
                start += n
        n_rows = len(players)
        coalitions = sum(1 << p.size for p in players)
        return ShapleyValues(phi / n_rows, base / n_rows, fx / n_rows, coalitions)


def brute_force_shapley(
    value_fn: ValueFunction, x: np.ndarray, background: np.ndarray
) -> tuple[np.ndarray, float]:
    """Reference implementation, straight from the definition.

    Computes the averaged game ``v(S) = mean_b f(x_S, b_{N∖S})`` on every one of the
    ``2^F`` coalitions (no null-player shortcut, no per-row games), then
    ``φ_i = Σ_{S ∌ i} |S|! (F - |S| - 1)! / F! · (v(S ∪ i) - v(S))``. It costs
    ``2^F · n_background`` model evaluations: for tests (16 features and a few background rows
    is about a second).

    Returns:
        ``(phi, base_value)`` with ``base_value = v(∅)``.
    """
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    background = np.asarray(background, dtype=np.float32)
    n = x.size
    bits = coalition_bits(n)
    inputs = np.where(bits[:, None, :], x, background[None, :, :])
    outputs = np.asarray(value_fn(inputs.reshape(-1, n)), dtype=np.float64)
    v = outputs.reshape(1 << n, background.shape[0]).mean(axis=1)
    sizes = bits.sum(axis=1)
    weights = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in range(n)])
    phi = np.zeros(n)
    for i in range(n):
        without = np.flatnonzero(~bits[:, i])
        phi[i] = np.sum(weights[sizes[without]] * (v[without | (1 << i)] - v[without]))
    return phi, float(v[0])
