"""``ItemRecommendationEnv`` and ``SlateRecommendationEnv``: products for one customer at a time.

Both are batches of one over :class:`~rec_env.item_dynamics.ItemModel`; the class docstrings
of the two envs specify the cycle, the spaces and the rewards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rec_env.dynamics import CustomerPool
from rec_env.features import CHANNELS
from rec_env.item_dynamics import ItemModel
from rec_env.render import IMAGE_RENDER_MODES, ActionGlyph, CustomerRenderer
from rec_env.settings import EnvSettings

__all__ = [
    "ITEM_INFO_KEYS",
    "ItemRecommendationEnv",
    "SlateModel",
    "SlateRecommendationEnv",
    "build_item_model",
    "product_embeddings",
]

ITEM_INFO_KEYS = (
    "profit",
    "revenue",
    "purchased",
    "delivered",
    "opened",
    "clicked",
    "click_position",
    "clicked_product",
    "message_purchase",
    "organic_purchase",
    "unsubscribed",
    "churned",
)


def _channel_costs(catalog: str) -> tuple[float, ...]:
    """Cost of a delivered message per channel, from the strategy catalog (one source)."""
    from rec_env.catalog import ActionTable, load_catalog

    table = ActionTable.from_catalog(load_catalog(catalog))
    costs = []
    for c in range(len(CHANNELS)):
        on_channel = table.cost[table.channel == c]
        costs.append(float(on_channel.max()) if on_channel.size else 0.0)
    return tuple(costs)


def build_item_model(settings: EnvSettings) -> ItemModel:
    """The item (or slate) world of ``settings``: population, product table and channel costs.

    Raises:
        ConfigError: If the population, catalog or product file is missing or invalid.
    """
    from rec_env.population import load_population
    from rec_env.products import load_products

    cls = SlateModel if settings.world == "slate" else ItemModel
    return cls(
        load_products(settings.products),
        load_population(settings.profile),
        _channel_costs(settings.catalog),
        reward_mode=settings.reward_mode,  # type: ignore[arg-type]
        cycle_days=settings.cycle_days,
        slate_size=settings.k,
        choice_model=settings.choice_model,
        offers=settings.offers,
    )


def product_embeddings(model: ItemModel) -> np.ndarray:
    """``(n_products, e)`` vectors a slate action scores products by.

    Columns: the unit topic vector, the standardised log price, the margin, the ``new`` flag
    and the standardised log popularity.
    """
    products = model.products

    def standard(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / max(float(x.std()), 1e-9)

    return np.column_stack(
        [
            model.arrays.topics,
            standard(np.log(products.price)),
            products.margin,
            products.is_new.astype(np.float64),
            standard(np.log(products.popularity + 1e-9)),
        ]
    )


class SlateModel(ItemModel):
    """The slate world: :class:`ItemModel` whose actions are scoring vectors.

    An action is a vector in ``[-1, 1]^D``: ``e`` weights over the product embeddings
    (:func:`product_embeddings`), then ``1 + n_channels`` channel scores (no message, e-mail,
    SMS, push), then one score per offer when there are several. The slate is the ``K``
    allowed products with the highest ``embedding · weights``, best first (DRR's actor); the
    channel and the offer are the highest-scoring ones. A channel without consent delivers
    nothing.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.embeddings = np.ascontiguousarray(product_embeddings(self))
        self.n_offers = len(self.actions.offers)
        self.action_dim = (
            self.embeddings.shape[1]
            + 1
            + len(CHANNELS)
            + (self.n_offers if self.n_offers > 1 else 0)
        )

    def check_actions(self, actions: np.ndarray, n: int) -> np.ndarray:
        """``actions`` as a finite ``(n, D)`` float array.

        Raises:
            ValueError: For another shape or a non-finite value.
        """
        actions = np.asarray(actions, dtype=np.float64).reshape(n, -1)
        if actions.shape[1] != self.action_dim or not np.all(np.isfinite(actions)):
            raise ValueError(f"actions must be finite vectors of length {self.action_dim}")
        return actions

    def decode(self, batch: Any, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(slates (n, K), channels (n,), discounts (n,))`` of scoring vectors ``(n, D)``."""
        actions = self.check_actions(actions, batch.n)
        e = self.embeddings.shape[1]
        slates = np.empty((batch.n, self.slate_size), dtype=np.intp)
        self._kernels.slate_decode_kernel(
            np.ascontiguousarray(actions[:, :e]),
            self.embeddings,
            self.arrays.available,
            batch.recent,
            slates,
        )
        channel_scores = actions[:, e : e + 1 + len(CHANNELS)]
        choice = np.argmax(channel_scores, axis=1)
        channels = np.where(choice == 0, len(CHANNELS), choice - 1).astype(np.intp)
        offers = np.asarray(self.actions.offers)
        if self.n_offers > 1:
            discounts = offers[np.argmax(actions[:, e + 1 + len(CHANNELS) :], axis=1)]
        else:
            discounts = np.full(batch.n, offers[0])
        return slates, channels, discounts

    def expected_rewards(self, batch: Any) -> np.ndarray:
        """Not defined: a slate world's actions are continuous.

        Raises:
            TypeError: Always; use :meth:`expected_rewards_of` (given scoring vectors),
                :meth:`~rec_env.item_dynamics.ItemModel.expected_slate_rewards` (given slates)
                or :meth:`~rec_env.item_dynamics.ItemModel.oracle_slates`.
        """
        raise TypeError(
            "the slate world has continuous actions: use expected_rewards_of(batch, actions), "
            "expected_slate_rewards(batch, slates, channels, discounts) or oracle_slates(batch)"
        )

    def expected_rewards_of(self, batch: Any, actions: np.ndarray) -> np.ndarray:
        """Exact expected immediate reward ``(n,)`` of the slate each scoring vector selects."""
        slates, channels, discounts = self.decode(batch, actions)
        return self.expected_slate_rewards(batch, slates, channels, discounts)

    def step(self, batch: Any, actions: np.ndarray, rng: np.random.Generator) -> Any:
        """Advance every customer one cycle under the slate each scoring vector selects."""
        slates, channels, discounts = self.decode(batch, actions)
        return self.step_slates(batch, slates, channels, discounts, rng)


class _ItemEnvBase(gym.Env[np.ndarray, Any]):
    """What the item and slate envs share: settings, customers, observation, rendering."""

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["human", "ansi", "rgb_array"],
        "render_fps": 4,
    }
    world: ClassVar[str] = "item"

    def __init__(
        self,
        settings: EnvSettings | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        from rec_env.env import check_render_mode, resolve_settings, shared_model

        check_render_mode(render_mode, self.metadata["render_modes"])
        overrides.setdefault("world", self.world)
        self.settings = resolve_settings(settings, **overrides)
        if self.settings.world != self.world:
            raise ValueError(
                f"this env is the {self.world} world, got world={self.settings.world!r}"
            )
        self.model: ItemModel = shared_model(self.settings)  # type: ignore[assignment]
        self.horizon = self.settings.horizon
        self.render_mode = render_mode
        self.feature_names: tuple[str, ...] = self.model.feature_names
        self.observation_space = spaces.Box(
            self.model.obs_low, self.model.obs_high, dtype=np.float32
        )
        self._batch = self.model.new_batch(1)
        self._rows = np.zeros(1, dtype=np.intp)
        self._pool: CustomerPool | None = None
        self._t = 0
        self._last: dict[str, float] | None = None
        self.renderer: CustomerRenderer | None = (
            CustomerRenderer(self.model.actions, self.horizon, self.metadata["render_fps"])
            if render_mode in IMAGE_RENDER_MODES
            else None
        )

    @property
    def segment(self) -> str:
        """Segment name of the current customer."""
        return self.model.sampler.segment_names[int(self._batch.segment[0])]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new customer drawn from the population."""
        super().reset(seed=seed)
        if options:
            raise ValueError(f"unknown reset option(s) {', '.join(options)}")
        if self._pool is None or self._pool.rng is not self.np_random:
            self._pool = CustomerPool(self.model.sampler, self.np_random, chunk=64)
        self.model.draw_customers(self._batch, self._rows, self._pool)
        self._t = 0
        self._last = None
        if self.renderer is not None:
            self.renderer.reset()
            if self.render_mode == "human":
                self.render()
        return self._obs(), {"segment": self.segment}

    def _finish(self, outcome: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict]:
        values = outcome.customer(0, ("reward", "terminated", *ITEM_INFO_KEYS))
        self._t += 1
        self._last = values
        if self.renderer is not None:
            self.renderer.record_message(*self._message(), values)
            if self.render_mode == "human":
                self.render()
        info = {key: values[key] for key in ITEM_INFO_KEYS}
        obs = outcome.observation[0]
        return obs, values["reward"], values["terminated"] > 0.5, self._t >= self.horizon, info

    def _obs(self) -> np.ndarray:
        return self._batch.features[:, 0].astype(np.float32)

    def utilities(self) -> np.ndarray:
        """``(n_products,)``: the customer's true expected profit of each product shown alone."""
        return self.model.utilities(self._batch)[0]

    def _message(self) -> tuple[str, ActionGlyph]:
        """The last step's message as the picture names and draws it."""
        raise NotImplementedError

    def render(self) -> str | np.ndarray | None:
        """The customer and the last cycles as text (``"ansi"``) or a picture.

        Text: the cycle, the segment, the last outcome and every feature. Picture
        (``"rgb_array"``, or ``"human"`` in a window): the strategy env's picture
        (:mod:`rec_env.render.figure`) of the 16 strategy features, the messages of the last
        weeks with their products, and the profit so far.
        """
        if self.renderer is not None:
            features = self._batch.features[:16, 0]
            if self.render_mode == "human":
                self.renderer.show(features, self.segment, self._t)
                return None
            return self.renderer.frame(features, self.segment, self._t)
        if self.render_mode is None:
            return None
        last = "last: none"
        if self._last is not None:
            happened = [k for k in ("delivered", "opened", "clicked", "purchased") if self._last[k]]
            last = f"last: reward={self._last['reward']:+.4g} ({', '.join(happened) or 'nothing'})"
        cells = ", ".join(
            f"{name}={value:.4g}"
            for name, value in zip(self.feature_names, self._batch.features[:, 0], strict=True)
        )
        return f"cycle {self._t} [{self.segment}] {last} | {cells}"

    def close(self) -> None:
        """Close the ``"human"`` window, if one is open."""
        if self.renderer is not None:
            self.renderer.close()


class ItemRecommendationEnv(_ItemEnvBase):
    r"""Weekly product recommendations for one simulated customer.

    ## Description

    Every cycle (7 days by default) the retailer decides whether to send one customer a product
    recommendation, which product, and by which channel (e-mail, SMS or push), optionally with
    an offer on it. It is the customer model of ``rec_env/Recommendation-v0`` (the same
    population, organic purchases, consent, fatigue, unsubscribes, discount habits and churn,
    through the same code), with products: :class:`~rec_env.item_dynamics.ItemModel`.

    One cycle, for a message carrying product :math:`j` (price :math:`p_j`, margin
    :math:`m_j`, unit topic vector :math:`z_j`, category :math:`c_j`) on channel :math:`c`
    with discount :math:`d`, to a customer with unit taste :math:`\tau`:

    1. **Consent and opens** as in the strategy world: delivered only with consent on
       :math:`c`; opened (engaged) with probability ``responsiveness_c · exp(-fatigue_sensitivity
       · contacts_last_30d)``.
    2. **Click.** An engaged customer clicks the product or nothing by a multinomial logit:
       :math:`P(\text{click}) = e^{v_j} / (e^{w_0} + e^{v_j})`, with utility
       :math:`v_j = w_\text{taste}\,\tau\cdot z_j + w_\text{novelty}\,\nu\,[\text{new}_j] -
       w_\text{boredom}\,b_{c_j}` (slates: see ``SlateRecommendation-v0``).
    3. **Buy** the clicked product with probability :math:`\min(1, w_\text{buy}\,\kappa\,
       e^{w_\text{buy taste}(\tau\cdot z_j - 1)}\,e^{-s\max(0, \ln(p_j(1-d)/v))}\,
       e^{-w_\text{satiation} S_{c_j}}\,(1 + \epsilon\,d/0.15))`: :math:`\kappa` the
       customer's click conversion, :math:`s` their price sensitivity, :math:`v` their usual
       order value, :math:`\epsilon` their discount elasticity.
    4. **Organic purchases** happen with the strategy world's probability (engagement, discount
       habit); the category is drawn with weights :math:`\text{share}_c\,e^{w_\text{organic}
       \tau\cdot \bar z_c - w_\text{satiation} S_c}` and the product within it by popularity
       (a binary search: the step does not scan the catalog).
    5. **Money.** Profit is :math:`p_j(m_j - d)` for a bought recommended product, plus
       :math:`p_k m_k` for an organic one, minus the message cost.
    6. **Lifecycle**: unsubscribes, churn, visits and the RFM update exactly as in the strategy
       world (a message purchase is a purchase; the order value moves ``monetary_value``).
    7. **Sequential item effects**, each with a test of its direction:

       * *interest drift*: a click moves the taste towards the product,
         :math:`\tau \leftarrow (\tau + 0.05\,z_j)/\lVert\cdot\rVert`, a purchase by 0.15
         (RecSim's interest evolution);
       * *satiation*: a purchase in category :math:`c` adds 1 to :math:`S_c`, which decays as
         :math:`e^{-\text{days}/45}`; it lowers buying in :math:`c` (steps 3-4);
       * *boredom*: every product of :math:`c` shown in a delivered message adds 1 to
         :math:`b_c`, which decays as :math:`e^{-\text{days}/21}`; it lowers clicks in
         :math:`c` (after Kapoor et al. 2015's sensitised/bored states);
       * *novelty*: new products get :math:`w_\text{novelty}\,\nu` of click utility,
         :math:`\nu \sim \text{Beta}(1.5, 3.5)` the customer's novelty appetite.

    The constants :math:`w` are :data:`rec_env.item_dynamics.ITEM_CONSTANTS`.

    ## Action Space

    ``Discrete(1 + n_products · 3 · n_offers)``: action 0 sends nothing; action
    ``1 + (product · 3 + channel) · n_offers + offer`` sends one product (``action_names``:
    ``"P0001:email"``). 601 actions for the default 200-product table. A flat ``Discrete`` is
    what every SB3 algorithm trains (DQN needs it) and what joint masks apply to exactly
    (MaskablePPO: consent × stock × repeat); a factored ``MultiDiscrete`` could not express
    "no product without a channel" or consent per channel in its per-dimension masks. At
    10,000 products (30,001 actions) the flat space still trains, but a policy head that large
    learns slowly: use ``SlateRecommendation-v0``'s scoring action there (its size does not
    grow with the catalog). ``action_masks()`` is False for a channel without consent, a product
    out of stock, and the products of the customer's last message.

    ## Observation Space

    ``Box(low, high, (16 + 3C,), float32)`` (52 for the default 12 categories), names in
    ``feature_names`` (:mod:`rec_env.item_features`):

    | Num          | Observation              | Unit      | Min | Max |
    |--------------|--------------------------|-----------|-----|-----|
    | 0-15         | the strategy env's 16    | see there |     |     |
    | 16 …         | ``purchases_<category>`` | purchases | 0   | 20  |
    | 16 + C …     | ``recommended_<category>`` | products | 0  | 50  |
    | 16 + 2C …    | ``days_since_<category>`` | days     | 0   | 365 |

    ``purchases_<c>`` is the satiation state (purchases decayed with a 45-day time constant),
    ``recommended_<c>`` the boredom state (products shown, 21 days), ``days_since_<c>`` the
    days since the last purchase in the category (365: never or longer ago).

    ## Rewards

    ``reward_mode="profit"`` (default): the cycle's gross profit in USD (step 5).
    ``"conversion"``: 1 if the customer bought anything. ``expected_rewards()`` is the exact
    expected reward of every action; ``utilities()`` the customer's true expected profit of
    each product shown alone (the ranking the item metrics judge against).

    ## Starting State, Episode End, Information

    As ``rec_env/Recommendation-v0``: a customer from the population with a taste, one past
    purchase in a category drawn by taste; churn terminates, ``horizon`` (52) truncates.
    ``info`` has ``profit``, ``revenue``, ``purchased``, ``delivered``, ``opened``, ``clicked``,
    ``click_position``, ``clicked_product`` (-1: none), ``message_purchase``,
    ``organic_purchase``, ``unsubscribed`` and ``churned``.

    ## Arguments

    ``settings`` or its fields as keywords: ``profile``, ``reward_mode``, ``catalog`` (channel
    costs), ``products`` (product table name or path), ``offers`` (e.g. ``(0.0, 0.15)``),
    ``choice_model``, ``horizon``, ``cycle_days``; ``render_mode`` ``None``, ``"human"``,
    ``"ansi"`` or ``"rgb_array"`` (the strategy env's picture, with products in the calendar).

    ## Version History

    * v0: Initial version.
    """

    world: ClassVar[str] = "item"

    def __init__(
        self,
        settings: EnvSettings | Mapping[str, Any] | None = None,
        *,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(settings, render_mode, **overrides)
        self.action_names: tuple[str, ...] = self.model.actions.names
        self.action_space = spaces.Discrete(self.model.actions.n_actions)
        self._action = np.zeros(1, dtype=np.intp)

    def step(
        self, action: int | np.integer
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Run one campaign cycle; see the class docstring."""
        if not 0 <= action < self.model.actions.n_actions:
            raise ValueError(f"action {action!r} is outside Discrete({self.action_space.n})")
        self._action[0] = action
        return self._finish(self.model.step(self._batch, self._action, self.np_random))

    def action_masks(self) -> np.ndarray:
        """``(n_actions,)`` bool: consent, stock and no repeat of the last message."""
        return self.model.action_masks(self._batch)[0]

    def _message(self) -> tuple[str, ActionGlyph]:
        action = int(self._action[0])
        return self.action_names[action], self.renderer.glyphs[action]  # type: ignore[union-attr]

    def expected_rewards(self) -> np.ndarray:
        """True expected immediate reward of every action for the current customer."""
        return self.model.expected_rewards(self._batch)[0]


class SlateRecommendationEnv(_ItemEnvBase):
    r"""Weekly e-mails with a slate of ``K`` products for one simulated customer.

    ## Description

    The item world of ``rec_env/ItemRecommendation-v0`` (every formula there holds), with
    ``K`` products per message (``slate_size``, default 4: an e-mail with four tiles). An
    engaged customer clicks at most one product: with ``choice_model="mnl"`` (default) position
    :math:`m` is clicked with probability :math:`e^{v_m - 0.3m} / (e^{w_0} + \sum_l
    e^{v_l - 0.3l})` (position bias 0.3 per slot, as RecSim's multinomial logit with a no-click
    option); with ``"cascade"`` the customer scans the slate in order and clicks position
    :math:`m` with :math:`\alpha_m = e^{-0.3m}\sigma(v_m - w_0)` if no earlier one was clicked.
    Every product shown adds to the boredom of its category, so diverse slates bore less.

    ## Action Space

    ``Box(-1, 1, (D,), float32)``: a scoring vector (:class:`SlateModel`). Its first ``e``
    entries weight the product embeddings (:func:`product_embeddings`: topics, log price,
    margin, new, log popularity); the slate is the ``K`` allowed products with the highest
    scores, best first: DRR's actor (seed 002) and Virtual Taobao's. Then four channel scores
    (none, e-mail, SMS, push; the highest wins) and, with several ``offers``, one score per
    offer. The action size does not depend on the catalog size; decoding is one
    ``(e × n_products)`` product per customer. Out-of-stock products and the products of the
    last message are never in a slate; a channel without consent delivers nothing (so no
    policy can message a customer without consent).

    ## Observation Space, Rewards, Episode End

    As ``rec_env/ItemRecommendation-v0``. ``expected_reward(action)`` is the exact expected
    reward of a given slate action; ``oracle_slate()`` the myopic oracle's slate (greedy: each
    position takes the product that most raises the exact expected slate value; the best
    consented channel, or no message) and its value. ``info`` also has ``slate`` (product
    indices, -1 padded) and ``channel``.

    ## Version History

    * v0: Initial version.
    """

    world: ClassVar[str] = "slate"

    def __init__(
        self,
        settings: EnvSettings | Mapping[str, Any] | None = None,
        *,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(settings, render_mode, **overrides)
        model: SlateModel = self.model  # type: ignore[assignment]
        self.action_space = spaces.Box(-1.0, 1.0, (model.action_dim,), dtype=np.float32)
        self._shown: tuple[np.ndarray, int] = (np.full(0, -1), len(CHANNELS))

    def _message(self) -> tuple[str, ActionGlyph]:
        slate, channel = self._shown
        products = [self.model.products.ids[p] for p in slate if p >= 0]
        if channel >= len(CHANNELS) or not products:
            return "no_action", ActionGlyph("none", "none", "")
        name = f"{CHANNELS[channel]}: {', '.join(products)}"
        return name, ActionGlyph(CHANNELS[channel], "product", products[0])

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Run one campaign cycle with the slate the scoring vector selects."""
        model: SlateModel = self.model  # type: ignore[assignment]
        slates, channels, discounts = model.decode(self._batch, np.asarray(action)[None, :])
        outcome = model.step_slates(self._batch, slates, channels, discounts, self.np_random)
        self._shown = (slates[0], int(channels[0]))
        obs, reward, terminated, truncated, info = self._finish(outcome)
        info["slate"] = slates[0].copy()
        info["channel"] = "none" if channels[0] >= len(CHANNELS) else CHANNELS[channels[0]]
        return obs, reward, terminated, truncated, info

    def expected_reward(self, action: np.ndarray) -> float:
        """Exact expected immediate reward of the slate ``action`` selects."""
        model: SlateModel = self.model  # type: ignore[assignment]
        slates, channels, discounts = model.decode(self._batch, np.asarray(action)[None, :])
        return float(model.expected_slate_rewards(self._batch, slates, channels, discounts)[0])

    def oracle_slate(self) -> tuple[np.ndarray, str, float]:
        """The myopic oracle's message: ``(slate, channel, expected value net of cost)``."""
        slates, channels, values = self.model.oracle_slates(self._batch)
        channel = "none" if channels[0] >= len(CHANNELS) else CHANNELS[channels[0]]
        return slates[0], channel, float(values[0])
