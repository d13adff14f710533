"""Resource limits of the service: the size of a request body and the work of parsing it.

Two bounds, both enforced before pydantic sees a body:

* :class:`BodyLimitMiddleware` answers 413 to a body larger than ``max_body_bytes``. It refuses
  on ``Content-Length`` before reading anything, and counts the chunks of a body sent without
  one, so memory stays bounded by the limit.
* :class:`ValueBudget` bounds the number of JSON values in a body that fits. A few MB of JSON
  can hold millions of tiny values (``{"customers": [{}, {}, ...]}``), and pydantic parses every
  one of them, holding the GIL, before it checks a list's length. A valid request holds at most
  a known number of values (a batch: ``max_batch`` customers of 16 features), so a body with
  more is refused with a 422 that names the top-level field holding them, in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "ValueBudget"]

_CHUNK = 1 << 18
"""Bytes scanned at a time by :func:`_scan` (bounds its scratch memory to a few MB)."""

_QUOTE, _COMMA = ord('"'), ord(",")
_OPEN_BRACE, _OPEN_BRACKET, _CLOSE_BRACE, _CLOSE_BRACKET = b"{[}]"
_MAX_FIELDS = 64
"""More top-level fields than any valid body has: the scan stops counting them."""
_KEY = re.compile(rb'\s*"([^"\\]{1,64})"\s*:')
_OBJECT_START = re.compile(rb"\s*\{")


class _BodyTooLargeError(Exception):
    """Raised by the counting ``receive`` of :class:`BodyLimitMiddleware`."""


class BodyLimitMiddleware:
    """Pure ASGI middleware: a request body over ``max_body_bytes`` gets 413, unparsed.

    A ``Content-Length`` over the limit is refused before the body is read. A body without one
    (chunked transfer) is counted as it arrives; past the limit no more is read and the request
    is answered 413 (unless the app had already started its response). A request that declares
    its length is passed on untouched: the server reads exactly that many bytes, so the hot path
    costs one header lookup. (Starlette's ``RequestBodyLimitMiddleware``, behind FastAPI's
    ``max_body_size``, wraps every request's ``receive`` and ``send``, refuses only once the app
    reads, and answers in plain text; this one answers in the API's JSON error format.)

    Args:
        app: The wrapped application.
        max_body_bytes: Largest accepted body.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse, count or pass the request on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, chunked = _declared_length(scope)
        if length is not None and not chunked:
            if length > self.max_body_bytes:
                await self._refuse(send)
            else:
                await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app on a ``receive`` that stops past the limit."""
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLargeError:
            if started:  # too late for a status: let the server drop the connection
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        """413, and close the connection rather than read the rest of the body."""
        body = (
            b'{"detail":"request body larger than %d bytes (--max-body-bytes)"}'
            % self.max_body_bytes
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> tuple[int | None, bool]:
    """The request's ``Content-Length`` (None if absent or unreadable) and whether it is chunked."""
    length, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


# ---------------------------------------------------------------------------- JSON values
@dataclass(frozen=True)
class ValueBudget:
    """What a valid body of an endpoint holds at most, checked before it is parsed.

    Tokens are commas and opening brackets outside strings: every JSON value but the first
    starts after one, so they bound the values a parser builds. Opening brackets alone bound
    the objects and arrays, the values that cost a parser most.

    Attributes:
        tokens: Most tokens in a valid body.
        opens: Most opening brackets (``{`` and ``[``) in a valid body.
        items: Most items of a top-level array field, by field name (``customers``: the batch
            limit), checked by counting the commas of the array before any row is parsed.
        reason: Why, for error messages (e.g. "a batch holds at most 10,000 customers").

    A body within both bounds when its brackets and commas are counted in strings too (a cheap
    count of bytes) is not scanned: its parse is bounded, and pydantic's ``max_length`` then
    stops a list at its first item too many. Only a body over a bound is scanned.
    """

    tokens: int
    opens: int
    items: Mapping[str, int] = field(default_factory=dict)
    reason: str = "one request"

    def needs_scan(self, raw: bytes) -> bool:
        """True if ``raw`` may exceed the budget (a cheap count of bytes, no parsing)."""
        opens = raw.count(b"{") + raw.count(b"[")
        return opens > self.opens or opens + raw.count(b",") > self.tokens

    def excess(self, raw: bytes) -> dict[str, Any] | None:
        """The validation error (``type``, ``loc``, ``msg``) of a body over budget, or None.

        Scans ``raw`` (see :func:`_scan`) if the cheap count says it may exceed the budget.
        """
        return self.scan(raw) if self.needs_scan(raw) else None

    def scan(self, raw: bytes) -> dict[str, Any] | None:
        """:meth:`excess` without the cheap count first (the caller made it)."""
        scan = _scan(raw, self)
        for name, count in scan.items.items():
            limit = self.items.get(name)
            if limit is not None and count > limit:
                return {
                    "type": "too_long",
                    "loc": ("body", name),
                    "msg": f"List should have at most {limit} items, not more ({self.reason})",
                }
        if scan.tokens <= self.tokens and scan.opens <= self.opens:
            return None
        return {
            "type": "too_many_values",
            "loc": ("body",) if scan.largest is None else ("body", scan.largest),
            "msg": f"too many values: more JSON values ({self.tokens:,}) or objects and arrays "
            f"({self.opens:,}) than a valid request holds ({self.reason})",
        }


@dataclass
class _Scan:
    """What :func:`_scan` found (lower bounds if it stopped early)."""

    tokens: int = 0
    opens: int = 0
    items: dict[str, int] = field(default_factory=dict)
    largest: str | None = None


@dataclass
class _Members:
    """Per top-level field: its name, tokens inside its value and items of its array."""

    names: list[str | None] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    items: list[int] = field(default_factory=list)

    def start(self, raw: bytes, position: int) -> None:
        """A field whose key follows ``position`` (a comma or the opening brace)."""
        match = _KEY.match(raw, position + 1)
        self.names.append(match.group(1).decode("utf-8", "replace") if match else None)
        self.tokens.append(0)
        self.items.append(0)


def _scan(raw: bytes, budget: ValueBudget) -> _Scan:
    r"""Count the tokens of ``raw`` per top-level field, stopping once over ``budget``.

    Vectorised over 256 KiB chunks, so scratch memory is bounded by the chunk. Escapes are
    neutralised first (``\\`` and ``\"`` cannot end a string), the parity of the quotes
    marks what lies inside strings, and the running depth of the brackets outside them splits
    the top level into fields (commas at depth 1) and their contents (depth 2 on; the items
    of an array field are separated by its commas at depth 2). The text need not be valid JSON:
    the counts then only bound what a parser would build.
    """
    text = raw
    if b"\\" in raw:  # same length, same positions
        text = raw.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    data = np.frombuffer(text, dtype=np.uint8)
    members = _Members()
    opening = _OBJECT_START.match(text)
    is_object = opening is not None
    if opening is not None:
        members.start(raw, opening.end() - 1)
    parity, depth, tokens, opens = 0, 0, 0, 0
    for offset in range(0, data.size, _CHUNK):
        chunk = data[offset : offset + _CHUNK]
        outside, parity = _outside_strings(chunk, parity)
        comma = (chunk == _COMMA) & outside
        opening = ((chunk == _OPEN_BRACE) | (chunk == _OPEN_BRACKET)) & outside
        closing = ((chunk == _CLOSE_BRACE) | (chunk == _CLOSE_BRACKET)) & outside
        level = np.cumsum(opening.view(np.int8) - closing.view(np.int8), dtype=np.int32) + depth
        depth = int(level[-1])
        token = comma | opening
        tokens += int(np.count_nonzero(token))
        opens += int(np.count_nonzero(opening))
        if is_object:
            _count_members(raw, offset, comma, token, level, members)
        over_items = any(
            count >= budget.items.get(name or "", count + 1)
            for name, count in zip(members.names, members.items, strict=True)
        )
        over = tokens > budget.tokens or opens > budget.opens
        if over or over_items or len(members.names) > _MAX_FIELDS:
            break
    scan = _Scan(tokens, opens)
    for name, count in zip(members.names, members.items, strict=True):
        if name is not None:  # commas between items, plus the first item
            scan.items[name] = max(scan.items.get(name, 0), count + 1)
    if members.tokens:
        scan.largest = members.names[int(np.argmax(members.tokens))]
    return scan


def _outside_strings(chunk: np.ndarray, parity: int) -> tuple[np.ndarray, int]:
    """Bool mask of the bytes outside strings, and the quote parity after the chunk.

    ``parity`` is 1 if the chunk starts inside a string. A byte is outside if the quotes up
    to it, plus ``parity``, are even (an opening quote counts as inside, a closing one as
    outside; quotes are not tokens either way).
    """
    quotes = np.cumsum((chunk == _QUOTE).view(np.uint8), dtype=np.uint8)  # wraps; parity holds
    return (quotes & 1) == parity, (parity + int(quotes[-1])) & 1


def _count_members(
    raw: bytes,
    offset: int,
    comma: np.ndarray,
    token: np.ndarray,
    level: np.ndarray,
    members: _Members,
) -> None:
    """Add one chunk's tokens and array items to the top-level fields they belong to."""
    boundaries = np.flatnonzero(comma & (level == 1))
    starts = np.concatenate(([0], boundaries))
    inner = np.add.reduceat((token & (level >= 2)).view(np.uint8), starts, dtype=np.int64)
    items = np.add.reduceat((comma & (level == 2)).view(np.uint8), starts, dtype=np.int64)
    for k, (n_tokens, n_items) in enumerate(zip(inner.tolist(), items.tolist(), strict=True)):
        if k:
            if len(members.names) > _MAX_FIELDS:
                return
            members.start(raw, offset + int(boundaries[k - 1]))
        members.tokens[-1] += n_tokens
        members.items[-1] += n_items
