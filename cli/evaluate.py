"""``recenv eval RUN_DIR``: evaluate a trained run on a fresh cohort."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rec_env.agents.evaluation.evaluate import evaluate
from rec_env.cli._env_option import RulesOption, TwinsOption, rules_fields, twin_fields
from rec_env.cli._errors import MAX_CUSTOMERS, check_count, reporting_bad_input
from rec_env.cli.reporting import evaluation_table

__all__ = ["eval_command"]


def eval_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by recenv train.")],
    customers: Annotated[int, typer.Option(help="Customers in the cohort.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Cohort seed.")] = 0,
    profile: Annotated[str | None, typer.Option(help="Population [default: the run's].")] = None,
    twins: TwinsOption = None,
    rules: RulesOption = None,
    learn: Annotated[
        bool, typer.Option(help="Let online learners (bandits) keep learning during the run.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the evaluation as JSON.")] = False,
) -> None:
    """Evaluate a trained policy over full customer lifetimes, with 95% confidence intervals.

    Every file the policy is loaded from is checked against its SHA-256 in run.json first. A
    run trained on twins (--twins) is evaluated on them; --twins evaluates on other twins.
    --rules evaluates under business rules (a run trained under rules is evaluated under them).
    """
    from rec_env.agents.runs import load_run

    check_count("--customers", customers, high=MAX_CUSTOMERS)
    with reporting_bad_input():
        policy, info = load_run(run_dir)
        settings = info.settings
        if twins is not None:
            settings = settings.replace(**twin_fields(twins, profile))
        elif profile is not None:
            settings = settings.replace(profile=profile)
        if rules is not None:
            settings = settings.replace(**rules_fields(rules))
        result = evaluate(policy, settings, customers, seed, learn=learn, name=info.algorithm)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    Console().print(
        evaluation_table([result], f"{run_dir} on {customers:,} customers, seed {seed}")
    )
