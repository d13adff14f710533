"""One customer's history as JSON-like data, validated: the input of ``features_from_history``.

A customer may be given by their events instead of their features, in a customer JSON file
(``recenv explain``) or a request to the service (``/v1/recommend``, ``/v1/explain``)::

    {"customer_id": "c-17", "as_of": "2024-06-30",
     "history": {"orders": [{"time": "2024-05-01", "amount": 40, "discount": 10}],
                 "contacts": [{"time": "2024-06-20", "channel": "email", "offer": "discount_15",
                               "opened": 1}],
                 "visits": [{"time": "2024-06-21"}],
                 "consents": [{"time": "2024-01-01", "channel": "email", "consent": 1}],
                 "tags": {"discount_sensitive": 1}}}

The fields are those of the builder's tables (:data:`~rec_env.fitting.builder.TABLES`) without
``customer_id``; :func:`~rec_env.fitting.builder.features_from_history` turns them into the 16
features by the builder's (the simulator's) definitions. Every list holds at most
:data:`MAX_EVENTS` events, so a history's cost is bounded; errors name the field's path
(``history.orders[3].time: not a date ...``).

:func:`fill_in_history` completes such a customer like :func:`rec_env.customer.fill_in_rows`
completes given features: the features the history says nothing about (consent without a
consent event, CRM tags without tags) get the caller's defaults for left-out features and are
reported as such; :meth:`HistoryFill.report` lists every feature, built or defaulted.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Any, NamedTuple

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from rec_env.customer import FilledFeature
from rec_env.errors import ConfigError
from rec_env.features import CHANNELS, FEATURE_NAMES

__all__ = [
    "MAX_EVENTS",
    "Consent",
    "Contact",
    "CustomerHistory",
    "HistoryCustomer",
    "HistoryFill",
    "Order",
    "Tags",
    "Visit",
    "error_path",
    "fill_in_history",
    "load_history_customer",
    "run_options",
    "validate_history",
]

MAX_EVENTS = 10_000
"""Most events in each list of one customer's history."""

DATE_PATTERN = r"^(19|20|21)\d{2}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])([T ][0-9:.+\-Z]{0,32})?$"
"""What a date looks like: ``YYYY-MM-DD`` (years 1900 to 2199, which bounds the cycles of a
history), optionally followed by the time of day; it must also be a day of the calendar."""
_DATE = re.compile(DATE_PATTERN)
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


def _date(value: str) -> str:
    """A date or ISO date-time (``YYYY-MM-DD[THH:MM:SS]``), as the builder reads them."""
    if _DATE.match(value) is not None:
        try:
            datetime.date.fromisoformat(value[:10])  # a day of the calendar (fast)
            return value
        except ValueError:
            pass
    raise PydanticCustomError(
        "date", "not a date (YYYY-MM-DD[THH:MM:SS]): '{value}'", {"value": value[:64]}
    )


def _flag(value: float) -> float:
    if value not in (0.0, 1.0):
        raise PydanticCustomError("binary", "must be 0 or 1, got {value}", {"value": f"{value:g}"})
    return value


def _channel(value: str) -> str:
    """``email``, ``sms`` or ``push`` (any case, ``e-mail`` too, as the builder reads them)."""
    name = value.strip().lower()
    name = "email" if name == "e-mail" else name
    if name not in CHANNELS:
        raise PydanticCustomError(
            "channel",
            "unknown channel '{value}' (expected one of {expected})",
            {"value": value[:64], "expected": ", ".join(CHANNELS)},
        )
    return name


Date = Annotated[
    str, Field(max_length=64, json_schema_extra={"pattern": DATE_PATTERN}), AfterValidator(_date)
]
"""A date ``YYYY-MM-DD`` or an ISO date-time (the time of day is ignored)."""
Flag = Annotated[
    float, Field(ge=0, le=1, json_schema_extra={"enum": [0, 1]}), AfterValidator(_flag)
]
"""0 or 1, a JSON number (``true`` is not 1)."""
Channel = Annotated[
    str, Field(max_length=16, json_schema_extra={"enum": list(CHANNELS)}), AfterValidator(_channel)
]
"""A channel's name (read as the builder reads a contact log: any case, ``e-mail`` too)."""
Money = Annotated[float, Field(ge=0)]
"""A finite, non-negative amount of money."""


class Order(BaseModel):
    """An order: ``amount`` paid and the ``discount`` given (currency)."""

    model_config = _STRICT

    time: Date
    amount: Money
    discount: Money = 0.0


class Contact(BaseModel):
    """A message: a discount offer when ``offer`` contains "discount"; an open or click responds."""

    model_config = _STRICT

    time: Date
    channel: Channel
    offer: str = Field("", max_length=128)
    delivered: Flag = 1.0
    opened: Flag = 0.0
    clicked: Flag = 0.0
    unsubscribed: Flag = 0.0


class Visit(BaseModel):
    """A visit to the shop."""

    model_config = _STRICT

    time: Date


class Consent(BaseModel):
    """Consent given (1) or withdrawn (0) on a channel from ``time`` on."""

    model_config = _STRICT

    time: Date
    channel: Channel
    consent: Flag


class Tags(BaseModel):
    """The CRM's tags; a tag left out is not tagged (0, reported)."""

    model_config = _STRICT

    discount_sensitive: Flag | None = None
    free_shipping_preferred: Flag | None = None


def _events(what: str) -> Any:
    return Field(default_factory=list, max_length=MAX_EVENTS, description=what)


class CustomerHistory(BaseModel):
    """One customer's events, each list at most :data:`MAX_EVENTS` long."""

    model_config = _STRICT

    orders: list[Order] = _events("Orders.")
    contacts: list[Contact] = _events("Messages sent (undelivered ones count for nothing).")
    visits: list[Visit] = _events("Visits.")
    consents: list[Consent] = _events("Consent events (the latest per channel counts).")
    tags: Tags | None = Field(None, description="The CRM's tags.")

    def latest_day(self) -> int | None:
        """The day of the latest event (days since 1970-01-01), None without events."""
        from rec_env.fitting.builder import parse_day

        latest = max(  # YYYY-MM-DD: the latest day is the greatest text
            (
                event.time[:10]
                for events in (self.orders, self.contacts, self.visits, self.consents)
                for event in events
            ),
            default=None,
        )
        return None if latest is None else parse_day(latest)


class HistoryCustomer(BaseModel):
    """A customer JSON file that gives a history instead of features."""

    model_config = _STRICT

    customer_id: str | None = Field(None, max_length=256)
    description: str | None = None
    as_of: Date | None = Field(None, description="Last day of the history (default: latest event).")
    history: CustomerHistory


def error_path(loc: Sequence[str | int], prefix: str = "") -> str:
    """``history.orders[3].time`` from pydantic's ``("history", "orders", 3, "time")``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "<root>"


def validate_history(history: Mapping[str, Any] | CustomerHistory) -> CustomerHistory:
    """The validated history.

    Raises:
        ValueError: Naming the first bad field's path, e.g. ``history.orders[3].time: ...``.
    """
    if isinstance(history, CustomerHistory):
        return history
    try:
        return CustomerHistory.model_validate(history)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise ValueError(f"{error_path(error['loc'], 'history')}: {error['msg']}") from None


def load_history_customer(data: Mapping[str, Any], source: str) -> HistoryCustomer:
    """Validate a customer file's parsed content that holds a ``history``.

    Raises:
        ConfigError: ``<source>: <field path>: <problem>``.
    """
    try:
        return HistoryCustomer.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise ConfigError(f"{source}: {error_path(error['loc'])}: {error['msg']}") from None


class HistoryFill(NamedTuple):
    """One customer completed from their history (:func:`fill_in_history`).

    Attributes:
        observations: ``(1, 16)`` float64 in :data:`~rec_env.features.FEATURE_NAMES` order.
        defaulted: The features the history says nothing about and the defaults they got
            (as :func:`rec_env.customer.fill_in_rows` reports left-out features).
        as_of: The last day of the history, ISO.
    """

    observations: np.ndarray
    defaulted: tuple[FilledFeature, ...]
    as_of: str

    def report(self) -> list[FilledFeature]:
        """Every feature, in feature order: built from the history, or defaulted and why."""
        defaulted = {item.feature: item for item in self.defaulted}
        reason = f"built from the history as of {self.as_of}"
        return [
            defaulted.get(name, FilledFeature(name, float(value), reason))
            for name, value in zip(FEATURE_NAMES, self.observations[0].tolist(), strict=True)
        ]


@functools.lru_cache(maxsize=16)
def _mean_irritation(population: str) -> float:
    from rec_env.fitting.builder import population_mean

    return population_mean("irritation", population)


def run_options(settings: Any) -> dict[str, Any]:
    """``cycle_days`` and ``irritation`` of :func:`fill_in_history` for a run's customers.

    Args:
        settings: The run's :class:`~rec_env.settings.EnvSettings`: its cycle (rounded to whole
            days, as the builder counts) and its population's mean irritation (cached).
    """
    return {
        "cycle_days": max(1, round(settings.cycle_days)),
        "irritation": _mean_irritation(str(settings.profile)),
    }


def fill_in_history(
    history: Mapping[str, Any] | CustomerHistory,
    as_of: str | int | None = None,
    assume_consent: str | Collection[str] = (),
    *,
    cycle_days: int = 7,
    irritation: float | None = None,
) -> HistoryFill:
    """One customer's observation from their history, completed like given features.

    The features the history says nothing about (consent without a consent event, tags left
    out) are left out and filled in by :func:`rec_env.customer.fill_in_rows`, so unknown consent
    means what it means for a customer given by features.

    Args:
        history: The history (validated here if it is not a :class:`CustomerHistory`).
        as_of: The last day of the history; default: the latest event's day.
        assume_consent: Channels whose unknown consent counts as given.
        cycle_days: Length of a cycle.
        irritation: Engagement lost per ignored message (default: the population's mean).

    Raises:
        ValueError: Naming the field of a bad history, or a bad ``as_of``.
    """
    from rec_env.customer import fill_in_rows
    from rec_env.fitting.builder import features_from_history, parse_day

    parsed = validate_history(history)
    if as_of is None:
        latest = parsed.latest_day()
        as_of = 0 if latest is None else latest
    day = parse_day(as_of)
    features, defaulted = features_from_history(
        parsed, day, cycle_days=cycle_days, irritation=irritation
    )
    given = {name: value for name, value in features.items() if name not in defaulted}
    filled = fill_in_rows([given], assume_consent)
    return HistoryFill(filled.observations, filled.filled_in, str(np.datetime64(day, "D")))
