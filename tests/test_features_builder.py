"""``recenv features``: the 16 features from real-style logs, by the simulator's own definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rec_env.cli.main import app
from rec_env.errors import ConfigError
from rec_env.features import FEATURE_INDEX, FEATURE_NAMES, HISTORY_START
from rec_env.fitting.builder import (
    build_features,
    history_problems,
    mean_irritation,
    parse_day,
    read_events,
)
from rec_env.fitting.simulated_history import SimulatedHistory, simulate_history
from tests.cli_checks import assert_bad_input

runner = CliRunner()
ENGAGEMENT = FEATURE_INDEX["engagement_score"]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulatedHistory, dict[str, Path]]:
    simulated = simulate_history(1500, 40, seed=2)
    return simulated, simulated.write_csv(tmp_path_factory.mktemp("history"))


def test_features_built_from_the_simulators_log_are_its_own(history: tuple) -> None:
    """The proof that the builder and the simulator share every feature's definition."""
    simulated, paths = history
    counts = {name: len(rows) for name, rows in simulated.tables.items()}
    # Enough of every event for each definition to matter.
    assert counts["orders"] > 100 and counts["contacts"] > 5_000 and counts["visits"] > 1_000
    assert sum(int(r["unsubscribed"]) for r in simulated.tables["contacts"]) > 50
    events = read_events(**paths)
    built = build_features(
        events,
        simulated.as_of,
        since=simulated.since,
        irritation=simulated.irritation,
        customers=simulated.customer_ids,
    )
    assert built.observations.shape == (1500, 16)
    for j, name in enumerate(FEATURE_NAMES):
        assert np.allclose(
            built.observations[:, j], simulated.features[:, j], rtol=1e-12, atol=1e-12
        ), name
    assert built.defaulted == {} and set(built.ignored_after.values()) == {0}


def test_without_each_customers_irritation_only_engagement_moves(history: tuple) -> None:
    simulated, paths = history
    built = build_features(read_events(**paths), simulated.as_of, since=simulated.since)
    others = [j for j in range(16) if j != ENGAGEMENT]
    assert np.allclose(built.observations[:, others], simulated.features[:, others], atol=1e-12)
    gap = np.abs(built.observations[:, ENGAGEMENT] - simulated.features[:, ENGAGEMENT])
    assert gap.max() > 0 and gap.mean() < 0.01
    assert 0.05 < mean_irritation() < 0.1


def test_simulated_history_is_seeded() -> None:
    a, b = simulate_history(200, 8, seed=5), simulate_history(200, 8, seed=5)
    assert a.tables == b.tables and np.array_equal(a.features, b.features)
    assert simulate_history(200, 8, seed=6).tables != a.tables


def _write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def test_real_style_log_definitions(tmp_path: Path) -> None:
    orders = _write(
        tmp_path / "orders.csv",
        """
customer_id,time,amount,discount
a,2024-06-03 10:15:00,40,10
a,2024-06-27,100,0
b,2024-05-01,20,0
c,2024-07-05,99,0
""",
    )
    contacts = _write(
        tmp_path / "contacts.csv",
        """
customer_id,time,channel,offer,delivered,opened,unsubscribed
a,2024-06-20,email,discount_15,1,1,0
a,2024-06-28,SMS,free_shipping,1,0,1
a,2024-06-29,sms,none,0,0,0
b,2024-06-10,push,discount_10,1,0,0
""",
    )
    consents = _write(
        tmp_path / "consents.csv",
        """
customer_id,time,channel,consent
a,2024-01-01,email,1
a,2024-01-01,sms,1
a,2024-06-28,sms,1
""",
    )
    tags = _write(tmp_path / "tags.csv", "customer_id,discount_sensitive\na,1\nd,0")
    events = read_events(orders, contacts, consents=consents, tags=tags)
    built = build_features(events, "2024-06-30", irritation=0.1)
    rows = {cid: dict(zip(FEATURE_NAMES, row, strict=True)) for cid, row in
            zip(built.customer_ids, built.observations, strict=True)}  # fmt: skip
    assert list(built.customer_ids) == ["a", "b", "d"]  # c only bought after --as-of
    assert built.ignored_after == {"orders": 1, "contacts": 0, "consents": 0}
    a, b, d = rows["a"], rows["b"], rows["d"]
    # The first order (list value 40 + 10) sets the average, the next one moves it 30 %.
    assert a["monetary_value"] == pytest.approx(50 + 0.3 * (100 - 50))
    assert a["last_purchase_days"] == 3 and a["recency"] == 3
    assert a["days_since_contact"] == 2  # the undelivered SMS of the 29th does not count
    assert a["contacts_last_30d"] == 2 and a["discounts_last_90d"] == 1
    # One opened e-mail and one ignored SMS move their rates a tenth of the way.
    assert a["email_opens"] == pytest.approx(0.045 + 0.1 * (1 - 0.045))
    assert a["sms_response"] == pytest.approx(0.055 * 0.9)
    # An unsubscribe on the day of a consent event wins; e-mail consent stands; no push event.
    assert (a["consent_email"], a["consent_sms"], a["consent_push"]) == (1, 0, 0)
    assert a["discount_sensitive"] == 1 and a["free_shipping_preferred"] == 0
    # Orders count where their cycle ends: 3 and 0 cycles of 7 days before the 30th.
    assert a["frequency"] == pytest.approx(1 + np.exp(-7 / 365) ** 3)
    assert b["frequency"] == pytest.approx(np.exp(-7 / 365) ** 8)
    assert b["recency"] == b["last_purchase_days"] == 60 and b["days_since_contact"] == 20
    assert 0 < b["engagement_score"] < a["engagement_score"]
    # A customer with no events starts where everybody starts.
    assert d == {name: HISTORY_START[name] for name in FEATURE_NAMES}
    assert built.defaulted == {
        "consent_email": 2,
        "consent_sms": 2,
        "consent_push": 3,
        "discount_sensitive": 1,
        "free_shipping_preferred": 3,
    }


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("customer_id,time,amount\na,2024-13-01,3", ["orders.csv: row 1 (line 2)", "'time'"]),
        ("customer_id,time,amount\na,2024-01-01,x", ["row 1 (line 2)", "'amount'", "not a num"]),
        ("customer_id,time,amount\na,2024-01-01,-3", ["'amount'", "negative"]),
        ("customer_id,time,amount\n,2024-01-01,3", ["'customer_id'", "missing customer id"]),
        ("cust,time,amount\na,2024-01-01,3", ["no column 'customer_id'", "--column orders."]),
    ],
)
def test_bad_orders_name_file_row_and_column(tmp_path: Path, text: str, fragments: list) -> None:
    path = _write(tmp_path / "orders.csv", text)
    with pytest.raises(ConfigError) as error:
        read_events(path)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_bad_contacts_and_mapped_columns(tmp_path: Path) -> None:
    orders = _write(tmp_path / "orders.csv", "cust,day,paid\na,2024-01-01,3")
    contacts = _write(tmp_path / "contacts.csv", "customer_id,time,channel\na,2024-01-02,fax")
    with pytest.raises(ConfigError, match=r"row 1 \(line 2\), column 'channel': unknown channel"):
        read_events(orders, contacts, columns={"orders": {"customer_id": "cust", "time": "day",
                                                          "amount": "paid"}})  # fmt: skip
    events = read_events(
        orders, columns={"orders": {"customer_id": "cust", "time": "day", "amount": "paid"}}
    )
    assert build_features(events, "2024-01-31").observations[0, 2] == 3.0
    with pytest.raises(ConfigError, match=r"unknown column mapping orders\.when"):
        read_events(orders, columns={"orders": {"when": "day"}})
    with pytest.raises(ValueError, match="since is after as_of"):
        build_features(events, "2024-01-31", since="2024-02-01")
    with pytest.raises(ValueError, match="irritation"):
        build_features(events, "2024-01-31", irritation=2.0)
    assert parse_day("1970-01-11") == 10
    with pytest.raises(ValueError, match="not a date"):
        parse_day("soon")


def test_cli_builds_the_simulators_features(history: tuple, tmp_path: Path) -> None:
    simulated, paths = history
    out = tmp_path / "customers.parquet"
    args = ["features", "--as-of", simulated.as_of, "--since", simulated.since, "--out", str(out)]
    for name, path in paths.items():
        args += [f"--{name}", str(path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1,500 customers" in result.output
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pydict()
    assert table["customer_id"] == list(simulated.customer_ids)
    others = [n for n in FEATURE_NAMES if n != "engagement_score"]
    got = np.array([table[n] for n in others]).T
    want = simulated.features[:, [FEATURE_INDEX[n] for n in others]]
    assert np.allclose(got, want, atol=1e-12)


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    orders = _write(tmp_path / "orders.csv", "customer_id,time,amount\na,2024-01-01,3\nb,x,2")
    out = tmp_path / "customers.csv"
    result = runner.invoke(
        app, ["features", "--orders", str(orders), "--as-of", "2024-02-01", "--out", str(out)]
    )
    assert_bad_input(result, "orders.csv: row 2 (line 3), column 'time'")
    assert not out.exists()
    result = runner.invoke(
        app, ["features", "--orders", str(orders), "--as-of", "2024-02-01", "--out", "c.txt"]
    )
    assert_bad_input(result, "--out", ".csv or .parquet")
    result = runner.invoke(
        app,
        ["features", "--orders", str(orders), "--as-of", "2024-02-01", "--out", str(out),
         "--column", "orders.customer_id"],
    )  # fmt: skip
    assert_bad_input(result, "--column", "TABLE.FIELD=COLUMN")


def test_cli_history_writes_logs_that_rebuild(tmp_path: Path) -> None:
    out = tmp_path / "logs"
    result = runner.invoke(
        app, ["profiles", "history", "--out", str(out), "--customers", "50", "--cycles", "6"]
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "orders.csv", "contacts.csv", "visits.csv", "consents.csv", "tags.csv",
        "simulator_features.csv",
    }  # fmt: skip
    assert "recenv features --orders" in result.output


def test_example_users_are_histories_the_builder_could_produce() -> None:
    import json

    users = sorted((Path(__file__).parents[1] / "profiles" / "users").glob("*.json"))
    assert len(users) >= 7
    for path in users:
        features = json.loads(path.read_text())["features"]
        assert history_problems(features) == [], path.name


def test_history_problems_finds_impossible_features(history: tuple) -> None:
    bad = {"recency": 50, "last_purchase_days": 10, "frequency": 0.1}
    problems = history_problems(bad)
    assert len(problems) == 2
    assert history_problems({"monetary_value": 30, "frequency": 0})
    assert not history_problems({"monetary_value": 0, "frequency": 1.0})  # a free order
    assert "recency 50 > last_purchase_days 10" in problems[0]
    assert history_problems({"contacts_last_30d": 2, "days_since_contact": 60})
    assert history_problems({"contacts_last_30d": 0, "days_since_contact": 3})
    assert history_problems({"discounts_last_90d": 1, "days_since_contact": 200})
    # Every simulated customer's features are a history's.
    simulated, _ = history
    for row in simulated.features[:300]:
        assert history_problems(dict(zip(FEATURE_NAMES, row, strict=True))) == []


def test_built_features_are_what_explain_and_scoring_read(history: tuple, tmp_path: Path) -> None:
    """The CSV of ``recenv features`` is the customers file of ``recenv explain --summary``."""
    from rec_env.customer import load_customers_csv

    simulated, paths = history
    out = tmp_path / "customers.csv"
    args = ["features", "--as-of", simulated.as_of, "--out", str(out)]
    for name, path in paths.items():
        args += [f"--{name}", str(path)]
    assert runner.invoke(app, args).exit_code == 0
    ids, obs = load_customers_csv(out)
    assert ids == list(simulated.customer_ids)
    built = build_features(read_events(**paths), simulated.as_of)
    assert np.allclose(obs, built.observations.astype(np.float32))


def test_real_purchase_log_gives_consistent_features() -> None:
    """CDNOW's orders (real, with some $0 orders) through the builder: no contradictions."""
    from rec_env.datasets.cdnow import load_cdnow
    from rec_env.fitting.builder import CustomerEvents, _Table

    log = load_cdnow()
    events = CustomerEvents(_Table(log.customer, log.day, {"value": log.amount}))
    built = build_features(events, "1997-09-30")
    assert built.observations.shape == (23_570, 16)
    assert built.ignored_after["orders"] == 20_573
    for row in built.observations:
        assert history_problems(dict(zip(FEATURE_NAMES, row, strict=True))) == []
    frequency = built.observations[:, FEATURE_INDEX["frequency"]]
    assert (frequency > 0).all() and 1.0 < frequency.mean() < 2.0
