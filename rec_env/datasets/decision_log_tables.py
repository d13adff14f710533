"""Export the decision log as one flat table: a row per decision, joined with its reward.

Columns: ``event_id``, ``created_at`` (UTC timestamp), ``model_version``, ``policy_updates``,
``customer_id``, the 16 features by name, ``action`` (name), ``action_index``, ``propensity``,
``allowed_<action>`` and ``prob_<action>`` for every action, ``reward`` and ``rewarded_at``
(empty until a reward arrives). The format follows the file extension: ``.parquet`` or ``.csv``.
The export streams the log in chunks, so it needs memory for one chunk only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.features import FEATURE_NAMES

__all__ = [
    "EXPORT_FORMATS",
    "READABLE_SCHEMA_VERSIONS",
    "SCHEMA_VERSION",
    "export_decisions",
    "iter_decision_tables",
]

SCHEMA_VERSION = 2
"""Schema of the decision log that ``recenv serve`` writes (``PRAGMA user_version``).

Version 2 numbers the rewards (``rewards.seq``) and counts the sampler's draws per seed."""

READABLE_SCHEMA_VERSIONS = (1, 2)
"""Schemas the export reads: every version's ``decisions`` and ``rewards`` join the same way."""

_GROUP_PAGE = 10_000
"""Requests read per query when grouping them into chunks."""

EXPORT_FORMATS: dict[str, str] = {".parquet": "parquet", ".csv": "csv"}
"""File extensions :func:`export_decisions` understands, and their formats."""

_FLOAT = np.dtype("<f8")
_N_FEATURES = len(FEATURE_NAMES)

_DECISIONS_OF_REQUESTS = (
    "SELECT d.request_id, d.position, d.event_id, d.customer_id, d.action, d.propensity, "
    "w.reward, w.received_at FROM decisions AS d LEFT JOIN rewards AS w USING (event_id) "
    "WHERE d.request_id BETWEEN ? AND ? ORDER BY d.request_id, d.position"
)


def export_format(path: str | Path) -> str:
    """``"parquet"`` or ``"csv"`` from the extension of ``path``.

    Raises:
        ValueError: For any other extension.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise ValueError(
            f"{path}: unknown export format {suffix or '(no extension)'!r}; "
            f"use one of: {', '.join(EXPORT_FORMATS)}"
        )
    return EXPORT_FORMATS[suffix]


def _open_read_only(db: str | Path) -> sqlite3.Connection:
    path = Path(db)
    if not path.is_file():
        raise ValueError(f"{path}: no such decision log")
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise ValueError(f"{path}: not a SQLite database ({exc})") from None
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if not {"models", "requests", "decisions", "rewards"} <= tables:
        connection.close()
        raise ValueError(f"{path}: not a recenv decision log (tables are missing)")
    if version not in READABLE_SCHEMA_VERSIONS:
        connection.close()
        raise ValueError(f"{path}: decision log schema {version}, expected {SCHEMA_VERSION}")
    return connection


def _action_columns(connection: sqlite3.Connection) -> tuple[list[str], dict[str, np.ndarray]]:
    """The union of the models' action names, and each model's positions in it."""
    names: list[str] = []
    positions: dict[str, np.ndarray] = {}
    for version, raw in connection.execute(
        "SELECT model_version, action_names FROM models ORDER BY registered_at"
    ):
        model_names = json.loads(raw)
        names.extend(name for name in model_names if name not in names)
        positions[version] = np.array([names.index(name) for name in model_names], dtype=np.intp)
    return names, positions


def _request_groups(connection: sqlite3.Connection, chunk_rows: int) -> Iterator[tuple[int, int]]:
    """Ranges ``(first, last)`` of request ids holding about ``chunk_rows`` decisions each.

    Covers the requests logged when it starts, read a page at a time: no statement stays open
    across chunks, so the export never holds a read transaction that would keep a running
    server from resetting its write-ahead log.
    """
    newest = connection.execute("SELECT MAX(request_id) FROM requests").fetchone()[0]
    first, count, after = None, 0, 0
    while newest is not None and after < newest:
        page = connection.execute(
            "SELECT request_id, n FROM requests WHERE request_id > ? AND request_id <= ? "
            "ORDER BY request_id LIMIT ?",
            (after, newest, _GROUP_PAGE),
        ).fetchall()
        if not page:
            break
        for request_id, n in page:
            if first is None:
                first = request_id
            count += n
            if count >= chunk_rows:
                yield first, request_id
                first, count = None, 0
        after = page[-1][0]
    if first is not None:
        yield first, after


class _RequestArrays:
    """The arrays of the requests ``first`` … ``last``, stacked and widened to every action.

    Attributes:
        offsets: First stacked row of each request id.
        created_at, model_version, policy_updates: Per stacked row.
        features: ``(rows, 16)``.
        allowed, probabilities: ``(rows, n_actions)`` over the union of action names
            (False / NaN for actions the row's model did not have).
        action_columns: ``(rows, max actions)`` each row's model action index → union column.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        first: int,
        last: int,
        n_actions: int,
        positions: dict[str, np.ndarray],
    ) -> None:
        requests = connection.execute(
            "SELECT request_id, created_at, model_version, policy_updates, n, features, "
            "allowed, probabilities FROM requests WHERE request_id BETWEEN ? AND ? "
            "ORDER BY request_id",
            (first, last),
        ).fetchall()
        total = sum(row[4] for row in requests)
        widest = max(len(p) for p in positions.values())
        self.offsets: dict[int, int] = {}
        self.created_at = np.empty(total)
        self.policy_updates = np.empty(total, dtype=np.int64)
        self.model_version = np.empty(total, dtype=object)
        self.features = np.empty((total, _N_FEATURES))
        self.allowed = np.zeros((total, n_actions), dtype=bool)
        self.probabilities = np.full((total, n_actions), np.nan)
        self.action_columns = np.zeros((total, widest), dtype=np.intp)
        start = 0
        for request_id, created, version, updates, n, features, allowed, probs in requests:
            columns, rows = positions[version], slice(start, start + n)
            self.offsets[request_id] = start
            self.created_at[rows], self.model_version[rows] = created, version
            self.policy_updates[rows] = updates
            self.features[rows] = np.frombuffer(features, dtype=_FLOAT).reshape(n, -1)
            self.allowed[rows, columns] = np.frombuffer(allowed, dtype=np.uint8).reshape(n, -1)
            self.probabilities[rows, columns] = np.frombuffer(probs, dtype=_FLOAT).reshape(n, -1)
            self.action_columns[rows, : len(columns)] = columns
            start += n


def _chunk_columns(
    connection: sqlite3.Connection,
    first: int,
    last: int,
    action_names: list[str],
    positions: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The export columns of the decisions of requests ``first`` … ``last``."""
    arrays = _RequestArrays(connection, first, last, len(action_names), positions)
    decisions = connection.execute(_DECISIONS_OF_REQUESTS, (first, last)).fetchall()
    (request_ids, in_request, event_ids, customer_ids, actions, propensities, rewards, rewarded) = (
        [list(column) for column in zip(*decisions, strict=True)] if decisions else [[]] * 8
    )
    rows = np.array([arrays.offsets[r] for r in request_ids], dtype=np.intp)
    rows += np.array(in_request, dtype=np.intp)
    action_index = np.array(actions, dtype=np.int64)
    union_index = arrays.action_columns[rows, action_index]
    columns: dict[str, Any] = {
        "event_id": event_ids,
        "created_at": arrays.created_at[rows],
        "model_version": arrays.model_version[rows].tolist(),
        "policy_updates": arrays.policy_updates[rows],
        "customer_id": customer_ids,
    }
    for j, name in enumerate(FEATURE_NAMES):
        columns[name] = arrays.features[rows, j]
    columns["action"] = [action_names[i] for i in union_index]
    columns["action_index"] = action_index
    columns["propensity"] = np.array(propensities, dtype=np.float64)
    for j, name in enumerate(action_names):
        columns[f"allowed_{name}"] = arrays.allowed[rows, j]
    for j, name in enumerate(action_names):
        columns[f"prob_{name}"] = arrays.probabilities[rows, j]
    columns["reward"] = rewards
    columns["rewarded_at"] = [np.nan if t is None else t for t in rewarded]
    return columns


def iter_decision_tables(db: str | Path, chunk_rows: int = 100_000) -> Iterator[Any]:
    """The decision log as ``pyarrow.Table`` chunks of about ``chunk_rows`` decisions.

    Raises:
        ValueError: If ``db`` is missing or not a decision log.
    """
    import pyarrow as pa

    with closing(_open_read_only(db)) as connection:
        action_names, positions = _action_columns(connection)
        schema = _schema(action_names)
        for first, last in _request_groups(connection, chunk_rows):
            columns = _chunk_columns(connection, first, last, action_names, positions)
            for name in ("created_at", "rewarded_at"):
                seconds = np.array(columns[name], dtype=np.float64)
                missing = np.isnan(seconds)
                micros = np.round(np.where(missing, 0.0, seconds) * 1e6).astype(np.int64)
                columns[name] = pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=missing)
            yield pa.table(columns, schema=schema)


def _schema(action_names: list[str]) -> Any:
    """The ``pyarrow.Schema`` of the export."""
    import pyarrow as pa

    timestamp = pa.timestamp("us", tz="UTC")
    fields = [
        ("event_id", pa.string()),
        ("created_at", timestamp),
        ("model_version", pa.string()),
        ("policy_updates", pa.int64()),
        ("customer_id", pa.string()),
        *((name, pa.float64()) for name in FEATURE_NAMES),
        ("action", pa.string()),
        ("action_index", pa.int64()),
        ("propensity", pa.float64()),
        *((f"allowed_{name}", pa.bool_()) for name in action_names),
        *((f"prob_{name}", pa.float64()) for name in action_names),
        ("reward", pa.float64()),
        ("rewarded_at", timestamp),
    ]
    return pa.schema(fields)


def export_decisions(db: str | Path, out: str | Path, chunk_rows: int = 100_000) -> int:
    """Write the decision log joined with rewards to ``out`` (Parquet or CSV by extension).

    Args:
        db: The SQLite decision log.
        out: Output file, ``*.parquet`` or ``*.csv``.
        chunk_rows: Decisions read and written at a time.

    Returns:
        The number of decisions written.

    Raises:
        ValueError: If the extension is unknown, or ``db`` is missing or not a decision log.
    """
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    kind = export_format(out)
    with closing(_open_read_only(db)) as connection:
        schema = _schema(_action_columns(connection)[0])
    writer: Any = (
        pq.ParquetWriter(out, schema) if kind == "parquet" else pa_csv.CSVWriter(out, schema)
    )
    written = 0
    with writer:
        for table in iter_decision_tables(db, chunk_rows):
            writer.write_table(table)
            written += table.num_rows
    return written
