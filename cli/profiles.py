"""``recenv profiles``: list, show and validate customer populations."""

from __future__ import annotations

import math
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rec_env.cli._errors import reporting_bad_input
from rec_env.distributions import (
    Bernoulli,
    Beta,
    Conditional,
    Constant,
    Distribution,
    Gamma,
    LogNormal,
    Normal,
    ParameterSpec,
    Uniform,
)
from rec_env.errors import ConfigError
from rec_env.population import Population, Segment, list_populations, load_population

__all__ = ["profiles_app"]

profiles_app = typer.Typer(
    help="Inspect and validate customer populations (segments and their distributions).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

PopulationArgument = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="A shipped population name (see `recenv profiles list`) or a YAML path.",
    ),
]


def _mean(dist: Distribution) -> float:
    """Mean of a distribution before any clipping at ``low``/``high``."""
    match dist:
        case Constant():
            return dist.value
        case Uniform():
            return (dist.low + dist.high) / 2
        case LogNormal():
            return dist.median * math.exp(dist.sigma**2 / 2)
        case Normal() | Gamma() | Beta():
            return dist.mean
        case Bernoulli():
            return dist.p
    raise TypeError(f"unknown distribution {type(dist).__name__}")  # pragma: no cover


def _describe_distribution(dist: Distribution) -> str:
    """A compact spec such as ``gamma(mean=90, shape=1.5, high=730)``."""
    fields = dist.model_dump(exclude={"dist"}, exclude_defaults=True)
    return f"{dist.dist}({', '.join(f'{k}={v:g}' for k, v in fields.items())})"


def _describe_spec(spec: ParameterSpec) -> list[tuple[str, str]]:
    """``(distribution, mean)`` rows of one parameter: one row, or one per flag value."""
    if isinstance(spec, Conditional):
        return [
            (f"if {spec.given}={flag}: {_describe_distribution(dist)}", f"{_mean(dist):.4g}")
            for flag, dist in ((1, spec.if_1), (0, spec.if_0))
        ]
    return [(_describe_distribution(spec), f"{_mean(spec):.4g}")]


def _segment_table(segment: Segment, share: float) -> Table:
    """One segment's parameters: observed features, then hidden parameters."""
    table = Table(
        title=f"{segment.name}: weight {segment.weight:g} ({share:.0%} of customers)",
        caption=escape(segment.description) or None,
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("Parameter")
    table.add_column("Distribution")
    table.add_column("Mean", justify="right")
    for kind, specs in (("observed", segment.observed), ("hidden", segment.hidden)):
        table.add_section()
        table.add_row(f"[italic]{kind}[/italic]", "", "")
        for name, spec in specs.items():
            for row, (distribution, mean) in enumerate(_describe_spec(spec)):
                table.add_row(name if row == 0 else "", distribution, mean)
    return table


@profiles_app.command("list")
def list_command() -> None:
    """List the shipped populations with their segments and weights."""
    table = Table(title="Shipped populations")
    table.add_column("Name", style="bold")
    table.add_column("Description")
    table.add_column("Segments (weight)")
    for name in list_populations():
        try:
            population = load_population(name)
        except ConfigError as exc:
            table.add_row(name, f"[red]invalid: {escape(str(exc))}[/red]", "")
            continue
        segments = "\n".join(f"{s.name} ({s.weight:g})" for s in population.segments)
        table.add_row(escape(name), escape(population.description), segments)
    Console().print(table)


@profiles_app.command("show")
def show_command(population: PopulationArgument = "default") -> None:
    """Show a population: its constants, segments and every parameter distribution.

    Means are those of the distributions before clipping; a conditional parameter shows its
    mean when the flag is 1 and when it is 0.
    """
    with reporting_bad_input():
        loaded = load_population(population)
    console = Console()
    console.print(f"[bold]{escape(loaded.name)}[/bold]: {escape(loaded.description)}")
    console.print(_constants_table(loaded))
    total = sum(s.weight for s in loaded.segments)
    for segment in loaded.segments:
        console.print(_segment_table(segment, segment.weight / total))


def _constants_table(population: Population) -> Table:
    """Population-wide constants and their meaning."""
    table = Table(title="Population constants", title_justify="left")
    table.add_column("Constant")
    table.add_column("Value", justify="right")
    table.add_column("Meaning")
    for name in ("contact_tolerance", "order_value_sigma", "history_strength"):
        field = Population.model_fields[name]
        table.add_row(name, f"{getattr(population, name):g}", field.description or "")
    return table


@profiles_app.command("validate")
def validate_command(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Population YAML file to check.")],
) -> None:
    """Check a population file: print `OK`, or the problem (file, field, reason) and exit 2."""
    with reporting_bad_input():
        population = load_population(file)
    typer.echo(f"OK: {file} ({len(population.segments)} segments)")
