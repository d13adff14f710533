"""``recenv simulate``: run a baseline policy over a cohort of customers and report KPIs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, cast

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from rec_env.agents.base import Policy
from rec_env.agents.baselines import FixedActionPolicy
from rec_env.agents.registry import action_kwargs, make_baseline
from rec_env.cli._errors import MAX_CUSTOMERS, check_count, fail, reporting_bad_input
from rec_env.dynamics import REWARD_MODES, CustomerModel, RewardMode
from rec_env.env import build_model
from rec_env.rollout import CohortResult, run_cohort
from rec_env.settings import DEFAULT_HORIZON

__all__ = ["POLICY_KINDS", "PROGRESS_MIN_CUSTOMER_CYCLES", "build_policy", "simulate"]

POLICY_KINDS: tuple[str, ...] = ("random", "fixed:ACTION", "oracle", "rule", "cooldown")
"""Policies ``--policy`` accepts; ``fixed:ACTION`` takes an action name of the catalog."""

PROGRESS_MIN_CUSTOMER_CYCLES = 200_000
"""Runs of at least this many customer-cycles show a progress bar on stderr."""

_TOP_ACTIONS = 5


def _validate_policy_syntax(policy: str) -> None:
    """Reject an unknown policy kind before any file is loaded."""
    kind, _, argument = policy.partition(":")
    choices = ", ".join(POLICY_KINDS)
    if kind == "fixed":
        if not argument:
            fail(f"policy 'fixed' needs an action name, e.g. fixed:no_action (choose {choices})")
    elif kind not in ("random", "oracle", "rule", "cooldown") or argument:
        fail(f"unknown policy {policy!r}; choose one of {choices}")


def build_policy(policy: str, model: CustomerModel, seed: int) -> Policy:
    """Build a baseline policy from its ``--policy`` spelling.

    Args:
        policy: One of :data:`POLICY_KINDS`, e.g. ``"fixed:discount_15_email"``.
        model: The customer model, for the action catalog.
        seed: Seed of the random policy.

    Raises:
        KeyError: If ``fixed:ACTION`` names an action the catalog does not have.
        ValueError: If the policy kind is unknown.
    """
    actions = model.actions
    kind, _, argument = policy.partition(":")
    if kind == "fixed":
        return FixedActionPolicy(
            actions.n_actions,
            action=actions.index(argument),
            fallback=actions.no_action,
            **action_kwargs(actions),
        )
    if kind in ("random", "oracle", "rule", "cooldown"):
        return make_baseline(kind, model, seed)
    raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICY_KINDS)}")


@contextmanager
def _progress_bar(enabled: bool, horizon: int) -> Iterator[Callable[[int], None] | None]:
    """A transient progress bar on stderr over the horizon, or ``None`` if not enabled."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("cycles"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("simulating", total=horizon)
        yield lambda cycles_done: progress.update(task, completed=cycles_done)


def _action_shares(result: CohortResult) -> dict[str, float]:
    """Share of customer-cycles given to each action, largest first."""
    total = max(int(result.action_counts.sum()), 1)
    order = np.argsort(-result.action_counts, kind="stable")
    return {result.action_names[i]: float(result.action_counts[i] / total) for i in order}


def _kpi_rows(kpis: dict[str, float], reward_mode: str) -> list[tuple[str, str]]:
    """Label and formatted value of every KPI shown in the table."""
    rows = [("Profit per customer", f"${kpis['profit_per_customer']:,.2f}")]
    if reward_mode != "profit":
        rows.append((f"Reward per customer ({reward_mode})", f"{kpis['reward_per_customer']:.4g}"))
    return [
        *rows,
        ("Revenue per customer", f"${kpis['revenue_per_customer']:,.2f}"),
        ("Conversion rate (per customer-cycle)", f"{kpis['conversion_rate']:.2%}"),
        ("Purchases per customer", f"{kpis['purchases_per_customer']:.3f}"),
        ("Contacts per customer", f"{kpis['contacts_per_customer']:.2f}"),
        ("Discount cost per customer", f"${kpis['discount_cost_per_customer']:,.2f}"),
        ("Unsubscribe rate", f"{kpis['unsubscribe_rate']:.1%}"),
        ("Churn rate", f"{kpis['churn_rate']:.1%}"),
    ]


def _print_report(result: CohortResult, title: str, reward_mode: str) -> None:
    """The KPI table and the most used actions, on stdout."""
    kpis = Table(title="KPIs", title_justify="left")
    kpis.add_column("KPI")
    kpis.add_column("Value", justify="right")
    for label, value in _kpi_rows(result.kpis(), reward_mode):
        kpis.add_row(label, value)
    actions = Table(title=f"Top {_TOP_ACTIONS} actions", title_justify="left")
    actions.add_column("Action")
    actions.add_column("Share", justify="right")
    for name, share in list(_action_shares(result).items())[:_TOP_ACTIONS]:
        actions.add_row(escape(name), f"{share:.1%}")
    console = Console()
    console.print(title, style="bold", markup=False)
    console.print(kpis)
    console.print(actions)


def simulate(
    policy: Annotated[
        str,
        typer.Option(help="random, fixed:ACTION (e.g. fixed:no_action), oracle, rule or cooldown."),
    ] = "random",
    customers: Annotated[
        int, typer.Option(help=f"Number of customers in the cohort (at most {MAX_CUSTOMERS:,}).")
    ] = 10_000,
    profile: Annotated[str, typer.Option(help="Population name or YAML path.")] = "default",
    seed: Annotated[
        int, typer.Option(help="Seed of every random draw (customers and policy).")
    ] = 0,
    horizon: Annotated[int, typer.Option(help="Cycles (weeks) per customer.")] = DEFAULT_HORIZON,
    reward_mode: Annotated[
        str, typer.Option(help=f"Reward the policy is scored on: {', '.join(REWARD_MODES)}.")
    ] = "profit",
    catalog: Annotated[str, typer.Option(help="Action catalog name or YAML path.")] = "strategy",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the KPIs as JSON only (machine-readable).")
    ] = False,
) -> None:
    """Simulate a cohort of customers under a baseline policy and report the KPIs.

    Every customer is followed until they churn or the horizon ends. The same seed gives the
    same customers and the same random numbers, so policies run with one seed are compared
    on equal terms.
    """
    check_count("--customers", customers, high=MAX_CUSTOMERS)
    check_count("--horizon", horizon)
    if seed < 0:
        fail(f"--seed must be 0 or more, got {seed}")
    if reward_mode not in REWARD_MODES:
        fail(f"unknown reward mode {reward_mode!r}; choose one of {', '.join(REWARD_MODES)}")
    _validate_policy_syntax(policy)
    with reporting_bad_input():
        model = build_model(profile, cast(RewardMode, reward_mode), catalog)
        decision_rule = build_policy(policy, model, seed)
    long_run = customers * horizon >= PROGRESS_MIN_CUSTOMER_CYCLES
    with _progress_bar(long_run, horizon) as progress:
        result = run_cohort(model, decision_rule, customers, horizon, seed, progress=progress)
    if as_json:
        typer.echo(json.dumps({**result.kpis(), "action_shares": _action_shares(result)}, indent=2))
        return
    title = (
        f"{policy} on {profile}: {customers:,} customers, {horizon} cycles, seed {seed}, "
        f"{reward_mode} reward"
    )
    _print_report(result, title, reward_mode)
