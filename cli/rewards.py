"""``recenv rewards``: upload rewards to the decision log, and close the reward windows."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from rec_env.cli._errors import fail, reporting_bad_input

__all__ = ["close_command", "read_rewards", "rewards_app", "upload_command"]

rewards_app = typer.Typer(
    help="Upload rewards to the decision log of `recenv serve` and `recenv score`, and close "
    "the reward windows of old decisions with a default reward.",
    no_args_is_help=True,
)

_DB_HELP = (
    "The SQLite decision log (while `recenv serve` runs on it, use its /v1/rewards endpoints)."
)


def read_rewards(path: Path) -> tuple[list[str], list[float]]:
    """The ``event_id`` and ``reward`` columns of a CSV or Parquet file (by its extension).

    Raises:
        ValueError: If the file cannot be read, a column is missing, or a value is empty, not
            a number or not finite (naming its row, 1 = the first data row).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    table = _read_table(path)
    missing = [name for name in ("event_id", "reward") if name not in table.column_names]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)} (columns: event_id, reward)")
    ids = table.column("event_id")
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        raise ValueError(f"{path}: column event_id must hold text, not {ids.type}")
    rewards = table.column("reward")
    try:
        rewards = rewards.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ValueError(f"{path}: column reward must hold numbers, not {rewards.type}") from None
    for name, column in (("event_id", ids), ("reward", rewards)):
        if column.null_count:
            row = int(np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"{path}: row {row + 1}: {name} is empty")
    values = rewards.to_numpy()
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        row = int(bad[0])
        raise ValueError(f"{path}: row {row + 1}: reward {float(values[row])!r} is not finite")
    return pc.utf8_lower(ids).to_pylist(), values.tolist()


def _read_table(path: Path) -> Any:
    """The file as a ``pyarrow.Table``: Parquet by its extension, else CSV (``event_id`` text)."""
    import pyarrow as pa
    import pyarrow.csv as pv
    import pyarrow.parquet as pq

    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_table(path)
        options = pv.ConvertOptions(column_types={"event_id": pa.string()})
        return pv.read_csv(path, convert_options=options)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: cannot read ({' '.join(str(exc).split())})") from None


def _open_log(db: Path) -> Any:
    """The existing decision log ``db``, open for writing."""
    from rec_env.serve.decision_log import DecisionLog

    if not db.is_file():
        raise ValueError(f"{db}: no such decision log")
    return DecisionLog(db)


@rewards_app.command("upload")
def upload_command(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet with columns event_id, reward.")],
    db: Annotated[Path, typer.Option(help=_DB_HELP)] = Path("decisions.db"),
) -> None:
    """Record the reward of each decision in PATH, in one transaction: all of them, or none.

    Each event's reward is recorded once: the same reward again is a duplicate and changes
    nothing, so uploading a file twice is harmless. An unknown event id, or a reward that
    differs from the one recorded, is an error and nothing is recorded. A reward for an event
    whose window was closed (`recenv rewards close`) is late: counted, not recorded.
    """
    from rec_env.serve.decision_log import RewardBatchError

    started = time.perf_counter()
    with reporting_bad_input():
        event_ids, rewards = read_rewards(path)
        log = _open_log(db)
    try:
        batch = log.record_rewards(event_ids, rewards)
    except RewardBatchError as exc:
        fail(f"{path}: row {exc.index + 1}, {exc.field}: {exc.reason}")
    finally:
        log.close()
    seconds = time.perf_counter() - started
    typer.echo(
        f"recorded {batch.recorded:,} rewards, {batch.duplicates:,} duplicates, "
        f"{len(batch.late):,} late (window closed, not recorded) in {seconds:.2f} s"
    )


@rewards_app.command("close")
def close_command(
    window_days: Annotated[
        float, typer.Option(help="The attribution window: days from the decision.")
    ],
    default_reward: Annotated[
        float, typer.Option(help="The reward of a decision nobody posted a reward for.")
    ] = 0.0,
    as_of: Annotated[
        str | None,
        typer.Option(help="Close the windows as of this time: ISO 8601 (UTC) or Unix seconds."),
    ] = None,
    db: Annotated[Path, typer.Option(help=_DB_HELP)] = Path("decisions.db"),
) -> None:
    """Record the default reward for every decision older than the window without a reward.

    Most customers do not buy, and nobody posts their zero: a policy that learns, or an
    evaluation that averages, the posted rewards alone sees only the buyers. Closing the
    windows adds the non-buyers. The defaults are marked as such in the log, and a reward
    that arrives later for such an event is late and never recorded. Run it as often as you
    like (e.g. nightly): a decision gets its default once.
    """
    from rec_env.serve.rewards import close_windows, parse_as_of

    with reporting_bad_input():
        if not math.isfinite(default_reward):
            raise ValueError(f"--default-reward must be finite, got {default_reward}")
        moment = parse_as_of(as_of)
        log = _open_log(db)
    with reporting_bad_input():
        try:
            closed = close_windows(log, window_days, default_reward, moment)
        finally:
            log.close()
    typer.echo(f"recorded the default reward {default_reward:g} for {closed:,} decisions")
