"""Rich tables of evaluations, shared by ``recenv train``, ``eval`` and ``compare``."""

from __future__ import annotations

from rich.table import Table

from rec_env.agents.evaluation.evaluate import Evaluation

__all__ = ["evaluation_table"]

_COLUMNS = (
    ("profit_per_customer", "profit $", "{:.2f}", 1.0, True),
    ("conversion_rate", "conv %", "{:.2f}", 100.0, True),
    ("contacts_per_customer", "msgs", "{:.1f}", 1.0, False),
    ("unsubscribe_rate", "unsub%", "{:.1f}", 100.0, False),
    ("churn_rate", "churn%", "{:.1f}", 100.0, False),
)
"""(KPI, header, format, scale, show CI); the CSV and JSON outputs carry every KPI and CI."""


def _cell(template: str, mean: float, ci: float, with_ci: bool) -> str:
    text = template.format(mean)
    return f"{text}±{template.format(ci)}" if with_ci else text


def evaluation_table(results: list[Evaluation], title: str = "") -> Table:
    """One row per evaluation: the main KPIs and the share of the myopic oracle's profit.

    Profit and conversion carry their 95 % confidence intervals.
    """
    caption = "± 95% CI; oracle: share of the myopic oracle's profit; full KPIs in the CSV/JSON"
    table = Table(title=title or None, title_justify="left", caption=caption)
    table.add_column("policy", no_wrap=True, min_width=max(len(r.policy) for r in results))
    for _, header, _, _, _ in _COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("oracle", justify="right", no_wrap=True)
    for result in results:
        cells = [
            _cell(template, result.kpis[key].mean * scale, result.kpis[key].ci * scale, with_ci)
            for key, _, template, scale, with_ci in _COLUMNS
        ]
        share = "" if result.oracle_share is None else f"{result.oracle_share:.0%}"
        table.add_row(result.policy, *cells, share)
    return table
