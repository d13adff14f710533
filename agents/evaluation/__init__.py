"""Evaluation on the simulator: KPIs with confidence intervals, comparisons, A/B tests, plots.

* :mod:`~rec_env.agents.evaluation.evaluate`: :func:`evaluate` a policy on a seeded cohort;
* :mod:`~rec_env.agents.evaluation.compare`: several contenders side by side;
* :mod:`~rec_env.agents.evaluation.abtest`: simulated A/B tests and power plans;
* :mod:`~rec_env.agents.evaluation.ab_stats`: the A/B statistics (Welch, two proportions, CUPED,
  sample-ratio mismatch, power), shared by simulated and real tests;
* :mod:`~rec_env.agents.evaluation.ab_analysis`: a real test's results read from a file;
* :mod:`~rec_env.agents.evaluation.sequential`: paired comparisons on common random numbers;
* :mod:`~rec_env.agents.evaluation.plots`: KPI bars and learning curves;
* :mod:`~rec_env.agents.evaluation.item_metrics`: NDCG/HR/precision@k, intra-list diversity,
  novelty, catalog coverage and the Gini coefficient of exposure of product recommendations;
* :mod:`~rec_env.agents.evaluation.multiseed`: results over training seeds as ``rliable``
  recommends (interquartile mean, stratified-bootstrap CIs, probability of improvement).
"""

from __future__ import annotations

from rec_env.agents.evaluation.evaluate import (
    EVAL_SEED,
    KPI,
    Evaluation,
    evaluate,
    kpis_with_ci,
    oracle_profit,
)
from rec_env.agents.evaluation.item_metrics import (
    catalog_coverage,
    exposure_gini,
    hit_rate_at_k,
    intra_list_diversity,
    ndcg_at_k,
    novelty,
    precision_at_k,
    top_m_relevant,
)
from rec_env.agents.evaluation.multiseed import (
    ImprovementProbability,
    IQMEstimate,
    aggregate_iqm,
    improvement_probability,
    interquartile_mean,
    iqm_estimate,
    probability_of_improvement,
    stratified_bootstrap,
)

__all__ = [
    "EVAL_SEED",
    "KPI",
    "Evaluation",
    "IQMEstimate",
    "ImprovementProbability",
    "aggregate_iqm",
    "catalog_coverage",
    "evaluate",
    "exposure_gini",
    "hit_rate_at_k",
    "improvement_probability",
    "interquartile_mean",
    "intra_list_diversity",
    "iqm_estimate",
    "kpis_with_ci",
    "ndcg_at_k",
    "novelty",
    "oracle_profit",
    "precision_at_k",
    "probability_of_improvement",
    "stratified_bootstrap",
    "top_m_relevant",
]
