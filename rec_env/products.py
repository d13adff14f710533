"""Product catalogs: what an item recommendation can show, compiled to arrays.

:class:`ProductTable` holds a product catalog as the numpy arrays the batched customer model
reads, one entry per product. :func:`load_products` reads one from a YAML, CSV or Parquet file in
the format of :mod:`rec_env.product_schema` (columns ``id``, ``name``, ``category``, ``price``
in USD, ``margin`` as a fraction of price, ``topic_<name>`` weights, ``new``, ``stock``,
``popularity``); :func:`save_products` writes one. Shipped tables live in
``rec_env/catalogs/products/`` and load by name (``load_products("default")``, 200 products in
12 categories, see :mod:`rec_env.catalogs.make_products`); any other table loads by path.
:func:`synthetic_products` makes seeded catalogs of any size for scale tests.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rec_env.config import load_model
from rec_env.errors import ConfigError
from rec_env.product_schema import (
    SCALAR_COLUMNS,
    TOPIC_PREFIX,
    ProductDocument,
    ProductSpec,
    compile_columns,
    compile_products,
    read_csv_columns,
    read_parquet_columns,
)

__all__ = [
    "SUFFIXES",
    "ProductSpec",
    "ProductTable",
    "list_product_catalogs",
    "load_products",
    "save_products",
    "synthetic_products",
]

SUFFIXES = (".yaml", ".yml", ".csv", ".parquet")


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class ProductTable:
    """A product catalog compiled to arrays, one entry per product (``n = n_products``).

    Attributes:
        ids: Product ids.
        names: Display names.
        category: ``(n,)`` int category codes, indices into ``category_names``.
        category_names: Category names.
        price: ``(n,)`` float64 list prices, USD.
        margin: ``(n,)`` float64 gross margins, fraction of the list price in ``[0, 1)``.
        topics: ``(n, n_topics)`` float64 non-negative topic weights, each row summing to 1.
        topic_names: Topic names.
        is_new: ``(n,)`` bool, True for new products.
        stock: ``(n,)`` int64 units in stock, −1 for unlimited.
        popularity: ``(n,)`` float64 popularity prior, summing to 1.

    Raises:
        ValueError: If the arrays break these conventions (shapes, ranges, duplicate ids).
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]
    category: np.ndarray
    category_names: tuple[str, ...]
    price: np.ndarray
    margin: np.ndarray
    topics: np.ndarray
    topic_names: tuple[str, ...]
    is_new: np.ndarray
    stock: np.ndarray
    popularity: np.ndarray
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        arrays = {
            "category": (np.intp, (n,)),
            "price": (np.float64, (n,)),
            "margin": (np.float64, (n,)),
            "topics": (np.float64, (n, len(self.topic_names))),
            "is_new": (np.bool_, (n,)),
            "stock": (np.int64, (n,)),
            "popularity": (np.float64, (n,)),
        }
        for name, (dtype, shape) in arrays.items():
            array = np.array(getattr(self, name), dtype=dtype)
            if array.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
            object.__setattr__(self, name, _readonly(array))
        index = {product_id: i for i, product_id in enumerate(self.ids)}
        checks = {
            "ids must be unique": len(index) == n,
            "names must have one entry per id": len(self.names) == n,
            "category codes must index category_names": bool(
                np.all((self.category >= 0) & (self.category < len(self.category_names)))
            ),
            "prices must be finite and positive": bool(np.all(self.price > 0.0))
            and bool(np.all(np.isfinite(self.price))),
            "margins must lie in [0, 1)": bool(np.all((self.margin >= 0.0) & (self.margin < 1.0))),
            "topic rows must be non-negative and sum to 1": bool(np.all(self.topics >= 0.0))
            and np.allclose(self.topics.sum(axis=1), 1.0),
            "stock must be -1 (unlimited) or non-negative": bool(np.all(self.stock >= -1)),
            "popularity must be non-negative and sum to 1": bool(np.all(self.popularity >= 0.0))
            and (n == 0 or math.isclose(float(self.popularity.sum()), 1.0)),
        }
        broken = [rule for rule, holds in checks.items() if not holds]
        if broken:
            raise ValueError("invalid product table: " + "; ".join(broken))
        object.__setattr__(self, "_index", index)

    def __repr__(self) -> str:
        return (
            f"ProductTable(n_products={self.n_products}, n_categories={self.n_categories}, "
            f"n_topics={self.n_topics})"
        )

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any]],
        *,
        categories: Sequence[str] | None = None,
        topic_names: Sequence[str] | None = None,
        source: str = "<records>",
    ) -> ProductTable:
        """Validate and compile products given as mappings (keys as in a YAML table).

        Args:
            records: One mapping per product; ``topics`` is a list of weights.
            categories: Declared categories, in code order; others are rejected.
            topic_names: Names of the topics; default ``0 … n_topics - 1`` (or the category
                names when the products carry no topics).
            source: What to call the input in error messages (a file name).

        Raises:
            ConfigError: Naming ``source``, the row, the id, the field and the problem.
        """
        return cls(**compile_products(list(records), source, categories, topic_names))

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        *,
        categories: Sequence[str] | None = None,
        source: str = "<frame>",
    ) -> ProductTable:
        """Validate and compile a table in the CSV layout (a pandas ``DataFrame`` or similar).

        Args:
            frame: Anything with ``columns`` and ``frame[column].tolist()``, one row per product,
                with ``topic_<name>`` columns for the topics.
            categories: Declared categories, in code order; others are rejected.
            source: What to call the input in error messages.

        Raises:
            ConfigError: Naming ``source``, the row, the id, the field and the problem.
        """
        columns = {str(name): list(frame[name].tolist()) for name in frame.columns}
        return cls(**compile_columns(columns, source, categories))

    @property
    def n_products(self) -> int:
        """Number of products."""
        return len(self.ids)

    @property
    def n_categories(self) -> int:
        """Number of categories."""
        return len(self.category_names)

    @property
    def n_topics(self) -> int:
        """Length of the topic vectors."""
        return len(self.topic_names)

    @property
    def unit_profit(self) -> np.ndarray:
        """``(n,)`` gross profit of one full-price sale, USD (``price * margin``)."""
        return self.price * self.margin

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, product_id: str) -> int:
        """Row of the product ``product_id``.

        Raises:
            KeyError: If there is no such product.
        """
        try:
            return self._index[product_id]
        except KeyError:
            raise KeyError(f"unknown product id {product_id!r}") from None

    def to_columns(self) -> dict[str, list[Any]]:
        """The table in the CSV layout: one list per column, unlimited stock as ``None``."""
        columns: dict[str, list[Any]] = {
            "id": list(self.ids),
            "name": list(self.names),
            "category": [self.category_names[code] for code in self.category.tolist()],
            "price": self.price.tolist(),
            "margin": self.margin.tolist(),
            "new": self.is_new.tolist(),
            "stock": [None if units < 0 else units for units in self.stock.tolist()],
            "popularity": self.popularity.tolist(),
        }
        for j, topic in enumerate(self.topic_names):
            columns[TOPIC_PREFIX + topic] = self.topics[:, j].tolist()
        return columns


def _shipped_root() -> Any:
    return resources.files("rec_env.catalogs").joinpath("products")


def list_product_catalogs() -> list[str]:
    """Names of the shipped product tables (``"default"`` …)."""
    return sorted(
        p.name.rsplit(".", 1)[0] for p in _shipped_root().iterdir() if p.name.endswith(SUFFIXES)
    )


def _resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in SUFFIXES or path.exists() or len(path.parts) > 1:
        if not path.is_file():
            raise ConfigError(f"{path}: file not found")
        return path
    for suffix in SUFFIXES:
        candidate = _shipped_root().joinpath(f"{name_or_path}{suffix}")
        if candidate.is_file():
            return Path(str(candidate))
    raise ConfigError(
        f"{name_or_path}: no such file, and no shipped product table of that name "
        f"(available: {', '.join(list_product_catalogs())})"
    )


def load_products(
    products: str | Path | ProductTable = "default", *, categories: Sequence[str] | None = None
) -> ProductTable:
    """Load a product table by shipped name (``"default"``) or from a path.

    Args:
        products: A shipped name, a path to a ``.yaml``/``.yml``, ``.csv`` or ``.parquet`` file,
            or a table (returned as it is).
        categories: Declared categories for CSV/Parquet files (YAML files declare their own).

    Raises:
        ConfigError: If the file is missing, unreadable or invalid; the message names the file,
            the row, the field and the problem.
    """
    if isinstance(products, ProductTable):
        return products
    path = _resolve(products)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        document = load_model(path, ProductDocument)
        categories = document.categories or categories
        arrays = compile_products(document.products, str(path), categories, document.topic_names)
        return ProductTable(**arrays)
    if suffix in (".csv", ".parquet"):
        columns = read_csv_columns(path) if suffix == ".csv" else read_parquet_columns(path)
        return ProductTable(**compile_columns(columns, str(path), categories))
    raise ConfigError(f"{path}: unsupported file type (expected {', '.join(SUFFIXES)})")


def save_products(table: ProductTable, path: str | Path) -> Path:
    """Write ``table`` as YAML, CSV or Parquet (by suffix); loading it gives the same arrays.

    Raises:
        ValueError: If the suffix is not one of ``.yaml``, ``.yml``, ``.csv``, ``.parquet``.
    """
    path = Path(path)
    columns = table.to_columns()
    if path.suffix in (".yaml", ".yml"):
        rows = [
            dict(zip(SCALAR_COLUMNS, row, strict=True))
            for row in zip(*(columns[k] for k in SCALAR_COLUMNS), strict=True)
        ]
        for row, topics in zip(rows, table.topics.tolist(), strict=True):
            row["topics"] = topics
            if row["stock"] is None:
                del row["stock"]
        document = {
            "categories": list(table.category_names),
            "topic_names": list(table.topic_names),
            "products": rows,
        }
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    elif path.suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(columns)
            for row in zip(*columns.values(), strict=True):
                writer.writerow(
                    ["" if v is None else repr(v) if isinstance(v, float) else v for v in row]
                )
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({name: pa.array(values) for name, values in columns.items()}), path)
    else:
        raise ValueError(f"{path}: unsupported file type (expected {', '.join(SUFFIXES)})")
    return path


def synthetic_products(
    n_products: int, n_categories: int = 12, n_topics: int = 16, seed: int = 0
) -> ProductTable:
    """A seeded synthetic catalog for scale tests (same arguments, same table).

    Each category gets a topic profile drawn from Dirichlet(0.3), a median price log-uniform in
    USD 10–300 and a mean margin uniform in 0.20–0.55. Products are dealt to categories in turn;
    a product's topics are Dirichlet(20 · profile + 0.05), its price the median times a
    log-normal(0, 0.5) factor (in cents, at least USD 0.50), its margin the mean plus
    N(0, 0.05) clipped to [0.05, 0.80]. One in ten is new; one in ten has a stock of 0–499
    units. Popularity follows Zipf's law (1 / rank) over a random ranking.

    Args:
        n_products: Number of products.
        n_categories: Number of categories.
        n_topics: Length of the topic vectors.
        seed: Seed of the one ``np.random.Generator`` behind every draw.
    """
    rng = np.random.default_rng(seed)
    profiles = rng.dirichlet(np.full(n_topics, 0.3), size=n_categories)
    median_price = np.exp(rng.uniform(np.log(10.0), np.log(300.0), size=n_categories))
    mean_margin = rng.uniform(0.20, 0.55, size=n_categories)
    category = np.arange(n_products) % n_categories
    topics = rng.gamma(20.0 * profiles[category] + 0.05)
    price = median_price[category] * np.exp(rng.normal(0.0, 0.5, size=n_products))
    margin = mean_margin[category] + rng.normal(0.0, 0.05, size=n_products)
    limited = rng.random(n_products) < 0.1
    stock = np.where(limited, rng.integers(0, 500, size=n_products), -1)
    popularity = 1.0 / (rng.permutation(n_products) + 1.0)
    width = len(str(max(n_products - 1, 0)))
    return ProductTable(
        ids=tuple(f"S{i:0{width}d}" for i in range(n_products)),
        names=tuple(f"Product {i} of category {c}" for i, c in enumerate(category.tolist())),
        category=category,
        category_names=tuple(f"category_{c:02d}" for c in range(n_categories)),
        price=np.maximum(np.round(price, 2), 0.5),
        margin=np.round(np.clip(margin, 0.05, 0.80), 3),
        topics=topics / topics.sum(axis=1, keepdims=True),
        topic_names=tuple(f"{j:02d}" for j in range(n_topics)),
        is_new=rng.random(n_products) < 0.1,
        stock=stock,
        popularity=popularity / popularity.sum(),
    )
