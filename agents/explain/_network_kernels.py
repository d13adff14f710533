r"""Compiled kernel of the network engine for SB3's usual network: two ReLU layers, then linear.

:func:`row_values` computes the explained value of every coalition of one background row, tile by
tile, with both hidden layers folded (:mod:`~rec_env.agents.explain.tiles` describes the folding
in numpy for any network; this is the same arithmetic, fused, for ``relu → relu → linear``):

1. The first layer's pre-activations are subset sums (the low players' table is built once per
   row, the tile start adds the high players).
2. Per tile, a first-layer unit is *active* (≥ 0 for every coalition of the tile), *dead* (≤ 0)
   or *variable*; the active units' share of the second layer is a subset sum of projected
   steps.
3. The second layer's bounds come from the linear relaxation ``s z ≤ relu(z) ≤ s (z - l)`` of
   the variable units (``s = h / (h - l)``), whose linear part is exact over the tile. Its
   active units are folded into the output layer (``W₂ W₃``), its dead units dropped.
4. Per coalition only the variable units go through matrix products (BLAS, through numba's
   ``np.dot``); the work is counted (multiply-adds).

Inputs are float32 and C-contiguous; the values come out as float64.
"""

from __future__ import annotations

# numba's np.dot runs on scipy's BLAS: importing it here loads it before the explainer pins the
# thread pools (:mod:`~rec_env.agents.explain.threads`), so that the pinning covers it.
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401
from numba import njit

__all__ = ["row_values"]

_FAST = {"reassoc", "contract"}
"""Reassociation lets the small inner loops vectorise; no assumption on inf or NaN."""


@njit(cache=True, fastmath=_FAST)
def _doubling(start: np.ndarray, steps: np.ndarray, out: np.ndarray) -> None:
    """``out[t] = start + Σ_{j ∈ t} steps[j]`` for the ``2^len(steps)`` coalitions ``t``."""
    out[0, :] = start
    for j in range(steps.shape[0]):
        half = 1 << j
        for t in range(half):
            for c in range(out.shape[1]):
                out[half + t, c] = out[t, c] + steps[j, c]


@njit(cache=True, fastmath=_FAST)
def _project(vectors: np.ndarray, units: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``vectors[:, units] @ weights[units]`` as ``(len(vectors), weights.shape[1])`` float32."""
    out = np.zeros((vectors.shape[0], weights.shape[1]), dtype=np.float32)
    for i in range(vectors.shape[0]):
        for u in units:
            value = vectors[i, u]
            for c in range(weights.shape[1]):
                out[i, c] += value * weights[u, c]
    return out


@njit(cache=True, fastmath=_FAST)
def _split(lowest: np.ndarray, highest: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Active and variable units from their bounds (dead ones are in neither)."""
    active = np.flatnonzero(lowest >= margin)
    variable = np.flatnonzero((lowest < margin) & (highest > -margin))
    return active, variable


@njit(cache=True, fastmath=_FAST)
def _second_layer(
    tile_start: np.ndarray,
    low_steps: np.ndarray,
    low_min: np.ndarray,
    low_max: np.ndarray,
    w2: np.ndarray,
    b2: np.ndarray,
    margin: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps 2-3 of the module docstring for one tile.

    Returns:
        The first layer's variable units, the second layer's exact start and steps, and its
        active and variable units.
    """
    lowest = tile_start + low_min
    highest = tile_start + low_max
    active, variable = _split(lowest, highest, margin)
    start2 = _project(tile_start.reshape(1, -1), active, w2)[0] + b2
    steps2 = _project(low_steps, active, w2)
    # Linear relaxation of the variable units: relu(z) = s z + e, 0 ≤ e ≤ -s l.
    slope = np.zeros_like(tile_start)
    gap = np.zeros_like(tile_start)
    for u in variable:
        low = min(lowest[u], 0.0)
        high = max(highest[u], 0.0)
        if high > low:
            slope[u] = high / (high - low)
            gap[u] = -low * slope[u]
    relaxed = w2 * slope.reshape(-1, 1)
    centre = start2 + _project(tile_start.reshape(1, -1), variable, relaxed)[0]
    bound_steps = steps2 + _project(low_steps, variable, relaxed)
    lowest2 = centre.copy()
    highest2 = centre.copy()
    for j in range(bound_steps.shape[0]):
        for v in range(w2.shape[1]):
            step = bound_steps[j, v]
            if step < 0.0:
                lowest2[v] += step
            else:
                highest2[v] += step
    for u in variable:
        for v in range(w2.shape[1]):
            spread = w2[u, v] * gap[u]
            if spread < 0.0:
                lowest2[v] += spread
            else:
                highest2[v] += spread
    active2, variable2 = _split(lowest2, highest2, margin)
    return variable, start2, steps2, active2, variable2


@njit(cache=True, fastmath=_FAST)
def _tile_values(
    tile_start: np.ndarray,
    low_sums: np.ndarray,
    low_steps: np.ndarray,
    low_min: np.ndarray,
    low_max: np.ndarray,
    w2: np.ndarray,
    b2: np.ndarray,
    w3: np.ndarray,
    b3: np.ndarray,
    probability: bool,
    margin: float,
    values: np.ndarray,
) -> int:
    """The values of one tile into ``values`` (column 0 of ``w3`` is explained); the work."""
    variable, start2, steps2, active2, variable2 = _second_layer(
        tile_start, low_steps, low_min, low_max, w2, b2, margin
    )
    n_tile, n_out, n_var, n_var2 = low_sums.shape[0], w3.shape[1], variable.size, variable2.size
    width = n_var2 + n_out
    # Exact parts by subset sums: the variable second-layer units, then the outputs, side by side.
    start = np.empty(width, dtype=np.float32)
    steps = np.empty((low_steps.shape[0], width), dtype=np.float32)
    start[:n_var2] = start2[variable2]
    start[n_var2:] = _project(start2.reshape(1, -1), active2, w3)[0] + b3
    steps[:, :n_var2] = steps2[:, variable2]
    steps[:, n_var2:] = _project(steps2, active2, w3)
    hidden = np.empty((n_tile, width), dtype=np.float32)
    _doubling(start, steps, hidden)
    if n_var:  # the variable first-layer units, into both: W2 and the folded W2 W3
        through = np.empty((n_var, width), dtype=np.float32)
        for i in range(n_var):
            for i2 in range(n_var2):
                through[i, i2] = w2[variable[i], variable2[i2]]
        through[:, n_var2:] = _project(w2[variable], active2, w3)
        activations = np.empty((n_tile, n_var), dtype=np.float32)
        for t in range(n_tile):
            for i in range(n_var):
                activations[t, i] = max(tile_start[variable[i]] + low_sums[t, variable[i]], 0.0)
        hidden += np.dot(activations, through)
    outputs = np.ascontiguousarray(hidden[:, n_var2:])
    if n_var2:
        positive = np.maximum(np.ascontiguousarray(hidden[:, :n_var2]), np.float32(0.0))
        outputs += np.dot(positive, np.ascontiguousarray(w3[variable2]))
    for t in range(n_tile):
        if probability:  # P(a) = 1 / Σ_c exp(l_c - l_a), column 0 is a
            total = 0.0
            for c in range(n_out):
                total += np.exp(outputs[t, c] - outputs[t, 0])
            values[t] = 1.0 / total
        else:
            values[t] = outputs[t, 0]
    return n_tile * (n_var * width + n_var2 * n_out)


@njit(cache=True)
def row_values(
    start: np.ndarray,
    steps: np.ndarray,
    n_low: int,
    w2: np.ndarray,
    b2: np.ndarray,
    w3: np.ndarray,
    b3: np.ndarray,
    tile_columns: np.ndarray,
    n_columns: np.ndarray,
    probability: bool,
    margin: float,
) -> tuple[np.ndarray, int]:
    """The explained value of all ``2^k`` coalitions of one background row, and the work.

    Args:
        start: ``(h1,)`` the row's first-layer pre-activations.
        steps: ``(k, h1)`` the players' steps, the ``n_low`` tile players first.
        n_low: Players that vary within a tile.
        w2: ``(h1, h2)`` second layer weights.
        b2: ``(h2,)`` its bias.
        w3: ``(h2, n_outputs)`` output layer weights.
        b3: ``(n_outputs,)`` its bias.
        tile_columns: ``(n_tiles, n_outputs)`` output columns of each tile, the explained one
            first.
        n_columns: ``(n_tiles,)`` how many of them; 0: the value is 0 on the whole tile.
        probability: Explain ``1 / Σ_c exp(l_c - l_0)`` (else the output of column 0).
        margin: A unit is fixed only if its bound clears 0 by this much.
    """
    k, h1 = steps.shape
    size = 1 << n_low
    low_steps = np.ascontiguousarray(steps[:n_low])
    low_sums = np.empty((size, h1), dtype=np.float32)
    _doubling(np.zeros(h1, dtype=np.float32), low_steps, low_sums)
    low_min = np.zeros(h1, dtype=np.float32)
    low_max = np.zeros(h1, dtype=np.float32)
    for j in range(n_low):
        for u in range(h1):
            if low_steps[j, u] < 0.0:
                low_min[u] += low_steps[j, u]
            else:
                low_max[u] += low_steps[j, u]
    values = np.zeros(1 << k)
    work = 0
    tile_values = np.empty(size, dtype=np.float32)
    for h in range(1 << (k - n_low)):
        if n_columns[h] == 0:
            continue
        tile_start = start.copy()
        for j in range(k - n_low):
            if (h >> j) & 1:
                tile_start += steps[n_low + j]
        columns = tile_columns[h, : n_columns[h]]
        w3_tile = np.ascontiguousarray(w3[:, columns])
        work += _tile_values(
            tile_start, low_sums, low_steps, low_min, low_max, w2, b2, w3_tile,
            b3[columns], probability, margin, tile_values,
        )  # fmt: skip
        values[h * size : (h + 1) * size] = tile_values
    return values, work
