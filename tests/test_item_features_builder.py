"""``recenv features --products``: the item world's per-category features from real-style logs."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rec_env.cli.main import app
from rec_env.errors import ConfigError
from rec_env.features import FEATURE_NAMES
from rec_env.fitting.builder import build_features, read_events
from rec_env.fitting.simulated_history import SimulatedHistory
from rec_env.fitting.simulated_item_history import simulate_item_history
from rec_env.item_features import BOREDOM_DAYS, SATIATION_DAYS, item_features
from rec_env.products import load_products
from tests.cli_checks import assert_bad_input

runner = CliRunner()
PRODUCTS = load_products("default")
CATEGORIES = PRODUCTS.category_names
N_CAT = len(CATEGORIES)
N = len(FEATURE_NAMES)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulatedHistory, dict[str, Path]]:
    simulated = simulate_item_history(2000, 40, seed=4, slate_size=4, message_share=0.8)
    return simulated, simulated.write_csv(tmp_path_factory.mktemp("item_history"))


def test_item_features_built_from_the_simulators_log_are_its_own(history: tuple) -> None:
    """The proof that the builder and the item simulator share the per-category definitions."""
    simulated, paths = history
    orders, contacts = simulated.tables["orders"], simulated.tables["contacts"]
    # Enough of every event for each definition to matter.
    assert len(orders) > 200 and len({row["product_id"] for row in orders}) > 100
    assert len(contacts) > 40_000
    assert any("|" in str(row["products"]) for row in contacts)
    events = read_events(**paths, products="default")
    built = build_features(
        events,
        simulated.as_of,
        since=simulated.since,
        irritation=simulated.irritation,
        customers=simulated.customer_ids,
    )
    assert built.names == simulated.feature_names
    assert built.names == tuple(f.name for f in item_features(CATEGORIES))
    assert built.observations.shape == (2000, N + 3 * N_CAT)
    for j, name in enumerate(built.names):
        assert np.allclose(
            built.observations[:, j], simulated.features[:, j], rtol=1e-9, atol=1e-9
        ), name
    item = simulated.features[:, N:]
    purchases, recommended, days = np.split(item, 3, axis=1)
    # The features moved: decayed purchases in most categories, boredom, recent purchases.
    assert ((purchases > 0) & (purchases < 1)).any(axis=0).sum() >= N_CAT - 2
    assert (recommended > 1).mean() > 0.1 and (days < 365).sum() > 100


def test_simulated_item_history_is_seeded() -> None:
    a = simulate_item_history(100, 6, seed=5)
    b = simulate_item_history(100, 6, seed=5)
    assert a.tables == b.tables and np.array_equal(a.features, b.features)
    assert simulate_item_history(100, 6, seed=6).tables != a.tables


def _write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def _of_category(code: int, k: int) -> str:
    """The ``k``-th product id of category ``code``."""
    return PRODUCTS.ids[int(np.flatnonzero(PRODUCTS.category == code)[k])]


def test_order_lines_and_products_shown(tmp_path: Path) -> None:
    """Each definition on a hand-made log: lines of one order, shown products, days."""
    p1, p2, p3 = _of_category(0, 0), _of_category(0, 1), _of_category(1, 0)
    c1, c3 = CATEGORIES[0], CATEGORIES[1]
    orders = _write(
        tmp_path / "orders.csv",
        f"""
customer_id,order_id,time,product_id,amount
a,o1,2024-06-09,{p1},30
a,o1,2024-06-09,{p2},20
a,o2,2024-06-30,{p3},10
a,o3,2024-07-02,{p3},99
b,o4,2024-05-01,{p1},5
""",
    )
    contacts = _write(
        tmp_path / "contacts.csv",
        f"""
customer_id,time,channel,delivered,products
a,2024-06-16,email,1,{p1}|{p2}
a,2024-06-23,email,0,{p3}
a,2024-06-30,sms,1,
b,2024-06-30,email,1,{p3}
""",
    )
    built = build_features(read_events(orders, contacts, products="default"), "2024-06-30")
    rows = {cid: dict(zip(built.names, row, strict=True)) for cid, row in
            zip(built.customer_ids, built.observations, strict=True)}  # fmt: skip
    a, b = rows["a"], rows["b"]
    week_s, week_b = math.exp(-7 / SATIATION_DAYS), math.exp(-7 / BOREDOM_DAYS)
    # The two lines of o1 count three weekly cycles before the end, o2 in the last one; o3
    # is after --as-of.
    assert a[f"purchases_{c1}"] == pytest.approx(2 * week_s**3)
    assert a[f"purchases_{c3}"] == 1 and a[f"days_since_{c3}"] == 0
    assert a[f"days_since_{c1}"] == 21
    assert b[f"purchases_{c1}"] == pytest.approx(week_s**8) and b[f"days_since_{c1}"] == 60
    # Two products shown two cycles before the end; the undelivered message and the one
    # without products show nothing.
    assert a[f"recommended_{c1}"] == pytest.approx(2 * week_b**2)
    assert a[f"recommended_{c3}"] == 0 and b[f"recommended_{c3}"] == 1
    for c in CATEGORIES[2:]:
        assert (a[f"purchases_{c}"], a[f"recommended_{c}"], a[f"days_since_{c}"]) == (0, 0, 365)
    # The lines of one order are one order of their summed value for the 16 features, and
    # those are the same without the product table.
    assert a["monetary_value"] == pytest.approx(50 + 0.3 * (10 - 50))
    assert a["frequency"] == pytest.approx(1 + math.exp(-7 / 365) ** 3)
    plain = build_features(read_events(orders, contacts), "2024-06-30")
    assert plain.names == FEATURE_NAMES
    assert np.array_equal(plain.observations, built.observations[:, :N])


def test_an_order_id_per_row_changes_nothing(tmp_path: Path) -> None:
    """Orders of one day keep the file's order (it moves monetary_value) when ids are given."""
    header, *rows = ["customer_id,time,amount", "a,2024-06-01,10", "a,2024-06-01,50"]
    plain = _write(tmp_path / "plain.csv", "\n".join([header, *rows]))
    with_ids = _write(
        tmp_path / "ids.csv",
        "\n".join([f"{header},order_id", *(f"{r},{i}" for r, i in zip(rows, "ba", strict=True))]),
    )
    a = build_features(read_events(plain), "2024-06-30").observations
    b = build_features(read_events(with_ids), "2024-06-30").observations
    assert np.array_equal(a, b) and a[0, FEATURE_NAMES.index("monetary_value")] == 22


@pytest.mark.parametrize(
    ("orders", "contacts", "fragments"),
    [
        ("customer_id,time,amount\na,2024-01-01,3", None, ["orders.csv", "'product_id'"]),
        (
            "customer_id,time,amount,product_id\na,2024-01-01,3,P0001\na,2024-01-02,3,X9",
            None,
            ["orders.csv: row 2 (line 3), column 'product_id'", "unknown product id 'X9'"],
        ),
        (
            "customer_id,time,amount,product_id\na,2024-01-01,3,",
            None,
            ["row 1 (line 2), column 'product_id'", "missing product id"],
        ),
        (
            "customer_id,time,amount,product_id\na,2024-01-01,3,P0001",
            "customer_id,time,channel,products\na,2024-01-01,email,P0001| nope",
            ["contacts.csv: row 1 (line 2), column 'products'", "unknown product id 'nope'"],
        ),
        (
            "customer_id,time,amount,product_id\na,2024-01-01,3,P0001",
            "customer_id,time,channel\na,2024-01-01,email",
            ["contacts.csv", "no column 'products'", "--column contacts.products"],
        ),
    ],
)
def test_bad_product_columns_name_file_row_and_column(
    tmp_path: Path, orders: str, contacts: str | None, fragments: list[str]
) -> None:
    orders_path = _write(tmp_path / "orders.csv", orders)
    contacts_path = None if contacts is None else _write(tmp_path / "contacts.csv", contacts)
    with pytest.raises(ConfigError) as error:
        read_events(orders_path, contacts_path, products="default")
    for fragment in fragments:
        assert fragment in str(error.value)
    read_events(orders_path)  # without a product table, the product columns are not needed


def test_cli_builds_the_item_simulators_features(history: tuple, tmp_path: Path) -> None:
    simulated, paths = history
    out = tmp_path / "customers.csv"
    args = ["features", "--as-of", simulated.as_of, "--since", simulated.since, "--out", str(out)]
    for name, path in paths.items():
        args += [f"--{name}", str(path)]
    result = runner.invoke(app, [*args, "--products", "default"])
    assert result.exit_code == 0, result.output
    assert f"2,000 customers, {N + 3 * N_CAT} features" in result.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["customer_id", *simulated.feature_names]
    assert [row[0] for row in rows[1:]] == list(simulated.customer_ids)
    got = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    others = [j for j, name in enumerate(simulated.feature_names) if name != "engagement_score"]
    assert np.allclose(got[:, others], simulated.features[:, others], atol=1e-9)


def test_cli_bad_product_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    orders = _write(
        tmp_path / "orders.csv",
        "customer_id,time,amount,product_id\na,2024-01-01,3,P0001\nb,2024-01-02,4,Q1",
    )
    out = tmp_path / "customers.csv"
    base = ["features", "--orders", str(orders), "--as-of", "2024-02-01", "--out", str(out)]
    result = runner.invoke(app, [*base, "--products", "default"])
    assert_bad_input(result, "orders.csv: row 2 (line 3), column 'product_id'", "'Q1'")
    assert not out.exists()
    result = runner.invoke(app, [*base, "--products", str(tmp_path / "none.csv")])
    assert_bad_input(result, "none.csv")
    assert not out.exists()
    # Without --products the product column is not read: unchanged behaviour.
    assert runner.invoke(app, base).exit_code == 0 and out.exists()


def test_cli_history_of_the_item_world_rebuilds(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    result = runner.invoke(
        app,
        ["profiles", "history", "--out", str(logs), "--customers", "40", "--cycles", "4",
         "--products", "default"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--products default" in result.output
    with (logs / "simulator_features.csv").open(encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == ["customer_id", *(f.name for f in item_features(CATEGORIES))]
    with (logs / "contacts.csv").open(encoding="utf-8") as handle:
        assert "products" in next(csv.reader(handle))
