"""Run a policy over a cohort of customers for their whole lifetime (churn or horizon).

This is the simulation loop behind ``recenv simulate`` and the evaluator. A cohort is a batch of
customers that all start together from one seed: two policies run with the same seed meet the
same customers and the same random numbers, so their difference is measured without the noise
of different customers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from rec_env.dynamics import CustomerBatch, CustomerModel
from rec_env.settings import DEFAULT_HORIZON

__all__ = ["Cohort", "CohortResult", "PolicyLike", "run_cohort"]


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
    """Per-customer totals over the horizon (arrays of shape ``(n,)``) and action counts."""

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


def run_cohort(
    model: CustomerModel,
    policy: PolicyLike,
    n_customers: int,
    horizon: int = DEFAULT_HORIZON,
    seed: int | None = 0,
    learn: bool = True,
    deterministic: bool = True,
    progress: Callable[[int], None] | None = None,
) -> CohortResult:
    """Simulate ``n_customers`` under ``policy`` until churn or ``horizon`` cycles.

    Policies that need the oracle view (``set_env``) are attached to the cohort first; online
    learners (``update``) learn from every cycle's reward when ``learn`` is true. Churned
    customers take no more actions and earn nothing.

    Args:
        model: The customer model (population, catalog, reward mode).
        policy: Anything with ``predict(obs, action_masks, deterministic)``.
        n_customers: Cohort size.
        horizon: Cycles per customer.
        seed: Seed of every random draw.
        learn: Call ``policy.update(obs, actions, rewards)`` after each cycle if it exists.
        deterministic: Passed to ``predict``.
        progress: Called with the number of cycles completed so far.

    Returns:
        Per-customer totals.
    """
    cohort = Cohort(model, n_customers, seed)
    set_env = getattr(policy, "set_env", None)
    if callable(set_env):
        set_env(cohort)
    update = getattr(policy, "update", None) if learn else None
    n, n_actions = cohort.n, model.actions.n_actions
    totals = {
        k: np.zeros(n)
        for k in (
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
    }
    action_counts = np.zeros(n_actions, dtype=np.int64)
    reward_per_cycle: list[float] = []
    no_action = model.actions.no_action
    for t in range(horizon):
        alive = cohort.alive
        if not alive.any():
            break
        obs = cohort.observation()
        masks = cohort.action_masks()
        actions = np.asarray(policy.predict(obs, masks, deterministic), dtype=np.intp)
        actions = np.where(alive, actions, no_action)
        out = model.step(cohort.batch, actions, cohort.rng)
        live = alive.astype(np.float64)
        totals["profit"] += out.profit * live
        totals["reward"] += out.reward * live
        totals["revenue"] += out.revenue * live
        totals["discount_cost"] += out.discount_cost * live
        totals["contact_cost"] += out.contact_cost * live
        totals["purchases"] += out.purchased * live
        totals["contacts"] += out.delivered * live
        totals["unsubscribes"] += out.unsubscribed * live
        totals["cycles"] += live
        action_counts += np.bincount(actions[alive], minlength=n_actions)
        reward_per_cycle.append(float((out.reward * live).sum() / n))
        if callable(update):
            update(obs[alive], actions[alive], out.reward[alive])
        cohort.alive = alive & ~out.terminated
        if progress is not None:
            progress(t + 1)
    return CohortResult(
        profit=totals["profit"],
        reward=totals["reward"],
        revenue=totals["revenue"],
        discount_cost=totals["discount_cost"],
        contact_cost=totals["contact_cost"],
        purchases=totals["purchases"],
        contacts=totals["contacts"],
        unsubscribes=totals["unsubscribes"],
        churned=~cohort.alive,
        cycles=totals["cycles"],
        action_counts=action_counts,
        action_names=model.actions.names,
        reward_per_cycle=reward_per_cycle,
    )
