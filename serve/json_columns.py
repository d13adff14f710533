"""The fast path of batch bodies in the column layout: JSON numbers straight into numpy arrays.

A batch of 10,000 customers in the column layout carries one JSON array of 10,000 numbers per
feature, 520,000 numbers in the item world. Validating it with pydantic makes a Python float
and a list entry of each number, only for the service to copy them into a float array: with
filling in, a third to a half of a batch's server time. :class:`ColumnBatchParser` reads them
without Python objects:

1. a compiled scan (:func:`_scan`) finds every JSON array that holds only numbers (outside
   strings) and parses its numbers into one float64 buffer, each exactly as a correctly
   rounding parser would: a number without an exponent part whose digits make an integer
   ``m`` of at most 2^53, with at most 22 decimals ``d``, is ``m / 10^d`` of exact operands
   (Clinger's fast path); any other (an exponent part, or the 17 digits of Python's ``repr``)
   is parsed by Python's ``float``;
2. the body without those arrays (each replaced by its index, the *skeleton*) is validated by a
   pydantic model with the request's other fields, unchanged (ids, exclusions, options);
3. the columns are checked whole: names, equal lengths within the batch limit, every value
   within its feature's bounds, flags 0 or 1.

The fast path only ever accepts a body that the request model accepts, with the same values.
Whenever anything is unusual (a bad value, an unknown feature, a number array anywhere but
under ``columns``, the ``customers`` layout, invalid JSON), it declines and the caller
validates the body with the full request model, whose 422 names the field and the first bad
row: the errors are pydantic's, defined once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic import create_model as create_pydantic_model

from rec_env.features import Feature

__all__ = ["ColumnBatchParser", "scan_number_arrays"]

_EXACT_POWERS = np.array([10.0**k for k in range(23)])
"""10^0 ... 10^22, each exact in float64 (the fast path's limit)."""
_MAX_DIGITS = 18
"""Digits (after the sign, leading zeros included) that an int64 mantissa holds exactly."""
_MAX_EXACT_MANTISSA = 2**53
"""Largest mantissa of Clinger's fast path: every integer up to it is exact in float64."""
_EXACT_EXPONENT = 22
"""Largest decimal exponent of Clinger's fast path (10^22 is exact in float64)."""
_LAYOUTS = ("customers", "columns")


@njit(cache=True, nogil=True, inline="always")
def _space(byte: int) -> bool:
    return byte == 32 or byte == 10 or byte == 13 or byte == 9


@njit(cache=True, nogil=True)
def _exponent_end(raw: np.ndarray, p: int) -> int:
    """The end of the exponent digits at ``p`` (after the ``e``), or -1 if there are none."""
    if raw[p] == 43 or raw[p] == 45:  # '+', '-'
        p += 1
    if raw[p] < 48 or raw[p] > 57:
        return -1
    while raw[p] >= 48 and raw[p] <= 57:
        p += 1
    return p


@njit(cache=True, nogil=True, inline="always")
def _number(raw: np.ndarray, p: int, powers: np.ndarray) -> tuple[int, float, bool]:
    """Parse the JSON number at ``p`` up to its exponent: ``(end, value, exact)``.

    ``end`` is -1 if there is no number, else where the number ends or its exponent (``e`` or
    ``E``) starts: a number with an exponent is left to the correctly rounding parser (the
    caller finds its end), as is any with ``exact`` False. (Parsing the exponent here, even
    out of line, makes numba's code of every number three times slower.)
    ``raw`` ends with a NUL byte, which no number holds, so no loop checks the length. The
    mantissa may overflow beyond 18 digits; such a number is not exact, whatever it holds.
    """
    negative = raw[p] == 45  # '-'
    if negative:
        p += 1
    if raw[p] < 48 or raw[p] > 57:
        return -1, 0.0, False
    mantissa, digits, exponent = 0, 0, 0
    if raw[p] == 48:  # a leading 0 stands alone
        p += 1
    else:
        while raw[p] >= 48 and raw[p] <= 57:
            mantissa = mantissa * 10 + np.int64(raw[p] - 48)
            digits += 1
            p += 1
    if raw[p] == 46:  # '.'
        p += 1
        if raw[p] < 48 or raw[p] > 57:
            return -1, 0.0, False
        while raw[p] >= 48 and raw[p] <= 57:
            mantissa = mantissa * 10 + np.int64(raw[p] - 48)
            digits += 1
            exponent -= 1
            p += 1
    if mantissa == 0 and digits <= _MAX_DIGITS:  # zero, at any exponent
        return p, -0.0 if negative else 0.0, True
    if digits > _MAX_DIGITS or mantissa > _MAX_EXACT_MANTISSA or exponent < -_EXACT_EXPONENT:
        return p, 0.0, False
    value = mantissa / powers[-exponent]  # without an exponent part, exponent <= 0
    return p, -value if negative else value, True


@njit(cache=True, nogil=True)
def _scan(
    raw: np.ndarray,
    powers: np.ndarray,
    values: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    counts: np.ndarray,
    inexact: np.ndarray,
    inexact_spans: np.ndarray,
) -> tuple[int, int]:
    """Find the arrays of numbers outside strings and parse them: ``(arrays, inexact)``.

    Array ``k`` spans ``raw[starts[k]:ends[k]]`` (brackets included) and holds ``counts[k]``
    numbers, stored one array after the other in ``values``; a number that needs a correctly
    rounding parser gets a NaN placeholder, its index in ``inexact`` and its bytes'
    ``inexact_spans``. An array holding anything but numbers is skipped (it stays in the
    skeleton); so is every array nested in another array's non-number content.
    """
    n = raw.size
    p, n_arrays, n_values, n_inexact = 0, 0, 0, 0
    in_string = False
    while p < n:
        byte = raw[p]
        if in_string:
            if byte == 92:  # '\': skip the escaped byte
                p += 2
                continue
            if byte == 34:
                in_string = False
            p += 1
            continue
        if byte == 34:  # '"'
            in_string = True
            p += 1
            continue
        if byte != 91:  # '['
            p += 1
            continue
        # an array: numbers only?
        q, first_value, first_inexact, count, ok = p + 1, n_values, n_inexact, 0, False
        while True:
            while q < n and _space(raw[q]):
                q += 1
            if q >= n or not (raw[q] == 45 or 48 <= raw[q] <= 57):
                break
            end, value, exact = _number(raw, q, powers)
            if end >= 0 and (raw[end] == 101 or raw[end] == 69):  # 'e', 'E': rare
                end, exact = _exponent_end(raw, end + 1), False
            if end < 0:
                break
            if exact:
                values[n_values] = value
            else:
                values[n_values] = np.nan
                inexact[n_inexact] = n_values
                inexact_spans[n_inexact, 0] = q
                inexact_spans[n_inexact, 1] = end
                n_inexact += 1
            n_values += 1
            count += 1
            q = end
            while q < n and _space(raw[q]):
                q += 1
            if q < n and raw[q] == 44:  # ','
                q += 1
                continue
            ok = q < n and raw[q] == 93  # ']'
            break
        if ok:
            starts[n_arrays], ends[n_arrays], counts[n_arrays] = p, q + 1, count
            n_arrays += 1
            p = q + 1
        else:  # not an array of numbers: forget what it held, scan inside it
            n_values, n_inexact = first_value, first_inexact
            p += 1
    return n_arrays, n_inexact


def scan_number_arrays(raw: bytes) -> tuple[list[tuple[int, int]], list[np.ndarray]]:
    """The spans ``(start, end)`` of the arrays of numbers in ``raw`` and their float64 values.

    Every value equals Python's ``float`` of its JSON number (module docstring).
    """
    buffer = np.frombuffer(raw + b"\0", dtype=np.uint8)  # the sentinel of _number
    bound = buffer.size // 2 + 1  # a number and its separator take two bytes at least
    arrays = bound  # an array takes two bytes at least
    values = np.empty(bound)
    starts, ends, counts = (np.empty(arrays, dtype=np.int64) for _ in range(3))
    inexact = np.empty(bound, dtype=np.int64)
    spans = np.empty((bound, 2), dtype=np.int64)
    n_arrays, n_inexact = _scan(buffer, _EXACT_POWERS, values, starts, ends, counts, inexact, spans)
    for k in range(n_inexact):  # long mantissas and exponents: the correctly rounding parser
        values[inexact[k]] = float(raw[spans[k, 0] : spans[k, 1]])
    offsets = np.concatenate(([0], np.cumsum(counts[:n_arrays])))
    columns = [values[offsets[k] : offsets[k + 1]] for k in range(n_arrays)]
    return list(zip(starts[:n_arrays].tolist(), ends[:n_arrays].tolist(), strict=True)), columns


class ColumnBatchParser:
    """Validate batch bodies in the column layout without a Python object per number.

    Args:
        model: The batch request model (its ``columns`` field is the column layout).
        features: The features a column may name, with their bounds.
        max_batch: Most customers in one call.
    """

    def __init__(self, model: type[BaseModel], features: Sequence[Feature], max_batch: int) -> None:
        self.model = model
        self.max_batch = max_batch
        self._bounds = {f.name: (f.low, f.high, f.binary) for f in features}
        others = {
            name: (field.annotation, field)
            for name, field in model.model_fields.items()
            if name not in _LAYOUTS
        }
        skeleton = create_pydantic_model(  # type: ignore[call-overload]
            "BatchSkeleton",
            __config__=ConfigDict(extra="forbid", allow_inf_nan=False, strict=True),
            columns=(dict[str, int], ...),
            **others,
        )
        self._skeleton = TypeAdapter(skeleton)

    def parse(self, raw: bytes) -> Any | None:
        """The validated request, or None to let the request model validate ``raw`` itself."""
        if b'"columns"' not in raw:
            return None
        spans, arrays = scan_number_arrays(raw)
        if not spans:
            return None
        parts, previous = [], 0
        for k, (start, end) in enumerate(spans):
            parts += [raw[previous:start], str(k).encode()]
            previous = end
        parts.append(raw[previous:])
        try:
            skeleton = self._skeleton.validate_json(b"".join(parts))
        except ValidationError:
            return None
        columns = self._columns(skeleton.columns, arrays)
        if columns is None:
            return None
        n = len(next(iter(columns.values())))
        if skeleton.customer_ids is not None and len(skeleton.customer_ids) != n:
            return None
        fields = {name: getattr(skeleton, name) for name in type(skeleton).model_fields}
        return self.model.model_construct(**{**fields, "columns": columns, "customers": None})

    def _columns(self, named: dict[str, int], arrays: list[np.ndarray]) -> dict | None:
        """The columns by name if each is valid and every number array is one of them."""
        if not named or sorted(named.values()) != list(range(len(arrays))):
            return None
        columns: dict[str, np.ndarray] = {}
        length = -1
        for name, k in named.items():
            bounds = self._bounds.get(name)
            values = arrays[k]
            if bounds is None or not 1 <= values.size <= self.max_batch:
                return None
            if length >= 0 and values.size != length:
                return None
            length = values.size
            low, high, binary = bounds
            if binary:
                valid = bool(np.all((values == 0.0) | (values == 1.0)))
            else:
                valid = bool(np.all((values >= low) & (values <= high)))
            if not valid:
                return None
            columns[name] = values
        return columns
