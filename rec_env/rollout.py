"""Run a policy over a cohort of customers for their whole lifetime (churn or horizon).

This is the simulation loop behind ``recenv simulate`` and the evaluator. A cohort is a batch of
customers that all start together from one seed: two policies run with the same seed meet the
same customers and the same random numbers, so their difference is measured without the noise
of different customers.

:func:`run_cohort` drives policies with one action per customer (the strategy world and the
single-product item world); :func:`run_slate_cohort` drives the slate world. Both take an
optional :class:`RolloutObserver`, which sees every decision before its step and every outcome
after it (the evaluator's item metrics); without one they do no extra work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rec_env.dynamics import CustomerBatch, CustomerModel, StepOutcome
from rec_env.features import CHANNELS
from rec_env.settings import DEFAULT_HORIZON

__all__ = [
    "Cohort",
    "CohortResult",
    "PolicyLike",
    "RolloutObserver",
    "SlatePolicyLike",
    "run_cohort",
    "run_slate_cohort",
]

_TOTALS = (
    "profit",
    "reward",
    "revenue",
    "discount_cost",
    "contact_cost",
    "purchases",
    "contacts",
    "unsubscribes",
    "cycles",
)
_OUTCOME_OF_TOTAL = {
    "purchases": "purchased",
    "contacts": "delivered",
    "unsubscribes": "unsubscribed",
}


@runtime_checkable
class PolicyLike(Protocol):
    """What the rollout needs from a policy (see ``rec_env.agents.Policy``)."""

    def predict(
        self,
        obs: np.ndarray,
        action_masks: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> np.ndarray:
        """Actions ``(n,)`` for observations ``(n, n_features)``."""
        ...


@runtime_checkable
class SlatePolicyLike(Protocol):
    """A policy that writes slate messages itself (``rec_env.agents.item_baselines``)."""

    def predict_slates(
        self, obs: np.ndarray, allowed_products: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(slates (n, K) -1 padded, channels (n,), discounts (n,))`` for observations."""
        ...


class RolloutObserver(Protocol):
    """Sees every cycle of a rollout: the messages decided, then what happened."""

    def on_decision(
        self, cohort: Cohort, slates: np.ndarray, channels: np.ndarray, alive: np.ndarray
    ) -> None:
        """Before the step: ``(n, K)`` products (-1 padded), ``(n,)`` channels, alive rows."""
        ...

    def on_outcome(self, outcome: StepOutcome, live: np.ndarray) -> None:
        """After the step: its outcome and ``live`` (1.0 for customers alive before it)."""
        ...


class Cohort:
    """A batch of customers who start together; exposes the oracle view of the batch.

    Args:
        model: The customer model.
        n_customers: Cohort size.
        seed: Seed of the generator behind every draw (customers and dynamics).
    """

    def __init__(self, model: CustomerModel, n_customers: int, seed: int | None) -> None:
        if n_customers < 1:
            raise ValueError(f"n_customers must be at least 1, got {n_customers}")
        self.model = model
        self.rng = np.random.default_rng(seed)
        self.batch: CustomerBatch = model.new_batch(n_customers)
        model.draw_customers(self.batch, np.arange(n_customers), self.rng)
        self.alive = np.ones(n_customers, dtype=bool)

    @property
    def n(self) -> int:
        """Number of customers."""
        return self.batch.n

    def observation(self) -> np.ndarray:
        """``(n, n_features)`` float32 observations."""
        return self.model.observe(self.batch)

    def action_masks(self) -> np.ndarray:
        """``(n, n_actions)`` bool consent masks."""
        return self.model.action_masks(self.batch)

    def expected_rewards(self) -> np.ndarray:
        """``(n, n_actions)`` true expected immediate rewards (oracle access)."""
        return self.model.expected_rewards(self.batch)


@dataclass
class CohortResult:
    """Per-customer totals over the horizon (arrays of shape ``(n,)``) and action counts.

    In the slate world ``action_counts`` counts messages by channel (``action_names``:
    ``no_action``, ``slate:email``, ``slate:sms``, ``slate:push``).
    """

    profit: np.ndarray
    reward: np.ndarray
    revenue: np.ndarray
    discount_cost: np.ndarray
    contact_cost: np.ndarray
    purchases: np.ndarray
    contacts: np.ndarray
    unsubscribes: np.ndarray
    churned: np.ndarray
    cycles: np.ndarray
    action_counts: np.ndarray
    action_names: tuple[str, ...]
    reward_per_cycle: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of customers."""
        return self.profit.shape[0]

    def kpis(self) -> dict[str, float]:
        """Headline KPIs: means per customer and rates."""
        customer_cycles = max(float(self.cycles.sum()), 1.0)
        return {
            "customers": float(self.n),
            "profit_per_customer": float(self.profit.mean()),
            "reward_per_customer": float(self.reward.mean()),
            "revenue_per_customer": float(self.revenue.mean()),
            "conversion_rate": float(self.purchases.sum() / customer_cycles),
            "purchases_per_customer": float(self.purchases.mean()),
            "contacts_per_customer": float(self.contacts.mean()),
            "discount_cost_per_customer": float(self.discount_cost.mean()),
            "unsubscribe_rate": float((self.unsubscribes > 0).mean()),
            "churn_rate": float(self.churned.mean()),
        }


class _Totals:
    """Per-customer sums of a rollout's outcomes, counted only while a customer is alive."""

    def __init__(self, n: int, action_names: tuple[str, ...]) -> None:
        self.n = n
        self.sums = {k: np.zeros(n) for k in _TOTALS}
        self.action_names = action_names
        self.action_counts = np.zeros(len(action_names), dtype=np.int64)
        self.reward_per_cycle: list[float] = []

    def add(self, out: StepOutcome, live: np.ndarray) -> None:
        for name, total in self.sums.items():
            if name == "cycles":
                total += live
            else:
                total += getattr(out, _OUTCOME_OF_TOTAL.get(name, name)) * live
        self.reward_per_cycle.append(float((out.reward * live).sum() / self.n))

    def result(self, churned: np.ndarray) -> CohortResult:
        return CohortResult(
            **self.sums,
            churned=churned,
            action_counts=self.action_counts,
            action_names=self.action_names,
            reward_per_cycle=self.reward_per_cycle,
        )


def _attach(policy: Any, cohort: Cohort) -> None:
    """Give policies that need the oracle view (``set_env``) the cohort."""
    set_env = getattr(policy, "set_env", None)
    if callable(set_env):
        set_env(cohort)


def run_cohort(
    model: CustomerModel,
    policy: PolicyLike,
    n_customers: int,
    horizon: int = DEFAULT_HORIZON,
    seed: int | None = 0,
    learn: bool = True,
    deterministic: bool = True,
    progress: Callable[[int], None] | None = None,
    observer: RolloutObserver | None = None,
) -> CohortResult:
    """Simulate ``n_customers`` under ``policy`` until churn or ``horizon`` cycles.

    Policies that need the oracle view (``set_env``) are attached to the cohort first; online
    learners (``update``) learn from every cycle's reward when ``learn`` is true. Churned
    customers take no more actions and earn nothing.

    Args:
        model: The customer model (population, catalog, reward mode), strategy or item world.
        policy: Anything with ``predict(obs, action_masks, deterministic)``.
        n_customers: Cohort size.
        horizon: Cycles per customer.
        seed: Seed of every random draw.
        learn: Call ``policy.update(obs, actions, rewards)`` after each cycle if it exists.
        deterministic: Passed to ``predict``.
        progress: Called with the number of cycles completed so far.
        observer: Shown every cycle's messages and outcome (item-world models only: the
            messages are read from ``model.actions.product``).

    Returns:
        Per-customer totals.
    """
    cohort = Cohort(model, n_customers, seed)
    _attach(policy, cohort)
    update = getattr(policy, "update", None) if learn else None
    table = model.actions
    totals = _Totals(cohort.n, table.names)
    for t in range(horizon):
        alive = cohort.alive
        if not alive.any():
            break
        obs = cohort.observation()
        masks = cohort.action_masks()
        actions = np.asarray(policy.predict(obs, masks, deterministic), dtype=np.intp)
        actions = np.where(alive, actions, table.no_action)
        if observer is not None:
            observer.on_decision(
                cohort, table.product[actions][:, None], table.channel[actions], alive
            )
        out = model.step(cohort.batch, actions, cohort.rng)
        live = alive.astype(np.float64)
        totals.add(out, live)
        totals.action_counts += np.bincount(actions[alive], minlength=table.n_actions)
        if observer is not None:
            observer.on_outcome(out, live)
        if callable(update):
            update(obs[alive], actions[alive], out.reward[alive])
        cohort.alive = alive & ~out.terminated
        if progress is not None:
            progress(t + 1)
    return totals.result(~cohort.alive)


def _slate_messages(
    model: Any, cohort: Cohort, policy: Any, obs: np.ndarray, deterministic: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The messages ``policy`` sends: slates, scoring vectors or single-product actions."""
    batch = cohort.batch
    if isinstance(policy, SlatePolicyLike):
        allowed = model.allowed_products(batch)
        slates, channels, discounts = policy.predict_slates(obs, allowed)
        slates = np.asarray(slates, dtype=np.intp)
        chosen = np.take_along_axis(allowed, slates.clip(0), axis=1)
        if not np.all(chosen | (slates < 0)):
            raise ValueError("a slate policy recommended a product outside allowed_products")
        return slates, np.asarray(channels, dtype=np.intp), np.asarray(discounts, np.float64)
    table = model.actions
    if getattr(policy, "n_actions", None) == table.n_actions:  # one product per message
        actions = np.asarray(policy.predict(obs, cohort.action_masks(), deterministic), np.intp)
        slates = np.full((cohort.n, model.slate_size), -1, dtype=np.intp)
        slates[:, 0] = table.product[actions]
        return slates, table.channel[actions], table.discount[actions]
    scores = np.asarray(policy.predict(obs, None, deterministic), dtype=np.float64)
    return model.decode(batch, scores)  # scoring vectors, as SlateRecommendation-v0 takes


def run_slate_cohort(
    model: Any,
    policy: Any,
    n_customers: int,
    horizon: int = DEFAULT_HORIZON,
    seed: int | None = 0,
    deterministic: bool = True,
    progress: Callable[[int], None] | None = None,
    observer: RolloutObserver | None = None,
) -> CohortResult:
    """Simulate ``n_customers`` of the slate world under ``policy`` (frozen: no learning).

    What the policy gives decides how it is read, in this order:

    1. ``predict_slates(obs, allowed_products)`` (:class:`SlatePolicyLike`): its slates
       (only allowed products, else ``ValueError``), channels and discounts;
    2. a policy with ``n_actions`` equal to the item action table's (a single-product policy):
       its actions, under the item masks, as one-product slates;
    3. anything else: ``predict(obs, None, deterministic)`` gives ``(n, D)`` scoring vectors
       (an SB3 ``Box`` policy), decoded by ``model.decode`` as the slate env does.

    A channel without consent delivers nothing, whatever the policy chose. Churned customers
    get no message. The random numbers are those of :func:`run_cohort` for the same seed.

    Args:
        model: A :class:`~rec_env.item_env.SlateModel` (or any item model with ``decode``
            when scoring vectors are used).
        policy: A slate, single-product or scoring-vector policy (above).
        n_customers: Cohort size.
        horizon: Cycles per customer.
        seed: Seed of every random draw.
        deterministic: Passed to ``predict``.
        progress: Called with the number of cycles completed so far.
        observer: Shown every cycle's messages and outcome.

    Returns:
        Per-customer totals; ``action_counts`` counts messages by channel.
    """
    cohort = Cohort(model, n_customers, seed)
    _attach(policy, cohort)
    no_channel = len(CHANNELS)
    totals = _Totals(cohort.n, ("no_action", *(f"slate:{c}" for c in CHANNELS)))
    for t in range(horizon):
        alive = cohort.alive
        if not alive.any():
            break
        obs = cohort.observation()
        slates, channels, discounts = _slate_messages(model, cohort, policy, obs, deterministic)
        sending = alive & (channels < no_channel) & (slates[:, 0] >= 0)
        slates = np.where(sending[:, None], slates, -1)
        channels = np.where(sending, channels, no_channel)
        if observer is not None:
            observer.on_decision(cohort, slates, channels, alive)
        out = model.step_slates(cohort.batch, slates, channels, discounts, cohort.rng)
        live = alive.astype(np.float64)
        totals.add(out, live)
        counted = np.where(channels < no_channel, channels + 1, 0)
        totals.action_counts += np.bincount(counted[alive], minlength=no_channel + 1)
        if observer is not None:
            observer.on_outcome(out, live)
        cohort.alive = alive & ~out.terminated
        if progress is not None:
            progress(t + 1)
    return totals.result(~cohort.alive)
