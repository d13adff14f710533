"""Summary tables of the decision log, kept up to date by an incremental catch-up.

A dashboard page must not scan a 10-million-decision log on every load. The log only ever
appends: ``requests.request_id`` and ``rewards.seq`` grow, and a row is visible only once every
row before it is (one writer at a time, on SQLite and, through the advisory lock, on
PostgreSQL). So the summaries fold in the rows after two stored watermarks, a chunk at a time,
and a page reads a few hundred summary rows by an indexed hour range.

The tables are described in :mod:`rec_env.serve.dashboard.tables`.

The catch-up (:meth:`SummaryStore.catch_up`) aggregates a chunk with ``GROUP BY`` (row requests)
or numpy (columnar requests, whose decisions are blobs) *outside* any write transaction, then
upserts the few aggregate rows and moves the watermark in one short transaction that first
checks the watermark has not moved: two processes catching up at once never count a row twice.
It never runs inside the log's own decision or reward transactions.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.datasets.decision_log_backend import (
    LogConnection,
    connect_postgres,
    connect_sqlite,
    postgres_url,
)
from rec_env.serve.dashboard.tables import (
    DECISION_COLUMNS,
    HOUR_SECONDS,
    PROPENSITY_BINS,
    RECEIVED_COLUMNS,
    REWARD_COLUMNS,
    TABLES,
    Dialect,
    one_if,
    upsert_statement,
)
from rec_env.serve.decision_log_schema import postgres_statement
from rec_env.serve.decision_records import FLOAT, INT

__all__ = [
    "CHUNK_DECISIONS",
    "HOUR_SECONDS",
    "PROPENSITY_BINS",
    "CatchUp",
    "SummaryStore",
]

CHUNK_DECISIONS = 50_000
"""Decisions (or rewards) folded in per transaction of the catch-up."""
_CHUNK_REQUESTS = 50_000
_CACHE_KIB = 65_536
_MMAP_BYTES = 1 << 33

DecisionKey = tuple[int, str, int, int, int]
"""``(hour, model_version, action, holdout, propensity_bin)``."""
RewardKey = tuple[int, str, int, int, int]
"""``(hour, model_version, action, holdout, windowed)``."""


@dataclass(frozen=True)
class CatchUp:
    """What one :meth:`SummaryStore.catch_up` did.

    Args:
        decisions: Decisions folded in.
        rewards: Final rewards folded in.
        caught_up: True if no row was left after the watermarks when it returned.
        request_watermark: The last ``request_id`` folded in.
        reward_watermark: The last reward ``seq`` folded in.
    """

    decisions: int
    rewards: int
    caught_up: bool
    request_watermark: int
    reward_watermark: int


class SummaryStore:
    """The summary tables of one decision log, through a connection of their own.

    Args:
        db: The decision log: a SQLite file or a ``postgresql://`` URL.
        timeout: Seconds to wait for the log's write lock.
        chunk: Decisions (and rewards) folded in per transaction.

    Raises:
        ValueError: If the database cannot be reached.
    """

    def __init__(self, db: str | Path, timeout: float = 30.0, chunk: int = CHUNK_DECISIONS):
        url = postgres_url(db)
        self._connection: LogConnection = (
            connect_postgres(url, timeout) if url is not None else connect_sqlite(Path(db), timeout)
        )
        if not self._connection.postgres:
            # the catch-up looks decisions up by key across the log: a page cache of its own
            # and a memory map (SQLite clamps it to its build's limit) spare a read() per page
            self._connection.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            self._connection.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
        self._dialect = Dialect(self._connection.postgres)
        self._chunk = chunk
        self._lock = threading.Lock()
        self._action_names: dict[str, list[str]] = {}
        try:
            self._create()
        except BaseException:
            self._connection.close()
            raise

    @property
    def lock(self) -> threading.Lock:
        """Held around every use of the connection (the dashboard's queries take it too)."""
        return self._lock

    @property
    def connection(self) -> LogConnection:
        """The store's connection (hold :attr:`lock`)."""
        return self._connection

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._connection.close()

    def _create(self) -> None:
        """Create the summary tables and their watermarks if missing."""
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in TABLES:
                if connection.postgres:
                    statement = postgres_statement(statement)
                connection.execute(statement)
            for name in ("requests", "rewards"):
                connection.execute(
                    "INSERT INTO summary_watermarks VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
                    (name,),
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ catch-up
    def catch_up(self, budget_seconds: float | None = None) -> CatchUp:
        """Fold in the decisions and rewards logged after the watermarks, a chunk at a time.

        Args:
            budget_seconds: Stop after the chunk that passes this many seconds (None: go on
                until caught up). At least one chunk runs.

        Returns:
            What was folded in, and whether rows are left.
        """
        start = time.monotonic()
        folded = {"decisions": 0, "rewards": 0}
        folds = (("decisions", self._fold_decisions), ("rewards", self._fold_rewards))
        with self._lock:
            idle = 0  # consecutive folds that found nothing: at two, both kinds are done
            for kind, fold in itertools.cycle(folds):
                added = fold()
                folded[kind] += added
                idle = idle + 1 if added == 0 else 0
                out_of_time = (
                    budget_seconds is not None and time.monotonic() - start > budget_seconds
                )
                if idle == 2 or out_of_time:
                    break
            return CatchUp(
                folded["decisions"],
                folded["rewards"],
                idle == 2,
                self._watermark("requests"),
                self._watermark("rewards"),
            )

    def _watermark(self, name: str) -> int:
        row = self._connection.execute(
            "SELECT value FROM summary_watermarks WHERE name = ?", (name,)
        ).fetchone()
        return int(row[0])

    def _fold_decisions(self) -> int:
        """Fold in one chunk of requests after the watermark; the decisions folded in."""
        after = self._watermark("requests")
        requests = self._connection.execute(
            "SELECT request_id, n, actions IS NOT NULL FROM requests WHERE request_id > ? "
            "ORDER BY request_id LIMIT ?",
            (after, _CHUNK_REQUESTS),
        ).fetchall()
        if not requests:
            return 0
        sizes = np.cumsum([int(row[1]) for row in requests])
        last = max(1, int(np.searchsorted(sizes, self._chunk, side="right")))
        chunk = requests[:last]
        through = int(chunk[-1][0])
        rows = self._decision_rows(after, through)
        columnar = [int(row[0]) for row in chunk if row[2]]
        if columnar:
            rows = _merge(rows, self._columnar_decision_rows(columnar), len(DECISION_COLUMNS))
        self._upsert("requests", after, through, [("summary_decisions", DECISION_COLUMNS, rows)])
        return int(sizes[last - 1])

    def _decision_rows(self, after: int, through: int) -> list[tuple[Any, ...]]:
        """Aggregates of the row requests' decisions with ``after < request_id <= through``."""
        d = self._dialect
        return self._connection.execute(
            f"SELECT {d.hour('r.created_at')}, r.model_version, d.action, "
            f"COALESCE(d.holdout, 0), {d.propensity_bin('d.propensity')}, COUNT(*), "
            f"SUM({one_if('t.window_seconds IS NOT NULL')}) "
            "FROM decisions AS d JOIN requests AS r ON r.request_id = d.request_id "
            "LEFT JOIN request_terms AS t ON t.request_id = d.request_id "
            "WHERE d.request_id > ? AND d.request_id <= ? GROUP BY 1, 2, 3, 4, 5",
            (after, through),
        ).fetchall()

    def _columnar_decision_rows(self, request_ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """Aggregates of columnar requests' decisions (their actions are blobs)."""
        totals: dict[DecisionKey, np.ndarray] = defaultdict(lambda: np.zeros(2, dtype=np.int64))
        for request_id in request_ids:
            created_at, model_version, actions, propensities, holdout, windowed = (
                self._columnar_request(request_id)
            )
            bins = np.minimum(
                (propensities * PROPENSITY_BINS).astype(np.int64), PROPENSITY_BINS - 1
            )
            hour = int(created_at // HOUR_SECONDS)
            keys, counts = np.unique(np.stack([actions, holdout, bins]), axis=1, return_counts=True)
            for (action, held, bin_), count in zip(keys.T.tolist(), counts.tolist(), strict=True):
                totals[(hour, model_version, action, held, bin_)] += (count, count * windowed)
        return [(*key, *values.tolist()) for key, values in totals.items()]

    def _columnar_request(
        self, request_id: int
    ) -> tuple[float, str, np.ndarray, np.ndarray, np.ndarray, int]:
        """``created_at``, model, actions, propensities, holdout flags and windowed (0/1)."""
        created_at, model_version, n, actions, propensities, holdout, window = (
            self._connection.execute(
                "SELECT r.created_at, r.model_version, r.n, r.actions, r.propensities, "
                "r.holdout, t.window_seconds FROM requests AS r "
                "LEFT JOIN request_terms AS t ON t.request_id = r.request_id "
                "WHERE r.request_id = ?",
                (request_id,),
            ).fetchone()
        )
        held = (
            np.zeros(n, dtype=np.int64)
            if holdout is None
            else np.frombuffer(bytes(holdout), dtype=np.uint8).astype(np.int64)
        )
        return (
            float(created_at),
            str(model_version),
            np.frombuffer(bytes(actions), dtype=INT).astype(np.int64),
            np.frombuffer(bytes(propensities), dtype=FLOAT),
            held,
            int(window is not None),
        )

    def _fold_rewards(self) -> int:
        """Fold in one chunk of final rewards after the watermark; the rewards folded in."""
        after = self._watermark("rewards")
        row = self._connection.execute(
            "SELECT MAX(seq), COUNT(*) FROM (SELECT seq FROM rewards WHERE seq > ? "
            "ORDER BY seq LIMIT ?) AS chunk",
            (after, self._chunk),
        ).fetchone()
        if row[0] is None:
            return 0
        through, count = int(row[0]), int(row[1])
        rows = _merge(
            self._reward_rows(after, through),
            self._columnar_reward_rows(after, through),
            len(REWARD_COLUMNS),
        )
        d = self._dialect
        received = self._connection.execute(
            f"SELECT {d.hour('received_at')}, COUNT(*), SUM({one_if('defaulted = 1')}), "
            "SUM(reward) FROM rewards WHERE seq > ? AND seq <= ? GROUP BY 1",
            (after, through),
        ).fetchall()
        writes = [
            ("summary_rewards", REWARD_COLUMNS, rows),
            ("summary_received", RECEIVED_COLUMNS, received),
        ]
        self._upsert("rewards", after, through, writes)
        return count

    def _reward_rows(self, after: int, through: int) -> list[tuple[Any, ...]]:
        """Aggregates of the final rewards of row decisions with ``after < seq <= through``."""
        d = self._dialect
        return self._connection.execute(
            f"SELECT {d.hour('r.created_at')}, r.model_version, d.action, "
            f"COALESCE(d.holdout, 0), {one_if('t.window_seconds IS NOT NULL')}, COUNT(*), "
            f"SUM({one_if('w.reward > 0')}), SUM({one_if('w.defaulted = 1')}), "
            "SUM(w.reward), SUM(w.reward * w.reward), "
            # a zero propensity (never served) would divide by zero: such rows add nothing
            "COALESCE(SUM(w.reward / NULLIF(d.propensity, 0)), 0), "
            "COALESCE(SUM(w.reward * w.reward / NULLIF(d.propensity * d.propensity, 0)), 0), "
            "COALESCE(SUM(w.reward * w.reward / NULLIF(d.propensity, 0)), 0) "
            "FROM rewards AS w JOIN requests AS r ON r.request_id = w.request_id "
            "JOIN decisions AS d ON d.request_id = w.request_id AND d.position = w.position "
            "LEFT JOIN request_terms AS t ON t.request_id = w.request_id "
            "WHERE w.seq > ? AND w.seq <= ? GROUP BY 1, 2, 3, 4, 5",
            (after, through),
        ).fetchall()

    def _columnar_reward_rows(self, after: int, through: int) -> list[tuple[Any, ...]]:
        """Aggregates of the final rewards of columnar decisions (read from their blobs)."""
        rewards = self._connection.execute(
            "SELECT w.request_id, w.position, w.reward, COALESCE(w.defaulted, 0) "
            "FROM rewards AS w JOIN requests AS r ON r.request_id = w.request_id "
            "WHERE w.seq > ? AND w.seq <= ? AND r.actions IS NOT NULL",
            (after, through),
        ).fetchall()
        by_request: dict[int, list[tuple[int, float, int]]] = defaultdict(list)
        for request_id, position, reward, defaulted in rewards:
            by_request[int(request_id)].append((int(position), float(reward), int(defaulted)))
        totals: dict[RewardKey, np.ndarray] = defaultdict(lambda: np.zeros(len(REWARD_COLUMNS)))
        for request_id, items in by_request.items():
            created_at, model_version, actions, propensities, holdout, windowed = (
                self._columnar_request(request_id)
            )
            hour = int(created_at // HOUR_SECONDS)
            for position, reward, defaulted in items:
                p = float(propensities[position])
                key = (
                    hour,
                    model_version,
                    int(actions[position]),
                    int(holdout[position]),
                    windowed,
                )
                totals[key] += _reward_terms(reward, p, defaulted)
        return [
            (*key, *(int(v) for v in values[:3]), *values[3:].tolist())
            for key, values in totals.items()
        ]

    def _upsert(
        self,
        name: str,
        after: int,
        through: int,
        writes: Sequence[tuple[str, Sequence[str], Iterable[Sequence[Any]]]],
    ) -> None:
        """Add each ``(table, columns, rows)`` and move the watermark ``name``, atomically.

        Nothing is written if another process moved the watermark since ``after`` was read
        (it folded in the same rows).
        """
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            if self._watermark(name) != after:
                connection.execute("ROLLBACK")
                return
            for table, columns, rows in writes:
                connection.executemany(upsert_statement(table, columns), rows)
            connection.execute(
                "UPDATE summary_watermarks SET value = ? WHERE name = ?", (through, name)
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ reading
    def action_names(self, model_version: str) -> list[str]:
        """The actions of ``model_version`` in index order (hold :attr:`lock`)."""
        names = self._action_names.get(model_version)
        if names is None:
            row = self._connection.execute(
                "SELECT action_names FROM models WHERE model_version = ?", (model_version,)
            ).fetchone()
            names = self._action_names[model_version] = [] if row is None else json.loads(row[0])
        return names


def _reward_terms(reward: float, propensity: float, defaulted: int) -> np.ndarray:
    """One reward's contribution to the columns of ``summary_rewards``."""
    weighted = reward / propensity if propensity > 0 else 0.0
    return np.array(
        [
            1.0,
            float(reward > 0),
            float(defaulted),
            reward,
            reward * reward,
            weighted,
            weighted * weighted,
            reward * weighted,
        ]
    )


def _merge(
    first: list[tuple[Any, ...]], second: list[tuple[Any, ...]], n_values: int
) -> list[tuple[Any, ...]]:
    """Aggregate rows of two sources, adding the values of rows with the same key."""
    if not second:
        return first
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for row in (*first, *second):
        key, values = tuple(row[:-n_values]), list(row[-n_values:])
        if key in merged:
            merged[key] = [a + b for a, b in zip(merged[key], values, strict=True)]
        else:
            merged[key] = values
    return [(*key, *values) for key, values in merged.items()]
