"""``recenv compare``: every agent against the others and the oracle, in one table and plots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from rec_env import ENV_ID
from rec_env.agents.registry import ALGORITHMS, BASELINES_BY_WORLD
from rec_env.cli._env_option import (
    EnvOption,
    ProductsOption,
    ProfileOption,
    RulesOption,
    TwinsOption,
    check_run_world,
    env_settings,
    rules_fields,
    twin_fields,
)
from rec_env.cli._errors import MAX_CUSTOMERS, check_count, fail, reporting_bad_input
from rec_env.cli._outputs import (
    FORCE_INTO_HELP,
    check_output_directory,
    check_output_file,
    staged_directory,
)
from rec_env.cli.reporting import evaluation_table
from rec_env.dynamics import REWARD_MODES

if TYPE_CHECKING:
    from rec_env.settings import EnvSettings

__all__ = ["DEFAULT_ENTRIES", "compare_command"]

DEFAULT_ENTRIES = ("no_action", "random", "best_fixed", "rule", "oracle", "cooldown")
"""The strategy world's default entries; the item worlds default to all their baselines."""


def _check_runs(entries: list[str], env: str) -> None:
    """Refuse run directories trained in another world than ``--env`` (one error line)."""
    from rec_env.agents.runs import read_run_info

    for entry in entries:
        if Path(entry).is_dir():
            with reporting_bad_input():
                world = read_run_info(entry).settings.world
            check_run_world(entry, world, env)


def compare_command(
    entries: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Run directories and/or algorithm names ({', '.join(ALGORITHMS)}; the item "
            "envs have their own baselines); default: the env's baselines "
            f"({' '.join(DEFAULT_ENTRIES)} for {ENV_ID})."
        ),
    ] = None,
    env: EnvOption = ENV_ID,
    products: ProductsOption = None,
    customers: Annotated[int, typer.Option(help="Customers in the shared cohort.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Cohort seed (same customers for every agent).")] = 0,
    profile: ProfileOption = None,
    twins: TwinsOption = None,
    rules: RulesOption = None,
    reward_mode: Annotated[str, typer.Option(help="profit, conversion or rule.")] = "profit",
    out: Annotated[Path, typer.Option(help="Directory for CSV, JSON and PNG outputs.")] = Path(
        "comparison"
    ),
    force: Annotated[bool, typer.Option("--force", help=FORCE_INTO_HELP)] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            help="Also write a self-contained HTML report here (as recenv report): headline, "
            "table, figures, the runs' action mix over the lifetime and explanations."
        ),
    ] = None,
) -> None:
    """Evaluate agents on the same customers and write comparison.csv/.json and PNG plots.

    Run directories are evaluated frozen; bandit names learn online from scratch on the cohort
    (their learning curve); a bandit run directory is shown both frozen and learning on (online).
    Every run directory must have been trained on --env.
    """
    from rec_env.agents.evaluation.compare import compare, write_outputs

    check_count("--customers", customers, high=MAX_CUSTOMERS)
    if reward_mode not in REWARD_MODES:
        fail(f"--reward-mode must be one of {', '.join(REWARD_MODES)}, got {reward_mode!r}")
    settings = env_settings(
        env, products, reward_mode=reward_mode, **twin_fields(twins, profile), **rules_fields(rules)
    )
    chosen = list(entries or BASELINES_BY_WORLD[settings.world])
    _check_runs(chosen, env)
    check_output_directory(out, force=force)
    if html is not None:
        from rec_env.cli.report import HTML_SUFFIXES

        check_output_file(html, force=force, suffixes=HTML_SUFFIXES, option="--html")
    console = Console(stderr=True)
    with reporting_bad_input():
        results, contenders = compare(
            chosen,
            settings,
            customers,
            seed,
            progress=lambda label: console.print(f"evaluating {label} …"),
        )
    with staged_directory(out) as staged:
        paths = [
            out / path.relative_to(staged) for path in write_outputs(results, contenders, staged)
        ]
    Console().print(
        evaluation_table(results, f"{settings.profile}: {customers:,} customers, seed {seed}")
    )
    for path in paths:
        typer.echo(f"wrote {path}")
    if html is not None:
        _write_report(html, results, contenders, chosen, settings, customers, seed, console)


def _write_report(
    html: Path,
    results: list[Any],
    contenders: list[Any],
    entries: list[str],
    settings: EnvSettings,
    customers: int,
    seed: int,
    console: Console,
) -> None:
    """``--html``: the report of this comparison, with the run directories' provenance."""
    from rec_env.agents.report import ReportContent, add_comparison
    from rec_env.agents.runs import read_run_info
    from rec_env.cli.report import write_html_report

    runs = [entry for entry in entries if Path(entry).is_dir()]
    content = ReportContent(cohort={"customers": customers, "seed": seed})
    for run in runs:
        content.add_run_record(run, read_run_info(run))
    add_comparison(
        content,
        results,
        contenders,
        settings,
        runs=runs,
        seed=seed,
        progress=lambda message: console.print(f"{message} …"),
    )
    size = write_html_report(content, html, command="recenv compare")
    typer.echo(f"wrote {html} ({size / 1024:,.0f} KB)")
