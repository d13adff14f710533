"""Checking and recording rewards and parts in bulk, for :class:`DecisionLog`'s batches.

Functions over the decision log's connection, called holding its lock, inside its transaction.
An event id names its request and position, and a request's ids are all its positions spelt in
lower case, so a batch is checked against one lookup per request (:func:`requests_of`), then
sorted in one pass (:func:`sort_items`): items of requests without a window become rows of
``rewards`` (final at once, as in schema 4), items of requests with a window become parts
(:func:`record_parts`).

Nothing here costs a statement per item, which on PostgreSQL is a network round trip each: a
batch's activations, parts and final rewards are staged in a temporary table
(:meth:`~rec_env.datasets.decision_log_backend.LogConnection.stage`, one ``COPY`` on
PostgreSQL) and checked with one join; the final rewards go in with one ``INSERT … SELECT``
(:func:`insert_final`). ``benchmarks/rewards.py`` measures it against a bare ``COPY``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rec_env.datasets.decision_log_backend import LogConnection
from rec_env.serve.decision_records import (
    LateRewardError,
    LoggedDecision,
    RewardBatchError,
    RewardConflictError,
    RewardReceipt,
)
from rec_env.serve.event_ids import KEY_LENGTH, POSITIONS
from rec_env.serve.reward_windows import StoredTerms, record_late

__all__ = [
    "LateRow",
    "Located",
    "SortedItems",
    "check_activations",
    "insert_final",
    "locate_items",
    "record_part",
    "record_parts",
    "recorded_before",
    "requests_of",
    "sort_items",
    "terms_of_requests",
]

Located = tuple[int, int]
"""``(request_id, position)`` of a decision."""
LateRow = tuple[str, str, int, int, float, float]
"""A row of ``late_rewards``: event, part, request, position, reward, time."""
RewardRow = tuple[str, int, int, float, float]
"""A row of ``rewards`` without ``defaulted``: event, request, position, reward, time."""

_INSERT_REWARD = (
    "INSERT INTO rewards (event_id, request_id, position, reward, received_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)
_FINALS = "reward_batch"
"""PostgreSQL: the temporary table a batch's final rewards are staged in."""
_FINAL_COLUMNS = (
    ("seq", "int8"),
    ("event_id", "text"),
    ("request_id", "int8"),
    ("position", "int8"),
    ("reward", "float8"),
    ("received_at", "float8"),
)
_UNSTAGE_RECORDED = (
    f"DELETE FROM {_FINALS} AS b USING rewards AS r WHERE r.event_id = b.event_id "
    "RETURNING b.event_id, b.request_id, b.position, b.reward, b.received_at, r.seq, r.reward, "
    "r.defaulted"
)
# numbered here, not by the trigger (which skips a row given its seq): the writers' lock is
# held, so no other writer inserts between reading the last seq and these statements
_INSERT_STAGED = (
    "INSERT INTO rewards (seq, event_id, request_id, position, reward, received_at) "
    f"SELECT seq, event_id, request_id, position, reward, received_at FROM {_FINALS}"
)
_INSERT_RENUMBERED = (
    "INSERT INTO rewards (seq, event_id, request_id, position, reward, received_at) "
    "SELECT ? + row_number() OVER (ORDER BY seq), event_id, request_id, position, reward, "
    f"received_at FROM {_FINALS}"
)
_TO_ACTIVATE = "reward_activation_batch"
"""The temporary table of a batch's items whose decision needs an activation."""
_TO_ACTIVATE_COLUMNS = (("item", "int8"), ("request_id", "int8"), ("position", "int8"))
_NOT_ACTIVATED = (
    f"SELECT k.item FROM {_TO_ACTIVATE} AS k LEFT JOIN activations AS a "
    "ON a.request_id = k.request_id AND a.position = k.position WHERE a.request_id IS NULL"
)
_PARTS = "reward_part_batch"
"""The temporary table of a batch's parts (the first item of each)."""
_PART_STAGE_COLUMNS = (
    ("item", "int8"),
    ("event_id", "text"),
    ("part_id", "text"),
    ("request_id", "int8"),
    ("position", "int8"),
    ("reward", "float8"),
)
# window_over in SQL: the window starts at the activation if later than the decision
_OVER = (
    "CASE WHEN a.activated_at > t.created_at THEN a.activated_at ELSE t.created_at END "
    "+ t.window_seconds <= ?"
)
# the parts that cannot just be recorded: late (the window closed or is over) or recorded before
_SETTLED_PARTS = (
    f"SELECT k.item, k.event_id, k.part_id, k.request_id, k.position, r.seq IS NOT NULL OR "
    f"{_OVER}, p.reward FROM {_PARTS} AS k "
    "JOIN request_terms AS t ON t.request_id = k.request_id "
    "LEFT JOIN rewards AS r ON r.event_id = k.event_id "
    "LEFT JOIN activations AS a ON a.request_id = k.request_id AND a.position = k.position "
    "LEFT JOIN reward_parts AS p ON p.event_id = k.event_id AND p.part_id = k.part_id "
    f"WHERE r.seq IS NOT NULL OR p.reward IS NOT NULL OR {_OVER}"
)
_INSERT_PARTS = (
    "INSERT INTO reward_parts (event_id, part_id, request_id, position, reward, received_at) "
    f"SELECT event_id, part_id, request_id, position, reward, ? FROM {_PARTS} "
    "ORDER BY event_id, part_id"
)
_PART_COLUMNS = (
    ("event_id", "text"),
    ("part_id", "text"),
    ("request_id", "int8"),
    ("position", "int8"),
    ("reward", "float8"),
    ("received_at", "float8"),
)

_KEYS_PER_QUERY = 500
"""Keys looked up per query."""
_HEX_DIGITS = "0123456789abcdef"
_NOT_ACTIVATED_MESSAGE = (
    "the decision is not activated: this service learns only from delivered decisions "
    "(require_activation); activate it first"
)


def requests_of(
    connection: LogConnection, event_ids: Sequence[str]
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


def terms_of_requests(
    connection: LogConnection, request_ids: Sequence[int]
) -> dict[int, StoredTerms]:
    """The terms of the requests (those without terms are left out)."""
    ids = sorted(set(request_ids))
    terms: dict[int, StoredTerms] = {}
    for start in range(0, len(ids), _KEYS_PER_QUERY):
        chunk = ids[start : start + _KEYS_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        for request_id, created_at, window, require in connection.execute(
            "SELECT request_id, created_at, window_seconds, require_activation FROM "
            f"request_terms WHERE request_id IN ({marks})",
            chunk,
        ):
            terms[request_id] = StoredTerms(created_at, window, bool(require))
    return terms


def _locate(event_id: str, requests: dict[str, tuple[int, int, int]]) -> Located | None:
    """Where a decision is, or None if no decision has this (canonical) id."""
    request = requests.get(event_id[:KEY_LENGTH])
    suffix = event_id[KEY_LENGTH:]
    # canonical: 8 lower-case hex digits (no sign, prefix, "_" nor upper case, which int takes)
    if request is None or len(suffix) != 8 or suffix.strip(_HEX_DIGITS):
        return None
    position = (int(suffix, 16) - request[1]) % POSITIONS
    return (request[0], position) if position < request[2] else None


def _unknown(i: int, event_id: str) -> RewardBatchError:
    return RewardBatchError(i, "event_id", "unknown", f"no decision with id {event_id}")


def locate_items(
    event_ids: Sequence[str], requests: dict[str, tuple[int, int, int]]
) -> tuple[list[Located | None], list[RewardBatchError]]:
    """Where each item's decision is (None if unknown), and the unknowns."""
    located = [_locate(event_id, requests) for event_id in event_ids]
    errors = [_unknown(i, event_ids[i]) for i, place in enumerate(located) if place is None]
    return located, errors


class SortedItems:
    """A batch sorted by :func:`sort_items`.

    Attributes:
        rows: The rows to insert into ``rewards`` (an event's first item, in event id order).
        first: The index of each final-at-once event's first item.
        windowed: ``(index, place)`` of the items whose request has a window.
        to_activate: ``(index, place)`` of the items whose request needs activation.
        errors: The unknown items and the conflicts within the batch.
        duplicates: Final-at-once items repeating an earlier one of the batch.
    """

    def __init__(self) -> None:
        self.rows: list[RewardRow] = []
        self.first: dict[str, int] = {}
        self.windowed: list[tuple[int, Located]] = []
        self.to_activate: list[tuple[int, Located]] = []
        self.errors: list[RewardBatchError] = []
        self.duplicates = 0


def sort_items(
    event_ids: Sequence[str],
    rewards: Sequence[float],
    requests: dict[str, tuple[int, int, int]],
    terms: dict[int, StoredTerms],
    now: float,
) -> SortedItems:
    """Locate every item and sort it, in one pass (:class:`SortedItems`).

    A later item of a final-at-once event is a duplicate if its reward is the same as the
    first's, else a conflict.
    """
    items = SortedItems()
    rows, first, errors = items.rows, items.first, items.errors
    for i, event_id in enumerate(event_ids):
        place = _locate(event_id, requests)
        if place is None:
            errors.append(_unknown(i, event_id))
            continue
        if terms:
            stored = terms.get(place[0])
            if stored is not None:
                if stored.require_activation:
                    items.to_activate.append((i, place))
                if stored.window_seconds is not None:
                    items.windowed.append((i, place))
                    continue
        earlier = first.setdefault(event_id, i)
        if earlier == i:
            rows.append((event_id, *place, rewards[i], now))
        elif rewards[earlier] != rewards[i]:
            message = f"event {event_id} already has a different reward ({rewards[earlier]!r})"
            errors.append(RewardBatchError(i, "reward", "conflict", message))
        else:
            items.duplicates += 1
    rows.sort(key=_event_id)  # the event ids of rows differ: the same order as the rows'
    return items


def _event_id(row: RewardRow) -> str:
    return row[0]


def check_activations(
    connection: LogConnection,
    items: Sequence[tuple[int, Located]],
    errors: list[RewardBatchError],
) -> None:
    """Append an error for each item whose decision needs an activation and has none."""
    if not items:
        return
    connection.stage(_TO_ACTIVATE, _TO_ACTIVATE_COLUMNS, ((i, *place) for i, place in items))
    for (i,) in connection.execute(_NOT_ACTIVATED):
        errors.append(RewardBatchError(i, "event_id", "not_activated", _NOT_ACTIVATED_MESSAGE))


def insert_final(
    connection: LogConnection,
    items: SortedItems,
    rewards: Sequence[float],
    parts: Sequence[str | None],
    last: int,
    late: list[int],
    late_rows: list[LateRow],
) -> tuple[int, list[int]]:
    """Insert the batch's final rewards (``items.rows``) whose event has none yet.

    They are numbered ``last + 1``, ``last + 2``, … in event id order (``last``: the largest
    seq, read in the same transaction). The rows of events that had a reward before the batch
    are sorted by :func:`recorded_before`. On SQLite an ``executemany``. On PostgreSQL the
    numbered rows are copied into a temporary table (one ``COPY``), those whose event has a
    reward are taken out of it (one join, which finds them), and the rest go in with one
    ``INSERT … SELECT``: a per-row statement and trigger call would cost several times more.

    Returns:
        The rewards inserted, and the indices of the items whose row was not.
    """
    rows = items.rows
    if not connection.postgres:
        before = connection.total_changes
        connection.executemany(_INSERT_REWARD, rows)
        inserted = connection.total_changes - before
        if inserted == len(rows):
            return inserted, []
        found = (
            (row, *connection.execute(
                "SELECT seq, reward, defaulted FROM rewards WHERE event_id = ?", (row[0],)
            ).fetchone())
            for row in rows
        )  # fmt: skip
        return inserted, recorded_before(items, found, rewards, parts, last, late, late_rows)
    if not rows:
        return 0, []
    numbered = ((seq, *row) for seq, row in enumerate(rows, last + 1))
    connection.stage(_FINALS, _FINAL_COLUMNS, numbered)
    found = [(row[:5], *row[5:]) for row in connection.execute(_UNSTAGE_RECORDED)]
    if not found:
        return connection.execute(_INSERT_STAGED).rowcount, []
    # the rows left have gaps in their seqs: number them again, in the same order
    inserted = connection.execute(_INSERT_RENUMBERED, (last,)).rowcount
    return inserted, recorded_before(items, found, rewards, parts, last, late, late_rows)


def recorded_before(
    items: SortedItems,
    found: Iterable[tuple[RewardRow, int, float, int | None]],
    rewards: Sequence[float],
    parts: Sequence[str | None],
    last: int,
    late: list[int],
    late_rows: list[LateRow],
) -> list[int]:
    """Sort the rows whose event had a reward before the batch: late, duplicate or conflict.

    Appends the late events' first items to ``late`` and ``late_rows``, and the conflicts to
    ``items.errors``.

    Args:
        items: The batch.
        found: ``(row, seq, reward, defaulted)``: rows of ``items.rows`` (in any order) and
            their event's stored reward (numbered above ``last``: inserted now).
        rewards: The batch's rewards.
        parts: The batch's part ids.
        last: The largest seq before the batch.
        late: The indices of late items.
        late_rows: The rows of ``late_rewards`` to insert.

    Returns:
        The indices of the items whose row was not inserted (the late ones included).
    """
    skipped = []
    for (event_id, request_id, position, _, now), seq, recorded, defaulted in found:
        if seq > last:
            continue  # inserted now
        i = items.first[event_id]
        skipped.append(i)
        if defaulted:
            late.append(i)
            late_rows.append((event_id, parts[i] or "", request_id, position, rewards[i], now))
        elif recorded != rewards[i]:
            message = f"event {event_id} already has a different reward ({recorded!r})"
            items.errors.append(RewardBatchError(i, "reward", "conflict", message))
    return skipped


def window_over(terms: StoredTerms, activated: float | None, now: float) -> bool:
    """True if a decision's window is over at ``now`` (from its activation, else the decision)."""
    assert terms.window_seconds is not None
    start = terms.created_at if activated is None else max(activated, terms.created_at)
    return now >= start + terms.window_seconds


def record_part(
    connection: LogConnection,
    decision: LoggedDecision,
    place: Located,
    terms: StoredTerms,
    activated: float | None,
    reward: float,
    part_id: str,
    now: float,
) -> RewardReceipt:
    """Record one part of a windowed decision's reward.

    Raises:
        LateRewardError: If the window closed or is over (the reward is kept as late).
        RewardConflictError: If the part has a different reward.
    """
    event_id = decision.event_id
    final = connection.execute(
        "SELECT reward FROM rewards WHERE event_id = ?", (event_id,)
    ).fetchone()
    if final is not None or window_over(terms, activated, now):
        record_late(connection, [(event_id, part_id, *place, reward, now)])
        raise LateRewardError(event_id, None if final is None else final[0])
    recorded = connection.execute(
        "SELECT reward FROM reward_parts WHERE event_id = ? AND part_id = ?", (event_id, part_id)
    ).fetchone()
    if recorded is not None:
        if recorded[0] != reward:
            raise RewardConflictError(event_id, recorded[0], part_id)
        return RewardReceipt(decision, reward, duplicate=True, seq=0, pending=True)
    connection.execute(
        "INSERT INTO reward_parts VALUES (?, ?, ?, ?, ?, ?)",
        (event_id, part_id, *place, reward, now),
    )
    return RewardReceipt(decision, reward, duplicate=False, seq=0, pending=True)


def record_parts(
    connection: LogConnection,
    items: SortedItems,
    event_ids: Sequence[str],
    rewards: Sequence[float],
    parts: Sequence[str | None],
    now: float,
    late: list[int],
    late_rows: list[LateRow],
) -> tuple[int, int]:
    """Record the parts of a batch's windowed items.

    The first item of each part is staged, and one join finds those that are late (their
    event's window closed or is over, :func:`window_over`) or were recorded before (a
    duplicate, or a conflict if the reward differs); the others are inserted with one ``INSERT
    … SELECT``. A later item of the same part is a duplicate of the first if its reward is the
    same, else a conflict. Appends the late items to ``late`` and ``late_rows`` and the
    conflicts to ``items.errors``.

    Returns:
        The parts recorded and the duplicates.
    """
    first: dict[tuple[str, str], int] = {}
    staged: list[tuple[int, str, str, int, int, float]] = []
    later: list[int] = []
    for i, place in items.windowed:
        key = (event_ids[i], parts[i] or "")
        if first.setdefault(key, i) == i:
            staged.append((i, *key, *place, rewards[i]))
        else:
            later.append(i)
    if not staged:
        return 0, 0
    duplicates = 0
    connection.stage(_PARTS, _PART_STAGE_COLUMNS, staged)
    settled = connection.execute(_SETTLED_PARTS, (now, now)).fetchall()
    for i, event_id, part_id, request_id, position, over, recorded in settled:
        if over:
            late.append(i)
            late_rows.append((event_id, part_id, request_id, position, rewards[i], now))
        elif recorded == rewards[i]:
            duplicates += 1
        else:
            items.errors.append(_part_conflict(i, event_id, part_id, recorded))
    for i in later:
        event_id, part_id = event_ids[i], parts[i] or ""
        earlier = rewards[first[event_id, part_id]]
        if earlier == rewards[i]:
            duplicates += 1
        else:
            items.errors.append(_part_conflict(i, event_id, part_id, earlier))
    if items.errors:  # the batch is refused
        return 0, duplicates
    if not settled:
        connection.execute(_INSERT_PARTS, (now,))
        return len(staged), duplicates
    left = {row[0] for row in settled}
    rows = sorted((*item[1:], now) for item in staged if item[0] not in left)
    connection.insert_rows("reward_parts", _PART_COLUMNS, rows)
    return len(rows), duplicates


def _part_conflict(i: int, event_id: str, part_id: str, recorded: float) -> RewardBatchError:
    message = f"event {event_id} part {part_id!r} already has a different reward ({recorded!r})"
    return RewardBatchError(i, "reward", "conflict", message)
