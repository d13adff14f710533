"""``recenv profiles``: list, show, validate and fit customer populations."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rec_env.cli._errors import fail, reporting_bad_input
from rec_env.cli._outputs import FORCE_HELP, check_output_file, staged_file
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

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.fitting import PopulationFit

__all__ = ["profiles_app"]

profiles_app = typer.Typer(
    help="Inspect, validate and fit customer populations (segments and their distributions).",
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


_SHIPPED_LOGS = ("cdnow",)
"""Purchase logs shipped with the package, usable by name as ``recenv profiles fit FILE``."""


def _parse_segments(segments: str) -> int | Literal["auto"]:
    """``"auto"`` or a positive integer, else a one-line error."""
    if segments.strip().lower() == "auto":
        return "auto"
    try:
        k = int(segments)
    except ValueError:
        fail(f"--segments must be 'auto' or a positive integer, got {segments!r}")
    if k < 1:
        fail(f"--segments must be 'auto' or a positive integer, got {segments!r}")
    return k


def _parse_end_date(end_date: str | None) -> int | None:
    """An ISO date as days since 1970-01-01, or ``None``."""
    if end_date is None:
        return None
    try:
        return (dt.date.fromisoformat(end_date) - dt.date(1970, 1, 1)).days
    except ValueError:
        fail(f"--end-date must be a date like 1998-06-30, got {end_date!r}")


def _fit_table(fit: PopulationFit) -> Table:
    """One row per fitted segment: its customers' RFM and its fitted means."""
    unit = "weeks" if fit.cycle_days == 7.0 else "cycles"
    table = Table(
        title=f"{fit.population.name}: {len(fit.segments)} segments",
        caption=f"F: repeat purchases; R: {unit} since the last one; $/buy: mean purchase; "
        "buys/yr, churn/yr: fitted means",
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE,
        pad_edge=False,
    )
    table.add_column("segment", no_wrap=True)
    for header in ("share", "F", "R", "$/buy", "buys/yr", "churn/yr"):
        table.add_column(header, justify="right", no_wrap=True)
    for s in fit.segments:
        table.add_row(
            s.name,
            f"{s.share:.1%}",
            f"{s.mean_frequency:.2f}",
            f"{s.mean_recency:.1f}",
            f"{s.mean_value:.2f}",
            f"{s.purchase_rate[0]:.3g}",
            f"{s.churn_rate[0]:.3g}",
        )
    return table


@profiles_app.command("fit")
def fit_command(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="Purchase log (CSV, or gzip of it), or `cdnow` for the shipped CDNOW log.",
        ),
    ],
    out: Annotated[Path, typer.Option(help="Population YAML file to write (.yaml or .yml).")],
    preset: Annotated[
        str | None,
        typer.Option(help="Log format: `csv` (header customer_id,date,amount) or `cdnow`."),
    ] = None,
    customer_column: Annotated[
        str | None, typer.Option(help="Column with the customer id (overrides the preset).")
    ] = None,
    date_column: Annotated[
        str | None, typer.Option(help="Column with the transaction date (overrides the preset).")
    ] = None,
    amount_column: Annotated[
        str | None, typer.Option(help="Column with the amount paid (overrides the preset).")
    ] = None,
    date_format: Annotated[
        str | None,
        typer.Option(help="strftime format of the dates, e.g. %Y%m%d (default: ISO 8601)."),
    ] = None,
    separator: Annotated[
        str | None, typer.Option(help="Field separator, or `whitespace` (overrides the preset).")
    ] = None,
    segments: Annotated[
        str, typer.Option(help="Number of segments, or `auto` for the smallest BIC over 2-8.")
    ] = "4",
    seed: Annotated[int, typer.Option(help="Seed of k-means, calibration and check.")] = 0,
    cycle_days: Annotated[float, typer.Option(help="Cycle length in days (the env's).")] = 7.0,
    end_date: Annotated[
        str | None,
        typer.Option(help="Last day observed, e.g. 1998-06-30 (default: the log's last date)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Population name (default: the file name).")
    ] = None,
    defaults: Annotated[
        Path | None,
        typer.Option(help="YAML of the parameters a log cannot identify (default: shipped)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
    campaigns: Annotated[
        str | None,
        typer.Option(
            help="Randomised e-mail campaign log, `hillstrom` or a CSV with its columns: the "
            "population's segments and responses come from it, churn from FILE."
        ),
    ] = None,
    campaign_arm: Annotated[
        str, typer.Option(help="The campaign arm whose e-mail the population's e-mail is.")
    ] = "any_email",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="With --campaigns: fit on half the campaign (seeded) and print the simulated "
            "against the held-out real uplift.",
        ),
    ] = False,
) -> None:
    """Fit a population to a purchase log and write it as a population YAML file.

    Computes recency, frequency and monetary value per customer, starts segments with k-means on
    scaled RFM, fits each segment's purchase rate, churn rate and order value by EM of a
    latent-class model, gives every parameter the log cannot identify its documented default,
    and checks the result: simulated vs observed R, F and M (Kolmogorov-Smirnov distance).

    With `--campaigns`, the population written is fitted to the campaign instead
    (`rec_env.fitting.responses`): segments by buyer, newbie and channel with their visit,
    purchase and e-mail response rates; churn from the purchase log; defaults for the rest, each
    source listed under `fitted_from`.
    """
    from rec_env.fitting import fit_population, load_fit_defaults
    from rec_env.fitting.purchase_log import LOG_PRESETS, read_purchase_log

    k = _parse_segments(segments)
    end_day = _parse_end_date(end_date)
    if seed < 0:
        fail(f"--seed must be 0 or more, got {seed}")
    if not 1.0 <= cycle_days <= 90.0:
        fail(f"--cycle-days must be between 1 and 90, got {cycle_days:g}")
    check_output_file(out, force=force, suffixes=(".yaml", ".yml"))
    shipped = file in _SHIPPED_LOGS and not Path(file).exists()
    preset_name = preset or ("cdnow" if shipped else "csv")
    if preset_name not in LOG_PRESETS:
        fail(f"unknown --preset {preset_name!r}; choose one of {', '.join(LOG_PRESETS)}")
    log_format = LOG_PRESETS[preset_name].with_overrides(
        customer_column=customer_column,
        date_column=date_column,
        amount_column=amount_column,
        date_format=date_format,
        separator=separator,
    )
    campaign = None
    if campaigns is not None:
        from rec_env.cli._campaigns import read_campaigns

        campaign = read_campaigns(campaigns, campaign_arm)
    elif check:
        fail("--check needs --campaigns")
    console = Console(stderr=True)
    with reporting_bad_input():
        fit_defaults = load_fit_defaults(defaults)
        if shipped:
            from rec_env.datasets.cdnow import cdnow_path

            path = cdnow_path()
        else:
            path = Path(file)
        log = read_purchase_log(path, log_format)
        console.print(
            f"fitting {log.n_customers:,} customers ({log.n_transactions:,} transactions) …"
        )
        fit = fit_population(
            log,
            name=name or (file if shipped else None),
            segments=k,
            seed=seed,
            cycle_days=cycle_days,
            end_day=end_day,
            defaults=fit_defaults,
        )
    if defaults is not None:
        fit.defaults_file = str(defaults)
    writer = fit.write
    if campaign is not None:
        from rec_env.cli._campaigns import fit_campaign_population

        writer = fit_campaign_population(campaign, campaign_arm, fit, fit_defaults, seed, check)
    with staged_file(out) as staged:
        writer(staged)
    Console().print(_fit_table(fit))
    if fit.bics:
        bics = ", ".join(f"{k}: {bic:,.0f}" for k, bic in fit.bics.items())
        typer.echo(f"BIC by number of segments (smallest wins): {bics}")
    ks = ", ".join(f"{metric} {value:.3f}" for metric, value in fit.ks.items())
    typer.echo(f"simulated vs observed RFM, Kolmogorov-Smirnov distance: {ks}")
    typer.echo(f"wrote {out}")
