"""``recenv bench``: benchmarks on real logged data (``recenv bench hillstrom``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from rec_env.cli._errors import fail, reporting_bad_input
from rec_env.cli._outputs import FORCE_INTO_HELP, check_output_directory, staged_directory
from rec_env.datasets import HILLSTROM_REWARDS

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.agents.benchmarks.hillstrom import HillstromBenchmark
    from rec_env.agents.ope import OPEResult

__all__ = ["bench_app", "hillstrom_command"]

bench_app = typer.Typer(
    help="Benchmarks on real logged data: learned policies against constant ones, held out.",
    no_args_is_help=True,
)


def _cell(result: OPEResult, digits: int) -> str:
    """The value over its CI, on two lines (keeps the table within 80 columns)."""
    return f"{result.value:.{digits}f}\n[{result.ci_low:.{digits}f}, {result.ci_high:.{digits}f}]"


def _digits(bench: HillstromBenchmark) -> int:
    return 2 if bench.reward in ("spend", "profit") else 4


def _value_table(bench: HillstromBenchmark) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=f"Hillstrom, reward {bench.reward}: value per customer on the held-out half "
        f"({bench.n_test:,} customers, seed {bench.seed})",
        title_justify="left",
        caption="value [95% bootstrap CI]; learned on the other half "
        f"({bench.n_train:,} customers); ESS and weights in the CSV",
    )
    table.add_column("policy", no_wrap=True)
    for header in ("IPS", "SNIPS", "DR"):
        table.add_column(header, justify="right", no_wrap=True)
    digits = _digits(bench)
    for policy, results in bench.estimates.items():
        table.add_row(policy, *(_cell(r, digits) for r in results))
    return table


def _shares_line(bench: HillstromBenchmark) -> str:
    """What the learned policies send, as shares of the held-out customers."""
    shares = (
        f"{policy} {'/'.join(f'{100 * share:.0f}' for share in bench.action_shares[policy])}"
        for policy in bench.gains
    )
    return f"e-mails sent by the learned policies (Mens/Womens/none %): {', '.join(shares)}"


def _gain_table(bench: HillstromBenchmark) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=f"Learned policy minus the best constant policy ({bench.best_constant})",
        title_justify="left",
        caption="paired bootstrap: both values on the same resampled customers",
    )
    table.add_column("policy", no_wrap=True)
    for header in ("IPS", "SNIPS", "DR"):
        table.add_column(header, justify="right", no_wrap=True)
    digits = _digits(bench)
    for policy, results in bench.gains.items():
        table.add_row(policy, *(_cell(r, digits) for r in results))
    return table


@bench_app.command("hillstrom")
def hillstrom_command(
    reward: Annotated[str, typer.Option(help=f"Reward: {', '.join(HILLSTROM_REWARDS)}.")] = "visit",
    seed: Annotated[
        int, typer.Option(help="Seed of the split, Thompson sampling and the bootstrap.")
    ] = 0,
    out: Annotated[Path, typer.Option(help="Directory for the CSV files and the PNG.")] = Path(
        "bench_hillstrom"
    ),
    n_bootstrap: Annotated[
        int, typer.Option(help="Bootstrap replicates of the confidence intervals.")
    ] = 1000,
    customers: Annotated[
        int | None, typer.Option(help="Use a seeded random subset of this many customers.")
    ] = None,
    alpha: Annotated[
        float, typer.Option(help="LinUCB width, in standard deviations of the reward.")
    ] = 1.0,
    v: Annotated[
        float, typer.Option(help="Linear TS posterior scale, in standard deviations.")
    ] = 1.0,
    force: Annotated[bool, typer.Option("--force", help=FORCE_INTO_HELP)] = False,
) -> None:
    """Learn targeting policies on half of the Hillstrom e-mail campaign, value them on the rest.

    Learns a per-action ridge reward model (argmax), and LinUCB and linear Thompson sampling
    trained by replay (Li et al. 2011) on a seeded random half of the 64,000 customers; then
    estimates every policy's value on the other half with IPS, SNIPS and DR, against always
    Mens e-mail, always Womens e-mail, never e-mail and random. Writes the table, the gains over
    the best constant policy (CSV) and the replay learning curves (PNG) into --out.
    """
    from rec_env.agents.benchmarks.hillstrom import run_hillstrom
    from rec_env.agents.benchmarks.outputs import write_hillstrom_outputs

    if reward not in HILLSTROM_REWARDS:
        fail(f"--reward must be one of {', '.join(HILLSTROM_REWARDS)}, got {reward!r}")
    if n_bootstrap < 2:
        fail(f"--n-bootstrap must be at least 2, got {n_bootstrap}")
    if alpha < 0 or not v > 0:
        fail(f"--alpha must be >= 0 and --v > 0, got {alpha} and {v}")
    check_output_directory(out, force=force)
    console = Console(stderr=True)
    with reporting_bad_input():
        bench = run_hillstrom(
            reward,
            seed,
            n_bootstrap,
            customers,
            alpha,
            v,
            progress=lambda message: console.print(f"{message} …"),
        )
    with staged_directory(out) as staged:
        paths = [out / path.relative_to(staged) for path in write_hillstrom_outputs(bench, staged)]
    stdout = Console()
    stdout.print(_value_table(bench))
    typer.echo(_shares_line(bench))
    stdout.print(_gain_table(bench))
    for policy, verdict in bench.verdicts().items():
        typer.echo(f"{policy}: {verdict}")
    for path in paths:
        typer.echo(f"wrote {path}")
