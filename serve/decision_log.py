"""The decision log: every decision and every reward, in SQLite (WAL mode).

Each call to the service is one row of ``requests`` holding its arrays, and each customer of the
call is one row of ``decisions`` pointing into them; this keeps a 10,000-customer batch to one
wide insert plus 10,000 narrow ones. ``recenv log export`` flattens the log into one row per
decision (see :mod:`rec_env.serve.export`).

Tables:

* ``models``: ``model_version`` (key), ``algorithm``, ``sha256`` of the model file,
  ``action_names`` (JSON list), ``registered_at``.
* ``requests``: ``request_id`` (key), ``created_at`` (Unix seconds), ``model_version``,
  ``policy_updates`` (rewards an online policy had learned from), ``n`` (customers),
  ``features`` (``(n, 16)`` little-endian float64 in :data:`~rec_env.features.FEATURE_NAMES`
  order), ``allowed`` (``(n, A)`` uint8, 1 where the action was allowed: consent and not
  excluded) and ``probabilities`` (``(n, A)`` little-endian float64, the probabilities the served
  action was drawn from).
* ``decisions``: ``event_id`` (key, a UUID), ``request_id``, ``position`` (row in the request),
  ``customer_id``, ``action`` (index), ``propensity`` (its probability).
* ``rewards``: ``event_id`` (key), ``reward``, ``received_at``.

One connection serves every thread, guarded by a lock; each request or batch is one transaction,
so a decision or a reward is either fully logged or not at all. ``synchronous=NORMAL`` in WAL
mode keeps every committed transaction across a crash of the process; only a power loss can
lose the last commits.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rec_env.features import FEATURE_NAMES

__all__ = [
    "DecisionLog",
    "LoggedDecision",
    "RewardConflictError",
    "RewardReceipt",
    "UnknownEventError",
    "new_event_ids",
]

_N_FEATURES = len(FEATURE_NAMES)
_FLOAT = np.dtype("<f8")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    model_version TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    action_names TEXT NOT NULL,
    registered_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    request_id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    model_version TEXT NOT NULL REFERENCES models (model_version),
    policy_updates INTEGER NOT NULL,
    n INTEGER NOT NULL,
    features BLOB NOT NULL,
    allowed BLOB NOT NULL,
    probabilities BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    event_id TEXT PRIMARY KEY,
    request_id INTEGER NOT NULL REFERENCES requests (request_id),
    position INTEGER NOT NULL,
    customer_id TEXT,
    action INTEGER NOT NULL,
    propensity REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rewards (
    event_id TEXT PRIMARY KEY REFERENCES decisions (event_id),
    reward REAL NOT NULL,
    received_at REAL NOT NULL
);
"""

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_DIGIT_COLUMNS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def new_event_ids(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs as canonical strings, formatted in one numpy pass.

    Event ids come from the operating system's entropy, not from the seeded generator of the
    decisions: they must never repeat across restarts, and they do not influence any decision.
    """
    if n == 1:
        return [str(uuid.uuid4())]
    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX_DIGITS[raw >> 4]
    digits[:, 1::2] = _HEX_DIGITS[raw & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_DIGIT_COLUMNS] = digits
    return text.view("S36").ravel().astype("U36").tolist()


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

    Raises:
        ValueError: If the file cannot be opened as a SQLite database.
    """

    def __init__(self, path: str | Path, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._connection = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ValueError(f"{self.path}: cannot open the decision log ({exc})") from None

    def close(self) -> None:
        """Close the connection (pending transactions are already committed)."""
        with self._lock:
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
        event_ids: Sequence[str],
        model_version: str,
        policy_updates: int,
        features: np.ndarray,
        allowed: np.ndarray,
        probabilities: np.ndarray,
        actions: np.ndarray,
        customer_ids: Sequence[str | None] | None = None,
    ) -> None:
        """Log the decisions of one request in one transaction.

        Args:
            event_ids: ``n`` new event ids.
            model_version: Version of the model that decided.
            policy_updates: Rewards the policy had learned from when it decided.
            features: ``(n, 16)`` features.
            allowed: ``(n, A)`` bool, the actions the customers could get.
            probabilities: ``(n, A)`` probabilities the actions were drawn from.
            actions: ``(n,)`` served actions.
            customer_ids: Optional caller ids of the customers.
        """
        n = len(event_ids)
        propensities = probabilities[np.arange(n), actions].tolist()
        blobs = (
            np.ascontiguousarray(features, dtype=_FLOAT).tobytes(),
            np.ascontiguousarray(allowed, dtype=np.uint8).tobytes(),
            np.ascontiguousarray(probabilities, dtype=_FLOAT).tobytes(),
        )
        ids = customer_ids if customer_ids is not None else (None,) * n
        with self._lock:
            connection = self._connection
            connection.execute("BEGIN")
            try:
                cursor = connection.execute(
                    "INSERT INTO requests VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)",
                    (time.time(), model_version, policy_updates, n, *blobs),
                )
                request_id = cursor.lastrowid
                connection.executemany(
                    "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)",
                    zip(
                        event_ids,
                        (request_id,) * n,
                        range(n),
                        ids,
                        actions.tolist(),
                        propensities,
                        strict=True,
                    ),
                )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

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
        row = self._connection.execute(
            "SELECT d.request_id, d.position, d.action, d.propensity, r.model_version "
            "FROM decisions AS d JOIN requests AS r USING (request_id) WHERE d.event_id = ?",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        request_id, position, action, propensity, model_version = row
        size = _N_FEATURES * _FLOAT.itemsize
        with self._connection.blobopen("requests", "features", request_id, readonly=True) as blob:
            blob.seek(position * size)
            features = np.frombuffer(blob.read(size), dtype=_FLOAT)
        return LoggedDecision(event_id, model_version, features, int(action), float(propensity))
