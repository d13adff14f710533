r"""The item world: the customer model of :mod:`rec_env.dynamics`, recommending products.

:class:`ItemModel` has the interface of :class:`~rec_env.dynamics.CustomerModel` (``actions``,
``new_batch``, ``draw_customers``, ``step``, ``observe``, ``action_masks``,
``expected_rewards``), so the rollout, the evaluator, the vector envs and the policies run on
it unchanged; :meth:`ItemModel.step_slates` sends slates of several products. The formulas are
in :mod:`rec_env._item_kernels`; the lifecycle (consent, fatigue, unsubscribes, churn, the RFM
update, discount habits) is the strategy world's, shared.

Hidden, per customer (drawn after the strategy parameters, from the same generator):

* a **taste** vector over the product topics (unit length): a segment direction (fixed per
  segment name) plus Gamma(0.5) noise per topic, so tastes are peaked and segments differ;
* a **price sensitivity**: lognormal, median 0.5, doubled for ``discount_sensitive``
  customers; products priced above the customer's usual order value (``order_value``, which
  ``monetary_value`` tracks) are bought less: :math:`\exp(-s \max(0, \ln(p / v)))`;
* a **novelty appetite** in [0, 1]: Beta(1.5, 3.5).

The constants of the formulas are :data:`ITEM_CONSTANTS`.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from rec_env.dynamics import (
    REWARD_MODES,
    CustomerBatch,
    CustomerPool,
    RewardMode,
    StepOutcome,
)
from rec_env.feature_space import FeatureSpace
from rec_env.features import CHANNELS, FEATURE_INDEX
from rec_env.item_actions import ItemActionTable, ProductArrays
from rec_env.item_features import BOREDOM_DAYS, SATIATION_DAYS, item_feature_bounds, item_features
from rec_env.parameters import HIDDEN_PARAMETERS

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.population import Population
    from rec_env.products import ProductTable

__all__ = ["CHOICE_MODELS", "ITEM_CONSTANTS", "MAX_PAST_PURCHASES", "ItemBatch", "ItemModel"]

CHOICE_MODELS: tuple[str, ...] = ("mnl", "cascade")

ITEM_CONSTANTS: dict[str, tuple[float, str]] = {
    "click_taste": (3.0, "click utility per unit of taste-topic cosine"),
    "no_click": (2.0, "utility of clicking nothing (the no-click option)"),
    "position": (0.3, "click utility lost per slate position (position bias)"),
    "novelty": (2.0, "click utility of a new product at novelty appetite 1"),
    "boredom": (0.35, "click utility lost per unit of recommended_<category>"),
    "buy_scale": (10.0, "P(buy | click) of a perfect fit at a usual price, in click_conversions"),
    "buy_taste": (1.5, "log P(buy | click) lost per unit of taste-topic cosine below 1"),
    "satiation": (0.8, "log P(buy) lost per unit of purchases_<category>"),
    "organic_taste": (3.0, "log-odds of an organic purchase's category per unit of cosine"),
    "drift_click": (0.05, "taste moved towards a clicked product's topics"),
    "drift_buy": (0.15, "taste moved towards a bought product's topics"),
    "satiation_days": (SATIATION_DAYS, "time constant of satiation, days"),
    "boredom_days": (BOREDOM_DAYS, "time constant of boredom, days"),
}
"""Name → (value, meaning) of the item world's constants, in the kernels' ``params`` order."""

_N_STRATEGY = len(HIDDEN_PARAMETERS)
_ORDER_VALUE = list(HIDDEN_PARAMETERS).index("order_value")
_DISCOUNT_SENSITIVE = FEATURE_INDEX["discount_sensitive"]
_LAST_PURCHASE = FEATURE_INDEX["last_purchase_days"]
_FREQUENCY = FEATURE_INDEX["frequency"]
MAX_PAST_PURCHASES = 20
"""Most past purchases a new customer's drawn history holds."""


class ItemBatch(CustomerBatch):
    """A :class:`~rec_env.dynamics.CustomerBatch` with the item world's state.

    The arrays are stored customer-major (one contiguous row per customer), because the item
    kernels read many values of one customer at a time (36 item features, the taste); the
    attributes are feature-major views of them, indexed like the strategy batch's.

    Attributes:
        features: ``(16 + 3C, n)``: the strategy features, then the item features (a view of
            ``observed`` ``(n, 16 + 3C)``).
        hidden: ``(16, n)`` strategy hidden parameters (a view).
        item_hidden: ``(2, n)`` price sensitivity and novelty appetite (a view).
        taste: ``(n_topics, n)`` unit taste vectors (a view).
        recent: ``(K, n)`` products of the last delivered message (-1: none).
    """

    def __init__(
        self, n: int, window_30d: int, window_90d: int, n_features: int, n_topics: int, k: int
    ) -> None:
        super().__init__(n, window_30d, window_90d)
        self.observed = np.zeros((n, n_features))
        self.features = self.observed.T
        self.hidden = np.zeros((n, len(HIDDEN_PARAMETERS))).T
        self.item_hidden = np.zeros((n, 2)).T
        self.taste = np.zeros((n, n_topics)).T
        self.recent = np.full((k, n), -1, dtype=np.intp)


class ItemCustomerSampler:
    """Draws item-world customers: a population's customers plus their item state and tastes.

    ``sample`` returns observed ``(n, 16 + 3C)`` and hidden ``(n, 16 + 2 + T)`` arrays (strategy
    parameters, price sensitivity, novelty appetite, taste), like
    :class:`~rec_env.population.CustomerSampler` does for the strategy world.
    """

    def __init__(self, population: Population, products: ProductArrays, n_topics: int) -> None:
        from rec_env.population import CustomerSampler

        self.base = CustomerSampler(population)
        self.products = products
        self.segment_names = self.base.segment_names
        self.n_segments = self.base.n_segments
        self.segment_probabilities = self.base.segment_probabilities
        self.segment_taste = np.array(
            [
                np.random.default_rng(zlib.crc32(name.encode())).dirichlet(np.ones(n_topics))
                for name in self.segment_names
            ]
        )

    def most_likely_segment(self, features: dict[str, float]) -> int:
        """The segment under which the given observed features are most likely (MAP)."""
        return self.base.most_likely_segment(features)

    def _history(
        self, rng: np.random.Generator, base_obs: np.ndarray, taste: np.ndarray
    ) -> np.ndarray:
        """``(n, 3C)`` item features of a purchase history drawn from the customer's taste.

        ``1 + Poisson(frequency / 2)`` purchases (at most :data:`MAX_PAST_PURCHASES`) over the
        last 365 days: the latest ``last_purchase_days`` ago, the others uniformly older; each
        in a category drawn with weights ``share_c · exp(3 · taste · topics_c)``. They give the
        satiation state and the days since the last purchase per category, so a customer's
        history says something about their taste, as a retailer's order history does.
        """
        arrays = self.products
        n, n_cat = base_obs.shape[0], arrays.cat_topics.shape[0]
        logits = 3.0 * taste @ arrays.cat_topics.T + arrays.cat_log_share
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
        count = 1 + rng.poisson(base_obs[:, _FREQUENCY] / 2.0)
        count = np.minimum(count, MAX_PAST_PURCHASES)
        u = rng.random((n, MAX_PAST_PURCHASES))
        categories = np.minimum((u[:, :, None] > cumulative[:, None, :]).sum(axis=2), n_cat - 1)
        latest = np.minimum(base_obs[:, _LAST_PURCHASE], 365.0)
        ages = latest[:, None] + rng.random((n, MAX_PAST_PURCHASES)) * (365.0 - latest[:, None])
        ages[:, 0] = latest
        made = np.arange(MAX_PAST_PURCHASES)[None, :] < count[:, None]
        item_obs = np.zeros((n, 3 * n_cat))
        item_obs[:, 2 * n_cat :] = 365.0
        rows = np.repeat(np.arange(n)[:, None], MAX_PAST_PURCHASES, axis=1)[made]
        cats, age = categories[made], ages[made]
        np.add.at(item_obs, (rows, cats), np.exp(-age / SATIATION_DAYS))
        np.minimum.at(item_obs, (rows, 2 * n_cat + cats), age)
        return item_obs

    def sample(
        self,
        rng: np.random.Generator,
        n: int,
        segments: np.ndarray | None = None,
        fixed: dict[str, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw ``n`` customers: ``(observed, hidden, segments)``."""
        base_obs, base_hidden, segments = self.base.sample(rng, n, segments, fixed)
        arrays = self.products
        n_topics = arrays.cat_topics.shape[1]
        raw = rng.gamma(0.5, 1.0, size=(n, n_topics)) + 2.0 * self.segment_taste[segments]
        taste = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        sensitivity = rng.lognormal(np.log(0.5), 0.3, size=n) * (
            1.0 + base_obs[:, _DISCOUNT_SENSITIVE]
        )
        novelty = rng.beta(1.5, 3.5, size=n)
        item_obs = self._history(rng, base_obs, taste)
        observed = np.concatenate([base_obs, item_obs], axis=1)
        hidden = np.column_stack([base_hidden, sensitivity, novelty, taste])
        return observed, hidden, segments


class ItemModel:
    """Batched item-world dynamics: product and slate messages to ``n`` customers at once.

    Args:
        products: The product table.
        population: The customer population.
        channel_cost: Cost of a delivered message per channel (:data:`CHANNELS` order), USD.
        reward_mode: ``"profit"`` or ``"conversion"``.
        cycle_days: Length of one campaign cycle in days.
        slate_size: Products per message in :meth:`step_slates` (1 for single products).
        choice_model: ``"mnl"`` (multinomial logit with no click) or ``"cascade"``.
        offers: Discount levels a product message may carry (0: none).
    """

    def __init__(
        self,
        products: ProductTable,
        population: Population,
        channel_cost: tuple[float, ...],
        reward_mode: RewardMode = "profit",
        cycle_days: float = 7.0,
        slate_size: int = 1,
        choice_model: str = "mnl",
        offers: tuple[float, ...] = (0.0,),
    ) -> None:
        from rec_env import _item_kernels

        if reward_mode not in ("profit", "conversion"):
            raise ValueError(
                f"reward_mode must be 'profit' or 'conversion' in the item world, "
                f"got {reward_mode!r}"
            )
        if choice_model not in CHOICE_MODELS:
            raise ValueError(f"choice_model must be one of {CHOICE_MODELS}, got {choice_model!r}")
        if not 1.0 <= cycle_days <= 90.0:
            raise ValueError(f"cycle_days must be between 1 and 90, got {cycle_days}")
        self._kernels = _item_kernels
        self.products = products
        self.population = population
        self.arrays = ProductArrays.from_table(products)
        self.sampler = ItemCustomerSampler(population, self.arrays, products.n_topics)
        self.reward_mode = reward_mode
        self._reward_code = REWARD_MODES.index(reward_mode)
        self.cycle_days = float(cycle_days)
        self.window_30d = max(1, round(30.0 / cycle_days))
        self.window_90d = max(1, round(90.0 / cycle_days))
        self.slate_size = int(slate_size)
        self.choice_model = choice_model
        self._choice = CHOICE_MODELS.index(choice_model)
        self.channel_cost = np.array([*channel_cost, 0.0])
        self.actions = ItemActionTable.build(products, channel_cost, offers)
        self.features = item_features(products.category_names)
        self.feature_names = tuple(f.name for f in self.features)
        self.obs_low, self.obs_high = item_feature_bounds(products.category_names)
        self.params = np.array([value for value, _ in ITEM_CONSTANTS.values()])
        self._sat0 = _N_STRATEGY
        self._action_slates = np.full((self.actions.n_actions, self.slate_size), -1, np.intp)
        self._action_slates[:, 0] = self.actions.product
        offers = np.asarray(self.actions.offers)
        self._offer_index = np.searchsorted(offers, self.actions.discount).astype(np.intp)
        if not np.array_equal(offers, np.sort(offers)):  # offers in any order
            self._offer_index = np.array(
                [list(offers).index(d) if d in offers else 0 for d in self.actions.discount],
                dtype=np.intp,
            )

    # ------------------------------------------------------------------ customers
    def new_batch(self, n: int) -> ItemBatch:
        """An empty batch of ``n`` customers (fill it with :meth:`draw_customers`)."""
        return ItemBatch(
            n,
            self.window_30d,
            self.window_90d,
            len(self.features),
            self.products.n_topics,
            self.slate_size,
        )

    def draw_customers(
        self, batch: ItemBatch, rows: np.ndarray, source: np.random.Generator | CustomerPool
    ) -> None:
        """Replace the customers at ``rows`` by new ones from a generator or a pool."""
        if isinstance(source, CustomerPool):
            observed, hidden, segments = source.take(rows.size)
        else:
            observed, hidden, segments = self.sampler.sample(source, rows.size)
        self.set_customers(batch, rows, observed, hidden, segments)

    def set_customers(
        self,
        batch: ItemBatch,
        rows: np.ndarray,
        observed: np.ndarray,
        hidden: np.ndarray,
        segments: np.ndarray,
    ) -> None:
        """Write given customers (arrays as :class:`ItemCustomerSampler` draws them) into rows."""
        from rec_env import _kernels

        batch.segment[rows] = segments
        _kernels.assign_kernel(
            np.ascontiguousarray(rows, dtype=np.intp),
            np.ascontiguousarray(observed, dtype=np.float64),
            np.ascontiguousarray(hidden[:, :_N_STRATEGY], dtype=np.float64),
            batch.features,
            batch.hidden,
            batch.contact_history,
            batch.discount_history,
            (batch.cursor - 1) % self.window_30d,
            (batch.cursor - 1) % self.window_90d,
        )
        batch.item_hidden[:, rows] = hidden[:, _N_STRATEGY : _N_STRATEGY + 2].T
        batch.taste[:, rows] = hidden[:, _N_STRATEGY + 2 :].T
        batch.recent[:, rows] = -1

    # ------------------------------------------------------------------ dynamics
    def step(self, batch: ItemBatch, actions: np.ndarray, rng: np.random.Generator) -> StepOutcome:
        """Advance every customer by one cycle under one single-product action each."""
        actions = np.asarray(actions, dtype=np.intp)
        table = self.actions
        slates = self._action_slates[actions]
        return self._step(batch, slates, table.channel[actions], table.discount[actions], rng)

    def step_slates(
        self,
        batch: ItemBatch,
        slates: np.ndarray,
        channels: np.ndarray,
        discounts: np.ndarray,
        rng: np.random.Generator,
    ) -> StepOutcome:
        """Advance every customer by one cycle under one message each.

        Args:
            batch: Customers, updated in place.
            slates: ``(n, K)`` product indices in display order, -1 after the last product
                (``K`` at most ``slate_size``).
            channels: ``(n,)`` channel indices (``len(CHANNELS)``: no message).
            discounts: ``(n,)`` discount on the message's products (fraction of the price).
            rng: Source of all randomness: exactly ``rng.random((9, n))`` per cycle.

        Returns:
            The outcome per customer (:data:`~rec_env.dynamics.ITEM_OUTCOME_FIELDS`).
        """
        channels, discounts = self._message_terms(channels, discounts, batch.n)
        return self._step(batch, self._slates(slates, batch.n), channels, discounts, rng)

    def _step(
        self,
        batch: ItemBatch,
        slates: np.ndarray,
        channels: np.ndarray,
        discounts: np.ndarray,
        rng: np.random.Generator,
    ) -> StepOutcome:
        k = self._kernels
        shown = np.empty_like(slates)
        uniforms = rng.random((k.N_UNIFORMS, batch.n))
        values = np.empty((k.N_ITEM_OUT, batch.n))
        a = self.arrays
        k.item_step_kernel(
            batch.features, batch.hidden, batch.item_hidden, batch.taste,
            batch.contact_history, batch.discount_history, batch.recent, batch.cursor, shown,
            slates, channels, discounts, self.channel_cost,
            a.price, a.margin, a.category, a.topics, a.is_new, a.available, a.cat_topics,
            a.cat_log_share, a.cat_start, a.cat_order, a.cat_cumulative, self.params, self._sat0,
            self.population.contact_tolerance, self.cycle_days, self._reward_code, self._choice,
            uniforms, values,
        )  # fmt: skip
        batch.cursor += 1
        return StepOutcome(values, self.observe(batch))

    def _message_terms(
        self, channels: Any, discounts: Any, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Checked ``(n,)`` channel indices and discounts of ``n`` messages."""
        channels = np.ascontiguousarray(np.broadcast_to(channels, (n,)), dtype=np.intp)
        discounts = np.ascontiguousarray(np.broadcast_to(discounts, (n,)), dtype=np.float64)
        if n and (channels.min() < 0 or channels.max() > len(CHANNELS)):
            raise ValueError(f"channels must be in [0, {len(CHANNELS)}] ({len(CHANNELS)}: none)")
        if n and not (np.all(discounts >= 0.0) and np.all(discounts < 1.0)):
            raise ValueError("discounts must be in [0, 1)")
        return channels, discounts

    def _slates(self, slates: np.ndarray, n: int) -> np.ndarray:
        slates = np.ascontiguousarray(np.atleast_2d(slates), dtype=np.intp)
        if slates.shape[0] != n or not 1 <= slates.shape[1] <= self.slate_size:
            raise ValueError(
                f"slates must have shape ({n}, 1..{self.slate_size}), got {slates.shape}"
            )
        if slates.size and (slates.max() >= self.products.n_products or slates.min() < -1):
            raise ValueError("slates hold product indices in [0, n_products) or -1")
        return slates

    def observe(self, batch: ItemBatch) -> np.ndarray:
        """Observations ``(n, 16 + 3C)`` float32."""
        return batch.observed.astype(np.float32)

    # ------------------------------------------------------------------ masks and oracle
    def allowed_products(self, batch: ItemBatch) -> np.ndarray:
        """``(n, n_products)`` bool: in stock and not in the customer's last message."""
        allowed = np.broadcast_to(self.arrays.available, (batch.n, self.products.n_products))
        allowed = allowed.copy()
        rows = np.repeat(np.arange(batch.n)[None, :], batch.recent.shape[0], axis=0)
        shown = batch.recent >= 0
        allowed[rows[shown], batch.recent[shown]] = False
        return allowed

    def action_masks(self, batch: ItemBatch) -> np.ndarray:
        """``(n, n_actions)`` bool: consent, stock, and no repeat of the last message."""
        table = self.actions
        masks = np.empty((batch.n, table.n_actions), dtype=bool)
        self._kernels.action_mask_kernel(
            batch.features, table.product, table.channel, self.arrays.available, batch.recent, masks
        )
        return masks

    def expected_rewards(self, batch: ItemBatch) -> np.ndarray:
        """Exact expected immediate reward ``(n, n_actions)`` of every single-product action."""
        a, table = self.arrays, self.actions
        out = np.empty((batch.n, table.n_actions))
        self._kernels.action_expected_kernel(
            batch.features, batch.hidden, batch.item_hidden, batch.taste,
            table.product, table.channel, self._offer_index, np.asarray(table.offers),
            self.channel_cost, a.price, a.margin, a.category, a.topics, a.is_new, a.available,
            a.cat_topics,
            a.cat_log_share, a.cat_profit, self.params, self._sat0, self.cycle_days / 365.0,
            self._reward_code, self._choice, out,
        )  # fmt: skip
        return out

    def expected_rewards_of(self, batch: ItemBatch, actions: np.ndarray) -> np.ndarray:
        """Exact expected immediate reward ``(n,)`` of each customer's own action.

        The same values as ``expected_rewards(batch)[i, actions[i]]``, without scoring the
        whole catalog (what training on expected rewards needs each step).
        """
        actions = np.asarray(actions, dtype=np.intp).reshape(batch.n)
        table = self.actions
        slates = np.full((batch.n, 1), -1, dtype=np.intp)
        slates[:, 0] = table.product[actions]
        return self._expected(
            batch, slates, table.channel[actions], table.discount[actions], per_row=True
        )

    def candidate_rewards(
        self, batch: ItemBatch, slates: np.ndarray, channels: np.ndarray, discounts: np.ndarray
    ) -> np.ndarray:
        """Exact expected reward ``(n, S)`` of ``S`` candidate messages, the same for everyone.

        Args:
            batch: The customers.
            slates: ``(S, K)`` product indices (-1 padded).
            channels: ``(S,)`` channel indices.
            discounts: ``(S,)`` discounts.
        """
        slates = np.ascontiguousarray(np.atleast_2d(slates), dtype=np.intp)
        if slates.size and (slates.max() >= self.products.n_products or slates.min() < -1):
            raise ValueError("slates hold product indices in [0, n_products) or -1")
        channels, discounts = self._message_terms(channels, discounts, slates.shape[0])
        return self._expected(batch, slates, channels, discounts, per_row=False)

    def expected_slate_rewards(
        self, batch: ItemBatch, slates: np.ndarray, channels: np.ndarray, discounts: np.ndarray
    ) -> np.ndarray:
        """Exact expected immediate reward ``(n,)`` of each customer's given slate message."""
        channels, discounts = self._message_terms(channels, discounts, batch.n)
        return self._expected(batch, self._slates(slates, batch.n), channels, discounts, True)

    def _expected(
        self, batch: ItemBatch, slates: np.ndarray, channels: Any, discounts: Any, per_row: bool
    ) -> np.ndarray:
        a = self.arrays
        out = np.empty((batch.n, 1 if per_row else slates.shape[0]))
        self._kernels.item_expected_kernel(
            batch.features, batch.hidden, batch.item_hidden, batch.taste, slates,
            np.ascontiguousarray(channels, dtype=np.intp),
            np.ascontiguousarray(discounts, dtype=np.float64), self.channel_cost,
            a.price, a.margin, a.category, a.topics, a.is_new, a.available, a.cat_topics,
            a.cat_log_share, a.cat_profit, self.params, self._sat0, self.cycle_days / 365.0,
            self._reward_code, self._choice, not per_row, out,
        )  # fmt: skip
        return out[:, 0] if per_row else out

    def oracle_slates(
        self, batch: ItemBatch, allowed: np.ndarray | None = None, discount: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The myopic oracle's messages: greedy top-K slates by exact expected value.

        Returns:
            ``(slates (n, K), channels (n,), values (n,))``: the value is the expected message
            profit (or purchase probability) net of its cost; no message where none is positive.
        """
        a = self.arrays
        allowed = self.allowed_products(batch) if allowed is None else allowed
        slates = np.empty((batch.n, self.slate_size), dtype=np.intp)
        channels = np.empty(batch.n, dtype=np.intp)
        values = np.empty(batch.n)
        self._kernels.greedy_slate_kernel(
            batch.features, batch.hidden, batch.item_hidden, batch.taste,
            np.ascontiguousarray(allowed), float(discount), self.channel_cost,
            a.price, a.margin, a.category, a.topics, a.is_new, self.params, self._sat0,
            self._reward_code, self._choice, slates, channels, values,
        )  # fmt: skip
        return slates, channels, values

    def utilities(self, batch: ItemBatch) -> np.ndarray:
        """``(n, n_products)`` expected profit of each product shown alone to an engaged customer.

        The customer's true ranking of the catalog (what the ranking metrics judge against).
        """
        a = self.arrays
        out = np.empty((batch.n, self.products.n_products))
        self._kernels.utility_kernel(
            batch.features, batch.hidden, batch.item_hidden, batch.taste,
            a.price, a.margin, a.category, a.topics, a.is_new, self.params, self._sat0, out,
        )  # fmt: skip
        return out

    @property
    def feature_space(self) -> FeatureSpace:
        """The observation's :class:`~rec_env.feature_space.FeatureSpace` with its bounds.

        Give it to policies (``features=model.feature_space``) so that they scale the item
        features into [0, 1] and read consent from the observation.
        """
        return FeatureSpace(self.feature_names, self.obs_low, self.obs_high)

    @property
    def n_channels(self) -> int:
        """Number of contact channels."""
        return len(CHANNELS)

    @property
    def order_value_row(self) -> int:
        """Row of the hidden usual order value (the price level tastes are relative to)."""
        return _ORDER_VALUE
