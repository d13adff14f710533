"""The customer dynamics and the reward, written once as batched kernels (numba).

Every formula of the model is a small scalar function here, shared by :func:`step_kernel`
(one action per customer, sampled) and :func:`expected_kernel` (every action for every customer,
in closed form), so the oracle's expectations are exactly the expectations of what ``step``
samples. Kernels loop over customers inside compiled code and take plain numpy arrays; all
randomness is drawn by the caller from a seeded ``np.random.Generator`` and passed in.

Importing this module imports numba; :mod:`rec_env.dynamics` imports it lazily.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from rec_env.dynamics import OUTCOME_FIELDS
from rec_env.features import CHANNELS, FEATURE_HIGH, FEATURE_INDEX
from rec_env.parameters import HIDDEN_PARAMETERS

# Row indices (compile-time constants for numba).
_F = FEATURE_INDEX
RECENCY = _F["recency"]
FREQUENCY = _F["frequency"]
MONETARY = _F["monetary_value"]
ENGAGEMENT = _F["engagement_score"]
DISCOUNT_SENSITIVE = _F["discount_sensitive"]
FREE_SHIPPING = _F["free_shipping_preferred"]
RATE0 = _F["email_opens"]
LAST_PURCHASE = _F["last_purchase_days"]
DAYS_SINCE_CONTACT = _F["days_since_contact"]
CONTACTS_30D = _F["contacts_last_30d"]
DISCOUNTS_90D = _F["discounts_last_90d"]
CONSENT0 = _F["consent_email"]
N_CHANNELS = len(CHANNELS)

_H = {name: j for j, name in enumerate(HIDDEN_PARAMETERS)}
PURCHASE_RATE = _H["purchase_rate"]
ORDER_VALUE = _H["order_value"]
VISIT_RATE = _H["visit_rate"]
RESP0 = _H["email_responsiveness"]
CLICK_CONVERSION = _H["click_conversion"]
DISCOUNT_ELASTICITY = _H["discount_elasticity"]
SHIPPING_ELASTICITY = _H["shipping_elasticity"]
RECOMMENDATION_AFFINITY = _H["recommendation_affinity"]
FATIGUE_SENSITIVITY = _H["fatigue_sensitivity"]
UNSUBSCRIBE_RATE = _H["unsubscribe_rate"]
CHURN_RATE = _H["churn_rate"]
CONTACT_CHURN = _H["contact_churn_sensitivity"]
HABITUATION = _H["discount_habituation"]
IRRITATION = _H["irritation"]

# Rows of the compiled action table (see ActionParams in dynamics.py).
A_CHANNEL, A_DISCOUNT, A_SHIPPING, A_RECOMMENDATION, A_COST = 0, 1, 2, 3, 4
N_ACTION_ROWS = 5

# Rows of the step output, named once in rec_env.dynamics.OUTCOME_FIELDS.
_OUT = {name: row for row, name in enumerate(OUTCOME_FIELDS)}
OUT_REWARD = _OUT["reward"]
OUT_TERMINATED = _OUT["terminated"]
OUT_DELIVERED = _OUT["delivered"]
OUT_OPENED = _OUT["opened"]
OUT_PURCHASED = _OUT["purchased"]
OUT_REVENUE = _OUT["revenue"]
OUT_DISCOUNT_COST = _OUT["discount_cost"]
OUT_SHIPPING_COST = _OUT["shipping_cost"]
OUT_CONTACT_COST = _OUT["contact_cost"]
OUT_UNSUBSCRIBED = _OUT["unsubscribed"]
OUT_CHURNED = _OUT["churned"]
OUT_PROFIT = _OUT["profit"]
OUT_VISITED = _OUT["visited"]
OUT_ORDERS = _OUT["orders"]
N_OUT = len(OUTCOME_FIELDS)

REWARD_PROFIT, REWARD_CONVERSION, REWARD_RULE = 0, 1, 2
REFERENCE_DISCOUNT = 0.15
ENGAGEMENT_DECAY_DAYS = 90.0
RATE_WEIGHT = 0.1
MONETARY_WEIGHT = 0.3
DAYS_PER_YEAR = 365.0
# Feature bounds come from rec_env.features (compile-time constants for numba).
MAX_DAYS = FEATURE_HIGH["last_purchase_days"]
MAX_RECENCY = FEATURE_HIGH["recency"]
MAX_CONTACT_DAYS = FEATURE_HIGH["days_since_contact"]
MAX_FREQUENCY = FEATURE_HIGH["frequency"]
MAX_MONETARY = FEATURE_HIGH["monetary_value"]


# ---------------------------------------------------------------------- formulas
@njit(cache=True, inline="always")
def fatigue(fatigue_sensitivity: float, contacts_30d: float) -> float:
    """Multiplier on open probability: ``exp(-fatigue_sensitivity · contacts_last_30d)``."""
    return math.exp(-fatigue_sensitivity * contacts_30d)


@njit(cache=True, inline="always")
def organic_probability(
    purchase_rate: float,
    engagement: float,
    habituation: float,
    discounts_90d: float,
    discounted: float,
    years: float,
) -> float:
    """P(purchase without engaging with a message) in one cycle.

    Hazard ``purchase_rate · (0.5 + engagement)`` per year; at full price it is multiplied by
    ``exp(-discount_habituation · discounts_last_90d)``, a penalty a delivered discount lifts.
    """
    habit = math.exp(-habituation * discounts_90d)
    habit = habit + discounted * (1.0 - habit)
    return 1.0 - math.exp(-purchase_rate * (0.5 + engagement) * years * habit)


@njit(cache=True, inline="always")
def click_conversion(
    hid: np.ndarray, i: int, engagement: float, discount: float, shipping: float, rec: float
) -> float:
    """P(purchase | engaged with the message): plain conversion times the offer's lift."""
    lift = (
        1.0
        + hid[DISCOUNT_ELASTICITY, i] * discount / REFERENCE_DISCOUNT
        + hid[SHIPPING_ELASTICITY, i] * (1.0 if shipping > 0.0 else 0.0)
        + hid[RECOMMENDATION_AFFINITY, i] * engagement * rec
    )
    return min(hid[CLICK_CONVERSION, i] * lift, 1.0)


@njit(cache=True, inline="always")
def purchase_probability(p_organic: float, engaged: float, p_click: float) -> float:
    """P(purchase) given organic probability and (the probability of) engaging."""
    return 1.0 - (1.0 - p_organic) * (1.0 - engaged * p_click)


@njit(cache=True, inline="always")
def day_probability(p_organic: float, n_days: int) -> float:
    """P(an organic purchase on one day) when the cycle's ``n_days`` give ``p_organic`` in all."""
    return 1.0 - (1.0 - p_organic) ** (1.0 / n_days)


@njit(cache=True, inline="always")
def expected_orders(p_organic: float, engaged: float, p_click: float, n_days: int) -> float:
    """Expected orders in a cycle: organic purchase days plus the message's purchase.

    With ``n_days`` 0 (a cycle buys at most once) it is :func:`purchase_probability`.
    """
    if n_days <= 0:
        return purchase_probability(p_organic, engaged, p_click)
    return n_days * day_probability(p_organic, n_days) + engaged * p_click


@njit(cache=True, inline="always")
def purchase_count(u: float, p_organic: float, q_message: float, n_days: int) -> float:
    """Orders in a cycle that has at least one, from ``u`` uniform on [0, 1).

    Organic purchases fall on each of the ``n_days`` days with the same probability (their
    number is binomial) and a message adds one with probability ``q_message``; the count is
    drawn from its distribution given that it is at least 1, by inverting the CDF.
    """
    p = day_probability(p_organic, n_days)
    p_none = (1.0 - p_organic) * (1.0 - q_message)
    if p_none >= 1.0:
        return 1.0
    target = u * (1.0 - p_none) + p_none  # the same quantile of the unconditional count
    binomial = (1.0 - p) ** n_days  # P(k organic days), k = 0 first
    below = binomial * (1.0 - q_message)  # P(count = 0)
    for k in range(n_days + 1):
        next_binomial = 0.0
        if k < n_days:
            next_binomial = binomial * (n_days - k) / (k + 1) * p / max(1.0 - p, 1e-300)
        # P(count = k + 1) = P(k organic) q + P(k + 1 organic) (1 - q)
        below += binomial * q_message + next_binomial * (1.0 - q_message)
        if target < below:
            return float(k + 1)
        binomial = next_binomial
    return float(n_days + 1)


@njit(cache=True, inline="always")
def rule_reward(obs: np.ndarray, i: int, channel: int, discount: float, shipping: float) -> float:
    """The classic one-step targeting rule, clipped to [0, 1]."""
    reward = 0.0
    if discount > 0.0 and obs[DISCOUNT_SENSITIVE, i] > 0.5:
        reward += 0.5
    if shipping > 0.0 and obs[FREE_SHIPPING, i] > 0.5:
        reward += 0.5
    if channel < N_CHANNELS:
        best = 0
        for c in range(1, N_CHANNELS):
            if obs[RATE0 + c, i] > obs[RATE0 + best, i]:
                best = c
        if channel == best:
            reward += 0.3
    return min(max(reward, 0.0), 1.0)


@njit(cache=True, inline="always")
def _delivery(obs: np.ndarray, i: int, channel: int) -> float:
    if channel >= N_CHANNELS:
        return 0.0
    return 1.0 if obs[CONSENT0 + channel, i] > 0.5 else 0.0


@njit(cache=True, inline="always")
def write_outcome(
    out: np.ndarray,
    i: int,
    reward: float,
    churned: float,
    delivered: float,
    opened: float,
    purchased: float,
    revenue: float,
    discount_cost: float,
    shipping_cost: float,
    contact_cost: float,
    unsubscribed: float,
    profit: float,
    visited: float,
    orders: float,
) -> None:
    """Write customer ``i``'s rows of :data:`rec_env.dynamics.OUTCOME_FIELDS` into ``out``.

    Every world's outcome array starts with these rows, so every step kernel writes them here.
    """
    out[OUT_REWARD, i] = reward
    out[OUT_TERMINATED, i] = churned
    out[OUT_DELIVERED, i] = delivered
    out[OUT_OPENED, i] = opened
    out[OUT_PURCHASED, i] = purchased
    out[OUT_REVENUE, i] = revenue
    out[OUT_DISCOUNT_COST, i] = discount_cost
    out[OUT_SHIPPING_COST, i] = shipping_cost
    out[OUT_CONTACT_COST, i] = contact_cost
    out[OUT_UNSUBSCRIBED, i] = unsubscribed
    out[OUT_CHURNED, i] = churned
    out[OUT_PROFIT, i] = profit
    out[OUT_VISITED, i] = visited
    out[OUT_ORDERS, i] = orders


# ------------------------------------------------------- the observed features
# How each observed feature moves, written once: the simulator's ``lifecycle`` and the feature
# builder from real logs (:func:`history_kernel`, ``recenv features``) both call these.
@njit(cache=True, inline="always")
def record_order(obs: np.ndarray, i: int, value: float) -> None:
    """One order of list value ``value``: ``monetary_value`` moves towards it.

    The first order (no average yet, 0) sets the average; later ones move it by
    :data:`MONETARY_WEIGHT` of the difference.
    """
    value = min(value, MAX_MONETARY)
    m = obs[MONETARY, i]
    obs[MONETARY, i] = value if m <= 0.0 else m + MONETARY_WEIGHT * (value - m)


@njit(cache=True, inline="always")
def record_message(obs: np.ndarray, i: int, channel: int, opened: float) -> None:
    """One delivered message on ``channel``: its response rate moves towards ``opened``."""
    rate = obs[RATE0 + channel, i]
    obs[RATE0 + channel, i] = rate + RATE_WEIGHT * (opened - rate)


@njit(cache=True, inline="always")
def advance_cycle(
    obs: np.ndarray,
    contact_history: np.ndarray,
    discount_history: np.ndarray,
    slot_c: int,
    slot_d: int,
    i: int,
    orders: float,
    delivered: float,
    discounts: float,
    ignored: float,
    opened: float,
    visited: float,
    irritation: float,
    days: float,
    decay_engagement: float,
    decay_frequency: float,
) -> None:
    """Close one cycle of customer ``i``: every feature that counts time or events.

    Args:
        obs: ``(F, n)`` features, updated in place.
        contact_history: ``(window_30d, n)`` messages delivered in each recent cycle.
        discount_history: ``(window_90d, n)`` discounts delivered in each recent cycle.
        slot_c: This cycle's slot in ``contact_history`` (the one that leaves the window).
        slot_d: This cycle's slot in ``discount_history``.
        i: The customer's column.
        orders: Orders in the cycle (their values went to :func:`record_order`).
        delivered: Messages delivered in the cycle (each went to :func:`record_message`).
        discounts: Discount offers among them.
        ignored: Delivered messages not opened; each erodes engagement by ``irritation``.
        opened: 1.0 if any message was opened (or clicked).
        visited: 1.0 if the customer visited (an open counts as a visit).
        irritation: Share of engagement one ignored message erodes.
        days: Length of the cycle in days.
        decay_engagement: ``exp(-days / ENGAGEMENT_DECAY_DAYS)``.
        decay_frequency: ``exp(-days / DAYS_PER_YEAR)``.
    """
    purchased = 1.0 if orders > 0.0 else 0.0
    interacted = visited > 0.0 or purchased > 0.0
    if purchased > 0.0:
        obs[LAST_PURCHASE, i] = 0.0
    else:
        obs[LAST_PURCHASE, i] = min(obs[LAST_PURCHASE, i] + days, MAX_DAYS)
    obs[FREQUENCY, i] = min(obs[FREQUENCY, i] * decay_frequency + orders, MAX_FREQUENCY)
    if interacted:
        obs[RECENCY, i] = 0.0
    else:
        obs[RECENCY, i] = min(obs[RECENCY, i] + days, MAX_RECENCY)
    # engagement decays in cycles without interaction, and ignored messages erode it
    e = obs[ENGAGEMENT, i]
    e = e if interacted else e * decay_engagement
    if ignored > 0.0:
        e *= (1.0 - irritation) ** ignored
    obs[ENGAGEMENT, i] = e + (0.05 * visited + 0.15 * opened + 0.3 * purchased) * (1.0 - e)
    if delivered > 0.0:
        obs[DAYS_SINCE_CONTACT, i] = 0.0
    else:
        obs[DAYS_SINCE_CONTACT, i] = min(obs[DAYS_SINCE_CONTACT, i] + days, MAX_CONTACT_DAYS)
    obs[CONTACTS_30D, i] += delivered - contact_history[slot_c, i]
    obs[DISCOUNTS_90D, i] += discounts - discount_history[slot_d, i]
    contact_history[slot_c, i] = delivered
    discount_history[slot_d, i] = discounts


@njit(cache=True, inline="always")
def lifecycle(
    obs: np.ndarray,
    hid: np.ndarray,
    contact_history: np.ndarray,
    discount_history: np.ndarray,
    slot_c: int,
    slot_d: int,
    i: int,
    channel: int,
    delivered: float,
    discounted: float,
    opened: float,
    purchased: float,
    value: float,
    tolerance: float,
    days: float,
    decay_engagement: float,
    decay_frequency: float,
    u_unsubscribe: float,
    u_churn: float,
    u_visit: float,
    orders: float = 1.0,
) -> tuple[float, float, float]:
    """Steps 5-8 of a cycle for customer ``i``, shared by every world's step kernel.

    Unsubscribes, churn (never in a cycle with a purchase), organic visits and the update of the
    16 strategy features and the contact/discount histories, given what the cycle's message did
    (``delivered``, ``discounted``, ``opened``) and whether and for how much the customer bought
    (``purchased``, ``value``: the order value that moves ``monetary_value``, once per order of
    the cycle's ``orders``).

    Returns:
        ``(unsubscribed, churned, visited)`` as 0.0/1.0 (an opened message counts as a visit).
    """
    years = days / DAYS_PER_YEAR
    contacts = obs[CONTACTS_30D, i]
    fat = fatigue(hid[FATIGUE_SENSITIVITY, i], contacts)
    unsubscribed = 0.0
    if delivered > 0.0 and u_unsubscribe < hid[UNSUBSCRIBE_RATE, i] / fat:
        unsubscribed = 1.0
        obs[CONSENT0 + channel, i] = 0.0
    over = max(contacts + delivered - tolerance, 0.0)
    hazard = (
        hid[CHURN_RATE, i]
        * years
        * (1.0 + obs[LAST_PURCHASE, i] / DAYS_PER_YEAR)
        * (1.0 + hid[CONTACT_CHURN, i] * over)
    )
    churned = 1.0 if purchased == 0.0 and u_churn < 1.0 - math.exp(-hazard) else 0.0
    visited = opened
    if u_visit < 1.0 - math.exp(-hid[VISIT_RATE, i] * years):
        visited = 1.0

    n_orders = orders if purchased > 0.0 else 0.0
    for _ in range(int(n_orders)):
        record_order(obs, i, value)
    if delivered > 0.0:
        record_message(obs, i, channel, opened)
    advance_cycle(
        obs,
        contact_history,
        discount_history,
        slot_c,
        slot_d,
        i,
        n_orders,
        delivered,
        discounted,
        delivered * (1.0 - opened),
        opened,
        visited,
        hid[IRRITATION, i],
        days,
        decay_engagement,
        decay_frequency,
    )
    return unsubscribed, churned, visited


# ---------------------------------------------------------------------- kernels
@njit(cache=True, error_model="numpy")
def history_kernel(
    obs: np.ndarray,
    start_cycle: np.ndarray,
    n_cycles: int,
    order_ptr: np.ndarray,
    order_cycle: np.ndarray,
    order_value: np.ndarray,
    message_ptr: np.ndarray,
    message_cycle: np.ndarray,
    message_channel: np.ndarray,
    message_opened: np.ndarray,
    message_discount: np.ndarray,
    visit_ptr: np.ndarray,
    visit_cycle: np.ndarray,
    irritation: np.ndarray,
    window_30d: int,
    window_90d: int,
    days: float,
) -> None:
    """The observed features of customers at the end of cycle ``n_cycles - 1`` from their events.

    The feature builder's core: each customer ``i`` starts from ``obs[:, i]`` (the no-history
    values) at cycle ``start_cycle[i]`` and every cycle applies what the simulator applies
    (:func:`record_order`, :func:`record_message`, :func:`advance_cycle`). Events are sorted by
    customer and time; customer ``i``'s are ``order_ptr[i]:order_ptr[i + 1]`` (and likewise),
    each with the cycle it falls in, none before ``start_cycle[i]`` or after ``n_cycles - 1``.
    """
    n = obs.shape[1]
    decay_engagement = math.exp(-days / ENGAGEMENT_DECAY_DAYS)
    decay_frequency = math.exp(-days / DAYS_PER_YEAR)
    contact_history = np.zeros((window_30d, n))
    discount_history = np.zeros((window_90d, n))
    for i in range(n):
        o, o_end = order_ptr[i], order_ptr[i + 1]
        m, m_end = message_ptr[i], message_ptr[i + 1]
        v, v_end = visit_ptr[i], visit_ptr[i + 1]
        for c in range(start_cycle[i], n_cycles):
            orders = 0.0
            while o < o_end and order_cycle[o] == c:
                record_order(obs, i, order_value[o])
                orders += 1.0
                o += 1
            delivered, discounts, ignored, opened = 0.0, 0.0, 0.0, 0.0
            while m < m_end and message_cycle[m] == c:
                record_message(obs, i, message_channel[m], message_opened[m])
                delivered += 1.0
                discounts += message_discount[m]
                ignored += 1.0 - message_opened[m]
                opened = max(opened, message_opened[m])
                m += 1
            visited = opened
            while v < v_end and visit_cycle[v] == c:
                visited = 1.0
                v += 1
            advance_cycle(
                obs,
                contact_history,
                discount_history,
                c % window_30d,
                c % window_90d,
                i,
                orders,
                delivered,
                discounts,
                ignored,
                opened,
                visited,
                irritation[i],
                days,
                decay_engagement,
                decay_frequency,
            )


@njit(cache=True, error_model="numpy")
def expected_kernel(
    obs: np.ndarray,
    hid: np.ndarray,
    act: np.ndarray,
    gross_margin: float,
    years: float,
    reward_mode: int,
    out: np.ndarray,
    purchase_days: int = 0,
) -> None:
    """Write the expected immediate reward of every action into ``out`` ``(n, n_actions)``.

    ``purchase_days`` > 0: a cycle may hold an organic purchase on each of that many days (the
    profit counts every order); 0: at most one purchase a cycle.
    """
    n, n_actions = out.shape
    for i in range(n):
        engagement = obs[ENGAGEMENT, i]
        fat = fatigue(hid[FATIGUE_SENSITIVITY, i], obs[CONTACTS_30D, i])
        for a in range(n_actions):
            channel = int(act[A_CHANNEL, a])
            delivered = _delivery(obs, i, channel)
            discount = act[A_DISCOUNT, a] * delivered
            shipping = act[A_SHIPPING, a] * delivered
            if reward_mode == REWARD_RULE:
                out[i, a] = rule_reward(obs, i, channel, act[A_DISCOUNT, a], act[A_SHIPPING, a])
                continue
            p_open = 0.0
            if delivered > 0.0:
                p_open = hid[RESP0 + channel, i] * fat
            p_click = click_conversion(
                hid, i, engagement, discount, shipping, act[A_RECOMMENDATION, a]
            )
            p_org = organic_probability(
                hid[PURCHASE_RATE, i],
                engagement,
                hid[HABITUATION, i],
                obs[DISCOUNTS_90D, i],
                1.0 if discount > 0.0 else 0.0,
                years,
            )
            if reward_mode == REWARD_CONVERSION:
                out[i, a] = purchase_probability(p_org, p_open, p_click)
            else:
                orders = expected_orders(p_org, p_open, p_click, purchase_days)
                value = hid[ORDER_VALUE, i] * (gross_margin - discount) - shipping
                out[i, a] = orders * value - delivered * act[A_COST, a]


@njit(cache=True, error_model="numpy")
def step_kernel(
    obs: np.ndarray,
    hid: np.ndarray,
    contact_history: np.ndarray,
    discount_history: np.ndarray,
    cursor: int,
    actions: np.ndarray,
    act: np.ndarray,
    gross_margin: float,
    tolerance: float,
    sigma: float,
    days: float,
    reward_mode: int,
    uniforms: np.ndarray,
    normals: np.ndarray,
    out: np.ndarray,
    purchase_days: int = 0,
) -> None:
    """Advance every customer one cycle, updating ``obs`` and the histories in place.

    With ``purchase_days`` > 0 a cycle that has a purchase has as many orders as organic
    purchase days plus the message's purchase (:func:`purchase_count`, from the same uniform,
    so whether the customer buys is drawn exactly as with at most one), each of the cycle's
    order value.

    ``uniforms`` is ``(5, n)`` (open, buy, visit, unsubscribe, churn) and ``normals`` ``(n,)``
    (order value); the outcome of each customer goes into the columns of ``out`` ``(N_OUT, n)``.
    """
    years = days / DAYS_PER_YEAR
    slot_c = cursor % contact_history.shape[0]
    slot_d = cursor % discount_history.shape[0]
    decay_engagement = math.exp(-days / ENGAGEMENT_DECAY_DAYS)
    decay_frequency = math.exp(-days / DAYS_PER_YEAR)
    for i in range(obs.shape[1]):
        a = actions[i]
        channel = int(act[A_CHANNEL, a])
        delivered = _delivery(obs, i, channel)
        discounted = 1.0 if act[A_DISCOUNT, a] * delivered > 0.0 else 0.0
        discount = act[A_DISCOUNT, a] * delivered
        shipping = act[A_SHIPPING, a] * delivered
        engagement = obs[ENGAGEMENT, i]
        contacts = obs[CONTACTS_30D, i]
        fat = fatigue(hid[FATIGUE_SENSITIVITY, i], contacts)

        # 1-3: opens, organic and message-driven purchases
        p_open = hid[RESP0 + channel, i] * fat if delivered > 0.0 else 0.0
        opened = 1.0 if uniforms[0, i] < p_open else 0.0
        p_click = click_conversion(hid, i, engagement, discount, shipping, act[A_RECOMMENDATION, a])
        p_org = organic_probability(
            hid[PURCHASE_RATE, i],
            engagement,
            hid[HABITUATION, i],
            obs[DISCOUNTS_90D, i],
            discounted,
            years,
        )
        p_buy = purchase_probability(p_org, opened, p_click)
        purchased = 1.0 if uniforms[1, i] < p_buy else 0.0
        orders = purchased
        if purchased > 0.0 and purchase_days > 0:
            orders = purchase_count(uniforms[1, i] / p_buy, p_org, opened * p_click, purchase_days)

        # 4: money
        value = hid[ORDER_VALUE, i] * math.exp(sigma * normals[i] - 0.5 * sigma * sigma)
        list_value = orders * value
        discount_cost = list_value * discount
        shipping_cost = orders * shipping
        contact_cost = delivered * act[A_COST, a]
        profit = list_value * gross_margin - discount_cost - shipping_cost - contact_cost

        if reward_mode == REWARD_PROFIT:
            reward = profit
        elif reward_mode == REWARD_CONVERSION:
            reward = purchased
        else:
            reward = rule_reward(obs, i, channel, act[A_DISCOUNT, a], act[A_SHIPPING, a])

        # 5-8: unsubscribes, churn, visits and the state update
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
            uniforms[3, i],
            uniforms[4, i],
            uniforms[2, i],
            orders,
        )

        write_outcome(
            out,
            i,
            reward,
            churned,
            delivered,
            opened,
            purchased,
            list_value - discount_cost,
            discount_cost,
            shipping_cost,
            contact_cost,
            unsubscribed,
            profit,
            visited,
            orders,
        )


@njit(cache=True, error_model="numpy")
def observe_kernel(obs: np.ndarray, observation: np.ndarray) -> None:
    """Copy feature-major ``obs`` ``(F, n)`` into customer-major float32 ``observation``."""
    n_features, n = obs.shape
    for i in range(n):
        for f in range(n_features):
            observation[i, f] = obs[f, i]


@njit(cache=True, error_model="numpy")
def assign_kernel(
    rows: np.ndarray,
    observed: np.ndarray,
    hidden: np.ndarray,
    obs: np.ndarray,
    hid: np.ndarray,
    contact_history: np.ndarray,
    discount_history: np.ndarray,
    last_c: int,
    last_d: int,
) -> None:
    """Write new customers (``observed`` ``(k, F)``, ``hidden`` ``(k, P)``) into ``rows``.

    Their contact history is cleared; the given ``contacts_last_30d`` / ``discounts_last_90d``
    are placed in the most recent past cycle so they expire after a full window.
    """
    for k in range(rows.shape[0]):
        i = rows[k]
        for f in range(obs.shape[0]):
            obs[f, i] = observed[k, f]
        for p in range(hid.shape[0]):
            hid[p, i] = hidden[k, p]
        for w in range(contact_history.shape[0]):
            contact_history[w, i] = 0.0
        for w in range(discount_history.shape[0]):
            discount_history[w, i] = 0.0
        contact_history[last_c, i] = observed[k, CONTACTS_30D]
        discount_history[last_d, i] = observed[k, DISCOUNTS_90D]
