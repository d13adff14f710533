"""Event ids of logged decisions: how an id names its request and its position.

An event id is a UUID (version 7, time-ordered; version 4 in older logs) whose first 28
characters are the request's key and whose last 8 hex digits are ``(offset + position) mod
2^32``, with a random ``offset`` per request (drawn by the service,
:mod:`rec_env.serve.event_ids`). The service writes these ids and
the export (:mod:`~.decision_log_tables`) spells them for decisions stored as columns.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KEY_LENGTH", "POSITIONS", "event_ids", "parse_event_id"]

KEY_LENGTH = 28
"""Characters of the request key: the first 28 of the UUID, hyphens included."""
POSITIONS = 1 << 32
"""Positions are encoded modulo this (8 hex digits)."""

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NUMPY_IDS = 64
"""From this many ids on, formatting them with numpy beats a Python loop."""


def event_ids(request_key: str, offset: int, n: int) -> list[str]:
    """The event ids of the ``n`` decisions of a request (large batches in one numpy pass)."""
    if n < _NUMPY_IDS:
        return [f"{request_key}{(offset + i) % POSITIONS:08x}" for i in range(n)]
    codes = (offset + np.arange(n, dtype=np.uint64)) % POSITIONS
    text = np.empty((n, KEY_LENGTH + 8), dtype=np.uint8)
    text[:, :KEY_LENGTH] = np.frombuffer(request_key.encode(), dtype=np.uint8)
    shifts = np.arange(28, -1, -4, dtype=np.uint64)
    text[:, KEY_LENGTH:] = _HEX_DIGITS[(codes[:, None] >> shifts) & np.uint64(0xF)]
    return text.view(f"S{KEY_LENGTH + 8}").ravel().astype(f"U{KEY_LENGTH + 8}").tolist()


def parse_event_id(event_id: str) -> tuple[str, int] | None:
    """``(request_key, code)`` of a canonical event id, or None if it cannot be one."""
    if len(event_id) != KEY_LENGTH + 8:
        return None
    try:
        return event_id[:KEY_LENGTH], int(event_id[KEY_LENGTH:], 16)
    except ValueError:
        return None
