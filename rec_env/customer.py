"""Customers as users give them: a JSON file, an API request, a CSV file or ``env.reset``.

:class:`CustomerProfile` validates one customer, nested (``{"customer_id", "features": {...}}``)
or flat (features at the top level, like the seed's ten-feature JSON), with any subset of the 16
features; every error names the field. :func:`fill_in_rows` and :func:`fill_in_columns` make
``(n, 16)`` observations of validated customers, fill each left-out feature with its documented
default (:data:`FEATURE_DEFAULTS`) and report it (:class:`FilledFeature`). ``recenv explain``
and the service's ``/v1/recommend``, ``/v1/explain`` and batch endpoint all go through them.

Defaults: profile features are medians of the default population (CRM flags 0, not tagged);
contact state is no contact and no discount history; unknown consent is no consent (0), so
nothing is sent on that channel, unless the caller assumes consent there (``assume_consent``).
Simulation (``env.reset(options={"customer": ...})``) instead draws left-out features from the
customer's most likely segment.
"""

from __future__ import annotations

import csv
import functools
import math
import operator
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from rec_env.config import load_model
from rec_env.errors import ConfigError
from rec_env.features import (
    CHANNELS,
    CONSENT_FEATURES,
    FEATURE_INDEX,
    FEATURE_NAMES,
    FEATURES,
    Feature,
)

__all__ = [
    "FEATURE_DEFAULTS",
    "CustomerFeatures",
    "CustomerProfile",
    "FeatureDefault",
    "FilledCustomers",
    "FilledFeature",
    "feature_description",
    "feature_value_type",
    "fill_in_columns",
    "fill_in_rows",
    "load_customer",
    "load_customers_csv",
    "parse_channels",
    "validate_features",
]

_BY_NAME = {f.name: f for f in FEATURES}
_ALL_FEATURES = operator.itemgetter(*FEATURE_NAMES)
_MAX_ID_LENGTH = 256


@dataclass(frozen=True)
class FeatureDefault:
    """The value a feature gets when a customer leaves it out, and why.

    Attributes:
        value: The default value.
        reason: Why this value, as reported to the user.
    """

    value: float
    reason: str


_TYPICAL = "not given: median of the default population"
_UNTAGGED = "not given: not tagged by the CRM"
_NO_CONTACT = "not given: no contact recorded"
_NO_DISCOUNT = "not given: no discount recorded"
_CONSENT_UNKNOWN = "consent unknown: treated as no consent, nothing is sent on this channel"
_CONSENT_ASSUMED = "consent unknown: assumed given (assume-consent)"

FEATURE_DEFAULTS: dict[str, FeatureDefault] = {
    "recency": FeatureDefault(28.0, _TYPICAL),
    "frequency": FeatureDefault(0.0, _TYPICAL),
    "monetary_value": FeatureDefault(74.0, _TYPICAL),
    "engagement_score": FeatureDefault(0.45, _TYPICAL),
    "discount_sensitive": FeatureDefault(0.0, _UNTAGGED),
    "free_shipping_preferred": FeatureDefault(0.0, _UNTAGGED),
    "email_opens": FeatureDefault(0.045, _TYPICAL),
    "sms_response": FeatureDefault(0.055, _TYPICAL),
    "push_response": FeatureDefault(0.045, _TYPICAL),
    "last_purchase_days": FeatureDefault(49.0, _TYPICAL),
    "days_since_contact": FeatureDefault(_BY_NAME["days_since_contact"].high, _NO_CONTACT),
    "contacts_last_30d": FeatureDefault(0.0, _NO_CONTACT),
    "discounts_last_90d": FeatureDefault(0.0, _NO_DISCOUNT),
    **{name: FeatureDefault(0.0, _CONSENT_UNKNOWN) for name in CONSENT_FEATURES},
}
"""The one table of defaults for features a customer leaves out, in ``FEATURE_NAMES`` order.

Consent features default to 0 unless the caller assumes consent on their channel.
"""


# ---------------------------------------------------------------------------- schema
def _zero_or_one(value: float) -> float:
    if value not in (0.0, 1.0):
        raise PydanticCustomError("binary", "must be 0 or 1, got {value}", {"value": f"{value:g}"})
    return value


def feature_value_type(feature: Feature) -> Any:
    """The validated type of one value of ``feature``.

    A finite number (not a string or a bool) within the feature's range, checked by pydantic's
    core (fast for batches); a flag is 0 or 1.
    """
    bounds = Field(strict=True, ge=feature.low, le=feature.high)
    if feature.binary:
        flag = Field(json_schema_extra={"enum": [0, 1]})
        return Annotated[float, bounds, flag, AfterValidator(_zero_or_one)]
    return Annotated[float, bounds]


def feature_description(feature: Feature) -> str:
    """The feature's description, unit, range and default (for schemas)."""
    default = FEATURE_DEFAULTS[feature.name]
    if feature.binary:
        text = f"{feature.description} 0 or 1."
    else:
        text = f"{feature.description} Unit: {feature.unit}; {feature.low:g} to {feature.high:g}."
    return f"{text} If left out: {default.value:g} ({default.reason})."


CustomerFeatures: Any = TypedDict(  # type: ignore[misc]  # built from FEATURES
    "CustomerFeatures",
    {
        f.name: Annotated[
            feature_value_type(f), Field(description=feature_description(f), title=f.name)
        ]
        for f in FEATURES
    },
    total=False,
)
CustomerFeatures.__doc__ = "Observed features of one customer by name; any subset of the 16."
CustomerFeatures.__pydantic_config__ = ConfigDict(extra="forbid", allow_inf_nan=False)
_FEATURES = TypeAdapter(CustomerFeatures)


def validate_features(features: Mapping[str, Any]) -> dict[str, float]:
    """Check feature names, types and ranges (any subset of the features); return floats.

    Raises:
        ValueError: Naming the first offending feature and the problem.
    """
    try:
        return dict(_FEATURES.validate_python(features))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise ValueError(f"{field}: {error['msg']}") from None


class CustomerProfile(BaseModel):
    """One customer: an id, a free-text description, a segment and (some of) its features.

    Accepts ``{"customer_id": ..., "features": {...}}`` and the flat form, in which the features
    sit at the top level next to the other fields (``{"recency": 15, ...}``). Subclasses add
    fields (an API request's options); the flat form then takes every key that is not a field
    as a feature, so an unknown key is reported as an unknown feature.

    Attributes:
        customer_id: Identifier (free text).
        description: What kind of customer this is.
        segment: Segment name for simulation; if omitted the most likely one is inferred.
        features: The given features by name (floats). Features left out are filled in by
            :func:`fill_in_rows` (or drawn from the segment in simulation).
    """

    model_config = ConfigDict(extra="forbid")

    customer_id: str | None = Field(
        None, max_length=_MAX_ID_LENGTH, description="Your id of the customer (logged)."
    )
    description: str | None = Field(None, description="What kind of customer this is (free text).")
    segment: str | None = Field(
        None, description="Population segment, used in simulation only (default: most likely)."
    )
    features: CustomerFeatures = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="Any subset of the 16 features; the others are filled in and reported.",
    )

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_features(cls, data: Any) -> Any:
        """The flat form: every key that is not a field is a feature."""
        if not isinstance(data, dict) or "features" in data:
            return data
        fields = cls.model_fields
        nested = {key: value for key, value in data.items() if key in fields}
        nested["features"] = {key: value for key, value in data.items() if key not in fields}
        return nested


# ---------------------------------------------------------------------------- filling in
class FilledFeature(NamedTuple):
    """A feature that customers left out, and the value it was given.

    Attributes:
        feature: Feature name.
        value: The value filled in.
        reason: Why this value.
        n_customers: How many customers of the request got it.
    """

    feature: str
    value: float
    reason: str
    n_customers: int = 1

    def as_dict(self, counts: bool = False) -> dict[str, Any]:
        """``feature``, ``value`` and ``reason`` (and ``n_customers`` with ``counts``)."""
        item: dict[str, Any] = {"feature": self.feature, "value": self.value, "reason": self.reason}
        if counts:
            item["n_customers"] = self.n_customers
        return item


@dataclass(frozen=True)
class FilledCustomers:
    """Complete observations and what was filled in to complete them.

    Attributes:
        observations: ``(n, 16)`` float64 in :data:`rec_env.features.FEATURE_NAMES` order.
        filled_in: One entry per feature that at least one customer left out, in feature order.
    """

    observations: np.ndarray
    filled_in: tuple[FilledFeature, ...]


def parse_channels(value: str | Collection[str]) -> tuple[str, ...]:
    """Channels named by ``"email,push"``, ``"all"``, ``"none"`` or ``""`` (or a collection).

    Returns:
        The channels, in :data:`rec_env.features.CHANNELS` order.

    Raises:
        ValueError: Naming an unknown channel.
    """
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [name.strip().lower() for name in names if name.strip()]
    if names in (["all"], ["none"]):
        return CHANNELS if names == ["all"] else ()
    unknown = [name for name in names if name not in CHANNELS]
    if unknown:
        raise ValueError(
            f"unknown channel {unknown[0]!r}; expected a comma-separated list of "
            f"{', '.join(CHANNELS)}, or all, or none"
        )
    return tuple(channel for channel in CHANNELS if channel in names)


@dataclass(frozen=True)
class _Defaults:
    """:data:`FEATURE_DEFAULTS` in feature order, with consent assumed on some channels."""

    values: np.ndarray
    entries: tuple[FeatureDefault, ...]
    one_customer: tuple[FilledFeature, ...]
    """The report of each feature when one customer left it out."""


@functools.lru_cache(maxsize=16)
def _defaults(assume_consent: str | tuple[str, ...]) -> _Defaults:
    """The defaults when unknown consent counts as given on ``assume_consent`` (cached)."""
    entries = [FEATURE_DEFAULTS[name] for name in FEATURE_NAMES]
    for channel in parse_channels(assume_consent):
        entries[FEATURE_INDEX[f"consent_{channel}"]] = FeatureDefault(1.0, _CONSENT_ASSUMED)
    values = np.array([entry.value for entry in entries])
    values.flags.writeable = False  # shared by every call
    one = tuple(
        FilledFeature(name, entry.value, entry.reason)
        for name, entry in zip(FEATURE_NAMES, entries, strict=True)
    )
    return _Defaults(values, tuple(entries), one)


def _defaults_for(assume_consent: str | Collection[str]) -> _Defaults:
    key = assume_consent if isinstance(assume_consent, str) else tuple(assume_consent)
    return _defaults(key)


def fill_in_rows(
    rows: Sequence[Mapping[str, float]], assume_consent: str | Collection[str] = ()
) -> FilledCustomers:
    """Observations of validated customers (:data:`CustomerFeatures`), left-out features filled.

    Args:
        rows: Each customer's given features by name (already validated).
        assume_consent: Channels whose unknown consent counts as given (as for
            :func:`parse_channels`); otherwise unknown consent is 0.

    Raises:
        ValueError: If ``assume_consent`` names an unknown channel.
    """
    n_features = len(FEATURE_NAMES)
    if all(len(row) == n_features for row in rows):  # validated rows: nothing left out
        complete = np.array([_ALL_FEATURES(row) for row in rows], dtype=float)
        return FilledCustomers(complete.reshape(len(rows), n_features), ())
    defaults = _defaults_for(assume_consent)
    if len(rows) == 1:  # the single-customer path of the service, in plain Python
        row = rows[0]
        report = tuple(item for item in defaults.one_customer if item.feature not in row)
        obs = [row.get(item.feature, item.value) for item in defaults.one_customer]
        return FilledCustomers(np.array([obs], dtype=float), report)
    nan = math.nan
    raw = np.array([[row.get(name, nan) for name in FEATURE_NAMES] for row in rows], dtype=float)
    return _fill_in(raw, defaults)


def _fill_in(raw: np.ndarray, defaults: _Defaults) -> FilledCustomers:
    """Replace the NaN entries (left out) of ``(n, 16)`` ``raw`` by ``defaults``, in place."""
    missing = np.isnan(raw)
    counts = missing.sum(axis=0)
    np.copyto(raw, defaults.values, where=missing)
    filled = tuple(
        FilledFeature(FEATURE_NAMES[j], defaults.entries[j].value, defaults.entries[j].reason, n)
        for j, n in enumerate(counts.tolist())
        if n
    )
    return FilledCustomers(raw, filled)


def fill_in_columns(
    columns: Mapping[str, Sequence[float]], n: int, assume_consent: str | Collection[str] = ()
) -> FilledCustomers:
    """Like :func:`fill_in_rows` for ``n`` customers given column by column.

    Args:
        columns: Equally long lists of values by feature name (already validated); a feature
            without a column is filled in for every customer.
        n: Number of customers.
        assume_consent: Channels whose unknown consent counts as given.

    Raises:
        ValueError: If ``assume_consent`` names an unknown channel.
    """
    raw = np.full((n, len(FEATURE_NAMES)), np.nan)
    for name, values in columns.items():
        raw[:, FEATURE_INDEX[name]] = values
    return _fill_in(raw, _defaults_for(assume_consent))


# ---------------------------------------------------------------------------- files
def load_customer(path: str | Path) -> CustomerProfile:
    """Load and validate a customer JSON file (nested or flat form, any subset of features).

    Raises:
        ConfigError: Naming the file, the field and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    return load_model(path, CustomerProfile)


def load_customers_csv(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read customers from a CSV file with one column per feature (and optional ``customer_id``).

    Returns:
        The customer ids (row numbers if there is no ``customer_id`` column) and the
        ``(n, 16)`` float32 observations.

    Raises:
        ConfigError: Naming the file, the row or column, and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read CSV ({exc})") from None
    missing = [name for name in FEATURE_NAMES if name not in columns]
    if missing:
        raise ConfigError(f"{path}: column {missing[0]!r} is missing")
    extra = [c for c in columns if c not in FEATURE_NAMES and c != "customer_id"]
    if extra:
        raise ConfigError(f"{path}: unknown column {extra[0]!r}")
    if not rows:
        raise ConfigError(f"{path}: no customers (the file has only a header)")
    ids: list[str] = []
    obs = np.empty((len(rows), len(FEATURE_NAMES)), dtype=np.float32)
    for i, row in enumerate(rows):
        line = i + 2  # the header is line 1
        values: dict[str, Any] = {}
        for name in FEATURE_NAMES:
            raw = (row.get(name) or "").strip()
            try:
                values[name] = float(raw)
            except ValueError:
                raise ConfigError(f"{path}: line {line}: {name}: not a number ({raw!r})") from None
        try:
            clean = validate_features(values)
        except ValueError as exc:
            raise ConfigError(f"{path}: line {line}: {exc}") from None
        obs[i] = [clean[name] for name in FEATURE_NAMES]
        ids.append(row.get("customer_id") or str(i + 1))
    return ids, obs
