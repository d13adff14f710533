"""The item world's dynamics and reward: batched kernels (numba) over products and slates.

A product message is a message like any other: consent, opens, fatigue, unsubscribes, churn,
the RFM update and discount habits go through the same formulas as the strategy world
(:func:`rec_env._kernels.lifecycle`, :func:`~rec_env._kernels.fatigue`,
:func:`~rec_env._kernels.organic_probability`). What is new is here, each formula once, shared
by the sampling kernel and the exact-expectation kernels:

* :func:`click_utility` and :func:`slate_click_probabilities`: which product of a slate, if
  any, an engaged customer clicks (multinomial logit with a no-click option, or a cascade);
* :func:`buy_probability`: whether the clicked product is bought;
* :func:`organic_category_weight`: which category an organic purchase falls in;
* the item state update: interest drift in :func:`item_step_kernel`; satiation, boredom and
  days per category in :func:`close_category_cycle`, :func:`record_shown` and
  :func:`record_category_purchase`, which the feature builder applies to real logs too
  (:func:`item_history_kernel`).

The item world's constants (``W_*``) are rows of one ``params`` array built by
:mod:`rec_env.item_dynamics`, which documents each formula; kernels take plain arrays and
draw nothing: the caller passes the uniforms.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from rec_env._kernels import (
    CLICK_CONVERSION,
    CONSENT0,
    CONTACTS_30D,
    DAYS_PER_YEAR,
    DISCOUNT_ELASTICITY,
    DISCOUNTS_90D,
    ENGAGEMENT,
    ENGAGEMENT_DECAY_DAYS,
    FATIGUE_SENSITIVITY,
    HABITUATION,
    N_CHANNELS,
    ORDER_VALUE,
    PURCHASE_RATE,
    REFERENCE_DISCOUNT,
    RESP0,
    REWARD_CONVERSION,
    fatigue,
    lifecycle,
    organic_probability,
    write_outcome,
)
from rec_env.dynamics import ITEM_OUTCOME_FIELDS

# Rows of the params array (names and defaults in rec_env.item_dynamics.ITEM_CONSTANTS).
W_CLICK_TASTE = 0
W_NO_CLICK = 1
W_POSITION = 2
W_NOVELTY = 3
W_BOREDOM = 4
W_BUY_SCALE = 5
W_BUY_TASTE = 6
W_SATIATION = 7
W_ORGANIC_TASTE = 8
W_DRIFT_CLICK = 9
W_DRIFT_BUY = 10
W_SATIATION_DAYS = 11
W_BOREDOM_DAYS = 12
N_PARAMS = 13

# Rows of the per-customer item parameters (``ihid``).
I_PRICE_SENSITIVITY = 0
I_NOVELTY = 1
N_ITEM_HIDDEN = 2

MAX_SATIATION = 20.0
MAX_BOREDOM = 50.0
MAX_CATEGORY_DAYS = 365.0
N_UNIFORMS = 9
"""Uniform rows per cycle: open, click, buy, visit, unsubscribe, churn, organic purchase,
organic category, organic product."""

_OUT = {name: row for row, name in enumerate(ITEM_OUTCOME_FIELDS)}
OUT_CLICKED = _OUT["clicked"]
OUT_CLICK_POSITION = _OUT["click_position"]
OUT_CLICKED_PRODUCT = _OUT["clicked_product"]
OUT_MESSAGE_PURCHASE = _OUT["message_purchase"]
OUT_ORGANIC_PURCHASE = _OUT["organic_purchase"]
OUT_ORGANIC_PRODUCT = _OUT["organic_product"]
N_ITEM_OUT = len(ITEM_OUTCOME_FIELDS)


# ---------------------------------------------------------------------- formulas
@njit(cache=True, inline="always")
def affinity(taste: np.ndarray, i: int, topics: np.ndarray, j: int) -> float:
    """Cosine of customer ``i``'s taste and product ``j``'s topics (unit vectors): in [0, 1]."""
    s = 0.0
    for t in range(topics.shape[1]):
        s += taste[t, i] * topics[j, t]
    return s


@njit(cache=True, inline="always")
def click_utility(
    params: np.ndarray, fit: float, novelty: float, is_new: float, boredom: float
) -> float:
    """Click utility: ``w_taste·fit + w_novelty·novelty·new − w_boredom·boredom``."""
    return (
        params[W_CLICK_TASTE] * fit
        + params[W_NOVELTY] * novelty * is_new
        - params[W_BOREDOM] * boredom
    )


@njit(cache=True, inline="always")
def buy_probability(
    params: np.ndarray,
    hid: np.ndarray,
    ihid: np.ndarray,
    i: int,
    fit: float,
    price: float,
    satiation: float,
    discount: float,
) -> float:
    """P(buy | clicked): conversion × taste × price fit × satiation × the offer's lift.

    ``min(1, w_buy · click_conversion · exp(w_buy_taste · (fit − 1)) · exp(−price_sensitivity ·
    max(0, ln(price · (1 − discount) / order_value))) · exp(−w_satiation · satiation) ·
    (1 + discount_elasticity · discount / 0.15))``.
    """
    paid = price * (1.0 - discount)
    over = max(math.log(paid / hid[ORDER_VALUE, i]), 0.0)
    p = (
        params[W_BUY_SCALE]
        * hid[CLICK_CONVERSION, i]
        * math.exp(params[W_BUY_TASTE] * (fit - 1.0))
        * math.exp(-ihid[I_PRICE_SENSITIVITY, i] * over)
        * math.exp(-params[W_SATIATION] * satiation)
        * (1.0 + hid[DISCOUNT_ELASTICITY, i] * discount / REFERENCE_DISCOUNT)
    )
    return min(p, 1.0)


@njit(cache=True, inline="always")
def slate_click_probabilities(
    params: np.ndarray, utilities: np.ndarray, k: int, choice: int, out: np.ndarray
) -> None:
    """P(click position m) for the first ``k`` utilities of a slate, into ``out[:k]``.

    ``choice`` 0 (multinomial logit): ``exp(v_m − w_position·m) / (exp(w_no_click) +
    Σ exp(v_l − w_position·l))``. ``choice`` 1 (cascade): the customer scans in order and clicks
    position ``m`` with ``α_m = exp(−w_position·m) · σ(v_m − w_no_click)`` if no earlier one was
    clicked, so ``P(m) = α_m · Π_{l<m} (1 − α_l)``.
    """
    if choice == 0:
        total = math.exp(params[W_NO_CLICK])
        for m in range(k):
            out[m] = math.exp(utilities[m] - params[W_POSITION] * m)
            total += out[m]
        for m in range(k):
            out[m] /= total
    else:
        reach = 1.0
        for m in range(k):
            alpha = math.exp(-params[W_POSITION] * m) / (
                1.0 + math.exp(params[W_NO_CLICK] - utilities[m])
            )
            out[m] = reach * alpha
            reach *= 1.0 - alpha


@njit(cache=True, inline="always")
def organic_category_weight(
    params: np.ndarray, fit: float, satiation: float, log_share: float
) -> float:
    """Unnormalised P(organic purchase falls in a category): popularity × taste × satiation."""
    return math.exp(log_share + params[W_ORGANIC_TASTE] * fit - params[W_SATIATION] * satiation)


@njit(cache=True, inline="always")
def _organic_state(
    params: np.ndarray,
    taste: np.ndarray,
    obs: np.ndarray,
    i: int,
    cat_topics: np.ndarray,
    cat_log_share: np.ndarray,
    sat0: int,
    weights: np.ndarray,
) -> float:
    """Fill ``weights`` with the organic category weights of customer ``i``; return their sum."""
    total = 0.0
    for c in range(cat_topics.shape[0]):
        weights[c] = organic_category_weight(
            params, affinity(taste, i, cat_topics, c), obs[sat0 + c, i], cat_log_share[c]
        )
        total += weights[c]
    return total


@njit(cache=True, inline="always")
def _find(cumulative: np.ndarray, start: int, stop: int, u: float) -> int:
    """First index in ``[start, stop)`` whose cumulative weight exceeds ``u`` (binary search)."""
    lo, hi = start, stop - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cumulative[mid] > u:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True, inline="always")
def _in_stock(slates: np.ndarray, i: int, available: np.ndarray, shown: np.ndarray) -> int:
    """Copy row ``i`` of ``slates`` into ``shown`` without products out of stock (-1 padded).

    Returns:
        The number of products left.
    """
    k = 0
    for m in range(slates.shape[1]):
        j = slates[i, m]
        if j < 0:
            break
        if available[j]:
            shown[i, k] = j
            k += 1
    for m in range(k, slates.shape[1]):
        shown[i, m] = -1
    return k


@njit(cache=True, inline="always")
def _filter_row(slate: np.ndarray, available: np.ndarray, out: np.ndarray) -> int:
    """``slate`` without products out of stock, into ``out`` (-1 padded); returns its length."""
    k = 0
    for m in range(slate.shape[0]):
        j = slate[m]
        if j < 0:
            break
        if available[j]:
            out[k] = j
            k += 1
    for m in range(k, out.shape[0]):
        out[m] = -1
    return k


@njit(cache=True, inline="always")
def _drift(taste: np.ndarray, i: int, topics: np.ndarray, j: int, rate: float) -> None:
    """Interest drift: ``taste ← normalise(taste + rate · topics_j)``."""
    norm = 0.0
    for t in range(taste.shape[0]):
        taste[t, i] += rate * topics[j, t]
        norm += taste[t, i] * taste[t, i]
    norm = math.sqrt(norm)
    for t in range(taste.shape[0]):
        taste[t, i] /= norm


@njit(cache=True, inline="always")
def _expected_message(
    params: np.ndarray,
    hid: np.ndarray,
    ihid: np.ndarray,
    taste: np.ndarray,
    obs: np.ndarray,
    i: int,
    slate: np.ndarray,
    k: int,
    discount: float,
    price: np.ndarray,
    margin: np.ndarray,
    category: np.ndarray,
    topics: np.ndarray,
    is_new: np.ndarray,
    sat0: int,
    bore0: int,
    choice: int,
    utilities: np.ndarray,
    probs: np.ndarray,
) -> tuple[float, float]:
    """Given an engaged customer: (P(message purchase), E[message profit]) of a slate."""
    for m in range(k):
        j = slate[m]
        fit = affinity(taste, i, topics, j)
        utilities[m] = click_utility(
            params, fit, ihid[I_NOVELTY, i], 1.0 if is_new[j] else 0.0, obs[bore0 + category[j], i]
        )
    slate_click_probabilities(params, utilities, k, choice, probs)
    p_buy, value = 0.0, 0.0
    for m in range(k):
        j = slate[m]
        fit = affinity(taste, i, topics, j)
        b = buy_probability(
            params, hid, ihid, i, fit, price[j], obs[sat0 + category[j], i], discount
        )
        p_buy += probs[m] * b
        value += probs[m] * b * price[j] * (margin[j] - discount)
    return p_buy, value


# ------------------------------------------------------- the per-category features
# How ``purchases_<c>``, ``recommended_<c>`` and ``days_since_<c>`` move, written once: the
# simulator's step (:func:`item_step_kernel`) and the feature builder from real logs
# (:func:`item_history_kernel`, ``recenv features --products``) both call these. Rows
# ``sat0 … sat0 + 3C`` of ``obs`` hold the three kinds, all categories of one kind together.
@njit(cache=True, inline="always")
def close_category_cycle(
    obs: np.ndarray,
    i: int,
    sat0: int,
    n_cat: int,
    decay_satiation: float,
    decay_boredom: float,
    days: float,
) -> None:
    """One cycle passes for customer ``i``: satiation and boredom decay, day counts grow.

    Args:
        obs: ``(F, n)`` features, updated in place.
        i: The customer's column.
        sat0: Row of ``purchases_<first category>``.
        n_cat: Categories.
        decay_satiation: ``exp(-days / satiation_days)``.
        decay_boredom: ``exp(-days / boredom_days)``.
        days: Length of the cycle in days (``days_since_<c>`` is capped at 365).
    """
    bore0 = sat0 + n_cat
    days0 = sat0 + 2 * n_cat
    for c in range(n_cat):
        obs[sat0 + c, i] *= decay_satiation
        obs[bore0 + c, i] *= decay_boredom
        obs[days0 + c, i] = min(obs[days0 + c, i] + days, MAX_CATEGORY_DAYS)


@njit(cache=True, inline="always")
def record_shown(obs: np.ndarray, i: int, bore0: int, c: int) -> None:
    """A product of category ``c`` shown in a delivered message: ``recommended_<c>`` + 1."""
    obs[bore0 + c, i] = min(obs[bore0 + c, i] + 1.0, MAX_BOREDOM)


@njit(cache=True, inline="always")
def record_category_purchase(obs: np.ndarray, i: int, sat0: int, days0: int, c: int) -> None:
    """A product of category ``c`` bought: ``purchases_<c>`` + 1, ``days_since_<c>`` 0."""
    obs[sat0 + c, i] = min(obs[sat0 + c, i] + 1.0, MAX_SATIATION)
    obs[days0 + c, i] = 0.0


# ---------------------------------------------------------------------- kernels
@njit(cache=True, error_model="numpy")
def item_step_kernel(
    obs: np.ndarray,
    hid: np.ndarray,
    ihid: np.ndarray,
    taste: np.ndarray,
    contact_history: np.ndarray,
    discount_history: np.ndarray,
    recent: np.ndarray,
    cursor: int,
    shown: np.ndarray,
    slates: np.ndarray,
    channels: np.ndarray,
    discounts: np.ndarray,
    channel_cost: np.ndarray,
    price: np.ndarray,
    margin: np.ndarray,
    category: np.ndarray,
    topics: np.ndarray,
    is_new: np.ndarray,
    available: np.ndarray,
    cat_topics: np.ndarray,
    cat_log_share: np.ndarray,
    cat_start: np.ndarray,
    cat_order: np.ndarray,
    cat_cumulative: np.ndarray,
    params: np.ndarray,
    sat0: int,
    tolerance: float,
    days: float,
    reward_mode: int,
    choice: int,
    uniforms: np.ndarray,
    out: np.ndarray,
) -> None:
    """Advance every customer one cycle under a slate message each (``-1`` pads a slate).

    ``slates`` is ``(n, K)`` product indices, ``channels`` ``(n,)`` channel indices
    (``N_CHANNELS``: no message) and ``discounts`` ``(n,)`` the offer on the slate's products.
    ``obs`` rows ``sat0 … sat0 + 3C`` hold satiation, boredom and days since the last purchase
    per category; ``recent`` ``(K, n)`` the products of the last delivered message (-1: none).
    Products out of stock (``available``) are left out of a slate (``shown`` ``(n, K)``
    receives the slate actually shown); a message with none left is not sent.
    """
    n_cat = cat_topics.shape[0]
    bore0 = sat0 + n_cat
    days0 = sat0 + 2 * n_cat
    years = days / DAYS_PER_YEAR
    slot_c = cursor % contact_history.shape[0]
    slot_d = cursor % discount_history.shape[0]
    decay_engagement = math.exp(-days / ENGAGEMENT_DECAY_DAYS)
    decay_frequency = math.exp(-days / DAYS_PER_YEAR)
    decay_satiation = math.exp(-days / params[W_SATIATION_DAYS])
    decay_boredom = math.exp(-days / params[W_BOREDOM_DAYS])
    k_max = slates.shape[1]
    utilities = np.empty(k_max)
    probs = np.empty(k_max)
    weights = np.empty(n_cat)
    for i in range(obs.shape[1]):
        channel = channels[i]
        k = _in_stock(slates, i, available, shown)
        delivered = 0.0
        if channel < N_CHANNELS and k > 0 and obs[CONSENT0 + channel, i] > 0.5:
            delivered = 1.0
        discount = discounts[i] * delivered
        discounted = 1.0 if discount > 0.0 else 0.0
        engagement = obs[ENGAGEMENT, i]
        fat = fatigue(hid[FATIGUE_SENSITIVITY, i], obs[CONTACTS_30D, i])

        # 1-3: opens, the click (at most one product) and its purchase
        p_open = hid[RESP0 + channel, i] * fat if delivered > 0.0 else 0.0
        opened = 1.0 if uniforms[0, i] < p_open else 0.0
        clicked, position, product, bought = 0.0, -1, -1, 0.0
        if opened > 0.0:
            for m in range(k):
                j = shown[i, m]
                utilities[m] = click_utility(
                    params,
                    affinity(taste, i, topics, j),
                    ihid[I_NOVELTY, i],
                    1.0 if is_new[j] else 0.0,
                    obs[bore0 + category[j], i],
                )
            slate_click_probabilities(params, utilities, k, choice, probs)
            cumulative = 0.0
            for m in range(k):
                cumulative += probs[m]
                if uniforms[1, i] < cumulative:
                    position = m
                    break
            if position >= 0:
                clicked = 1.0
                product = shown[i, position]
                fit = affinity(taste, i, topics, product)
                p_buy = buy_probability(
                    params,
                    hid,
                    ihid,
                    i,
                    fit,
                    price[product],
                    obs[sat0 + category[product], i],
                    discount,
                )
                bought = 1.0 if uniforms[2, i] < p_buy else 0.0

        # organic purchase: a category by taste and satiation, a product by popularity
        p_org = organic_probability(
            hid[PURCHASE_RATE, i],
            engagement,
            hid[HABITUATION, i],
            obs[DISCOUNTS_90D, i],
            0.0,
            years,
        )
        organic, organic_product = 0.0, -1
        if uniforms[6, i] < p_org:
            organic = 1.0
            total = _organic_state(params, taste, obs, i, cat_topics, cat_log_share, sat0, weights)
            u = uniforms[7, i] * total
            c = n_cat - 1
            running = 0.0
            for cc in range(n_cat):
                running += weights[cc]
                if u < running:
                    c = cc
                    break
            organic_product = cat_order[
                _find(cat_cumulative, cat_start[c], cat_start[c + 1], uniforms[8, i])
            ]

        # 4: money
        revenue, profit, discount_cost, value = 0.0, 0.0, 0.0, 0.0
        if bought > 0.0:
            revenue += price[product] * (1.0 - discount)
            discount_cost = price[product] * discount
            profit += price[product] * (margin[product] - discount)
            value += price[product]  # monetary_value follows list value, as in the strategy world
        if organic > 0.0:
            revenue += price[organic_product]
            profit += price[organic_product] * margin[organic_product]
            value += price[organic_product]
        contact_cost = delivered * channel_cost[channel]
        profit -= contact_cost
        purchased = 1.0 if bought > 0.0 or organic > 0.0 else 0.0
        reward = purchased if reward_mode == REWARD_CONVERSION else profit

        # 5-8: the lifecycle shared with the strategy world
        unsubscribed, churned, visited = lifecycle(
            obs,
            hid,
            contact_history,
            discount_history,
            slot_c,
            slot_d,
            i,
            channel,
            delivered,
            discounted,
            opened,
            purchased,
            value,
            tolerance,
            days,
            decay_engagement,
            decay_frequency,
            uniforms[4, i],
            uniforms[5, i],
            uniforms[3, i],
        )

        # item state: satiation and boredom decay, then this cycle's purchases and messages
        close_category_cycle(obs, i, sat0, n_cat, decay_satiation, decay_boredom, days)
        if delivered > 0.0:
            for m in range(k_max):
                recent[m, i] = shown[i, m]
                if m < k:
                    record_shown(obs, i, bore0, category[shown[i, m]])
        if clicked > 0.0:
            _drift(taste, i, topics, product, params[W_DRIFT_CLICK])
        for bought_product in (product if bought > 0.0 else -1, organic_product):
            if bought_product >= 0:
                record_category_purchase(obs, i, sat0, days0, category[bought_product])
                _drift(taste, i, topics, bought_product, params[W_DRIFT_BUY])

        write_outcome(
            out,
            i,
            reward,
            churned,
            delivered,
            opened,
            purchased,
            revenue,
            discount_cost,
            0.0,
            contact_cost,
            unsubscribed,
            profit,
            visited,
            purchased,
        )
        out[OUT_CLICKED, i] = clicked
        out[OUT_CLICK_POSITION, i] = position
        out[OUT_CLICKED_PRODUCT, i] = product
        out[OUT_MESSAGE_PURCHASE, i] = bought
        out[OUT_ORGANIC_PURCHASE, i] = organic
        out[OUT_ORGANIC_PRODUCT, i] = organic_product


@njit(cache=True, error_model="numpy")
def item_history_kernel(
    obs: np.ndarray,
    sat0: int,
    start_cycle: np.ndarray,
    n_cycles: int,
    bought_ptr: np.ndarray,
    bought_cycle: np.ndarray,
    bought_category: np.ndarray,
    shown_ptr: np.ndarray,
    shown_cycle: np.ndarray,
    shown_category: np.ndarray,
    decay_satiation: float,
    decay_boredom: float,
    days: float,
) -> None:
    """The per-category features at the end of cycle ``n_cycles - 1`` from customers' events.

    The feature builder's item part: customer ``i`` starts from ``obs[sat0:, i]`` (no history:
    0, 0 and 365) at cycle ``start_cycle[i]`` and every cycle applies what
    :func:`item_step_kernel` applies, in its order (:func:`close_category_cycle`, then
    :func:`record_shown` per product shown in a delivered message, then
    :func:`record_category_purchase` per product bought). Events are sorted by customer and
    time, one per product: customer ``i``'s purchases are ``bought_ptr[i]:bought_ptr[i + 1]``
    (likewise the products shown), each with its cycle and its product's category.
    """
    n_cat = (obs.shape[0] - sat0) // 3
    bore0 = sat0 + n_cat
    days0 = sat0 + 2 * n_cat
    for i in range(obs.shape[1]):
        b, b_end = bought_ptr[i], bought_ptr[i + 1]
        s, s_end = shown_ptr[i], shown_ptr[i + 1]
        for c in range(start_cycle[i], n_cycles):
            close_category_cycle(obs, i, sat0, n_cat, decay_satiation, decay_boredom, days)
            while s < s_end and shown_cycle[s] == c:
                record_shown(obs, i, bore0, shown_category[s])
                s += 1
            while b < b_end and bought_cycle[b] == c:
                record_category_purchase(obs, i, sat0, days0, bought_category[b])
                b += 1


@njit(cache=True, inline="always")
def _organic_expectation(
    params: np.ndarray,
    hid: np.ndarray,
    taste: np.ndarray,
    obs: np.ndarray,
    i: int,
    cat_topics: np.ndarray,
    cat_log_share: np.ndarray,
    cat_profit: np.ndarray,
    sat0: int,
    years: float,
    weights: np.ndarray,
) -> tuple[float, float]:
    """(P(organic purchase), E[organic profit]) of customer ``i`` in one cycle."""
    p_org = organic_probability(
        hid[PURCHASE_RATE, i],
        obs[ENGAGEMENT, i],
        hid[HABITUATION, i],
        obs[DISCOUNTS_90D, i],
        0.0,
        years,
    )
    total = _organic_state(params, taste, obs, i, cat_topics, cat_log_share, sat0, weights)
    profit = 0.0
    for c in range(cat_topics.shape[0]):
        profit += weights[c] / total * cat_profit[c]
    return p_org, p_org * profit


@njit(cache=True, inline="always")
def _reward_of(
    reward_mode: int,
    p_org: float,
    organic: float,
    p_open: float,
    p_msg: float,
    value: float,
    cost: float,
) -> float:
    """A cycle's expected reward from its organic and message parts (independent events)."""
    if reward_mode == REWARD_CONVERSION:
        return 1.0 - (1.0 - p_org) * (1.0 - p_open * p_msg)
    return organic + p_open * value - cost


@njit(cache=True, inline="always")
def _expected_reward(
    params: np.ndarray,
    hid: np.ndarray,
    ihid: np.ndarray,
    taste: np.ndarray,
    obs: np.ndarray,
    i: int,
    slate: np.ndarray,
    channel: int,
    discount: float,
    channel_cost: np.ndarray,
    price: np.ndarray,
    margin: np.ndarray,
    category: np.ndarray,
    topics: np.ndarray,
    is_new: np.ndarray,
    available: np.ndarray,
    sat0: int,
    reward_mode: int,
    choice: int,
    p_org: float,
    organic: float,
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> float:
    """Customer ``i``'s exact expected reward of one message (``slate``, ``channel``, offer).

    Products out of stock are left out of the slate, as :func:`item_step_kernel` does; an
    empty slate, ``channel == N_CHANNELS`` or a channel without consent sends nothing.
    ``p_org`` and ``organic`` are :func:`_organic_expectation`'s; ``scratch`` holds three
    work rows of the slate's length (the shown slate, click utilities, click probabilities).
    """
    row, utilities, probs = scratch
    k = _filter_row(slate, available, row)
    p_open, p_msg, value, cost = 0.0, 0.0, 0.0, 0.0
    if channel < N_CHANNELS and k > 0 and obs[CONSENT0 + channel, i] > 0.5:
        p_open = hid[RESP0 + channel, i] * fatigue(
            hid[FATIGUE_SENSITIVITY, i], obs[CONTACTS_30D, i]
        )
        cost = channel_cost[channel]
        n_cat = (obs.shape[0] - sat0) // 3
        p_msg, value = _expected_message(
            params, hid, ihid, taste, obs, i, row, k, discount, price, margin, category,
            topics, is_new, sat0, sat0 + n_cat, choice, utilities, probs,
        )  # fmt: skip
    return _reward_of(reward_mode, p_org, organic, p_open, p_msg, value, cost)


@njit(cache=True, error_model="numpy")
def item_expected_kernel(
    obs: np.ndarray,
    hid: np.ndarray,
    ihid: np.ndarray,
    taste: np.ndarray,
    slates: np.ndarray,
    channels: np.ndarray,
    discounts: np.ndarray,
    channel_cost: np.ndarray,
    price: np.ndarray,
    margin: np.ndarray,
    category: np.ndarray,
    topics: np.ndarray,
    is_new: np.ndarray,
    available: np.ndarray,
    cat_topics: np.ndarray,
    cat_log_share: np.ndarray,
    cat_profit: np.ndarray,
    params: np.ndarray,
    sat0: int,
    years: float,
    reward_mode: int,
    choice: int,
    shared: bool,
    out: np.ndarray,
) -> None:
    """Exact expected reward of messages (:func:`_expected_reward`).

    With ``shared``, the same ``S`` candidates are scored for every customer: ``out[i, s]`` is
    customer ``i``'s for ``slates[s]`` ``(S, K)``, ``channels[s]`` and ``discounts[s]``. Without,
    each customer's own message is: ``slates[i]``, ``channels[i]``, ``discounts[i]`` into
    ``out[i, 0]``. ``-1`` pads a slate.
    """
    k_max = slates.shape[1]
    scratch = (np.empty(k_max, dtype=np.intp), np.empty(k_max), np.empty(k_max))
    weights = np.empty(cat_topics.shape[0])
    for i in range(obs.shape[1]):
        p_org, organic = _organic_expectation(
            params, hid, taste, obs, i, cat_topics, cat_log_share, cat_profit, sat0, years,
            weights,
        )  # fmt: skip
        for col in range(out.shape[1]):
            s = col if shared else i
            out[i, col] = _expected_reward(
                params, hid, ihid, taste, obs, i, slates[s], channels[s], discounts[s],
                channel_cost, price, margin, category, topics, is_new, available, sat0,
                reward_mode, choice, p_org, organic, scratch,
            )  # fmt: skip


@njit(cache=True, error_model="numpy")
def utility_kernel(
    obs: np.ndarray,
    hid: np.ndarray,
    ihid: np.ndarray,
    taste: np.ndarray,
    price: np.ndarray,
    margin: np.ndarray,
    category: np.ndarray,
    topics: np.ndarray,
    is_new: np.ndarray,
    params: np.ndarray,
    sat0: int,
    out: np.ndarray,
) -> None:
    """``out[i, j]``: expected profit of product ``j`` to engaged customer ``i`` shown alone.

    ``P(click j | shown alone) · P(buy j | click) · price_j · margin_j``: the customer's true
    utility ranking of the catalog, which the ranking metrics judge recommendations against.
    """
    n_cat = (obs.shape[0] - sat0) // 3
    bore0 = sat0 + n_cat
    no_click = math.exp(params[W_NO_CLICK])
    for i in range(obs.shape[1]):
        for j in range(price.shape[0]):
            fit = affinity(taste, i, topics, j)
            v = math.exp(
                click_utility(
                    params,
                    fit,
                    ihid[I_NOVELTY, i],
                    1.0 if is_new[j] else 0.0,
                    obs[bore0 + category[j], i],
                )
            )
            b = buy_probability(
                params, hid, ihid, i, fit, price[j], obs[sat0 + category[j], i], 0.0
            )
            out[i, j] = v / (no_click + v) * b * price[j] * margin[j]


@njit(cache=True, error_model="numpy")
def greedy_slate_kernel(
    obs: np.ndarray,
    hid: np.ndarray,
    ihid: np.ndarray,
    taste: np.ndarray,
    allowed: np.ndarray,
    discount: float,
    channel_cost: np.ndarray,
    price: np.ndarray,
    margin: np.ndarray,
    category: np.ndarray,
    topics: np.ndarray,
    is_new: np.ndarray,
    params: np.ndarray,
    sat0: int,
    reward_mode: int,
    choice: int,
    slates: np.ndarray,
    channels: np.ndarray,
    values: np.ndarray,
) -> None:
    """The myopic oracle's slate: greedy top-K by the exact expected value of the slate.

    For each consented channel, positions are filled one at a time with the allowed product
    (``allowed`` ``(n, P)``) that maximises the expected message value (profit or purchase
    probability) of the slate so far; the channel with the best value net of its cost wins, and
    no message when none is positive. Writes ``slates`` ``(n, K)``, ``channels`` ``(n,)`` and
    the expected message value net of cost, ``values`` ``(n,)`` (organic purchases excluded:
    no message changes them).
    """
    n_cat = (obs.shape[0] - sat0) // 3
    bore0 = sat0 + n_cat
    k_max = slates.shape[1]
    n_products = price.shape[0]
    utilities = np.empty(k_max)
    probs = np.empty(k_max)
    current = np.empty(k_max, dtype=np.intp)
    best_slate = np.empty(k_max, dtype=np.intp)
    for i in range(obs.shape[1]):
        fat = fatigue(hid[FATIGUE_SENSITIVITY, i], obs[CONTACTS_30D, i])
        best_value, best_channel = 0.0, N_CHANNELS
        for m in range(k_max):
            best_slate[m] = -1
        for channel in range(N_CHANNELS):
            if obs[CONSENT0 + channel, i] <= 0.5:
                continue
            p_open = hid[RESP0 + channel, i] * fat
            k, value = 0, 0.0
            for _ in range(k_max):
                pick, pick_value = -1, -np.inf
                for j in range(n_products):
                    if not allowed[i, j]:
                        continue
                    taken = False
                    for q in range(k):
                        if current[q] == j:
                            taken = True
                    if taken:
                        continue
                    current[k] = j
                    p_msg, v = _expected_message(
                        params,
                        hid,
                        ihid,
                        taste,
                        obs,
                        i,
                        current,
                        k + 1,
                        discount,
                        price,
                        margin,
                        category,
                        topics,
                        is_new,
                        sat0,
                        bore0,
                        choice,
                        utilities,
                        probs,
                    )
                    score = p_msg if reward_mode == REWARD_CONVERSION else v
                    if score > pick_value:
                        pick, pick_value = j, score
                if pick < 0:
                    break
                current[k] = pick
                k += 1
                value = pick_value
            net = p_open * value
            if reward_mode != REWARD_CONVERSION:
                net -= channel_cost[channel]
            if k > 0 and net > best_value:
                best_value, best_channel = net, channel
                for m in range(k_max):
                    best_slate[m] = current[m] if m < k else -1
        channels[i] = best_channel
        values[i] = best_value
        for m in range(k_max):
            slates[i, m] = best_slate[m] if best_channel < N_CHANNELS else -1


@njit(cache=True, error_model="numpy")
def action_expected_kernel(
    obs: np.ndarray,
    hid: np.ndarray,
    ihid: np.ndarray,
    taste: np.ndarray,
    product: np.ndarray,
    channel_of: np.ndarray,
    offer_of: np.ndarray,
    offers: np.ndarray,
    channel_cost: np.ndarray,
    price: np.ndarray,
    margin: np.ndarray,
    category: np.ndarray,
    topics: np.ndarray,
    is_new: np.ndarray,
    available: np.ndarray,
    cat_topics: np.ndarray,
    cat_log_share: np.ndarray,
    cat_profit: np.ndarray,
    params: np.ndarray,
    sat0: int,
    years: float,
    reward_mode: int,
    choice: int,
    out: np.ndarray,
) -> None:
    """:func:`item_expected_kernel` for the single-product action table, ``out`` ``(n, A)``.

    The same expectation, with each (product, offer) message evaluated once per customer and
    shared by its channels.
    """
    n_cat = cat_topics.shape[0]
    bore0 = sat0 + n_cat
    n_products, n_offers = price.shape[0], offers.shape[0]
    utilities = np.empty(1)
    probs = np.empty(1)
    weights = np.empty(n_cat)
    slate = np.empty(1, dtype=np.intp)
    p_msg = np.empty((n_products, n_offers))
    value = np.empty((n_products, n_offers))
    for i in range(obs.shape[1]):
        p_org, organic = _organic_expectation(
            params, hid, taste, obs, i, cat_topics, cat_log_share, cat_profit, sat0, years,
            weights,
        )  # fmt: skip
        fat = fatigue(hid[FATIGUE_SENSITIVITY, i], obs[CONTACTS_30D, i])
        for j in range(n_products):
            slate[0] = j
            for o in range(n_offers):
                p_msg[j, o], value[j, o] = _expected_message(
                    params, hid, ihid, taste, obs, i, slate, 1, offers[o], price, margin,
                    category, topics, is_new, sat0, bore0, choice, utilities, probs,
                )  # fmt: skip
        for a in range(product.shape[0]):
            channel = channel_of[a]
            p_open, p, v, cost = 0.0, 0.0, 0.0, 0.0
            sent = product[a] >= 0 and channel < N_CHANNELS and obs[CONSENT0 + channel, i] > 0.5
            if sent and available[product[a]]:
                p_open = hid[RESP0 + channel, i] * fat
                cost = channel_cost[channel]
                p, v = p_msg[product[a], offer_of[a]], value[product[a], offer_of[a]]
            out[i, a] = _reward_of(reward_mode, p_org, organic, p_open, p, v, cost)


@njit(cache=True, error_model="numpy")
def slate_decode_kernel(
    weights: np.ndarray,
    embeddings: np.ndarray,
    available: np.ndarray,
    recent: np.ndarray,
    slates: np.ndarray,
) -> None:
    """Top-K products by ``embeddings · weights[i]``, best first, into ``slates`` ``(n, K)``.

    Products out of stock (``available``) and those of the customer's last message
    (``recent`` ``(K', n)``) are skipped; ties go to the lower product index; -1 pads a slate
    when fewer products are allowed. One pass over the catalog per customer.
    """
    n, k = slates.shape
    e = weights.shape[1]
    scores = np.empty(k)
    for i in range(n):
        for m in range(k):
            scores[m] = -np.inf
            slates[i, m] = -1
        for j in range(embeddings.shape[0]):
            if not available[j]:
                continue
            repeated = False
            for m in range(recent.shape[0]):
                if recent[m, i] == j:
                    repeated = True
            if repeated:
                continue
            s = 0.0
            for f in range(e):
                s += weights[i, f] * embeddings[j, f]
            if s <= scores[k - 1]:
                continue
            m = k - 1
            while m > 0 and s > scores[m - 1]:
                scores[m] = scores[m - 1]
                slates[i, m] = slates[i, m - 1]
                m -= 1
            scores[m] = s
            slates[i, m] = j


@njit(cache=True, error_model="numpy")
def action_mask_kernel(
    obs: np.ndarray,
    product: np.ndarray,
    channel: np.ndarray,
    available: np.ndarray,
    recent: np.ndarray,
    masks: np.ndarray,
) -> None:
    """``masks`` ``(n, A)``: consent on the action's channel, product in stock, not repeated.

    The consent rule is :func:`rec_env.features.consent_masks`' (an action without a channel
    is always allowed); products of the customer's last message (``recent``) are not allowed.
    """
    for i in range(masks.shape[0]):
        consent = np.empty(N_CHANNELS + 1, dtype=np.bool_)
        for c in range(N_CHANNELS):
            consent[c] = obs[CONSENT0 + c, i] > 0.5
        consent[N_CHANNELS] = True
        for a in range(masks.shape[1]):
            j = product[a]
            allowed = consent[channel[a]]
            if allowed and j >= 0:
                allowed = available[j]
                for m in range(recent.shape[0]):
                    if recent[m, i] == j:
                        allowed = False
            masks[i, a] = allowed
