"""A customer given by their history: features built by the builder, in explain and the service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rec_env.agents.runs import read_run_info
from rec_env.agents.training import train
from rec_env.cli.main import app
from rec_env.features import FEATURE_NAMES
from rec_env.fitting.builder import build_features, features_from_history, read_events
from rec_env.fitting.history import MAX_EVENTS, fill_in_history, run_options
from rec_env.fitting.simulated_history import SimulatedHistory, simulate_history
from rec_env.serve import ServeSettings, create_app
from tests.cli_checks import assert_bad_input

runner = CliRunner()
EXAMPLE = Path(str(resources.files("rec_env.profiles") / "histories" / "example.json"))
TAGS = ("discount_sensitive", "free_shipping_preferred")


@pytest.fixture(scope="module")
def simulated() -> SimulatedHistory:
    return simulate_history(50, 10, seed=1)


def history_of(simulated: SimulatedHistory, customer_id: str) -> dict:
    """One customer's rows of the simulator's tables, as a history (JSON numbers)."""
    history: dict = {}
    for table in ("orders", "contacts", "visits", "consents"):
        rows = [r for r in simulated.tables[table] if r["customer_id"] == customer_id]
        history[table] = [
            {k: float(v) if k in ("amount", "discount") else v for k, v in r.items()
             if k != "customer_id"}
            for r in rows
        ]  # fmt: skip
    (tags,) = [r for r in simulated.tables["tags"] if r["customer_id"] == customer_id]
    history["tags"] = {name: tags[name] for name in TAGS}
    return history


# ---------------------------------------------------------------------------- the builder
@pytest.mark.parametrize(("n", "cycles", "seed"), [(50, 10, 1), (120, 30, 3)])
def test_a_history_gives_the_simulators_own_features(n, cycles, seed, tmp_path) -> None:
    """Exactly the simulator's observation, and what build_features makes of the CSV files."""
    simulated = simulate_history(n, cycles, seed=seed)
    ids = list(simulated.customer_ids)
    from_files = build_features(
        read_events(**simulated.write_csv(tmp_path)),
        simulated.as_of,
        irritation=simulated.irritation,
        customers=ids,
    )
    for i, customer_id in enumerate(ids):
        features, defaulted = features_from_history(
            history_of(simulated, customer_id),
            simulated.as_of,
            irritation=float(simulated.irritation[i]),
        )
        assert list(features) == list(FEATURE_NAMES) and defaulted == []
        built = np.array(list(features.values()))
        assert np.allclose(built, simulated.features[i], rtol=1e-12, atol=1e-12), customer_id
        assert np.allclose(built, from_files.observations[i], rtol=1e-12, atol=1e-12)
    unsubscribes = sum(int(r["unsubscribed"]) for r in simulated.tables["contacts"])
    assert len(simulated.tables["orders"]) >= 2 and unsubscribes >= 1  # every definition runs


def test_as_of_defaults_to_the_latest_event_and_later_events_are_left_out(simulated) -> None:
    customer_id = simulated.tables["orders"][0]["customer_id"]
    history = history_of(simulated, customer_id)
    latest = max(e["time"] for rows in history.values() if isinstance(rows, list) for e in rows)
    assert features_from_history(history, irritation=0.1) == features_from_history(
        history, latest, irritation=0.1
    )
    bought = history["orders"][0]["time"]
    assert features_from_history(history, bought, irritation=0.1)[0]["last_purchase_days"] == 0
    day_before = str(np.datetime64(bought) - 1)
    assert features_from_history(history, day_before, irritation=0.1)[0]["frequency"] == 0


def test_features_no_event_determines_are_listed_and_filled_in_as_left_out() -> None:
    history = {"orders": [{"time": "2024-06-03", "amount": 40, "discount": 10}],
               "contacts": [{"time": "2024-06-20", "channel": "E-mail", "opened": 1},
                            {"time": "2024-06-28", "channel": "sms", "delivered": 0}],
               "consents": [{"time": "2024-01-01", "channel": "email", "consent": 1}]}  # fmt: skip
    features, defaulted = features_from_history(history, irritation=0.1)
    assert defaulted == ["discount_sensitive", "free_shipping_preferred", "consent_sms",
                         "consent_push"]  # fmt: skip
    assert features["monetary_value"] == 50 and features["last_purchase_days"] == 25
    assert features["days_since_contact"] == 8  # the undelivered SMS of the 28th is no contact
    assert features["consent_email"] == 1
    filled = fill_in_history(history, None, ("sms",), irritation=0.1)
    assert filled.as_of == "2024-06-28"  # the latest event, delivered or not
    report = {item.feature: item for item in filled.report()}
    assert list(report) == list(FEATURE_NAMES)
    assert report["consent_sms"].value == 1 and "assumed" in report["consent_sms"].reason
    assert report["consent_push"].value == 0 and report["discount_sensitive"].value == 0
    assert report["recency"].reason == "built from the history as of 2024-06-28"
    assert [item.feature for item in filled.defaulted] == defaulted
    empty, nothing_known = features_from_history({})
    assert empty["frequency"] == 0 and len(nothing_known) == 5


@pytest.mark.parametrize(
    ("history", "path", "problem"),
    [
        ({"orders": [{"time": "2024-01-01", "amount": 1}] * 3
                    + [{"time": "2024-13-01", "amount": 1}]},
         "history.orders[3].time", "not a date (YYYY-MM-DD[THH:MM:SS]): '2024-13-01'"),
        ({"orders": [{"time": "June", "amount": 1}]}, "history.orders[0].time", "not a date"),
        ({"orders": [{"time": "2024-01-01", "amount": -5}]}, "history.orders[0].amount", "0"),
        ({"orders": [{"time": "2024-01-01", "amount": "5"}]}, "history.orders[0].amount", ""),
        ({"contacts": [{"time": "2024-01-01", "channel": "fax"}]},
         "history.contacts[0].channel", "unknown channel 'fax'"),
        ({"contacts": [{"time": "2024-01-01", "channel": "sms", "opened": 2}]},
         "history.contacts[0].opened", "1"),
        ({"consents": [{"time": "2024-01-01", "channel": "sms"}]},
         "history.consents[0].consent", "Field required"),
        ({"visits": [{"time": "2024-01-01", "page": "/"}]}, "history.visits[0].page", "Extra"),
        ({"tags": {"vip": 1}}, "history.tags.vip", "Extra"),
        ({"orders": {"time": "2024-01-01"}}, "history.orders", "list"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_fields_path(history, path, problem) -> None:
    with pytest.raises(ValueError, match=r"^" + path.replace("[", r"\[").replace(".", r"\.")) as e:
        features_from_history(history)
    assert problem in str(e.value)


def test_every_list_is_bounded() -> None:
    visits = [{"time": "2024-01-01"}] * MAX_EVENTS
    assert features_from_history({"visits": visits}, irritation=0.1)[0]["recency"] == 0
    with pytest.raises(ValueError, match=r"^history\.visits: .*at most 10000 items"):
        features_from_history({"visits": [*visits, {"time": "2024-01-02"}]})


# ---------------------------------------------------------------------------- explain, serve
@pytest.fixture(scope="module")
def lin_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "linucb"
    return train("linucb", steps=1024, out=out, eval_customers=50, final_customers=50,
                 hyperparams={"n_envs": 128})  # fmt: skip


def built_features(run: Path, history_file: Path) -> dict[str, float]:
    """The example's features as the run builds them, the defaulted ones left out."""
    data = json.loads(history_file.read_text())
    options = run_options(read_run_info(run).settings)
    features, defaulted = features_from_history(data["history"], data["as_of"], **options)
    return {name: value for name, value in features.items() if name not in defaulted}


def test_the_example_history_is_shipped_and_valid() -> None:
    data = json.loads(EXAMPLE.read_text())
    filled = fill_in_history(data["history"], data["as_of"], irritation=0.1)
    assert filled.as_of == "2024-06-30" and len(filled.defaulted) == 3


def test_explain_builds_the_features_of_a_history_file(lin_run, tmp_path) -> None:
    result = runner.invoke(app, ["explain", str(EXAMPLE), "--model", str(lin_run), "--background",
                                 "4", "--out", str(tmp_path / "a.png")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Features built from the history as of 2024-06-30 (3 orders, 3 contacts" in result.output
    assert "Filled in (3 of 16 features not given)" in result.output
    assert "consent_push = 1: consent unknown: assumed given" in result.output
    same = tmp_path / "same.json"
    features = built_features(lin_run, EXAMPLE)
    same.write_text(json.dumps({"customer_id": "history-example", "features": features}))
    twin = runner.invoke(app, ["explain", str(same), "--model", str(lin_run),
                               "--background", "4", "--out", str(tmp_path / "b.png")])  # fmt: skip
    assert twin.exit_code == 0, twin.output

    def recommendation(output: str) -> str:
        return next(line for line in output.splitlines() if ": recommend " in line)

    assert recommendation(result.output) == recommendation(twin.output)
    assert "history-example: recommend" in recommendation(result.output)


def test_explain_names_the_file_and_field_of_a_bad_history(lin_run, tmp_path) -> None:
    data = json.loads(EXAMPLE.read_text())
    data["history"]["orders"][1]["time"] = "2024-04-31"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = runner.invoke(app, ["explain", str(bad), "--model", str(lin_run)])
    assert_bad_input(result, "bad.json", "history.orders[1].time", "not a date")
    data = {"history": {}, "as_of": "soon"}
    bad.write_text(json.dumps(data))
    assert_bad_input(runner.invoke(app, ["explain", str(bad), "--model", str(lin_run)]),
                     "bad.json: as_of: not a date")  # fmt: skip


@pytest.fixture(scope="module")
def lin(lin_run, tmp_path_factory) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("serve") / "decisions.db"
    settings = ServeSettings(model_dir=lin_run, db=db, seed=0, exploration="none")
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_service_decides_for_a_history_as_for_its_features(lin, lin_run) -> None:
    data = json.loads(EXAMPLE.read_text())
    request = {"customer_id": "h-1", "history": data["history"], "as_of": data["as_of"]}
    by_history = lin.post("/v1/recommend", json=request)
    assert by_history.status_code == 200, by_history.text
    features = built_features(lin_run, EXAMPLE)
    by_features = lin.post("/v1/recommend", json={"features": features}).json()
    body = by_history.json()
    assert body["action"] == by_features["action"]
    assert body["probabilities"] == by_features["probabilities"]
    filled = {item["feature"]: item for item in body["filled_in"]}
    assert list(filled) == list(FEATURE_NAMES)
    for name, value in features.items():
        assert filled[name]["value"] == value
        assert filled[name]["reason"] == "built from the history as of 2024-06-30"
    assert filled["consent_sms"] == {"feature": "consent_sms", "value": 0.0,
                                     "reason": by_features["filled_in"][-2]["reason"]}  # fmt: skip
    flat = lin.post("/v1/recommend", json={"history": data["history"], "as_of": "2024-06-30"})
    assert flat.json()["probabilities"] == body["probabilities"]
    explained = lin.post("/v1/explain", json=request)
    assert explained.status_code == 200, explained.text
    twin = lin.post("/v1/explain", json={"features": features}).json()
    assert explained.json()["model_output"] == pytest.approx(twin["model_output"])
    assert explained.json()["filled_in"] == body["filled_in"]


@pytest.mark.parametrize(
    ("request_body", "loc"),
    [
        ({"history": {"orders": [{"time": "2024-02-30", "amount": 1}]}},
         ["body", "history", "orders", 0, "time"]),
        ({"history": {"contacts": [{"time": "2024-02-01", "channel": "sms", "opened": True}]}},
         ["body", "history", "contacts", 0, "opened"]),
        ({"history": {}, "as_of": "2024-02-30"}, ["body", "as_of"]),
        ({"history": {}, "features": {"recency": 3}}, ["body", "features"]),
        ({"history": {}, "recency": 3}, ["body", "features"]),
        ({"as_of": "2024-02-01", "features": {"recency": 3}}, ["body", "as_of"]),
        ({"history": {"visits": [{"time": "2024-01-01"}] * (MAX_EVENTS + 1)}},
         ["body", "history", "visits"]),
    ],
)  # fmt: skip
def test_a_bad_history_is_422_naming_the_field(lin, request_body, loc) -> None:
    for path in ("/v1/recommend", "/v1/explain"):
        response = lin.post(path, json=request_body)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == loc


def test_a_long_history_fits_the_body_budget_and_features_keep_theirs(lin) -> None:
    visits = [{"time": f"2024-01-{1 + k % 28:02d}"} for k in range(2000)]
    response = lin.post("/v1/recommend", json={"history": {"visits": visits}})
    assert response.status_code == 200, response.text
    raw = b'{"features": {"recency": [' + b"[]," * 2000 + b"[]]}}"
    refused = lin.post("/v1/recommend", content=raw, headers={"content-type": "application/json"})
    assert refused.json()["detail"][0]["type"] == "too_many_values"  # before any parsing


HISTORY_CASES = [
    {"history": {}},
    {"history": {}, "features": {}},
    {"history": {}, "features": {"recency": 3}},
    {"history": {}, "recency": 3},
    {"history": None, "recency": 3},
    {"history": {}, "as_of": None},
    {"history": {"orders": [{"time": "2024-05-01T10:30:00", "amount": 40}]}, "as_of": "2024-06-30"},
    {"history": {"orders": [{"time": " 2024-05-01", "amount": 40}]}},
    {"history": {"orders": [{"time": "1899-12-31", "amount": 40}]}},
    {"history": {"contacts": [{"time": "2024-05-01", "channel": "push", "clicked": 1.0}]}},
    {"history": {"contacts": [{"time": "2024-05-01", "channel": "push", "opened": "1"}]}},
    {"history": {"tags": {"discount_sensitive": None}}},
    {"as_of": "2024-06-30"},
    {"as_of": None, "features": {"recency": 3}},
]


def test_history_requests_are_accepted_exactly_when_the_schema_accepts_them(lin) -> None:
    """As test_serve's agreement test, for the history form of the request."""
    from jsonschema import Draft202012Validator

    document = lin.get("/openapi.json").json()
    for path in ("/v1/recommend", "/v1/explain"):
        ref = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        validator = Draft202012Validator({**document, **ref["schema"]})
        accepted = []
        for body in HISTORY_CASES:
            status = lin.post(path, json=body).status_code
            assert status in (200, 422), (path, body, status)
            assert validator.is_valid(body) == (status == 200), (path, body, status)
            accepted.append(status == 200)
        assert accepted == [True, True, False, False, True, True, True, False, False, True,
                            False, True, False, True]  # fmt: skip
