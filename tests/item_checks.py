"""Helpers for the item and slate world tests: cohorts, replicas and controlled customer states."""

from __future__ import annotations

import numpy as np

from rec_env._item_kernels import I_NOVELTY
from rec_env.features import CHANNELS, CONSENT_FEATURES, FEATURE_INDEX
from rec_env.item_dynamics import ItemBatch, ItemModel

__all__ = [
    "BATCH_ARRAYS",
    "action_index",
    "assert_mean_close",
    "attentive",
    "category_rows",
    "draw",
    "fit",
    "products_in",
    "replicate",
    "set_novelty",
]

BATCH_ARRAYS = (
    "features",
    "hidden",
    "contact_history",
    "discount_history",
    "item_hidden",
    "taste",
    "recent",
)
"""Every per-customer array of an :class:`~rec_env.item_dynamics.ItemBatch` (columns)."""


def draw(model: ItemModel, n: int, seed: int = 0) -> ItemBatch:
    """``n`` customers drawn from the model's population."""
    batch = model.new_batch(n)
    model.draw_customers(batch, np.arange(n), np.random.default_rng(seed))
    return batch


def replicate(model: ItemModel, batch: ItemBatch, i: int, n: int) -> ItemBatch:
    """``n`` identical copies of customer ``i`` of ``batch`` (state and hidden parameters)."""
    copies = model.new_batch(n)
    for name in BATCH_ARRAYS:
        getattr(copies, name)[:] = getattr(batch, name)[:, [i]]
    copies.segment[:] = batch.segment[i]
    copies.cursor = batch.cursor
    return copies


def attentive(batch: ItemBatch, *, organic: bool = False) -> ItemBatch:
    """Make every customer consent to and open every message, and never unsubscribe.

    With ``organic=False`` nobody buys organically either, so whatever changes comes from the
    message alone.
    """
    for channel in range(len(CHANNELS)):
        batch.features[FEATURE_INDEX[CONSENT_FEATURES[channel]]] = 1.0
        batch.parameter(f"{CHANNELS[channel]}_responsiveness")[:] = 1.0
    batch.parameter("fatigue_sensitivity")[:] = 0.0
    batch.parameter("unsubscribe_rate")[:] = 0.0
    if not organic:
        batch.parameter("purchase_rate")[:] = 0.0
    return batch


def set_novelty(batch: ItemBatch, appetite: float) -> None:
    """Set every customer's hidden novelty appetite."""
    batch.item_hidden[I_NOVELTY] = appetite


def action_index(model: ItemModel, product: int, channel: str = "email", offer: float = 0.0) -> int:
    """The flat action that sends ``product`` by ``channel`` with discount ``offer``."""
    table = model.actions
    hits = np.flatnonzero(
        (table.product == product)
        & (table.channel == CHANNELS.index(channel))
        & np.isclose(table.discount, offer)
    )
    assert hits.size == 1, (product, channel, offer)
    return int(hits[0])


def products_in(model: ItemModel, category: int, new: bool | None = None) -> np.ndarray:
    """Indices of the in-stock products of a category (optionally only new or only old ones)."""
    keep = (model.products.category == category) & model.arrays.available
    if new is not None:
        keep &= model.products.is_new == new
    return np.flatnonzero(keep)


def category_rows(model: ItemModel, kind: str) -> np.ndarray:
    """Feature rows of ``purchases``, ``recommended`` or ``days_since``, in category order."""
    return np.array(
        [model.feature_names.index(f"{kind}_{c}") for c in model.products.category_names]
    )


def fit(model: ItemModel, batch: ItemBatch, product: int) -> np.ndarray:
    """``(n,)`` cosine of each customer's taste and the product's topics."""
    return model.arrays.topics[product] @ batch.taste


def assert_mean_close(samples: np.ndarray, expected: float, z: float = 4.0) -> None:
    """The sample mean is within ``z`` standard errors of ``expected``."""
    samples = np.asarray(samples, dtype=np.float64)
    error = max(float(samples.std()) / np.sqrt(samples.size), 1e-12)
    gap = (float(samples.mean()) - expected) / error
    assert abs(gap) < z, f"mean {samples.mean():.6g} vs exact {expected:.6g}: {gap:+.2f} SE"
