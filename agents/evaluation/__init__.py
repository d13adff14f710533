"""Evaluation on the simulator: KPIs with confidence intervals, comparisons, A/B tests, plots.

* :mod:`~rec_env.agents.evaluation.evaluate`: :func:`evaluate` a policy on a seeded cohort;
* :mod:`~rec_env.agents.evaluation.compare`: several contenders side by side;
* :mod:`~rec_env.agents.evaluation.abtest`: simulated A/B tests and power plans;
* :mod:`~rec_env.agents.evaluation.sequential`: paired comparisons on common random numbers;
* :mod:`~rec_env.agents.evaluation.plots`: KPI bars and learning curves.
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

__all__ = ["EVAL_SEED", "KPI", "Evaluation", "evaluate", "kpis_with_ci", "oracle_profit"]
