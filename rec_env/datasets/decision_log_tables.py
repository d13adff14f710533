"""Export the decision log as one flat table: a row per decision, joined with its reward.

Columns: ``event_id``, ``created_at`` (UTC timestamp), ``model_version``, ``world`` (the
model's: ``strategy``, ``item`` or ``slate``), ``policy_updates``, ``customer_id``, the
features by name (the 16 strategy features, then the item features of the log's item and slate
models; empty for a model without them), ``action`` (name), ``action_index``, ``propensity``,
``allowed_<action>`` for every action, ``prob_<action>`` for every action of a strategy model
(item and slate models log the served action's propensity only), then for logs with slate
models ``slate_<k>`` (the product id at position ``k``) and ``slate_probability_<k>`` (its
probability given the positions above it; see :mod:`rec_env.serve.slates`) for ``k = 1 … K``,
then the reward contract (schema 5; empty or false for older logs): ``holdout`` (the customer
was held out: the decision is the holdout's, not the policy's), ``policy_action`` (apprentice
mode: the action the model would have taken, while ``action`` is the caller's baseline),
``activated_at`` (when the message was delivered), ``window_seconds`` (the request's attribution
window), ``requires_activation``, and ``reward``, ``rewarded_at`` and ``reward_defaulted`` (the
final reward: posted, the sum of a closed window's parts, or the default; empty until then;
parts of a window still open are not exported). A slate decision's
``action`` is its first product on its channel and its ``propensity`` the probability of the
whole slate. The format follows the file extension: ``.parquet`` or ``.csv``. The export
streams the log in chunks, so it needs memory for one chunk only. The log is a SQLite file or
a ``postgresql://`` URL (:mod:`~.decision_log_backend`), read in the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.datasets.decision_log_backend import (
    LogConnection,
    connect_postgres,
    connect_sqlite,
    database_errors,
    describe,
    postgres_url,
)
from rec_env.datasets.decision_log_layout import LogLayout, RequestArrays
from rec_env.datasets.event_ids import POSITIONS, event_ids

__all__ = [
    "EXPORT_FORMATS",
    "READABLE_SCHEMA_VERSIONS",
    "SCHEMA_VERSION",
    "export_decisions",
    "iter_decision_tables",
]

SCHEMA_VERSION = 5
"""Schema of the decision log that ``recenv serve`` writes (``PRAGMA user_version``).

Version 2 numbers the rewards (``rewards.seq``) and counts the sampler's draws per seed.
Version 3 adds the item and slate worlds: each model's world, features, action channels and
products, and columnar requests (:mod:`rec_env.serve.decision_log_schema`). Version 4 marks the
default rewards recorded when a reward window closed (``rewards.defaulted``). Version 5 adds
the reward contract: activations, per-request attribution windows, reward parts, late rewards,
and the holdout flag and apprentice action of each decision."""

READABLE_SCHEMA_VERSIONS = (1, 2, 3, 4, 5)
"""Schemas the export reads: every version's ``decisions`` and ``rewards`` join the same way."""

_GROUP_PAGE = 10_000
"""Requests read per query when grouping them into chunks."""

EXPORT_FORMATS: dict[str, str] = {".parquet": "parquet", ".csv": "csv"}
"""File extensions :func:`export_decisions` understands, and their formats."""

_DECISIONS_OF_REQUESTS = (
    "SELECT d.request_id, d.position, d.event_id, d.customer_id, d.action, d.propensity, "
    "w.reward, w.received_at, {contract} FROM decisions AS d "
    "LEFT JOIN rewards AS w USING (event_id) "
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


def _open_read_only(db: str | Path) -> LogConnection:
    """A read-only connection to the log, checked to be a decision log of a readable version.

    Raises:
        ValueError: If it is missing, cannot be reached, or is not a decision log.
    """
    url = postgres_url(db)
    path = describe(db)
    if url is None and not Path(db).is_file():
        raise ValueError(f"{path}: no such decision log")
    if url is None:
        connection = connect_sqlite(Path(db), 30.0, read_only=True)
    else:
        connection = connect_postgres(url, 30.0, read_only=True)
    try:
        tables = connection.tables()
        version = _version(connection, tables)
    except database_errors() as exc:
        connection.close()
        kind = "a SQLite database" if url is None else "a readable decision log"
        raise ValueError(f"{path}: not {kind} ({exc})") from None
    if not {"models", "requests", "decisions", "rewards"} <= tables:
        connection.close()
        raise ValueError(f"{path}: not a recenv decision log (tables are missing)")
    if version not in READABLE_SCHEMA_VERSIONS:
        connection.close()
        raise ValueError(f"{path}: decision log schema {version}, expected {SCHEMA_VERSION}")
    return connection


def _version(connection: LogConnection, tables: set[str]) -> int | None:
    """The log's schema version (``PRAGMA user_version``, or PostgreSQL's ``log_schema``)."""
    if not connection.postgres:
        return int(connection.execute("PRAGMA user_version").fetchone()[0])
    if "log_schema" not in tables:
        return None
    version = connection.execute("SELECT MAX(version) FROM log_schema").fetchone()[0]
    return None if version is None else int(version)


def _request_groups(connection: LogConnection, chunk_rows: int) -> Iterator[tuple[int, int]]:
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


def _has_contract(connection: LogConnection) -> bool:
    """True if the log has the tables of the reward contract (schema 5)."""
    return {"activations", "request_terms"} <= connection.tables()


def _present(connection: LogConnection, table: str, alias: str, names: list[str]) -> str:
    """``alias.name`` for each column of ``table`` the log has, ``NULL`` for the others."""
    columns = connection.columns(table)
    return ", ".join(f"{alias}.{name}" if name in columns else "NULL" for name in names)


def _decisions(
    connection: LogConnection, first: int, last: int, arrays: RequestArrays
) -> list[tuple[Any, ...]]:
    """Every decision of requests ``first`` … ``last``, in order, with its reward.

    Rows of ``decisions`` and the columns of columnar requests, as ``(request_id, position,
    event_id, customer_id, action, propensity, reward, rewarded_at, holdout, policy_action,
    defaulted)``.
    """
    decided = _present(connection, "decisions", "d", ["holdout", "policy_action"])
    defaulted = _present(connection, "rewards", "w", ["defaulted"])
    query = _DECISIONS_OF_REQUESTS.format(contract=f"{decided}, {defaulted}")
    decisions = connection.execute(query, (first, last)).fetchall()
    if not arrays.columnar:
        return decisions
    rewards = {
        (request_id, position): (reward, at, default)
        for request_id, position, reward, at, default in connection.execute(
            f"SELECT request_id, position, reward, received_at, {defaulted} FROM rewards AS w "
            "WHERE request_id BETWEEN ? AND ?",
            (first, last),
        )
    }
    keys = dict(
        connection.execute(
            "SELECT request_id, request_key || ':' || position_offset FROM requests "
            "WHERE request_id BETWEEN ? AND ? AND actions IS NOT NULL",
            (first, last),
        ).fetchall()
    )
    for request_id, (actions, propensities, customer_ids) in arrays.columnar.items():
        key, offset = keys[request_id].rsplit(":", 1)
        ids = event_ids(key, int(offset) % POSITIONS, len(actions))
        rows = slice(arrays.offsets[request_id], arrays.offsets[request_id] + len(actions))
        held = arrays.holdout[rows].tolist()
        policy = arrays.policy_actions[rows].tolist()
        for position, (event_id, action, propensity, customer_id) in enumerate(
            zip(ids, actions.tolist(), propensities.tolist(), customer_ids, strict=True)
        ):
            reward, at, default = rewards.get((request_id, position), (None, None, None))
            decisions.append(
                (request_id, position, event_id, customer_id, action, propensity, reward, at,
                 held[position], policy[position], default)
            )  # fmt: skip
    decisions.sort(key=lambda row: (row[0], row[1]))
    return decisions


def _chunk_columns(
    connection: LogConnection, first: int, last: int, layout: LogLayout
) -> dict[str, Any]:
    """The export columns of the decisions of requests ``first`` … ``last``."""
    arrays = RequestArrays(connection, first, last, layout)
    decisions = _decisions(connection, first, last, arrays)
    (
        request_ids,
        in_request,
        ids,
        customer_ids,
        actions,
        propensities,
        rewards,
        rewarded,
        held,
        policy,
        defaulted,
    ) = [list(column) for column in zip(*decisions, strict=True)] if decisions else [[]] * 11
    rows = np.array([arrays.offsets[r] for r in request_ids], dtype=np.intp)
    rows += np.array(in_request, dtype=np.intp)
    action_index = np.array(actions, dtype=np.int64)
    union_index = arrays.action_columns[rows, action_index]
    columns: dict[str, Any] = {
        "event_id": ids,
        "created_at": arrays.created_at[rows],
        "model_version": arrays.model_version[rows].tolist(),
        "world": [layout.models[v].world for v in arrays.model_version[rows].tolist()],
        "policy_updates": arrays.policy_updates[rows],
        "customer_id": customer_ids,
    }
    for j, name in enumerate(layout.feature_names):
        columns[name] = arrays.features[rows, j]
    columns["action"] = [layout.action_names[i] for i in union_index]
    columns["action_index"] = action_index
    columns["propensity"] = np.array(propensities, dtype=np.float64)
    for j, name in enumerate(layout.action_names):
        columns[f"allowed_{name}"] = arrays.allowed[rows, j]
    for j in layout.row_actions.tolist():
        columns[f"prob_{layout.action_names[j]}"] = arrays.probabilities[rows, j]
    for k in range(layout.slate_size):
        columns[f"slate_{k + 1}"] = arrays.slates[rows, k].tolist()
        columns[f"slate_probability_{k + 1}"] = arrays.slate_probabilities[rows, k]
    columns["holdout"] = [bool(h) for h in held]
    policy_index = np.array([-1 if p is None else p for p in policy], dtype=np.int64)
    has_policy = policy_index >= 0
    policy_union = arrays.action_columns[rows, np.maximum(policy_index, 0)]
    columns["policy_action"] = [
        layout.action_names[j] if given else None
        for j, given in zip(policy_union.tolist(), has_policy.tolist(), strict=True)
    ]
    activated, windows, required = _contract_of(connection, first, last)
    places = list(zip(request_ids, in_request, strict=True))
    columns["activated_at"] = [activated.get(place, np.nan) for place in places]
    columns["window_seconds"] = [windows.get(r, (None, False))[0] for r in request_ids]
    columns["requires_activation"] = [required.get(r, False) for r in request_ids]
    columns["reward"] = rewards
    columns["rewarded_at"] = [np.nan if t is None else t for t in rewarded]
    columns["reward_defaulted"] = [bool(d) if r is not None else None
                                   for d, r in zip(defaulted, rewards, strict=True)]  # fmt: skip
    return columns


def _contract_of(
    connection: LogConnection, first: int, last: int
) -> tuple[dict[tuple[int, int], float], dict[int, tuple[float | None, bool]], dict[int, bool]]:
    """Activation times, windows and activation requirements of requests ``first`` … ``last``."""
    if not _has_contract(connection):
        return {}, {}, {}
    activated = {
        (request_id, position): at
        for request_id, position, at in connection.execute(
            "SELECT request_id, position, activated_at FROM activations "
            "WHERE request_id BETWEEN ? AND ?",
            (first, last),
        )
    }
    terms = connection.execute(
        "SELECT request_id, window_seconds, require_activation FROM request_terms "
        "WHERE request_id BETWEEN ? AND ?",
        (first, last),
    ).fetchall()
    windows = {request_id: (window, bool(require)) for request_id, window, require in terms}
    required = {request_id: bool(require) for request_id, _, require in terms}
    return activated, windows, required


def iter_decision_tables(db: str | Path, chunk_rows: int = 100_000) -> Iterator[Any]:
    """The decision log as ``pyarrow.Table`` chunks of about ``chunk_rows`` decisions.

    Raises:
        ValueError: If ``db`` is missing or not a decision log.
    """
    import pyarrow as pa

    with closing(_open_read_only(db)) as connection:
        layout = LogLayout(connection)
        schema = _schema(layout)
        for first, last in _request_groups(connection, chunk_rows):
            columns = _chunk_columns(connection, first, last, layout)
            for name in ("created_at", "activated_at", "rewarded_at"):
                seconds = np.array(columns[name], dtype=np.float64)
                missing = np.isnan(seconds)
                micros = np.round(np.where(missing, 0.0, seconds) * 1e6).astype(np.int64)
                columns[name] = pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=missing)
            yield pa.table(columns, schema=schema)


def _schema(layout: LogLayout) -> Any:
    """The ``pyarrow.Schema`` of the export."""
    import pyarrow as pa

    timestamp = pa.timestamp("us", tz="UTC")
    names = layout.action_names
    fields = [
        ("event_id", pa.string()),
        ("created_at", timestamp),
        ("model_version", pa.string()),
        ("world", pa.string()),
        ("policy_updates", pa.int64()),
        ("customer_id", pa.string()),
        *((name, pa.float64()) for name in layout.feature_names),
        ("action", pa.string()),
        ("action_index", pa.int64()),
        ("propensity", pa.float64()),
        *((f"allowed_{name}", pa.bool_()) for name in names),
        *((f"prob_{names[j]}", pa.float64()) for j in layout.row_actions.tolist()),
        *(
            field
            for k in range(1, layout.slate_size + 1)
            for field in ((f"slate_{k}", pa.string()), (f"slate_probability_{k}", pa.float64()))
        ),
        ("holdout", pa.bool_()),
        ("policy_action", pa.string()),
        ("activated_at", timestamp),
        ("window_seconds", pa.float64()),
        ("requires_activation", pa.bool_()),
        ("reward", pa.float64()),
        ("rewarded_at", timestamp),
        ("reward_defaulted", pa.bool_()),
    ]
    return pa.schema(fields)


def export_decisions(db: str | Path, out: str | Path, chunk_rows: int = 100_000) -> int:
    """Write the decision log joined with rewards to ``out`` (Parquet or CSV by extension).

    Args:
        db: The decision log: a SQLite file or a ``postgresql://`` URL.
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
        schema = _schema(LogLayout(connection))
    writer: Any = (
        pq.ParquetWriter(out, schema) if kind == "parquet" else pa_csv.CSVWriter(out, schema)
    )
    written = 0
    with writer:
        for table in iter_decision_tables(db, chunk_rows):
            writer.write_table(table)
            written += table.num_rows
    return written
