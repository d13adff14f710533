"""``recenv log``: work with the decision log written by ``recenv serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rec_env.cli._errors import fail, reporting_bad_input
from rec_env.cli._outputs import FORCE_HELP, check_output_file, staged_file

__all__ = ["export_command", "log_app"]

log_app = typer.Typer(
    help="Export the decision log of `recenv serve` (decisions joined with their rewards).",
    no_args_is_help=True,
)


@log_app.command("export")
def export_command(
    out: Annotated[
        Path, typer.Option(help="Output file: *.parquet or *.csv (the format follows it).")
    ],
    db: Annotated[
        str,
        typer.Option(help="The decision log: a SQLite file or a postgresql:// URL."),
    ] = "decisions.db",
    chunk_rows: Annotated[int, typer.Option(help="Decisions read and written at a time.")] = (
        100_000
    ),
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
) -> None:
    """Write one row per decision: features, allowed actions, probabilities, reward.

    Columns: event_id, created_at, model_version, world (strategy, item or slate),
    policy_updates, customer_id, the features by name (the 16 strategy features, then the item
    features of the log's item and slate models), action, action_index, propensity,
    allowed_ACTION for every action, prob_ACTION for every action of a strategy model, for
    slate models slate_K and slate_probability_K for every position K, then reward and
    rewarded_at (empty until the reward arrives).
    """
    from rec_env.datasets.decision_log_tables import export_decisions, export_format

    if chunk_rows < 1:
        fail(f"--chunk-rows must be at least 1, got {chunk_rows}")
    with reporting_bad_input():
        export_format(out)
    check_output_file(out, force=force)
    with reporting_bad_input(), staged_file(out) as staged:
        try:
            written = export_decisions(db, staged, chunk_rows)
        except OSError as exc:
            raise ValueError(f"{out}: cannot write ({exc.strerror or exc})") from None
    typer.echo(f"wrote {written:,} decisions to {out}")
