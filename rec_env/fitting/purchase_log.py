"""Reading purchase logs (one row per transaction) with errors that name the line and column.

A purchase log has one row per transaction with at least three columns: a customer id, a date
and an amount. :class:`LogFormat` says which columns those are, how the file is separated and
how dates are written; :data:`LOG_PRESETS` holds the built-in formats (``csv``: a header row with
``customer_id,date,amount``; ``cdnow``: the CDNOW master file, see
:mod:`rec_env.datasets.cdnow`). :func:`read_purchase_log` validates every row: a missing column,
an empty file, a missing customer id, an unparseable date or amount, or a negative amount raises
a :class:`PurchaseLogError` whose message names the file, the line and the column.
"""

from __future__ import annotations

import gzip
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "LOG_PRESETS",
    "LogFormat",
    "PurchaseLog",
    "PurchaseLogError",
    "read_purchase_log",
]


class PurchaseLogError(ValueError):
    """A purchase log is missing, empty or malformed; the message names file, line and column."""


@dataclass(frozen=True)
class LogFormat:
    """How a purchase log is laid out.

    Attributes:
        customer_column: Column holding the customer id (any text).
        date_column: Column holding the transaction date. A file without a ``date`` column
            but with ``time`` (the order log of ``recenv features``) is read from ``time``.
        amount_column: Column holding the amount paid (non-negative).
        date_format: ``strftime`` format of the dates, e.g. ``"%Y%m%d"``; ``None`` accepts ISO
            8601 dates and date-times (``2024-03-01``, ``2024-03-01 12:30:00``).
        separator: Field separator; ``"whitespace"`` splits on runs of blanks.
        column_names: Names of the columns of a file without a header row, in order. ``None``
            means the first row is the header. A first row that repeats these names is skipped.
    """

    customer_column: str = "customer_id"
    date_column: str = "date"
    amount_column: str = "amount"
    date_format: str | None = None
    separator: str = ","
    column_names: tuple[str, ...] | None = None

    def with_overrides(self, **overrides: str | None) -> LogFormat:
        """A copy with the given fields replaced; ``None`` values keep the current field."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


LOG_PRESETS: dict[str, LogFormat] = {
    "csv": LogFormat(),
    "cdnow": LogFormat(
        customer_column="customer_id",
        date_column="date",
        amount_column="dollar_value",
        date_format="%Y%m%d",
        separator="whitespace",
        column_names=("customer_id", "date", "number_of_cds", "dollar_value"),
    ),
}
"""Built-in log formats by name."""


@dataclass(frozen=True)
class PurchaseLog:
    """Validated transactions, one entry per row of the file.

    Attributes:
        source: Where the transactions came from (a file name), for messages.
        customer: ``(m,)`` customer ids as strings.
        day: ``(m,)`` int64 transaction dates as days since 1970-01-01.
        amount: ``(m,)`` float64 amounts, all finite and non-negative.
    """

    source: str
    customer: np.ndarray
    day: np.ndarray
    amount: np.ndarray

    @property
    def n_transactions(self) -> int:
        """Number of transactions."""
        return int(self.day.shape[0])

    @property
    def n_customers(self) -> int:
        """Number of distinct customers."""
        return int(np.unique(self.customer).shape[0])


def read_purchase_log(path: str | Path, log_format: LogFormat | str = "csv") -> PurchaseLog:
    """Read and validate a purchase log (plain or gzip-compressed).

    Args:
        path: The file.
        log_format: A :class:`LogFormat` or the name of a preset in :data:`LOG_PRESETS`.

    Returns:
        The validated transactions.

    Raises:
        PurchaseLogError: If the file is missing, empty, lacks a column, or a row has a missing
            customer id, an unparseable date or amount, or a negative amount. The message names
            the file, the line (counting the header) and the column.
    """
    import pandas as pd

    fmt = _resolve_format(log_format)
    path = Path(path)
    if not path.is_file():
        raise PurchaseLogError(f"{path}: file not found")
    separator = r"\s+" if fmt.separator == "whitespace" else fmt.separator
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(
                path,
                sep=separator,
                header=None if fmt.column_names else 0,
                names=list(fmt.column_names) if fmt.column_names else None,
                index_col=False,
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
            )
    except pd.errors.EmptyDataError:
        raise PurchaseLogError(f"{path}: file is empty (no header, no transactions)") from None
    except pd.errors.ParserWarning:
        raise PurchaseLogError(f"{path}: {_ragged_row(path, separator)}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise PurchaseLogError(f"{path}: cannot read the file ({str(exc).strip()})") from None
    lines = np.arange(len(table)) + (2 if fmt.column_names is None else 1)
    if fmt.column_names and len(table) and _is_header(table.iloc[0], fmt.column_names):
        table, lines = table.iloc[1:], lines[1:]
    blank = (table == "").all(axis=1).to_numpy()
    table, lines = table[~blank], lines[~blank]
    columns = [str(c).strip() for c in table.columns]
    table.columns = columns
    if fmt.date_column == "date" and "date" not in columns and "time" in columns:
        fmt = replace(fmt, date_column="time")  # the order log of `recenv features`, as it is
    wanted = (fmt.customer_column, fmt.date_column, fmt.amount_column)
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise PurchaseLogError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)} (the file has: {', '.join(columns)})"
        )
    if table.empty:
        raise PurchaseLogError(f"{path}: file has no transactions")
    customer = _parse_customers(table[fmt.customer_column], lines, path, fmt.customer_column)
    day = _parse_dates(table[fmt.date_column], lines, path, fmt)
    amount = _parse_amounts(table[fmt.amount_column], lines, path, fmt.amount_column)
    return PurchaseLog(source=path.name, customer=customer, day=day, amount=amount)


def _resolve_format(log_format: LogFormat | str) -> LogFormat:
    if isinstance(log_format, LogFormat):
        return log_format
    try:
        return LOG_PRESETS[log_format]
    except KeyError:
        choices = ", ".join(LOG_PRESETS)
        raise PurchaseLogError(f"unknown log format {log_format!r}; choose {choices}") from None


def _is_header(row: pd.Series, names: tuple[str, ...]) -> bool:
    values = [str(v).strip().lower() for v in row]
    return values[: len(names)] == [n.lower() for n in names]


def _ragged_row(path: Path, separator: str) -> str:
    """Describe the first line whose number of fields differs from the first line's."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        expected = None
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            text = line.strip() if separator == r"\s+" else line.rstrip("\r\n")
            fields = (
                len(re.split(separator, text)) if separator == r"\s+" else text.count(separator) + 1
            )
            if expected is None:
                expected = fields
            elif fields != expected:
                return f"line {number} has {fields} fields, expected {expected}"
    return "rows have more fields than the header"  # pragma: no cover - pandas warned anyway


def _first_bad(bad: np.ndarray, values: np.ndarray, lines: np.ndarray) -> tuple[int, str]:
    i = int(np.flatnonzero(bad)[0])
    return int(lines[i]), str(values[i])


def _parse_customers(column: pd.Series, lines: np.ndarray, path: Path, name: str) -> np.ndarray:
    text = column.str.strip().to_numpy(dtype=str)
    empty = text == ""
    if empty.any():
        line, _ = _first_bad(empty, text, lines)
        raise PurchaseLogError(f"{path}, line {line}: missing customer id in column {name!r}")
    return text


def _parse_dates(column: pd.Series, lines: np.ndarray, path: Path, fmt: LogFormat) -> np.ndarray:
    import pandas as pd

    text = column.str.strip()
    parsed = pd.to_datetime(text, format=fmt.date_format or "ISO8601", errors="coerce").to_numpy()
    bad = np.isnat(parsed)
    if bad.any():
        line, value = _first_bad(bad, text.to_numpy(dtype=str), lines)
        expected = fmt.date_format or "ISO 8601, e.g. 2024-03-01"
        raise PurchaseLogError(
            f"{path}, line {line}: cannot parse date {value!r} in column "
            f"{fmt.date_column!r} (expected {expected})"
        )
    return parsed.astype("datetime64[D]").astype(np.int64)


def _parse_amounts(column: pd.Series, lines: np.ndarray, path: Path, name: str) -> np.ndarray:
    import pandas as pd

    text = column.str.strip()
    amount = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(amount)
    if bad.any():
        line, value = _first_bad(bad, text.to_numpy(dtype=str), lines)
        raise PurchaseLogError(
            f"{path}, line {line}: cannot parse amount {value!r} in column {name!r}"
        )
    negative = amount < 0
    if negative.any():
        line, value = _first_bad(negative, text.to_numpy(dtype=str), lines)
        raise PurchaseLogError(f"{path}, line {line}: negative amount {value} in column {name!r}")
    return amount
