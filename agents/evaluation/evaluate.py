"""Evaluate any policy over full customer lifetimes, with 95 % confidence intervals.

Every policy, frozen (SB3 models, baselines) or learning online (bandits), is run by
:func:`rec_env.rollout.run_cohort` (:func:`~rec_env.rollout.run_slate_cohort` in the slate world)
on the same cohort: the same seed gives the same customers and the same random numbers, so
policies are compared on equal terms. Confidence intervals are across customers (normal
approximation; ratio estimator, clustered by customer, for rates).

In the item and slate worlds the evaluation adds the item metrics
(:mod:`~rec_env.agents.evaluation.item_kpis` states the conventions), each with its CI:
``click_through_rate`` (clicks per delivered message), ``message_conversion_rate`` (purchases
of a recommended product per delivered message), ``ndcg_at_<k>``, ``hit_rate_at_<k>`` and
``precision_at_<k>`` (per delivered message, against the customer's ``m`` = 10 best products by
true utility, ``k`` = products per message), ``intra_list_diversity`` (slates),
``history_diversity`` (per customer) and ``novelty`` (bits per delivered product); and, for the
whole catalog (no CI), ``catalog_coverage`` and ``exposure_gini`` in ``catalog_metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from rec_env.agents.evaluation.item_kpis import RELEVANT_PRODUCTS, ItemRecorder, ItemTotals
from rec_env.rollout import CohortResult, PolicyLike, run_cohort, run_slate_cohort
from rec_env.settings import EnvSettings

__all__ = [
    "EVAL_SEED",
    "KPI",
    "Evaluation",
    "evaluate",
    "item_kpis_with_ci",
    "kpis_with_ci",
    "oracle_profit",
]

_Z95 = 1.96


EVAL_SEED = 10_007
"""Seed of the held-out evaluation cohort used by training and ``recenv eval``."""


@dataclass(frozen=True)
class KPI:
    """A mean and the half-width of its 95 % confidence interval."""

    mean: float
    ci: float

    @property
    def low(self) -> float:
        """Lower end of the interval."""
        return self.mean - self.ci

    @property
    def high(self) -> float:
        """Upper end of the interval."""
        return self.mean + self.ci

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.ci:.2g}"


@dataclass
class Evaluation:
    """What a policy achieved on a cohort.

    Attributes:
        policy: Name of the policy.
        n_customers: Cohort size.
        seed: Cohort seed.
        settings: The simulated world (:class:`~rec_env.settings.EnvSettings`).
        kpis: KPI name → mean and 95 % CI.
        action_distribution: Action name → share of decisions (of alive customers).
        action_entropy: Entropy of the action distribution in nats (diversity).
        oracle_share: Profit per customer as a share of the myopic oracle's on the same cohort.
        reward_per_cycle: Mean reward per customer in each cycle (a learning curve for
            online learners).
        catalog_metrics: Item and slate worlds: ``catalog_coverage``, ``exposure_gini`` and
            the ranking's ``k`` and ``relevant_products`` (``m``); empty in the strategy world.
    """

    policy: str
    n_customers: int
    seed: int
    settings: EnvSettings
    kpis: dict[str, KPI]
    action_distribution: dict[str, float]
    action_entropy: float
    oracle_share: float | None
    reward_per_cycle: list[float] = field(default_factory=list)
    catalog_metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``catalog_metrics`` only in the item and slate worlds)."""
        data = asdict(self)
        data["settings"] = self.settings.to_dict()
        data["kpis"] = {k: {"mean": v.mean, "ci95": v.ci} for k, v in self.kpis.items()}
        if not self.catalog_metrics:
            del data["catalog_metrics"]
        return data

    def row(self) -> dict[str, float | str]:
        """One flat table row: KPI means and CIs, oracle share, entropy, catalog metrics."""
        row: dict[str, float | str] = {"policy": self.policy}
        for name, kpi in self.kpis.items():
            row[name] = kpi.mean
            row[f"{name}_ci95"] = kpi.ci
        row["oracle_share"] = float("nan") if self.oracle_share is None else self.oracle_share
        row["action_entropy"] = self.action_entropy
        row.update(self.catalog_metrics)
        return row


def mean_ci(values: np.ndarray) -> KPI:
    """A mean and the half-width of its normal 95 % CI (0 with fewer than two values)."""
    n = values.size
    sd = float(values.std(ddof=1)) if n > 1 else 0.0
    return KPI(float(values.mean()), _Z95 * sd / np.sqrt(max(n, 1)))


def _ratio_ci(numerator: np.ndarray, denominator: np.ndarray) -> KPI:
    total = float(denominator.sum())
    if total == 0.0:
        return KPI(0.0, 0.0)
    ratio = float(numerator.sum()) / total
    residual = numerator - ratio * denominator
    se = float(np.sqrt((residual**2).sum())) / total
    return KPI(ratio, _Z95 * se)


def kpis_with_ci(result: CohortResult) -> dict[str, KPI]:
    """Per-customer KPIs of a cohort run with 95 % confidence intervals."""
    return {
        "profit_per_customer": mean_ci(result.profit),
        "reward_per_customer": mean_ci(result.reward),
        "revenue_per_customer": mean_ci(result.revenue),
        "discount_cost_per_customer": mean_ci(result.discount_cost),
        "conversion_rate": _ratio_ci(result.purchases, result.cycles),
        "purchases_per_customer": mean_ci(result.purchases),
        "contacts_per_customer": mean_ci(result.contacts),
        "unsubscribe_rate": mean_ci((result.unsubscribes > 0).astype(np.float64)),
        "churn_rate": mean_ci(result.churned.astype(np.float64)),
    }


def _per_message(numerator: np.ndarray, denominator: np.ndarray) -> KPI:
    """:func:`_ratio_ci`, but undefined (``NaN``) when nothing was recommended."""
    if not denominator.any():
        return KPI(float("nan"), float("nan"))
    return _ratio_ci(numerator, denominator)


def item_kpis_with_ci(totals: ItemTotals) -> dict[str, KPI]:
    """The item metrics of a rollout with 95 % CIs (see the module docstring for the names).

    Metrics of recommendations are ``NaN`` for a policy that recommended nothing.
    """
    kpis = {
        "click_through_rate": _per_message(totals.clicks, totals.messages),
        "message_conversion_rate": _per_message(totals.message_purchases, totals.messages),
    }
    for name, total in totals.ranking.items():
        kpis[f"{name}_at_{totals.k}"] = _per_message(total, totals.messages)
    if totals.k >= 2:
        kpis["intra_list_diversity"] = _per_message(totals.slate_diversity, totals.diverse_slates)
    history = totals.history_diversity[np.isfinite(totals.history_diversity)]
    kpis["history_diversity"] = mean_ci(history) if history.size else _per_message(history, history)
    kpis["novelty"] = _per_message(totals.novelty, totals.products)
    return kpis


def _catalog_metrics(totals: ItemTotals) -> dict[str, float]:
    return {
        "catalog_coverage": totals.coverage,
        "exposure_gini": totals.exposure_gini,
        "ranking_k": float(totals.k),
        "relevant_products": float(totals.n_relevant),
    }


def _rollout(
    model: Any,
    policy: PolicyLike,
    settings: EnvSettings,
    n_customers: int,
    seed: int,
    learn: bool = False,
    progress: Callable[[int], None] | None = None,
    observer: ItemRecorder | None = None,
) -> CohortResult:
    """The world's rollout; online learners explore while they learn, others act greedily."""
    if settings.world == "slate":
        if learn:
            raise ValueError("the slate world evaluates frozen policies only (learn=False)")
        return run_slate_cohort(
            model, policy, n_customers, settings.horizon, seed, True, progress, observer
        )
    return run_cohort(
        model,
        policy,
        n_customers,
        settings.horizon,
        seed,
        learn,
        deterministic=not learn,
        progress=progress,
        observer=observer,
    )


@lru_cache(maxsize=32)
def oracle_profit(settings: EnvSettings, n_customers: int, seed: int) -> float:
    """Mean profit per customer of the myopic (profit) oracle on the same cohort (cached)."""
    from rec_env.agents.registry import make_baseline

    settings = settings.replace(reward_mode="profit")
    model = settings.build_model()
    oracle = make_baseline("oracle", model)
    return float(_rollout(model, oracle, settings, n_customers, seed).profit.mean())


def evaluate(
    policy: PolicyLike,
    settings: EnvSettings | Mapping[str, Any] | None = None,
    n_customers: int = 10_000,
    seed: int = 0,
    learn: bool = False,
    name: str | None = None,
    compare_to_oracle: bool = True,
    progress: Callable[[int], None] | None = None,
    n_relevant: int = RELEVANT_PRODUCTS,
) -> Evaluation:
    """Run ``policy`` over full customer lifetimes (to churn or the horizon) and score it.

    Args:
        policy: Anything with ``predict(obs, action_masks, deterministic)``; policies with
            ``set_env`` (the oracle) are attached to the cohort. In the slate world also slate
            policies (``predict_slates``) and scoring-vector policies
            (:func:`~rec_env.rollout.run_slate_cohort`).
        settings: The simulated world: :class:`~rec_env.settings.EnvSettings` or a mapping of
            its fields (``None``: the defaults).
        n_customers: Cohort size.
        seed: Cohort seed: the same seed gives the same customers and random numbers.
        learn: Let online learners ``update`` from every cycle and explore (``predict`` with
            ``deterministic=False``): their online learning curve. With ``False`` every policy
            acts greedily and frozen.
        name: Label for reports (defaults to the policy's ``algorithm``).
        compare_to_oracle: Also run the myopic oracle on the same cohort for ``oracle_share``.
        progress: Called with the number of cycles completed.
        n_relevant: Item and slate worlds: ``m``, the relevant products per customer of the
            ranking metrics.

    Returns:
        The evaluation.

    Raises:
        ValueError: For ``learn=True`` in the slate world.
    """
    settings = EnvSettings.coerce(settings)
    model = settings.build_model()
    recorder = None
    if settings.world != "strategy":
        recorder = ItemRecorder(model, n_customers, settings.horizon, settings.k, n_relevant)
    result = _rollout(model, policy, settings, n_customers, seed, learn, progress, recorder)
    counts = result.action_counts.astype(np.float64)
    shares = counts / max(counts.sum(), 1.0)
    nonzero = shares[shares > 0]
    kpis = kpis_with_ci(result)
    catalog: dict[str, float] = {}
    if recorder is not None:
        totals = recorder.totals()
        kpis.update(item_kpis_with_ci(totals))
        catalog = _catalog_metrics(totals)
    share = None
    if compare_to_oracle:
        reference = oracle_profit(settings, n_customers, seed)
        share = kpis["profit_per_customer"].mean / reference if reference else None
    return Evaluation(
        policy=name or getattr(policy, "algorithm", type(policy).__name__),
        n_customers=n_customers,
        seed=seed,
        settings=settings,
        kpis=kpis,
        action_distribution={
            a: float(s) for a, s in zip(result.action_names, shares, strict=True) if s > 0
        },
        action_entropy=float(-(nonzero * np.log(nonzero)).sum()),
        oracle_share=share,
        reward_per_cycle=result.reward_per_cycle,
        catalog_metrics=catalog,
    )
