"""The product table file format: columns, validation and compilation to arrays.

A product table is a YAML file (small catalogs) or a CSV or Parquet file (large ones), one
product per row, validated by pydantic (:class:`ProductSpec`). :func:`compile_products` checks
the rows against each other and builds the arrays of :class:`rec_env.products.ProductTable`;
:mod:`rec_env.products` loads and saves whole files.

| column | type | meaning |
|---|---|---|
| ``id`` | text, unique | Product id (numbers are read as text). |
| ``name`` | text | Display name. |
| ``category`` | text | Category; declared categories (YAML ``categories``) reject others. |
| ``price`` | number > 0 | List price, USD. |
| ``margin`` | number in [0, 1) | Gross margin as a fraction of the list price, so the profit of a |
| | | full-price sale is ``price * margin`` USD. |
| ``topics`` | numbers ≥ 0 | Topic weights (YAML: a list; CSV/Parquet: one ``topic_<name>`` column |
| | | per topic). Give them for every product or for none; with none, each product's |
| | | topic vector is the one-hot vector of its category. |
| ``new`` | bool, default false | A new product (for cold-start and novelty effects). |
| ``stock`` | integer ≥ 0 or empty | Units in stock; empty means unlimited (compiled as −1). |
| ``popularity`` | number ≥ 0 or absent | Relative popularity prior, e.g. unit sales. Every |
| | | product or none. |

Compiled conventions: topic vectors are normalised to sum to 1 (a mixture over topics);
popularity is normalised to sum to 1 over the catalog (uniform when absent); categories are
numbered in their declared order, or sorted by name when not declared.

A bad table raises :class:`~rec_env.errors.ConfigError` naming the file, the row (the 1-based
data row, the header not counted; for YAML the position in ``products``), the product id when
it has one, the field and the problem, e.g. ``p.csv: row 7 (id 'P0007'): price: Input should be
greater than 0``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from rec_env.errors import ConfigError

__all__ = [
    "SCALAR_COLUMNS",
    "TOPIC_PREFIX",
    "ProductDocument",
    "ProductSpec",
    "compile_columns",
    "compile_products",
    "read_csv_columns",
    "read_parquet_columns",
]

TOPIC_PREFIX = "topic_"
SCALAR_COLUMNS = ("id", "name", "category", "price", "margin", "new", "stock", "popularity")
_REQUIRED = ("id", "name", "category", "price", "margin")
_NAN_IS_MISSING = ("id", "name", "category", "new", "stock", "popularity")
_MAX_PROBLEMS = 5


class ProductSpec(BaseModel):
    """One product row, as written in a table (see the module docstring for the columns)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, coerce_numbers_to_str=True, str_strip_whitespace=True
    )

    id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=500)
    category: str = Field(min_length=1, max_length=200)
    price: float = Field(gt=0.0, le=1e6, allow_inf_nan=False, description="List price, USD.")
    margin: float = Field(ge=0.0, lt=1.0, allow_inf_nan=False, description="Fraction of price.")
    topics: list[Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] | None = Field(
        None, min_length=1
    )
    new: bool = False
    stock: int | None = Field(None, ge=0, description="Units in stock; None is unlimited.")
    popularity: float | None = Field(None, ge=0.0, allow_inf_nan=False)

    @field_validator("topics")
    @classmethod
    def _some_positive_topic(cls, topics: list[float] | None) -> list[float] | None:
        if topics is not None and sum(topics) <= 0.0:
            raise ValueError("topic weights are all zero; at least one must be positive")
        return topics


class ProductDocument(BaseModel):
    """The top level of a YAML product table."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str = ""
    categories: list[str] | None = Field(None, min_length=1)
    topic_names: list[str] | None = Field(None, min_length=1)
    products: list[dict[str, Any]] = Field(min_length=1)


def _is_missing(value: Any, column: str) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    return column in _NAN_IS_MISSING and isinstance(value, float) and math.isnan(value)


_MISSING = object()


def _mark_missing(values: Sequence[Any], column: str) -> list[Any]:
    """``values`` with empty cells (and NaN where NaN means missing) replaced by ``_MISSING``."""
    nan_is_missing = column in _NAN_IS_MISSING
    return [
        _MISSING
        if value is None
        or (type(value) is str and (not value or value.isspace()))
        or (nan_is_missing and type(value) is float and value != value)
        else value
        for value in values
    ]


def _row_label(i: int, record: Any) -> str:
    product_id = record.get("id") if isinstance(record, Mapping) else None
    return f"row {i + 1}" + ("" if _is_missing(product_id, "id") else f" (id {product_id!r})")


def _raise(source: str, problems: list[str]) -> None:
    if problems:
        more = len(problems) - _MAX_PROBLEMS
        tail = f"; and {more} more" if more > 0 else ""
        raise ConfigError(f"{source}: " + "; ".join(problems[:_MAX_PROBLEMS]) + tail)


_ADAPTER = TypeAdapter(list[ProductSpec])


def _validate(
    records: list[Any], source: str, topic_names: Sequence[str] | None, tabular: bool
) -> list[ProductSpec]:
    try:
        return _ADAPTER.validate_python(records)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            i, *loc = error["loc"]
            name = ".".join(str(part) for part in loc) or "<row>"
            if tabular and len(loc) == 2 and loc[0] == "topics" and topic_names:
                name = TOPIC_PREFIX + str(topic_names[int(loc[1])])
            got = "" if error["type"] == "missing" else f" (got {error['input']!r})"
            problems.append(f"{_row_label(int(i), records[int(i)])}: {name}: {error['msg']}{got}")
        _raise(source, problems)
        raise AssertionError("unreachable") from None  # pragma: no cover


def compile_products(
    records: list[Any],
    source: str,
    categories: Sequence[str] | None = None,
    topic_names: Sequence[str] | None = None,
    *,
    tabular: bool = False,
) -> dict[str, Any]:
    """Validate product rows, check them against each other and build the arrays.

    Args:
        records: One mapping per product, keys as in a YAML table.
        source: What to call the input in error messages (a file name).
        categories: Declared categories, in code order; others are rejected.
        topic_names: Names of the topics; default ``0 … n_topics - 1``, or the category names
            when the products carry no topics.
        tabular: Name topic errors by their ``topic_<name>`` column (CSV and Parquet input).

    Returns:
        The keyword arguments of :class:`rec_env.products.ProductTable`.

    Raises:
        ConfigError: Naming ``source``, the row, the id, the field and the problem.
    """
    if not records:
        raise ConfigError(f"{source}: the table has no products")
    products = _validate(records, source, topic_names, tabular)
    problems: list[str] = []
    first_row: dict[str, int] = {}
    with_topics = [p.topics is not None for p in products]
    with_popularity = [p.popularity is not None for p in products]
    n_topics = (
        len(topic_names)
        if topic_names
        else next((len(p.topics) for p in products if p.topics is not None), 0)
    )
    declared = list(dict.fromkeys(categories)) if categories else None
    for i, product in enumerate(products):
        label = f"row {i + 1} (id {product.id!r})"
        if product.id in first_row:
            problems.append(f"{label}: id: duplicate of row {first_row[product.id] + 1}")
        first_row.setdefault(product.id, i)
        if declared is not None and product.category not in declared:
            problems.append(
                f"{label}: category: unknown category {product.category!r} "
                f"(declared: {', '.join(declared)})"
            )
        if any(with_topics) and product.topics is None:
            problems.append(f"{label}: topics: missing (give topics for every product or none)")
        elif product.topics is not None and len(product.topics) != n_topics:
            problems.append(
                f"{label}: topics: expected {n_topics} values, got {len(product.topics)}"
            )
        if any(with_popularity) and product.popularity is None:
            problems.append(f"{label}: popularity: missing (give it for every product or none)")
    _raise(source, problems)

    category_names = declared or sorted({p.category for p in products})
    code = {name: c for c, name in enumerate(category_names)}
    category = np.array([code[p.category] for p in products], dtype=np.intp)
    if all(with_topics):
        topics = np.array([p.topics for p in products], dtype=np.float64)
        names = tuple(topic_names) if topic_names else tuple(str(j) for j in range(n_topics))
    else:
        topics = np.eye(len(category_names))[category]
        names = tuple(topic_names) if topic_names else tuple(category_names)
        if len(names) != len(category_names):
            raise ConfigError(f"{source}: topic_names: one per category when products lack topics")
    popularity = np.array([p.popularity or 0.0 for p in products], dtype=np.float64)
    if all(with_popularity) and popularity.sum() <= 0.0:
        raise ConfigError(f"{source}: popularity: all zero; at least one must be positive")
    if not all(with_popularity):
        popularity = np.ones(len(products))
    return dict(
        ids=tuple(p.id for p in products),
        names=tuple(p.name for p in products),
        category=category,
        category_names=tuple(category_names),
        price=np.array([p.price for p in products]),
        margin=np.array([p.margin for p in products]),
        topics=topics / topics.sum(axis=1, keepdims=True),
        topic_names=names,
        is_new=np.array([p.new for p in products], dtype=bool),
        stock=np.array([-1 if p.stock is None else p.stock for p in products], dtype=np.int64),
        popularity=popularity / popularity.sum(),
    )


def compile_columns(
    columns: Mapping[str, Sequence[Any]], source: str, categories: Sequence[str] | None = None
) -> dict[str, Any]:
    """:func:`compile_products` for a table given column by column (the CSV and Parquet layout).

    Empty cells are missing values; ``topic_<name>`` columns hold the topic weights.

    Raises:
        ConfigError: If a required column is missing or a column is unknown, or as
            :func:`compile_products` does.
    """
    topic_columns = [name for name in columns if name.startswith(TOPIC_PREFIX)]
    unknown = [name for name in columns if name not in SCALAR_COLUMNS + tuple(topic_columns)]
    missing = [name for name in _REQUIRED if name not in columns]
    if unknown or missing:
        parts = [f"unknown column {name!r}" for name in unknown]
        parts += [f"missing column {name!r}" for name in missing]
        expected = ", ".join(SCALAR_COLUMNS) + f", {TOPIC_PREFIX}<name>…"
        raise ConfigError(f"{source}: " + "; ".join(parts) + f" (columns: {expected})")
    scalars = [name for name in SCALAR_COLUMNS if name in columns]
    cells = [_mark_missing(columns[name], name) for name in scalars]
    records = [
        {k: v for k, v in zip(scalars, row, strict=True) if v is not _MISSING}
        for row in zip(*cells, strict=True)
    ]
    if topic_columns:
        topic_rows = zip(*(columns[name] for name in topic_columns), strict=True)
        for record, weights in zip(records, topic_rows, strict=True):
            record["topics"] = list(weights)
    topic_names = [name.removeprefix(TOPIC_PREFIX) for name in topic_columns]
    return compile_products(records, source, categories, topic_names or None, tabular=True)


def read_csv_columns(path: Path) -> dict[str, list[Any]]:
    """The cells of a CSV file with a header row, as text, column by column.

    Raises:
        ConfigError: If the file is unreadable, empty, not UTF-8, has repeated column names or
            a row whose cell count differs from the header's.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if not header:
                raise ConfigError(f"{path}: file is empty")
            header = [name.strip() for name in header]
            rows = list(reader)
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                raise ConfigError(f"{path}: repeated column {', '.join(map(repr, repeated))}")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (offset {exc.start}); expected CSV") from None
    except (OSError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read CSV ({exc})") from None
    while rows and not rows[-1]:
        rows.pop()  # blank lines at the end of the file
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ConfigError(f"{path}: row {i + 1}: {len(row)} cells for {len(header)} columns")
    return {name: [row[j] for row in rows] for j, name in enumerate(header)}


def read_parquet_columns(path: Path) -> dict[str, list[Any]]:
    """The values of a Parquet file as Python objects, column by column.

    Raises:
        ConfigError: If the file is not a readable Parquet file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{path}: not a readable Parquet file ({exc})") from None
    return {name: table.column(name).to_pylist() for name in table.column_names}
