"""Checking and recording rewards and parts in bulk, for :class:`DecisionLog`'s batches.

Functions over the decision log's connection, called holding its lock, inside its transaction.
An event id names its request and position, and a request's ids are all its positions spelt in
lower case, so a batch is checked against one lookup per request (:func:`requests_of`), then
sorted in one pass (:func:`sort_items`): items of requests without a window become rows of
``rewards`` (final at once, as in schema 4), items of requests with a window become parts
(:func:`record_parts`).
"""

from __future__ import annotations

from collections.abc import Sequence

from rec_env.datasets.decision_log_backend import LogConnection
from rec_env.serve.decision_records import (
    LateRewardError,
    LoggedDecision,
    RewardBatchError,
    RewardConflictError,
    RewardReceipt,
)
from rec_env.serve.event_ids import KEY_LENGTH, POSITIONS
from rec_env.serve.reward_windows import StoredTerms, activation_time, record_late

__all__ = [
    "LateRow",
    "Located",
    "SortedItems",
    "check_activations",
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

_KEYS_PER_QUERY = 500
"""Keys looked up per query."""
_NOT_ACTIVATED = (
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
    if request is None or len(suffix) != 8:
        return None
    try:
        code = int(suffix, 16)
    except ValueError:
        return None
    if f"{code:08x}" != suffix:  # canonical: no sign, prefix, "_" nor upper case
        return None
    position = (code - request[1]) % POSITIONS
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
        stored = terms.get(place[0])
        if stored is not None:
            if stored.require_activation:
                items.to_activate.append((i, place))
            if stored.window_seconds is not None:
                items.windowed.append((i, place))
                continue
        earlier = first.setdefault(event_id, i)
        if earlier == i:
            rows.append((event_id, place[0], place[1], rewards[i], now))
        elif rewards[earlier] != rewards[i]:
            message = f"event {event_id} already has a different reward ({rewards[earlier]!r})"
            errors.append(RewardBatchError(i, "reward", "conflict", message))
        else:
            items.duplicates += 1
    rows.sort()
    return items


def check_activations(
    connection: LogConnection,
    items: Sequence[tuple[int, Located]],
    errors: list[RewardBatchError],
) -> None:
    """Append an error for each item whose decision needs an activation and has none."""
    for i, place in items:
        if activation_time(connection, *place) is None:
            errors.append(RewardBatchError(i, "event_id", "not_activated", _NOT_ACTIVATED))


def recorded_before(
    connection: LogConnection,
    items: SortedItems,
    rewards: Sequence[float],
    parts: Sequence[str | None],
    last: int,
    late: list[int],
    late_rows: list[LateRow],
) -> list[int]:
    """Sort the rows whose event had a reward before the batch: late, duplicate or conflict.

    Appends the late events' first items to ``late`` and ``late_rows``, and the conflicts to
    ``items.errors``.

    Returns:
        The indices of the items whose row was not inserted (the late ones included).
    """
    skipped = []
    for event_id, request_id, position, _, now in items.rows:
        seq, recorded, defaulted = connection.execute(
            "SELECT seq, reward, defaulted FROM rewards WHERE event_id = ?", (event_id,)
        ).fetchone()
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
    terms: dict[int, StoredTerms],
    now: float,
    late: list[int],
    late_rows: list[LateRow],
) -> tuple[int, int]:
    """Record the parts of a batch's windowed items.

    Appends the late items to ``late`` and ``late_rows`` and the conflicts to ``items.errors``.

    Returns:
        The parts recorded and the duplicates.
    """
    first: dict[tuple[str, str], int] = {}
    rows = []
    duplicates = 0
    for i, place in items.windowed:
        event_id, part_id = event_ids[i], parts[i] or ""
        earlier = first.setdefault((event_id, part_id), i)
        recorded: tuple[float] | None = (rewards[earlier],) if earlier != i else None
        if earlier == i:
            final = connection.execute(
                "SELECT 1 FROM rewards WHERE event_id = ?", (event_id,)
            ).fetchone()
            activated = activation_time(connection, *place)
            if final is not None or window_over(terms[place[0]], activated, now):
                late.append(i)
                late_rows.append((event_id, part_id, *place, rewards[i], now))
                continue
            recorded = connection.execute(
                "SELECT reward FROM reward_parts WHERE event_id = ? AND part_id = ?",
                (event_id, part_id),
            ).fetchone()
        if recorded is None:
            rows.append((event_id, part_id, *place, rewards[i], now))
        elif recorded[0] == rewards[i]:
            duplicates += 1
        else:
            message = (
                f"event {event_id} part {part_id!r} already has a different reward "
                f"({recorded[0]!r})"
            )
            items.errors.append(RewardBatchError(i, "reward", "conflict", message))
    connection.executemany("INSERT INTO reward_parts VALUES (?, ?, ?, ?, ?, ?)", rows)
    return len(rows), duplicates
