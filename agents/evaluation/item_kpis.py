"""What the evaluator records of product recommendations: a rollout observer and its totals.

:class:`ItemRecorder` watches a rollout of the item or slate world
(:class:`~rec_env.rollout.RolloutObserver`) and keeps, per customer, what the item metrics of
:mod:`~rec_env.agents.evaluation.item_metrics` need. Only **delivered** messages count (a
message to a channel without consent shows nothing).

Conventions:

* **Ranking metrics** judge each delivered message at decision time against the customer's
  true utility (``model.utilities(batch)``: the expected profit of each product shown alone),
  over the products that could be recommended then (``model.allowed_products``: in stock and
  not in the last message; the others are never relevant). The relevant products are the
  customer's top ``m`` (default :data:`RELEVANT_PRODUCTS` = 10, 5 % of the default catalog),
  gain is binary, and ``k`` is the number of products per message: 1 in the item world (NDCG@1,
  HR@1 and precision@1 then coincide: "was the product one of the customer's 10 best?"), the
  slate size ``K`` in the slate world.
* **Intra-list diversity** (slates of 2 or more products) per delivered slate; **history
  diversity**: the same formula over every product a customer was shown during the
  evaluation, so that single-product recommendations have a diversity too.
* **Novelty**: mean ``-log2`` of the product table's popularity over delivered products.
* **Catalog coverage** and the **exposure Gini** over every delivered product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rec_env.agents.evaluation.item_metrics import (
    catalog_coverage,
    exposure_gini,
    hit_rate_at_k,
    intra_list_diversity,
    ndcg_at_k,
    novelty,
    precision_at_k,
)
from rec_env.dynamics import StepOutcome
from rec_env.features import CHANNELS
from rec_env.rollout import Cohort

__all__ = ["RANKING_METRICS", "RELEVANT_PRODUCTS", "ItemRecorder", "ItemTotals"]

RELEVANT_PRODUCTS = 10
"""Default ``m``: a customer's relevant products are their ``m`` best by true utility."""

RANKING_METRICS = {"ndcg": ndcg_at_k, "hit_rate": hit_rate_at_k, "precision": precision_at_k}
"""Name → function of the ranking metrics (reported as ``<name>_at_<k>``)."""


@dataclass
class ItemTotals:
    """Per-customer sums ``(n,)`` of a rollout's recommendations and catalog-level figures.

    Attributes:
        k: Products per message (the ranking cut-off).
        n_relevant: ``m``, relevant products per customer.
        messages: Delivered messages.
        clicks: Clicked products.
        message_purchases: Purchases of a recommended product.
        ranking: Metric name → sum over delivered messages of its value.
        slate_diversity: Sum of the intra-list diversity of delivered slates of 2+ products.
        diverse_slates: Number of those slates.
        novelty: Sum of ``-log2 popularity`` over delivered products.
        products: Delivered products.
        history_diversity: Diversity of all products shown to each customer (``NaN``: < 2).
        coverage: Share of the catalog delivered at least once.
        exposure_gini: Gini coefficient of the products' delivery counts.
    """

    k: int
    n_relevant: int
    messages: np.ndarray
    clicks: np.ndarray
    message_purchases: np.ndarray
    ranking: dict[str, np.ndarray]
    slate_diversity: np.ndarray
    diverse_slates: np.ndarray
    novelty: np.ndarray
    products: np.ndarray
    history_diversity: np.ndarray
    coverage: float
    exposure_gini: float


class ItemRecorder:
    """Records the item metrics of one rollout (pass it as ``observer`` to the rollout).

    Args:
        model: The item or slate model of the rollout.
        n_customers: Cohort size.
        horizon: Cycles of the rollout (bounds the history kept per customer).
        k: Products per message (the ranking cut-off).
        n_relevant: ``m``, relevant products per customer (at most the catalog size).
    """

    def __init__(
        self,
        model: Any,
        n_customers: int,
        horizon: int,
        k: int,
        n_relevant: int = RELEVANT_PRODUCTS,
    ) -> None:
        self.model = model
        self.k = int(k)
        n_products = model.products.n_products
        self.n_relevant = min(max(int(n_relevant), self.k), n_products)
        n = n_customers
        self.history = np.full((n, horizon * self.k), -1, dtype=np.intp)
        self._filled = np.zeros(n, dtype=np.intp)
        self.messages, self.clicks, self.message_purchases = np.zeros((3, n))
        self.ranking = {name: np.zeros(n) for name in RANKING_METRICS}
        self.slate_diversity, self.diverse_slates = np.zeros((2, n))
        self._slates = np.full((n, self.k), -1, dtype=np.intp)
        self._pending = {name: np.zeros(n) for name in (*RANKING_METRICS, "diversity")}

    def on_decision(
        self, cohort: Cohort, slates: np.ndarray, channels: np.ndarray, alive: np.ndarray
    ) -> None:
        """Score the decided messages against the customers' true utilities, now."""
        self._slates = slates[:, : self.k]
        sending = alive & (channels < len(CHANNELS)) & (self._slates[:, 0] >= 0)
        rows = np.flatnonzero(sending)
        for values in self._pending.values():
            values[:] = 0.0
        if rows.size == 0:
            return
        utility = self.model.utilities(cohort.batch)[rows]
        allowed = self.model.allowed_products(cohort.batch)[rows]
        floor = utility.min(axis=1, keepdims=True) - 1.0
        utility = np.where(allowed, utility, floor)  # what cannot be shown is never relevant
        shown = self._slates[rows]
        for name, metric in RANKING_METRICS.items():
            self._pending[name][rows] = metric(shown, utility, self.k, n_relevant=self.n_relevant)
        if self.k >= 2:
            diversity = intra_list_diversity(shown, self.model.products.topics)
            self._pending["diversity"][rows] = np.nan_to_num(diversity, nan=0.0)

    def on_outcome(self, outcome: StepOutcome, live: np.ndarray) -> None:
        """Count what was delivered, clicked and bought."""
        delivered = outcome.delivered * live
        self.messages += delivered
        self.clicks += outcome.clicked * live
        self.message_purchases += outcome.message_purchase * live
        for name, total in self.ranking.items():
            total += self._pending[name] * delivered
        rows = np.flatnonzero(delivered > 0)
        if rows.size == 0:
            return
        shown = self._slates[rows]
        if self.k >= 2:
            several = (shown >= 0).sum(axis=1) >= 2
            self.slate_diversity[rows] += self._pending["diversity"][rows] * several
            self.diverse_slates[rows] += several
        columns = self._filled[rows, None] + np.arange(self.k)
        self.history[rows[:, None], columns] = shown
        self._filled[rows] += self.k

    def totals(self) -> ItemTotals:
        """The recorded sums and the catalog-level figures."""
        products = self.model.products
        shown = self.history >= 0
        information = novelty(self.history, products.popularity)
        counts = shown.sum(axis=1).astype(np.float64)
        return ItemTotals(
            k=self.k,
            n_relevant=self.n_relevant,
            messages=self.messages,
            clicks=self.clicks,
            message_purchases=self.message_purchases,
            ranking=self.ranking,
            slate_diversity=self.slate_diversity,
            diverse_slates=self.diverse_slates,
            novelty=np.nan_to_num(information, nan=0.0) * counts,
            products=counts,
            history_diversity=intra_list_diversity(self.history, products.topics),
            coverage=catalog_coverage(self.history, products.n_products),
            exposure_gini=exposure_gini(self.history, products.n_products),
        )
