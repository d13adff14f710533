"""Event ids of logged decisions: time-ordered UUIDs that a reward finds by primary key.

An event id is a version-7 UUID (RFC 9562): its first 28 characters are the request's key,
the millisecond it was made and 42 random bits, and its last 8 hex digits are ``(offset +
position) mod 2^32``, with a random ``offset`` per request. The ids of one batch share their
prefix, and a reward finds its decision by two primary-key lookups (request key, then
position) instead of through an index of random ids that every batch would have to update at
10,000 random places. Keys that grow with time also land at the end of the request-key index:
a random key (version 4, which older logs hold and which still resolve) dirtied an index page
of its own in every commit.
"""

from __future__ import annotations

import os
import time

from rec_env.datasets.event_ids import KEY_LENGTH, POSITIONS, event_ids, parse_event_id

__all__ = ["KEY_LENGTH", "POSITIONS", "event_ids", "new_request_key", "parse_event_id"]


def new_request_key() -> tuple[str, int]:
    """A new request key (the first 28 characters of a UUID7) and a random position offset."""
    bits = int.from_bytes(os.urandom(10), "little")
    ms = time.time_ns() // 1_000_000
    rand_a = bits & 0xFFF
    rand_b = 0x8000 | ((bits >> 12) & 0x3FFF)  # the RFC 4122 variant, then 14 random bits
    rand_c = (bits >> 26) & 0xFFFF
    key = f"{ms >> 16 & 0xFFFFFFFF:08x}-{ms & 0xFFFF:04x}-7{rand_a:03x}-{rand_b:04x}-{rand_c:04x}"
    return key, bits >> 48
