"""The customer model: batched state, and the one implementation of dynamics and reward.

:class:`CustomerModel` holds a compiled catalog and a population, and advances a
:class:`CustomerBatch` of ``n`` customers by one campaign cycle at a time. The formulas live in
:mod:`rec_env._kernels` as batched kernels shared by :meth:`CustomerModel.step` and
:meth:`CustomerModel.expected_rewards`. The Gymnasium env (a batch of one), the vectorised env,
the cohort rollout and the server are adapters over this class.

Determinism: every step draws exactly ``rng.random((5, n))`` and ``rng.standard_normal(n)``
whatever the actions are, so two policies run from the same seed meet the same customers and the
same random numbers (common random numbers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rec_env.features import CONSENT_FEATURES, FEATURE_INDEX, FEATURE_NAMES, consent_masks
from rec_env.parameters import HIDDEN_PARAMETERS

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.catalog import ActionTable
    from rec_env.population import CustomerSampler, Population

__all__ = [
    "ITEM_OUTCOME_FIELDS",
    "OUTCOME_FIELDS",
    "REWARD_MODES",
    "CustomerBatch",
    "CustomerModel",
    "CustomerPool",
    "RewardMode",
    "StepOutcome",
]

RewardMode = Literal["profit", "conversion", "rule"]
REWARD_MODES: tuple[str, ...] = ("profit", "conversion", "rule")
OUTCOME_FIELDS: tuple[str, ...] = (
    "reward",
    "terminated",
    "delivered",
    "opened",
    "purchased",
    "revenue",
    "discount_cost",
    "shipping_cost",
    "contact_cost",
    "unsubscribed",
    "churned",
    "profit",
    "visited",
    "orders",
)
"""What one cycle produces per customer: the rows of :attr:`StepOutcome.values`, in order.

The kernels write these rows (:mod:`rec_env._kernels` names them from this tuple), and every
reader goes through :class:`StepOutcome` by name.
"""
ITEM_OUTCOME_FIELDS: tuple[str, ...] = (
    *OUTCOME_FIELDS,
    "clicked",
    "click_position",
    "clicked_product",
    "message_purchase",
    "organic_purchase",
    "organic_product",
)
"""The item world's outcome rows: :data:`OUTCOME_FIELDS` first, then whether a product of the
message was clicked, its position in the slate and its product index (-1: none), whether it was
bought, and whether and which product was bought organically (-1: none)."""
_OUTCOME_ROW = {name: row for row, name in enumerate(ITEM_OUTCOME_FIELDS)}
_CONSENT_ROWS = [FEATURE_INDEX[name] for name in CONSENT_FEATURES]


class CustomerBatch:
    """The state of ``n`` customers, feature-major (one contiguous row per feature).

    Attributes:
        features: ``(n_features, n)`` float64 observed features.
        hidden: ``(n_hidden, n)`` float64 hidden parameters (:data:`HIDDEN_PARAMETERS` order).
        contact_history: ``(window_30d, n)`` messages delivered in each recent cycle.
        discount_history: ``(window_90d, n)`` discounts delivered in each recent cycle.
        segment: ``(n,)`` segment index of each customer.
        cursor: Position of the current cycle in the history ring buffers.
    """

    def __init__(self, n: int, window_30d: int, window_90d: int) -> None:
        self.n = n
        self.features = np.zeros((len(FEATURE_NAMES), n))
        self.hidden = np.zeros((len(HIDDEN_PARAMETERS), n))
        self.contact_history = np.zeros((window_30d, n))
        self.discount_history = np.zeros((window_90d, n))
        self.segment = np.zeros(n, dtype=np.intp)
        self.cursor = 0

    def feature(self, name: str) -> np.ndarray:
        """The row of one observed feature (a view)."""
        return self.features[FEATURE_INDEX[name]]

    def parameter(self, name: str) -> np.ndarray:
        """The row of one hidden parameter (a view)."""
        return self.hidden[list(HIDDEN_PARAMETERS).index(name)]


class StepOutcome:
    """What happened to each customer in one cycle, read by name.

    ``outcome.reward``, ``outcome.profit`` … are ``(n,)`` rows (``terminated`` as bool), one per
    name in :data:`OUTCOME_FIELDS`.

    Attributes:
        values: ``(len(OUTCOME_FIELDS), n)`` outcome per customer.
        observation: ``(n, n_features)`` float32 observations after the cycle.
    """

    FIELDS: tuple[str, ...] = OUTCOME_FIELDS

    def __init__(self, values: np.ndarray, observation: np.ndarray) -> None:
        self.values = values
        self.observation = observation

    def __getattr__(self, name: str) -> np.ndarray:
        row = _OUTCOME_ROW.get(name, -1)
        if not 0 <= row < self.values.shape[0]:
            raise AttributeError(name)
        if name == "terminated":
            return self.values[row] > 0.5
        return self.values[row]

    def customer(self, i: int, names: tuple[str, ...] = OUTCOME_FIELDS) -> dict[str, float]:
        """The outcome of customer ``i`` as plain floats, for ``info`` dicts."""
        column = self.values[:, i].tolist()
        return {name: column[_OUTCOME_ROW[name]] for name in names}


class CustomerPool:
    """New customers drawn in chunks from one generator, handed out a few at a time.

    Drawing customers costs a few dozen generator calls whatever their number, so an env that
    restarts one customer at a time draws them ``chunk`` at a time and keeps the rest.
    """

    def __init__(self, sampler: CustomerSampler, rng: np.random.Generator, chunk: int = 256):
        self.sampler = sampler
        self.rng = rng
        self.chunk = chunk
        self._observed: np.ndarray | None = None
        self._hidden: np.ndarray | None = None
        self._segments = np.zeros(0, dtype=np.intp)

    def take(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``k`` new customers: observed ``(k, F)``, hidden ``(k, P)``, segments ``(k,)``."""
        if self._observed is None or self._segments.size < k:
            observed, hidden, segments = self.sampler.sample(self.rng, max(self.chunk, k))
            if self._observed is not None and self._hidden is not None:
                observed = np.concatenate([self._observed, observed])
                hidden = np.concatenate([self._hidden, hidden])
            self._observed, self._hidden = observed, hidden
            self._segments = np.concatenate([self._segments, segments])
        assert self._observed is not None and self._hidden is not None
        taken = self._observed[:k], self._hidden[:k], self._segments[:k]
        self._observed, self._hidden = self._observed[k:], self._hidden[k:]
        self._segments = self._segments[k:]
        return taken


class CustomerModel:
    """Batched customer dynamics and reward for one catalog and one population.

    Args:
        actions: The compiled action catalog.
        population: The customer population.
        reward_mode: ``"profit"``, ``"conversion"`` or ``"rule"``.
        cycle_days: Length of one campaign cycle in days.
        purchase_days: Let a cycle hold an organic purchase on each of its days (``orders``
            counts them; profit and ``frequency`` count every order), instead of at most one
            purchase a cycle. Whether a customer buys in a cycle is drawn the same way.
    """

    def __init__(
        self,
        actions: ActionTable,
        population: Population,
        reward_mode: RewardMode = "profit",
        cycle_days: float = 7.0,
        purchase_days: bool = False,
    ) -> None:
        from rec_env import _kernels
        from rec_env.population import CustomerSampler

        if reward_mode not in REWARD_MODES:
            raise ValueError(
                f"reward_mode must be one of {', '.join(REWARD_MODES)}, got {reward_mode!r}"
            )
        if not 1.0 <= cycle_days <= 90.0:
            raise ValueError(f"cycle_days must be between 1 and 90, got {cycle_days}")
        self._kernels = _kernels
        self.actions = actions
        self.population = population
        self.sampler = CustomerSampler(population)
        self.reward_mode = reward_mode
        self._reward_code = REWARD_MODES.index(reward_mode)
        self.purchase_days = bool(purchase_days)
        # Twins of a retailer's customers (EnvSettings.customers): new customers come from them.
        self.customers: Any = None
        # Business rules (EnvSettings.rules, rec_env.rules.CompiledRules): masks with consent.
        self.rules: Any = None
        self._purchase_days = round(cycle_days) if purchase_days else 0
        self.cycle_days = float(cycle_days)
        self.window_30d = max(1, round(30.0 / cycle_days))
        self.window_90d = max(1, round(90.0 / cycle_days))
        table = np.zeros((_kernels.N_ACTION_ROWS, actions.n_actions))
        table[_kernels.A_CHANNEL] = actions.channel
        table[_kernels.A_DISCOUNT] = actions.discount
        table[_kernels.A_SHIPPING] = actions.shipping
        table[_kernels.A_RECOMMENDATION] = actions.recommendation
        table[_kernels.A_COST] = actions.cost
        self._table = table

    # ------------------------------------------------------------------ customers
    def new_batch(self, n: int) -> CustomerBatch:
        """An empty batch of ``n`` customers (fill it with :meth:`draw_customers`)."""
        return CustomerBatch(n, self.window_30d, self.window_90d)

    def draw_customers(
        self,
        batch: CustomerBatch,
        rows: np.ndarray,
        source: np.random.Generator | CustomerPool,
    ) -> None:
        """Replace the customers at ``rows`` by new ones from a generator or a pool.

        A pool is anything with ``take(k)`` (a :class:`CustomerPool`, or a
        :class:`~rec_env.fitting.twins.TwinPool` of a retailer's own customers). A generator
        draws from the population, or from the model's twins if it has them.
        """
        if hasattr(source, "take"):
            observed, hidden, segments = source.take(rows.size)
        elif self.customers is not None:
            observed, hidden, segments = self.customers.sample(source, rows.size)
        else:
            observed, hidden, segments = self.sampler.sample(source, rows.size)
        self.set_customers(batch, rows, observed, hidden, segments)

    def set_customers(
        self,
        batch: CustomerBatch,
        rows: np.ndarray,
        observed: np.ndarray,
        hidden: np.ndarray,
        segments: np.ndarray,
    ) -> None:
        """Write given customers into ``rows`` and reset their contact history.

        Recent contacts given in the observation are placed in the most recent past cycle of the
        ring buffers, so they expire after a full window like real ones.

        Args:
            batch: The batch to write into.
            rows: Row indices, shape ``(k,)``.
            observed: ``(k, n_features)`` observed features.
            hidden: ``(k, n_hidden)`` hidden parameters in :data:`HIDDEN_PARAMETERS` order.
            segments: ``(k,)`` segment indices.
        """
        batch.segment[rows] = segments
        self._kernels.assign_kernel(
            np.ascontiguousarray(rows, dtype=np.intp),
            np.ascontiguousarray(observed, dtype=np.float64),
            np.ascontiguousarray(hidden, dtype=np.float64),
            batch.features,
            batch.hidden,
            batch.contact_history,
            batch.discount_history,
            (batch.cursor - 1) % self.window_30d,
            (batch.cursor - 1) % self.window_90d,
        )

    # ------------------------------------------------------------------ dynamics
    def step(
        self, batch: CustomerBatch, actions: np.ndarray, rng: np.random.Generator
    ) -> StepOutcome:
        """Advance every customer by one cycle (the env docstring specifies the cycle).

        Args:
            batch: Customers, updated in place.
            actions: ``(n,)`` integer action per customer.
            rng: Source of all randomness.

        Returns:
            The cycle's outcome per customer.
        """
        if self.rules is not None:
            # A message the rules forbid is not sent, as one without consent is not delivered.
            allowed = self.rules.masks(batch.features.T)
            actions = np.where(
                allowed[np.arange(batch.n), actions], actions, self.actions.no_action
            )
        uniforms = rng.random((5, batch.n))
        normals = rng.standard_normal(batch.n)
        values = np.empty((self._kernels.N_OUT, batch.n))
        self._kernels.step_kernel(
            batch.features,
            batch.hidden,
            batch.contact_history,
            batch.discount_history,
            batch.cursor,
            actions,
            self._table,
            self.actions.gross_margin,
            self.population.contact_tolerance,
            self.population.order_value_sigma,
            self.cycle_days,
            self._reward_code,
            uniforms,
            normals,
            values,
            self._purchase_days,
        )
        batch.cursor += 1
        return StepOutcome(values, self.observe(batch))

    def observe(self, batch: CustomerBatch) -> np.ndarray:
        """Observations of the batch as a new ``(n, n_features)`` float32 array."""
        observation = np.empty((batch.n, len(FEATURE_NAMES)), dtype=np.float32)
        self._kernels.observe_kernel(batch.features, observation)
        return observation

    def action_masks(self, batch: CustomerBatch) -> np.ndarray:
        """``(n, n_actions)`` bool: False without consent, or where business rules forbid it.

        The rules are ``EnvSettings(rules=...)``'s caps, eligibility and suppression.
        """
        masks = consent_masks(batch.features[_CONSENT_ROWS].T, self.actions.channel)
        if self.rules is not None:
            masks &= self.rules.masks(batch.features.T)
        return masks

    def expected_rewards(self, batch: CustomerBatch) -> np.ndarray:
        """True expected immediate reward of every action for every customer.

        Computed in closed form from the hidden parameters with the same formulas ``step``
        samples from, in the model's ``reward_mode``.

        Returns:
            ``(n, n_actions)`` float64.
        """
        out = np.empty((batch.n, self.actions.n_actions))
        self._kernels.expected_kernel(
            batch.features,
            batch.hidden,
            self._table,
            self.actions.gross_margin,
            self.cycle_days / 365.0,
            self._reward_code,
            out,
            self._purchase_days,
        )
        return out
