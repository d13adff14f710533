"""Validated customers into observations of the served world, left-out features filled in.

The 16 strategy features are filled in by :func:`rec_env.customer.fill_in_rows` and
:func:`rec_env.customer.fill_in_columns` (their defaults, :data:`rec_env.customer.FEATURE_DEFAULTS`,
are the service's and ``recenv explain``'s). The item worlds add three features per product
category (:mod:`rec_env.item_features`); one left out means *no history in the category*: 0
purchases, 0 products shown and 365 days since the last purchase (the bound that means "never").
Every value filled in is reported (:class:`~rec_env.customer.FilledFeature`), as for the
strategy features.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rec_env.customer import FilledCustomers, FilledFeature, fill_in_columns, fill_in_rows
from rec_env.features import FEATURE_NAMES, Feature

__all__ = ["NO_HISTORY_REASON", "CustomerFiller", "item_default"]

NO_HISTORY_REASON = (
    "not given: no history in the category (0 purchases, 0 products shown, 365 days)"
)
"""Why an item feature left out gets its value."""

_N_STRATEGY = len(FEATURE_NAMES)


def item_default(feature: Feature) -> float:
    """The value of an item feature left out: no history (days since: the bound, else 0)."""
    return feature.high if feature.name.startswith("days_since_") else feature.low


@dataclass(frozen=True)
class _Defaults:
    """Every feature's default and report, in observation order (for one ``assume_consent``)."""

    values: np.ndarray
    one_customer: tuple[FilledFeature, ...]


class CustomerFiller:
    """Fill in the customers of one world: the strategy features, then the item features.

    Args:
        features: The world's features; the first 16 are the strategy features.
    """

    def __init__(self, features: Sequence[Feature]) -> None:
        self.features = tuple(features)
        self.names = tuple(f.name for f in self.features)
        if self.names[:_N_STRATEGY] != FEATURE_NAMES:  # pragma: no cover - one definition
            raise ValueError("a world's features start with the 16 strategy features")
        self.index = {name: j for j, name in enumerate(self.names)}
        self._item = self.features[_N_STRATEGY:]

    @property
    def n_features(self) -> int:
        """Features of an observation."""
        return len(self.features)

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one filler per app, a few consent settings
    def defaults(self, assume_consent: tuple[str, ...]) -> _Defaults:
        """Every feature's default with consent assumed on ``assume_consent`` (cached)."""
        strategy = fill_in_rows([{}], assume_consent).filled_in
        item = tuple(FilledFeature(f.name, item_default(f), NO_HISTORY_REASON) for f in self._item)
        one = (*strategy, *item)
        values = np.array([entry.value for entry in one])
        values.flags.writeable = False
        return _Defaults(values, one)

    def fill_rows(
        self, rows: Sequence[Mapping[str, float]], assume_consent: Collection[str] = ()
    ) -> FilledCustomers:
        """``(n, F)`` observations of validated rows, each left-out feature filled and reported."""
        if not self._item:
            return fill_in_rows(rows, assume_consent)
        n_features = self.n_features
        if all(len(row) == n_features for row in rows):  # nothing left out
            obs = np.array([[row[name] for name in self.names] for row in rows], dtype=float)
            return FilledCustomers(obs.reshape(len(rows), n_features), ())
        defaults = self.defaults(tuple(assume_consent))
        if len(rows) == 1:  # the single-customer path, in plain Python
            row = rows[0]
            report = tuple(item for item in defaults.one_customer if item.feature not in row)
            obs = [row.get(item.feature, item.value) for item in defaults.one_customer]
            return FilledCustomers(np.array([obs], dtype=float), report)
        nan = math.nan
        raw = np.array([[row.get(name, nan) for name in self.names] for row in rows], dtype=float)
        return self._fill_missing(raw.reshape(len(rows), n_features), defaults)

    def fill_columns(
        self, columns: Mapping[str, Sequence[float]], n: int, assume_consent: Collection[str] = ()
    ) -> FilledCustomers:
        """Like :meth:`fill_rows` for ``n`` customers given column by column."""
        if not self._item:
            return fill_in_columns(columns, n, assume_consent)
        defaults = self.defaults(tuple(assume_consent))
        raw = np.empty((n, self.n_features))
        given = np.zeros(self.n_features, dtype=bool)
        for name, values in columns.items():
            j = self.index[name]
            raw[:, j] = values
            given[j] = True
        raw[:, ~given] = defaults.values[~given]  # whole columns left out: no NaN pass
        filled = tuple(
            FilledFeature(item.feature, item.value, item.reason, n)
            for item, present in zip(defaults.one_customer, given.tolist(), strict=True)
            if not present
        )
        return FilledCustomers(raw, filled)

    def _fill_missing(self, raw: np.ndarray, defaults: _Defaults) -> FilledCustomers:
        """Replace the NaN entries (left out) of ``raw`` by the defaults, in place."""
        missing = np.isnan(raw)
        counts = missing.sum(axis=0)
        np.copyto(raw, defaults.values, where=missing)
        filled = tuple(
            FilledFeature(item.feature, item.value, item.reason, count)
            for item, count in zip(defaults.one_customer, counts.tolist(), strict=True)
            if count
        )
        return FilledCustomers(raw, filled)
