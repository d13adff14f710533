"""Property-based API fuzzing: no request body, however malformed, gets a server error."""

from __future__ import annotations

import json
import string
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rec_env.agents.training import train
from rec_env.features import FEATURES
from rec_env.serve import ServeSettings, create_app
from rec_env.serve.schemas import EXAMPLE_FEATURES

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
JSON = {"content-type": "application/json"}
URL_SAFE = string.ascii_letters + string.digits + "-_.~"


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    directory = tmp_path_factory.mktemp("fuzz")
    run = train("linucb", steps=1024, out=directory / "linucb", eval_customers=50,
                final_customers=50, hyperparams={"n_envs": 128})  # fmt: skip
    app = create_app(ServeSettings(model_dir=run, db=directory / "d.db", seed=0, max_batch=50))
    with TestClient(app) as client:  # server exceptions are raised, never hidden
        yield client


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
extreme_numbers = st.sampled_from(
    [0, 1, -1, 0.5, 1e308, -1e308, 5e-324, 10**20, float("nan"), float("inf"), float("-inf")]
)
feature_values = (
    extreme_numbers
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["NaN", "Infinity", "12", "", "1e999"])
    | json_values
)


@st.composite
def feature_dicts(draw) -> dict:
    """Mostly plausible customers: some features dropped (a partial customer), mangled or added."""
    features = dict(EXAMPLE_FEATURES)
    for feature in FEATURES:
        choice = draw(st.integers(0, 9))
        if choice == 0:
            del features[feature.name]
        elif choice <= 2:
            features[feature.name] = draw(feature_values)
        elif choice == 3:
            features[feature.name] = draw(st.floats(feature.low, feature.high))
    if draw(st.booleans()):
        features.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return features


action_names = st.lists(
    st.sampled_from(["no_action", "discount_10_sms", "recommendation_push", "nope", ""])
    | json_values,
    max_size=3,
)
recommend_bodies = st.fixed_dictionaries(
    {"features": feature_dicts() | json_values},
    optional={
        "explain": st.booleans() | json_values,
        "excluded_actions": action_names | json_values,
        "customer_id": st.text(max_size=10) | json_values,
        "action": st.sampled_from(["no_action", "discount_10_email", "nope"]) | json_values,
        "top": st.integers(-3, 30) | json_values,
    },
)
batch_bodies = st.fixed_dictionaries(
    {},
    optional={
        "customers": st.lists(feature_dicts() | json_values, max_size=4) | json_values,
        "columns": st.dictionaries(
            st.sampled_from([f.name for f in FEATURES]) | st.text(max_size=5),
            st.lists(feature_values, max_size=3) | json_values,
            max_size=18,
        ),
        "customer_ids": st.lists(st.text(max_size=5) | st.none(), max_size=4) | json_values,
        "excluded_actions": action_names,
        "include_probabilities": st.booleans() | json_values,
    },
)


def encode(body) -> str:
    """JSON as a client might send it, including the NaN / Infinity literals."""
    return json.dumps(body, allow_nan=True)


def check(response) -> None:
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")
    response.json()


@FUZZ
@given(
    body=recommend_bodies | feature_dicts() | json_values,  # nested, flat, anything
    path=st.sampled_from(["/v1/recommend", "/v1/explain"]),
)
def test_recommend_and_explain_never_fail_with_a_server_error(client, body, path) -> None:
    check(client.post(path, content=encode(body), headers=JSON))


@FUZZ
@given(body=batch_bodies | json_values)
def test_batches_never_fail_with_a_server_error(client, body) -> None:
    check(client.post("/v1/recommend/batch", content=encode(body), headers=JSON))


@FUZZ
@given(
    body=st.fixed_dictionaries({"reward": feature_values}) | json_values,
    event=st.sampled_from(["known", "random"]) | st.text(URL_SAFE, max_size=40),
)
def test_rewards_never_fail_with_a_server_error(client, body, event) -> None:
    if event == "known":
        event = client.post("/v1/recommend", json={"features": EXAMPLE_FEATURES}).json()["event_id"]
    elif event == "random":
        event = str(uuid.uuid4())
    check(client.post(f"/v1/events/{event}/reward", content=encode(body), headers=JSON))


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_raw_bytes_never_fail_with_a_server_error(client, raw) -> None:
    for path in ("/v1/recommend", "/v1/recommend/batch", "/v1/explain"):
        check(client.post(path, content=raw, headers=JSON))
