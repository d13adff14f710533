"""The compiled tail of batch scoring: masked softmax, ε-mixing and the draw, one pass per row.

For a network policy, :class:`~rec_env.serve.scoring.Scorer` turns logits into decisions with
three definitions that live elsewhere, in this order:

1. the policy's probabilities, the masked softmax of
   :meth:`NumpyNetwork.probabilities <rec_env.agents.sb3.network.NumpyNetwork.probabilities>`;
2. the served probabilities, :meth:`Exploration.apply
   <rec_env.serve.exploration.Exploration.apply>` with ε-mixing;
3. the served action, :func:`~rec_env.serve.exploration.actions_for_uniforms`.

In numpy each is several passes over an ``(n, A)`` array; here they are one pass per customer,
in parallel, with the same float64 operations in the same order (numpy's pairwise sums
included), so the results are equal bit for bit on the tested machines and at worst differ by
rounding; ``tests/test_score.py`` checks them against the three definitions. Only ε-mixing
(with ε = 0 for none) is compiled; temperature exploration goes the numpy way.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["MAX_ACTIONS", "keyed_hashes", "softmax_explore_draw"]

MAX_ACTIONS = 128
"""Widest row compiled (numpy sums wider rows in blocks that are not reproduced here)."""


def softmax_explore_draw(
    logits: np.ndarray,
    masks: np.ndarray,
    epsilon: float,
    uniforms: np.ndarray,
    greedy: bool = False,
    out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decide from logits: the served probabilities, the actions and the policy's probability.

    Args:
        logits: ``(n, A)`` float32 logits (A ≤ :data:`MAX_ACTIONS`).
        masks: ``(n, A)`` bool, at least one allowed action per row.
        epsilon: ε of the mixing, in [0, 1] (0: serve the policy's probabilities).
        uniforms: ``(n,)`` numbers in [0, 1), one per row.
        greedy: Take the most probable served action instead of drawing.
        out: Arrays to write the three results into (C-contiguous, of their shapes and
            dtypes), instead of new ones.

    Returns:
        ``q`` ``(n, A)`` float64 served probabilities, ``actions`` ``(n,)`` intp and the
        policy's own probability of each chosen action ``(n,)`` float64.
    """
    n, n_actions = logits.shape
    if n_actions > MAX_ACTIONS:
        raise ValueError(f"at most {MAX_ACTIONS} actions are compiled, got {n_actions}")
    if out is None:
        served = np.empty((n, n_actions), dtype=np.float64)
        actions = np.empty(n, dtype=np.intp)
        chosen = np.empty(n, dtype=np.float64)
    else:
        served, actions, chosen = out
    _rows(
        np.ascontiguousarray(logits, dtype=np.float32),
        np.ascontiguousarray(masks, dtype=np.bool_),
        float(epsilon),
        np.ascontiguousarray(uniforms, dtype=np.float64),
        bool(greedy),
        served,
        actions,
        chosen,
    )
    return served, actions, chosen


@nb.njit(inline="always")
def _pairwise_sum(values: np.ndarray, n: int) -> float:  # pragma: no cover - compiled
    """The sum numpy takes of ``values[:n]`` for ``n`` ≤ 128: eight running sums, then the rest."""
    if n < 8:
        total = 0.0
        for i in range(n):
            total += values[i]
        return total
    r0, r1, r2, r3 = values[0], values[1], values[2], values[3]
    r4, r5, r6, r7 = values[4], values[5], values[6], values[7]
    i = 8
    while i < n - (n % 8):
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        total += values[i]
        i += 1
    return total


_BLOCK = 1024


@nb.njit(parallel=True, cache=True)
def _rows(  # pragma: no cover - compiled
    logits: np.ndarray,
    masks: np.ndarray,
    epsilon: float,
    uniforms: np.ndarray,
    greedy: bool,
    served: np.ndarray,
    actions: np.ndarray,
    chosen: np.ndarray,
) -> None:
    n, n_actions = logits.shape
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for block in nb.prange(n_blocks):
        p = np.empty(n_actions, dtype=np.float64)
        q = np.empty(n_actions, dtype=np.float64)
        allowed = np.empty(n_actions, dtype=np.float64)
        for i in range(block * _BLOCK, min(n, (block + 1) * _BLOCK)):
            # NumpyNetwork.probabilities: exp(logit - max over every logit) * mask, normalised
            top = np.float64(logits[i, 0])
            for j in range(1, n_actions):
                top = max(top, np.float64(logits[i, j]))
            for j in range(n_actions):
                allowed[j] = 1.0 if masks[i, j] else 0.0
                p[j] = np.exp(np.float64(logits[i, j]) - top) * allowed[j]
            total = _pairwise_sum(p, n_actions)
            for j in range(n_actions):
                p[j] = p[j] / total
            # Exploration.apply with ε-mixing: (1 - ε) p + ε / |M| on the allowed actions
            if epsilon > 0.0:
                count = _pairwise_sum(allowed, n_actions)
                for j in range(n_actions):
                    q[j] = (1.0 - epsilon) * (p[j] * allowed[j]) + epsilon * (allowed[j] / count)
            else:
                for j in range(n_actions):
                    q[j] = p[j] * allowed[j]
            total = _pairwise_sum(q, n_actions)
            for j in range(n_actions):
                q[j] = q[j] / total
                served[i, j] = q[j]
            if greedy:
                action = 0
                for j in range(1, n_actions):
                    if q[j] > q[action]:
                        action = j
            else:
                # actions_for_uniforms: actions whose cumulative sum stays at or below u * total
                cumulative = 0.0
                for j in range(n_actions):
                    cumulative += q[j]
                draw = uniforms[i] * cumulative
                action = 0
                cumulative = 0.0
                for j in range(n_actions):
                    cumulative += q[j]
                    if cumulative <= draw:
                        action += 1
                last = n_actions - 1
                while last > 0 and not q[last] > 0.0:
                    last -= 1
                action = min(action, last)
            actions[i] = action
            chosen[i] = p[action]


_FNV_PRIME = np.uint64(0x100000001B3)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def keyed_hashes(points: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``(k, n)`` uint64: FNV-1a over each row's code points from each start, then SplitMix64.

    The compiled form of :func:`rec_env.serve.scoring.id_hash` for ``k`` keys in one pass over
    the ids: ``points`` is the ``(n, width)`` uint32 code points of the ids (0 pads a shorter
    id), ``starts`` the ``(k,)`` FNV offsets, one per key.
    """
    out = np.empty((starts.shape[0], points.shape[0]), dtype=np.uint64)
    _hashes(np.ascontiguousarray(points, dtype=np.uint32), starts.astype(np.uint64), out)
    return out


@nb.njit(parallel=True, cache=True)
def _hashes(points: np.ndarray, starts: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    n, width = points.shape
    for i in nb.prange(n):
        for key in range(starts.shape[0]):
            h = starts[key]
            for j in range(width):
                c = np.uint64(points[i, j])
                if c > np.uint64(0):
                    h = (h ^ c) * _FNV_PRIME
            h = (h ^ (h >> np.uint64(30))) * _MIX_1
            h = (h ^ (h >> np.uint64(27))) * _MIX_2
            out[key, i] = h ^ (h >> np.uint64(31))
