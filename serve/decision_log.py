"""The decision log: every decision and every reward, in SQLite (WAL mode).

Each call to the service is one row of ``requests`` holding its arrays, and each customer of the
call is one row of ``decisions``. A 10,000-customer batch is one wide insert plus one
``executemany`` of narrow rows appended in key order; ``recenv log export`` flattens the log into
one row per decision (see :mod:`rec_env.datasets.decision_log_tables`).

Event ids (:mod:`rec_env.serve.event_ids`) are version-4 UUIDs that encode the request and the
position, so a reward finds its decision by two primary-key lookups.

Tables (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`):

* ``models``: ``model_version`` (key), ``algorithm``, ``sha256`` of the model file,
  ``action_names`` (JSON list), ``registered_at``.
* ``requests``: ``request_id`` (key), ``request_key`` (unique), ``position_offset``,
  ``created_at`` (Unix seconds), ``model_version``, ``policy_updates`` (rewards an online
  policy had learned from), ``n`` (customers), ``features`` (``(n, 16)`` little-endian float64
  in :data:`~rec_env.features.FEATURE_NAMES` order), ``allowed`` (``(n, A)`` uint8, 1 where
  the action was allowed: consent and not excluded) and ``probabilities`` (``(n, A)``
  little-endian float64, the probabilities the served action was drawn from).
* ``decisions``: ``request_id`` and ``position`` (key), ``event_id``, ``customer_id``,
  ``action`` (index), ``propensity`` (its probability).
* ``rewards``: ``event_id`` (key), ``reward``, ``received_at``.

One connection serves every thread, guarded by a lock; each request or batch is one transaction,
so a decision or a reward is either fully logged or not at all. ``synchronous=NORMAL`` in WAL
mode keeps every committed transaction across a crash of the process; only a power loss can
lose the last commits. Checkpoints (copying the write-ahead log into the database file) run in
a background thread every :data:`CHECKPOINT_INTERVAL` seconds instead of inside the commit
that crosses SQLite's threshold, so no request pays for them; closing the log checkpoints the
rest and truncates the write-ahead log.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rec_env.datasets.decision_log_tables import SCHEMA_VERSION
from rec_env.features import FEATURE_NAMES
from rec_env.serve.event_ids import POSITIONS, event_ids, new_request_key, parse_event_id

__all__ = [
    "SCHEMA_VERSION",
    "DecisionLog",
    "LoggedDecision",
    "RewardConflictError",
    "RewardReceipt",
    "UnknownEventError",
]

CHECKPOINT_INTERVAL = 1.0
"""Seconds between background checkpoints."""

_N_FEATURES = len(FEATURE_NAMES)
_FLOAT = np.dtype("<f8")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS models (
    model_version TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    action_names TEXT NOT NULL,
    registered_at REAL NOT NULL
);
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
    probabilities BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    request_id INTEGER NOT NULL REFERENCES requests (request_id),
    position INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    customer_id TEXT,
    action INTEGER NOT NULL,
    propensity REAL NOT NULL,
    PRIMARY KEY (request_id, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rewards (
    event_id TEXT PRIMARY KEY,
    reward REAL NOT NULL,
    received_at REAL NOT NULL
);
PRAGMA user_version = {SCHEMA_VERSION};
"""


class _Checkpointer(threading.Thread):
    """Copy the write-ahead log into the database file periodically, on its own connection."""

    def __init__(self, path: Path, interval: float) -> None:
        super().__init__(name="decision-log-checkpointer", daemon=True)
        self.path = path
        self.interval = interval
        self._stop_requested = threading.Event()

    def run(self) -> None:
        """Checkpoint (PASSIVE: never blocks writers) until :meth:`stop`."""
        connection = sqlite3.connect(self.path, timeout=5.0)
        try:
            while not self._stop_requested.wait(self.interval):
                with contextlib.suppress(sqlite3.OperationalError):  # busy: next round
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop after the current checkpoint."""
        self._stop_requested.set()
        self.join()


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
    """

    decision: LoggedDecision
    reward: float
    duplicate: bool


class DecisionLog:
    """Append decisions and rewards to a SQLite database in WAL mode, from any thread.

    Args:
        path: Database file; created with its tables if missing.
        timeout: Seconds to wait for a lock held by another process.
        checkpoint_interval: Seconds between background checkpoints.

    Raises:
        ValueError: If the file cannot be opened as a decision log of this version.
    """

    def __init__(
        self,
        path: str | Path,
        timeout: float = 30.0,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
    ) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._connection = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            version = self._connection.execute("PRAGMA user_version").fetchone()[0]
            tables = self._connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
            if tables and version != SCHEMA_VERSION:
                self._connection.close()
                raise ValueError(
                    f"{self.path}: not a decision log of this recenv version "
                    f"(schema {version}, expected {SCHEMA_VERSION}); use another --db"
                )
            self._connection.executescript(_SCHEMA)
            self._connection.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error as exc:
            raise ValueError(f"{self.path}: cannot open the decision log ({exc})") from None
        self._checkpointer = _Checkpointer(self.path, checkpoint_interval)
        self._checkpointer.start()

    def close(self) -> None:
        """Checkpoint everything, truncate the write-ahead log and close the connection."""
        self._checkpointer.stop()
        with self._lock:
            # with a reader elsewhere SQLite cannot truncate now; it checkpoints on a later open
            with contextlib.suppress(sqlite3.OperationalError):
                self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._connection.close()

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
            connection.execute("BEGIN")
            try:
                cursor = connection.execute(
                    "INSERT INTO requests VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)", request
                )
                request_id = cursor.lastrowid
                rows = zip(
                    (request_id,) * n,
                    range(n),
                    ids,
                    customers,
                    actions.tolist(),
                    propensities,
                    strict=True,
                )
                connection.executemany("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)", rows)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return ids

    def decision(self, event_id: str) -> LoggedDecision | None:
        """The logged decision ``event_id``, or None if there is none."""
        with self._lock:
            return self._decision(event_id)

    def record_reward(self, event_id: str, reward: float) -> RewardReceipt:
        """Record the reward of a decision, at most once.

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
            decision = self._decision(event_id)
            if decision is None:
                raise UnknownEventError(event_id)
            row = self._connection.execute(
                "SELECT reward FROM rewards WHERE event_id = ?", (event_id,)
            ).fetchone()
            if row is not None:
                if row[0] != reward:
                    raise RewardConflictError(event_id, row[0])
                return RewardReceipt(decision, reward, duplicate=True)
            self._connection.execute(
                "INSERT INTO rewards VALUES (?, ?, ?)", (event_id, reward, time.time())
            )
            return RewardReceipt(decision, reward, duplicate=False)

    def counts(self) -> tuple[int, int]:
        """Numbers of logged decisions and rewards."""
        with self._lock:
            decisions = self._connection.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
            rewards = self._connection.execute("SELECT COUNT(*) FROM rewards").fetchone()[0]
        return int(decisions), int(rewards)

    def _decision(self, event_id: str) -> LoggedDecision | None:
        """Read a decision (the caller holds the lock)."""
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
        position = (code - offset) % POSITIONS
        row = self._connection.execute(
            "SELECT event_id, action, propensity FROM decisions "
            "WHERE request_id = ? AND position = ?",
            (request_id, position),
        ).fetchone()
        if row is None or row[0] != event_id:
            return None
        size = _N_FEATURES * _FLOAT.itemsize
        with self._connection.blobopen("requests", "features", request_id, readonly=True) as blob:
            blob.seek(position * size)
            features = np.frombuffer(blob.read(size), dtype=_FLOAT)
        return LoggedDecision(event_id, model_version, features, int(row[1]), float(row[2]))
