"""The ``recenv`` command line: the root Typer app and its command groups."""

from __future__ import annotations

from typing import Annotated

import typer

import rec_env
from rec_env.cli._errors import ReportingGroup
from rec_env.cli.ab import ab_app
from rec_env.cli.bench import bench_app
from rec_env.cli.compare import compare_command
from rec_env.cli.evaluate import eval_command
from rec_env.cli.examples import examples_app
from rec_env.cli.explain import explain_command
from rec_env.cli.features import features_command, history_command
from rec_env.cli.forecast import forecast_command, twins_command
from rec_env.cli.log import log_app
from rec_env.cli.offline import offline_app
from rec_env.cli.ope import ope_command
from rec_env.cli.profiles import profiles_app
from rec_env.cli.report import report_command
from rec_env.cli.rewards import rewards_app
from rec_env.cli.score import score_command
from rec_env.cli.serve import serve_command
from rec_env.cli.simulate import simulate
from rec_env.cli.train import train_command

__all__ = ["app"]

app = typer.Typer(
    name="recenv",
    cls=ReportingGroup,
    help=(
        "Simulate customers who receive marketing actions (an offer on a channel) and measure "
        "what each decision policy earns. Populations of customers are YAML data: list, show "
        "and validate them with `recenv profiles`, run a baseline policy over a cohort with "
        "`recenv simulate`, train agents with `recenv train`, and compare them with "
        "`recenv eval` and `recenv compare`."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(profiles_app, name="profiles")
app.command("simulate")(simulate)
app.command("train")(train_command)
app.command("eval")(eval_command)
app.command("compare")(compare_command)
app.command("report")(report_command)
app.command("serve")(serve_command)
app.add_typer(log_app, name="log")
app.command("explain")(explain_command)
app.add_typer(ab_app, name="ab")
app.command("ope")(ope_command)
app.add_typer(bench_app, name="bench")
app.add_typer(offline_app, name="offline")
app.command("features")(features_command)
app.command("score")(score_command)
app.add_typer(rewards_app, name="rewards")
app.add_typer(examples_app, name="examples")
profiles_app.command("history")(history_command)
profiles_app.command("forecast")(forecast_command)
profiles_app.command("twins")(twins_command)


def _print_version(value: bool) -> None:
    """Print ``recenv <version>`` and stop, for ``--version``."""
    if value:
        typer.echo(f"recenv {rec_env.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Simulate customers under marketing policies and measure what each policy earns."""
