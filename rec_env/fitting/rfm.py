"""Recency, frequency and monetary value (RFM) from purchase occasions, in data and in simulation.

Both a purchase log and a simulated population are turned into the same
:class:`PurchaseHistory`, and :func:`rfm` computes R, F and M from it in one way, so the data and
the simulator are compared like with like:

* Time is cut into cycles of ``cycle_days`` days (the env's cycle, 7 by default) counted from each
  customer's first purchase, their *acquisition*, in cycle 0. A cycle with at least one
  transaction is one *purchase occasion*, worth the sum of its amounts (the simulator also makes
  at most one purchase per cycle). The acquisition occasion is given, not modelled.
* ``exposure`` T is the number of whole cycles from the acquisition to the end of the log.
* **F** (frequency): the number of repeat occasions, cycles 1 to T with a purchase.
* **R** (recency): cycles from the last occasion (the acquisition if there is no repeat) to the
  end, ``T - t_last``.
* **M** (monetary value): the mean value of the repeat occasions (undefined when F = 0).

These are not the env's observed ``recency`` (which also counts visits and opens), ``frequency``
(exponentially weighted) or ``monetary_value`` (exponentially weighted) features: those are what
an agent sees, these are what a purchase log records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rec_env.fitting.purchase_log import PurchaseLog, PurchaseLogError

__all__ = [
    "RFM",
    "PurchaseHistory",
    "history_from_log",
    "ks_distance",
    "rfm",
    "rfm_ks_distances",
    "simulate_history",
]


@dataclass(frozen=True)
class PurchaseHistory:
    """Purchase occasions of ``n`` customers on a grid of cycles since their acquisition.

    Attributes:
        exposure: ``(n,)`` int64 whole cycles observed after the acquisition cycle.
        occasion_customer: ``(m,)`` int64 customer index of each occasion.
        occasion_cycle: ``(m,)`` int64 cycle of each occasion, 0 for the acquisition.
        occasion_value: ``(m,)`` float64 amount of each occasion.
        cycle_days: Length of one cycle in days.
        customer_ids: ``(n,)`` customer ids (strings) of a log, or ``None`` for simulations.
    """

    exposure: np.ndarray
    occasion_customer: np.ndarray
    occasion_cycle: np.ndarray
    occasion_value: np.ndarray
    cycle_days: float = 7.0
    customer_ids: np.ndarray | None = None

    @property
    def n_customers(self) -> int:
        """Number of customers."""
        return int(self.exposure.shape[0])


@dataclass(frozen=True)
class RFM:
    """Recency, frequency and monetary value per customer (see the module docstring).

    Attributes:
        recency: ``(n,)`` cycles from the last occasion to the end of the observation.
        frequency: ``(n,)`` number of repeat occasions.
        monetary: ``(n,)`` mean value of the repeat occasions, NaN where frequency is 0.
        exposure: ``(n,)`` cycles observed after the acquisition.
    """

    recency: np.ndarray
    frequency: np.ndarray
    monetary: np.ndarray
    exposure: np.ndarray


def history_from_log(
    log: PurchaseLog, cycle_days: float = 7.0, end_day: int | None = None
) -> PurchaseHistory:
    """Group a log's transactions into purchase occasions per customer and cycle.

    Args:
        log: The transactions.
        cycle_days: Length of one cycle in days.
        end_day: Last day observed (days since 1970-01-01); defaults to the log's last date.
            Later transactions are ignored, and so are customers first seen after it.

    Raises:
        PurchaseLogError: If no transaction is on or before ``end_day``.
    """
    if cycle_days <= 0:
        raise ValueError(f"cycle_days must be positive, got {cycle_days}")
    end = int(log.day.max()) if end_day is None else int(end_day)
    keep = log.day <= end
    if not keep.any():
        raise PurchaseLogError(f"{log.source}: no transaction on or before the end date")
    ids, customer = np.unique(log.customer[keep], return_inverse=True)
    day, amount = log.day[keep], log.amount[keep]
    first = np.full(ids.shape[0], np.iinfo(np.int64).max)
    np.minimum.at(first, customer, day)
    cycle = np.floor((day - first[customer]) / cycle_days).astype(np.int64)
    exposure = np.floor((end - first) / cycle_days).astype(np.int64)
    keys, inverse = np.unique(customer * (int(cycle.max()) + 1) + cycle, return_inverse=True)
    value = np.bincount(inverse, weights=amount, minlength=keys.shape[0])
    width = int(cycle.max()) + 1
    return PurchaseHistory(
        exposure=exposure,
        occasion_customer=(keys // width).astype(np.int64),
        occasion_cycle=(keys % width).astype(np.int64),
        occasion_value=value,
        cycle_days=float(cycle_days),
        customer_ids=ids,
    )


def rfm(history: PurchaseHistory) -> RFM:
    """Recency, frequency and monetary value of every customer of a history."""
    n = history.n_customers
    repeat = history.occasion_cycle >= 1
    customers = history.occasion_customer[repeat]
    frequency = np.bincount(customers, minlength=n).astype(np.float64)
    last = np.zeros(n, dtype=np.int64)
    np.maximum.at(last, customers, history.occasion_cycle[repeat])
    spend = np.bincount(customers, weights=history.occasion_value[repeat], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, spend / frequency, np.nan)
    return RFM(
        recency=(history.exposure - last).astype(np.float64),
        frequency=frequency,
        monetary=monetary,
        exposure=history.exposure.astype(np.float64),
    )


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov distance ``sup_x |F_a(x) - F_b(x)|`` (NaNs dropped).

    Exact for discrete data with ties: both empirical CDFs are evaluated at every observed value.
    """
    a = np.sort(a[~np.isnan(a)])
    b = np.sort(b[~np.isnan(b)])
    if a.size == 0 or b.size == 0:
        return float("nan")
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    return float(np.abs(cdf_a - cdf_b).max())


def rfm_ks_distances(data: RFM, simulated: RFM) -> dict[str, float]:
    """KS distance between data and simulation for each of recency, frequency, monetary value.

    Monetary value is compared over the customers with at least one repeat occasion.
    """
    return {
        "recency": ks_distance(data.recency, simulated.recency),
        "frequency": ks_distance(data.frequency, simulated.frequency),
        "monetary": ks_distance(data.monetary, simulated.monetary),
    }


def simulate_history(
    population: str | Path | object,
    exposure: np.ndarray,
    seed: int = 0,
    cycle_days: float = 7.0,
    catalog: str | Path = "strategy",
) -> PurchaseHistory:
    """Simulate newly acquired customers under "no action" and record their purchase occasions.

    Customer ``i`` is drawn from the population at their acquisition (cycle 0) and followed for
    ``exposure[i]`` cycles, or until they churn. Only organic purchases happen, as in a purchase
    log of a shop that sent no simulated campaign.

    Args:
        population: A population name, a YAML path or a :class:`~rec_env.population.Population`.
        exposure: ``(n,)`` cycles to follow each customer for.
        seed: Seed of every random draw.
        cycle_days: Length of one cycle in days.
        catalog: Action catalog (only its ``no_action`` is used).

    Returns:
        The simulated occasions (repeat occasions only: the acquisition is not simulated).
    """
    from rec_env.catalog import ActionTable, load_catalog
    from rec_env.dynamics import CustomerModel
    from rec_env.population import Population, load_population

    loaded = population if isinstance(population, Population) else load_population(population)
    actions = ActionTable.from_catalog(load_catalog(catalog))
    model = CustomerModel(actions, loaded, "profit", cycle_days)
    exposure = np.asarray(exposure, dtype=np.int64)
    n = exposure.shape[0]
    rng = np.random.default_rng(seed)
    batch = model.new_batch(n)
    model.draw_customers(batch, np.arange(n), rng)
    no_action = np.full(n, actions.no_action, dtype=np.intp)
    alive = np.ones(n, dtype=bool)
    customers, cycles, values = [], [], []
    for cycle in range(1, int(exposure.max(initial=0)) + 1):
        outcome = model.step(batch, no_action, rng)
        bought = np.flatnonzero((outcome.purchased > 0) & alive & (cycle <= exposure))
        customers.append(bought)
        cycles.append(np.full(bought.shape[0], cycle, dtype=np.int64))
        values.append(outcome.revenue[bought])
        alive &= ~outcome.terminated
    return PurchaseHistory(
        exposure=exposure,
        occasion_customer=np.concatenate(customers or [np.zeros(0, np.int64)]).astype(np.int64),
        occasion_cycle=np.concatenate(cycles or [np.zeros(0, np.int64)]),
        occasion_value=np.concatenate(values or [np.zeros(0)]),
        cycle_days=float(cycle_days),
    )
