"""``CustomerSlots``: the autoreset bookkeeping shared by both vector envs.

The SB3 ``VecEnv`` (:mod:`rec_env.vec_env`) and the Gymnasium ``VectorEnv``
(:mod:`rec_env.vector_env`) differ only in *when* they report an ended customer and *what* they
return for it. Everything else is here, once: the batch of customers, the per-slot cycle
counters, which slots ended (churn or horizon), drawing their replacements from one seeded
generator, and the last cycle of every slot (for rendering).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rec_env.dynamics import CustomerModel, CustomerPool, StepOutcome
from rec_env.features import FEATURE_NAMES
from rec_env.render import render_rgb, render_text

N_STRATEGY_FEATURES = len(FEATURE_NAMES)

__all__ = ["CustomerSlots", "check_customers"]


def check_customers(customers: Any, model: Any) -> Any:
    """``customers`` (twins, :class:`~rec_env.fitting.twins.Twins`) checked against the world.

    ``None`` means the model's own twins (``EnvSettings(customers=...)``), if it has any; a
    path is a twins file (:func:`~rec_env.fitting.twins.load_twins`), so that ``gym.make(...,
    customers="twins.npz")`` works from a zoo config.

    Raises:
        ValueError: If ``customers`` cannot make a pool of new customers, or its population,
            cycle length or purchase unit is not the world's.
    """
    if customers is None:
        return getattr(model, "customers", None)
    if isinstance(customers, str | os.PathLike):
        from rec_env.fitting.twins import load_twins

        customers = load_twins(customers)
    if not callable(getattr(customers, "pool", None)):
        raise ValueError(
            "customers must be twins (rec_env.fitting.twins.fit_twins) or have pool(rng, chunk)"
        )
    names = getattr(model.sampler, "segment_names", ())
    from rec_env.population import CustomerSampler, load_population

    theirs = CustomerSampler(load_population(customers.population)).segment_names
    if tuple(theirs) != tuple(names):
        raise ValueError(
            f"the twins' population {customers.population!r} is not the env's (profile=): "
            "pass the twins' population as the env's profile"
        )
    if float(customers.cycle_days) != float(model.cycle_days):
        raise ValueError(
            f"the twins have {customers.cycle_days}-day cycles, the env {model.cycle_days}"
        )
    days = getattr(customers, "unit", "weeks") == "days"
    if days != bool(getattr(model, "purchase_days", False)):
        raise ValueError(
            "twins fitted on purchase days (unit 'days') need purchase_days=True, and twins of "
            "weekly occasions need it off"
        )
    return customers


class CustomerSlots:
    """``n`` customer slots stepped together; an ended slot is refilled with a new customer.

    A slot's customer ends when they churn (``terminated``) or after ``horizon`` cycles
    (``truncated``; both can be true). :meth:`restart` refills slots; *when* to call it is the
    adapter's choice (the same step for SB3, the next step for Gymnasium's ``NEXT_STEP``).

    Args:
        model: The customer model.
        n: Number of slots.
        horizon: Cycles per customer before truncation.
        rng: Generator behind every draw (customers and dynamics); :meth:`reseed` replaces it.
        customers: Twins of a retailer's customers (:func:`~rec_env.fitting.twins.fit_twins`)
            to start new customers from, instead of the population.

    Attributes:
        batch: The customers, one per slot.
        cycles: ``(n,)`` cycles the slot's current customer has lived (0 after a restart).
        last_actions: ``(n,)`` actions of the last step.
        last_outcome: The last step's outcome, or ``None`` before the first step.
    """

    def __init__(
        self,
        model: CustomerModel,
        n: int,
        horizon: int,
        rng: np.random.Generator,
        customers: Any = None,
    ) -> None:
        if n < 1:
            raise ValueError(f"the number of envs must be at least 1, got {n}")
        self.model = model
        self.n = int(n)
        self.horizon = int(horizon)
        self.batch = model.new_batch(self.n)
        self.cycles = np.zeros(self.n, dtype=np.int64)
        self.last_actions: np.ndarray = np.zeros(self.n, dtype=np.intp)
        self.last_outcome: StepOutcome | None = None
        self.started = False
        self._all = np.arange(self.n)
        self._segment_names = np.array(model.sampler.segment_names, dtype=object)
        self.customers = check_customers(customers, model)
        self.reseed(rng)

    @property
    def rng(self) -> np.random.Generator:
        """The generator behind every draw."""
        return self.pool.rng

    def reseed(self, rng: np.random.Generator) -> None:
        """Draw everything from ``rng`` from now on (new customers and dynamics)."""
        # Customers are drawn in chunks: a few dozen generator calls whatever their number.
        chunk = max(256, 8 * self.n)
        if self.customers is not None:
            self.pool = self.customers.pool(rng, chunk)
        else:
            self.pool = CustomerPool(self.model.sampler, rng, chunk=chunk)

    def start(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Put new customers in ``rows`` (all slots by default).

        Returns:
            ``(n, n_features)`` float32 observations of every slot.
        """
        self.restart(self._all if rows is None else rows)
        self.started = True
        return self.model.observe(self.batch)

    def step(self, actions: np.ndarray) -> tuple[StepOutcome, np.ndarray, np.ndarray]:
        """Advance every slot by one cycle.

        Args:
            actions: ``(n,)`` integer actions.

        Returns:
            The outcome, and ``(n,)`` bool ``terminated`` (churned) and ``truncated`` (horizon).

        Raises:
            RuntimeError: Before the first :meth:`start`.
            ValueError: For actions outside the catalog.
        """
        if not self.started:
            raise RuntimeError("call reset() before step()")
        check = getattr(self.model, "check_actions", None)
        if callable(check):  # the slate world's scoring vectors
            self.last_actions = check(actions, self.n)
        else:
            actions = np.asarray(actions).reshape(self.n)
            n_actions = self.model.actions.n_actions
            if actions.size and (actions.min() < 0 or actions.max() >= n_actions):
                raise ValueError(f"actions must be in Discrete({n_actions}), got {actions!r}")
            self.last_actions[:] = actions
        outcome = self.model.step(self.batch, self.last_actions, self.rng)
        self.last_outcome = outcome
        self.cycles += 1
        return outcome, outcome.terminated, self.cycles >= self.horizon

    def restart(self, rows: np.ndarray) -> np.ndarray:
        """Replace the customers in ``rows`` by new ones drawn from the generator.

        Returns:
            ``(len(rows), n_features)`` float32 observations of the new customers.
        """
        self.model.draw_customers(self.batch, rows, self.pool)
        self.cycles[rows] = 0
        return self.batch.features[:, rows].T.astype(np.float32)

    def segments(self, rows: np.ndarray) -> np.ndarray:
        """Segment names of the customers in ``rows`` (object array)."""
        return self._segment_names[self.batch.segment[rows]]

    def action_masks(self) -> np.ndarray:
        """``(n, n_actions)`` bool consent masks."""
        return self.model.action_masks(self.batch)

    def expected_rewards(self) -> np.ndarray:
        """``(n, n_actions)`` true expected immediate rewards (oracle access)."""
        return self.model.expected_rewards(self.batch)

    def expected_rewards_of(self, actions: np.ndarray) -> np.ndarray:
        """``(n,)`` true expected immediate reward of each slot's given action."""
        own = getattr(self.model, "expected_rewards_of", None)
        if callable(own):
            return own(self.batch, actions)
        actions = np.asarray(actions, dtype=np.intp).reshape(self.n, 1)
        return np.take_along_axis(self.model.expected_rewards(self.batch), actions, 1)[:, 0]

    def _last(self, i: int) -> tuple[int | None, dict[str, float] | None]:
        # A slot whose customer has not been stepped yet has no last cycle to show.
        if self.last_outcome is None or self.cycles[i] == 0 or self.last_actions.ndim > 1:
            return None, None
        return int(self.last_actions[i]), self.last_outcome.customer(i)

    def render_rgb(self, rows: np.ndarray | None = None) -> list[np.ndarray]:
        """Pictures of the slots in ``rows``, all by default (:func:`rec_env.render.render_rgb`)."""
        masks = self.model.action_masks(self.batch)
        images = []
        for i in self._all if rows is None else rows:
            action, outcome = self._last(int(i))
            features = self.batch.features[:N_STRATEGY_FEATURES, i]
            images.append(render_rgb(features, masks[i], action, outcome))
        return images

    def render_text(self, i: int) -> str:
        """Text of slot ``i`` (:func:`rec_env.render.render_text`)."""
        action, outcome = self._last(i)
        segment = str(self.segments(np.array([i]))[0])
        return render_text(
            self.batch.features[:, i],
            int(self.cycles[i]),
            segment,
            self.model.actions.names,
            action,
            outcome,
            getattr(self.model, "feature_names", FEATURE_NAMES),
        )
