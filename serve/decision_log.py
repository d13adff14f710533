"""The decision log: every decision and every reward, in SQLite (WAL mode).

Each call to the service is one row of ``requests`` holding its arrays. A strategy model's call
(:meth:`DecisionLog.log_decisions`) adds one row of ``decisions`` per customer: a 10,000-customer
batch is one wide insert plus one ``executemany`` of narrow rows appended in key order. An item
or slate model's call (:meth:`DecisionLog.log_columnar`) is one insert: its decisions are
columns of the request row (:class:`ColumnarDecisions`), so logging costs the same per customer
whatever the catalog size. ``recenv log export`` flattens the log into one row per decision (see
:mod:`rec_env.datasets.decision_log_tables`). The tables are described in
:mod:`rec_env.serve.decision_log_schema`.

Event ids (:mod:`rec_env.serve.event_ids`) are time-ordered UUIDs that encode the request and the
position, so a reward finds its decision by two primary-key lookups. Rewards are numbered
(``seq``) in the order they are recorded, so a learner can replay every reward after the last
one its snapshot had learned (:meth:`DecisionLog.rewards_after`). A batch of rewards
(:meth:`DecisionLog.record_rewards`) is checked and recorded in one transaction: all or nothing.

The reward contract (:mod:`rec_env.serve.reward_windows`): a request may be logged with an
attribution window (:attr:`DecisionLog.terms`, or its own ``window_seconds``) and the need of an
activation (:meth:`DecisionLog.activate`: the message was sent). Without a window a posted
reward is final at once. With one, rewards are *parts* that add up until the window, counted
from the activation if any, is over; closing the windows (:meth:`DecisionLog.close_windows`)
then records one final reward per decision, the sum of its parts or the default reward marked
``defaulted``, and only final rewards are numbered and replayed. A reward posted after a
window is over is *late*: kept in ``late_rewards``, never learned, never replaces the final one.

One writer per database: the log takes an exclusive OS lock on ``<db>.lock``
(:mod:`rec_env.serve.database_lock`), so a second server on the same file refuses to start
instead of sharing rewards, online state and the sampler stream with the first. Within the
process, one connection serves every thread, guarded by a lock; each request or batch is one
transaction, so a decision or a reward is either fully logged or not at all. The decisions of
concurrent requests share transactions (group commit, :mod:`rec_env.serve.group_commit`): each
caller returns once the transaction holding its rows committed, and if it fails, all of its
callers get the error. Recording a reward is one ``INSERT … ON CONFLICT DO NOTHING``, so even
writers in several processes (with ``exclusive=False``) store exactly one reward per event and
never fail on the constraint.

A PostgreSQL log (``path`` a ``postgresql://`` URL, :mod:`rec_env.datasets.decision_log_backend`)
takes no OS lock: several ``recenv serve`` replicas share it. Their write transactions take
turns on the database's advisory lock, as SQLite's writers do on its file, so every check and
insert above keeps its meaning across replicas and rewards are numbered in the order they
become visible.

``synchronous=NORMAL`` in WAL mode keeps every committed transaction across a crash of the
process; only a power loss can lose the last commits. Checkpoints run in a background thread
and keep the write-ahead log under ``wal_max_bytes`` (:mod:`rec_env.serve.wal_bound`); closing
the log checkpoints the rest and truncates the write-ahead log.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rec_env.datasets.decision_log_backend import LogConnection, database_errors, postgres_url
from rec_env.features import FEATURE_NAMES
from rec_env.serve.database_lock import DatabaseLock
from rec_env.serve.decision_log_schema import SCHEMA_VERSION, open_decision_log
from rec_env.serve.decision_reader import DecisionReader
from rec_env.serve.decision_records import (
    FLOAT,
    INT,
    ActivationBatch,
    ColumnarDecisions,
    EventBatchError,
    LateRewardError,
    LoggedDecision,
    NotActivatedError,
    RewardBatchError,
    RewardConflictError,
    RewardReceipt,
    RewardTerms,
    UnknownEventError,
)
from rec_env.serve.event_ids import event_ids, new_request_key
from rec_env.serve.group_commit import GroupCommit, deferred_commits
from rec_env.serve.reward_batches import (
    LateRow,
    check_activations,
    insert_final,
    locate_items,
    record_part,
    record_parts,
    requests_of,
    sort_items,
    terms_of_requests,
)
from rec_env.serve.reward_windows import (
    activation_time,
    any_due,
    close_due,
    close_unwindowed,
    insert_terms,
    record_late,
    terms_of,
)
from rec_env.serve.settings import DEFAULT_WAL_MAX_BYTES
from rec_env.serve.wal_bound import WalBound, WalCheckpointer

__all__ = [
    "CHECKPOINT_INTERVAL",
    "SCHEMA_VERSION",
    "ActivationBatch",
    "ColumnarDecisions",
    "DecisionLog",
    "EventBatchError",
    "LateRewardError",
    "LoggedDecision",
    "NotActivatedError",
    "RewardBatch",
    "RewardBatchError",
    "RewardConflictError",
    "RewardReceipt",
    "RewardTerms",
    "UnknownEventError",
]

CHECKPOINT_INTERVAL = 1.0
"""Seconds between periodic background checkpoints."""

REPLAY_CHUNK = 10_000
"""Rewards read per query by :meth:`DecisionLog.rewards_after`."""

_FLOAT = FLOAT
_INT = INT

_INSERT_STRATEGY_REQUEST = (
    "INSERT INTO requests (request_id, request_key, position_offset, created_at, "
    "model_version, policy_updates, n, features, allowed, probabilities) "
    "VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_DECISIONS = "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_REQUEST = (
    "INSERT INTO requests (request_id, request_key, position_offset, created_at, model_version, "
    "policy_updates, n, features, allowed, probabilities, actions, propensities, customer_ids, "
    "slates, slate_probabilities, holdout, policy_actions) "
    "VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class _RequestWrite:
    """One request's rows, ready for a transaction that may hold other requests too.

    Args:
        insert: The ``requests`` insert.
        request: Its parameters.
        created_at: When the request was decided.
        n: Its customers.
        terms: Its reward contract.
        decisions: Columns of its ``decisions`` rows after ``request_id, position`` (strategy
            requests), or None (item and slate requests keep their decisions as columns).
        seed: The sampler seed that drew its decisions, or None.
        draws: Uniform numbers it drew.
    """

    insert: str
    request: tuple[object, ...]
    created_at: float
    n: int
    terms: RewardTerms
    decisions: tuple[Sequence[object], ...] | None
    seed: int | None
    draws: int


@dataclass(frozen=True)
class RewardBatch:
    """The outcome of :meth:`DecisionLog.record_rewards`.

    Args:
        recorded: Rewards recorded now.
        duplicates: Items whose same reward was already recorded (nothing changed).
        late: Indices of the items whose event's window had closed (logged as late, not
            learned).
        first_seq: Seq of the first reward recorded now (the others follow it), or None.
        recorded_sum: Sum of the final rewards recorded now.
        pending: Of ``recorded``, parts added to a window still open (learned at its close).
    """

    recorded: int
    duplicates: int
    late: list[int] = field(default_factory=list)
    first_seq: int | None = None
    recorded_sum: float = 0.0
    pending: int = 0


class DecisionLog:
    """Append decisions and rewards to a SQLite database in WAL mode, from any thread.

    Args:
        path: Database file; created with its tables if missing (a version-1 log is upgraded).
            Or a ``postgresql://`` URL: a database shared by replicas (``exclusive`` and the
            write-ahead log settings do not apply).
        timeout: Seconds to wait for a lock held by another connection.
        checkpoint_interval: Seconds between periodic background checkpoints.
        wal_max_bytes: Bound on the write-ahead log file (it may exceed it by one transaction
            only if a transaction is larger than a quarter of the bound).
        exclusive: Take the database's writer lock, so no other process (or open log) writes
            it at the same time. Without it, several writers share the file safely (one
            reward per event), but each keeps its own online state and sampler.
        terms: The reward contract of requests logged without a window of their own
            (:attr:`terms`; default: none, a posted reward is final at once).

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
        terms: RewardTerms | None = None,
    ) -> None:
        url = postgres_url(path)
        self.path: Path | str = Path(path) if url is None else url
        self.terms = terms if terms is not None else RewardTerms()
        """The reward contract new requests are logged under (the service's settings)."""
        self._lock = threading.Lock()
        self._group: GroupCommit[_RequestWrite] = GroupCommit(self._transact)
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
            with contextlib.suppress(*database_errors()):
                if not self._connection.postgres:
                    self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._connection.close()
        if self._writer_lock is not None:
            self._writer_lock.release()

    @property
    def shared(self) -> bool:
        """True for a PostgreSQL log, which several replicas write at the same time."""
        return self._connection.postgres

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

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
        *,
        holdout: np.ndarray | None = None,
        policy_actions: np.ndarray | None = None,
        window_seconds: float | None = None,
        propensities: np.ndarray | None = None,
    ) -> list[str]:
        """Log the decisions of one request in one transaction (shared by concurrent requests).

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
            holdout: ``(n,)`` bool, True for held-out customers (their decision is the
                holdout's, not the policy's).
            policy_actions: ``(n,)`` int, apprentice mode: the action the model would have
                taken (-1: none) while ``actions`` holds the caller's baseline and
                ``probabilities`` the model's.
            window_seconds: The request's attribution window (default: :attr:`terms`'s).
            propensities: ``(n,)`` probability each served action had (default: its entry of
                ``probabilities``; apprentice mode: the baseline's own).

        Returns:
            The ``n`` new event ids.
        """
        n = features.shape[0]
        request_key, offset = new_request_key()
        ids = event_ids(request_key, offset, n)
        if propensities is None:
            propensities = probabilities[np.arange(n), actions]
        served = np.asarray(propensities, dtype=np.float64).tolist()
        terms = self._terms(window_seconds)
        created_at = time.time()
        request = (
            request_key,
            offset,
            created_at,
            model_version,
            policy_updates,
            n,
            np.ascontiguousarray(features, dtype=_FLOAT).tobytes(),
            np.ascontiguousarray(allowed, dtype=np.uint8).tobytes(),
            np.ascontiguousarray(probabilities, dtype=_FLOAT).tobytes(),
        )
        customers = customer_ids if customer_ids is not None else (None,) * n
        # every column is checked here: a bad one fails this call, not the group it would join
        columns = (
            ids,
            customers,
            actions.tolist(),
            served,
            _optional_column(holdout, n, bool),
            _optional_column(policy_actions, n, int),
        )
        if any(len(column) != n for column in columns):
            raise ValueError(f"expected {n} customer ids, actions and propensities")
        self._write(
            _RequestWrite(_INSERT_STRATEGY_REQUEST, request, created_at, n, terms, columns,
                          sampler_seed, n)
        )  # fmt: skip
        return ids

    def log_columnar(
        self,
        model_version: str,
        policy_updates: int,
        features: np.ndarray,
        decisions: ColumnarDecisions,
        customer_ids: Sequence[str | None] | None = None,
        sampler_seed: int | None = None,
        *,
        holdout: np.ndarray | None = None,
        policy_actions: np.ndarray | None = None,
        window_seconds: float | None = None,
    ) -> list[str]:
        """Log the decisions of one call to an item or slate model: one insert, in one transaction.

        Args:
            model_version: Version of the model that decided.
            policy_updates: Rewards the policy had learned from when it decided.
            features: ``(n, F)`` features.
            decisions: The decisions, as columns.
            customer_ids: Optional caller ids of the customers.
            sampler_seed: Seed of the generator that drew the decisions; the same transaction
                adds ``n * decisions.draws`` to its count of draws (:meth:`sampler_draws`).
            holdout: ``(n,)`` bool, as in :meth:`log_decisions` (stored as a blob).
            policy_actions: ``(n,)`` int, as in :meth:`log_decisions` (stored as a blob).
            window_seconds: The request's attribution window (default: :attr:`terms`'s).

        Returns:
            The ``n`` new event ids.
        """
        n = features.shape[0]
        request_key, offset = new_request_key()
        ids = event_ids(request_key, offset, n)
        given_ids = customer_ids is not None and any(c is not None for c in customer_ids)
        terms = self._terms(window_seconds)
        created_at = time.time()
        row = (
            request_key,
            offset,
            created_at,
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
            _optional_bytes(holdout, np.dtype(np.uint8)),
            _optional_bytes(policy_actions, _INT),
        )
        self._write(
            _RequestWrite(_INSERT_REQUEST, row, created_at, n, terms, None, sampler_seed,
                          n * decisions.draws)
        )  # fmt: skip
        return ids

    def _write(self, write: _RequestWrite) -> None:
        """Commit ``write``, grouped with concurrent ones (:mod:`rec_env.serve.group_commit`).

        Inside :func:`~rec_env.serve.group_commit.committed` the write is queued for a commit
        on the event loop and the caller there waits for it; elsewhere this returns once the
        transaction holding it committed.
        """
        deferred = deferred_commits()
        if deferred is None:
            self._group.commit(write)
        else:
            deferred.append(self._group.enqueue(write))

    def _transact(self, writes: list[_RequestWrite]) -> None:
        """Write the requests of ``writes`` in one transaction: all of them, or none."""
        with self._lock:
            connection = self._connection
            self._wal.before_write(connection)
            connection.execute("BEGIN IMMEDIATE")
            try:
                draws: dict[int, int] = {}
                for write in writes:
                    cursor = connection.execute(write.insert, write.request)
                    request_id = cursor.lastrowid
                    assert request_id is not None
                    if write.decisions is not None:
                        rows = zip(
                            (request_id,) * write.n, range(write.n), *write.decisions, strict=True
                        )
                        connection.executemany(_INSERT_DECISIONS, rows)
                    insert_terms(connection, request_id, write.created_at, write.n, write.terms)
                    if write.seed is not None:
                        draws[write.seed] = draws.get(write.seed, 0) + write.draws
                for seed, count in draws.items():  # one count per seed and transaction
                    _count_draws(connection, seed, count)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

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

    def record_reward(
        self, event_id: str, reward: float, part_id: str | None = None
    ) -> RewardReceipt:
        """Record the reward of a decision (or a part of it, inside its window).

        A decision logged without a window gets its reward at most once, in one atomic
        statement: it is final at once. A decision logged with a window collects parts, which
        add up until the window closes (:meth:`close_windows`); ``part_id`` names a part, and
        posting the same part again changes nothing. A reward posted once the window is over
        is late: kept in ``late_rewards``, never learned from.

        Args:
            event_id: The decision's event id.
            reward: The reward (finite).
            part_id: The part's id (windows only; None: the event's one unnamed part).

        Returns:
            The receipt; ``duplicate`` is True if the same reward (part) was already recorded,
            ``pending`` True for a part of a window still open.

        Raises:
            UnknownEventError: If no decision has this event id.
            NotActivatedError: If the decision needs an activation it does not have.
            RewardConflictError: If the event (part) already has a different reward.
            LateRewardError: If the event's reward window is over (the reward is logged as late).
        """
        with self._lock:
            located = self._reader.locate(event_id)
            decision = None if located is None else self._reader.read(event_id, located)
            if located is None or decision is None:
                raise UnknownEventError(event_id)
            connection = self._connection
            place = (located.request_id, located.position)
            terms = terms_of(connection, located.request_id)
            activated = activation_time(connection, *place) if terms is not None else None
            if terms is not None and terms.require_activation and activated is None:
                raise NotActivatedError(event_id)
            self._wal.before_write(connection)
            now = time.time()
            if terms is not None and terms.window_seconds is not None:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    receipt = record_part(
                        connection, decision, place, terms, activated, reward, part_id or "", now
                    )
                    connection.execute("COMMIT")
                except LateRewardError:
                    connection.execute("COMMIT")  # the late reward is kept for the record
                    raise
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                return receipt
            # check and insert in one statement: atomic across processes too (fetchall ends
            # the statement, which commits it)
            inserted = connection.atomic(
                "INSERT INTO rewards (event_id, request_id, position, reward, received_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING seq",
                (event_id, *place, reward, now),
            )
            if inserted:
                return RewardReceipt(decision, reward, duplicate=False, seq=inserted[0][0])
            seq, recorded, defaulted = connection.execute(
                "SELECT seq, reward, defaulted FROM rewards WHERE event_id = ?", (event_id,)
            ).fetchone()
            if defaulted:
                record_late(connection, [(event_id, part_id or "", *place, reward, now)])
        if defaulted:
            raise LateRewardError(event_id, recorded)
        if recorded != reward:
            raise RewardConflictError(event_id, recorded)
        return RewardReceipt(decision, reward, duplicate=True, seq=seq)

    def record_rewards(
        self,
        event_ids: Sequence[str],
        rewards: Sequence[float],
        part_ids: Sequence[str | None] | None = None,
    ) -> RewardBatch:
        """Record a batch of rewards in one transaction: all of them, or none on an error.

        Each item is held to :meth:`record_reward`'s rules: an event without a window gets its
        reward at most once (the same reward again is a duplicate, also within the batch); an
        event with a window gets the item as a part (the same part again is a duplicate). An
        item whose event's window closed or is over is *late*: logged in ``late_rewards``,
        listed in ``late``, never learned, and not an error. The new final rewards are
        numbered in event id order (their index grows in order).

        An event id names its request and position, and a request's ids are all its positions
        spelt in lower case, so the batch is checked against one lookup per request; rewards
        already recorded are found only if the insert skipped some.

        Args:
            event_ids: The decisions' event ids.
            rewards: Their rewards (finite), as many.
            part_ids: The parts' ids (None, or None items: the event's one unnamed part).

        Returns:
            The counts, the late items and the seq of the first reward recorded now.

        Raises:
            RewardBatchError: Naming the first item whose event is unknown, needs an activation
                it does not have, or already has (or gets earlier in the batch) a different
                reward (part); nothing is recorded.
        """
        n = len(event_ids)
        if len(rewards) != n or (part_ids is not None and len(part_ids) != n):
            raise ValueError(f"{n} event ids but {len(rewards)} rewards")
        parts = part_ids if part_ids is not None else (None,) * n
        with self._lock:
            connection = self._connection
            self._wal.before_write(connection)
            connection.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                requests = requests_of(connection, event_ids)
                terms = terms_of_requests(connection, [r[0] for r in requests.values()])
                items = sort_items(event_ids, rewards, requests, terms, now)
                check_activations(connection, items.to_activate, items.errors)
                rows = items.rows
                last = connection.execute("SELECT COALESCE(MAX(seq), 0) FROM rewards").fetchone()[0]
                late: list[int] = []
                late_rows: list[LateRow] = []
                inserted, skipped = insert_final(
                    connection, items, rewards, parts, last, late, late_rows
                )
                late_direct = len(late)
                pending, part_duplicates = record_parts(
                    connection, items, event_ids, rewards, parts, now, late, late_rows
                )
                errors = items.errors
                if errors:
                    raise min(errors, key=lambda error: error.index)
                record_late(connection, late_rows)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        total = math.fsum(row[3] for row in rows) - math.fsum(rewards[i] for i in skipped)
        return RewardBatch(
            inserted + pending,
            items.duplicates + len(skipped) - late_direct + part_duplicates,
            sorted(late),
            last + 1 if inserted else None,
            recorded_sum=total,
            pending=pending,
        )

    def activate(
        self, event_ids: Sequence[str], activated_at: float | Sequence[float | None] | None = None
    ) -> ActivationBatch:
        """Mark decisions as delivered, in one transaction: all of them, or none on an error.

        A decision's first activation stands: activating it again changes nothing (a
        duplicate). An activation starts the decision's reward window (never before the
        decision itself) and, for a request logged with ``require_activation``, is what lets
        the decision get rewards at all.

        Args:
            event_ids: The decisions' event ids.
            activated_at: Unix seconds of the activation, one for all or one per item (None:
                now).

        Returns:
            The counts.

        Raises:
            EventBatchError: Naming the first item whose event is unknown; nothing is recorded.
        """
        n = len(event_ids)
        times: Sequence[float | None]
        if activated_at is None or isinstance(activated_at, int | float):
            times = (activated_at,) * n  # type: ignore[assignment]
        else:
            times = activated_at
            if len(times) != n:
                raise ValueError(f"{n} event ids but {len(times)} activation times")
        with self._lock:
            connection = self._connection
            self._wal.before_write(connection)
            connection.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                located, errors = locate_items(event_ids, requests_of(connection, event_ids))
                if errors:
                    raise errors[0]
                rows = [
                    (*place, event_id, now if at is None else float(at))
                    for event_id, place, at in zip(event_ids, located, times, strict=True)
                ]
                before = connection.total_changes
                connection.executemany(
                    "INSERT INTO activations VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (request_id, position) DO NOTHING",
                    rows,
                )
                activated = connection.total_changes - before
                if activated:  # a closed request may now have a window to close
                    connection.executemany(
                        "UPDATE request_terms SET closed = 0 WHERE request_id = ? AND closed = 1",
                        ((request_id,) for request_id in {row[0] for row in rows}),
                    )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return ActivationBatch(activated, n - activated)

    def activation(self, event_id: str) -> float | None:
        """When the decision ``event_id`` was activated (Unix seconds), or None.

        Raises:
            UnknownEventError: If no decision has this event id.
        """
        with self._lock:
            located = self._reader.locate(event_id)
            if located is None or self._reader.read(event_id, located) is None:
                raise UnknownEventError(event_id)
            return activation_time(self._connection, located.request_id, located.position)

    def close_windows(
        self, as_of: float, window_seconds: float | None = None, default_reward: float = 0.0
    ) -> int:
        """Close the reward windows that are over at ``as_of``, in one transaction.

        A request logged with a window closes by its own window: each decision whose window
        (from its activation, else from the decision) is over gets one final reward, the sum of
        its parts, or ``default_reward`` marked ``defaulted`` if it has none. With
        ``window_seconds``, every decision logged without a window and older than it (from its
        activation, if any) that has no reward gets ``default_reward``, marked ``defaulted``.
        Decisions of requests that need activation close only once activated. A reward posted
        later is late (:class:`LateRewardError`) and never replaces the final one. The final
        rewards are numbered in the order of the decisions.

        Args:
            as_of: Unix time to close the windows at.
            window_seconds: The window of decisions logged without one (None: they stay open).
            default_reward: The reward of a decision nobody posted a reward for.

        Returns:
            The number of final rewards recorded.
        """
        with self._lock:
            connection = self._connection
            if window_seconds is None and not any_due(connection, as_of):
                return 0  # the background closer's usual tick: no write transaction
            self._wal.before_write(connection)
            connection.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                closed = close_due(connection, as_of, default_reward, now)
                if window_seconds is not None:
                    before = as_of - window_seconds
                    closed += close_unwindowed(connection, before, default_reward, now)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return closed

    def _terms(self, window_seconds: float | None) -> RewardTerms:
        """The terms of a new request: :attr:`terms`, with its own window if it gives one."""
        if window_seconds is None:
            return self.terms
        return RewardTerms(window_seconds, self.terms.require_activation)

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

    def customer_decisions(
        self, customer_ids: set[str]
    ) -> tuple[list[str], list[str], list[float]]:
        """The decisions of ``customer_ids`` with one row each (strategy models' requests).

        Returns:
            Their customer ids, event ids and decision times (Unix seconds), in log order.
            Memory grows with the matches only: the log is read in chunks.
        """
        customers: list[str] = []
        events: list[str] = []
        times: list[float] = []
        with self._lock:
            cursor = self._connection.execute(
                "SELECT d.customer_id, d.event_id, r.created_at FROM decisions AS d "
                "JOIN requests AS r ON r.request_id = d.request_id "
                "WHERE d.customer_id IS NOT NULL ORDER BY d.request_id, d.position"
            )
            while rows := cursor.fetchmany(REPLAY_CHUNK):
                for customer, event, created_at in rows:
                    if customer in customer_ids:
                        customers.append(customer)
                        events.append(event)
                        times.append(float(created_at))
        return customers, events, times

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


def _count_draws(connection: LogConnection, seed: int | None, draws: int) -> None:
    """Add ``draws`` to the uniforms drawn with ``seed`` (in the caller's transaction)."""
    if seed is not None:
        connection.execute(
            "INSERT INTO sampler_draws VALUES (?, ?) "
            "ON CONFLICT (seed) DO UPDATE SET draws = sampler_draws.draws + excluded.draws",
            (str(seed), draws),
        )


def _optional_column(values: np.ndarray | None, n: int, kind: type) -> Sequence[object]:
    """``values`` as ``n`` Python numbers (bools as 0/1), or ``n`` NULLs."""
    if values is None:
        return (None,) * n
    array = np.asarray(values)
    if array.shape != (n,):
        raise ValueError(f"expected {n} values, got shape {array.shape}")
    return array.astype(np.int64).tolist() if kind in (bool, int) else array.tolist()


def _optional_bytes(array: np.ndarray | None, dtype: np.dtype) -> bytes | None:
    """``array``'s bytes as ``dtype``, or None."""
    return None if array is None else np.ascontiguousarray(array, dtype=dtype).tobytes()
