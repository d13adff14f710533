"""The customer model: dynamics and reward, written once as batched numpy.

Everything that happens to a customer in one campaign cycle is in :meth:`CustomerModel.step`,
for a whole batch of customers at once. The Gymnasium env (a batch of one), the vectorised env,
the evaluator and the server are adapters over this module.

The probability formulas are small functions shared by :meth:`CustomerModel.step` (one action per
customer, arrays of shape ``(n,)``) and :meth:`CustomerModel.expected_rewards` (every action for
every customer, shape ``(n_actions, n)`` by broadcasting), so the oracle's expectations are exactly
the expectations of what ``step`` samples.

One cycle, for a customer who receives action ``a`` on channel ``c`` (see the env docstring for
the full specification):

1. delivery: a message is delivered only with consent on ``c``;
2. open: ``p_open = responsiveness_c · exp(-fatigue_sensitivity · contacts_last_30d)``;
3. purchase: ``p = 1 - (1 - p_organic)(1 - opened · click_conversion · offer_lift)``;
4. reward, costs, unsubscribes, churn, and the state update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from rec_env.features import CHANNELS, FEATURE_INDEX, FEATURE_NAMES
from rec_env.parameters import HIDDEN_PARAMETERS

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.catalog import ActionTable
    from rec_env.population import Population

__all__ = ["REWARD_MODES", "CustomerBatch", "CustomerModel", "RewardMode", "StepOutcome"]

RewardMode = Literal["profit", "conversion", "rule"]
REWARD_MODES: tuple[str, ...] = ("profit", "conversion", "rule")

_N_FEATURES = len(FEATURE_NAMES)
_F = FEATURE_INDEX
_H = {name: j for j, name in enumerate(HIDDEN_PARAMETERS)}
_CONSENT0 = _F["consent_email"]
_RATE0 = _F["email_opens"]
_RESP0 = _H["email_responsiveness"]
_REFERENCE_DISCOUNT = 0.15
_ENGAGEMENT_DECAY_DAYS = 90.0
_RATE_WEIGHT = 0.1
_MONETARY_WEIGHT = 0.3

assert [_F[f"consent_{c}"] - _CONSENT0 for c in CHANNELS] == [0, 1, 2]
assert [_H[f"{c}_responsiveness"] - _RESP0 for c in CHANNELS] == [0, 1, 2]


class CustomerBatch:
    """The state of ``n`` customers, feature-major so each feature is a contiguous row.

    Attributes:
        observed: ``(n_features + 1, n)`` float64; the last row is a zero row that stands for
            the consent of "no channel", so gathering consent by channel index needs no branch.
        hidden: ``(n_hidden + 1, n)`` float64 hidden parameters, with a zero padding row after
            ``push_responsiveness`` for the same reason.
        contact_history: ``(window_30d, n)`` messages delivered per recent cycle.
        discount_history: ``(window_90d, n)`` discounts delivered per recent cycle.
        segment: ``(n,)`` segment index of each customer.
        cursor: Position of the current cycle in the history ring buffers.
    """

    def __init__(self, n: int, window_30d: int, window_90d: int) -> None:
        self.n = n
        self.observed = np.zeros((_N_FEATURES + 1, n))
        self.hidden = np.zeros((len(HIDDEN_PARAMETERS) + 1, n))
        self.contact_history = np.zeros((window_30d, n))
        self.discount_history = np.zeros((window_90d, n))
        self.segment = np.zeros(n, dtype=np.intp)
        self.cursor = 0
        self.index = np.arange(n)
        obs, hid = self.observed, self.hidden
        # Persistent row views: attribute access is free, no view is built in the hot path.
        self.recency = obs[_F["recency"]]
        self.frequency = obs[_F["frequency"]]
        self.monetary_value = obs[_F["monetary_value"]]
        self.engagement = obs[_F["engagement_score"]]
        self.discount_sensitive = obs[_F["discount_sensitive"]]
        self.free_shipping_preferred = obs[_F["free_shipping_preferred"]]
        self.last_purchase_days = obs[_F["last_purchase_days"]]
        self.days_since_contact = obs[_F["days_since_contact"]]
        self.contacts_30d = obs[_F["contacts_last_30d"]]
        self.discounts_90d = obs[_F["discounts_last_90d"]]
        self.observed_rates = obs[_RATE0 : _RATE0 + len(CHANNELS)]
        self.consent = obs[_CONSENT0 : _CONSENT0 + len(CHANNELS) + 1]  # + padding row
        self.responsiveness = hid[_RESP0 : _RESP0 + len(CHANNELS) + 1]  # + padding row
        for name, j in _H.items():
            if j <= _RESP0 + len(CHANNELS) - 1:
                setattr(self, name, hid[j])
            else:  # shifted by the padding row
                setattr(self, name, hid[j + 1])
        self.features = obs[:_N_FEATURES]

    def hidden_matrix(self) -> np.ndarray:
        """Hidden parameters as ``(n, n_hidden)``, columns in :data:`HIDDEN_PARAMETERS` order."""
        pad = _RESP0 + len(CHANNELS)
        return np.delete(self.hidden, pad, axis=0).T.copy()

    def observation(self) -> np.ndarray:
        """Observations as a C-contiguous ``(n, n_features)`` float32 array."""
        return np.ascontiguousarray(self.features.T, dtype=np.float32)


@dataclass
class StepOutcome:
    """What happened to each customer in one cycle (arrays of shape ``(n,)``)."""

    reward: np.ndarray
    terminated: np.ndarray
    delivered: np.ndarray
    opened: np.ndarray
    purchased: np.ndarray
    revenue: np.ndarray
    discount_cost: np.ndarray
    shipping_cost: np.ndarray
    contact_cost: np.ndarray
    unsubscribed: np.ndarray
    churned: np.ndarray
    profit: np.ndarray


class CustomerModel:
    """Batched customer dynamics and reward for one catalog and one population.

    Args:
        actions: The compiled action catalog.
        population: The customer population.
        reward_mode: ``"profit"``, ``"conversion"`` or ``"rule"``.
        cycle_days: Length of one campaign cycle in days.
    """

    def __init__(
        self,
        actions: ActionTable,
        population: Population,
        reward_mode: RewardMode = "profit",
        cycle_days: float = 7.0,
    ) -> None:
        if reward_mode not in REWARD_MODES:
            raise ValueError(
                f"reward_mode must be one of {', '.join(REWARD_MODES)}, got {reward_mode!r}"
            )
        if not 1.0 <= cycle_days <= 90.0:
            raise ValueError(f"cycle_days must be between 1 and 90, got {cycle_days}")
        from rec_env.population import CustomerSampler

        self.actions = actions
        self.population = population
        self.sampler = CustomerSampler(population)
        self.reward_mode = reward_mode
        self.cycle_days = float(cycle_days)
        self.window_30d = max(1, round(30.0 / cycle_days))
        self.window_90d = max(1, round(90.0 / cycle_days))
        self._years = self.cycle_days / 365.0
        self._sigma = population.order_value_sigma
        self._tolerance = population.contact_tolerance
        # Per-action columns used by the formulas, precomputed once.
        self._discount_lift = actions.discount / _REFERENCE_DISCOUNT
        self._is_shipping = (actions.shipping > 0).astype(np.float64)
        self._is_discount = (actions.discount > 0).astype(np.float64)
        self._margin_rate = actions.gross_margin - actions.discount
        self._channel_clamped = np.minimum(actions.channel, len(CHANNELS) - 1)

    # ------------------------------------------------------------------ customers
    def new_batch(self, n: int) -> CustomerBatch:
        """An empty batch of ``n`` customers (fill it with :meth:`draw_customers`)."""
        return CustomerBatch(n, self.window_30d, self.window_90d)

    def draw_customers(
        self, batch: CustomerBatch, rows: np.ndarray, rng: np.random.Generator
    ) -> None:
        """Replace the customers at ``rows`` by new ones drawn from the population."""
        observed, hidden, segments = self.sampler.sample(rng, rows.size)
        self.set_customers(batch, rows, observed, hidden, segments)

    def set_customers(
        self,
        batch: CustomerBatch,
        rows: np.ndarray,
        observed: np.ndarray,
        hidden: np.ndarray,
        segments: np.ndarray,
    ) -> None:
        """Write given customers into ``rows`` and clear their contact history.

        Args:
            batch: The batch to write into.
            rows: Row indices, shape ``(k,)``.
            observed: ``(k, n_features)`` observed features.
            hidden: ``(k, n_hidden)`` hidden parameters in :data:`HIDDEN_PARAMETERS` order.
            segments: ``(k,)`` segment indices.
        """
        pad = _RESP0 + len(CHANNELS)
        batch.features[:, rows] = observed.T
        batch.hidden[:pad, rows] = hidden[:, :pad].T
        batch.hidden[pad + 1 :, rows] = hidden[:, pad:].T
        # Recent contacts given in the observation are placed in the most recent past cycle
        # of the ring buffers, so they expire after a full window like real ones.
        batch.contact_history[:, rows] = 0.0
        batch.discount_history[:, rows] = 0.0
        batch.contact_history[(batch.cursor - 1) % self.window_30d, rows] = batch.contacts_30d[rows]
        batch.discount_history[(batch.cursor - 1) % self.window_90d, rows] = batch.discounts_90d[
            rows
        ]
        batch.segment[rows] = segments

    # ------------------------------------------------------------------ formulas
    # Each formula broadcasts: customer rows are (n,), action columns either (n,) (one action
    # per customer, in step) or (n_actions, 1) (every action, in expected_rewards).

    @staticmethod
    def _fatigue(batch: CustomerBatch) -> np.ndarray:
        """Multiplier on open probability: ``exp(-fatigue_sensitivity · contacts_last_30d)``."""
        return np.exp(-batch.fatigue_sensitivity * batch.contacts_30d)

    def _organic_probability(self, batch: CustomerBatch, discounted: np.ndarray) -> np.ndarray:
        """P(purchase without engaging with a message) in one cycle.

        The hazard is ``purchase_rate · (0.5 + engagement)``, per year. At full price it is
        multiplied by ``exp(-discount_habituation · discounts_last_90d)`` (the reference price
        has risen); a delivered discount lifts that penalty for the cycle.
        """
        habit = np.exp(-batch.discount_habituation * batch.discounts_90d)
        habit = habit + discounted * (1.0 - habit)
        hazard = batch.purchase_rate * (0.5 + batch.engagement) * self._years
        return 1.0 - np.exp(-hazard * habit)

    @staticmethod
    def _click_conversion(
        batch: CustomerBatch, discount_lift: np.ndarray, shipping: np.ndarray, rec: np.ndarray
    ) -> np.ndarray:
        """P(purchase | engaged with the message): plain conversion times the offer's lift."""
        lift = (
            1.0
            + batch.discount_elasticity * discount_lift
            + batch.shipping_elasticity * shipping
            + batch.recommendation_affinity * batch.engagement * rec
        )
        return np.minimum(batch.click_conversion * lift, 1.0)

    # ------------------------------------------------------------------ step
    def step(
        self, batch: CustomerBatch, actions: np.ndarray, rng: np.random.Generator
    ) -> StepOutcome:
        """Advance every customer by one cycle.

        Exactly two calls draw from ``rng`` per step whatever the actions are, so two policies
        run on the same seed see the same customers and the same random numbers (common
        random numbers).

        Args:
            batch: Customers, updated in place.
            actions: ``(n,)`` action index per customer.
            rng: Source of all randomness.

        Returns:
            The cycle's outcome per customer.
        """
        act = self.actions
        idx = batch.index
        channel = act.channel[actions]
        delivered = batch.consent[channel, idx]
        fatigue = self._fatigue(batch)
        p_open = delivered * batch.responsiveness[channel, idx] * fatigue
        discounted = delivered * self._is_discount[actions]
        shipping = delivered * self._is_shipping[actions]
        p_click_buy = self._click_conversion(
            batch, delivered * self._discount_lift[actions], shipping, act.recommendation[actions]
        )
        p_organic = self._organic_probability(batch, discounted)

        u_open, u_buy, u_visit, u_unsub, u_churn = rng.random((5, batch.n))
        z_value = rng.standard_normal(batch.n)

        opened = (u_open < p_open) * 1.0
        p_buy = 1.0 - (1.0 - p_organic) * (1.0 - opened * p_click_buy)
        purchased = (u_buy < p_buy) * 1.0
        value = batch.order_value * np.exp(self._sigma * z_value - 0.5 * self._sigma**2)
        list_value = purchased * value
        discount_cost = list_value * act.discount[actions] * delivered
        shipping_cost = purchased * act.shipping[actions] * delivered
        contact_cost = delivered * act.cost[actions]
        profit = list_value * act.gross_margin - discount_cost - shipping_cost - contact_cost

        unsubscribed = delivered * (u_unsub < batch.unsubscribe_rate / (fatigue * fatigue))
        contacts_now = batch.contacts_30d + delivered
        over = np.maximum(contacts_now - self._tolerance, 0.0)
        hazard = (
            batch.churn_rate
            * self._years
            * (1.0 + batch.last_purchase_days / 365.0)
            * (1.0 + batch.contact_churn_sensitivity * over)
        )
        churned = (u_churn < 1.0 - np.exp(-hazard)) * (1.0 - purchased)
        visited = np.maximum(u_visit < 1.0 - np.exp(-batch.visit_rate * self._years), opened)

        self._update_state(batch, actions, delivered, discounted, opened, purchased, value)
        batch.consent[channel, idx] *= 1.0 - unsubscribed
        batch.recency[:] = (batch.recency + self.cycle_days) * (
            1.0 - np.maximum(visited, purchased)
        )
        np.minimum(batch.recency, 730.0, out=batch.recency)

        if self.reward_mode == "profit":
            reward = profit
        elif self.reward_mode == "conversion":
            reward = purchased
        else:
            reward = self._rule_reward(batch, actions)
        return StepOutcome(
            reward=reward,
            terminated=churned > 0.5,
            delivered=delivered,
            opened=opened,
            purchased=purchased,
            revenue=list_value * (1.0 - act.discount[actions] * delivered),
            discount_cost=discount_cost,
            shipping_cost=shipping_cost,
            contact_cost=contact_cost,
            unsubscribed=unsubscribed,
            churned=churned,
            profit=profit,
        )

    def _update_state(
        self,
        batch: CustomerBatch,
        actions: np.ndarray,
        delivered: np.ndarray,
        discounted: np.ndarray,
        opened: np.ndarray,
        purchased: np.ndarray,
        value: np.ndarray,
    ) -> None:
        days = self.cycle_days
        # purchases: recency resets, frequency rises, monetary value moves towards the order
        batch.last_purchase_days[:] = np.minimum(
            (batch.last_purchase_days + days) * (1.0 - purchased), 730.0
        )
        batch.frequency[:] = np.minimum(batch.frequency * np.exp(-days / 365.0) + purchased, 60.0)
        batch.monetary_value += (
            purchased * _MONETARY_WEIGHT * (np.minimum(value, 2000.0) - batch.monetary_value)
        )
        # engagement decays, and moves up with opens and purchases
        e = batch.engagement * np.exp(-days / _ENGAGEMENT_DECAY_DAYS)
        batch.engagement[:] = e + (0.15 * opened + 0.3 * purchased) * (1.0 - e)
        # observed response rate of the channel used (weight 0 if nothing was delivered)
        rate_row = self._channel_clamped[actions]
        rates = batch.observed_rates[rate_row, batch.index]
        batch.observed_rates[rate_row, batch.index] = rates + _RATE_WEIGHT * delivered * (
            opened - rates
        )
        # contact windows
        batch.days_since_contact[:] = np.minimum(
            (batch.days_since_contact + days) * (1.0 - delivered), 365.0
        )
        slot_c = batch.cursor % self.window_30d
        slot_d = batch.cursor % self.window_90d
        batch.contacts_30d += delivered - batch.contact_history[slot_c]
        batch.discounts_90d += discounted - batch.discount_history[slot_d]
        batch.contact_history[slot_c] = delivered
        batch.discount_history[slot_d] = discounted
        batch.cursor += 1

    # ------------------------------------------------------------------ oracle access
    def action_masks(self, batch: CustomerBatch) -> np.ndarray:
        """``(n, n_actions)`` bool: False where the action's channel has no consent."""
        return (
            batch.consent[self.actions.channel].T > 0.5
            if batch.n
            else np.zeros((0, self.actions.n_actions), dtype=bool)
        )

    def expected_rewards(self, batch: CustomerBatch) -> np.ndarray:
        """True expected immediate reward of every action for every customer.

        Computed in closed form from the hidden parameters with the same formulas ``step``
        samples from, in the env's ``reward_mode``.

        Returns:
            ``(n, n_actions)`` float64.
        """
        if self.reward_mode == "rule":
            actions = np.arange(self.actions.n_actions)[:, None]
            return self._rule_reward(batch, actions).T
        act = self.actions
        col = slice(None), None
        delivered = batch.consent[act.channel]  # (A, n)
        fatigue = self._fatigue(batch)
        p_open = delivered * batch.responsiveness[act.channel] * fatigue
        discounted = delivered * self._is_discount[col]
        p_click_buy = self._click_conversion(
            batch,
            delivered * self._discount_lift[col],
            delivered * self._is_shipping[col],
            act.recommendation[col],
        )
        p_organic = self._organic_probability(batch, discounted)
        p_buy = 1.0 - (1.0 - p_organic) * (1.0 - p_open * p_click_buy)
        if self.reward_mode == "conversion":
            return p_buy.T
        margin_rate = act.gross_margin - act.discount[col] * delivered
        profit = (
            p_buy * (batch.order_value * margin_rate - act.shipping[col] * delivered)
            - delivered * act.cost[col]
        )
        return profit.T

    def _rule_reward(self, batch: CustomerBatch, actions: np.ndarray) -> np.ndarray:
        """The classic one-step targeting rule, clipped to [0, 1].

        +0.5 for a discount to a discount-sensitive customer or free shipping to a
        free-shipping-preferring one; +0.3 for using the customer's best-responding channel
        (highest observed response rate).
        """
        targeting = 0.5 * (
            self._is_discount[actions] * batch.discount_sensitive
            + self._is_shipping[actions] * batch.free_shipping_preferred
        )
        best_channel = np.argmax(batch.observed_rates, axis=0)
        channel = self.actions.channel[actions]
        on_best = 0.3 * (channel == best_channel)
        return np.clip(targeting + on_best, 0.0, 1.0)
