"""Product tables: the shipped catalog, file formats, clear errors, generators, 10,000 rows."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rec_env.catalogs.make_products import CATEGORIES, TOPICS, default_products_csv
from rec_env.errors import ConfigError
from rec_env.products import (
    ProductTable,
    list_product_catalogs,
    load_products,
    save_products,
    synthetic_products,
)

ARRAYS = ("category", "price", "margin", "topics", "is_new", "stock", "popularity")
LABELS = ("ids", "names", "category_names", "topic_names")


def assert_same_table(left: ProductTable, right: ProductTable, *, exact: bool = True) -> None:
    for name in LABELS:
        assert getattr(left, name) == getattr(right, name), name
    for name in ARRAYS:
        a, b = getattr(left, name), getattr(right, name)
        assert a.dtype == b.dtype, name
        if exact:
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, err_msg=name)


# --- the shipped catalog --------------------------------------------------------------------


@pytest.fixture(scope="module")
def default() -> ProductTable:
    return load_products("default")


def test_default_catalog_has_about_200_products_in_12_categories(default: ProductTable) -> None:
    assert "default" in list_product_catalogs()
    assert 180 <= default.n_products <= 220
    assert default.n_categories == 12
    counts = np.bincount(default.category, minlength=default.n_categories)
    assert counts.min() >= 10
    assert len(set(default.names)) == default.n_products  # names are unique too
    assert default.topic_names == TOPICS
    np.testing.assert_allclose(default.topics.sum(axis=1), 1.0)
    np.testing.assert_allclose(default.popularity.sum(), 1.0)
    assert 0 < default.is_new.sum() < default.n_products
    assert 0 < (default.stock >= 0).sum() < default.n_products  # some limited, most unlimited


def test_default_prices_and_margins_lie_in_the_documented_bands(default: ProductTable) -> None:
    assert default.price.min() >= 0.99 and default.price.max() < 2_000.0
    np.testing.assert_array_equal(np.round(default.price * 100) % 100, 99)  # charm prices
    for category in CATEGORIES:
        rows = default.category == default.category_names.index(category.name)
        assert rows.sum() == category.n_products
        low, high = category.margin_range
        assert np.all((default.margin[rows] >= low) & (default.margin[rows] <= high))
        assert abs(default.margin[rows].mean() - category.margin) < 0.05
        cheapest = min(price for _, price in category.kinds)
        dearest = max(price for _, price in category.kinds)
        assert np.all(default.price[rows] > 0.5 * cheapest)
        assert np.all(default.price[rows] < 2.0 * dearest)
    electronics = default.category == default.category_names.index("electronics")
    jewelry = default.category == default.category_names.index("jewelry_accessories")
    assert default.margin[electronics].mean() < default.margin[jewelry].mean()


def test_default_csv_is_reproduced_by_its_generator() -> None:
    shipped = resources.files("rec_env.catalogs").joinpath("products", "default.csv")
    assert default_products_csv() == shipped.read_text(encoding="utf-8")


def test_load_by_name_and_by_path_agree(default: ProductTable) -> None:
    path = resources.files("rec_env.catalogs").joinpath("products", "default.csv")
    assert_same_table(load_products(Path(str(path))), default)
    assert load_products(default) is default


def test_table_is_frozen_and_read_only(default: ProductTable) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        default.price = default.price  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        default.price[0] = 1.0
    assert default.index(default.ids[7]) == 7
    with pytest.raises(KeyError, match="unknown product id"):
        default.index("nope")
    np.testing.assert_allclose(default.unit_profit, default.price * default.margin)
    assert repr(default) == "ProductTable(n_products=200, n_categories=12, n_topics=10)"


def test_constructor_rejects_broken_arrays(default: ProductTable) -> None:
    fields = {f.name: getattr(default, f.name) for f in dataclasses.fields(default) if f.init}
    with pytest.raises(ValueError, match="margins must lie in"):
        ProductTable(**{**fields, "margin": np.full(default.n_products, 1.5)})
    with pytest.raises(ValueError, match="price must have shape"):
        ProductTable(**{**fields, "price": default.price[:-1]})


# --- the same table in every format ---------------------------------------------------------


def test_yaml_csv_and_parquet_of_one_table_give_identical_arrays(
    default: ProductTable, tmp_path: Path
) -> None:
    loaded = [
        load_products(save_products(default, tmp_path / f"products.{suffix}"))
        for suffix in ("yaml", "csv", "parquet")
    ]
    assert_same_table(loaded[0], loaded[1])
    assert_same_table(loaded[0], loaded[2])
    assert_same_table(loaded[0], default, exact=False)


def test_products_without_topics_get_their_category_one_hot(tmp_path: Path) -> None:
    products = [
        {"id": 1, "name": "Mug", "category": "kitchen", "price": 9.99, "margin": 0.4},
        {"id": 2, "name": "Tent", "category": "outdoor", "price": 199, "margin": 0.3, "new": True},
        {"id": 3, "name": "Pan", "category": "kitchen", "price": 39, "margin": 0.35, "stock": 4},
    ]
    (tmp_path / "small.yaml").write_text(yaml.safe_dump({"products": products}), encoding="utf-8")
    (tmp_path / "small.csv").write_text(
        "id,name,category,price,margin,new,stock\n"
        "1,Mug,kitchen,9.99,0.4,,\n2,Tent,outdoor,199,0.3,true,\n3,Pan,kitchen,39,0.35,false,4\n",
        encoding="utf-8",
    )
    from_yaml = load_products(tmp_path / "small.yaml")
    assert_same_table(from_yaml, load_products(tmp_path / "small.csv"))
    assert from_yaml.ids == ("1", "2", "3")
    assert from_yaml.category_names == ("kitchen", "outdoor") == from_yaml.topic_names
    np.testing.assert_array_equal(from_yaml.topics, [[1, 0], [0, 1], [1, 0]])
    np.testing.assert_array_equal(from_yaml.stock, [-1, -1, 4])
    np.testing.assert_array_equal(from_yaml.is_new, [False, True, False])
    np.testing.assert_allclose(from_yaml.popularity, 1 / 3)


def test_from_frame_reads_a_pandas_table_with_missing_stock() -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(
        {
            "id": ["a", "b"],
            "name": ["A", "B"],
            "category": ["x", "y"],
            "price": [10.0, 20.0],
            "margin": [0.5, 0.25],
            "stock": [3, None],
            "topic_red": [1.0, 0.0],
            "topic_blue": [1.0, 2.0],
        }
    )
    table = ProductTable.from_frame(frame)
    np.testing.assert_array_equal(table.stock, [3, -1])
    np.testing.assert_allclose(table.topics, [[0.5, 0.5], [0.0, 1.0]])
    assert table.topic_names == ("red", "blue")


# --- bad files: every error names the file, the row and the field ---------------------------

GOOD_ROWS: list[dict[str, Any]] = [
    {"id": "P1", "name": "Mug", "category": "kitchen", "price": 9.99, "margin": 0.4},
    {"id": "P2", "name": "Tent", "category": "outdoor", "price": 199.0, "margin": 0.3},
    {"id": "P3", "name": "Pan", "category": "kitchen", "price": 39.0, "margin": 0.35},
]
TOPICS_OK = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]


def write_table(path: Path, rows: list[dict[str, Any]], topics: list[list[Any]]) -> Path:
    """``rows`` with ``topics`` as YAML lists or CSV ``topic_a``/``topic_b`` columns."""
    if path.suffix == ".yaml":
        products = [{**row, "topics": t} for row, t in zip(rows, topics, strict=True)]
        document = {"categories": ["kitchen", "outdoor"], "products": products}
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return path
    header = list(GOOD_ROWS[0]) + [k for row in rows for k in row if k not in GOOD_ROWS[0]]
    header = [*dict.fromkeys(header), "topic_a", "topic_b"]
    lines = [",".join(header)]
    for row, weights in zip(rows, topics, strict=True):
        cells = [row.get(k, "") for k in header[:-2]] + list(weights)
        lines.append(",".join("" if c is None else str(c) for c in cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def changed(row: int, **values: Any) -> list[dict[str, Any]]:
    rows = [dict(r) for r in GOOD_ROWS]
    rows[row - 1].update(values)
    return rows


BAD_TABLES = {
    # name: (rows, topics, row number, field, problem)
    "negative price": (changed(2, price=-5), TOPICS_OK, 2, "price", "greater than 0"),
    "price NaN": (changed(3, price="nan"), TOPICS_OK, 3, "price", "finite number"),
    "price not a number": (changed(1, price="cheap"), TOPICS_OK, 1, "price", "valid number"),
    "margin above 1": (changed(2, margin=1.2), TOPICS_OK, 2, "margin", "less than 1"),
    "margin negative": (changed(1, margin=-0.1), TOPICS_OK, 1, "margin", "greater than or equal"),
    "duplicate id": (changed(3, id="P1"), TOPICS_OK, 3, "id", "duplicate of row 1"),
    "missing name": (changed(2, name=""), TOPICS_OK, 2, "name", ""),
    "negative stock": (changed(3, stock=-2), TOPICS_OK, 3, "stock", "greater than or equal"),
    "topic negative": (GOOD_ROWS, [[1, 0], [0, -1], [1, 1]], 2, "topic", "greater than or equal"),
    "topic NaN": (GOOD_ROWS, [[1, 0], [0, 1], ["nan", 1]], 3, "topic", "finite number"),
    "topics all zero": (GOOD_ROWS, [[1, 0], [0, 0], [1, 1]], 2, "topics", "all zero"),
}


@pytest.mark.parametrize("suffix", [".csv", ".yaml"])
@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_bad_table_error_names_file_row_and_field(tmp_path: Path, case: str, suffix: str) -> None:
    rows, topics, row, field, problem = BAD_TABLES[case]
    path = write_table(tmp_path / f"bad{suffix}", rows, topics)
    with pytest.raises(ConfigError) as caught:
        load_products(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: row {row}")
    assert f": {field}" in message and problem in message


@pytest.mark.parametrize(
    ("document", "row", "field", "problem"),
    [
        (
            {"categories": ["kitchen"], "products": GOOD_ROWS},
            2,
            "category",
            "unknown category 'outdoor' (declared: kitchen)",
        ),
        (
            {
                "products": [
                    {**r, "topics": t} for r, t in zip(GOOD_ROWS, [[1], [1, 0], [1]], strict=True)
                ]
            },
            2,
            "topics",
            "expected 1 values, got 2",
        ),
        (
            {"products": [{**GOOD_ROWS[0], "topics": [1]}, GOOD_ROWS[1]]},
            2,
            "topics",
            "missing (give topics for every product or none)",
        ),
        (
            {"products": [{**GOOD_ROWS[0], "popularity": 3}, GOOD_ROWS[1]]},
            2,
            "popularity",
            "missing",
        ),
        ({"products": [{**GOOD_ROWS[0], "colour": "red"}]}, 1, "colour", "Extra inputs"),
    ],
)
def test_bad_yaml_tables_across_rows(
    tmp_path: Path, document: dict[str, Any], row: int, field: str, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"row \d") as caught:
        load_products(path)
    assert str(caught.value).startswith(f"{path}: row {row} (id ")
    assert f": {field}: {problem}" in str(caught.value)


def test_csv_errors_name_the_topic_column_and_declared_categories(tmp_path: Path) -> None:
    path = write_table(tmp_path / "bad.csv", GOOD_ROWS, [[1, 0], [0, -1], [1, 1]])
    with pytest.raises(ConfigError, match=r"row 2 \(id 'P2'\): topic_b: Input should be"):
        load_products(path)
    path = write_table(tmp_path / "good.csv", GOOD_ROWS, TOPICS_OK)
    with pytest.raises(ConfigError, match=r"row 2 \(id 'P2'\): category: unknown category"):
        load_products(path, categories=["kitchen"])


def test_parquet_errors_name_file_row_and_field(tmp_path: Path) -> None:
    table = synthetic_products(20, n_categories=3, n_topics=4, seed=0)
    path = save_products(table, tmp_path / "ok.parquet")
    import pyarrow.parquet as pq

    data = pq.read_table(path).to_pydict()
    data["price"][6] = float("nan")
    import pyarrow as pa

    pq.write_table(pa.table(data), tmp_path / "bad.parquet")
    with pytest.raises(ConfigError, match=r"bad\.parquet: row 7 \(id 'S06'\): price: .*finite"):
        load_products(tmp_path / "bad.parquet")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "file is empty"),
        ("id,name,category,price\nP1,Mug,kitchen,3\n", "missing column 'margin'"),
        ("id,name,category,price,margin,prce\nP1,M,k,3,0.1,4\n", "unknown column 'prce'"),
        ("id,name,category,price,margin,name\nP1,M,k,3,0.1,N\n", "repeated column 'name'"),
        ("id,name,category,price,margin\nP1,M,k,3,0.1,9\n", "row 1: 6 cells for 5 columns"),
        ("id,name,category,price,margin\n", "the table has no products"),
    ],
)
def test_malformed_csv_files(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_products(path)
    assert str(caught.value).startswith(f"{path}: ") and problem in str(caught.value)


def test_many_problems_are_summarised(tmp_path: Path) -> None:
    rows = [{**GOOD_ROWS[0], "id": f"P{i}", "price": -1} for i in range(9)]
    path = write_table(tmp_path / "bad.csv", rows, [[1, 0]] * 9)
    with pytest.raises(ConfigError, match=r"row 5 .*; and 4 more$"):
        load_products(path)


def test_missing_files_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_products(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match=r"no shipped product table .*available: default"):
        load_products("nope")
    (tmp_path / "table.txt").write_text("id\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unsupported file type"):
        load_products(tmp_path / "table.txt")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(ConfigError, match="not a readable Parquet file"):
        load_products(tmp_path / "broken.parquet")


# --- generators and scale -------------------------------------------------------------------


def test_synthetic_products_are_deterministic() -> None:
    first = synthetic_products(500, n_categories=7, n_topics=5, seed=3)
    assert_same_table(first, synthetic_products(500, n_categories=7, n_topics=5, seed=3))
    other = synthetic_products(500, n_categories=7, n_topics=5, seed=4)
    assert not np.array_equal(first.price, other.price)
    assert first.topics.shape == (500, 5) and first.n_categories == 7


def test_ten_thousand_products_round_trip_through_csv_and_parquet(tmp_path: Path) -> None:
    table = synthetic_products(10_000, n_categories=40, n_topics=16, seed=1)
    from_csv = load_products(save_products(table, tmp_path / "large.csv"))
    from_parquet = load_products(save_products(table, tmp_path / "large.parquet"))
    assert from_csv.n_products == 10_000 and from_csv.topics.shape == (10_000, 16)
    assert_same_table(from_csv, from_parquet)
    assert_same_table(from_csv, table, exact=False)
    assert from_csv.index("S9999") == 9_999


def test_products_module_does_not_load_pandas_or_pyarrow() -> None:
    code = (
        "import sys, rec_env, rec_env.products; "
        "print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
