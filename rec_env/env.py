"""``RecommendationEnv``: one customer at a time, as a Gymnasium environment."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rec_env.autoreset import check_customers
from rec_env.dynamics import CustomerModel, CustomerPool, RewardMode
from rec_env.features import FEATURE_NAMES, OBS_HIGH, OBS_LOW
from rec_env.render import IMAGE_RENDER_MODES, CustomerRenderer, render_text
from rec_env.settings import EnvSettings

__all__ = [
    "RENDER_MODES",
    "SINGLE_RENDER_MODES",
    "RecommendationEnv",
    "build_model",
    "check_render_mode",
    "model_spaces",
    "resolve_settings",
    "shared_model",
]

RENDER_MODES: tuple[str, ...] = ("ansi", "rgb_array")
"""Render modes of every env, the vector envs included."""
SINGLE_RENDER_MODES: tuple[str, ...] = ("human", *RENDER_MODES)
"""Render modes of the single-customer envs: a window shows one customer."""
_INFO_KEYS = ("profit", "revenue", "purchased", "delivered", "opened", "unsubscribed", "churned")
_STEP_FIELDS = ("reward", "terminated", *_INFO_KEYS)


def build_model(
    profile: str | Path = "default",
    reward_mode: RewardMode = "profit",
    catalog: str | Path = "strategy",
    cycle_days: float = 7.0,
    purchase_days: bool = False,
) -> CustomerModel:
    """Load a population and a catalog and build the batched customer model.

    Raises:
        ConfigError: If the population or catalog file is missing or invalid.
        ValueError: If ``reward_mode`` or ``cycle_days`` is invalid.
    """
    from rec_env.catalog import ActionTable, load_catalog
    from rec_env.population import load_population

    table = ActionTable.from_catalog(load_catalog(catalog))
    return CustomerModel(table, load_population(profile), reward_mode, cycle_days, purchase_days)


def resolve_settings(
    settings: EnvSettings | Mapping[str, Any] | None = None, **overrides: Any
) -> EnvSettings:
    """The settings of an env: ``settings`` (defaults if ``None``) with keyword overrides.

    Every env class takes either an :class:`EnvSettings` or its fields as keyword arguments
    (``gym.make`` passes keywords); overrides that are ``None`` are ignored.

    Raises:
        TypeError: If ``settings`` is neither settings, a mapping nor ``None``.
        ValueError: For an invalid or unknown setting (the message names it).
    """
    if settings is not None and not isinstance(settings, EnvSettings | Mapping):
        raise TypeError(
            f"settings must be an EnvSettings or a mapping, got {type(settings).__name__}; "
            "pass profile=..., reward_mode=... as keywords"
        )
    base = EnvSettings.coerce(settings)
    changes = {key: value for key, value in overrides.items() if value is not None}
    return base.replace(**changes) if changes else base


def shared_model(settings: EnvSettings) -> CustomerModel:
    """The customer model of ``settings``, built once per process and shared by every env.

    A :class:`CustomerModel` holds no customer state (each env keeps its own batch), so the
    ``n_envs`` single envs that SB3's ``make_vec_env`` or the zoo create need not each parse and
    validate the population and catalog files again. A file given by path is reloaded when it
    changes on disk.
    """
    stamps = (_file_stamp(settings.profile), _file_stamp(settings.catalog))
    if settings.world != "strategy":
        stamps += (_file_stamp(settings.products),)
    for name in (settings.customers, settings.rules):
        if name is not None:
            stamps += (_file_stamp(name),)
    return _cached_model(settings, stamps)


def _file_stamp(name: str) -> tuple[str, int] | None:
    path = Path(name)
    if not path.is_file():  # a shipped name; those files do not change
        return None
    return str(path.resolve()), path.stat().st_mtime_ns


@functools.lru_cache(maxsize=16)
def _cached_model(settings: EnvSettings, stamps: tuple[object, ...]) -> CustomerModel:
    return settings.build_model()


def model_spaces(model: Any) -> tuple[spaces.Box, spaces.Space]:
    """The single-customer observation and action spaces of a world's model.

    The strategy world: 16 features and ``Discrete(n_actions)``; the item world its
    ``16 + 3C`` features and ``Discrete(n_actions)``; the slate world a ``Box`` scoring vector.
    """
    low, high = getattr(model, "obs_low", OBS_LOW), getattr(model, "obs_high", OBS_HIGH)
    observation = spaces.Box(low, high, dtype=np.float32)
    action_dim = getattr(model, "action_dim", None)
    if action_dim is not None:
        return observation, spaces.Box(-1.0, 1.0, (action_dim,), dtype=np.float32)
    return observation, spaces.Discrete(model.actions.n_actions)


def check_render_mode(render_mode: str | None, modes: Sequence[str] = RENDER_MODES) -> None:
    """Raise ``ValueError`` unless ``render_mode`` is ``None`` or one of ``modes``."""
    if render_mode is not None and render_mode not in modes:
        raise ValueError(
            f"render_mode must be None or one of {', '.join(modes)}, got {render_mode!r}"
        )


class RecommendationEnv(gym.Env[np.ndarray, np.int64]):
    """Weekly marketing decisions for one simulated customer.

    ## Description

    Every cycle (7 days by default) the retailer decides what to send one customer: nothing, a
    10/15/20 % discount, free shipping, or a product recommendation, by e-mail, SMS or push. The
    customer buys on their own now and then (*organic* purchases), so a message is worth only the
    *incremental* purchases it causes, minus what it costs. Messages have consequences that last:
    fatigue, unsubscribes, discount habits and churn. The right action depends on the customer,
    and the best sequence of actions is not a sequence of myopically best actions.

    The dynamics and the reward live in :class:`rec_env.dynamics.CustomerModel` (batched numpy);
    this env is a batch of one. Every random draw comes from ``self.np_random``.

    One cycle, for action ``a`` (offer ``o`` on channel ``c``):

    1. **Organic purchases.** Without any message the customer buys with probability
       ``1 - exp(-purchase_rate · (0.5 + engagement) · habit · days / 365)``.
    2. **Consent and opens.** A message is delivered only with consent on ``c``. It is opened
       (and clicked) with probability ``responsiveness_c · exp(-fatigue_sensitivity ·
       contacts_last_30d)``.
    3. **Offer relevance.** An opened message converts with probability ``click_conversion ·
       (1 + discount_elasticity · rate / 0.15 + shipping_elasticity · [free shipping] +
       recommendation_affinity · engagement · [recommendation])``; discount-sensitive customers
       have high discount elasticity, free-shipping-preferring ones high shipping elasticity.
    4. **Costs.** A delivered discount applies to every purchase of the cycle (coupon leakage),
       free shipping costs its shipping value per purchase, and every delivered message costs
       its channel cost.
    5. **Fatigue and unsubscribes.** Recent messages lower open rates, and a message triggers an
       unsubscribe from ``c`` with probability ``unsubscribe_rate · exp(2 · fatigue_sensitivity ·
       contacts_last_30d)``. Consent never comes back.
    6. **Discount habituation.** ``habit = exp(-discount_habituation · discounts_last_90d)``
       lowers full-price purchases; a delivered discount lifts the penalty for its cycle.
    7. **Churn.** The customer lapses for good with hazard ``churn_rate · (1 + last_purchase_days
       / 365) · (1 + contact_churn_sensitivity · max(0, contacts - tolerance))`` per year, where
       ``contacts`` counts the last 30 days including this cycle's message (never in a cycle with a
       purchase). Churn terminates the episode.
    8. **State update.** A purchase resets ``last_purchase_days``, adds one to ``frequency``,
       moves ``monetary_value`` towards the order value and raises engagement.

    ## Action Space

    ``Discrete(n_actions)``: one entry per action of the catalog (``catalog="strategy"``: 16
    actions: ``no_action`` plus {10 %, 15 %, 20 % discount, free shipping, recommendation} ×
    {email, sms, push}). ``action_names`` lists them. ``action_masks()`` is False for actions on a
    channel without consent (the sb3-contrib ``MaskablePPO`` convention). A masked action is
    not delivered: it costs nothing and does nothing.

    ## Observation Space

    ``Box(low, high, (16,), float32)``, names in ``feature_names``:

    | Num | Observation             | Unit           | Min | Max  |
    |-----|-------------------------|----------------|-----|------|
    | 0   | recency                 | days since last purchase, visit or open | 0 | 730 |
    | 1   | frequency               | purchases / year (EW, 365 d) | 0 | 60 |
    | 2   | monetary_value          | USD, average order (EW) | 0 | 2000 |
    | 3   | engagement_score        | score          | 0   | 1    |
    | 4   | discount_sensitive      | flag           | 0   | 1    |
    | 5   | free_shipping_preferred | flag           | 0   | 1    |
    | 6   | email_opens             | observed open rate | 0 | 1  |
    | 7   | sms_response            | observed click rate | 0 | 1 |
    | 8   | push_response           | observed open rate | 0 | 1  |
    | 9   | last_purchase_days      | days           | 0   | 730  |
    | 10  | days_since_contact      | days           | 0   | 365  |
    | 11  | contacts_last_30d       | messages       | 0   | 31   |
    | 12  | discounts_last_90d      | offers         | 0   | 91   |
    | 13  | consent_email           | flag           | 0   | 1    |
    | 14  | consent_sms             | flag           | 0   | 1    |
    | 15  | consent_push            | flag           | 0   | 1    |

    The customer's hidden parameters (purchase rate, order value, channel responsiveness,
    elasticities, fatigue sensitivity, unsubscribe and churn hazards, habituation) are never
    observed; ``rec_env.population.HIDDEN_PARAMETERS`` documents them.

    ## Rewards

    ``reward_mode="profit"`` (default): gross margin of the cycle's purchases (list price ×
    ``gross_margin``) minus discount cost, minus shipping subsidy, minus message cost, in USD.
    ``"conversion"``: 1 if the customer purchased in the cycle. ``"rule"``: the classic one-step
    targeting rule, +0.5 for a discount to a discount-sensitive customer or free shipping to a
    free-shipping-preferring one, +0.3 for using the channel with the best observed response,
    clipped to [0, 1]. ``expected_rewards()`` gives the exact expected immediate reward of every
    action (oracle access).

    ## Starting State

    A customer drawn from the population (``profile``): a segment by weight, then the segment's
    feature and hidden-parameter distributions. ``reset(options={"customer": {...}})`` starts
    from given observed features (a mapping of feature names, or a ``CustomerProfile``); the
    hidden parameters are drawn from the given ``segment`` or the most likely one.

    ## Episode End

    * Termination: the customer churns (lapses for good).
    * Truncation: ``horizon`` cycles have passed (52 by default, also the registration's
      ``max_episode_steps``). The registration's ``TimeLimit`` still truncates at 52, so for a
      longer horizon through ``gym.make`` pass both: ``gym.make(ENV_ID, horizon=104,
      max_episode_steps=104)``. ``make_vec_env`` and the evaluator use ``horizon`` alone.

    ## Information

    ``step`` returns ``info`` with floats ``profit``, ``revenue``, ``purchased``, ``delivered``,
    ``opened``, ``unsubscribed`` and ``churned``. ``reset`` returns ``segment`` (its name).

    ## Rendering

    ``render_mode="ansi"``: one line with the cycle, the segment, the last action, its reward and
    outcome, and every feature. ``"rgb_array"``: a ``(450, 800, 3)`` uint8 picture of the
    customer's year (:mod:`rec_env.render.figure`, drawn with matplotlib): the observed state
    (RFM, engagement and fatigue, channel response, discount habit, a chip per channel
    subscription), the messages of the last 13 weeks coloured by offer with their outcomes
    (opened, purchase and revenue, unsubscribe, churn), and the profit so far. ``"human"``: the
    same picture in a matplotlib window at ``metadata["render_fps"]``, drawn on every ``reset``
    and ``step`` (``render()`` returns ``None``); without a display it warns once and shows
    nothing. Record episodes with ``gymnasium.wrappers.RecordVideo``. ``env.renderer`` (``None``
    for the other modes) keeps the customer's cycles; ``env.renderer.title = "PPO"`` names the
    policy in the picture's header.

    ## Arguments

    | Parameter     | Default      | Description |
    |---------------|--------------|-------------|
    | `settings`    | `None`       | an `EnvSettings` (or mapping) with all of the next five |
    | `profile`     | `"default"`  | population name (`recenv profiles list`) or YAML path |
    | `reward_mode` | `"profit"`   | `"profit"`, `"conversion"` or `"rule"` |
    | `catalog`     | `"strategy"` | action catalog name or YAML path |
    | `horizon`     | `52`         | cycles before truncation (`DEFAULT_HORIZON`) |
    | `cycle_days`  | `7`          | days per cycle |
    | `render_mode` | `None`       | `None`, `"human"`, `"ansi"` or `"rgb_array"` |
    | `customers`   | `None`       | twins of your own customers (`fit_twins`) to start from |

    Keyword arguments override the fields of ``settings``; ``env.settings`` holds the result.

    ```python
    import gymnasium as gym
    env = gym.make("rec_env:rec_env/Recommendation-v0", reward_mode="conversion")
    envs = gym.make_vec("rec_env/Recommendation-v0", num_envs=1024,
                        vectorization_mode="vector_entry_point")  # batched, see vector_env
    ```

    ## Version History

    * v0: Initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": list(SINGLE_RENDER_MODES),
        "render_fps": 4,
    }

    def __init__(
        self,
        settings: EnvSettings | Mapping[str, Any] | None = None,
        *,
        profile: str | Path | None = None,
        reward_mode: RewardMode | None = None,
        catalog: str | Path | None = None,
        horizon: int | None = None,
        cycle_days: float | None = None,
        render_mode: str | None = None,
        customers: Any = None,
    ) -> None:
        check_render_mode(render_mode, SINGLE_RENDER_MODES)
        self.settings = resolve_settings(
            settings,
            profile=profile,
            reward_mode=reward_mode,
            catalog=catalog,
            horizon=horizon,
            cycle_days=cycle_days,
        )
        self.model = shared_model(self.settings)
        self.horizon = self.settings.horizon
        self.render_mode = render_mode
        self.feature_names: tuple[str, ...] = FEATURE_NAMES
        self.action_names: tuple[str, ...] = self.model.actions.names
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self.action_space = spaces.Discrete(self.model.actions.n_actions)
        self._batch = self.model.new_batch(1)
        self._action = np.zeros(1, dtype=np.intp)
        self._rows = np.zeros(1, dtype=np.intp)
        self._pool: Any = None
        self.customers = check_customers(customers, self.model)
        self._t = 0
        self._last_outcome: dict[str, float] | None = None
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
        """Start a new customer; see the class docstring's Starting State."""
        super().reset(seed=seed)
        customer = (options or {}).get("customer")
        if customer is None:
            if self._pool is None or self._pool.rng is not self.np_random:
                self._pool = (
                    CustomerPool(self.model.sampler, self.np_random, chunk=64)
                    if self.customers is None
                    else self.customers.pool(self.np_random, 64)
                )
            self.model.draw_customers(self._batch, self._rows, self._pool)
        else:
            self._set_customer(customer)
        self._t = 0
        self._last_outcome = None
        if self.renderer is not None:
            self.renderer.reset()
            if self.render_mode == "human":
                self.render()
        return self._obs(), {"segment": self.segment}

    def _set_customer(self, customer: Any) -> None:
        from rec_env.customer import CustomerProfile

        if not isinstance(customer, CustomerProfile):
            if not isinstance(customer, dict):
                raise TypeError("options['customer'] must be a dict or a CustomerProfile")
            if "features" not in customer:
                customer = {"features": customer}
            customer = CustomerProfile.model_validate(customer)
        sampler = self.model.sampler
        if customer.segment is None:
            segment = sampler.most_likely_segment(customer.features)
        elif customer.segment in sampler.segment_names:
            segment = sampler.segment_names.index(customer.segment)
        else:
            raise ValueError(
                f"unknown segment {customer.segment!r}; "
                f"this population has: {', '.join(sampler.segment_names)}"
            )
        observed, hidden, segments = sampler.sample(
            self.np_random, 1, np.array([segment]), fixed=customer.features
        )
        self.model.set_customers(self._batch, self._rows, observed, hidden, segments)

    def step(
        self, action: int | np.integer
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Run one campaign cycle; see the class docstring."""
        if not 0 <= action < self.model.actions.n_actions:
            raise ValueError(f"action {action!r} is outside Discrete({self.action_space.n})")
        self._action[0] = action
        outcome = self.model.step(self._batch, self._action, self.np_random)
        values = outcome.customer(0, _STEP_FIELDS)
        self._t += 1
        self._last_outcome = values
        if self.renderer is not None:
            self.renderer.record(int(action), values)
            if self.render_mode == "human":
                self.render()
        info = {key: values[key] for key in _INFO_KEYS}
        obs = outcome.observation[0]
        return obs, values["reward"], values["terminated"] > 0.5, self._t >= self.horizon, info

    def _obs(self) -> np.ndarray:
        return self._batch.features[:, 0].astype(np.float32)

    def action_masks(self) -> np.ndarray:
        """``(n_actions,)`` bool, False for actions on channels without consent."""
        return self.model.action_masks(self._batch)[0]

    def expected_rewards(self) -> np.ndarray:
        """True expected immediate reward of every action for the current customer."""
        return self.model.expected_rewards(self._batch)[0]

    def render(self) -> str | np.ndarray | None:
        """The current customer and the last cycles as text or a picture (see Rendering)."""
        features = self._batch.features[:, 0]
        if self.render_mode == "ansi":
            action = None if self._last_outcome is None else int(self._action[0])
            return render_text(
                features, self._t, self.segment, self.action_names, action, self._last_outcome
            )
        if self.renderer is None:
            return None
        if self.render_mode == "human":
            self.renderer.show(features, self.segment, self._t)
            return None
        return self.renderer.frame(features, self.segment, self._t)

    def close(self) -> None:
        """Close the ``"human"`` window, if one is open."""
        if self.renderer is not None:
            self.renderer.close()
