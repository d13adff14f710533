"""``recenv rewards``: upload rewards and activations to the decision log, close the windows."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from rec_env.cli._errors import fail, reporting_bad_input

__all__ = [
    "activate_command",
    "close_command",
    "read_activations",
    "read_reward_parts",
    "read_rewards",
    "rewards_app",
    "upload_command",
]

rewards_app = typer.Typer(
    help="Upload rewards and activations to the decision log of `recenv serve` and `recenv "
    "score`, and close the reward windows that are over.",
    no_args_is_help=True,
)

_DB_HELP = (
    "The SQLite decision log (while `recenv serve` runs on it, use its /v1/rewards endpoints)."
)


def read_rewards(path: Path) -> tuple[list[str], list[float]]:
    """The ``event_id`` and ``reward`` columns of a CSV or Parquet file (by its extension).

    Raises:
        ValueError: As :func:`read_reward_parts`.
    """
    event_ids, rewards, _ = read_reward_parts(path)
    return event_ids, rewards


def read_reward_parts(
    path: Path, log: Any = None
) -> tuple[list[str], list[float], list[str | None] | None]:
    """The ``event_id``, ``reward`` and optional ``part_id`` columns of a CSV or Parquet file.

    The format follows the extension (``.parquet``, else CSV). An empty ``part_id`` is the
    event's unnamed part. Instead of ``event_id``, a file may give ``customer_id`` and
    ``decided_at`` (:func:`rec_env.serve.rewards.decision_time`): each row is then the reward of
    that customer's latest decision at or before that time in ``log``.

    Raises:
        ValueError: If the file cannot be read, a column is missing, or a value is empty, not
            a number or not finite (naming its row, 1 = the first data row).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    table = _read_table(path)
    if "reward" not in table.column_names:
        raise ValueError(
            f"{path}: no column reward (columns: event_id or customer_id and decided_at, "
            "reward[, part_id])"
        )
    ids = _keys(table, path, log, "reward[, part_id]")
    rewards = table.column("reward")
    try:
        rewards = rewards.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ValueError(f"{path}: column reward must hold numbers, not {rewards.type}") from None
    if rewards.null_count:
        row = int(np.flatnonzero(pc.is_null(rewards).to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{path}: row {row + 1}: reward is empty")
    values = rewards.to_numpy()
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        row = int(bad[0])
        raise ValueError(f"{path}: row {row + 1}: reward {float(values[row])!r} is not finite")
    parts = None
    if "part_id" in table.column_names:
        parts = [
            None if part in (None, "") else str(part)
            for part in table.column("part_id").cast(pa.string()).to_pylist()
        ]
    return ids, values.tolist(), parts


def _keys(table: Any, path: Path, log: Any, other_columns: str) -> list[str]:
    """The event ids of a file's rows: its ``event_id`` column, or joined by customer and time.

    Raises:
        ValueError: If neither key is there, or a row matches no decision (naming the row).
    """
    columns = table.column_names
    if "event_id" in columns or log is None:
        if "event_id" not in columns:
            raise ValueError(f"{path}: no column event_id (columns: event_id, {other_columns})")
        return _event_ids(table, path)
    if "customer_id" not in columns or "decided_at" not in columns:
        raise ValueError(
            f"{path}: no column event_id, nor customer_id and decided_at (columns: event_id or "
            f"customer_id and decided_at, {other_columns})"
        )
    from rec_env.serve.rewards import UnmatchedDecisionError, event_ids_by_customer

    customers = _texts(table, "customer_id", path)
    moments = _times(table, "decided_at", path, decided=True)
    if any(moment is None for moment in moments):
        row = next(i for i, moment in enumerate(moments) if moment is None)
        raise ValueError(f"{path}: row {row + 1}: decided_at is empty")
    try:
        return event_ids_by_customer(log, customers, moments)  # type: ignore[arg-type]
    except UnmatchedDecisionError as exc:
        raise ValueError(f"{path}: row {exc.index + 1}: {exc}") from None


def _texts(table: Any, name: str, path: Path) -> list[str]:
    """A text column with no empty value."""
    import pyarrow as pa

    values = table.column(name).cast(pa.string()).to_pylist()
    for row, value in enumerate(values):
        if value in (None, ""):
            raise ValueError(f"{path}: row {row + 1}: {name} is empty")
    return values


def _times(table: Any, name: str, path: Path, decided: bool = False) -> list[float | None]:
    """A column of Unix seconds or timestamps (UTC if they name no zone); empty: None.

    With ``decided``, a bare date is its whole day (:func:`~rec_env.serve.rewards.
    decision_time`).
    """
    import pyarrow as pa

    from rec_env.serve.rewards import decision_time, parse_as_of

    column = table.column(name)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        return [None if v is None else v / 1e6 for v in column.to_pylist()]
    parse = decision_time if decided else parse_as_of
    times: list[float | None] = []
    for row, value in enumerate(column.cast(pa.string()).to_pylist()):
        try:
            times.append(None if value in (None, "") else parse(value))
        except ValueError:
            raise ValueError(
                f"{path}: row {row + 1}: {name} {value!r} is neither Unix seconds nor an ISO "
                "8601 timestamp"
            ) from None
    return times


def _event_ids(table: Any, path: Path) -> list[str]:
    """The ``event_id`` column in lower case.

    Raises:
        ValueError: If it is not text, or empty in a row.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = table.column("event_id")
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        raise ValueError(f"{path}: column event_id must hold text, not {ids.type}")
    if ids.null_count:
        row = int(np.flatnonzero(pc.is_null(ids).to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{path}: row {row + 1}: event_id is empty")
    return pc.utf8_lower(ids).to_pylist()


def read_activations(path: Path, log: Any = None) -> tuple[list[str], list[float | None]]:
    """The ``event_id`` and optional ``activated_at`` columns of a CSV or Parquet file.

    ``activated_at`` holds Unix seconds or timestamps (UTC if they name no zone); empty: now.
    Instead of ``event_id``, ``customer_id`` and ``decided_at`` name each customer's latest
    decision at or before that time in ``log``, as in :func:`read_reward_parts`.

    Raises:
        ValueError: If the file cannot be read, has no key, a key is empty somewhere, or
            ``activated_at`` is not a time.
    """
    table = _read_table(
        path, string_columns=("event_id", "activated_at", "customer_id", "decided_at")
    )
    ids = _keys(table, path, log, "activated_at")
    times: list[float | None] = [None] * len(ids)
    if "activated_at" in table.column_names:
        times = _times(table, "activated_at", path)
    return ids, times


def _read_table(
    path: Path,
    string_columns: tuple[str, ...] = ("event_id", "part_id", "customer_id", "decided_at"),
) -> Any:
    """The file as a ``pyarrow.Table``: Parquet by its extension, else CSV.

    Columns named in ``string_columns`` are read from a CSV as text.
    """
    import pyarrow as pa
    import pyarrow.csv as pv
    import pyarrow.parquet as pq

    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_table(path)
        options = pv.ConvertOptions(column_types=dict.fromkeys(string_columns, pa.string()))
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
    path: Annotated[
        Path,
        typer.Argument(
            help="CSV or Parquet with columns event_id (or customer_id and decided_at), reward "
            "and optionally part_id."
        ),
    ],
    db: Annotated[Path, typer.Option(help=_DB_HELP)] = Path("decisions.db"),
) -> None:
    """Record the reward of each decision in PATH, in one transaction: all of them, or none.

    Each event's reward is recorded once: the same reward again is a duplicate and changes
    nothing, so uploading a file twice is harmless. A decision logged with a reward window
    takes rewards as parts (part_id, e.g. the order id) that add up until the window closes.
    An unknown event id, a reward that differs from the one recorded, or a decision that needs
    an activation it does not have, is an error and nothing is recorded. A reward for an event
    whose window is over is late: counted, logged as late, never learned.
    """
    from rec_env.serve.decision_log import RewardBatchError

    started = time.perf_counter()
    with reporting_bad_input():
        log = _open_log(db)
    try:
        with reporting_bad_input():
            event_ids, rewards, part_ids = read_reward_parts(path, log)
        batch = log.record_rewards(event_ids, rewards, part_ids)
    except RewardBatchError as exc:
        fail(f"{path}: row {exc.index + 1}, {exc.field}: {exc.reason}")
    finally:
        log.close()
    seconds = time.perf_counter() - started
    pending = f" ({batch.pending:,} parts of open windows)" if batch.pending else ""
    typer.echo(
        f"recorded {batch.recorded:,} rewards{pending}, {batch.duplicates:,} duplicates, "
        f"{len(batch.late):,} late (window closed, not recorded) in {seconds:.2f} s"
    )


@rewards_app.command("close")
def close_command(
    window_days: Annotated[
        float | None,
        typer.Option(
            help="The attribution window of decisions logged without one: days from the "
            "decision (or its activation). Left out: only decisions logged with a window close, "
            "each by its own."
        ),
    ] = None,
    default_reward: Annotated[
        float, typer.Option(help="The reward of a decision nobody posted a reward for.")
    ] = 0.0,
    as_of: Annotated[
        str | None,
        typer.Option(help="Close the windows as of this time: ISO 8601 (UTC) or Unix seconds."),
    ] = None,
    db: Annotated[Path, typer.Option(help=_DB_HELP)] = Path("decisions.db"),
) -> None:
    """Give every decision whose reward window is over its final reward.

    A decision logged with a window (recenv serve --reward-window-days, or the request's
    reward_window_days) gets the sum of its parts, or the default reward if none came. With
    --window-days, every decision logged without a window and older than it, with no reward,
    gets the default. Most customers do not buy, and nobody posts their zero: a policy that
    learns, or an evaluation that averages, the posted rewards alone sees only the buyers.
    Closing the windows adds the non-buyers. The defaults are marked as such in the log, and a
    reward that arrives later for such an event is late and never learned. Run it as often as
    you like (e.g. nightly): a decision gets its final reward once.
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
    typer.echo(
        f"recorded the final reward (the default {default_reward:g} where none came) for "
        f"{closed:,} decisions"
    )


@rewards_app.command("activate")
def activate_command(
    path: Annotated[
        Path,
        typer.Argument(
            help="CSV or Parquet with a column event_id (or customer_id and decided_at) and "
            "optionally activated_at (Unix seconds or ISO 8601; empty: now)."
        ),
    ],
    db: Annotated[Path, typer.Option(help=_DB_HELP)] = Path("decisions.db"),
) -> None:
    """Mark the decisions in PATH as delivered (their messages were sent), all or none.

    A decision's reward window starts at its activation, and a log served with
    --require-activation learns from and evaluates activated decisions only. A decision keeps
    its first activation: uploading a file twice changes nothing. An unknown event id is an
    error and nothing is recorded.
    """
    from rec_env.serve.decision_records import EventBatchError

    with reporting_bad_input():
        log = _open_log(db)
    try:
        with reporting_bad_input():
            event_ids, times = read_activations(path, log)
        batch = log.activate(event_ids, times)
    except EventBatchError as exc:
        fail(f"{path}: row {exc.index + 1}, {exc.field}: {exc.reason}")
    finally:
        log.close()
    typer.echo(f"activated {batch.activated:,} decisions, {batch.duplicates:,} already activated")
