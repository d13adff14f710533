"""Event ids of logged decisions: random-looking UUID4s that a reward finds by primary key.

An event id is a version-4 UUID whose first 28 characters are the request's random key and
whose last 8 hex digits are ``(offset + position) mod 2^32``, with a random ``offset`` per
request. The ids look random, the ids of one batch share their prefix, and a reward finds its
decision by two primary-key lookups (request key, then position) instead of through an index of
random ids that every batch would have to update at 10,000 random places.
"""

from __future__ import annotations

import os
import uuid

from rec_env.datasets.event_ids import KEY_LENGTH, POSITIONS, event_ids, parse_event_id

__all__ = ["KEY_LENGTH", "POSITIONS", "event_ids", "new_request_key", "parse_event_id"]


def new_request_key() -> tuple[str, int]:
    """A random request key (the first 28 characters of a UUID4) and position offset."""
    raw = os.urandom(4)
    return str(uuid.uuid4())[:KEY_LENGTH], int.from_bytes(raw, "little")
