"""Compiled batch scoring: masks, network, masked softmax, ε-mixing and the draw in one pass.

For a network policy, :class:`~rec_env.serve.scoring.Scorer` turns features into decisions with
:func:`score_rows`, which fuses the masks and the network (see there) with three definitions
that live elsewhere, in this order:

1. the policy's probabilities, the masked softmax of
   :meth:`NumpyNetwork.probabilities <rec_env.agents.sb3.network.NumpyNetwork.probabilities>`;
2. the served probabilities, :meth:`Exploration.apply
   <rec_env.serve.exploration.Exploration.apply>` with ε-mixing;
3. the served action, :func:`~rec_env.serve.exploration.actions_for_uniforms`.

In numpy each is several passes over an ``(n, A)`` array; here they are one pass per customer
(:func:`softmax_explore_draw` alone, from logits, or all of scoring in :func:`score_rows`),
in parallel, with the same float64 operations in the same order (numpy's pairwise sums
included), so the results are equal bit for bit on the tested machines and at worst differ by
rounding; ``tests/test_score.py`` checks them against the three definitions. Only ε-mixing
(with ε = 0 for none) is compiled; temperature exploration goes the numpy way.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from rec_env.agents.sb3.mlp_kernel import CompiledLayers, forward

__all__ = ["MAX_ACTIONS", "draw_actions", "keyed_hashes", "score_rows", "softmax_explore_draw"]

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
        np.arange(n),
        np.ascontiguousarray(masks, dtype=np.bool_),
        float(epsilon),
        np.ascontiguousarray(uniforms, dtype=np.float64),
        bool(greedy),
        served,
        actions,
        chosen,
        np.empty(n),
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


@nb.njit(inline="always")
def _decide(  # pragma: no cover - compiled
    logits: np.ndarray,
    mask: np.ndarray,
    epsilon: float,
    uniform: float,
    greedy: bool,
    p: np.ndarray,
    allowed: np.ndarray,
    served: np.ndarray,
) -> tuple[int, float, float]:
    """One customer: writes ``served``; gives the action, its policy and served probability.

    ``p`` and ``allowed`` are scratch of the row's width.
    """
    n_actions = logits.shape[0]
    # NumpyNetwork.probabilities: exp(logit - max over every logit) * mask, normalised (a
    # masked action's exp(...) * 0 is 0, so its exp is not taken)
    top = np.float64(logits[0])
    for j in range(1, n_actions):
        top = max(top, np.float64(logits[j]))
    for j in range(n_actions):
        allowed[j] = 1.0 if mask[j] else 0.0
        p[j] = np.exp(np.float64(logits[j]) - top) if mask[j] else 0.0
    total = _pairwise_sum(p, n_actions)
    for j in range(n_actions):
        p[j] = p[j] / total
    # Exploration.apply with ε-mixing: (1 - ε) p + ε / |M| on the allowed actions
    q = served
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
        draw = uniform * cumulative
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
    return action, p[action], q[action]


@nb.njit(parallel=True, cache=True)
def _rows(  # pragma: no cover - compiled
    logits: np.ndarray,
    rows: np.ndarray,
    masks: np.ndarray,
    epsilon: float,
    uniforms: np.ndarray,
    greedy: bool,
    served: np.ndarray,
    actions: np.ndarray,
    chosen: np.ndarray,
    propensities: np.ndarray,
) -> None:
    """:func:`_decide` for customers ``rows[k]``, whose logits are ``logits[k]``."""
    n, n_actions = logits.shape
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for block in nb.prange(n_blocks):
        p = np.empty(n_actions, dtype=np.float64)
        allowed = np.empty(n_actions, dtype=np.float64)
        for k in range(block * _BLOCK, min(n, (block + 1) * _BLOCK)):
            i = rows[k]
            action, policy_p, served_p = _decide(
                logits[k], masks[i], epsilon, uniforms[i], greedy, p, allowed, served[i]
            )
            actions[i] = action
            chosen[i] = policy_p
            propensities[i] = served_p


def score_rows(
    obs: np.ndarray,
    scaling: tuple[np.ndarray, ...],
    layers: CompiledLayers,
    consent: tuple[np.ndarray, np.ndarray],
    rules: tuple[np.ndarray, ...],
    held: np.ndarray,
    draw: tuple[float, np.ndarray, bool, int],
    out: tuple[np.ndarray, ...],
) -> int:
    """Decide for a batch of customers in compiled passes, with little numpy in between.

    The steps of :meth:`Scorer.score <rec_env.serve.scoring.Scorer.score>`, each defined
    elsewhere and written here with the same operations in the same order:

    1. per customer, the bounds check of :func:`~rec_env.serve.scoring.check_features`, the
       consent masks (:func:`rec_env.features.consent_masks`), the mask rules and the codes of
       those that bound (:meth:`rec_env.rules.CompiledRules.masks_and_binding`) and the
       holdout; a customer left only ``no_action`` is decided here;
    2. for the others, the input scaling (:class:`rec_env.scaling.InputScaling`; its
       ``log1p`` taken by numpy, whose vectorised ``log1p`` rounds differently from the C
       library's), the network (:func:`rec_env.agents.sb3.mlp_kernel.forward`) and
       :func:`_decide`.

    Args:
        obs: ``(n, d)`` float64 features, C-contiguous.
        scaling: ``log_columns`` ``(k,)`` (the log-scaled features), ``log_column`` ``(d,)``
            (each feature's place among them, or -1), ``linear``, ``logarithmic`` (float32),
            ``low``, ``high`` (float64 bounds).
        layers: The network's compiled layers.
        consent: ``consent_columns`` ``(n_channels,)`` and each action's ``channel``.
        rules: :class:`~rec_env.rules.MaskProgram`'s arrays, then its suppression row as a
            ``(1,)`` array, then the ``(n,)`` suppressed flags.
        held: ``(n,)`` bool, the holdout.
        draw: ``epsilon``, ``(n,)`` uniforms, ``greedy`` and the ``no_action`` index.
        out: ``allowed`` ``(n, A)`` bool, ``served`` ``(n, A)`` float64, ``actions`` intp,
            the policy's and the served probability of each action (float64), the rule codes
            (uint64); C-contiguous.

    Returns:
        The first row (0-based) with a feature out of bounds or not finite, or ``n``.
    """
    n = obs.shape[0]
    allowed, served, actions, chosen, propensities, _ = out
    epsilon, uniforms, greedy, no_action = draw
    log_columns, log_column, linear, logarithmic, low, high = scaling
    first_bad = np.full((n + _BLOCK - 1) // _BLOCK, n, dtype=np.int64)
    open_rows = np.empty(n, dtype=np.bool_)
    _prepare(obs, (low, high), consent, rules, held, no_action, out, open_rows, first_bad)
    # Only customers with a choice are scaled and go through the network. (mlp_kernel's
    # forward runs between kernels of this file: a compiled call across files would keep a
    # stale numba cache when only the other file changes.)
    rows = np.flatnonzero(open_rows)
    logs = np.log1p(obs[np.ix_(rows, log_columns)].astype(np.float32).clip(min=0.0))
    scaled = np.empty((rows.size, obs.shape[1]), dtype=np.float32)
    _scale(obs, rows, logs, log_column, linear, logarithmic, scaled)
    logits = forward(layers, scaled)
    _rows(logits, rows, allowed, epsilon, uniforms, greedy, served, actions, chosen, propensities)
    return int(first_bad.min(initial=n))


@nb.njit(parallel=True, cache=True)
def _scale(  # pragma: no cover - compiled
    obs: np.ndarray,
    rows: np.ndarray,
    logs: np.ndarray,
    log_column: np.ndarray,
    linear: np.ndarray,
    logarithmic: np.ndarray,
    scaled: np.ndarray,
) -> None:
    """InputScaling of customers ``rows``: min(1, linear * x+ + logarithmic * log1p(x+))."""
    d = obs.shape[1]
    for k in nb.prange(rows.shape[0]):
        i = rows[k]
        for j in range(d):
            x = np.float32(obs[i, j])
            x = x if x > np.float32(0.0) else np.float32(0.0)
            lg = logs[k, log_column[j]] if log_column[j] >= 0 else np.float32(0.0)
            x = x * linear[j] + lg * logarithmic[j]
            scaled[k, j] = x if x < np.float32(1.0) else np.float32(1.0)


@nb.njit(inline="always")
def _holds(value: float, op: int, threshold: float) -> bool:  # pragma: no cover - compiled
    """``value op threshold`` for an operator code of :data:`rec_env.rules.CONDITION_OPS`."""
    if op == 0:
        return value < threshold
    if op == 1:
        return value <= threshold
    if op == 2:
        return value > threshold
    if op == 3:
        return value >= threshold
    if op == 4:
        return value == threshold
    return value != threshold


@nb.njit(inline="always")
def _masks(  # pragma: no cover - compiled
    features: np.ndarray,
    consent: tuple[np.ndarray, np.ndarray],
    rules: tuple[np.ndarray, ...],
    suppressed: bool,
    held: bool,
    no_action: int,
    consented: np.ndarray,
    blocked: np.ndarray,
    mask: np.ndarray,
) -> np.uint64:
    """One customer's mask (written to ``mask``) and the codes of the rules that bound."""
    consent_columns, channel = consent
    selections, condition_rule, condition_feature, condition_op, condition_value, special = rules
    for a in range(channel.shape[0]):
        c = channel[a]
        consented[a] = c >= consent_columns.shape[0] or features[consent_columns[c]] > 0.5
        mask[a] = consented[a]
    blocked[:] = True
    for c in range(condition_rule.shape[0]):
        if not _holds(features[condition_feature[c]], condition_op[c], condition_value[c]):
            blocked[condition_rule[c]] = False
    if special[0] >= 0:
        blocked[special[0]] = suppressed
    code = np.uint64(0)
    for r in range(selections.shape[0]):
        if blocked[r]:
            for a in range(channel.shape[0]):
                if selections[r, a]:
                    if consented[a]:  # binding: the rule removed a consented action
                        code |= np.uint64(1) << np.uint64(r)
                    mask[a] = False
    if held:
        mask[:] = False
    mask[no_action] = True
    return code


@nb.njit(parallel=True, cache=True)
def _prepare(  # pragma: no cover - compiled
    obs: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray],
    consent: tuple[np.ndarray, np.ndarray],
    rules: tuple[np.ndarray, ...],
    held: np.ndarray,
    no_action: int,
    out: tuple[np.ndarray, ...],
    open_rows: np.ndarray,
    first_bad: np.ndarray,
) -> None:
    """Check and mask each customer; decide at once for those left only ``no_action``."""
    n, d = obs.shape
    low, high = bounds
    allowed, served, actions, chosen, propensities, rule_codes = out
    suppressed = rules[6]
    mask_rules = rules[:6]
    for block in nb.prange(first_bad.shape[0]):
        consented = np.empty(allowed.shape[1], dtype=np.bool_)
        blocked = np.empty(mask_rules[0].shape[0], dtype=np.bool_)
        bad = n
        for i in range(block * _BLOCK, min(n, (block + 1) * _BLOCK)):
            inside = True
            for j in range(d):  # NaN fails both comparisons; ±inf fails one
                value = obs[i, j]
                inside &= (value >= low[j]) & (value <= high[j]) & (value - value == 0.0)
            if not inside and bad == n:
                bad = i
            rule_codes[i] = _masks(
                obs[i], consent, mask_rules, suppressed[i], held[i], no_action, consented,
                blocked, allowed[i],
            )  # fmt: skip
            open_rows[i] = False
            for a in range(allowed.shape[1]):
                if a != no_action and allowed[i, a]:
                    open_rows[i] = True
            if not open_rows[i]:
                # _decide with one allowed action: its softmax weight over itself is 1 (for
                # finite logits), so ε-mixing, the draw and the argmax all give no_action, 1
                served[i, :] = 0.0
                served[i, no_action] = 1.0
                actions[i] = no_action
                chosen[i] = 1.0
                propensities[i] = 1.0
        first_bad[block] = bad


def draw_actions(probabilities: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """:func:`~rec_env.serve.exploration.actions_for_uniforms`, compiled (the same sums)."""
    actions = np.empty(probabilities.shape[0], dtype=np.intp)
    _draws(
        np.ascontiguousarray(probabilities, dtype=np.float64),
        np.ascontiguousarray(uniforms, dtype=np.float64),
        actions,
    )
    return actions


@nb.njit(cache=True)
def _draws(
    probabilities: np.ndarray, uniforms: np.ndarray, actions: np.ndarray
) -> None:  # pragma: no cover
    n, n_actions = probabilities.shape
    for i in range(n):
        total = 0.0
        for j in range(n_actions):
            total += probabilities[i, j]
        draw = uniforms[i] * total
        action = 0
        cumulative = 0.0
        for j in range(n_actions):
            cumulative += probabilities[i, j]
            if cumulative <= draw:
                action += 1
        last = n_actions - 1  # the last positive one (the last one if none is)
        for j in range(n_actions - 1, -1, -1):
            if probabilities[i, j] > 0.0:
                last = j
                break
        actions[i] = min(action, last)


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
