"""Issue 14: how fast ``recenv rewards upload`` records rewards in the decision log.

Logs ``N`` strategy decisions (batches of 10,000, as ``recenv serve`` and ``recenv score``
do), writes a ``results.csv`` (and ``.parquet``) of ``event_id,reward`` for a share of them
(the buyers) in a random order, and measures, in one process:

* **the CLI path:** what ``recenv rewards upload results.csv --db decisions.db`` does after
  start-up: read the file, open the log, check every event and record every reward in one
  transaction (:func:`rec_env.cli.rewards.read_rewards`,
  :meth:`~rec_env.serve.decision_log.DecisionLog.record_rewards`);
* **its floor:** plain SQLite ``executemany`` of the same ``(event_id, reward)`` rows into a
  bare table with a unique ``event_id`` in a fresh file with the same settings (WAL,
  ``synchronous=NORMAL``), in one transaction: no file to read, no check;
* **a second upload of the same file:** every item a duplicate (the slower path that looks up
  each reward already recorded);
* **closing the windows:** ``recenv rewards close``, the default reward for every other
  decision.

The goal is 50,000 rewards/s for the CLI path. A few seconds::

    OMP_NUM_THREADS=1 python benchmarks/rewards.py [--decisions 500000] [--share 0.5]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq

from rec_env.catalog import ActionTable, load_catalog
from rec_env.cli.rewards import read_rewards
from rec_env.features import FEATURE_NAMES
from rec_env.serve.decision_log import DecisionLog
from rec_env.serve.rewards import close_windows

BATCH = 10_000


def build_log(path: Path, n: int, rng: np.random.Generator) -> list[str]:
    """A decision log of ``n`` decisions; their event ids."""
    table = ActionTable.from_catalog(load_catalog("strategy"))
    a = table.n_actions
    log = DecisionLog(path)
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


def floor(rows: list[tuple[str, float]], directory: Path) -> float:
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


def upload(results: Path, db: Path) -> tuple[float, int]:
    """Seconds of the CLI path of ``recenv rewards upload``, and the rewards recorded."""
    started = time.perf_counter()
    event_ids, rewards = read_rewards(results)
    log = DecisionLog(db)
    try:
        batch = log.record_rewards(event_ids, rewards)
    finally:
        log.close()
    return time.perf_counter() - started, batch.recorded


def main() -> None:
    """Measure and print the CLI path, its floor and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=500_000)
    parser.add_argument("--share", type=float, default=0.5, help="Share of decisions rewarded.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        ids = build_log(directory / "decisions.db", args.decisions, rng)
        picked = rng.permutation(len(ids))[: int(args.share * len(ids))]
        event_ids = [ids[i] for i in picked]
        rewards = np.round(rng.gamma(4.0, 7.5, picked.size), 2)
        table = pa.table({"event_id": event_ids, "reward": rewards})
        pv.write_csv(table, directory / "results.csv")
        pq.write_table(table, directory / "results.parquet")
        n = len(event_ids)
        base_seconds = floor(list(zip(event_ids, rewards.tolist(), strict=True)), directory)
        print(f"{n:,} rewards of {len(ids):,} logged decisions")
        print(f"floor (bare executemany):    {n / base_seconds:12,.0f} rewards/s")
        for name in ("results.csv", "results.parquet"):
            db = directory / f"{name}.db"
            db.write_bytes((directory / "decisions.db").read_bytes())
            seconds, recorded = upload(directory / name, db)
            assert recorded == n
            print(
                f"upload {name:<16}      {n / seconds:12,.0f} rewards/s  "
                f"({base_seconds / seconds:.2f} x the floor)"
            )
        seconds, recorded = upload(directory / "results.csv", directory / "results.csv.db")
        assert recorded == 0
        print(f"upload results.csv again:    {n / seconds:12,.0f} rewards/s (all duplicates)")
        log = DecisionLog(directory / "results.csv.db")
        try:
            started = time.perf_counter()
            closed = close_windows(log, 1, as_of=time.time() + 2 * 86_400)
            seconds = time.perf_counter() - started
        finally:
            log.close()
        print(f"close (defaults):            {closed / seconds:12,.0f} decisions/s ({closed:,})")


if __name__ == "__main__":
    main()
