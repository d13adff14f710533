"""The decision log: every decision and every reward, in SQLite (WAL mode).

Each call to the service is one row of ``requests`` holding its arrays, and each customer of the
call is one row of ``decisions``. A 10,000-customer batch is one wide insert plus one
``executemany`` of narrow rows appended in key order; ``recenv log export`` flattens the log into
one row per decision (see :mod:`rec_env.datasets.decision_log_tables`). The tables are described
in :mod:`rec_env.serve.decision_log_schema`.

Event ids (:mod:`rec_env.serve.event_ids`) are version-4 UUIDs that encode the request and the
position, so a reward finds its decision by two primary-key lookups. Rewards are numbered
(``seq``) in the order they are recorded, so a learner can replay every reward after the last
one its snapshot had learned (:meth:`DecisionLog.rewards_after`).

One writer per database: the log takes an exclusive OS lock on ``<db>.lock``
(:mod:`rec_env.serve.database_lock`), so a second server on the same file refuses to start
instead of sharing rewards, online state and the sampler stream with the first. Within the
process, one connection serves every thread, guarded by a lock; each request or batch is one
transaction, so a decision or a reward is either fully logged or not at all. Recording a reward
is one ``INSERT … ON CONFLICT DO NOTHING``, so even writers in several processes (with
``exclusive=False``) store exactly one reward per event and never fail on the constraint.

``synchronous=NORMAL`` in WAL mode keeps every committed transaction across a crash of the
process; only a power loss can lose the last commits. Checkpoints run in a background thread
and keep the write-ahead log under ``wal_max_bytes`` (:mod:`rec_env.serve.wal_bound`); closing
the log checkpoints the rest and truncates the write-ahead log.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rec_env.features import FEATURE_NAMES
from rec_env.serve.database_lock import DatabaseLock
from rec_env.serve.decision_log_schema import SCHEMA_VERSION, open_decision_log
from rec_env.serve.event_ids import POSITIONS, event_ids, new_request_key, parse_event_id
from rec_env.serve.settings import DEFAULT_WAL_MAX_BYTES
from rec_env.serve.wal_bound import WalBound, WalCheckpointer

__all__ = [
    "CHECKPOINT_INTERVAL",
    "SCHEMA_VERSION",
    "DecisionLog",
    "LoggedDecision",
    "RewardConflictError",
    "RewardReceipt",
    "UnknownEventError",
]

CHECKPOINT_INTERVAL = 1.0
"""Seconds between periodic background checkpoints."""

REPLAY_CHUNK = 10_000
"""Rewards read per query by :meth:`DecisionLog.rewards_after`."""

_N_FEATURES = len(FEATURE_NAMES)
_FLOAT = np.dtype("<f8")
_ROW_BYTES = _N_FEATURES * _FLOAT.itemsize

_REWARDS_AFTER = (
    "SELECT w.seq, w.event_id, w.request_id, w.position, w.reward, d.action, d.propensity "
    "FROM rewards AS w JOIN requests AS r ON r.request_id = w.request_id "
    "JOIN decisions AS d ON d.request_id = w.request_id AND d.position = w.position "
    "WHERE w.seq > ? AND r.model_version = ? ORDER BY w.seq LIMIT ?"
)


class UnknownEventError(KeyError):
    """No decision was logged under this event id."""


class RewardConflictError(ValueError):
    """The event already has a different reward.

    Attributes:
        recorded: The reward recorded first.
    """

    def __init__(self, event_id: str, recorded: float) -> None:
        super().__init__(f"event {event_id} already has a different reward ({recorded!r})")
        self.recorded = recorded


@dataclass(frozen=True)
class LoggedDecision:
    """One logged decision, as needed to learn from its reward.

    Attributes:
        event_id: The decision's id.
        model_version: Version of the model that decided.
        features: ``(16,)`` features of the customer.
        action: Index of the served action.
        propensity: Probability with which it was served.
    """

    event_id: str
    model_version: str
    features: np.ndarray
    action: int
    propensity: float


@dataclass(frozen=True)
class RewardReceipt:
    """The outcome of :meth:`DecisionLog.record_reward`.

    Attributes:
        decision: The decision the reward belongs to.
        reward: The recorded reward.
        duplicate: True if this exact reward had already been recorded (nothing changed).
        seq: Sequence number of the reward's row (of the existing row for a duplicate):
            rewards are numbered 1, 2, … in the order they were recorded.
    """

    decision: LoggedDecision
    reward: float
    duplicate: bool
    seq: int


class DecisionLog:
    """Append decisions and rewards to a SQLite database in WAL mode, from any thread.

    Args:
        path: Database file; created with its tables if missing (a version-1 log is upgraded).
        timeout: Seconds to wait for a lock held by another connection.
        checkpoint_interval: Seconds between periodic background checkpoints.
        wal_max_bytes: Bound on the write-ahead log file (it may exceed it by one transaction
            only if a transaction is larger than a quarter of the bound).
        exclusive: Take the database's writer lock, so no other process (or open log) writes
            it at the same time. Without it, several writers share the file safely (one
            reward per event), but each keeps its own online state and sampler.

    Raises:
        ValueError: If the file cannot be opened as a decision log of this version, or another
            writer holds it.
    """

    def __init__(
        self,
        path: str | Path,
        timeout: float = 30.0,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
        wal_max_bytes: int = DEFAULT_WAL_MAX_BYTES,
        exclusive: bool = True,
    ) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._wal = WalBound(self.path, wal_max_bytes, timeout)
        self._writer_lock = DatabaseLock(self.path) if exclusive else None
        try:
            self._connection = open_decision_log(self.path, timeout)
            self._wal.configure(self._connection)
        except BaseException:
            if self._writer_lock is not None:
                self._writer_lock.release()
            raise
        self._closed = False
        self._checkpointer = WalCheckpointer(
            self.path, checkpoint_interval, self._wal, self._restart_wal
        )
        self._checkpointer.start()

    def close(self) -> None:
        """Checkpoint everything, truncate the write-ahead log, close, release the lock.

        Closing a closed log does nothing.
        """
        self._checkpointer.stop()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # with a reader elsewhere SQLite cannot truncate now; it checkpoints on a later open
            with contextlib.suppress(sqlite3.OperationalError):
                self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._connection.close()
        if self._writer_lock is not None:
            self._writer_lock.release()

    def wal_bytes(self) -> int:
        """Size of the write-ahead log file now."""
        return self._wal.wal_bytes()

    def register_model(
        self, model_version: str, algorithm: str, sha256: str, action_names: Sequence[str]
    ) -> None:
        """Record a model version and its action names (once; later calls change nothing)."""
        with self._lock:
            self._connection.execute(
                "INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?)",
                (model_version, algorithm, sha256, json.dumps(list(action_names)), time.time()),
            )

    def log_decisions(
        self,
        model_version: str,
        policy_updates: int,
        features: np.ndarray,
        allowed: np.ndarray,
        probabilities: np.ndarray,
        actions: np.ndarray,
        customer_ids: Sequence[str | None] | None = None,
        sampler_seed: int | None = None,
    ) -> list[str]:
        """Log the decisions of one request in one transaction.

        Args:
            model_version: Version of the model that decided.
            policy_updates: Rewards the policy had learned from when it decided.
            features: ``(n, 16)`` features.
            allowed: ``(n, A)`` bool, the actions the customers could get.
            probabilities: ``(n, A)`` probabilities the actions were drawn from.
            actions: ``(n,)`` served actions.
            customer_ids: Optional caller ids of the customers.
            sampler_seed: Seed of the generator that drew the actions (one uniform number per
                customer); the same transaction adds ``n`` to its count of draws
                (:meth:`sampler_draws`).

        Returns:
            The ``n`` new event ids.
        """
        n = features.shape[0]
        request_key, offset = new_request_key()
        ids = event_ids(request_key, offset, n)
        propensities = probabilities[np.arange(n), actions].tolist()
        request = (
            request_key,
            offset,
            time.time(),
            model_version,
            policy_updates,
            n,
            np.ascontiguousarray(features, dtype=_FLOAT).tobytes(),
            np.ascontiguousarray(allowed, dtype=np.uint8).tobytes(),
            np.ascontiguousarray(probabilities, dtype=_FLOAT).tobytes(),
        )
        customers = customer_ids if customer_ids is not None else (None,) * n
        with self._lock:
            connection = self._connection
            self._wal.before_write(connection)
            connection.execute("BEGIN IMMEDIATE")
            try:
                cursor = connection.execute(
                    "INSERT INTO requests VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)", request
                )
                rows = zip(
                    (cursor.lastrowid,) * n,
                    range(n),
                    ids,
                    customers,
                    actions.tolist(),
                    propensities,
                    strict=True,
                )
                connection.executemany("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)", rows)
                if sampler_seed is not None:
                    connection.execute(
                        "INSERT INTO sampler_draws VALUES (?, ?) "
                        "ON CONFLICT (seed) DO UPDATE SET draws = draws + excluded.draws",
                        (str(sampler_seed), n),
                    )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return ids

    def sampler_draws(self, seed: int) -> int:
        """Uniform numbers drawn for logged decisions by the sampler seeded with ``seed``."""
        with self._lock:
            row = self._connection.execute(
                "SELECT draws FROM sampler_draws WHERE seed = ?", (str(seed),)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def decision(self, event_id: str) -> LoggedDecision | None:
        """The logged decision ``event_id``, or None if there is none."""
        with self._lock:
            located = self._locate(event_id)
            return None if located is None else self._read_decision(event_id, *located)

    def record_reward(self, event_id: str, reward: float) -> RewardReceipt:
        """Record the reward of a decision, at most once, in one atomic statement.

        Args:
            event_id: The decision's event id.
            reward: The reward (finite).

        Returns:
            The receipt; ``duplicate`` is True if the same reward was already recorded.

        Raises:
            UnknownEventError: If no decision has this event id.
            RewardConflictError: If the event already has a different reward.
        """
        with self._lock:
            located = self._locate(event_id)
            decision = None if located is None else self._read_decision(event_id, *located)
            if located is None or decision is None:
                raise UnknownEventError(event_id)
            self._wal.before_write(self._connection)
            # check and insert in one statement: atomic across processes too (fetchall ends
            # the statement, which commits it)
            inserted = self._connection.execute(
                "INSERT INTO rewards (event_id, request_id, position, reward, received_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING seq",
                (event_id, located[0], located[1], reward, time.time()),
            ).fetchall()
            if inserted:
                return RewardReceipt(decision, reward, duplicate=False, seq=inserted[0][0])
            seq, recorded = self._connection.execute(
                "SELECT seq, reward FROM rewards WHERE event_id = ?", (event_id,)
            ).fetchone()
        if recorded != reward:
            raise RewardConflictError(event_id, recorded)
        return RewardReceipt(decision, reward, duplicate=True, seq=seq)

    @property
    def log_id(self) -> str:
        """The log's random identity, drawn when its file was created."""
        with self._lock:
            return str(self._connection.execute("SELECT log_id FROM log_identity").fetchone()[0])

    def last_reward_seq(self) -> int:
        """Sequence number of the last recorded reward (0 if there is none)."""
        with self._lock:
            seq = self._connection.execute("SELECT MAX(seq) FROM rewards").fetchone()[0]
        return 0 if seq is None else int(seq)

    def rewards_after(
        self, seq: int, model_version: str
    ) -> Iterator[tuple[int, LoggedDecision, float]]:
        """Every reward numbered above ``seq`` of a decision by ``model_version``, in order.

        Reads :data:`REPLAY_CHUNK` rewards at a time (memory for one chunk, whatever the size
        of the log), holding the log's lock only while reading each chunk.

        Yields:
            ``(seq, decision, reward)``.
        """
        after = seq
        while True:
            with self._lock:
                rows = self._connection.execute(
                    _REWARDS_AFTER, (after, model_version, REPLAY_CHUNK)
                ).fetchall()
                features = self._features_of([(row[2], row[3]) for row in rows])
            if not rows:
                return
            for row, x in zip(rows, features, strict=True):
                number, event_id, _, _, reward, action, propensity = row
                decision = LoggedDecision(event_id, model_version, x, int(action), propensity)
                yield number, decision, float(reward)
            after = rows[-1][0]

    def counts(self) -> tuple[int, int]:
        """Numbers of logged decisions and rewards."""
        with self._lock:
            decisions = self._connection.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
            rewards = self._connection.execute("SELECT COUNT(*) FROM rewards").fetchone()[0]
        return int(decisions), int(rewards)

    def _restart_wal(self) -> bool:
        """Restart the write-ahead log between two writes (for the background thread)."""
        with self._lock:
            return self._wal.restart(self._connection)

    def _locate(self, event_id: str) -> tuple[int, int, str] | None:
        """``(request_id, position, model_version)`` of a decision (the caller holds the lock)."""
        parsed = parse_event_id(event_id)
        if parsed is None:
            return None
        request_key, code = parsed
        request = self._connection.execute(
            "SELECT request_id, position_offset, model_version FROM requests WHERE request_key = ?",
            (request_key,),
        ).fetchone()
        if request is None:
            return None
        request_id, offset, model_version = request
        return request_id, (code - offset) % POSITIONS, model_version

    def _read_decision(
        self, event_id: str, request_id: int, position: int, model_version: str
    ) -> LoggedDecision | None:
        """Read a located decision (the caller holds the lock); None if the id is not its id."""
        row = self._connection.execute(
            "SELECT event_id, action, propensity FROM decisions "
            "WHERE request_id = ? AND position = ?",
            (request_id, position),
        ).fetchone()
        if row is None or row[0] != event_id:
            return None
        features = self._features_of([(request_id, position)])[0]
        return LoggedDecision(event_id, model_version, features, int(row[1]), float(row[2]))

    def _features_of(self, rows: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        """Features of decisions ``(request_id, position)``, reading only their bytes.

        Opens each request's ``features`` blob once, however many of its rows are asked for.
        """
        features: list[np.ndarray] = [np.empty(0)] * len(rows)
        by_request: dict[int, list[int]] = {}
        for i, (request_id, _) in enumerate(rows):
            by_request.setdefault(request_id, []).append(i)
        for request_id, indices in by_request.items():
            with self._connection.blobopen(
                "requests", "features", request_id, readonly=True
            ) as blob:
                for i in indices:
                    blob.seek(rows[i][1] * _ROW_BYTES)
                    features[i] = np.frombuffer(blob.read(_ROW_BYTES), dtype=_FLOAT)
        return features
