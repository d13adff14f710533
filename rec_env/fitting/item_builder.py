"""The item world's per-category features of real customers, from the products in their logs.

``recenv features --products TABLE`` and :func:`~rec_env.fitting.builder.build_features` add,
for each category ``<c>`` of the product table, the three features of
:func:`rec_env.item_features.item_features`, **by the item simulator's own definitions**:
the history is cut into cycles ending on ``as_of`` and each cycle applies the functions the
item simulator's step applies (:func:`rec_env._item_kernels.close_category_cycle`,
:func:`~rec_env._item_kernels.record_shown`,
:func:`~rec_env._item_kernels.record_category_purchase`), through
:func:`rec_env._item_kernels.item_history_kernel`.

==========================  ==========================================================
``purchases_<c>``           order lines (``product_id``) of the category, +1 each, decayed
                            with the satiation time constant every cycle
``recommended_<c>``         products of the category in delivered messages (``products``,
                            ids separated by ``|``), +1 each, decayed with the boredom one
``days_since_<c>``          days from the last order line of the category (365: none)
==========================  ==========================================================

As for the strategy features, ``days_since_<c>`` is in exact days from the event dates, and
the decayed counts move cycle by cycle, so events within a cycle count as if on its last day.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from rec_env.datasets.encoding import MISSING_VALUES
from rec_env.errors import ConfigError
from rec_env.item_features import BOREDOM_DAYS, SATIATION_DAYS

if TYPE_CHECKING:
    from rec_env.fitting.builder import _Table
    from rec_env.products import ProductTable

__all__ = ["SHOWN_SEPARATOR", "category_features", "product_categories", "shown_products"]

SHOWN_SEPARATOR = "|"
"""Separates the product ids of one message in the contact log's ``products`` column."""


def _lookup(products: ProductTable) -> dict[str, int]:
    """Product id → category code."""
    return dict(zip(products.ids, products.category.tolist(), strict=True))


def product_categories(
    values: np.ndarray, where: Any, column: str, products: ProductTable
) -> np.ndarray:
    """The category code of each order line's product.

    Raises:
        ConfigError: Naming the file, row and column of the first missing or unknown id.
    """
    lookup = _lookup(products)
    text = np.char.strip(values.astype(np.str_))
    codes = np.array([lookup.get(cell, -1) for cell in text.tolist()], dtype=np.int64)
    if (codes < 0).any():
        k = int(np.flatnonzero(codes < 0)[0])
        cell = str(text[k])
        problem = (
            "missing product id"
            if cell in MISSING_VALUES
            else f"unknown product id {cell!r} (not in the product table)"
        )
        raise ConfigError(f"{where.cell(k, column)}: {problem}")
    return codes


def shown_products(
    values: np.ndarray, where: Any, column: str, products: ProductTable
) -> tuple[np.ndarray, np.ndarray]:
    """The products each message showed, one entry per product.

    A cell holds product ids separated by :data:`SHOWN_SEPARATOR`; an empty or missing cell
    is a message without products.

    Returns:
        ``(row, category)``: the message's row and the product's category code.

    Raises:
        ConfigError: Naming the file, row and column of the first unknown id.
    """
    lookup = _lookup(products)
    rows: list[int] = []
    categories: list[int] = []
    for k, cell in enumerate(np.char.strip(values.astype(np.str_)).tolist()):
        if cell in MISSING_VALUES:
            continue
        for part in cell.split(SHOWN_SEPARATOR):
            product = part.strip()
            if not product:
                continue
            code = lookup.get(product, -1)
            if code < 0:
                raise ConfigError(
                    f"{where.cell(k, column)}: unknown product id {product!r} (not in the "
                    f"product table; ids are separated by {SHOWN_SEPARATOR!r})"
                )
            rows.append(k)
            categories.append(code)
    return np.array(rows, dtype=np.int64), np.array(categories, dtype=np.int64)


def category_features(
    bought: _Table | None,
    shown: _Table | None,
    index_of: Callable[[_Table], tuple[np.ndarray, np.ndarray]],
    n: int,
    n_categories: int,
    last: int,
    cycle_days: int,
) -> np.ndarray:
    """``(n, 3C)`` per-category features at the end of day ``last``, in ``item_features`` order.

    Args:
        bought: One row per product bought (``category``), events after ``last`` left out.
        shown: One row per product shown in a delivered message (``category``), likewise.
        index_of: Customer index of each row of a table, and which rows are known customers.
        n: Customers.
        n_categories: Categories of the product table.
        last: The last day of the history (days since 1970-01-01).
        cycle_days: Length of a cycle.
    """
    from rec_env._item_kernels import MAX_CATEGORY_DAYS, item_history_kernel

    tables = {"bought": bought, "shown": shown}
    days = {name: t.day[index_of(t)[1]] for name, t in tables.items() if t is not None}
    oldest = max(((last - d) // cycle_days).max(initial=0) for d in days.values()) if days else 0
    n_cycles = int(oldest) + 1
    start = np.full(n, n_cycles, dtype=np.int64)

    def arrays(table: _Table | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR pointers, cycle and category of ``table``'s rows, by customer and day."""
        if table is None:
            return np.zeros(n + 1, dtype=np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        who, known = index_of(table)
        day = table.day[known]
        sort = np.lexsort((day, who))
        who, day = who[sort], day[sort]
        cycles = (n_cycles - 1 - (last - day) // cycle_days).astype(np.int64)
        np.minimum.at(start, who, cycles)
        pointers = np.concatenate([[0], np.cumsum(np.bincount(who, minlength=n))])
        category = table.columns["category"][known][sort].astype(np.int64)
        return pointers.astype(np.int64), cycles, category

    bought_arrays, shown_arrays = arrays(bought), arrays(shown)
    obs = np.zeros((3 * n_categories, n))
    obs[2 * n_categories :] = MAX_CATEGORY_DAYS  # no history: never bought
    item_history_kernel(
        obs,
        0,
        start,
        n_cycles,
        *bought_arrays,
        *shown_arrays,
        math.exp(-cycle_days / SATIATION_DAYS),
        math.exp(-cycle_days / BOREDOM_DAYS),
        float(cycle_days),
    )
    # the day counts in exact days from the dates (the simulator's fall on cycle ends)
    if bought is not None and len(bought.day):
        who, known = index_of(bought)
        latest = np.full((n_categories, n), -1, dtype=np.int64)
        np.maximum.at(latest, (bought.columns["category"][known], who), bought.day[known])
        has = latest >= 0
        obs[2 * n_categories :][has] = np.minimum(last - latest[has], MAX_CATEGORY_DAYS)
    return obs.T.copy()
