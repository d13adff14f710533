"""``recenv ab``: simulate an A/B test between two policies, plan one, or analyse a real one.

``recenv ab POLICY_A POLICY_B`` (short for ``recenv ab simulate POLICY_A POLICY_B``) and
``recenv ab --plan`` (short for ``recenv ab plan``) keep working: the group runs ``simulate``
when its first argument is not a command name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from rec_env.cli._errors import MAX_CUSTOMERS, check_count, fail, reporting_bad_input
from rec_env.dynamics import REWARD_MODES

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.agents.evaluation.ab_analysis import ABAnalysis
    from rec_env.agents.evaluation.ab_stats import Lift
    from rec_env.agents.evaluation.abtest import ABTestResult

__all__ = ["ab_app", "analyze_command", "plan_command", "simulate_command"]


class _SimulateByDefault(TyperGroup):
    """A group that runs ``simulate`` when the first argument is not one of its commands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Put ``simulate`` in front of arguments that do not start with a command name."""
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["simulate", *args]
        return super().parse_args(ctx, args)


ab_app = typer.Typer(
    cls=_SimulateByDefault,
    help=(
        "A/B tests: `simulate` two policies on simulated customers (the default: "
        "`recenv ab POLICY_A POLICY_B`), `plan` a test's sample size, or `analyze` the results "
        "of a real test from a CSV or Parquet file."
    ),
    no_args_is_help=True,
)

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
_LIFT_HEADERS = ("Metric", "Δ [95% CI]", "Relative", "p-value", "Test")
_METRIC = "{:+,.3f}"  # a difference of means
_POINTS = "{:+.2f}"  # a difference of rates, in percentage points
_TESTS = {"Welch t-test": "Welch t", "two-proportion z-test": "2-prop. z"}

Alpha = Annotated[float, typer.Option(help="Two-sided significance level.")]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON only (machine-readable).")
]


def _plan(baseline_rate: float | None, lift: float | None, alpha: float, power: float) -> None:
    """Print the customers per arm that a conversion test needs."""
    from rec_env.agents.evaluation.ab_stats import sample_size_two_proportions

    if baseline_rate is None or lift is None:
        fail("a plan needs --baseline-rate R and --lift L (e.g. --baseline-rate 0.05 --lift 0.1)")
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


def _lift_table(title: str, first: str) -> Table:
    """An empty table of lifts; ``first`` heads the first column (``Metric`` or ``Arm``)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE)
    for header in (first, *_LIFT_HEADERS) if first != "Metric" else _LIFT_HEADERS:
        numeric = header not in ("Arm", "Metric", "Test")
        table.add_column(header, justify="right" if numeric else "left", no_wrap=numeric)
    return table


def _lift_cells(lift: Lift, template: str, scale: float) -> list[str]:
    """Difference with CI, relative lift, p-value and test of one lift."""
    low, high = (template.format(x * scale) for x in (lift.ci_low, lift.ci_high))
    return [
        f"{template.format(lift.difference * scale)} [{low}, {high}]",
        f"{lift.relative:+.1%}",
        f"{lift.p_value:.3g}",
        _TESTS.get(lift.test, lift.test),
    ]


# ---------------------------------------------------------------------- simulate
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


def _simulated_lift_table(result: ABTestResult) -> Table:
    """The lift of B over A in profit and conversion: CI, relative lift, p-value, test."""
    table = _lift_table("Lift of B over A", "Metric")
    table.add_row("Profit ($/customer)", *_lift_cells(result.profit, _METRIC, 1.0))
    table.add_row("Conversion (pp)", *_lift_cells(result.conversion, _POINTS, 100.0))
    return table


@ab_app.command("simulate")
def simulate_command(
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
        bool, typer.Option("--plan", hidden=True, help="Same as `recenv ab plan`.")
    ] = False,
    baseline_rate: Annotated[float | None, typer.Option(hidden=True)] = None,
    lift: Annotated[float | None, typer.Option(hidden=True)] = None,
    alpha: Annotated[float, typer.Option(hidden=True)] = 0.05,
    power: Annotated[float, typer.Option(hidden=True)] = 0.8,
    as_json: AsJson = False,
) -> None:
    """Randomise simulated customers between POLICY_A and POLICY_B and test the difference.

    Reports each arm's KPIs with 95% CIs, and the lift of B over A in profit per customer
    (Welch t-test) and in conversion, the share of customers who bought during the test
    (two-proportion z-test), with 95% CIs and p-values. `recenv ab POLICY_A POLICY_B` is short
    for this command.
    """
    if plan:  # `recenv ab --plan ...`, the form from before `recenv ab plan`
        if policy_a is not None or policy_b is not None:
            fail("--plan takes no policies; pass --baseline-rate and --lift")
        _plan(baseline_rate, lift, alpha, power)
        return
    if policy_a is None or policy_b is None:
        fail("give two policies (POLICY_A POLICY_B), or use `recenv ab plan` to plan a test")
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
    console.print(_simulated_lift_table(result))


# ---------------------------------------------------------------------- plan
@ab_app.command("plan")
def plan_command(
    baseline_rate: Annotated[
        float | None, typer.Option(help="The control arm's conversion rate, e.g. 0.05.")
    ] = None,
    lift: Annotated[
        float | None, typer.Option(help="Relative lift to detect (0.1 = rate × 1.1).")
    ] = None,
    alpha: Alpha = 0.05,
    power: Annotated[float, typer.Option(help="Power to detect the lift.")] = 0.8,
) -> None:
    """Customers per arm that a conversion test needs (Fleiss, Levin and Paik, eq. 4.14)."""
    _plan(baseline_rate, lift, alpha, power)


# ---------------------------------------------------------------------- analyze
def _parse_split(text: str | None) -> list[float] | dict[str, float] | None:
    """``"0.5,0.5"`` (shares in sorted order of arm names) or ``"holdout=0.05,email=0.95"``."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            pairs = (p.rsplit("=", 1) for p in parts)
            return {name.strip(): float(share) for name, share in pairs}
        return [float(p) for p in parts]
    except ValueError:
        fail(
            f"--expected-split {text!r}: give shares such as 0.5,0.5 (in sorted order of arm "
            "names) or ARM=SHARE pairs such as holdout=0.05,email=0.95"
        )


def _analysis_arms_table(analysis: ABAnalysis) -> Table:
    """Each arm's size, share against the planned share, mean metric and conversion."""
    total = sum(arm.customers for arm in analysis.arms)
    title = f"A/B test read from {analysis.source}: {total:,} customers, {len(analysis.arms)} arms"
    caption = "± 95% CI; * the control"
    table = Table(title=title, title_justify="left", caption=caption, box=box.SIMPLE)
    for header in ("Arm", "Customers", "Share (planned)", analysis.metric_name, "Conversion"):
        table.add_column(escape(header), justify="left" if header == "Arm" else "right")
    for arm in analysis.arms:
        role = " *" if arm.name == analysis.control else ""
        table.add_row(
            escape(arm.name) + role,
            f"{arm.customers:,}",
            f"{arm.share:.2%} ({arm.expected_share:.2%})",
            f"{arm.metric.mean:,.3f} ± {arm.metric.ci:.2g}",
            f"{arm.conversion.mean:.2%} ± {100 * arm.conversion.ci:.2g}",
        )
    return table


def _print_sample_ratio(console: Console, analysis: ABAnalysis) -> None:
    """One line on the sample ratio; a loud warning (on stderr too) when it is off."""
    check = analysis.sample_ratio
    from rec_env.agents.evaluation.ab_stats import SRM_ALPHA

    figures = f"χ² = {check.chi2:.2f}, {check.dof} dof, p = {check.p_value:.3g}"
    if check.mismatch:
        message = (
            f"SAMPLE RATIO MISMATCH ({figures} < {SRM_ALPHA:g}): the arms are not the sizes the "
            "planned split gives, so the assignment or the logging is broken and the lifts "
            "below cannot be trusted. Find the cause before reading them."
        )
        console.print(f"[bold red]{escape(message)}[/]")
    else:
        console.print(f"Sample ratio: {figures} against the planned split: no mismatch.")


def _analysis_lift_tables(analysis: ABAnalysis) -> list[Table]:
    """One table per treatment arm: its lift over the control in the metric and conversion."""
    metric, conversion = escape(analysis.metric_name), escape(analysis.conversion_name)
    tables = []
    for comparison in analysis.comparisons:
        title = f"Lift of {escape(comparison.arm)} over {escape(analysis.control)}"
        table = _lift_table(title, "Metric")
        table.add_row(metric, *_lift_cells(comparison.metric, _METRIC, 1.0))
        if comparison.cuped is not None:
            table.add_row(f"{metric} (CUPED)", *_lift_cells(comparison.cuped, _METRIC, 1.0))
            table.caption = (
                f"CUPED removed {comparison.cuped_variance_reduction:.2%} of the variance of Δ"
            )
        table.add_row(f"{conversion} (pp)", *_lift_cells(comparison.conversion, _POINTS, 100))
        tables.append(table)
    return tables


def _power_table(analysis: ABAnalysis) -> Table:
    """Power for the observed effect and the minimum detectable effect of each test."""
    from rec_env.agents.evaluation.ab_analysis import DESIGN_POWER

    title = f"Power at α = {analysis.alpha:g}"
    table = Table(title=title, title_justify="left", box=box.SIMPLE)
    for header in ("Arm", "Metric", "Observed Δ", "Power", f"MDE ({DESIGN_POWER:.0%} power)"):
        table.add_column(header, justify="left" if header in ("Arm", "Metric") else "right")
    metric, conversion = escape(analysis.metric_name), escape(analysis.conversion_name)
    for c in analysis.comparisons:
        rows: list[tuple[str, float, float, float, str, float]] = [
            (metric, c.metric.difference, c.metric_power, c.metric_mde, _METRIC, 1.0)
        ]
        if c.cuped is not None and c.cuped_power is not None and c.cuped_mde is not None:
            rows.append((f"{metric} (CUPED)", c.cuped.difference, c.cuped_power, c.cuped_mde,
                         _METRIC, 1.0))  # fmt: skip
        rows.append(
            (f"{conversion} (pp)", c.conversion.difference, c.conversion_power,
             c.conversion_mde, _POINTS, 100.0)
        )  # fmt: skip
        for i, (label, observed, power, mde, template, scale) in enumerate(rows):
            shown = template.format(mde * scale).lstrip("+") if mde == mde else "—"
            name = escape(c.arm) if i == 0 else ""
            chance = f"{power:.1%}" if power < 0.999 else ">99.9%"
            table.add_row(name, label, template.format(observed * scale), chance, shown)
    return table


def _print_cuped(console: Console, analysis: ABAnalysis) -> None:
    """θ and the pooled variance reduction of CUPED, or how to ask for it."""
    if not analysis.covariates:
        console.print("No CUPED: pass pre-period covariates with --covariate COLUMN.")
        return
    thetas = ", ".join(
        f"{escape(name)} {theta:+.4g}"
        for name, theta in zip(analysis.covariates, analysis.theta, strict=True)
    )
    console.print(
        f"CUPED on {escape(', '.join(analysis.covariates))} (θ pooled over all arms: {thetas}) "
        f"removes {analysis.variance_reduction:.2%} of the variance of "
        f"{escape(analysis.metric_name)}."
    )


@ab_app.command("analyze")
def analyze_command(
    results: Annotated[
        Path,
        typer.Argument(
            metavar="RESULTS", help="CSV (.csv, .csv.gz) or Parquet file, one row per customer."
        ),
    ],
    arm: Annotated[str | None, typer.Option(help="Column holding each customer's arm.")] = None,
    metric: Annotated[
        str | None, typer.Option(help="Numeric column to compare, e.g. profit or spend.")
    ] = None,
    conversion: Annotated[
        str | None,
        typer.Option(help="0/1 conversion column; without it conversion is METRIC > 0."),
    ] = None,
    covariate: Annotated[
        list[str] | None,
        typer.Option(help="Pre-period column for CUPED (repeat for several)."),
    ] = None,
    control: Annotated[
        str | None,
        typer.Option(
            help="The control arm; default: the arm named like control or holdout, else the "
            "first in sorted order."
        ),
    ] = None,
    expected_split: Annotated[
        str | None,
        typer.Option(
            help="Planned shares, in sorted order of arm names (0.5,0.5) or as ARM=SHARE "
            "pairs (holdout=0.05,email=0.95); default: equal."
        ),
    ] = None,
    alpha: Annotated[
        float, typer.Option(help="Significance level of the power and MDE figures.")
    ] = 0.05,
    as_json: AsJson = False,
) -> None:
    """Analyse a real A/B test: arms, sample ratio, lifts, CUPED and power.

    Reports each arm's mean METRIC and conversion with 95% CIs; the sample-ratio-mismatch
    check (chi-square against --expected-split, flagged at p < 0.001); the lift of each arm
    over the control with Welch's t-test on METRIC and the two-proportion z-test on
    conversion; with --covariate, the CUPED-adjusted lift and the variance it removed; and the
    power each test had for the effect observed, with the minimum detectable effect at 80%
    power. The statistics are those of `recenv ab simulate`.
    """
    if arm is None or metric is None:
        fail("give the arm and metric columns: --arm COLUMN --metric COLUMN")
    if not 0.0 < alpha < 1.0:
        fail(f"--alpha must be strictly between 0 and 1, got {alpha:g}")
    split = _parse_split(expected_split)
    from rec_env.agents.evaluation.ab_analysis import analyze_test, read_test

    with reporting_bad_input():
        table = read_test(results, arm, metric, conversion, covariate or ())
        analysis = analyze_test(table, control, split, alpha)
    if as_json:
        if analysis.sample_ratio.mismatch:
            typer.echo(
                f"warning: sample ratio mismatch (p = {analysis.sample_ratio.p_value:.3g}); "
                "the lifts cannot be trusted",
                err=True,
            )
        typer.echo(json.dumps(analysis.to_dict(), indent=2))
        return
    console = Console()
    console.print(_analysis_arms_table(analysis))
    _print_sample_ratio(console, analysis)
    for table in _analysis_lift_tables(analysis):
        console.print(table)
    _print_cuped(console, analysis)
    console.print(_power_table(analysis))
