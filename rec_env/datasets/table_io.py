"""Reading selected columns of a CSV or Parquet file, with errors that name the file and row.

Only the columns asked for are kept, so memory grows with the columns a log spec uses, not with
the width of the file. CSV (optionally gzip-compressed, ``.csv.gz``) is read with the standard
library's :mod:`csv` reader and every cell stays text (a unicode array) until the encoder reads
it; Parquet is
read with pyarrow (imported on first use), batch by batch, numeric columns as float64 with NaN
for nulls and the others as text.

This module imports numpy only.
"""

from __future__ import annotations

import csv
import difflib
import gzip
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import IO, Literal

import numpy as np

from rec_env.datasets.encoding import Location
from rec_env.errors import ConfigError

__all__ = ["TableFormat", "read_columns", "read_header", "table_format"]

TableFormat = Literal["auto", "csv", "parquet"]

_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_PARQUET_BATCH = 65_536


def table_format(path: Path, format: TableFormat = "auto") -> Literal["csv", "parquet"]:
    """``"csv"`` or ``"parquet"``, from ``format`` or the file's suffix.

    Raises:
        ConfigError: If ``format`` is ``"auto"`` and the suffix is neither.
    """
    if format != "auto":
        return format
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _PARQUET_SUFFIXES:
        return "parquet"
    if suffixes and suffixes[-1] in _CSV_SUFFIXES:
        return "csv"
    raise ConfigError(
        f"{path}: cannot tell the format from the suffix; name it .csv, .csv.gz or .parquet, "
        "or give format: csv / parquet"
    )


@contextmanager
def _open_text(path: Path) -> Iterator[IO[str]]:
    """The file as text (UTF-8, a leading BOM dropped), gunzipped if it ends in ``.gz``."""
    try:
        if path.suffix.lower() == ".gz":
            handle: IO[str] = gzip.open(path, "rt", encoding="utf-8-sig", newline="")  # noqa: SIM115
        else:
            handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    try:
        with handle:
            yield handle
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except (OSError, EOFError) as exc:  # e.g. a truncated or corrupt .gz
        raise ConfigError(f"{path}: cannot read file ({exc})") from None


def _parquet(path: Path):  # -> pyarrow.parquet.ParquetFile, imported lazily
    """The open ``pyarrow.parquet.ParquetFile``.

    Raises:
        ConfigError: If the file is missing or not Parquet.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{path}: cannot read as Parquet ({exc})") from None


def read_header(path: Path, format: TableFormat = "auto", delimiter: str = ",") -> tuple[str, ...]:
    """The column names of a CSV or Parquet file.

    Raises:
        ConfigError: If the file cannot be read, is empty or repeats a column name.
    """
    if table_format(path, format) == "parquet":
        names = tuple(_parquet(path).schema_arrow.names)
    else:
        with _open_text(path) as handle:
            try:
                names = tuple(next(csv.reader(handle, delimiter=delimiter)))
            except StopIteration:
                raise ConfigError(f"{path}: the file is empty (no header line)") from None
            except csv.Error as exc:
                raise ConfigError(f"{path}: line 1: {exc}") from None
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{path}: the header repeats column(s) {', '.join(repeated)}")
    return names


def check_columns(path: Path, header: Sequence[str], columns: Sequence[str], role: str) -> None:
    """Check that every column is in the header.

    Raises:
        ConfigError: Naming the file, the missing column, its role and the closest names.
    """
    for name in columns:
        if name not in header:
            close = difflib.get_close_matches(name, header, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            shown = ", ".join(header[:30]) + (", ..." if len(header) > 30 else "")
            raise ConfigError(f"{path}: no column {name!r} (the {role}){hint} Columns: {shown}")


def read_columns(
    path: Path,
    columns: Sequence[str],
    *,
    format: TableFormat = "auto",
    delimiter: str = ",",
    max_rows: int | None = None,
) -> tuple[dict[str, np.ndarray], Location]:
    """Read only ``columns`` of a CSV or Parquet file.

    Args:
        path: The file.
        columns: Columns to keep (each must exist).
        format: ``"auto"`` (from the suffix), ``"csv"`` or ``"parquet"``.
        delimiter: CSV field separator.
        max_rows: Read at most this many data rows (``None``: all).

    Returns:
        ``(columns, location)``: each column as an ``(n,)`` array (CSV: unicode text;
        Parquet: float64 with NaN for nulls, or text with ``None``), and the :class:`Location`
        that names rows in later errors.

    Raises:
        ConfigError: Naming the file (and row) if it cannot be read, lacks a column, or has a
            row with the wrong number of fields.
    """
    columns = list(dict.fromkeys(columns))
    if table_format(path, format) == "parquet":
        return _read_parquet(path, columns, max_rows), Location(str(path))
    return _read_csv(path, columns, delimiter, max_rows)


def _read_csv(
    path: Path, columns: list[str], delimiter: str, max_rows: int | None
) -> tuple[dict[str, np.ndarray], Location]:
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise ConfigError(f"{path}: the file is empty (no header line)") from None
        check_columns(path, header, columns, "column asked for")
        indices = [header.index(name) for name in columns]
        pick = itemgetter(*indices) if len(indices) > 1 else (lambda r: (r[indices[0]],))
        width = len(header)
        rows: list[tuple[str, ...]] = []
        try:
            for fields in reader:
                if len(fields) != width:
                    if not fields:  # a blank line: skipped, as spreadsheets and pandas do
                        continue
                    raise ConfigError(
                        f"{path}: row {len(rows) + 1} (line {reader.line_num}): expected "
                        f"{width} fields like the header, got {len(fields)}"
                    )
                rows.append(pick(fields))
                if max_rows is not None and len(rows) >= max_rows:
                    break
        except csv.Error as exc:
            raise ConfigError(f"{path}: line {reader.line_num}: {exc}") from None
        # Rows map to lines unless there were blank lines or quoted line breaks.
        exact = reader.line_num == len(rows) + 1
    if not rows:
        raise ConfigError(f"{path}: the file has a header but no data rows")
    transposed = list(zip(*rows, strict=True))
    data = {
        name: np.array(values, dtype=np.str_)
        for name, values in zip(columns, transposed, strict=True)
    }
    return data, Location(str(path), 2 if exact else None)


def _read_parquet(path: Path, columns: list[str], max_rows: int | None) -> dict[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc

    parquet = _parquet(path)
    check_columns(path, parquet.schema_arrow.names, columns, "column asked for")
    batches = []
    n = 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH, columns=columns):
        batches.append(batch)
        n += batch.num_rows
        if max_rows is not None and n >= max_rows:
            break
    if n == 0:
        raise ConfigError(f"{path}: the file has no data rows")
    table = pa.Table.from_batches(batches)
    if max_rows is not None:
        table = table.slice(0, max_rows)
    data = {}
    for name in columns:
        column = table.column(name)
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            filled = pc.fill_null(column.cast(pa.float64()), float("nan"))
            data[name] = filled.to_numpy()
        else:
            data[name] = np.array(column.cast(pa.string()).to_pylist(), dtype=object)
    return data
