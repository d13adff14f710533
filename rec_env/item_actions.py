"""The item world's actions and the product arrays its kernels read.

:class:`ItemActionTable` is the flat action space of ``ItemRecommendation-v0``: action 0 sends
nothing, and every other action is one (product, channel, offer) triple, product-major:
``a = 1 + (product · n_channels + channel) · n_offers + offer``. It has the attributes the
strategy :class:`~rec_env.catalog.ActionTable` has (names, channels, costs, ``no_action``), so
the rollout, the evaluator, the baselines and the policies read both the same way.

:class:`ProductArrays` holds what the kernels need of a :class:`~rec_env.products.ProductTable`:
unit topic vectors, and per category its popularity-weighted topic direction, its share of
popularity, its expected unit profit and its products sorted for sampling by popularity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rec_env.features import CHANNELS
from rec_env.products import ProductTable

__all__ = ["ItemActionTable", "ProductArrays", "action_features"]


@dataclass(frozen=True, eq=False)
class ItemActionTable:
    """One action per (product, channel, offer), plus ``no_action`` (index 0).

    Attributes:
        names: ``"no_action"``, then ``"<product id>:<channel>"`` (with ``":<pct>off"`` for
            offers other than 0).
        channel_names: Channel of each action (``"none"`` for no action).
        channel: Channel index into :data:`~rec_env.features.CHANNELS` (``len(CHANNELS)``: none).
        product: Product index of each action (-1 for no action).
        discount: Discount on the product, a fraction of its price.
        cost: Cost of a delivered message, USD.
        offers: The offer levels (discount fractions), in action order.
        no_action: Index of the do-nothing action (0).
    """

    names: tuple[str, ...]
    channel_names: tuple[str, ...]
    channel: np.ndarray
    product: np.ndarray
    discount: np.ndarray
    cost: np.ndarray
    offers: tuple[float, ...]
    no_action: int = 0

    @classmethod
    def build(
        cls, products: ProductTable, channel_cost: Sequence[float], offers: Sequence[float]
    ) -> ItemActionTable:
        """Every (product, channel, offer) of ``products``, product-major, after no action."""
        n_ch, n_off = len(CHANNELS), len(offers)
        grid = np.indices((products.n_products, n_ch, n_off)).reshape(3, -1)
        product = np.concatenate([[-1], grid[0]]).astype(np.intp)
        channel = np.concatenate([[n_ch], grid[1]]).astype(np.intp)
        discount = np.concatenate([[0.0], np.asarray(offers, dtype=np.float64)[grid[2]]])
        costs = np.concatenate([np.asarray(channel_cost, dtype=np.float64), [0.0]])
        suffix = [f":{round(100 * o)}off" if o > 0 else "" for o in offers]
        names = ["no_action"] + [
            f"{products.ids[p]}:{CHANNELS[c]}{suffix[o]}" for p, c, o in grid.T.tolist()
        ]
        return cls(
            names=tuple(names),
            channel_names=("none", *(CHANNELS[c] for c in grid[1])),
            channel=channel,
            product=product,
            discount=discount,
            cost=costs[channel],
            offers=tuple(float(o) for o in offers),
        )

    @property
    def n_actions(self) -> int:
        """Number of actions."""
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of the action called ``name``.

        Raises:
            KeyError: If there is no such action.
        """
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown action {name!r} (e.g. {self.names[1]!r})") from None


@dataclass(frozen=True, eq=False)
class ProductArrays:
    """The arrays of a product table that the item kernels read (all contiguous)."""

    price: np.ndarray
    margin: np.ndarray
    category: np.ndarray
    topics: np.ndarray
    is_new: np.ndarray
    available: np.ndarray
    cat_topics: np.ndarray
    cat_log_share: np.ndarray
    cat_profit: np.ndarray
    cat_start: np.ndarray
    cat_order: np.ndarray
    cat_cumulative: np.ndarray

    @classmethod
    def from_table(cls, products: ProductTable) -> ProductArrays:
        """Compile ``products``: unit topic vectors and the per-category sampling tables."""
        topics = products.topics / np.linalg.norm(products.topics, axis=1, keepdims=True)
        n_cat = products.n_categories
        order = np.argsort(products.category, kind="stable").astype(np.intp)
        counts = np.bincount(products.category, minlength=n_cat)
        start = np.concatenate([[0], np.cumsum(counts)]).astype(np.intp)
        available = products.stock != 0
        # organic purchases pick products in stock (every one of them possible)
        popularity = np.where(available, products.popularity + 1e-12, 0.0)
        cumulative = np.zeros(products.n_products)
        cat_topics = np.zeros((n_cat, products.n_topics))
        share = np.zeros(n_cat)
        profit = np.zeros(n_cat)
        for c in range(n_cat):
            members = order[start[c] : start[c + 1]]
            if members.size == 0 or not available[members].any():
                continue  # no share: never chosen
            weights = popularity[members]
            share[c] = weights.sum()
            cumulative[start[c] : start[c + 1]] = np.cumsum(weights) / share[c]
            cumulative[start[c + 1] - 1] = 1.0
            direction = weights @ topics[members]
            cat_topics[c] = direction / np.linalg.norm(direction)
            profit[c] = weights @ products.unit_profit[members] / share[c]
        with np.errstate(divide="ignore"):
            log_share = np.log(share / share.sum())
        return cls(
            price=np.ascontiguousarray(products.price),
            margin=np.ascontiguousarray(products.margin),
            category=np.ascontiguousarray(products.category, dtype=np.intp),
            topics=np.ascontiguousarray(topics),
            is_new=np.ascontiguousarray(products.is_new),
            available=available,
            cat_topics=cat_topics,
            cat_log_share=log_share,
            cat_profit=profit,
            cat_start=start,
            cat_order=order,
            cat_cumulative=cumulative,
        )


def action_features(products: ProductTable, actions: ItemActionTable) -> np.ndarray:
    """``(n_actions, k)`` description of each action for bandits that generalise over products.

    Columns: the product's unit topic vector, its standardised log price, its margin, its
    ``new`` flag, its offer, the channel one-hot and a message indicator; the no-action row is
    all zeros.
    """
    arrays = ProductArrays.from_table(products)
    log_price = np.log(products.price)
    scaled_price = (log_price - log_price.mean()) / max(float(log_price.std()), 1e-9)
    per_product = np.column_stack(
        [arrays.topics, scaled_price, products.margin, products.is_new.astype(np.float64)]
    )
    n_ch = len(CHANNELS)
    rows = np.zeros((actions.n_actions, per_product.shape[1] + 2 + n_ch))
    sent = actions.product >= 0
    rows[sent, : per_product.shape[1]] = per_product[actions.product[sent]]
    rows[sent, per_product.shape[1]] = actions.discount[sent]
    rows[sent, per_product.shape[1] + 1 + actions.channel[sent]] = 1.0
    rows[sent, -1] = 1.0
    return rows
