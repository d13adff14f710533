"""The decision log: every decision and every reward, in SQLite (WAL mode).

Each call to the service is one row of ``requests`` holding its arrays. A strategy model's call
(:meth:`DecisionLog.log_decisions`) adds one row of ``decisions`` per customer: a 10,000-customer
batch is one wide insert plus one ``executemany`` of narrow rows appended in key order. An item
or slate model's call (:meth:`DecisionLog.log_columnar`) is one insert: its decisions are
columns of the request row (:class:`ColumnarDecisions`), so logging costs the same per customer
whatever the catalog size. ``recenv log export`` flattens the log into one row per decision (see
:mod:`rec_env.datasets.decision_log_tables`). The tables are described in
:mod:`rec_env.serve.decision_log_schema`.

Event ids (:mod:`rec_env.serve.event_ids`) are version-4 UUIDs that encode the request and the
position, so a reward finds its decision by two primary-key lookups. Rewards are numbered
(``seq``) in the order they are recorded, so a learner can replay every reward after the last
one its snapshot had learned (:meth:`DecisionLog.rewards_after`). A batch of rewards
(:meth:`DecisionLog.record_rewards`) is checked and recorded in one transaction: all or nothing.
Closing the reward windows (:meth:`DecisionLog.close_windows`) records a default reward, marked
``defaulted``, for every old decision without one; a reward posted after that is *late* and
never replaces it.

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
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rec_env.features import FEATURE_NAMES
from rec_env.serve.database_lock import DatabaseLock
from rec_env.serve.decision_log_schema import SCHEMA_VERSION, open_decision_log
from rec_env.serve.decision_reader import DecisionReader
from rec_env.serve.decision_records import (
    FLOAT,
    INT,
    ColumnarDecisions,
    LoggedDecision,
    RewardConflictError,
    RewardReceipt,
    UnknownEventError,
)
from rec_env.serve.event_ids import KEY_LENGTH, POSITIONS, event_ids, new_request_key
from rec_env.serve.settings import DEFAULT_WAL_MAX_BYTES
from rec_env.serve.wal_bound import WalBound, WalCheckpointer

__all__ = [
    "CHECKPOINT_INTERVAL",
    "SCHEMA_VERSION",
    "ColumnarDecisions",
    "DecisionLog",
    "LateRewardError",
    "LoggedDecision",
    "RewardBatch",
    "RewardBatchError",
    "RewardConflictError",
    "RewardReceipt",
    "UnknownEventError",
]

CHECKPOINT_INTERVAL = 1.0
"""Seconds between periodic background checkpoints."""

REPLAY_CHUNK = 10_000
"""Rewards read per query by :meth:`DecisionLog.rewards_after`."""

_FLOAT = FLOAT
_INT = INT

_KEYS_PER_QUERY = 500
"""Request keys looked up per query by :meth:`DecisionLog.record_rewards`."""
_INSERT_REWARD = (
    "INSERT INTO rewards (event_id, request_id, position, reward, received_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)
_CLOSE_ROW_REQUESTS = (
    "INSERT INTO rewards (event_id, request_id, position, reward, received_at, defaulted) "
    "SELECT d.event_id, d.request_id, d.position, ?, ?, 1 FROM requests AS r "
    "JOIN decisions AS d ON d.request_id = r.request_id "
    "WHERE r.created_at < ? AND r.actions IS NULL ORDER BY d.request_id, d.position "
    "ON CONFLICT (event_id) DO NOTHING"
)


class LateRewardError(RewardConflictError):
    """The event's reward window closed: its default reward stands, a late one is not recorded.

    Args:
        event_id: The event.
        recorded: The default reward recorded when its window closed.
    """

    def __init__(self, event_id: str, recorded: float) -> None:
        ValueError.__init__(
            self,
            f"event {event_id}: its reward window closed and the default reward ({recorded!r}) "
            "was recorded; a late reward is not recorded",
        )
        self.event_id = event_id
        self.recorded = recorded


class RewardBatchError(ValueError):
    """An item of a reward batch is refused, so none of the batch is recorded.

    Args:
        index: The item's index in the batch.
        field: The item's field at fault (``event_id`` or ``reward``).
        kind: ``unknown`` (no such decision) or ``conflict`` (a different reward is recorded).
        message: What is wrong.
    """

    def __init__(self, index: int, field: str, kind: str, message: str) -> None:
        super().__init__(f"item {index}, {field}: {message}")
        self.index = index
        self.field = field
        self.kind = kind
        self.reason = message


@dataclass(frozen=True)
class RewardBatch:
    """The outcome of :meth:`DecisionLog.record_rewards`.

    Args:
        recorded: Rewards recorded now.
        duplicates: Items whose same reward was already recorded (nothing changed).
        late: Indices of the items whose event's window had closed (not recorded).
        first_seq: Seq of the first reward recorded now (the others follow it), or None.
        recorded_sum: Sum of the rewards recorded now.
    """

    recorded: int
    duplicates: int
    late: list[int] = field(default_factory=list)
    first_seq: int | None = None
    recorded_sum: float = 0.0


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
        self._reader = DecisionReader(self._connection)
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
        self,
        model_version: str,
        algorithm: str,
        sha256: str,
        action_names: Sequence[str],
        *,
        world: str = "strategy",
        feature_names: Sequence[str] = FEATURE_NAMES,
        action_channels: Sequence[str] | None = None,
        product_ids: Sequence[str] | None = None,
        slate_size: int | None = None,
    ) -> None:
        """Record a model version and what its decisions mean (once; later calls change nothing).

        Args:
            model_version: The version.
            algorithm: Its algorithm.
            sha256: SHA-256 of its model file.
            action_names: Its actions, in index order.
            world: ``"strategy"``, ``"item"`` or ``"slate"``.
            feature_names: Its features, in the order of the logged feature rows.
            action_channels: The channel of each action.
            product_ids: The product table's ids in index order (item and slate worlds).
            slate_size: Products per message (slate world).
        """
        row = (
            model_version,
            algorithm,
            sha256,
            json.dumps(list(action_names)),
            time.time(),
            world,
            json.dumps(list(feature_names)),
            None if action_channels is None else json.dumps(list(action_channels)),
            None if product_ids is None else json.dumps(list(product_ids)),
            slate_size,
        )
        with self._lock:
            self._connection.execute(
                "INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row
            )
            self._reader.forget(model_version)

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
                    "INSERT INTO requests (request_id, request_key, position_offset, created_at, "
                    "model_version, policy_updates, n, features, allowed, probabilities) "
                    "VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    request,
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
                _count_draws(connection, sampler_seed, n)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return ids

    def log_columnar(
        self,
        model_version: str,
        policy_updates: int,
        features: np.ndarray,
        decisions: ColumnarDecisions,
        customer_ids: Sequence[str | None] | None = None,
        sampler_seed: int | None = None,
    ) -> list[str]:
        """Log the decisions of one call to an item or slate model: one insert, one transaction.

        Args:
            model_version: Version of the model that decided.
            policy_updates: Rewards the policy had learned from when it decided.
            features: ``(n, F)`` features.
            decisions: The decisions, as columns.
            customer_ids: Optional caller ids of the customers.
            sampler_seed: Seed of the generator that drew the decisions; the same transaction
                adds ``n * decisions.draws`` to its count of draws (:meth:`sampler_draws`).

        Returns:
            The ``n`` new event ids.
        """
        n = features.shape[0]
        request_key, offset = new_request_key()
        ids = event_ids(request_key, offset, n)
        given_ids = customer_ids is not None and any(c is not None for c in customer_ids)
        row = (
            request_key,
            offset,
            time.time(),
            model_version,
            policy_updates,
            n,
            np.ascontiguousarray(features, dtype=_FLOAT).tobytes(),
            np.ascontiguousarray(decisions.request_allowed, dtype=np.uint8).tobytes(),
            b"",
            np.ascontiguousarray(decisions.actions, dtype=_INT).tobytes(),
            np.ascontiguousarray(decisions.propensities, dtype=_FLOAT).tobytes(),
            json.dumps(list(customer_ids)) if given_ids else None,
            _optional_bytes(decisions.slates, _INT),
            _optional_bytes(decisions.slate_probabilities, _FLOAT),
        )
        with self._lock:
            connection = self._connection
            self._wal.before_write(connection)
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(
                    "INSERT INTO requests VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                _count_draws(connection, sampler_seed, n * decisions.draws)
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
            located = self._reader.locate(event_id)
            return None if located is None else self._reader.read(event_id, located)

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
            LateRewardError: If the event's reward window closed (its default reward stands).
        """
        with self._lock:
            located = self._reader.locate(event_id)
            decision = None if located is None else self._reader.read(event_id, located)
            if located is None or decision is None:
                raise UnknownEventError(event_id)
            self._wal.before_write(self._connection)
            # check and insert in one statement: atomic across processes too (fetchall ends
            # the statement, which commits it)
            inserted = self._connection.execute(
                "INSERT INTO rewards (event_id, request_id, position, reward, received_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING seq",
                (event_id, located.request_id, located.position, reward, time.time()),
            ).fetchall()
            if inserted:
                return RewardReceipt(decision, reward, duplicate=False, seq=inserted[0][0])
            seq, recorded, defaulted = self._connection.execute(
                "SELECT seq, reward, defaulted FROM rewards WHERE event_id = ?", (event_id,)
            ).fetchone()
        if defaulted:
            raise LateRewardError(event_id, recorded)
        if recorded != reward:
            raise RewardConflictError(event_id, recorded)
        return RewardReceipt(decision, reward, duplicate=True, seq=seq)

    def record_rewards(self, event_ids: Sequence[str], rewards: Sequence[float]) -> RewardBatch:
        """Record a batch of rewards in one transaction: all of them, or none on an error.

        Each event's reward is recorded at most once, as by :meth:`record_reward`: the same
        reward again is a duplicate (nothing changes), also within the batch. An event whose
        window closed keeps its default reward; its item is *late*, not recorded, and not an
        error. The new rewards are numbered in event id order (their index grows in order).

        An event id names its request and position, and a request's ids are all its positions
        spelt in lower case, so the batch is checked against one lookup per request; rewards
        already recorded are found only if the insert skipped some.

        Args:
            event_ids: The decisions' event ids.
            rewards: Their rewards (finite), as many.

        Returns:
            The counts, the late items and the seq of the first reward recorded now.

        Raises:
            RewardBatchError: Naming the first item whose event is unknown or already has (or
                gets earlier in the batch) a different reward; nothing is recorded.
        """
        n = len(event_ids)
        if len(rewards) != n:
            raise ValueError(f"{n} event ids but {len(rewards)} rewards")
        with self._lock:
            connection = self._connection
            self._wal.before_write(connection)
            connection.execute("BEGIN IMMEDIATE")
            try:
                requests = _requests_of(connection, event_ids)
                now = time.time()
                first: dict[str, int] = {}
                rows, errors = _new_rows(event_ids, rewards, requests, first, now)
                duplicates = n - len(rows) - len(errors)
                last = connection.execute("SELECT COALESCE(MAX(seq), 0) FROM rewards").fetchone()[0]
                before = connection.total_changes
                connection.executemany(_INSERT_REWARD, rows)
                inserted = connection.total_changes - before
                late: list[int] = []
                skipped: list[int] = []
                if inserted < len(rows):  # some events had a reward already
                    skipped = _recorded_before(connection, rows, rewards, first, last, late, errors)
                if errors:
                    raise min(errors, key=lambda error: error.index)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        total = math.fsum(row[3] for row in rows) - math.fsum(rewards[i] for i in skipped)
        return RewardBatch(
            inserted,
            duplicates + len(skipped) - len(late),
            sorted(late),
            last + 1 if inserted else None,
            recorded_sum=total,
        )

    def close_windows(self, before: float, default_reward: float = 0.0) -> int:
        """Close the reward windows of the decisions logged before ``before``, in one transaction.

        Each of them without a reward gets ``default_reward``, marked ``defaulted``. Its window
        is then closed: a reward posted later is late (:class:`LateRewardError`) and never
        replaces the default. The defaults are numbered in the order of the decisions.

        Args:
            before: Unix time: decisions logged before it have had their whole window.
            default_reward: The reward of a decision nobody posted a reward for.

        Returns:
            The number of default rewards recorded.
        """
        with self._lock:
            connection = self._connection
            self._wal.before_write(connection)
            connection.execute("BEGIN IMMEDIATE")
            try:
                start = connection.total_changes
                now = time.time()
                connection.execute(_CLOSE_ROW_REQUESTS, (default_reward, now, before))
                columnar = connection.execute(
                    "SELECT request_id, request_key, position_offset, n FROM requests "
                    "WHERE created_at < ? AND actions IS NOT NULL ORDER BY request_id",
                    (before,),
                ).fetchall()
                for request_id, key, offset, n in columnar:
                    ids = event_ids(key, offset, n)
                    connection.executemany(
                        "INSERT INTO rewards (event_id, request_id, position, reward, "
                        "received_at, defaulted) VALUES (?, ?, ?, ?, ?, 1) "
                        "ON CONFLICT (event_id) DO NOTHING",
                        zip(
                            ids,
                            (request_id,) * n,
                            range(n),
                            (default_reward,) * n,
                            (now,) * n,
                            strict=True,
                        ),
                    )
                closed = connection.total_changes - start
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return closed

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
                chunk = self._reader.rewards_after(after, model_version, REPLAY_CHUNK)
            if not chunk:
                return
            yield from chunk
            after = chunk[-1][0]

    def counts(self) -> tuple[int, int]:
        """Numbers of logged decisions and rewards."""
        with self._lock:
            decisions = self._connection.execute(
                "SELECT (SELECT COUNT(*) FROM decisions) + "
                "(SELECT COALESCE(SUM(n), 0) FROM requests WHERE actions IS NOT NULL)"
            ).fetchone()[0]
            rewards = self._connection.execute("SELECT COUNT(*) FROM rewards").fetchone()[0]
        return int(decisions), int(rewards)

    def _restart_wal(self) -> bool:
        """Restart the write-ahead log between two writes (for the background thread)."""
        with self._lock:
            return self._wal.restart(self._connection)


def _requests_of(
    connection: sqlite3.Connection, event_ids: Sequence[str]
) -> dict[str, tuple[int, int, int]]:
    """``request_key -> (request_id, position_offset, n)`` of the requests the ids name."""
    keys = list({event_id[:KEY_LENGTH] for event_id in event_ids})
    requests: dict[str, tuple[int, int, int]] = {}
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[start : start + _KEYS_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        for key, *request in connection.execute(
            "SELECT request_key, request_id, position_offset, n FROM requests "
            f"WHERE request_key IN ({marks})",
            chunk,
        ):
            requests[key] = tuple(request)  # type: ignore[assignment]
    return requests


def _new_rows(
    event_ids: Sequence[str],
    rewards: Sequence[float],
    requests: dict[str, tuple[int, int, int]],
    first: dict[str, int],
    now: float,
) -> tuple[list[tuple[str, int, int, float, float]], list[RewardBatchError]]:
    """The rows to insert (an event's first item, in event id order) and the bad items.

    Fills ``first`` with the index of each event's first item; a later item of the same event
    is a duplicate if its reward is the same, else a conflict.
    """
    rows: list[tuple[str, int, int, float, float]] = []
    errors: list[RewardBatchError] = []
    for i, event_id in enumerate(event_ids):
        request = requests.get(event_id[:KEY_LENGTH])
        position = -1
        suffix = event_id[KEY_LENGTH:]
        if request is not None and len(suffix) == 8:
            try:
                code = int(suffix, 16)
            except ValueError:
                code = -1
            if f"{code:08x}" == suffix:  # canonical: no sign, prefix, "_" nor upper case
                position = (code - request[1]) % POSITIONS
        if request is None or not 0 <= position < request[2]:
            message = f"no decision with id {event_id}"
            errors.append(RewardBatchError(i, "event_id", "unknown", message))
            continue
        earlier = first.setdefault(event_id, i)
        if earlier == i:
            rows.append((event_id, request[0], position, rewards[i], now))
        elif rewards[earlier] != rewards[i]:
            message = f"event {event_id} already has a different reward ({rewards[earlier]!r})"
            errors.append(RewardBatchError(i, "reward", "conflict", message))
    rows.sort()
    return rows, errors


def _recorded_before(
    connection: sqlite3.Connection,
    rows: list[tuple[str, int, int, float, float]],
    rewards: Sequence[float],
    first: dict[str, int],
    last: int,
    late: list[int],
    errors: list[RewardBatchError],
) -> list[int]:
    """Sort the rows whose event had a reward before the batch: late, duplicate or conflict.

    Appends the late events' first items to ``late`` and the conflicts to ``errors``.

    Returns:
        The indices of the items whose row was not inserted (the late ones included).
    """
    skipped = []
    for event_id, *_ in rows:
        seq, recorded, defaulted = connection.execute(
            "SELECT seq, reward, defaulted FROM rewards WHERE event_id = ?", (event_id,)
        ).fetchone()
        if seq > last:
            continue  # inserted now
        i = first[event_id]
        skipped.append(i)
        if defaulted:
            late.append(i)
        elif recorded != rewards[i]:
            message = f"event {event_id} already has a different reward ({recorded!r})"
            errors.append(RewardBatchError(i, "reward", "conflict", message))
    return skipped


def _count_draws(connection: sqlite3.Connection, seed: int | None, draws: int) -> None:
    """Add ``draws`` to the uniforms drawn with ``seed`` (in the caller's transaction)."""
    if seed is not None:
        connection.execute(
            "INSERT INTO sampler_draws VALUES (?, ?) "
            "ON CONFLICT (seed) DO UPDATE SET draws = draws + excluded.draws",
            (str(seed), draws),
        )


def _optional_bytes(array: np.ndarray | None, dtype: np.dtype) -> bytes | None:
    """``array``'s bytes as ``dtype``, or None."""
    return None if array is None else np.ascontiguousarray(array, dtype=dtype).tobytes()
