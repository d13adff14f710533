"""The dashboard's time range: parsed from ``since`` / ``until``, bounded, in whole buckets.

``since`` and ``until`` are ISO 8601 dates or times (``2026-12-01``, ``2026-12-01T04:00Z``;
without a zone: UTC) or Unix seconds. The default range is the last :data:`DEFAULT_DAYS` days.
The range is widened to whole buckets (hours or UTC days) and may hold at most
:data:`MAX_BUCKETS` of them, so every answer has a bounded size; a range that breaks a rule is
refused with a 422 whose ``loc`` names the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from fastapi.exceptions import RequestValidationError

__all__ = [
    "DEFAULT_DAYS",
    "ERROR_TYPE",
    "MAX_BUCKETS",
    "TIME_PATTERN",
    "Bucket",
    "TimeRange",
    "parse_range",
]

DEFAULT_DAYS = 7
MAX_BUCKETS = 2400
"""Most buckets of one range: 100 days by the hour, 6.5 years by the day."""
ERROR_TYPE = "time_range"
"""The ``type`` of a 422 for a time the schema's pattern lets through but the range refuses."""
TIME_PATTERN = r"^(\d+(\.\d+)?|\d{4}-\d{2}-\d{2}([T ][0-9:.,]+(Z|[+-][0-9:]+)?)?)$"
"""What ``since`` and ``until`` look like: Unix seconds or an ISO 8601 date or time."""
_HOUR = 3600
_LATEST = 1e11  # year 5138: later "times" are typos (milliseconds)


class Bucket(StrEnum):
    """The width of the time series' buckets."""

    hour = "hour"
    day = "day"

    @property
    def hours(self) -> int:
        """Hours per bucket."""
        return 1 if self is Bucket.hour else 24


@dataclass(frozen=True)
class TimeRange:
    """A range of whole buckets, in hours since the Unix epoch.

    Args:
        first_hour: The first hour in the range.
        end_hour: The first hour after it.
        bucket: The buckets' width.
    """

    first_hour: int
    end_hour: int
    bucket: Bucket

    @property
    def n_buckets(self) -> int:
        """Buckets in the range."""
        return (self.end_hour - self.first_hour) // self.bucket.hours

    @property
    def since(self) -> float:
        """The range's start, Unix seconds."""
        return float(self.first_hour * _HOUR)

    @property
    def until(self) -> float:
        """The range's end (excluded), Unix seconds."""
        return float(self.end_hour * _HOUR)


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", field), "msg": message, "type": ERROR_TYPE}])


def parse_time(field: str, text: str) -> float:
    """Unix seconds of an ISO 8601 date or time, or of a number of seconds.

    Raises:
        RequestValidationError: Naming ``field`` if ``text`` is neither, or out of range.
    """
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise _invalid(
                field, f"{text!r} is not an ISO 8601 date or time, nor Unix seconds"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    if not math.isfinite(seconds) or not 0 <= seconds <= _LATEST:
        raise _invalid(field, f"{text!r} is not a time between 1970 and year 5000")
    return seconds


def parse_range(since: str | None, until: str | None, bucket: Bucket, now: float) -> TimeRange:
    """The range the query asks for, widened to whole buckets.

    Args:
        since: Its start (default: :data:`DEFAULT_DAYS` days before ``until``).
        until: Its end (default: ``now``).
        bucket: The buckets' width.
        now: Unix seconds now.

    Raises:
        RequestValidationError: 422, naming ``since`` or ``until``: an unreadable time,
            ``since`` not before ``until``, or more than :data:`MAX_BUCKETS` buckets.
    """
    end = parse_time("until", until) if until is not None else now
    start = parse_time("since", since) if since is not None else end - DEFAULT_DAYS * 86400
    if start >= end:
        raise _invalid("since", "since must be before until")
    width = bucket.hours
    first = math.floor(start / _HOUR / width) * width
    last = math.ceil(end / _HOUR / width) * width
    n_buckets = (last - first) // width
    if n_buckets > MAX_BUCKETS:
        hint = " (use bucket=day)" if bucket is Bucket.hour else ""
        raise _invalid(
            "since",
            f"the range holds {n_buckets} {bucket.value}s, at most {MAX_BUCKETS}: shorten it{hint}",
        )
    return TimeRange(first, max(last, first + width), bucket)
