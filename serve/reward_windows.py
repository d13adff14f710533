"""The reward contract in SQL: request terms, activations, reward parts and closing windows.

Functions over the decision log's connection, called by
:class:`~rec_env.serve.decision_log.DecisionLog` holding its lock, inside its transaction.

A request logged with a window (``request_terms.window_seconds``) collects the rewards of each
decision as *parts* (``reward_parts``), which add up. Its window starts at the decision's
activation if it has one (never before the decision), else at the decision. Once the window is
over, :func:`close_due` writes one final row per decision into ``rewards``: the sum of its
parts, or the default reward marked ``defaulted`` if it has none. Learners replay ``rewards``
by seq, so they learn closed windows only, non-buyers included. A request with
``require_activation`` gives final rows to its activated decisions only. A request without
terms keeps the rules of version 4: a posted reward is final at once, and an explicit close
(:func:`close_unwindowed`) gives the old decisions without one the default.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from rec_env.datasets.decision_log_backend import LogConnection
from rec_env.serve.decision_records import RewardTerms
from rec_env.serve.event_ids import event_ids

__all__ = [
    "StoredTerms",
    "activated_positions",
    "activation_time",
    "any_due",
    "close_due",
    "close_unwindowed",
    "insert_terms",
    "record_late",
    "terms_of",
]

_INSERT_FINAL = (
    "INSERT INTO rewards (event_id, request_id, position, reward, received_at, defaulted) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)
# One row request's decisions whose window is over: the sum of their parts, else the default.
_CLOSE_ROW_REQUEST = (
    "INSERT INTO rewards ({seq}event_id, request_id, position, reward, received_at, defaulted) "
    "SELECT {next_seq}d.event_id, d.request_id, d.position, COALESCE(p.total, :default), :now, "
    "CASE WHEN p.total IS NULL THEN 1 END FROM decisions AS d "
    "LEFT JOIN activations AS a ON a.request_id = d.request_id AND a.position = d.position "
    "LEFT JOIN (SELECT position, SUM(reward) AS total FROM reward_parts "
    "WHERE request_id = :request GROUP BY position) AS p ON p.position = d.position "
    "WHERE d.request_id = :request AND (:require = 0 OR a.activated_at IS NOT NULL) "
    "AND CASE WHEN a.activated_at > :created THEN a.activated_at ELSE :created END "
    "+ :window < :as_of {unrewarded}"
    "ORDER BY d.position ON CONFLICT (event_id) DO NOTHING"
)
# Decisions of row requests without a window logged before :before, given the default.
_CLOSE_UNWINDOWED_ROWS = (
    "INSERT INTO rewards ({seq}event_id, request_id, position, reward, received_at, defaulted) "
    "SELECT {next_seq}d.event_id, d.request_id, d.position, :default, :now, 1 FROM requests AS r "
    "JOIN decisions AS d ON d.request_id = r.request_id "
    "LEFT JOIN request_terms AS t ON t.request_id = r.request_id "
    "LEFT JOIN activations AS a ON a.request_id = d.request_id AND a.position = d.position "
    "WHERE r.created_at < :before AND r.actions IS NULL AND t.window_seconds IS NULL "
    "AND (COALESCE(t.require_activation, 0) = 0 OR a.activated_at IS NOT NULL) "
    "AND COALESCE(a.activated_at, r.created_at) < :before {unrewarded}"
    "ORDER BY d.request_id, d.position ON CONFLICT (event_id) DO NOTHING"
)


def _closing(statement: str, order: str, connection: LogConnection) -> str:
    """``statement`` for the connection's database.

    SQLite numbers the inserted rows itself (their rowid), in insertion order. On PostgreSQL
    the statement numbers them, after the largest seq (read in the same statement, under the
    writers' lock), in the same order: the per-row seq trigger it then skips capped a close
    near 20,000 rows a second. Decisions that already have a final reward are left out there
    rather than skipped by the conflict clause, so that the seqs stay gap-free.
    """
    if not connection.postgres:
        return statement.format(seq="", next_seq="", unrewarded="")
    return statement.format(
        seq="seq, ",
        next_seq="(SELECT COALESCE(MAX(seq), 0) FROM rewards) + "
        f"row_number() OVER (ORDER BY {order}), ",
        unrewarded="AND NOT EXISTS (SELECT 1 FROM rewards AS w WHERE w.event_id = d.event_id) ",
    )


class StoredTerms(NamedTuple):
    """A request's row of ``request_terms``."""

    created_at: float
    window_seconds: float | None
    require_activation: bool


def insert_terms(
    connection: LogConnection, request_id: int, created_at: float, n: int, terms: RewardTerms
) -> None:
    """Record the terms of a new request (nothing for the version-4 defaults)."""
    if terms.stored:
        connection.execute(
            "INSERT INTO request_terms (request_id, created_at, n, window_seconds, "
            "require_activation) VALUES (?, ?, ?, ?, ?)",
            (request_id, created_at, n, terms.window_seconds, int(terms.require_activation)),
        )


def terms_of(connection: LogConnection, request_id: int) -> StoredTerms | None:
    """The terms of a request, or None if it has the version-4 defaults."""
    row = connection.execute(
        "SELECT created_at, window_seconds, require_activation FROM request_terms "
        "WHERE request_id = ?",
        (request_id,),
    ).fetchone()
    return None if row is None else StoredTerms(row[0], row[1], bool(row[2]))


def activation_time(connection: LogConnection, request_id: int, position: int) -> float | None:
    """When a decision was activated, or None."""
    row = connection.execute(
        "SELECT activated_at FROM activations WHERE request_id = ? AND position = ?",
        (request_id, position),
    ).fetchone()
    return None if row is None else float(row[0])


def activated_positions(connection: LogConnection, request_id: int) -> dict[int, float]:
    """``position -> activated_at`` of a request's activated decisions."""
    return dict(
        connection.execute(
            "SELECT position, activated_at FROM activations WHERE request_id = ?", (request_id,)
        ).fetchall()
    )


def record_late(
    connection: LogConnection,
    rows: Iterable[tuple[str, str, int, int, float, float]],
) -> None:
    """Keep late rewards ``(event_id, part_id, request_id, position, reward, received_at)``.

    The first late reward of an (event, part) is kept; they are never learned from.
    """
    connection.executemany(
        "INSERT INTO late_rewards VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (event_id, part_id) DO NOTHING",
        rows,
    )


_DUE = (
    "FROM request_terms WHERE closed = 0 AND window_seconds IS NOT NULL "
    "AND created_at + window_seconds < ?"
)


def any_due(connection: LogConnection, as_of: float) -> bool:
    """True if some request has a window that may be over at ``as_of``."""
    return connection.execute(f"SELECT 1 {_DUE} LIMIT 1", (as_of,)).fetchone() is not None


def close_due(connection: LogConnection, as_of: float, default_reward: float, now: float) -> int:
    """Close every window over at ``as_of``: the sum of the parts, or the default.

    Requests are closed in request order and their decisions in position order, so the final
    rewards are numbered in the order of the decisions.

    Returns:
        The number of final rewards recorded.
    """
    due = connection.execute(
        f"SELECT request_id, created_at, n, window_seconds, require_activation {_DUE} "
        "ORDER BY request_id",
        (as_of,),
    ).fetchall()
    closed = 0
    for request_id, created_at, n, window, require in due:
        before = connection.total_changes
        row_request = connection.execute(
            "SELECT 1 FROM decisions WHERE request_id = ? LIMIT 1", (request_id,)
        ).fetchone()
        if row_request is not None:
            connection.execute(
                _closing(_CLOSE_ROW_REQUEST, "d.position", connection),
                {
                    "default": default_reward,
                    "now": now,
                    "request": request_id,
                    "require": require,
                    "created": created_at,
                    "window": window,
                    "as_of": as_of,
                },
            )
        else:
            _close_columnar(
                connection, request_id, created_at, n, window, bool(require), as_of,
                default_reward, now,
            )  # fmt: skip
        closed += connection.total_changes - before
        _mark_closed(connection, request_id, n, bool(require))
    return closed


def _close_columnar(
    connection: LogConnection,
    request_id: int,
    created_at: float,
    n: int,
    window: float,
    require: bool,
    as_of: float,
    default_reward: float,
    now: float,
) -> None:
    """:func:`close_due` for one columnar request (its decisions have no rows to join)."""
    key, offset = connection.execute(
        "SELECT request_key, position_offset FROM requests WHERE request_id = ?", (request_id,)
    ).fetchone()
    activated = activated_positions(connection, request_id)
    start = np.full(n, created_at)
    if activated:
        positions = np.fromiter(activated.keys(), dtype=np.int64)
        times = np.fromiter(activated.values(), dtype=np.float64)
        start[positions] = np.maximum(times, created_at)
    eligible = start + window < as_of
    if require:
        is_activated = np.zeros(n, dtype=bool)
        is_activated[list(activated)] = True
        eligible &= is_activated
    sums = dict(
        connection.execute(
            "SELECT position, SUM(reward) FROM reward_parts WHERE request_id = ? GROUP BY position",
            (request_id,),
        ).fetchall()
    )
    ids = event_ids(key, offset, n)
    rows = []
    for position in np.flatnonzero(eligible).tolist():
        total = sums.get(position)
        rows.append(
            (
                ids[position],
                request_id,
                position,
                default_reward if total is None else total,
                now,
                1 if total is None else None,
            )
        )
    connection.executemany(_INSERT_FINAL, rows)


def _mark_closed(connection: LogConnection, request_id: int, n: int, require: bool) -> None:
    """Mark a request closed once every decision that can close has its final reward.

    With ``require_activation`` that is every activated decision; an activation reopens it.
    """
    key = connection.execute(
        "SELECT request_key FROM requests WHERE request_id = ?", (request_id,)
    ).fetchone()[0]
    closed = connection.execute(  # the ids of a request share its key: a range of the index
        "SELECT COUNT(*) FROM rewards WHERE event_id >= ? AND event_id < ?", (key, key + "~")
    ).fetchone()[0]
    eligible = n
    if require:
        eligible = connection.execute(
            "SELECT COUNT(*) FROM activations WHERE request_id = ?", (request_id,)
        ).fetchone()[0]
    if closed >= eligible:
        connection.execute(
            "UPDATE request_terms SET closed = 1 WHERE request_id = ?", (request_id,)
        )


def close_unwindowed(
    connection: LogConnection, before: float, default_reward: float, now: float
) -> int:
    """Give the default to decisions without a window, logged (or activated) before ``before``.

    Decisions of requests that need activation close only if activated, and their window
    starts at the activation. Row requests first, then columnar ones, each in order.

    Returns:
        The number of default rewards recorded.
    """
    start = connection.total_changes
    connection.execute(
        _closing(_CLOSE_UNWINDOWED_ROWS, "d.request_id, d.position", connection),
        {"default": default_reward, "now": now, "before": before},
    )
    columnar = connection.execute(
        "SELECT r.request_id, r.request_key, r.position_offset, r.n, t.require_activation "
        "FROM requests AS r LEFT JOIN request_terms AS t ON t.request_id = r.request_id "
        "WHERE r.created_at < ? AND r.actions IS NOT NULL AND t.window_seconds IS NULL "
        "ORDER BY r.request_id",
        (before,),
    ).fetchall()
    for request_id, key, offset, n, require in columnar:
        ids = event_ids(key, offset, n)
        positions: Iterable[int] = range(n)
        activated = activated_positions(connection, request_id)
        if require:
            positions = sorted(p for p, at in activated.items() if at < before)
        elif activated:
            positions = [p for p in range(n) if activated.get(p, -np.inf) < before]
        connection.executemany(
            _INSERT_FINAL,
            ((ids[p], request_id, p, default_reward, now, 1) for p in positions),
        )
    return connection.total_changes - start
