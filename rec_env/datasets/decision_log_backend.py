"""Where the decision log lives: a SQLite file, or a PostgreSQL database shared by replicas.

The decision log's SQL is written once, for SQLite (``?`` parameters, ``:name`` parameters,
``BEGIN IMMEDIATE``), and :class:`LogConnection` runs it on either backend. On PostgreSQL it
translates each statement once (cached):

* ``?`` becomes ``%s`` and ``:name`` becomes ``%(name)s`` (psycopg's placeholders);
* ``BEGIN IMMEDIATE`` (SQLite's "take the write lock now") becomes ``BEGIN`` and a
  transaction-scoped advisory lock (:data:`WRITER_LOCK_KEY`): writers of every replica take
  turns, exactly as SQLite's single writer does, so the log's check-then-insert transactions
  stay correct and rewards are numbered (``seq``) in the order they become visible;
* ``INSERT OR IGNORE`` becomes ``INSERT … ON CONFLICT DO NOTHING``;
* an insert that lets SQLite pick the row id (``INSERT INTO t (id, …) VALUES (NULL, …)``)
  leaves the column out and returns it (``RETURNING id``), read as the cursor's
  ``lastrowid``.

Blobs (``BLOB`` in SQLite, ``BYTEA`` in PostgreSQL) hold the same little-endian arrays;
:meth:`LogConnection.read_bytes` reads a slice of one without loading the rest. psycopg 3
(``pip install "recenv[postgres]"``) is imported only when a ``postgresql://`` URL is opened.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DATABASE_ERRORS",
    "STAGED_TYPES",
    "WRITER_LOCK_KEY",
    "LogConnection",
    "connect_postgres",
    "connect_sqlite",
    "database_errors",
    "describe",
    "postgres_url",
]

WRITER_LOCK_KEY = 0x7265_6365_6E76
"""The advisory lock (``pg_advisory_xact_lock``) every write transaction holds: ``"recenv"``."""

STAGED_TYPES = {
    "int8": ("INTEGER", "BIGINT"),
    "float8": ("REAL", "DOUBLE PRECISION"),
    "text": ("TEXT", 'TEXT COLLATE "C"'),
}
"""Column types of :meth:`LogConnection.stage` and :meth:`LogConnection.insert_rows`: the
PostgreSQL type a ``COPY`` writes, and the column's type in SQLite and in PostgreSQL (where text
compares byte by byte, as in SQLite)."""

DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)
"""Errors of the SQLite backend (:func:`database_errors` adds psycopg's once it is loaded)."""

_SCHEMES = ("postgresql:", "postgres:")
_CHANGES = ("INSERT", "UPDATE", "DELETE")
_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)\b")
_NULL_KEY_INSERT = re.compile(
    r"^INSERT INTO (\w+) \((\w+), (.*?)\) VALUES \(NULL, (.*)\)$", re.DOTALL
)


def postgres_url(db: str | Path) -> str | None:
    """The PostgreSQL URL ``db`` names, or None if it names a file.

    A URL that went through :class:`pathlib.Path` (a CLI option typed as a path) has lost one
    slash of ``postgresql://``; it is put back.
    """
    text = str(db)
    scheme = next((s for s in _SCHEMES if text.lower().startswith(s)), None)
    if scheme is None:
        return None
    rest = text[len(scheme) :]
    if not rest.startswith("//"):
        rest = "/" + rest
    return f"postgresql:{rest}"


def describe(db: str | Path) -> str:
    """``db`` for messages: a file path, or the URL without its password."""
    url = postgres_url(db)
    if url is None:
        return str(db)
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", url)


def database_errors() -> tuple[type[Exception], ...]:
    """Errors of every loaded backend (psycopg's only if it was imported)."""
    import sys

    psycopg = sys.modules.get("psycopg")
    return DATABASE_ERRORS if psycopg is None else (*DATABASE_ERRORS, psycopg.Error)


class _Cursor:
    """A psycopg cursor with SQLite's ``lastrowid`` (from ``RETURNING``)."""

    def __init__(self, cursor: Any, lastrowid: int | None) -> None:
        self._cursor = cursor
        self.lastrowid = lastrowid
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def __iter__(self) -> Any:
        return iter(self._cursor)


class LogConnection:
    """One connection to the decision log, on SQLite or PostgreSQL, speaking SQLite's SQL.

    Autocommit: a transaction is an explicit ``BEGIN IMMEDIATE`` … ``COMMIT``. The caller
    serialises its threads (the decision log holds its lock around every use).

    Args:
        raw: A ``sqlite3.Connection`` (``isolation_level=None``) or a ``psycopg.Connection``
            (``autocommit=True``).
        dialect: ``"sqlite"`` or ``"postgresql"``.
    """

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect
        self.total_changes = 0
        """Rows inserted, updated or deleted through this connection (as SQLite counts)."""
        self._translated: dict[str, tuple[str, str | None]] = {}

    @property
    def postgres(self) -> bool:
        """True on PostgreSQL."""
        return self.dialect == "postgresql"

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
        """Run one statement; returns a cursor (``fetchone``, ``fetchall``, iteration)."""
        if not self.postgres:
            cursor = self.raw.execute(sql, params)
            self.total_changes = self.raw.total_changes
            return cursor
        if sql == "BEGIN IMMEDIATE":
            self.raw.execute("BEGIN")
            return self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK_KEY,))
        statement, returning = self._translate(sql)
        cursor = self.raw.execute(statement, params if params else None)
        if statement.lstrip().upper().startswith(_CHANGES) and cursor.rowcount > 0:
            self.total_changes += cursor.rowcount
        if returning is None:
            return cursor
        row = cursor.fetchone()
        return _Cursor(cursor, None if row is None else int(row[0]))

    def atomic(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """Run one writing statement as its own transaction; its rows.

        SQLite's autocommit statement already is one; on PostgreSQL it is wrapped in ``BEGIN
        IMMEDIATE`` (the writers' lock), so it is numbered in turn with the other writers.
        """
        if not self.postgres:
            return self.execute(sql, params).fetchall()
        self.execute("BEGIN IMMEDIATE")
        try:
            rows = self.execute(sql, params).fetchall()
            self.raw.execute("COMMIT")
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        return rows

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> int:
        """Run one statement per row; returns the rows it inserted, updated or deleted."""
        if not self.postgres:
            cursor = self.raw.executemany(sql, rows)
            self.total_changes = self.raw.total_changes
            return max(cursor.rowcount, 0)
        batch = list(rows)
        if not batch:
            return 0
        statement, _ = self._translate(sql)
        with self.raw.cursor() as cursor:
            cursor.executemany(statement, batch)  # pipelined: no round trip per row
            changed = max(cursor.rowcount, 0)
        self.total_changes += changed
        return changed

    def insert_rows(
        self, table: str, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Append ``rows`` to ``table``: one binary ``COPY`` on PostgreSQL.

        ``COPY`` streams the rows in one statement, with none of the per-row parsing, binding
        and acknowledging of an ``executemany`` (what SQLite, in process, runs). The rows must
        not conflict with a key: there is no ``ON CONFLICT`` clause.

        Args:
            table: The table.
            columns: ``(name, type)`` of the columns the rows fill, the type one of
                :data:`STAGED_TYPES` (the binary format is written without asking the server).
            rows: The rows, one value per column.
        """
        names = ", ".join(name for name, _ in columns)
        if not self.postgres:
            marks = ", ".join("?" * len(columns))
            self.raw.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
            self.total_changes = self.raw.total_changes
            return
        statement = f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)"
        with self.raw.cursor() as cursor:
            with cursor.copy(statement) as copy:
                copy.set_types([kind for _, kind in columns])
                for row in rows:
                    copy.write_row(row)
            self.total_changes += max(cursor.rowcount, 0)

    def stage(
        self, table: str, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Make the temporary table ``table`` of this connection hold ``rows``, and only them.

        A batch staged in a table is checked or inserted with a few set-based statements
        (joins, ``INSERT … SELECT``) instead of one statement per row, which on PostgreSQL is a
        round trip each. The table is created on first use, private to the connection (on
        PostgreSQL emptied at every commit), and filled by :meth:`insert_rows`.

        Args:
            table: The temporary table's name.
            columns: ``(name, type)`` of its columns, the type one of :data:`STAGED_TYPES`.
            rows: The rows, one value per column.
        """
        dialect = 1 if self.postgres else 0
        ddl = ", ".join(f"{name} {STAGED_TYPES[kind][dialect]}" for name, kind in columns)
        end = " ON COMMIT DELETE ROWS" if self.postgres else ""
        self.raw.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} ({ddl}){end}")
        # SQLite keeps the last batch's rows; PostgreSQL's table is empty unless staged twice
        # in one transaction
        self.raw.execute(f"DELETE FROM {table}")
        self.insert_rows(table, columns, rows)

    def read_bytes(
        self, table: str, column: str, key: str, row: int, start: int, size: int
    ) -> bytes:
        """``size`` bytes from ``start`` of one blob (the row whose ``key`` is ``row``)."""
        if not self.postgres:
            with self.raw.blobopen(table, column, row, readonly=True) as blob:
                blob.seek(start)
                return bytes(blob.read(size))
        value = self.raw.execute(
            f"SELECT substring({column} FROM %s FOR %s) FROM {table} WHERE {key} = %s",
            (start + 1, size, row),
        ).fetchone()
        return bytes(value[0])

    def tables(self) -> set[str]:
        """The names of the tables."""
        if not self.postgres:
            return {row[0] for row in self.raw.execute("SELECT name FROM sqlite_master")}
        rows = self.raw.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {row[0] for row in rows}

    def columns(self, table: str) -> set[str]:
        """The names of ``table``'s columns (empty if there is no such table)."""
        if not self.postgres:
            return {row[1] for row in self.raw.execute(f"PRAGMA table_info({table})")}
        rows = self.raw.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = %s",
            (table,),
        )
        return {row[0] for row in rows}

    def close(self) -> None:
        """Close the connection."""
        self.raw.close()

    def _translate(self, sql: str) -> tuple[str, str | None]:
        """The PostgreSQL form of a statement, and the column it returns as ``lastrowid``."""
        cached = self._translated.get(sql)
        if cached is not None:
            return cached
        statement, returning = sql.replace("%", "%%"), None
        if statement.startswith("INSERT OR IGNORE INTO"):
            statement = statement.replace("INSERT OR IGNORE INTO", "INSERT INTO", 1)
            statement += " ON CONFLICT DO NOTHING"
        match = _NULL_KEY_INSERT.match(statement)
        if match is not None:
            table, returning, columns, values = match.groups()
            statement = f"INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING {returning}"
        statement = _NAMED.sub(r"%(\1)s", statement.replace("?", "%s"))
        self._translated[sql] = (statement, returning)
        return statement, returning


def connect_sqlite(path: Path, timeout: float, read_only: bool = False) -> LogConnection:
    """An autocommit connection to a SQLite file (``read_only``: opened ``mode=ro``)."""
    if read_only:
        raw = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    else:
        raw = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    return LogConnection(raw, "sqlite")


def connect_postgres(url: str, timeout: float, read_only: bool = False) -> LogConnection:
    """An autocommit connection to a PostgreSQL database.

    Raises:
        ValueError: If psycopg is not installed or the server cannot be reached.
    """
    try:
        import psycopg
    except ImportError:
        raise ValueError(
            f"{describe(url)}: a PostgreSQL decision log needs psycopg: "
            'pip install "recenv[postgres]"'
        ) from None
    try:
        raw = psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(timeout)))
        # waits for a row or advisory lock at most this long, as SQLite's busy timeout
        raw.execute(f"SET lock_timeout = {max(1, round(timeout * 1000))}")
        if read_only:
            raw.execute("SET default_transaction_read_only = on")
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{describe(url)}: cannot connect to the decision log ({message})"
        ) from None
    return LogConnection(raw, "postgresql")
