"""Sections of simulated results: the comparison, learning, lifetime and explanations."""

from __future__ import annotations

from collections.abc import Mapping

from rec_env.agents.evaluation.plots import kpi_figure, learning_curve_figure, ranked, winner
from rec_env.agents.evaluation.style import (
    FAMILY_WORDS,
    Period,
    feature_with_value,
    policy_family,
)
from rec_env.agents.report.content import ReportContent
from rec_env.agents.report.explanations import example_waterfall, summary_figure
from rec_env.agents.report.html import escape, figure_html, paragraph, section, table
from rec_env.agents.report.lifetime import LifetimeMix, lifetime_figure

__all__ = [
    "comparison_section",
    "explanation_section",
    "learning_section",
    "lifetime_section",
]


def _cell(mean: float, ci: float, template: str) -> str:
    return f"{template.format(mean)} ± {template.format(ci)}"


def comparison_section(content: ReportContent, colors: Mapping[str, str]) -> str:
    """The comparison table, best first, and the KPI figure."""
    results = ranked(content.evaluations)
    best = winner(results)
    period = Period.of(results[0].settings)
    rows = []
    for r in results:
        k = r.kpis
        swatch = f'<span class="swatch" style="background:{colors[r.policy]}"></span>'
        rows.append(
            [
                swatch + escape(r.policy),
                FAMILY_WORDS[policy_family(r.policy)].split(" (")[0],
                _cell(k["profit_per_customer"].mean, k["profit_per_customer"].ci, "${:,.2f}"),
                _cell(100 * k["conversion_rate"].mean, 100 * k["conversion_rate"].ci, "{:.2f}"),
                f"{k['contacts_per_customer'].mean:.1f}",
                f"{100 * k['unsubscribe_rate'].mean:.1f} %",
                f"{100 * k['churn_rate'].mean:.1f} %",
                "" if r.oracle_share is None else f"{r.oracle_share:.0%}",
            ]
        )
    headers = [
        "policy",
        "kind",
        f"profit (USD per customer {period.per_lifetime})",
        f"purchases per {period.cycle} per 100 active customers",
        f"messages per customer {period.per_lifetime}",
        "unsubscribed",
        "customers lost",
        "of the oracle's profit",
    ]
    cohort = results[0]
    caption = (
        f"{cohort.n_customers:,} simulated customers (population {cohort.settings.profile}, "
        f"cohort seed {cohort.seed}), each followed for a {period.lifetime} of {period.cycle}ly "
        "decisions; ± the 95 % confidence interval. The oracle is a reference that sees every "
        "customer's true expected reward (myopically, one week ahead), not a policy to deploy."
    )
    index = [i for i, r in enumerate(results) if r is best]
    body = [
        table(headers, rows, caption=caption, highlight=index, raw_first=True, text_columns=2),
        figure_html(
            kpi_figure(results, colors),
            "Sorted by profit; the best policy (the oracle aside) has a dark outline. Colours: "
            "one hue per kind of policy.",
        ),
    ]
    return section("comparison", "Comparison", body)


def learning_section(content: ReportContent, colors: Mapping[str, str]) -> str:
    """Training curves of the runs and the online learners' rewards week by week."""
    fig = learning_curve_figure(content.evaluations, content.training, colors)
    text = (
        "Left: the evaluation profit of each trained run as training went on (runs of one "
        "algorithm with several seeds as one line and a band). Right: what online learners "
        "earn in each week of the evaluation customers' year while they keep learning, "
        "against sending nothing and the best frozen policy."
    )
    return section("learning", "Learning curves", [paragraph(text), figure_html(fig)])


def _mix_words(mix: LifetimeMix, week: int) -> str:
    top = mix.top_actions(week)
    return ", ".join(f"{name} {share:.0%}" for name, share in top) or "nobody active"


def lifetime_section(content: ReportContent, marks: tuple[int, int] = (1, 40)) -> str:
    """The action mix by customer age: a figure and a week-1 against week-40 table."""
    mixes = content.lifetimes
    period = mixes[0].period
    late = min(marks[1], mixes[0].counts.shape[0])
    rows = [
        [
            mix.policy,
            _mix_words(mix, marks[0]),
            _mix_words(mix, late),
            f"{100 * mix.active[late - 1]:.0f} %",
        ]
        for mix in mixes
    ]
    headers = [
        "policy",
        f"{period.cycle} {marks[0]}: most sent",
        f"{period.cycle} {late}: most sent",
        f"customers still active in {period.cycle} {late}",
    ]
    customers = mixes[0].n_customers
    text = (
        f"What each policy does as customers age: the share of active customers receiving "
        f"each action in every {period.cycle} of their {period.lifetime}, on {customers:,} "
        "simulated customers who start together."
    )
    body = [
        paragraph(text),
        table(headers, rows, text_columns=3),
        figure_html(lifetime_figure(mixes, marks)),
    ]
    return section("lifetime", "Over the customer lifetime", body)


def explanation_section(content: ReportContent) -> str:
    """Per run: the summary per action and a few example customers' waterfalls."""
    body = [
        paragraph(
            "Why the policy chooses what it chooses, with exact Shapley values: how much each "
            "feature of a customer moves the policy's preference for the action it chose, "
            "against the average customer in operation. One panel per action, so customers who "
            "got different actions are never mixed."
        )
    ]
    for run in content.explanations:
        body.append(f"<h3>{escape(run.label)}</h3>")
        body.append(figure_html(summary_figure(run)))
        for number, row in enumerate(run.examples, start=1):
            name = f"Example customer {number}"
            action = run.action_names[int(run.actions[row])]
            order = abs(run.values[row]).argsort()[::-1][:3]
            words = "; ".join(
                feature_with_value(run.feature_names[j], float(run.data[row, j])) for j in order
            )
            body.append(paragraph(f"{name} gets {action}. Their most telling features: {words}."))
            body.append(figure_html(example_waterfall(run, row, name)))
    return section("explanations", "Why the policy decides", body)
