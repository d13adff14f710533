"""Decisions read back from the decision log: by event id, and in bulk for a reward replay.

A decision lives in a ``decisions`` row (strategy models) or in the columns of its request row
(item and slate models, :class:`~rec_env.serve.decision_log.ColumnarDecisions`); its features
are one row of its request's ``features`` blob, as wide as its model's ``feature_names``. The
reader reads only the bytes asked for of each blob (SQLite's incremental blob I/O, PostgreSQL's
``substring``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from rec_env.datasets.decision_log_backend import LogConnection
from rec_env.features import FEATURE_NAMES
from rec_env.serve.decision_records import FLOAT, INT, LoggedDecision
from rec_env.serve.event_ids import POSITIONS, event_ids, parse_event_id

__all__ = ["DecisionReader", "Located"]

_N_FEATURES = len(FEATURE_NAMES)

# Row requests join their decisions; columnar ones (no decisions rows) are read from blobs.
_REWARDS_AFTER = (
    "SELECT w.seq, w.event_id, w.request_id, w.position, w.reward, d.action, d.propensity "
    "FROM rewards AS w JOIN requests AS r ON r.request_id = w.request_id "
    "LEFT JOIN decisions AS d ON d.request_id = w.request_id AND d.position = w.position "
    "WHERE w.seq > ? AND r.model_version = ? ORDER BY w.seq LIMIT ?"
)


class Located(NamedTuple):
    """Where a decision is: its request, position and model, and the request's layout."""

    request_id: int
    position: int
    model_version: str
    n: int
    columnar: bool


class DecisionReader:
    """Read logged decisions through the log's connection (the caller holds the log's lock).

    Args:
        connection: The decision log's connection.
    """

    def __init__(self, connection: LogConnection) -> None:
        self._connection = connection
        self._widths: dict[str, int] = {}  # features per logged row, by model version

    def forget(self, model_version: str) -> None:
        """Forget the cached width of ``model_version`` (when it is registered)."""
        self._widths.pop(model_version, None)

    def locate(self, event_id: str) -> Located | None:
        """Where the decision ``event_id`` would be (the caller holds the lock)."""
        parsed = parse_event_id(event_id)
        if parsed is None:
            return None
        request_key, code = parsed
        request = self._connection.execute(
            "SELECT request_id, position_offset, model_version, n, actions IS NOT NULL "
            "FROM requests WHERE request_key = ?",
            (request_key,),
        ).fetchone()
        if request is None:
            return None
        request_id, offset, model_version, n, columnar = request
        return Located(request_id, (code - offset) % POSITIONS, model_version, n, bool(columnar))

    def read(self, event_id: str, located: Located) -> LoggedDecision | None:
        """Read a located decision (the caller holds the lock); None if the id is not its id."""
        request_id, position = located.request_id, located.position
        if located.columnar:
            key = parse_event_id(event_id)
            offset = self._connection.execute(
                "SELECT position_offset FROM requests WHERE request_id = ?", (request_id,)
            ).fetchone()[0]
            if position >= located.n or key is None:
                return None
            if event_ids(key[0], (offset + position) % POSITIONS, 1)[0] != event_id:
                return None  # the same position, spelt differently (upper-case hex)
            action, propensity = self.columns_of(request_id, position)
        else:
            row = self._connection.execute(
                "SELECT event_id, action, propensity FROM decisions "
                "WHERE request_id = ? AND position = ?",
                (request_id, position),
            ).fetchone()
            if row is None or row[0] != event_id:
                return None
            action, propensity = row[1], row[2]
        width = self.width(located.model_version)
        features = self.features_of([(request_id, position)], width)[0]
        return LoggedDecision(
            event_id, located.model_version, features, int(action), float(propensity)
        )

    def rewards_after(
        self, seq: int, model_version: str, limit: int
    ) -> list[tuple[int, LoggedDecision, float]]:
        """Up to ``limit`` rewards numbered above ``seq`` of ``model_version``'s decisions.

        Returns:
            ``(seq, decision, reward)`` in seq order.
        """
        rows = self._connection.execute(_REWARDS_AFTER, (seq, model_version, limit)).fetchall()
        width = self.width(model_version)
        features = self.features_of([(row[2], row[3]) for row in rows], width)
        chunk = []
        for row, x in zip(rows, features, strict=True):
            number, event_id, request_id, position, reward, action, propensity = row
            if action is None:  # a columnar request's decision
                action, propensity = self.columns_of(request_id, position)
            decision = LoggedDecision(event_id, model_version, x, int(action), propensity)
            chunk.append((number, decision, float(reward)))
        return chunk

    def width(self, model_version: str) -> int:
        """Features per logged row of ``model_version`` (the caller holds the lock)."""
        width = self._widths.get(model_version)
        if width is None:
            row = self._connection.execute(
                "SELECT feature_names FROM models WHERE model_version = ?", (model_version,)
            ).fetchone()
            names = None if row is None or row[0] is None else json.loads(row[0])
            width = self._widths[model_version] = _N_FEATURES if names is None else len(names)
        return width

    def columns_of(self, request_id: int, position: int) -> tuple[int, float]:
        """Action and propensity of a columnar request's decision (the caller holds the lock)."""
        read = self._connection.read_bytes
        at = position * INT.itemsize
        action_bytes = read("requests", "actions", "request_id", request_id, at, INT.itemsize)
        at = position * FLOAT.itemsize
        size = FLOAT.itemsize
        propensity_bytes = read("requests", "propensities", "request_id", request_id, at, size)
        action = int(np.frombuffer(action_bytes, dtype=INT)[0])
        return action, float(np.frombuffer(propensity_bytes, dtype=FLOAT)[0])

    def features_of(self, rows: Sequence[tuple[int, int]], width: int) -> list[np.ndarray]:
        """Features ``(width,)`` of decisions ``(request_id, position)``, reading only their bytes.

        Opens each request's ``features`` blob once on SQLite, however many of its rows are
        asked for; reads one slice per row on PostgreSQL.
        """
        features: list[np.ndarray] = [np.empty(0)] * len(rows)
        by_request: dict[int, list[int]] = {}
        for i, (request_id, _) in enumerate(rows):
            by_request.setdefault(request_id, []).append(i)
        row_bytes = width * FLOAT.itemsize
        connection = self._connection
        for request_id, indices in by_request.items():
            if connection.postgres:
                for i in indices:
                    data = connection.read_bytes(
                        "requests", "features", "request_id", request_id,
                        rows[i][1] * row_bytes, row_bytes,
                    )  # fmt: skip
                    features[i] = np.frombuffer(data, dtype=FLOAT)
                continue
            with connection.raw.blobopen("requests", "features", request_id, readonly=True) as blob:
                for i in indices:
                    blob.seek(rows[i][1] * row_bytes)
                    features[i] = np.frombuffer(blob.read(row_bytes), dtype=FLOAT)
        return features
