"""Partial customers: the flat seed JSON, the nested form and any subset of the 16 features, with
documented defaults, a report of what was filled in, and no message on a channel of unknown
consent unless the operator assumes it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rec_env.agents.explain import population_background
from rec_env.agents.training import train
from rec_env.catalog import ActionTable, load_catalog
from rec_env.customer import (
    FEATURE_DEFAULTS,
    CustomerProfile,
    fill_in_columns,
    fill_in_rows,
    load_customer,
    parse_channels,
)
from rec_env.features import (
    CHANNELS,
    CONSENT_FEATURES,
    FEATURE_INDEX,
    FEATURE_NAMES,
    FEATURES,
    PROFILE_FEATURES,
)
from rec_env.serve import ServeSettings, create_app
from rec_env.serve.schemas import EXAMPLE_FEATURES, SEED_EXAMPLE, RecommendRequest

USERS = Path(__file__).parents[1] / "profiles" / "users"
TABLE = ActionTable.from_catalog(load_catalog("strategy"))
JSON = {"content-type": "application/json"}
CONTACT_STATE = ("days_since_contact", "contacts_last_30d", "discounts_last_90d")
SEED = {"recency": 15, "frequency": 3, "monetary_value": 200, "engagement_score": 0.78,
        "discount_sensitive": 1, "free_shipping_preferred": 0, "email_opens": 0.87,
        "sms_response": 0.12, "push_response": 0.05, "last_purchase_days": 8}  # fmt: skip
"""The seed's example customer, word for word from the issue."""


# ---------------------------------------------------------------------------- parsing
def test_flat_nested_and_subset_forms_give_the_same_customer() -> None:
    flat = CustomerProfile.model_validate(SEED)
    nested = CustomerProfile.model_validate({"customer_id": "c-9", "features": SEED})
    flat_with_id = CustomerProfile.model_validate({"customer_id": "c-9", **SEED})
    assert flat.features == nested.features == flat_with_id.features == SEED
    assert nested.customer_id == flat_with_id.customer_id == "c-9" and flat.customer_id is None
    subset = CustomerProfile.model_validate({"recency": 3, "consent_sms": 1})
    assert subset.features == {"recency": 3.0, "consent_sms": 1.0}
    assert CustomerProfile.model_validate({}).features == {}
    assert SEED_EXAMPLE == SEED  # the API documents the same example


def test_minimal_profile_is_accepted_and_its_description_keeps_its_promise() -> None:
    profile = load_customer(USERS / "minimal_profile.json")
    assert set(profile.features) == set(PROFILE_FEATURES)
    filled = fill_in_rows([profile.features])
    assert {item.feature for item in filled.filled_in} == {*CONTACT_STATE, *CONSENT_FEATURES}
    assert "fill in" in profile.description and "contact" in profile.description


@pytest.mark.parametrize(
    ("features", "field", "message"),
    [
        ({"shoe_size": 44}, "shoe_size", "not permitted"),
        ({"recency": 731}, "recency", "less than or equal to 730"),
        ({"recency": -1}, "recency", "greater than or equal to 0"),
        ({"recency": math.nan}, "recency", "finite"),
        ({"recency": math.inf}, "recency", "finite"),
        ({"recency": "12"}, "recency", "valid number"),
        ({"recency": True}, "recency", "valid number"),
        ({"recency": None}, "recency", "valid number"),
        ({"consent_sms": 0.5}, "consent_sms", "0 or 1"),
    ],
)
def test_bad_features_name_the_field(features, field, message) -> None:
    for data in (features, {"features": features}):
        with pytest.raises(ValidationError) as excinfo:
            CustomerProfile.model_validate(data)
        error = excinfo.value.errors()[0]
        assert error["loc"] == ("features", field) and message in error["msg"]


# ---------------------------------------------------------------------------- defaults
def test_every_feature_has_one_documented_default_within_its_bounds() -> None:
    assert tuple(FEATURE_DEFAULTS) == FEATURE_NAMES
    for feature in FEATURES:
        default = FEATURE_DEFAULTS[feature.name]
        assert feature.low <= default.value <= feature.high and default.reason
        if feature.binary:
            assert default.value in (0.0, 1.0)
    # no contact and no discount history; unknown consent is no consent
    assert FEATURE_DEFAULTS["days_since_contact"].value == FEATURES[FEATURE_INDEX[
        "days_since_contact"]].high  # fmt: skip
    assert FEATURE_DEFAULTS["contacts_last_30d"].value == 0.0
    assert FEATURE_DEFAULTS["discounts_last_90d"].value == 0.0
    assert all(FEATURE_DEFAULTS[name].value == 0.0 for name in CONSENT_FEATURES)


def test_profile_defaults_are_medians_of_the_default_population(model) -> None:
    """The documented profile defaults follow ``profiles/default.yaml`` (and fail if it moves)."""
    n = 20_000
    batch = model.new_batch(n)
    model.draw_customers(batch, np.arange(n), np.random.default_rng(0))
    for name in PROFILE_FEATURES:
        default = FEATURE_DEFAULTS[name]
        if "median" not in default.reason:
            continue
        median = float(np.median(batch.feature(name)))
        assert default.value == pytest.approx(median, rel=0.1, abs=0.005), name


def test_filled_in_lists_each_filled_feature_with_its_value_and_reason() -> None:
    filled = fill_in_rows([SEED])
    obs = filled.observations[0]
    assert obs.shape == (len(FEATURE_NAMES),) and obs.dtype == np.float64
    for name, value in SEED.items():
        assert obs[FEATURE_INDEX[name]] == value
    report = {item.feature: item for item in filled.filled_in}
    assert list(report) == [*CONTACT_STATE, *CONSENT_FEATURES]  # in feature order
    for name, item in report.items():
        assert item.value == obs[FEATURE_INDEX[name]] == FEATURE_DEFAULTS[name].value
        assert item.reason == FEATURE_DEFAULTS[name].reason and item.n_customers == 1
    assert "no contact" in report["days_since_contact"].reason
    assert "no consent" in report["consent_sms"].reason
    assert fill_in_rows([EXAMPLE_FEATURES]).filled_in == ()


def test_assumed_consent_is_one_and_reported_as_assumed() -> None:
    filled = fill_in_rows([SEED, {**SEED, "consent_push": 0}], assume_consent=("email", "push"))
    consent = filled.observations[:, [FEATURE_INDEX[name] for name in CONSENT_FEATURES]]
    assert consent.tolist() == [[1, 0, 1], [1, 0, 0]]  # a given consent is never overridden
    report = {item.feature: item for item in filled.filled_in}
    assert "assumed" in report["consent_email"].reason and report["consent_email"].value == 1
    assert report["consent_push"].n_customers == 1 and report["consent_email"].n_customers == 2
    assert "no consent" in report["consent_sms"].reason


def test_rows_and_columns_are_filled_in_alike() -> None:
    rows = [{"recency": 1.0, "consent_email": 1.0}, {"recency": 2.0, "consent_email": 0.0}]
    columns = {"recency": [1.0, 2.0], "consent_email": [1.0, 0.0]}
    by_rows, by_columns = fill_in_rows(rows), fill_in_columns(columns, 2)
    np.testing.assert_array_equal(by_rows.observations, by_columns.observations)
    assert by_rows.filled_in == by_columns.filled_in
    assert all(item.n_customers == 2 for item in by_rows.filled_in)


def test_channels_to_assume_consent_on() -> None:
    assert parse_channels("push, email") == ("email", "push")
    assert parse_channels("all") == CHANNELS and parse_channels("none") == parse_channels("") == ()
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        parse_channels("email,fax")


# ---------------------------------------------------------------------------- the service
@pytest.fixture(scope="module")
def lin_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "linucb"
    return train("linucb", steps=1024, out=out, eval_customers=50, final_customers=50,
                 hyperparams={"n_envs": 128})  # fmt: skip


@pytest.fixture(scope="module")
def client(lin_run, tmp_path_factory) -> Iterator[TestClient]:
    settings = ServeSettings(model_dir=lin_run, db=tmp_path_factory.mktemp("db") / "d.db", seed=0)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def assuming(lin_run, tmp_path_factory) -> Iterator[TestClient]:
    """A service whose operator assumes consent on e-mail and push."""
    settings = ServeSettings(model_dir=lin_run, db=tmp_path_factory.mktemp("db") / "d.db",
                             seed=0, assume_consent="email,push")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        yield client


def channel_probabilities(probabilities: dict[str, float] | list[float]) -> dict[str, float]:
    """Total serving probability of each channel's actions."""
    values = np.asarray(list(probabilities.values()) if isinstance(probabilities, dict)
                        else probabilities)  # fmt: skip
    return {c: float(values[TABLE.channel == k].sum()) for k, c in enumerate(CHANNELS)}


@pytest.mark.parametrize(
    "body",
    [SEED, {"features": SEED}, {"customer_id": "c-1", **SEED, "explain": True},
     json.loads((USERS / "minimal_profile.json").read_text())],
    ids=["flat", "nested", "flat_with_options", "minimal_profile"],
)  # fmt: skip
def test_recommend_and_explain_accept_partial_customers(client, body) -> None:
    response = client.post("/v1/recommend", json=body)
    assert response.status_code == 200, response.text
    decision = response.json()
    filled = {item["feature"]: item for item in decision["filled_in"]}
    assert list(filled) == [*CONTACT_STATE, *CONSENT_FEATURES]
    assert filled["days_since_contact"]["value"] == 365 and filled["consent_sms"]["value"] == 0
    assert "no consent" in filled["consent_email"]["reason"]
    assert decision["action"]["name"] == "no_action"  # no known consent: nothing can be sent
    assert set(channel_probabilities(decision["probabilities"]).values()) == {0.0}
    explained = client.post("/v1/explain", json={k: v for k, v in body.items() if k != "explain"})
    assert explained.status_code == 200, explained.text
    assert explained.json()["filled_in"] == decision["filled_in"]
    values = {c["feature"]: c["value"] for c in explained.json()["contributions"]}
    given = RecommendRequest.model_validate(body).features
    expected = fill_in_rows([given]).observations[0]
    assert [values[name] for name in FEATURE_NAMES] == expected.tolist()


def test_the_log_holds_the_filled_in_values(client) -> None:
    event = client.post("/v1/recommend", json={"recency": 77}).json()["event_id"]
    decision = client.app.state.service.log.decision(event)
    expected = fill_in_rows([{"recency": 77.0}]).observations[0]
    np.testing.assert_array_equal(decision.features, expected)


def test_batch_accepts_partial_rows_and_columns(client) -> None:
    rows = [SEED, {"recency": 4}, EXAMPLE_FEATURES]
    by_rows = client.post("/v1/recommend/batch", json={"customers": rows}).json()
    report = {item["feature"]: item["n_customers"] for item in by_rows["filled_in"]}
    assert "recency" not in report and report["engagement_score"] == 1
    assert report["days_since_contact"] == report["consent_push"] == 2
    assert by_rows["actions"][:2] == ["no_action", "no_action"]
    columns = {"recency": [3, 30, 300], "consent_email": [1, 1, 0]}
    response = client.post("/v1/recommend/batch", json={"columns": columns,
                                                        "include_probabilities": True})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert {item["n_customers"] for item in body["filled_in"]} == {3}
    assert len(body["filled_in"]) == len(FEATURE_NAMES) - 2
    email = [channel_probabilities(row)["email"] for row in body["probabilities"]]
    assert email[0] > 0 and email[1] > 0 and email[2] == 0
    empty = client.post("/v1/recommend/batch", json={"columns": {}})
    assert empty.status_code == 422 and "at least one feature column" in empty.text


@pytest.mark.parametrize(
    ("flat", "field"),
    [('{"recency": 3, "shoe_size": 44}', "shoe_size"), ('{"recency": NaN}', "recency"),
     ('{"recency": Infinity}', "recency"), ('{"recency": 731}', "recency"),
     ('{"recency": 3, "consent_sms": 0.5}', "consent_sms")],
)  # fmt: skip
def test_bad_values_of_partial_customers_are_422_naming_the_field(client, flat, field) -> None:
    requests = [("/v1/recommend", flat), ("/v1/explain", flat),
                ("/v1/recommend", f'{{"features": {flat}}}'),
                ("/v1/recommend/batch", f'{{"customers": [{{}}, {flat}]}}')]  # fmt: skip
    for path, body in requests:
        response = client.post(path, content=body, headers=JSON)
        assert response.status_code == 422, (path, body, response.text)
        locations = [error["loc"] for error in response.json()["detail"]]
        assert any(loc[-1] == field for loc in locations), (path, locations)


def random_partial_customers(n: int, seed: int) -> list[dict[str, float]]:
    """Population customers with every consent combination, each feature dropped at random."""
    rng = np.random.default_rng(seed)
    obs = population_background(n, seed=seed).astype(np.float64).round(4)
    consent = [FEATURE_INDEX[name] for name in CONSENT_FEATURES]
    obs[:, consent] = rng.integers(0, 2, (n, len(CHANNELS)))
    keep = rng.random(obs.shape) < 0.5
    return [
        {name: row[j] for j, name in enumerate(FEATURE_NAMES) if kept[j]}
        for row, kept in zip(obs.tolist(), keep, strict=True)
    ]


def unknown_or_refused(customers: list[dict[str, float]], assumed: tuple[str, ...] = ()):
    """``(n, 3)`` bool: True where a channel may not be used (consent not 1, nor assumed)."""
    return np.array([[c.get(f"consent_{ch}", 1.0 if ch in assumed else 0.0) != 1.0
                      for ch in CHANNELS] for c in customers])  # fmt: skip


@pytest.mark.parametrize("assumed", [(), ("email", "push")], ids=["default", "assumed"])
def test_unknown_consent_is_never_messaged_without_opt_in(client, assuming, assumed) -> None:
    service = assuming if assumed else client
    customers = random_partial_customers(2000, seed=5)
    request = {"customers": customers, "include_probabilities": True}
    body = service.post("/v1/recommend/batch", json=request).json()
    probabilities = np.array(body["probabilities"])
    forbidden = unknown_or_refused(customers, assumed)
    for k in range(len(CHANNELS)):
        on_channel = probabilities[:, TABLE.channel == k]
        assert (on_channel[forbidden[:, k]] == 0).all()
        assert (on_channel[~forbidden[:, k]] > 0).all()  # ε-exploration reaches every allowed one
    served = TABLE.channel[np.array(body["action_indices"])]
    sent = np.flatnonzero(served < len(CHANNELS))
    assert not forbidden[sent, served[sent]].any()
    unknown = np.array([[f"consent_{c}" not in row for c in CHANNELS] for row in customers])
    email = probabilities[unknown[:, 0]][:, TABLE.channel == 0].sum(axis=1)
    sms = probabilities[unknown[:, 1]][:, TABLE.channel == 1].sum(axis=1)
    assert (email > 0).all() if assumed else (email == 0).all()
    assert (sms == 0).all()  # sms is assumed by neither service


@pytest.fixture(scope="module")
def drawn() -> list[list[float]]:
    return population_background(1000, seed=11).astype(np.float64).round(4).tolist()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kept=st.lists(st.booleans(), min_size=len(FEATURE_NAMES), max_size=len(FEATURE_NAMES)),
    row=st.integers(0, 999),
)
def test_single_decisions_on_unknown_consent_never_use_that_channel(client, drawn, kept, row):
    features = {name: value for name, value, keep in zip(FEATURE_NAMES, drawn[row], kept,
                                                         strict=True) if keep}  # fmt: skip
    body = client.post("/v1/recommend", json={"features": features}).json()
    by_channel = channel_probabilities(body["probabilities"])
    for channel in CHANNELS:
        if f"consent_{channel}" not in features:
            assert by_channel[channel] == 0.0
            assert body["action"]["channel"] != channel
    reported = {item["feature"] for item in body["filled_in"]}
    assert reported == set(FEATURE_NAMES) - set(features)


def test_model_info_reports_assumed_consent(client, assuming) -> None:
    assert client.get("/v1/model").json()["assume_consent"] == []
    assert assuming.get("/v1/model").json()["assume_consent"] == ["email", "push"]
    decision = assuming.post("/v1/recommend", json=SEED).json()
    report = {item["feature"]: item for item in decision["filled_in"]}
    assert report["consent_email"]["value"] == 1 and "assumed" in report["consent_email"]["reason"]
    assert report["consent_sms"]["value"] == 0
