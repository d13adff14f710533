"""Issue 14: how fast ``recenv rewards upload`` records rewards in the decision log.

Logs ``N`` strategy decisions (batches of 10,000, as ``recenv serve`` and ``recenv score``
do), writes a ``results.csv`` (and ``.parquet``) of ``event_id,reward`` for a share of them
(the buyers) in a random order, and measures, in one process:

* **the CLI path:** what ``recenv rewards upload results.csv --db decisions.db`` does after
  start-up: read the file, open the log, check every event and record every reward in one
  transaction (:func:`rec_env.cli.rewards.read_rewards`,
  :meth:`~rec_env.serve.decision_log.DecisionLog.record_rewards`);
* **its floor:** the same ``(event_id, reward)`` rows written into a bare table with a unique
  ``event_id``, in one transaction, with no file to read and no check: on SQLite an
  ``executemany`` into a fresh file with the same settings (WAL, ``synchronous=NORMAL``), on
  PostgreSQL a ``COPY`` (binary) into a plain table of the same database;
* **a second upload of the same file:** every item a duplicate (the slower path that looks up
  each reward already recorded);
* **closing the windows:** ``recenv rewards close``, the default reward for every other
  decision (with ``--window-days``, every decision: the sum of its parts or the default).

With ``--window-days`` the decisions are logged with that attribution window, so the rewards
are recorded as parts of open windows (the reward contract's path) instead of final at once.

With ``--db postgresql://…`` the log lives in that database, in a schema of its own created
for the run and dropped after it (the user needs the ``CREATE`` privilege on the database).

The goal is 50,000 rewards/s for the CLI path. A few seconds::

    OMP_NUM_THREADS=1 python benchmarks/rewards.py [--decisions 500000] [--share 0.5]
    OMP_NUM_THREADS=1 python benchmarks/rewards.py --db postgresql://user:pass@host/db
    OMP_NUM_THREADS=1 python benchmarks/rewards.py --window-days 7 [--db …]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq

from rec_env.catalog import ActionTable, load_catalog
from rec_env.cli.rewards import read_rewards
from rec_env.features import FEATURE_NAMES
from rec_env.serve.decision_log import DecisionLog
from rec_env.serve.decision_records import RewardTerms
from rec_env.serve.rewards import DAY_SECONDS as DAY
from rec_env.serve.rewards import close_windows

BATCH = 10_000


def build_log(
    db: Path | str, n: int, rng: np.random.Generator, window_days: float | None = None
) -> list[str]:
    """A decision log of ``n`` decisions (with a reward window, if given); their event ids."""
    table = ActionTable.from_catalog(load_catalog("strategy"))
    a = table.n_actions
    window = None if window_days is None else window_days * DAY
    log = DecisionLog(db, terms=RewardTerms(window_seconds=window))
    log.register_model("bench", "linucb", "0" * 64, table.names)
    ids: list[str] = []
    try:
        for start in range(0, n, BATCH):
            k = min(BATCH, n - start)
            probabilities = np.full((k, a), 1.0 / a)
            ids += log.log_decisions(
                "bench", 0, rng.random((k, len(FEATURE_NAMES))), np.ones((k, a), dtype=bool),
                probabilities, rng.integers(0, a, k),
            )  # fmt: skip
    finally:
        log.close()
    return ids


def sqlite_floor(rows: list[tuple[str, float]], directory: Path) -> float:
    """Seconds to insert ``rows`` into a bare SQLite table, in one transaction."""
    connection = sqlite3.connect(directory / "floor.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE rewards (event_id TEXT NOT NULL UNIQUE, reward REAL)")
    started = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany("INSERT INTO rewards VALUES (?, ?)", rows)
    connection.execute("COMMIT")
    seconds = time.perf_counter() - started
    connection.close()
    return seconds


def postgres_floor(rows: list[tuple[str, float]], url: str) -> float:
    """Seconds to ``COPY`` ``rows`` into a bare PostgreSQL table, in one transaction."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            'CREATE TABLE floor (event_id TEXT COLLATE "C" NOT NULL UNIQUE, '
            "reward DOUBLE PRECISION)"
        )
        started = time.perf_counter()
        statement = "COPY floor (event_id, reward) FROM STDIN (FORMAT BINARY)"
        with connection.transaction(), connection.cursor().copy(statement) as copy:
            copy.set_types(["text", "float8"])
            for row in rows:
                copy.write_row(row)
        return time.perf_counter() - started


def with_schema(url: str, schema: str) -> str:
    """``url`` with ``schema`` first on its search path."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A URL of ``url``'s database whose tables go to a new schema, dropped on exit."""
    import psycopg

    schema = f"recenv_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_schema(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def fresh_log(url: str | None, directory: Path, name: str) -> Path | str:
    """The log of :func:`build_log` without any reward: a copy of its file, or its tables."""
    if url is None:
        db = directory / f"{name}.db"
        db.write_bytes((directory / "decisions.db").read_bytes())
        return db
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("TRUNCATE rewards, reward_parts, late_rewards")
    return url


def upload(results: Path, db: Path | str) -> tuple[float, int]:
    """Seconds of the CLI path of ``recenv rewards upload``, and the rewards recorded."""
    started = time.perf_counter()
    event_ids, rewards = read_rewards(results)
    log = DecisionLog(db)
    try:
        batch = log.record_rewards(event_ids, rewards)
    finally:
        log.close()
    return time.perf_counter() - started, batch.recorded


def measure(url: str | None, directory: Path, args: argparse.Namespace) -> None:
    """Build the log (in ``url``, else a SQLite file), then measure the floor and the uploads."""
    rng = np.random.default_rng(args.seed)
    db = directory / "decisions.db" if url is None else url
    ids = build_log(db, args.decisions, rng, args.window_days)
    picked = rng.permutation(len(ids))[: int(args.share * len(ids))]
    event_ids = [ids[i] for i in picked]
    rewards = np.round(rng.gamma(4.0, 7.5, picked.size), 2)
    table = pa.table({"event_id": event_ids, "reward": rewards})
    pv.write_csv(table, directory / "results.csv")
    pq.write_table(table, directory / "results.parquet")
    n = len(event_ids)
    rows = list(zip(event_ids, rewards.tolist(), strict=True))
    if url is None:
        backend, floor, base_seconds = "SQLite", "bare executemany", sqlite_floor(rows, directory)
    else:
        backend, floor, base_seconds = "PostgreSQL", "bare COPY", postgres_floor(rows, url)
    windows = "no window" if args.window_days is None else f"{args.window_days:g}-day windows"
    print(f"{n:,} rewards of {len(ids):,} logged decisions ({backend}, {windows})")
    print(f"floor ({floor}):{' ' * (20 - len(floor))}{n / base_seconds:12,.0f} rewards/s")
    for name in ("results.csv", "results.parquet"):
        db = fresh_log(url, directory, name)
        seconds, recorded = upload(directory / name, db)
        assert recorded == n
        print(
            f"upload {name:<16}      {n / seconds:12,.0f} rewards/s  "
            f"({base_seconds / seconds:.2f} x the floor)"
        )
    seconds, recorded = upload(directory / "results.csv", db)
    assert recorded == 0
    print(f"upload results.csv again:    {n / seconds:12,.0f} rewards/s (all duplicates)")
    log = DecisionLog(db)
    try:
        started = time.perf_counter()
        closed = close_windows(log, 1, as_of=time.time() + ((args.window_days or 1) + 1) * DAY)
        seconds = time.perf_counter() - started
    finally:
        log.close()
    print(f"close:                       {closed / seconds:12,.0f} decisions/s ({closed:,})")


def main() -> None:
    """Measure and print the CLI path, its floor and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=500_000)
    parser.add_argument("--share", type=float, default=0.5, help="Share of decisions rewarded.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--db",
        default=None,
        help="A postgresql:// URL to measure a PostgreSQL log in (default: SQLite files).",
    )
    parser.add_argument(
        "--window-days",
        type=float,
        default=None,
        help="Log the decisions with this reward window: rewards are then parts of open windows.",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.db is None:
            measure(None, Path(tmp), args)
            return
        with postgres_schema(args.db) as url:
            measure(url, Path(tmp), args)


if __name__ == "__main__":
    main()
