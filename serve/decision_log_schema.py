"""The decision log's tables: create them, check their version, upgrade an older log.

Tables (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`; on PostgreSQL the version is the one
row of ``log_schema``):

* ``models``: ``model_version`` (key), ``algorithm``, ``sha256`` of the model file,
  ``action_names`` (JSON list), ``registered_at``, and since version 3 ``world``
  (``strategy``, ``item`` or ``slate``), ``feature_names`` (JSON list; NULL: the 16
  :data:`~rec_env.features.FEATURE_NAMES`), ``action_channels`` (JSON list, the channel of each
  action), ``product_ids`` (JSON list, the product table's ids in index order; NULL in the
  strategy world) and ``slate_size`` (products per message of the slate world, else NULL).
* ``requests``: ``request_id`` (key), ``request_key`` (unique), ``position_offset``,
  ``created_at`` (Unix seconds), ``model_version``, ``policy_updates`` (rewards an online
  policy had learned from), ``n`` (customers), ``features`` (``(n, F)`` little-endian float64
  in the model's ``feature_names`` order), ``allowed`` and ``probabilities``, then the
  decisions of *columnar* requests (version 3; NULL for the others): ``actions`` (``(n,)``
  little-endian int32), ``propensities`` (``(n,)`` float64), ``customer_ids`` (JSON list, or
  NULL if the request gave none), ``slates`` (``(n, K)`` int32 product indices, -1 where a
  position is empty) and ``slate_probabilities`` (``(n, K)`` float64, NaN where empty).

  Requests of strategy models are *row* requests: ``allowed`` is ``(n, A)`` uint8 (1 where the
  action was allowed: consent and not excluded), ``probabilities`` ``(n, A)`` float64 (the
  probabilities the served action was drawn from), and each decision is a row of
  ``decisions``. Requests of item and slate models are columnar: with 601 actions and up to
  10,000 customers a call, a row per decision and a probability per action would cost more than
  the decision itself. Their ``allowed`` is one ``(A,)`` uint8 row, the actions the request
  allowed before consent (in stock, not excluded); a customer's mask is that row and consent on
  the action's channel, read from its ``features``. ``probabilities`` is empty: the served
  action's propensity is in ``propensities``, and a slate's probability of each position in
  ``slate_probabilities`` (:mod:`rec_env.serve.slates`).
* ``decisions``: the decisions of row requests: ``request_id`` and ``position`` (key),
  ``event_id``, ``customer_id``, ``action`` (index), ``propensity`` (its probability), and
  since version 5 ``holdout`` (1 for a held-out customer, else NULL or 0) and
  ``policy_action`` (apprentice mode: the action the model would have taken while the served
  ``action`` is the caller's baseline; NULL or -1 otherwise). Columnar requests keep these
  two as the blobs ``requests.holdout`` (``(n,)`` uint8) and ``requests.policy_actions``
  (``(n,)`` int32), NULL when the request had none.
* ``rewards``: ``seq`` (key: 1, 2, … in the order rewards were recorded; rows are never deleted,
  so it only grows), ``event_id`` (unique), the decision's ``request_id`` and ``position``,
  ``reward``, ``received_at``, and since version 4 ``defaulted`` (1 for the default reward
  recorded when the event's reward window closed, :meth:`~rec_env.serve.decision_log.
  DecisionLog.close_windows`; NULL for a posted reward).
* ``request_terms`` (version 5): the reward contract of a request that has one:
  ``request_id`` (key), its ``created_at`` and ``n``, ``window_seconds`` (its attribution
  window, NULL: none, a posted reward is final at once), ``require_activation`` (1: only its
  activated decisions get rewards) and ``closed`` (1 once every decision that can close has its
  final reward; an activation reopens it). A request without a row has no window and needs no
  activation, as in version 4.
* ``activations`` (version 5): ``request_id`` and ``position`` (key), ``event_id`` and
  ``activated_at`` (Unix seconds; the first activation stands).
* ``reward_parts`` (version 5): the rewards posted inside a window, which add up:
  ``event_id`` and ``part_id`` (key; ``''`` for a reward posted without one), the decision's
  ``request_id`` and ``position``, ``reward`` and ``received_at``. When the window closes
  their sum becomes the event's row of ``rewards``.
* ``late_rewards`` (version 5): rewards posted after their event's window closed, kept for
  the record and never learned from: ``event_id`` and ``part_id`` (key), ``request_id``,
  ``position``, ``reward``, ``received_at``.
* ``sampler_draws``: ``seed`` (decimal text) and ``draws``, the uniform numbers the action
  sampler seeded with it has drawn for logged decisions.
* ``log_identity``: one row, ``log_id``, a random hex id drawn when the log was created; an
  online learner's snapshots record it, so they are only ever replayed on their own log.

Version 1 had no ``rewards.seq``, ``request_id``, ``position``, ``sampler_draws`` nor
``log_identity``, version 2 none of the columns added in version 3, version 3 no
``rewards.defaulted`` and version 4 none of the tables and columns of version 5. Opening an
older log for writing upgrades it in one transaction: version 1's rewards are numbered in the
order they were recorded, and the columns of versions 3 to 5 are added (its models are strategy
models, its requests row requests without a window, its rewards all posted).
A log of a newer version is refused.

On PostgreSQL (:mod:`rec_env.datasets.decision_log_backend`) the same tables are created with
``BYTEA`` blobs, ``DOUBLE PRECISION`` reals, ``BIGINT`` integers and byte-order (``"C"``)
collation of text, so event id ranges compare as in SQLite; their ``REFERENCES`` are left out,
as SQLite leaves them unenforced. ``requests.request_id`` is an
identity column. ``rewards.seq`` is set by a trigger to one more than the largest, as SQLite
numbers an ``INTEGER PRIMARY KEY``, unless the insert gives it (a batch of rewards numbers its
rows from the largest itself, :func:`rec_env.serve.reward_batches.insert_final`): writers hold
the log's advisory lock, so seqs have no gaps and become visible in order, which is what lets
every replica replay them in order. A PostgreSQL log starts at version 5; there is nothing
older to upgrade.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from pathlib import Path

from rec_env.datasets.decision_log_backend import (
    LogConnection,
    connect_postgres,
    connect_sqlite,
    database_errors,
    describe,
    postgres_url,
)
from rec_env.datasets.decision_log_tables import SCHEMA_VERSION
from rec_env.serve.event_ids import POSITIONS, parse_event_id

__all__ = ["SCHEMA_VERSION", "open_decision_log"]

_REWARDS = """
CREATE TABLE IF NOT EXISTS rewards (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    request_id INTEGER NOT NULL REFERENCES requests (request_id),
    position INTEGER NOT NULL,
    reward REAL NOT NULL,
    received_at REAL NOT NULL,
    defaulted INTEGER
)"""

_PARTS = """
CREATE TABLE IF NOT EXISTS {table} (
    event_id TEXT NOT NULL,
    part_id TEXT NOT NULL,
    request_id INTEGER NOT NULL REFERENCES requests (request_id),
    position INTEGER NOT NULL,
    reward REAL NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (event_id, part_id)
) WITHOUT ROWID"""
"""Parts of rewards inside their windows, and (the same columns) parts that came too late."""

_TABLES = (
    """
CREATE TABLE IF NOT EXISTS models (
    model_version TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    action_names TEXT NOT NULL,
    registered_at REAL NOT NULL,
    world TEXT NOT NULL DEFAULT 'strategy',
    feature_names TEXT,
    action_channels TEXT,
    product_ids TEXT,
    slate_size INTEGER
)""",
    """
CREATE TABLE IF NOT EXISTS requests (
    request_id INTEGER PRIMARY KEY,
    request_key TEXT NOT NULL UNIQUE,
    position_offset INTEGER NOT NULL,
    created_at REAL NOT NULL,
    model_version TEXT NOT NULL REFERENCES models (model_version),
    policy_updates INTEGER NOT NULL,
    n INTEGER NOT NULL,
    features BLOB NOT NULL,
    allowed BLOB NOT NULL,
    probabilities BLOB NOT NULL,
    actions BLOB,
    propensities BLOB,
    customer_ids TEXT,
    slates BLOB,
    slate_probabilities BLOB,
    holdout BLOB,
    policy_actions BLOB
)""",
    """
CREATE TABLE IF NOT EXISTS decisions (
    request_id INTEGER NOT NULL REFERENCES requests (request_id),
    position INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    customer_id TEXT,
    action INTEGER NOT NULL,
    propensity REAL NOT NULL,
    holdout INTEGER,
    policy_action INTEGER,
    PRIMARY KEY (request_id, position)
) WITHOUT ROWID""",
    _REWARDS,
    """
CREATE TABLE IF NOT EXISTS log_identity (
    log_id TEXT NOT NULL
)""",
    """
CREATE TABLE IF NOT EXISTS sampler_draws (
    seed TEXT PRIMARY KEY,
    draws INTEGER NOT NULL
) WITHOUT ROWID""",
    """
CREATE TABLE IF NOT EXISTS request_terms (
    request_id INTEGER PRIMARY KEY REFERENCES requests (request_id),
    created_at REAL NOT NULL,
    n INTEGER NOT NULL,
    window_seconds REAL,
    require_activation INTEGER NOT NULL DEFAULT 0,
    closed INTEGER NOT NULL DEFAULT 0
)""",
    """
CREATE TABLE IF NOT EXISTS activations (
    request_id INTEGER NOT NULL REFERENCES requests (request_id),
    position INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    activated_at REAL NOT NULL,
    PRIMARY KEY (request_id, position)
) WITHOUT ROWID""",
    _PARTS.format(table="reward_parts"),
    _PARTS.format(table="late_rewards"),
    # what a window close reads per request: its parts and its open windows (its final
    # rewards are found by event id: a request's ids share their prefix)
    "CREATE INDEX IF NOT EXISTS reward_parts_by_decision ON reward_parts (request_id, position)",
    "CREATE INDEX IF NOT EXISTS open_windows ON request_terms (request_id) "
    "WHERE closed = 0 AND window_seconds IS NOT NULL",
)

_MIGRATION_CHUNK = 10_000

_ADDED_COLUMNS = {
    "models": (
        ("world", "TEXT NOT NULL DEFAULT 'strategy'"),
        ("feature_names", "TEXT"),
        ("action_channels", "TEXT"),
        ("product_ids", "TEXT"),
        ("slate_size", "INTEGER"),
    ),
    "requests": (
        ("actions", "BLOB"),
        ("propensities", "BLOB"),
        ("customer_ids", "TEXT"),
        ("slates", "BLOB"),
        ("slate_probabilities", "BLOB"),
        ("holdout", "BLOB"),
        ("policy_actions", "BLOB"),
    ),
    "decisions": (("holdout", "INTEGER"), ("policy_action", "INTEGER")),
    "rewards": (("defaulted", "INTEGER"),),
}
"""The columns versions 3 to 5 added, by table: an older log gets them (NULL: its old
meaning)."""


_POSTGRES_TYPES = (
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
    (re.compile(r"\s*WITHOUT ROWID"), ""),
    # SQLite leaves foreign keys unenforced (PRAGMA foreign_keys is off); so does the log here,
    # which spares PostgreSQL a row lock and a lookup per inserted row
    (re.compile(r" REFERENCES \w+ \(\w+\)"), ""),
)
_POSTGRES_KEYS = {
    "request_id BIGINT PRIMARY KEY,\n    request_key": (
        "request_id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n    request_key"
    ),
}
_POSTGRES_EXTRA = (
    "CREATE TABLE IF NOT EXISTS log_schema (version BIGINT NOT NULL)",
    # seq as SQLite numbers a rowid: one more than the largest (writers take turns); a batch
    # that numbers its rows itself under the same lock skips the per-row call
    "CREATE OR REPLACE FUNCTION recenv_reward_seq() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN NEW.seq := (SELECT COALESCE(MAX(seq), 0) + 1 FROM rewards); RETURN NEW; END $$",
    "CREATE OR REPLACE TRIGGER rewards_seq BEFORE INSERT ON rewards "
    "FOR EACH ROW WHEN (NEW.seq IS NULL) EXECUTE FUNCTION recenv_reward_seq()",
)


def postgres_statement(statement: str) -> str:
    """The PostgreSQL form of one of the tables' ``CREATE`` statements."""
    for pattern, replacement in _POSTGRES_TYPES:
        statement = pattern.sub(replacement, statement)
    for sqlite_key, postgres_key in _POSTGRES_KEYS.items():
        statement = statement.replace(sqlite_key, postgres_key)
    return statement


def open_decision_log(db: str | Path, timeout: float) -> LogConnection:
    """Connect to the log (autocommit), with its tables at :data:`SCHEMA_VERSION`.

    A SQLite file is opened in WAL mode; a ``postgresql://`` URL names a database whose
    tables are created if missing.

    Args:
        db: The SQLite file (created with its tables if missing) or a PostgreSQL URL.
        timeout: Seconds to wait for a lock held by another connection.

    Raises:
        ValueError: If the database is not a decision log of this or an older version, or
            cannot be reached.
    """
    url = postgres_url(db)
    path = Path(db)
    connection = (
        connect_postgres(url, timeout) if url is not None else connect_sqlite(path, timeout)
    )
    try:
        if url is None:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        # the version is read under the write lock, so two processes cannot both upgrade
        connection.execute("BEGIN IMMEDIATE")
        try:
            if url is None:
                _create_or_upgrade(connection, path)
            else:
                _create_postgres(connection, url)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    except database_errors() as exc:
        connection.close()
        raise ValueError(f"{describe(db)}: cannot open the decision log ({exc})") from None
    except BaseException:
        connection.close()
        raise
    return connection


def _create_postgres(connection: LogConnection, url: str) -> None:
    """Create the tables of a PostgreSQL log, or check their version (in a transaction)."""
    tables = connection.tables()
    if "rewards" in tables:
        row = (
            connection.execute("SELECT MAX(version) FROM log_schema").fetchone()
            if "log_schema" in tables
            else None
        )
        version = None if row is None else row[0]
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"{describe(url)}: not a decision log of this recenv version "
                f"(schema {version}, expected {SCHEMA_VERSION}); use another --db"
            )
    for statement in (*_TABLES[:3], *_POSTGRES_EXTRA[:1], *_TABLES[3:]):
        connection.execute(postgres_statement(statement))
    for statement in _POSTGRES_EXTRA[1:]:
        connection.execute(statement)
    _identify(connection)
    connection.execute(
        "INSERT INTO log_schema SELECT ? WHERE NOT EXISTS (SELECT 1 FROM log_schema)",
        (SCHEMA_VERSION,),
    )


def _identify(connection: LogConnection) -> None:
    """Give a new log its random identity (an online learner's snapshots record it)."""
    connection.execute(
        "INSERT INTO log_identity SELECT ? WHERE NOT EXISTS (SELECT 1 FROM log_identity)",
        (uuid.uuid4().hex,),
    )


def _create_or_upgrade(connection: LogConnection, path: Path) -> None:
    """Create missing tables, upgrade versions 1 to 4, refuse anything else (in a transaction)."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    tables = connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
    if tables and version == 1:
        _upgrade_rewards_from_version_1(connection)
    if tables and version in (1, 2, 3, 4):
        _add_columns(connection)
    elif tables and version != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: not a decision log of this recenv version "
            f"(schema {version}, expected {SCHEMA_VERSION}); use another --db"
        )
    for statement in _TABLES:
        connection.execute(statement)
    # a random identity, so an online learner's snapshots are only ever replayed on their log
    _identify(connection)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _upgrade_rewards_from_version_1(connection: LogConnection) -> None:
    """Rebuild ``rewards`` with ``seq``, ``request_id`` and ``position``, in rowid order."""
    connection.execute("ALTER TABLE rewards RENAME TO rewards_version_1")
    connection.execute(_REWARDS)
    after = 0
    while True:
        rows = connection.execute(
            "SELECT rowid, event_id, reward, received_at FROM rewards_version_1 "
            "WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, _MIGRATION_CHUNK),
        ).fetchall()
        if not rows:
            break
        upgraded = []
        for _, event_id, reward, received_at in rows:
            request_id, position = _locate(connection, event_id)
            upgraded.append((event_id, request_id, position, reward, received_at))
        connection.executemany(
            "INSERT INTO rewards (event_id, request_id, position, reward, received_at) "
            "VALUES (?, ?, ?, ?, ?)",
            upgraded,
        )
        after = rows[-1][0]
    connection.execute("DROP TABLE rewards_version_1")


def _add_columns(connection: LogConnection) -> None:
    """Add the columns of versions 3 to 5 that a table lacks (NULL or 'strategy' in old rows)."""
    for table, columns in _ADDED_COLUMNS.items():
        present = connection.columns(table)
        if not present:  # a table the log lacks is created whole
            continue
        for name, declaration in columns:
            if name not in present:
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")


def _locate(connection: LogConnection, event_id: str) -> tuple[int, int]:
    """``(request_id, position)`` of a logged decision, for the upgrade."""
    parsed = parse_event_id(event_id)
    request = None
    if parsed is not None:
        request = connection.execute(
            "SELECT request_id, position_offset FROM requests WHERE request_key = ?",
            (parsed[0],),
        ).fetchone()
    if parsed is None or request is None:
        raise sqlite3.DatabaseError(f"a reward names no logged decision ({event_id})")
    return request[0], (parsed[1] - request[1]) % POSITIONS
