"""``recenv ab``: simulate an A/B test between two policies, or plan one's sample size."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rec_env.cli._errors import MAX_CUSTOMERS, check_count, fail, reporting_bad_input
from rec_env.dynamics import REWARD_MODES

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.agents.evaluation.abtest import ABTestResult

__all__ = ["ab_command"]

_KPI_FORMATS = (
    ("profit_per_customer", "Profit per customer", "${:,.2f}", 1.0),
    ("conversion", "Conversion (bought during the test)", "{:.2f}%", 100.0),
    ("revenue_per_customer", "Revenue per customer", "${:,.2f}", 1.0),
    ("purchases_per_customer", "Purchases per customer", "{:.3f}", 1.0),
    ("contacts_per_customer", "Contacts per customer", "{:.2f}", 1.0),
    ("discount_cost_per_customer", "Discount cost per customer", "${:,.2f}", 1.0),
    ("unsubscribe_rate", "Unsubscribe rate", "{:.2f}%", 100.0),
    ("churn_rate", "Churn rate", "{:.2f}%", 100.0),
)


def _plan(baseline_rate: float | None, lift: float | None, alpha: float, power: float) -> None:
    """Print the customers per arm that a conversion test needs."""
    from rec_env.agents.evaluation.abtest import sample_size_two_proportions

    if baseline_rate is None or lift is None:
        fail("--plan needs --baseline-rate R and --lift L (e.g. --baseline-rate 0.05 --lift 0.1)")
    target = baseline_rate * (1 + lift)
    if not 0.0 < target < 1.0:
        fail(f"--baseline-rate × (1 + --lift) must be between 0 and 1, got {target:g}")
    with reporting_bad_input():
        n = sample_size_two_proportions(baseline_rate, target, alpha, power)
    typer.echo(
        f"Conversion {baseline_rate:.2%} → {target:.2%} ({lift:+.1%} relative): "
        f"{n:,} customers per arm ({2 * n:,} in total) for {power:.0%} power at "
        f"α = {alpha:g} (two-sided two-proportion z-test)."
    )


def _arms_table(result: ABTestResult, title: str) -> Table:
    """Each arm's KPIs with their 95 % CIs."""
    table = Table(title=title, title_justify="left", caption="± 95% CI", box=box.SIMPLE)
    table.add_column("KPI")
    for name, arm in (("A", result.a), ("B", result.b)):
        table.add_column(f"{name}: {escape(arm.label)} ({arm.n_customers:,})", justify="right")
    for key, label, template, scale in _KPI_FORMATS:
        cells = []
        for arm in (result.a, result.b):
            kpi = arm.kpis[key]
            cells.append(f"{template.format(kpi.mean * scale)} ± {kpi.ci * scale:.2g}")
        table.add_row(label, *cells)
    return table


def _lift_table(result: ABTestResult) -> Table:
    """The lift of B over A in profit and conversion: CI, relative lift, p-value, test."""
    table = Table(title="Lift of B over A", title_justify="left", box=box.SIMPLE)
    for header in ("Metric", "B − A [95% CI]", "Relative", "p-value", "Test"):
        numeric = header not in ("Metric", "Test")
        table.add_column(header, justify="right" if numeric else "left", no_wrap=numeric)
    for lift, label, template, scale, test in (
        (result.profit, "Profit ($/customer)", "{:+,.3f}", 1.0, "Welch t"),
        (result.conversion, "Conversion (pp)", "{:+.2f}", 100.0, "2-prop. z"),
    ):
        low, high = (template.format(x * scale) for x in (lift.ci_low, lift.ci_high))
        table.add_row(
            label,
            f"{template.format(lift.difference * scale)} [{low}, {high}]",
            f"{lift.relative:+.1%}",
            f"{lift.p_value:.3g}",
            test,
        )
    return table


def ab_command(
    policy_a: Annotated[
        str | None,
        typer.Argument(
            metavar="POLICY_A",
            help="Run directory, or built-in: random, best_fixed, rule, oracle, cooldown, "
            "fixed:ACTION, or a bandit name (learns online).",
        ),
    ] = None,
    policy_b: Annotated[
        str | None, typer.Argument(metavar="POLICY_B", help="The other arm, likewise.")
    ] = None,
    customers: Annotated[
        int, typer.Option(help="Customers in the test, split at random into two halves.")
    ] = 10_000,
    cycles: Annotated[int, typer.Option(help="Cycles (weeks) each customer is followed.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    profile: Annotated[str, typer.Option(help="Population name or YAML path.")] = "default",
    reward_mode: Annotated[
        str, typer.Option(help=f"Reward the policies act on: {', '.join(REWARD_MODES)}.")
    ] = "profit",
    catalog: Annotated[str, typer.Option(help="Action catalog name or YAML path.")] = "strategy",
    plan: Annotated[
        bool, typer.Option("--plan", help="Plan a test: customers per arm for the power.")
    ] = False,
    baseline_rate: Annotated[
        float | None, typer.Option(help="With --plan: the control arm's conversion rate.")
    ] = None,
    lift: Annotated[
        float | None,
        typer.Option(help="With --plan: relative lift to detect (0.1 = rate × 1.1)."),
    ] = None,
    alpha: Annotated[float, typer.Option(help="With --plan: two-sided significance level.")] = 0.05,
    power: Annotated[float, typer.Option(help="With --plan: power to detect the lift.")] = 0.8,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON only (machine-readable).")
    ] = False,
) -> None:
    """Randomise simulated customers between POLICY_A and POLICY_B and test the difference.

    Reports each arm's KPIs with 95% CIs, and the lift of B over A in profit per customer
    (Welch t-test) and in conversion, the share of customers who bought during the test
    (two-proportion z-test), with 95% CIs and p-values. With `--plan --baseline-rate R
    --lift L` it reports instead the customers per arm a conversion test needs.
    """
    if plan:
        if policy_a is not None or policy_b is not None:
            fail("--plan takes no policies; pass --baseline-rate and --lift")
        _plan(baseline_rate, lift, alpha, power)
        return
    if policy_a is None or policy_b is None:
        fail("give two policies (POLICY_A POLICY_B), or --plan to plan a test")
    check_count("--customers", customers, low=4, high=MAX_CUSTOMERS)
    check_count("--cycles", cycles)
    if seed < 0:
        fail(f"--seed must be 0 or more, got {seed}")
    if reward_mode not in REWARD_MODES:
        fail(f"unknown reward mode {reward_mode!r}; choose one of {', '.join(REWARD_MODES)}")
    from rec_env.agents.evaluation.abtest import run_ab_test

    settings = {"profile": profile, "reward_mode": reward_mode, "catalog": catalog}
    with reporting_bad_input():
        result = run_ab_test(policy_a, policy_b, customers, cycles, seed, settings)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    console = Console()
    title = f"A/B test on {profile}: {customers:,} customers, {cycles} cycles, seed {seed}"
    console.print(_arms_table(result, title))
    console.print(_lift_table(result))
