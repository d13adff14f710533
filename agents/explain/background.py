"""Background samples: the customers an explanation compares a customer with.

The background is part of what an explanation means: a contribution says how much a feature
moved the explained value away from its average over the background.

* :func:`operating_background` (the default): customers *in operation*, drawn from the
  population and then served for a while by a seeded random policy, so that they have recent
  contacts and discounts like the customers a live system explains.
* :func:`population_background`: customers freshly drawn from the population, before any
  message: no contacts and no discounts yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_BACKGROUND_SIZE",
    "OPERATING_CYCLES",
    "operating_background",
    "population_background",
]

DEFAULT_BACKGROUND_SIZE = 16
"""Background customers per explanation; the cost grows linearly with it (see the docs'
benchmarks, ``docs/benchmarks/performance.md``)."""

OPERATING_CYCLES = 12
"""Longest time in operation of a background customer, in cycles (each serves 1 to 12)."""


def population_background(
    n: int = DEFAULT_BACKGROUND_SIZE,
    population: str | Path = "default",
    catalog: str | Path = "strategy",
    seed: int = 0,
) -> np.ndarray:
    """``(n, 16)`` float32 observations of ``n`` customers freshly drawn from a population.

    Args:
        n: Number of customers.
        population: Shipped population name or YAML path.
        catalog: Action catalog (the observation does not depend on it; kept for symmetry).
        seed: Seed of the draw; the same seed gives the same background.

    Raises:
        ValueError: If ``n`` is not positive.
        ConfigError: If the population file is missing or invalid.
    """
    from rec_env.env import build_model

    _check_size(n)
    model = build_model(population, catalog=catalog)
    batch = model.new_batch(n)
    model.draw_customers(batch, np.arange(n), np.random.default_rng(seed))
    return model.observe(batch)


def operating_background(
    n: int = DEFAULT_BACKGROUND_SIZE,
    population: str | Path = "default",
    catalog: str | Path = "strategy",
    seed: int = 0,
    cycles: int = OPERATING_CYCLES,
    model: Any = None,
) -> np.ndarray:
    """``(n, d)`` float32 observations of ``n`` customers in operation (16 features by default).

    Each customer is drawn from the population, then served for a number of cycles drawn
    uniformly from 1 to ``cycles`` by a policy that picks uniformly among the actions allowed
    to it (doing nothing included), and observed at that point. Every draw comes from one
    generator seeded with ``seed``. Customers who churn before their observation are replaced
    by the next ones, so all ``n`` are active customers.

    Args:
        n: Number of customers.
        population: Shipped population name or YAML path.
        catalog: Action catalog of the serving policy.
        seed: Seed of every draw; the same seed gives the same background.
        cycles: Longest time in operation.
        model: A customer model with single-action ``step`` to draw from instead of
            ``population`` and ``catalog``, e.g. an item world's ``ItemModel`` (its
            observations have ``16 + 3C`` features; the serving policy picks among its items).

    Raises:
        ValueError: If ``n`` or ``cycles`` is not positive.
        ConfigError: If the population or catalog file is missing or invalid.
    """
    from rec_env.env import build_model

    _check_size(n)
    if cycles < 1:
        raise ValueError(f"cycles must be at least 1, got {cycles}")
    if model is None:
        model = build_model(population, catalog=catalog)
    rng = np.random.default_rng(seed)
    size = 2 * n + 8  # churn removes a few percent per cycle: draw spares
    batch = model.new_batch(size)
    model.draw_customers(batch, np.arange(size), rng)
    ages = rng.integers(1, cycles + 1, size)
    observed = np.zeros((size, model.observe(batch).shape[1]), dtype=np.float32)
    active = np.ones(size, dtype=bool)
    for cycle in range(1, cycles + 1):
        masks = model.action_masks(batch)
        choice = rng.random(size) * masks.sum(axis=1)  # uniform among the allowed actions
        actions = np.argmax(np.cumsum(masks, axis=1) > choice[:, None], axis=1)
        outcome = model.step(batch, actions, rng)
        active &= ~(outcome.terminated & (cycle <= ages))  # churned by the time observed
        observed[ages == cycle] = outcome.observation[ages == cycle]
    kept = np.flatnonzero(active)[:n]
    if kept.size < n:  # pragma: no cover - would need most of the spares to churn
        raise RuntimeError(f"only {kept.size} of {size} customers stayed active; lower cycles")
    return observed[kept]


def _check_size(n: int) -> None:
    if n < 1:
        raise ValueError(f"the background needs at least 1 customer, got {n}")
