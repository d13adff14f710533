"""``recenv compare``: every agent against the others and the oracle, in one table and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rec_env.agents.registry import ALGORITHMS
from rec_env.cli._errors import MAX_CUSTOMERS, check_count, fail, reporting_bad_input
from rec_env.cli._outputs import FORCE_INTO_HELP, check_output_directory, staged_directory
from rec_env.cli.reporting import evaluation_table
from rec_env.dynamics import REWARD_MODES

__all__ = ["DEFAULT_ENTRIES", "compare_command"]

DEFAULT_ENTRIES = ("random", "best_fixed", "rule", "oracle", "cooldown")


def compare_command(
    entries: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Run directories and/or algorithm names ({', '.join(ALGORITHMS)}); "
            f"default: {' '.join(DEFAULT_ENTRIES)}."
        ),
    ] = None,
    customers: Annotated[int, typer.Option(help="Customers in the shared cohort.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Cohort seed (same customers for every agent).")] = 0,
    profile: Annotated[str, typer.Option(help="Population name or YAML path.")] = "default",
    reward_mode: Annotated[str, typer.Option(help="profit, conversion or rule.")] = "profit",
    out: Annotated[Path, typer.Option(help="Directory for CSV, JSON and PNG outputs.")] = Path(
        "comparison"
    ),
    force: Annotated[bool, typer.Option("--force", help=FORCE_INTO_HELP)] = False,
) -> None:
    """Evaluate agents on the same customers and write comparison.csv/.json and PNG plots.

    Run directories are evaluated frozen; bandit names learn online from scratch on the cohort
    (their learning curve); a bandit run directory is shown both frozen and learning on (online).
    """
    from rec_env.agents.evaluation.compare import compare, write_outputs

    check_count("--customers", customers, high=MAX_CUSTOMERS)
    if reward_mode not in REWARD_MODES:
        fail(f"--reward-mode must be one of {', '.join(REWARD_MODES)}, got {reward_mode!r}")
    check_output_directory(out, force=force)
    settings = {"profile": profile, "reward_mode": reward_mode}
    console = Console(stderr=True)
    with reporting_bad_input():
        results, contenders = compare(
            list(entries or DEFAULT_ENTRIES),
            settings,
            customers,
            seed,
            progress=lambda label: console.print(f"evaluating {label} …"),
        )
    with staged_directory(out) as staged:
        paths = [
            out / path.relative_to(staged) for path in write_outputs(results, contenders, staged)
        ]
    Console().print(evaluation_table(results, f"{profile}: {customers:,} customers, seed {seed}"))
    for path in paths:
        typer.echo(f"wrote {path}")
