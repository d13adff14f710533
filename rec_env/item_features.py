"""The item world's observation: the 16 strategy features plus three per product category.

One definition, shared by the simulator (the rows of the item batch, the env's observation
space and its docstring table) and by the feature builder from real logs
(:mod:`rec_env.fitting.item_builder`, ``recenv features --products``), which applies the
simulator's own update (:func:`rec_env._item_kernels.close_category_cycle` and its two
siblings): for each category ``<c>`` of the product table,

* ``purchases_<c>``: purchases in the category, exponentially decayed with the satiation time
  constant (:data:`SATIATION_DAYS`): each purchase adds 1, and the count is multiplied by
  ``exp(-cycle_days / SATIATION_DAYS)`` every cycle. It *is* the customer's satiation state.
* ``recommended_<c>``: products of the category shown in delivered messages, decayed with the
  boredom time constant (:data:`BOREDOM_DAYS`). It *is* the customer's boredom state.
* ``days_since_<c>``: days since the last purchase in the category (365: never, or longer ago).

The agent sees exactly the states that satiation and boredom act through, so it can manage
them. This module imports numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rec_env.features import FEATURES, Feature

__all__ = [
    "BOREDOM_DAYS",
    "ITEM_FEATURE_KINDS",
    "SATIATION_DAYS",
    "item_feature_bounds",
    "item_features",
]

SATIATION_DAYS = 45.0
"""Time constant (days) of the satiation state ``purchases_<c>``."""

BOREDOM_DAYS = 21.0
"""Time constant (days) of the boredom state ``recommended_<c>``."""

ITEM_FEATURE_KINDS: tuple[str, ...] = ("purchases", "recommended", "days_since")
"""The three per-category features, in row order (all categories of one kind, then the next)."""


def item_features(category_names: Sequence[str]) -> tuple[Feature, ...]:
    """The item world's features: :data:`rec_env.features.FEATURES`, then three per category.

    Args:
        category_names: The product table's categories, in code order.
    """
    purchases = tuple(
        Feature(
            f"purchases_{c}",
            "purchases",
            0.0,
            20.0,
            False,
            f"Purchases in {c}, decayed with a {SATIATION_DAYS:g}-day time constant "
            "(the satiation state).",
        )
        for c in category_names
    )
    recommended = tuple(
        Feature(
            f"recommended_{c}",
            "products shown",
            0.0,
            50.0,
            False,
            f"Products of {c} shown in delivered messages, decayed with a {BOREDOM_DAYS:g}-day "
            "time constant (the boredom state).",
        )
        for c in category_names
    )
    days = tuple(
        Feature(
            f"days_since_{c}",
            "days",
            0.0,
            365.0,
            False,
            f"Days since the last purchase in {c} (365: never or longer ago).",
        )
        for c in category_names
    )
    return (*FEATURES, *purchases, *recommended, *days)


def item_feature_bounds(category_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` float32 bounds of :func:`item_features`, for the observation space."""
    features = item_features(category_names)
    low = np.array([f.low for f in features], dtype=np.float32)
    high = np.array([f.high for f in features], dtype=np.float32)
    return low, high
