"""``recenv report``: one self-contained HTML page of runs and saved results, for people."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from rec_env.cli._errors import MAX_CUSTOMERS, check_count, fail, reporting_bad_input
from rec_env.cli._outputs import FORCE_HELP, check_output_file, staged_file

if TYPE_CHECKING:
    from rec_env.agents.report import ReportContent

__all__ = ["HTML_SUFFIXES", "report_command", "write_html_report"]

HTML_SUFFIXES = frozenset({".html", ".htm"})
"""File types of the report."""


def command_line(command: str) -> str:
    """The command line that is running, as a shell would quote it.

    Called from Python (a test's ``CliRunner``) the process's arguments are not the command's:
    then only ``command`` (e.g. ``recenv report``), marked as such.
    """
    if sys.argv and Path(sys.argv[0]).stem == "recenv":
        return shlex.join(["recenv", *sys.argv[1:]])
    return f"{command} (called from Python)"


def write_html_report(content: ReportContent, path: Path, command: str = "recenv report") -> int:
    """Render ``content`` and write it to ``path`` (staged); return its size in bytes.

    ``command`` names the command for the footer when the process is not ``recenv`` itself.
    """
    import rec_env
    from rec_env.agents.report import render_report

    text = render_report(
        content,
        command=command_line(command),
        version=rec_env.__version__,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    data = text.encode("utf-8")
    with staged_file(path) as staged:
        staged.write_bytes(data)
    return len(data)


@contextmanager
def progress_steps(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr advanced by each message (or nothing if disabled)."""
    if not enabled:
        yield lambda message: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=total)

        def step(message: str) -> None:
            bar.update(task, description=message, advance=1)

        yield step


def report_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories (recenv train), recenv compare or bench output directories, "
            "recenv offline results (directory or results.json), or the --json output of "
            "recenv eval, ab or ope saved to a file."
        ),
    ],
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
    customers: Annotated[
        int, typer.Option(help="Customers of the cohort run directories are evaluated on.")
    ] = 2_000,
    seed: Annotated[int, typer.Option(help="Seed of that cohort and of the explanations.")] = 0,
    explain: Annotated[
        bool, typer.Option(help="Explain the runs' decisions (strategy world).")
    ] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
) -> None:
    """Write one self-contained HTML report: a plain-words headline, tables and figures.

    Run directories are evaluated together with their world's baselines (no_action, the rules
    and the oracle) on one simulated cohort (--customers, --seed); the report adds their
    learning curves, what they send over the customer lifetime and, for the strategy world,
    why they decide (exact Shapley values). Saved results of compare, eval, offline, bench, ab
    and ope are read, not re-run. The file needs no network to open: figures are inline SVG,
    fonts are the reader's own.
    """
    from rec_env.agents.report import ReportContent, add_simulation, input_kind, read_result

    check_count("--customers", customers, low=10, high=MAX_CUSTOMERS)
    if seed < 0:
        fail(f"--seed must be 0 or more, got {seed}")
    check_output_file(out, force=force, suffixes=HTML_SUFFIXES)
    with reporting_bad_input():
        kinds = [input_kind(path) for path in inputs]
    runs = [path for path, kind in zip(inputs, kinds, strict=True) if kind == "run"]
    content = ReportContent()
    with reporting_bad_input():
        for path, kind in zip(inputs, kinds, strict=True):
            if kind != "run":
                read_result(path, content)
    if runs:
        from rec_env.agents.registry import BASELINES_BY_WORLD

        steps = 2 * len(runs) + len(BASELINES_BY_WORLD["strategy"]) + 4 + len(runs)
        with reporting_bad_input(), progress_steps(progress, steps) as step:
            add_simulation(
                content, runs, customers=customers, seed=seed, explain=explain, progress=step
            )
    size = write_html_report(content, out)
    typer.echo(f"wrote {out} ({size / 1024:,.0f} KB)")
