"""Simulated item-world customers' event logs: order lines with products, messages with products.

:func:`simulate_item_history` is :func:`~rec_env.fitting.simulated_history.simulate_history`
for the item world: customers start with no history (the 16 features at
:data:`~rec_env.features.HISTORY_START`, every category never bought nor shown), get random
allowed product messages (slates of 1 to ``slate_size`` products on a consented channel) for
some cycles, and every event is written down, dated on the last day of its cycle. A cycle's
purchases (the message's product and an organic one) are the lines of one order, as the
simulator counts them (one order of their summed value); each line names its product, and
each message the products it showed. The feature builder, given the product table, must find
the simulator's own observation, all ``16 + 3C`` features.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rec_env.features import CHANNELS, FEATURE_INDEX, FEATURE_NAMES
from rec_env.fitting.item_builder import SHOWN_SEPARATOR
from rec_env.fitting.simulated_history import (
    _EPOCH,
    SimulatedHistory,
    _iso,
    customer_ids,
    start_without_history,
    starting_tables,
)

if TYPE_CHECKING:
    from rec_env.item_dynamics import ItemBatch, ItemModel

__all__ = ["simulate_item_history"]

_CONSENT0 = FEATURE_INDEX[f"consent_{CHANNELS[0]}"]


def _random_messages(
    model: ItemModel, batch: ItemBatch, rng: np.random.Generator, message_share: float
) -> tuple[np.ndarray, np.ndarray]:
    """Random allowed messages: ``(slates (n, K), channels (n,))``, ``len(CHANNELS)``: none.

    A customer gets a message with probability ``message_share``, on a channel drawn among the
    consented ones, showing 1 to ``K`` distinct products drawn among the allowed ones (in stock,
    not in the last message).
    """
    n, k = batch.n, model.slate_size
    consent = batch.features[_CONSENT0 : _CONSENT0 + len(CHANNELS)].T > 0.5
    scores = np.where(consent, rng.random((n, len(CHANNELS))), -1.0)
    channels = np.where(scores.max(axis=1) >= 0.0, scores.argmax(axis=1), len(CHANNELS))
    channels[rng.random(n) >= message_share] = len(CHANNELS)
    allowed = model.allowed_products(batch)
    keys = np.where(allowed, rng.random(allowed.shape), -1.0)
    picks = np.argsort(-keys, axis=1, kind="stable")[:, :k]
    size = rng.integers(1, k + 1, n)
    usable = (np.take_along_axis(keys, picks, axis=1) >= 0.0) & (np.arange(k) < size[:, None])
    slates = np.where(usable, picks, -1).astype(np.intp)
    channels[~usable[:, 0]] = len(CHANNELS)  # nothing allowed: no message
    return slates, channels.astype(np.intp)


def simulate_item_history(
    n_customers: int,
    cycles: int,
    *,
    seed: int = 0,
    since: str = "2024-01-01",
    products: str | Path = "default",
    population: str | Path = "default",
    slate_size: int = 3,
    message_share: float = 0.5,
) -> SimulatedHistory:
    """Simulate ``n_customers`` of the item world for ``cycles`` cycles and log every event.

    Args:
        n_customers: Customers.
        cycles: Cycles to simulate.
        seed: Seed of every draw (customers, messages and dynamics).
        since: First day of the history.
        products: Product table name or path.
        population: Population name or YAML path.
        slate_size: Most products per message.
        message_share: Share of customer-cycles that get a message.

    Returns:
        The logs: ``orders`` (``order_id``, ``product_id``: one row per line), ``contacts``
        (``products``: the ids shown, separated by ``|``), ``visits``, ``consents`` and
        ``tags``; ``features`` are the item world's ``16 + 3C``.

    Raises:
        ValueError: If a count is below 1 or ``message_share`` is outside [0, 1].
    """
    from rec_env.settings import EnvSettings

    if n_customers < 1 or cycles < 1 or slate_size < 1:
        raise ValueError("n_customers, cycles and slate_size must be at least 1")
    if not 0.0 <= message_share <= 1.0:
        raise ValueError("message_share must be in [0, 1]")
    settings = EnvSettings(
        world="slate", slate_size=slate_size, products=str(products), profile=str(population)
    )
    model = settings.build_model()
    rng = np.random.default_rng(seed)
    messages = np.random.default_rng([seed, 1])
    batch = model.new_batch(n_customers)
    model.draw_customers(batch, np.arange(n_customers), rng)
    start_without_history(batch)
    n_cat = model.products.n_categories
    item = batch.features[len(FEATURE_NAMES) :]
    item[: 2 * n_cat] = 0.0  # nothing bought, nothing shown
    item[2 * n_cat :] = 365.0  # never bought (the cap of days_since_<c>)
    ids = customer_ids(n_customers)
    start = int((np.datetime64(since, "D") - _EPOCH).astype(np.int64))
    length = int(model.cycle_days)
    tables = starting_tables(batch, ids, start)
    product_ids = np.asarray(model.products.ids)
    price = model.products.price
    for t in range(cycles):
        slates, channels = _random_messages(model, batch, messages, message_share)
        out = model.step_slates(batch, slates, channels, 0.0, rng)
        day = _iso(start + (t + 1) * length - 1)
        for i in np.flatnonzero(out.purchased > 0):
            bought = [int(out.clicked_product[i])] if out.message_purchase[i] > 0 else []
            bought += [int(out.organic_product[i])] if out.organic_purchase[i] > 0 else []
            for j in bought:
                tables["orders"].append(
                    {
                        "customer_id": ids[i],
                        "order_id": f"o{t + 1:04d}-{ids[i]}",
                        "time": day,
                        "product_id": product_ids[j],
                        "amount": repr(float(price[j])),  # no offers: the list price
                        "discount": "0.0",
                    }
                )
        for i in np.flatnonzero(out.delivered > 0):
            shown = slates[i][slates[i] >= 0]
            tables["contacts"].append(
                {
                    "customer_id": ids[i],
                    "time": day,
                    "channel": CHANNELS[channels[i]],
                    "offer": "none",
                    "delivered": 1,
                    "opened": int(out.opened[i]),
                    "unsubscribed": int(out.unsubscribed[i]),
                    "products": SHOWN_SEPARATOR.join(product_ids[shown]),
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
        feature_names=model.feature_names,
    )
