"""Simulated customers' event logs: orders, messages, visits, consents and tags, as a CRM has them.

:func:`simulate_history` starts customers of a population with no history
(:data:`~rec_env.features.HISTORY_START`; their consent and CRM tags and hidden parameters drawn
as usual), sends them random allowed messages for some cycles and writes down every event, dated
on the last day of its cycle. The logs go through the feature builder
(:func:`~rec_env.fitting.builder.build_features`) like a retailer's: the builder must find the
simulator's own observation, which is how the test suite checks that both use one definition of
each feature. :meth:`SimulatedHistory.write_csv` writes the tables that ``recenv features``
reads.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rec_env.features import (
    CHANNELS,
    CONSENT_FEATURES,
    FEATURE_INDEX,
    FEATURE_NAMES,
    HISTORY_START,
)

if TYPE_CHECKING:
    from rec_env.dynamics import CustomerBatch

__all__ = [
    "SimulatedHistory",
    "customer_ids",
    "simulate_history",
    "start_without_history",
    "starting_tables",
]

_EPOCH = np.datetime64("1970-01-01", "D")
_KEPT = (*CONSENT_FEATURES, "discount_sensitive", "free_shipping_preferred")
"""Features drawn from the population, not from events."""


@dataclass(frozen=True)
class SimulatedHistory:
    """Event logs of simulated customers and their state at the end.

    Attributes:
        customer_ids: ``(n,)`` ids (``c000001`` …, sorted as text and as numbers alike).
        tables: ``orders``, ``contacts``, ``visits``, ``consents`` and ``tags`` as lists of
            rows (dicts with the builder's default column names).
        features: ``(n, len(feature_names))`` float64 the simulator's observed features after
            the last cycle.
        irritation: ``(n,)`` each customer's hidden ``irritation``.
        since: First day of the history, ISO date.
        as_of: Last day of the history (the end of the last cycle), ISO date.
        cycle_days: Length of a cycle.
        feature_names: The columns of ``features`` (the item world's include its
            per-category features).
    """

    customer_ids: np.ndarray
    tables: dict[str, list[dict[str, object]]]
    features: np.ndarray
    irritation: np.ndarray
    since: str
    as_of: str
    cycle_days: int
    feature_names: tuple[str, ...] = FEATURE_NAMES

    def write_csv(self, directory: str | Path) -> dict[str, Path]:
        """Write ``<table>.csv`` for every table into ``directory``; return the paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, rows in self.tables.items():
            path = paths[name] = directory / f"{name}.csv"
            with path.open("w", newline="", encoding="utf-8") as handle:
                fields = list(rows[0]) if rows else ["customer_id"]
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)
        return paths


def _iso(day: int) -> str:
    return str(_EPOCH + np.timedelta64(int(day), "D"))


def customer_ids(n: int) -> np.ndarray:
    """``c000001`` …: ids that sort as text and as numbers alike."""
    return np.array([f"c{i + 1:06d}" for i in range(n)])


def start_without_history(batch: CustomerBatch) -> None:
    """Set drawn customers' event features to :data:`HISTORY_START` (consent and tags kept)."""
    for name, value in HISTORY_START.items():
        if name not in _KEPT:
            batch.features[FEATURE_INDEX[name]] = value
    batch.contact_history[:] = 0.0
    batch.discount_history[:] = 0.0


def starting_tables(
    batch: CustomerBatch, ids: np.ndarray, start: int
) -> dict[str, list[dict[str, object]]]:
    """Empty event tables, with the drawn consent (dated ``start``) and CRM tags."""
    n = len(ids)
    return {
        "orders": [],
        "contacts": [],
        "visits": [],
        "consents": [
            {
                "customer_id": ids[i],
                "time": _iso(start),
                "channel": channel,
                "consent": int(batch.features[FEATURE_INDEX[f"consent_{channel}"], i]),
            }
            for i in range(n)
            for channel in CHANNELS
        ],
        "tags": [
            {
                "customer_id": ids[i],
                "discount_sensitive": int(batch.feature("discount_sensitive")[i]),
                "free_shipping_preferred": int(batch.feature("free_shipping_preferred")[i]),
            }
            for i in range(n)
        ],
    }


def simulate_history(
    n_customers: int,
    cycles: int,
    *,
    seed: int = 0,
    since: str = "2024-01-01",
    population: str | Path = "default",
    message_share: float = 0.5,
    purchase_days: bool = False,
) -> SimulatedHistory:
    """Simulate ``n_customers`` of the strategy world for ``cycles`` cycles and log every event.

    Each cycle a customer gets, with probability ``message_share``, one catalog action drawn
    uniformly among those their consent allows (else nothing).

    Args:
        n_customers: Customers.
        cycles: Cycles to simulate.
        seed: Seed of every draw (customers, messages and dynamics).
        since: First day of the history.
        population: Population name or YAML path.
        message_share: Share of customer-cycles that get a message.
        purchase_days: Simulate purchases at day resolution (several orders a cycle, dated on
            the cycle's last days).

    Raises:
        ValueError: If a count is below 1 or ``message_share`` is outside [0, 1].
    """
    from rec_env.settings import EnvSettings

    if n_customers < 1 or cycles < 1:
        raise ValueError("n_customers and cycles must be at least 1")
    if not 0.0 <= message_share <= 1.0:
        raise ValueError("message_share must be in [0, 1]")
    model = EnvSettings(profile=str(population), purchase_days=purchase_days).build_model()
    table = model.actions
    rng = np.random.default_rng(seed)
    messages = np.random.default_rng([seed, 1])
    batch = model.new_batch(n_customers)
    model.draw_customers(batch, np.arange(n_customers), rng)
    start_without_history(batch)
    ids = customer_ids(n_customers)
    start = int((np.datetime64(since, "D") - _EPOCH).astype(np.int64))
    length = int(model.cycle_days)
    tables = starting_tables(batch, ids, start)
    for t in range(cycles):
        masks = model.action_masks(batch)
        choice = messages.integers(0, table.n_actions, n_customers)
        send = (messages.random(n_customers) < message_share) & masks[
            np.arange(n_customers), choice
        ]
        actions = np.where(send, choice, table.no_action)
        out = model.step(batch, actions, rng)
        last_day = start + (t + 1) * length - 1
        day = _iso(last_day)
        for i in np.flatnonzero(out.purchased > 0):
            orders = int(out.orders[i])  # each of the cycle's order value, on its last days
            for k in range(orders):
                tables["orders"].append(
                    {
                        "customer_id": ids[i],
                        "time": _iso(last_day - orders + 1 + k),
                        "amount": repr(float(out.revenue[i]) / orders),
                        "discount": repr(float(out.discount_cost[i]) / orders),
                    }
                )
        for i in np.flatnonzero(out.delivered > 0):
            a = actions[i]
            tables["contacts"].append(
                {
                    "customer_id": ids[i],
                    "time": day,
                    "channel": table.channel_names[a],
                    "offer": table.offers[a],
                    "delivered": 1,
                    "opened": int(out.opened[i]),
                    "unsubscribed": int(out.unsubscribed[i]),
                }
            )
        for i in np.flatnonzero(out.visited > 0):
            tables["visits"].append({"customer_id": ids[i], "time": day})
    return SimulatedHistory(
        customer_ids=ids,
        tables=tables,
        features=batch.features.T.copy(),
        irritation=batch.parameter("irritation").copy(),
        since=since,
        as_of=_iso(start + cycles * length - 1),
        cycle_days=length,
    )
