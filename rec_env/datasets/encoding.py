"""Encoding a log's feature columns as numbers, with the encoding saved for prediction time.

:class:`TabularEncoder` is fitted once, on the training log, and then applied unchanged to every
later file (a test split, the customers to score), so that a column means the same thing
everywhere. It is saved as JSON in run directories (:meth:`TabularEncoder.to_dict`).

* **Numeric** columns are kept as float64.
* **Categorical** columns are one-hot encoded, one column per level, named ``column=level``
  (``channel=Web``). Levels are the sorted distinct values seen at fit time, or an order given
  explicitly. A column is categorical if declared so, or if any of its values is not a number.
  Every level gets a column (none is dropped), like :func:`rec_env.datasets.load_hillstrom`.
* **Unseen levels** (a value not in the saved list): ``unseen="error"`` (the default) raises an
  error naming the file, row and column; ``unseen="other"`` adds one ``column=<other>`` column
  per categorical feature, 0 in the fitting data and 1 for any level not seen there.
* **Missing values** (an empty cell or one of :data:`MISSING_VALUES`): ``missing="error"`` (the
  default) raises an error naming the file, row and column; ``missing="impute"`` fills a numeric
  column with its mean and a categorical column with its most frequent level, both taken from
  the fitting data and saved with the encoder.

The encoder also builds the :class:`~rec_env.feature_space.FeatureSpace` of its output: numeric
columns are standardised with the fitting data's mean and standard deviation (bounds: the
observed minimum and maximum), one-hot columns are left as 0/1.

This module imports numpy only.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rec_env.errors import ConfigError
from rec_env.feature_space import FeatureSpace

__all__ = [
    "MISSING_VALUES",
    "OTHER_LEVEL",
    "ColumnEncoding",
    "Location",
    "TabularEncoder",
    "as_numbers",
    "as_strings",
    "as_texts",
    "codes_of",
    "shown",
]

MISSING_VALUES = frozenset({"", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "#N/A"})
"""Cell texts read as missing (as pandas does by default, minus a few rarer ones)."""

OTHER_LEVEL = "<other>"
"""The level that stands for every unseen level when ``unseen="other"``."""

_FORMAT = "recenv.tabular-encoder/1"

Unseen = Literal["error", "other"]
Missing = Literal["error", "impute"]


@dataclass(frozen=True)
class Location:
    """Where rows come from, to name them in errors.

    Args:
        source: The file (or a description of the data).
        first_line: Line of the file holding row 1 (2 for a CSV with a header), or ``None``
            when rows do not map to lines (Parquet, or a CSV with quoted line breaks).
    """

    source: str = "<data>"
    first_line: int | None = None

    def row(self, index: int) -> str:
        """``"row 7 (line 8)"`` for the 0-based ``index``: rows count data rows from 1."""
        line = "" if self.first_line is None else f" (line {index + self.first_line})"
        return f"row {index + 1}{line}"

    def cell(self, index: int, column: str) -> str:
        """``"file.csv: row 7 (line 8), column 'age'"``."""
        return f"{self.source}: {self.row(index)}, column {column!r}"


_MISSING_TEXTS = np.array(sorted(MISSING_VALUES))


def _texts(values: np.ndarray) -> np.ndarray:
    """A text column as a fixed-width unicode array (``None`` becomes ``"None"``, missing)."""
    return values if values.dtype.kind == "U" else values.astype(np.str_)


def shown(value: Any) -> str:
    """``repr`` of a cell for messages (``'abc'``, not ``np.str_('abc')``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _missing(values: np.ndarray) -> np.ndarray:
    """``(n,)`` True where a cell is missing (NaN, ``None`` or a :data:`MISSING_VALUES` text)."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "iub":
        return np.zeros(values.shape, dtype=bool)
    texts = _texts(values)
    # Missing texts are at most 4 characters: test only the short cells.
    short = np.flatnonzero(np.char.str_len(texts) <= 6)
    missing = np.zeros(texts.shape, dtype=bool)
    missing[short] = np.isin(np.char.strip(texts[short]), _MISSING_TEXTS)
    return missing


def as_numbers(values: np.ndarray, column: str, where: Location) -> np.ndarray:
    """``(n,)`` float64 of a column, NaN where missing.

    Raises:
        ConfigError: Naming the file, row and column of the first value that is not a number
            or is infinite.
    """
    values = np.asarray(values)
    if values.dtype.kind in "fiub":
        numbers = values.astype(np.float64)
    else:
        missing = _missing(values)
        numbers = np.full(values.shape, np.nan)
        present = np.flatnonzero(~missing)
        try:
            numbers[present] = values[present].astype(np.float64)
        except (TypeError, ValueError):
            for i in present:  # the slow path only to find the row to name
                try:
                    float(values[i])
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"{where.cell(int(i), column)}: {shown(values[i])} is not a number"
                    ) from None
    infinite = np.isinf(numbers)
    if infinite.any():
        i = int(np.flatnonzero(infinite)[0])
        raise ConfigError(f"{where.cell(i, column)}: {shown(values[i])} is not a finite number")
    return numbers


def as_texts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(texts, missing)``: a column as a unicode array of level texts, and its missing cells.

    Integral numbers lose their ``.0`` (``2.0`` → ``"2"``), so that a numeric column and its
    text have the same levels. Missing cells hold ``""``.
    """
    values = np.asarray(values)
    missing = _missing(values)
    if values.dtype.kind == "f":
        whole = np.isfinite(values) & (values == np.round(values))
        integral = np.where(whole, values, 0).astype(np.int64).astype(np.str_)
        texts = np.where(whole, integral, values.astype(np.str_))
    else:
        texts = _texts(values)
    if missing.any():
        texts = np.where(missing, "", texts)
    return texts, missing


def as_strings(values: np.ndarray) -> np.ndarray:
    """``(n,)`` object array of level texts (see :func:`as_texts`), ``None`` where missing."""
    texts, missing = as_texts(values)
    out = texts.astype(object)
    out[missing] = None
    return out


def codes_of(texts: np.ndarray, missing: np.ndarray, levels: Sequence[str]) -> np.ndarray:
    """``(n,)`` index of each text in ``levels``; -1 where it is not a level or is missing."""
    codes = np.full(texts.shape, -1, dtype=np.intp)
    present = ~missing
    if not present.any():
        return codes
    distinct, inverse = np.unique(texts[present], return_inverse=True)
    lookup = {level: k for k, level in enumerate(levels)}
    mapped = np.array([lookup.get(str(v), -1) for v in distinct], dtype=np.intp)
    codes[present] = mapped[inverse]
    return codes


def _check_mostly_numbers(values: np.ndarray, column: str, where: Location) -> None:
    """Raise if most present values are numbers but some are not (a typo, not a category).

    Raises:
        ConfigError: Naming the first cell that is not a number.
    """
    present = np.flatnonzero(~_missing(values))
    bad = []
    for i in present:
        try:
            float(values[i])
        except (TypeError, ValueError):
            bad.append(int(i))
    if bad and len(bad) <= 0.5 * present.size:
        raise ConfigError(
            f"{where.cell(bad[0], column)}: {shown(values[bad[0]])} is not a number, though "
            f"{present.size - len(bad)} of the column's {present.size} values are; fix the "
            "cell, or list the column under categorical"
        )


def _try_numbers(values: np.ndarray) -> np.ndarray | None:
    """The column as float64 (NaN where missing) if every present value is a number, else None."""
    if values.dtype.kind in "fiub":
        return values.astype(np.float64)
    missing = _missing(values)
    numbers = np.full(values.shape, np.nan)
    try:
        numbers[~missing] = values[~missing].astype(np.float64)
    except (TypeError, ValueError):
        return None
    return numbers


@dataclass(frozen=True)
class ColumnEncoding:
    """How one input column is encoded.

    Args:
        name: The input column.
        kind: ``"numeric"`` or ``"categorical"``.
        levels: The levels of a categorical column, in output order.
        fill: Value imputed for missing cells (``missing="impute"``), else ``None``.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    levels: tuple[str, ...] = ()
    fill: float | str | None = None

    def output_names(self, unseen: Unseen) -> list[str]:
        """Names of the output columns: the column itself, or ``column=level`` per level."""
        if self.kind == "numeric":
            return [self.name]
        levels = [*self.levels, OTHER_LEVEL] if unseen == "other" else list(self.levels)
        return [f"{self.name}={level}" for level in levels]

    def encode(self, values: np.ndarray, unseen: Unseen, where: Location) -> np.ndarray:
        """``(n, width)`` float64 encoding of the column's values.

        Raises:
            ConfigError: Naming file, row and column of a missing value (with no fill) or of
                an unseen level (with ``unseen="error"``).
        """
        if self.kind == "numeric":
            numbers = as_numbers(values, self.name, where)
            missing = np.isnan(numbers)
            if missing.any():
                self._missing_error(missing, where)
                numbers[missing] = float(self.fill)  # type: ignore[arg-type]
            return numbers[:, None]
        texts, missing = as_texts(values)
        if missing.any():
            self._missing_error(missing, where)
            texts = np.where(missing, str(self.fill), texts)
            missing = np.zeros_like(missing)
        width = len(self.levels) + (unseen == "other")
        codes = codes_of(texts, missing, self.levels)
        unknown = codes < 0
        if unknown.any() and unseen == "error":
            i = int(np.flatnonzero(unknown)[0])
            listed = ", ".join(self.levels[:20]) + (", ..." if len(self.levels) > 20 else "")
            raise ConfigError(
                f"{where.cell(i, self.name)}: level {shown(texts[i])} was not seen when the "
                f"encoding was fitted (levels: {listed}); map it to a known level, or fit "
                "with unseen='other'"
            )
        codes[unknown] = width - 1
        onehot = np.zeros((len(texts), width))
        onehot[np.arange(len(texts)), codes] = 1.0
        return onehot

    def _missing_error(self, missing: np.ndarray, where: Location) -> None:
        if self.fill is None:
            i = int(np.flatnonzero(missing)[0])
            raise ConfigError(
                f"{where.cell(i, self.name)}: the value is missing ({int(missing.sum())} "
                "missing in the column); fill it in the file, or read with missing='impute' "
                "(numeric: the mean, categorical: the most frequent level)"
            )


def _fit_column(
    name: str,
    values: np.ndarray,
    kind: Literal["numeric", "categorical"],
    levels: Sequence[str] | None,
    missing: Missing,
    where: Location,
) -> ColumnEncoding:
    """The encoding of one column, fitted on its values."""
    if kind == "numeric":
        numbers = as_numbers(values, name, where)
        present = numbers[~np.isnan(numbers)]
        fill = None
        if missing == "impute":
            if present.size == 0:
                raise ConfigError(f"{where.source}: column {name!r} has no values to impute from")
            fill = float(present.mean())
        return ColumnEncoding(name, "numeric", fill=fill)
    texts, absent = as_texts(values)
    found, counts = np.unique(texts[~absent], return_counts=True)
    ordered = tuple(str(v) for v in levels) if levels is not None else tuple(found.tolist())
    if len(set(ordered)) != len(ordered):
        raise ConfigError(f"levels of {name!r} must be distinct, got {list(ordered)}")
    fill = None
    if missing == "impute":
        if found.size == 0:
            raise ConfigError(f"{where.source}: column {name!r} has no values to impute from")
        fill = str(found[int(np.argmax(counts))])  # ties: the first level in sorted order
    return ColumnEncoding(name, "categorical", ordered, fill)


class TabularEncoder:
    """Numeric and one-hot encoding of a log's feature columns, fitted once and saved.

    Build one with :meth:`fit`; apply it with :meth:`transform`; save it with :meth:`to_dict`.

    Args:
        columns: The encoding of each input column, in output order.
        unseen: ``"error"`` or ``"other"`` (see the module docs).
        feature_space: The space of the output columns (built by :meth:`fit`).

    Attributes:
        names: Output column names (``recency``, ``channel=Web``, ...).
        d: Number of output columns.
    """

    def __init__(
        self,
        columns: Sequence[ColumnEncoding],
        unseen: Unseen,
        feature_space: FeatureSpace,
    ) -> None:
        self.columns = tuple(columns)
        self.unseen: Unseen = unseen
        self.names: tuple[str, ...] = tuple(
            name for column in self.columns for name in column.output_names(unseen)
        )
        if feature_space.names != self.names:
            raise ValueError("the feature space's names differ from the encoder's output names")
        self.feature_space = feature_space
        self.d = len(self.names)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The input columns the encoder reads."""
        return tuple(column.name for column in self.columns)

    @classmethod
    def fit(
        cls,
        data: Mapping[str, np.ndarray],
        features: Sequence[str],
        **options: Any,
    ) -> TabularEncoder:
        """Fit the encoding of ``features`` on ``data`` (see :meth:`fit_transform`)."""
        return cls.fit_transform(data, features, **options)[0]

    @classmethod
    def fit_transform(
        cls,
        data: Mapping[str, np.ndarray],
        features: Sequence[str],
        *,
        categorical: Collection[str] = (),
        numeric: Collection[str] = (),
        levels: Mapping[str, Sequence[str]] | None = None,
        unseen: Unseen = "error",
        missing: Missing = "error",
        where: Location | None = None,
    ) -> tuple[TabularEncoder, np.ndarray]:
        """Fit the encoding of ``features`` on ``data`` and encode it.

        Args:
            data: Column name → ``(n,)`` values (numbers, or texts).
            features: The feature columns, in output order.
            categorical: Columns to one-hot even if their values are numbers.
            numeric: Columns that must be numbers (an error names the first that is not).
            levels: Explicit level order of categorical columns (implies categorical).
            unseen: What :meth:`transform` does with a level it was not fitted on.
            missing: ``"error"`` or ``"impute"`` (see the module docs).
            where: The source, to name rows in errors.

        Returns:
            ``(encoder, contexts)`` with contexts ``(n, d)``.

        Raises:
            ConfigError: Naming file, row and column of a bad, missing or unknown value.
        """
        where = where or Location()
        levels = dict(levels or {})
        encodings = []
        prepared = dict(data)  # numeric columns parsed once, then reused by the transform
        for name in features:
            values = np.asarray(data[name])
            kind: Literal["numeric", "categorical"] = "categorical"
            if name not in categorical and name not in levels:
                numbers = _try_numbers(values)
                if numbers is None and name in numeric:
                    as_numbers(values, name, where)  # raises, naming the first bad row
                if numbers is None:
                    _check_mostly_numbers(values, name, where)
                if numbers is not None:
                    kind, prepared[name] = "numeric", numbers
            encodings.append(
                _fit_column(name, prepared[name], kind, levels.get(name), missing, where)
            )
        placeholder = FeatureSpace.named(
            [n for column in encodings for n in column.output_names(unseen)]
        )
        # Explicit level lists are checked like later data: a value outside them is "unseen".
        encoder = cls(encodings, unseen, placeholder)
        contexts = encoder.transform(prepared, where)
        return cls(encodings, unseen, encoder._space(contexts)), contexts

    def _space(self, contexts: np.ndarray) -> FeatureSpace:
        """Numeric columns standardised on ``contexts``; one-hot columns left as 0/1."""
        numeric = np.array(
            [name in self.inputs and self._kind(name) == "numeric" for name in self.names]
        )
        spread = contexts.std(axis=0) if len(contexts) else np.ones(self.d)
        low = np.where(numeric, contexts.min(axis=0, initial=np.inf), 0.0)
        high = np.where(numeric, contexts.max(axis=0, initial=-np.inf), 1.0)
        return FeatureSpace(
            self.names,
            low,
            high,
            np.where(numeric, contexts.mean(axis=0), 0.0),
            np.where(numeric & (spread > 0), spread, 1.0),
        )

    def _kind(self, name: str) -> str:
        return next(column.kind for column in self.columns if column.name == name)

    def transform(
        self, data: Mapping[str, np.ndarray], where: Location | None = None
    ) -> np.ndarray:
        """``(n, d)`` float64 encoded features of ``data``.

        Raises:
            ConfigError: If a column is absent, or naming file, row and column of a value that
                is not a number, is missing, or is an unseen level.
        """
        where = where or Location()
        absent = [name for name in self.inputs if name not in data]
        if absent:
            raise ConfigError(f"{where.source}: the encoding needs column(s) {', '.join(absent)}")
        blocks = [
            column.encode(np.asarray(data[column.name]), self.unseen, where)
            for column in self.columns
        ]
        return np.hstack(blocks) if blocks else np.zeros((0, 0))

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable encoding (format, columns, unseen policy and feature space)."""
        return {
            "format": _FORMAT,
            "unseen": self.unseen,
            "columns": [
                {"name": c.name, "kind": c.kind, "levels": list(c.levels), "fill": c.fill}
                for c in self.columns
            ],
            "feature_space": self.feature_space.to_dict(),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> TabularEncoder:
        """The encoder written by :meth:`to_dict`.

        Raises:
            ConfigError: If the payload is not a saved encoder.
        """
        if payload.get("format") != _FORMAT:
            raise ConfigError(
                f"not a saved tabular encoder: format {payload.get('format')!r}, "
                f"expected {_FORMAT!r}"
            )
        try:
            columns = [
                ColumnEncoding(c["name"], c["kind"], tuple(c["levels"]), c.get("fill"))
                for c in payload["columns"]
            ]
            space = FeatureSpace.from_dict(payload["feature_space"])
            return cls(columns, payload["unseen"], space)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed saved tabular encoder: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path``."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TabularEncoder:
        """The encoder saved at ``path``.

        Raises:
            ConfigError: Naming the file if it cannot be read or is not a saved encoder.
        """
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the saved encoder ({exc})") from None
        try:
            return cls.from_dict(payload)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TabularEncoder):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TabularEncoder({len(self.columns)} columns -> {self.d} features)"
