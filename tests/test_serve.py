"""The decision service through FastAPI's TestClient: endpoints, errors, consent, exploration,
rewards and online learning across restarts."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from rec_env.agents.explain import population_background
from rec_env.agents.training import train
from rec_env.catalog import ActionTable, load_catalog
from rec_env.datasets.decision_log_tables import iter_decision_tables
from rec_env.features import CHANNELS, FEATURE_INDEX, FEATURE_NAMES, FEATURES
from rec_env.serve import ServeSettings, create_app
from rec_env.serve.dependencies import get_settings
from rec_env.serve.schemas import EXAMPLE_FEATURES
from rec_env.serve.state import PolicyStateStore

TABLE = ActionTable.from_catalog(load_catalog("strategy"))
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def lin_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "linucb"
    return train("linucb", steps=1024, out=out, eval_customers=50, final_customers=50,
                 hyperparams={"n_envs": 128})  # fmt: skip


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ppo"
    hyperparams = {"n_envs": 64, "n_steps": 16, "batch_size": 256, "n_epochs": 1}
    return train("ppo", steps=1024, out=out, hyperparams=hyperparams, eval_every=1024,
                 eval_customers=20, final_customers=20)  # fmt: skip


@contextmanager
def serving(run: Path, directory: Path, **settings) -> Iterator[TestClient]:
    settings = {"db": directory / "decisions.db", "seed": 0, "explain": False, **settings}
    with TestClient(create_app(ServeSettings(model_dir=run, **settings))) as client:
        yield client


@pytest.fixture(scope="module")
def ppo(ppo_run, tmp_path_factory) -> Iterator[TestClient]:
    with serving(ppo_run, tmp_path_factory.mktemp("ppo-serve"), explain=True) as client:
        yield client


@pytest.fixture(scope="module")
def lin(lin_run, tmp_path_factory) -> Iterator[TestClient]:
    with serving(lin_run, tmp_path_factory.mktemp("lin-serve")) as client:
        yield client


def customer(**overrides: float) -> dict[str, float]:
    return {**EXAMPLE_FEATURES, **overrides}


def random_customers(n: int, seed: int) -> np.ndarray:
    """Population customers with every combination of consents."""
    obs = population_background(n, seed=seed).astype(np.float64).round(4)
    consents = [FEATURE_INDEX[f"consent_{c}"] for c in CHANNELS]
    obs[:, consents] = np.random.default_rng(seed).integers(0, 2, (n, len(CHANNELS)))
    return obs


def columns(obs: np.ndarray) -> dict[str, list[float]]:
    return {name: obs[:, j].tolist() for j, name in enumerate(FEATURE_NAMES)}


def logged(client: TestClient) -> dict[str, dict]:
    """The export of the client's decision log, by event id."""
    db = client.app.state.settings.db
    rows = [row for table in iter_decision_tables(db) for row in table.to_pylist()]
    return {row["event_id"]: row for row in rows}


# ---------------------------------------------------------------------------- recommend
def test_recommend_serves_an_allowed_action_with_its_propensity(ppo) -> None:
    response = ppo.post("/v1/recommend", json={"features": customer(), "customer_id": "c-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert uuid.UUID(body["event_id"]).version == 7
    assert body["model_version"].startswith("ppo-")
    action = body["action"]
    assert TABLE.names[action["index"]] == action["name"]
    assert action["channel"] != "push"  # the example customer has no push consent
    probabilities = body["probabilities"]
    assert list(probabilities) == list(TABLE.names)
    assert sum(probabilities.values()) == pytest.approx(1.0)
    assert body["propensity"] == probabilities[action["name"]] > 0.0
    assert all(p == 0.0 for name, p in probabilities.items() if name.endswith("_push"))
    assert body["explanation"] is None
    assert body["filled_in"] == []  # all 16 features were given


def test_the_log_holds_the_served_propensity_and_probabilities(ppo) -> None:
    bodies = [ppo.post("/v1/recommend", json={"features": customer(recency=r)}).json()
              for r in (1, 50, 300)]  # fmt: skip
    log = logged(ppo)
    for body in bodies:
        row = log[body["event_id"]]
        assert row["propensity"] == body["propensity"]
        assert row[f"prob_{body['action']['name']}"] == body["propensity"]
        for name, p in body["probabilities"].items():
            assert row[f"prob_{name}"] == p
            assert row[f"allowed_{name}"] == (not name.endswith("_push"))
        assert row["action"] == body["action"]["name"] and row["recency"] in (1, 50, 300)


def test_profile_files_can_be_posted_as_they_are(ppo) -> None:
    profile = Path(__file__).parents[1] / "profiles" / "users" / "bargain_hunter.json"
    response = ppo.post("/v1/recommend", content=profile.read_bytes(), headers=JSON)
    assert response.status_code == 200, response.text


def test_exploration_gives_every_allowed_action_a_positive_propensity(lin) -> None:
    """LinUCB is deterministic (one-hot); ε = 0.05 spreads 5 % over the allowed actions."""
    obs = random_customers(300, seed=1)
    request = {"columns": columns(obs), "include_probabilities": True}
    body = lin.post("/v1/recommend/batch", json=request).json()
    probabilities = np.array(body["probabilities"])
    allowed = TABLE.consent_masks(obs)
    assert (probabilities[allowed] >= 0.05 / allowed.sum(axis=1).max() - 1e-12).all()
    assert (probabilities[~allowed] == 0.0).all()
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities.max(axis=1) == pytest.approx(0.95 + 0.05 / allowed.sum(axis=1))


def test_without_exploration_a_deterministic_policy_logs_propensity_one(lin_run, tmp_path) -> None:
    with serving(lin_run, tmp_path, exploration="none") as client:
        body = client.post("/v1/recommend", json={"features": customer()}).json()
    assert body["propensity"] == 1.0
    assert sorted(body["probabilities"].values())[-2:] == [0.0, 1.0]


def test_consent_is_respected_over_many_random_customers(ppo) -> None:
    obs = random_customers(2000, seed=2)
    excluded = ["discount_20_email", "free_shipping_sms"]
    request = {"columns": columns(obs), "excluded_actions": excluded, "include_probabilities": True}
    body = ppo.post("/v1/recommend/batch", json=request).json()
    actions = np.array(body["action_indices"])
    probabilities = np.array(body["probabilities"])
    allowed = TABLE.consent_masks(obs)
    allowed[:, [TABLE.index(name) for name in excluded]] = False
    assert allowed[np.arange(len(actions)), actions].all()
    assert (probabilities[~allowed] == 0.0).all()
    assert body["propensities"] == pytest.approx(probabilities[np.arange(len(actions)), actions])
    no_consent = obs[:, [FEATURE_INDEX[f"consent_{c}"] for c in CHANNELS]].sum(axis=1) == 0
    assert no_consent.any() and (actions[no_consent] == TABLE.no_action).all()


def test_batch_rows_and_columns_give_the_same_decisions(lin_run, tmp_path) -> None:
    obs = random_customers(50, seed=3)
    rows = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in obs.tolist()]
    results = []
    for i, payload in enumerate(({"customers": rows}, {"columns": columns(obs)})):
        (tmp_path / str(i)).mkdir()
        with serving(lin_run, tmp_path / str(i), seed=7) as client:  # same seed, same draws
            ids = [f"c{k}" for k in range(50)]
            response = client.post("/v1/recommend/batch", json={**payload, "customer_ids": ids})
            assert response.status_code == 200, response.text
            results.append(response.json())
            assert logged(client)[results[-1]["event_ids"][7]]["customer_id"] == "c7"
    assert results[0]["action_indices"] == results[1]["action_indices"]
    assert results[0]["propensities"] == results[1]["propensities"]
    assert results[0]["event_ids"] != results[1]["event_ids"]


def test_excluded_actions(lin) -> None:
    contact = [name for name in TABLE.names if name != "no_action"]
    body = lin.post("/v1/recommend", json={"features": customer(), "excluded_actions": contact})
    assert body.json()["action"]["name"] == "no_action" and body.json()["propensity"] == 1.0
    unknown = lin.post("/v1/recommend", json={"features": customer(),
                                              "excluded_actions": ["no_action_x"]})  # fmt: skip
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "excluded_actions", 0]
    assert "no_action_x" in unknown.json()["detail"][0]["msg"]
    fallback = lin.post("/v1/recommend", json={"features": customer(),
                                               "excluded_actions": ["no_action"]})  # fmt: skip
    assert fallback.status_code == 422 and "cannot be excluded" in fallback.text


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("shoe_size", "44"),  # unknown
        ("recency", "NaN"),
        ("recency", "Infinity"),
        ("recency", "-Infinity"),
        ("recency", "1e999"),
        ("recency", "731"),
        ("recency", "-1"),
        ("recency", '"12"'),
        ("recency", "true"),
        ("recency", "null"),
        ("recency", "[12]"),
        ("consent_sms", "0.5"),
        ("consent_sms", "2"),
        ("consent_sms", '"yes"'),
    ],
)
def test_invalid_features_are_422_naming_the_field(lin, field, raw) -> None:
    text = json.dumps({k: v for k, v in EXAMPLE_FEATURES.items() if k != field})[:-1]
    if raw is not None:
        text += f', "{field}": {raw}'
    for path in ("/v1/recommend", "/v1/explain"):
        response = lin.post(path, content=f'{{"features": {text}}}}}', headers=JSON)
        assert response.status_code == 422, (raw, response.text)
        locations = [error["loc"] for error in response.json()["detail"]]
        assert ["body", "features", field] in locations


def test_feature_errors_in_batches_name_customer_and_field(lin) -> None:
    rows = [customer(), customer(monetary_value=-5)]
    response = lin.post("/v1/recommend/batch", json={"customers": rows})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "customers", 1, "monetary_value"]
    bad_column = columns(np.array([list(EXAMPLE_FEATURES.values())] * 3, dtype=float))
    bad_column["engagement_score"][2] = 1.5
    response = lin.post("/v1/recommend/batch", json={"columns": bad_column})
    assert response.json()["detail"][0]["loc"] == ["body", "columns", "engagement_score", 2]
    raw = json.dumps({"customers": rows[:1]}).replace("12", "NaN", 1)
    response = lin.post("/v1/recommend/batch", content=raw, headers=JSON)
    assert response.status_code == 422 and "recency" in response.json()["detail"][0]["loc"]


def test_batch_layout_errors(lin) -> None:
    def post(payload):
        return lin.post("/v1/recommend/batch", json=payload)

    ragged = {name: [value] * 3 for name, value in EXAMPLE_FEATURES.items()}
    ragged["sms_response"] = [0.1, 0.2]
    assert "sms_response" in post({"columns": ragged}).text
    assert post({}).status_code == 422
    both = {"customers": [customer()], "columns": {k: [v] for k, v in EXAMPLE_FEATURES.items()}}
    assert "exactly one" in post(both).text
    ids = post({"customers": [customer()], "customer_ids": ["a", "b"]})
    assert ids.status_code == 422 and "customer_ids" in ids.text
    for payload in (b"", b"{", b"\xff\xfe", b"[]", b"null"):
        response = lin.post("/v1/recommend/batch", content=payload, headers=JSON)
        assert response.status_code == 422, payload


def test_batches_are_limited_to_10000_customers(lin) -> None:
    response = lin.post("/v1/recommend/batch", json={"customers": [customer()] * 10_001})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "customers"]
    big = {name: [value] * 10_001 for name, value in EXAMPLE_FEATURES.items()}
    assert lin.post("/v1/recommend/batch", json={"columns": big}).status_code == 422


def test_a_lower_batch_limit_from_overridden_settings(lin) -> None:
    settings = lin.app.state.settings.model_copy(update={"max_batch": 5})
    lin.app.dependency_overrides[get_settings] = lambda: settings
    try:
        assert lin.post("/v1/recommend/batch", json={"customers": [customer()] * 5}).is_success
        response = lin.post("/v1/recommend/batch", json={"customers": [customer()] * 6})
        assert response.status_code == 422 and "at most 5" in response.text
    finally:
        lin.app.dependency_overrides.clear()


@pytest.mark.parametrize("flag", ["true", "false"])
def test_booleans_are_not_numbers_for_any_feature(lin, flag) -> None:
    """Not even for the 0/1 flags: the schema says number, and so does validation."""
    for feature in FEATURES:
        nested = f'{{"features": {{"{feature.name}": {flag}}}}}'
        for path in ("/v1/recommend", "/v1/explain"):
            for body in (nested, f'{{"{feature.name}": {flag}}}'):
                response = lin.post(path, content=body, headers=JSON)
                assert response.status_code == 422, (path, body)
        rows = f'{{"customers": [{{"{feature.name}": {flag}}}]}}'
        cols = f'{{"columns": {{"{feature.name}": [{flag}]}}}}'
        for body in (rows, cols):
            response = lin.post("/v1/recommend/batch", content=body, headers=JSON)
            assert response.status_code == 422
            assert feature.name in response.json()["detail"][0]["loc"]


@pytest.mark.parametrize("raw", ['"yes"', "1", "0", '"true"', "null", "[]"])
def test_options_take_json_booleans_only(lin, raw) -> None:
    response = lin.post("/v1/recommend", content=f'{{"explain": {raw}}}', headers=JSON)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "explain"]
    batch = f'{{"customers": [{{}}], "include_probabilities": {raw}}}'
    response = lin.post("/v1/recommend/batch", content=batch, headers=JSON)
    assert response.json()["detail"][0]["loc"] == ["body", "include_probabilities"]
    assert lin.post("/v1/recommend", json={"explain": False}).status_code == 200


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe", b"", b'{"a": 1,}', b"NaN]", b"{'a': 1}"])
def test_unparsable_json_is_422_on_every_endpoint(lin, raw) -> None:
    event = lin.post("/v1/recommend", json={}).json()["event_id"]
    for path in ("/v1/recommend", "/v1/recommend/batch", "/v1/explain",
                 f"/v1/events/{event}/reward"):  # fmt: skip
        for headers in (JSON, {"content-type": "text/plain"}, {}):
            response = lin.post(path, content=raw, headers=headers)
            assert response.status_code == 422, (path, raw)
            [error] = response.json()["detail"]
            assert error["loc"] == ["body"] and error["type"] == "json_invalid"


def test_every_body_endpoint_documents_413_and_422(lin) -> None:
    paths = lin.get("/openapi.json").json()["paths"]
    posts = [operations["post"] for operations in paths.values() if "post" in operations]
    assert len(posts) == 8  # with the two activation endpoints
    for operation in posts:
        assert {"413", "422"} <= set(operation["responses"]), operation["summary"]
        assert "not JSON" in operation["responses"]["422"]["description"]


def test_the_schema_names_the_catalog_and_the_layouts(lin) -> None:
    components = lin.get("/openapi.json").json()["components"]["schemas"]
    batch = components["BatchRecommendRequest"]
    assert batch["oneOf"] == [{"required": ["customers"]}, {"required": ["columns"]}]
    assert batch["properties"]["customers"]["type"] == "array"  # not nullable
    assert batch["properties"]["customers"]["maxItems"] == 10_000
    excludable = [name for name in TABLE.names if name != "no_action"]
    for name in ("RecommendRequest", "ExplainRequest"):
        nested, flat, history = components[name]["anyOf"]  # or a customer's history
        assert history["required"] == ["history"] and "recency" not in history["properties"]
        assert set(flat["properties"]) >= set(FEATURE_NAMES)
        assert "features" not in flat["properties"]
        assert nested["properties"]["excluded_actions"]["items"]["enum"] == excludable
        assert nested["additionalProperties"] is flat["additionalProperties"] is False
    assert batch["properties"]["excluded_actions"]["items"]["enum"] == excludable
    action = components["ExplainRequest"]["anyOf"][0]["properties"]["action"]
    assert action["anyOf"][0]["enum"] == list(TABLE.names)
    assert components["RecommendRequest"]["anyOf"][0]["properties"]["explain"]["type"] == "boolean"


SCHEMA_CASES = [
    ("/v1/recommend", {"features": {"recency": 3}}),
    ("/v1/recommend", {"recency": 3, "customer_id": "c"}),
    ("/v1/recommend", {}),
    ("/v1/recommend", {"features": {"recency": 3}, "recency": 3}),
    ("/v1/recommend", {"features": None}),
    ("/v1/recommend", {"recency": True}),
    ("/v1/recommend", {"consent_sms": 0.5}),
    ("/v1/recommend", {"consent_sms": 1.0}),
    ("/v1/recommend", {"explain": "yes"}),
    ("/v1/recommend", {"excluded_actions": ["discount_10_sms"]}),
    ("/v1/recommend", {"excluded_actions": ["no_action"]}),
    ("/v1/recommend", {"excluded_actions": ["discount_99_sms"]}),
    ("/v1/recommend", {"customer_id": 7}),
    ("/v1/recommend", {"customer_id": "x" * 257}),
    ("/v1/recommend", {"shoe_size": 44}),
    ("/v1/recommend", []),
    ("/v1/recommend/batch", {"customers": [{}]}),
    ("/v1/recommend/batch", {"columns": {"recency": [1, 2]}}),
    ("/v1/recommend/batch", {"customers": [{}], "columns": {"recency": [1]}}),
    ("/v1/recommend/batch", {"customers": None, "columns": {"recency": [1]}}),
    ("/v1/recommend/batch", {}),
    ("/v1/recommend/batch", {"customers": []}),
    ("/v1/recommend/batch", {"columns": {}}),
    ("/v1/recommend/batch", {"columns": {"recency": []}}),
    ("/v1/recommend/batch", {"customers": [{}], "include_probabilities": 1}),
    ("/v1/recommend/batch", {"customers": [{}], "customer_ids": None}),
    ("/v1/recommend/batch", {"customers": [{}], "excluded_actions": ["no_action"]}),
    ("/v1/explain", {"features": {}, "action": "no_action"}),
    ("/v1/explain", {"action": "nope"}),
    ("/v1/explain", {"top": 0}),
    ("/v1/explain", {"top": 2.5}),
    ("/v1/explain", {"top": None, "action": None}),
    ("/v1/explain", {"explain": True}),
]


def test_validation_accepts_exactly_what_the_schema_accepts(lin) -> None:
    """The bodies' JSON schemas, checked by a JSON Schema validator, agree with the server."""
    from jsonschema import Draft202012Validator

    document = lin.get("/openapi.json").json()
    event = lin.post("/v1/recommend", json={}).json()["event_id"]
    cases = [*SCHEMA_CASES, *[(f"/v1/events/{event}/reward", {"reward": value})
                              for value in (1.0, 1000, 1000.5, -1e308, True, "1")]]  # fmt: skip
    for path, body in cases:
        template = "/v1/events/{event_id}/reward" if "/events/" in path else path
        ref = document["paths"][template]["post"]["requestBody"]["content"]["application/json"]
        validator = Draft202012Validator({**document, **ref["schema"]})
        status = lin.post(path, json=body).status_code
        assert validator.is_valid(body) == (status != 422), (path, body, status)


# ---------------------------------------------------------------------------- rewards
def test_rewards_are_idempotent(ppo) -> None:
    event = ppo.post("/v1/recommend", json={"features": customer()}).json()["event_id"]
    url = f"/v1/events/{event}/reward"
    first = ppo.post(url, json={"reward": 12.5})
    assert first.status_code == 200 and first.json()["duplicate"] is False
    assert first.json()["learned"] is False  # PPO does not learn online
    again = ppo.post(url, json={"reward": 12.5})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    conflict = ppo.post(url, json={"reward": 3})
    assert conflict.status_code == 409 and "12.5" in conflict.json()["detail"]
    assert logged(ppo)[event]["reward"] == 12.5


def test_reward_errors(ppo) -> None:
    unknown = ppo.post(f"/v1/events/{uuid.uuid4()}/reward", json={"reward": 1.0})
    assert unknown.status_code == 404
    assert ppo.post("/v1/events/not-a-uuid/reward", json={"reward": 1.0}).status_code == 422
    event = ppo.post("/v1/recommend", json={"features": customer()}).json()["event_id"]
    for raw in ('{"reward": NaN}', '{"reward": Infinity}', '{"reward": "1"}', "{}",
                '{"reward": 1, "bonus": 2}', '{"reward": true}'):  # fmt: skip
        response = ppo.post(f"/v1/events/{event}/reward", content=raw, headers=JSON)
        assert response.status_code == 422, raw
        assert response.json()["detail"][0]["loc"][0] == "body"


def test_bandit_learns_from_rewards_and_keeps_its_state_across_restarts(lin_run, tmp_path):
    state_dir = tmp_path / "state"
    with serving(lin_run, tmp_path, state_dir=state_dir) as client:
        service = client.app.state.service
        before = service.policy.gram_inverse_.copy()
        events = [client.post("/v1/recommend", json={"features": customer(recency=r)}).json()
                  for r in (3, 30, 300)]  # fmt: skip
        for k, event in enumerate(events):
            reply = client.post(f"/v1/events/{event['event_id']}/reward", json={"reward": k + 1.0})
            assert reply.json()["learned"] is True and reply.json()["n_updates"] == k + 1
        duplicate = client.post(f"/v1/events/{events[0]['event_id']}/reward", json={"reward": 1})
        assert duplicate.json()["learned"] is False and duplicate.json()["n_updates"] == 3
        after = service.policy.gram_inverse_.copy()
        assert not np.allclose(before, after)
        assert client.get("/v1/model").json()["n_updates"] == 3
    assert (state_dir / "CURRENT").is_file()
    with serving(lin_run, tmp_path, state_dir=state_dir) as restarted:
        assert restarted.get("/v1/model").json()["n_updates"] == 3
        np.testing.assert_array_equal(restarted.app.state.service.policy.gram_inverse_, after)
        # rewards of decisions made before the restart still count, once
        late = restarted.post(f"/v1/events/{events[2]['event_id']}/reward", json={"reward": 3})
        assert late.json()["duplicate"] is True
    with serving(lin_run, tmp_path) as without_state:  # the log alone holds what was learned
        assert without_state.get("/v1/model").json()["n_updates"] == 3
        np.testing.assert_array_equal(without_state.app.state.service.policy.gram_inverse_, after)
    (tmp_path / "fresh").mkdir()
    with serving(lin_run, tmp_path / "fresh") as fresh:  # the run itself is unchanged
        assert fresh.get("/v1/model").json()["n_updates"] == 0
        np.testing.assert_array_equal(fresh.app.state.service.policy.gram_inverse_, before)


def test_a_state_dir_of_another_model_is_refused(lin_run, tmp_path) -> None:
    from rec_env.agents.runs import load_run

    policy, _ = load_run(lin_run)
    PolicyStateStore(tmp_path / "state", "linucb", "0" * 64).save(policy, 5, 5)
    with (
        pytest.raises(ValueError, match="another model"),
        serving(lin_run, tmp_path, state_dir=tmp_path / "state"),
    ):
        pass


def test_a_model_file_that_does_not_match_its_sha256_is_refused(ppo_run, tmp_path) -> None:
    tampered = shutil.copytree(ppo_run, tmp_path / "tampered")
    with (tampered / "model.zip").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match="SHA-256"), serving(tampered, tmp_path):
        pass
    assert not (tmp_path / "decisions.db").exists()


# ---------------------------------------------------------------------------- explanations
def test_explain_endpoint(ppo) -> None:
    logged_before = ppo.app.state.service.log.counts()
    response = ppo.post("/v1/explain", json={"features": customer(), "action": "no_action"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "probability" and body["action"]["name"] == "no_action"
    assert body["explained_output"] == "P(no_action)"
    contributions = body["contributions"]
    assert {c["feature"] for c in contributions} == set(FEATURE_NAMES)
    total = body["base_value"] + sum(c["contribution"] for c in contributions)
    assert total == pytest.approx(body["model_output"], abs=1e-6)
    sizes = [abs(c["contribution"]) for c in contributions]
    assert sizes == sorted(sizes, reverse=True)
    top = ppo.post("/v1/explain", json={"features": customer(), "top": 3}).json()
    assert len(top["contributions"]) == 3
    assert ppo.post("/v1/explain", json={"features": customer(), "action": "x"}).status_code == 422
    push = ppo.post("/v1/explain", json={"features": customer(), "action": "discount_10_push"})
    assert push.status_code == 422 and "not allowed" in push.text
    assert ppo.app.state.service.log.counts() == logged_before  # explanations decide nothing


def test_recommend_with_explain_explains_the_served_action(ppo) -> None:
    body = ppo.post("/v1/recommend", json={"features": customer(), "explain": True}).json()
    explanation = body["explanation"]
    assert explanation["action"] == body["action"]
    assert explanation["model_output"] == pytest.approx(body["propensity"], abs=0.06)


def test_explanations_can_be_disabled(lin) -> None:
    before = lin.app.state.service.log.counts()
    requests = [("/v1/explain", {"features": customer()}),
                ("/v1/recommend", {"features": customer(), "explain": True})]  # fmt: skip
    for path, payload in requests:
        response = lin.post(path, json=payload)
        assert response.status_code == 503 and "disabled" in response.text
    assert lin.app.state.service.log.counts() == before  # no decision without its explanation


# ---------------------------------------------------------------------------- auth and admin
def test_api_key_protects_rewards_and_admin_endpoints(ppo) -> None:
    settings = ppo.app.state.settings.model_copy(update={"api_key": SecretStr("s3cret")})
    ppo.app.dependency_overrides[get_settings] = lambda: settings
    try:
        event = ppo.post("/v1/recommend", json={"features": customer()}).json()["event_id"]
        protected = [("post", f"/v1/events/{event}/reward", {"json": {"reward": 1.0}}),
                     ("get", "/v1/model", {}), ("get", "/metrics", {})]  # fmt: skip
        for method, url, kwargs in protected:
            assert getattr(ppo, method)(url, **kwargs).status_code == 401, url
            wrong = getattr(ppo, method)(url, headers={"X-API-Key": "nope"}, **kwargs)
            assert wrong.status_code == 401, url
            assert getattr(ppo, method)(url, headers={"X-API-Key": "s3cret"}, **kwargs).is_success
        assert ppo.get("/health").status_code == 200
        assert ppo.post("/v1/explain", json={"features": customer()}).status_code == 200
    finally:
        ppo.app.dependency_overrides.clear()


def test_model_health_and_metrics(ppo, ppo_run) -> None:
    info = ppo.get("/v1/model").json()
    run = json.loads((ppo_run / "run.json").read_text())
    assert info["sha256"] == run["files"]["model.zip"] and info["algorithm"] == "ppo"
    assert [a["name"] for a in info["actions"]] == run["action_names"]
    assert [f["name"] for f in info["features"]] == list(FEATURE_NAMES)
    assert info["features"][0]["high"] == FEATURES[0].high
    assert info["exploration"] == {"kind": "epsilon", "epsilon": 0.05, "temperature": None,
                                   "seed": 0}  # fmt: skip
    assert info["online"] is False and info["n_updates"] == 0
    assert ppo.get("/health").json() == {"status": "ok", "model_version": info["model_version"]}
    event = ppo.post("/v1/recommend", json={"features": customer()}).json()["event_id"]
    for _ in range(2):
        ppo.post(f"/v1/events/{event}/reward", json={"reward": 2.0})
    metrics = ppo.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'recenv_http_requests_total{method="POST",path="/v1/recommend",status="200"}' in text
    assert 'path="/v1/events/{event_id}/reward"' in text  # templates, not raw ids
    assert "recenv_http_request_duration_seconds_bucket" in text
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert float(values["recenv_decisions_total"]) >= 1
    assert float(values['recenv_rewards_total{outcome="recorded"}']) >= 1
    assert float(values['recenv_rewards_total{outcome="duplicate"}']) >= 1


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_work_offline(lin, page) -> None:
    """The pages load their scripts, styles and icon from this server, and name no other host."""
    html = lin.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)|url: ?["']([^"']+)""", html.text)
    urls = [first or second for first, second in urls]
    assert "/openapi.json" in urls and any(url.endswith(".js") for url in urls)
    assert not re.search(r"(https?:)?//[\w.-]+", html.text), html.text  # no host, no CDN
    for url in urls:
        assert lin.get(url).status_code == 200, url


def test_unexpected_errors_are_500_without_a_traceback(lin_run, tmp_path) -> None:
    class BrokenService:
        def __getattr__(self, name):
            raise RuntimeError("boom")

    app = create_app(ServeSettings(model_dir=lin_run, db=tmp_path / "d.db", explain=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        loaded, app.state.service = app.state.service, BrokenService()
        response = client.post("/v1/recommend", json={"features": customer()})
        app.state.service = loaded
        assert response.status_code == 500
        assert response.json() == {"detail": "internal server error"}
        assert "boom" not in response.text and "Traceback" not in response.text


def test_the_recommend_lane_answers_as_the_documented_route(lin_run, tmp_path) -> None:
    """``POST /v1/recommend`` skips FastAPI's routing, not its limits, metrics or errors."""
    from fastapi import FastAPI

    app = create_app(ServeSettings(model_dir=lin_run, db=tmp_path / "d.db", explain=False,
                                   max_body_bytes=2048))  # fmt: skip
    outer = FastAPI()
    outer.mount("/api", app)  # under a prefix: FastAPI's route serves it
    body = {"features": customer(), "customer_id": "c-9"}
    with TestClient(app) as client, TestClient(outer) as mounted:
        lane, routed = (
            client.post("/v1/recommend", json=body),
            mounted.post("/api/v1/recommend", json=body),
        )
        assert lane.status_code == routed.status_code == 200
        assert lane.headers["content-type"] == routed.headers["content-type"]
        assert lane.json().keys() == routed.json().keys()
        assert int(lane.headers["content-length"]) == len(lane.content)
        for answer in (client.post("/v1/recommend", json={"recency": -1}),
                       mounted.post("/api/v1/recommend", json={"recency": -1})):  # fmt: skip
            assert answer.status_code == 422 and "recency" in answer.json()["detail"][0]["loc"]
        big = client.post("/v1/recommend", content=b" " * 4096, headers=JSON)
        assert big.status_code == 413 and "max-body-bytes" in big.json()["detail"]
        metrics = client.get("/metrics").text
        served = [line for line in metrics.splitlines() if 'path="/v1/recommend"' in line]
        assert any('status="200"' in line and line.endswith(" 2") for line in served), (
            served
        )  # both ways
        assert any('status="422"' in line for line in served), served
        assert any('status="413"' in line for line in served), served
    with TestClient(app):  # a body sent in chunks, without a length, is counted: 413 unread
        sent: list[dict] = []
        chunks = iter([{"type": "http.request", "body": b" " * 1500, "more_body": True}] * 3)

        async def receive() -> dict:
            return next(chunks)

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v1/recommend", "query_string": b"",
                 "headers": [(b"transfer-encoding", b"chunked")]}  # fmt: skip
        anyio.run(app, scope, receive, send)
        assert sent[0]["status"] == 413 and b"max-body-bytes" in sent[1]["body"]
    outside = TestClient(app).post("/v1/recommend", json=body)  # outside its lifespan
    assert outside.status_code == 503 and outside.json() == {"detail": "the model is not loaded"}


def test_openapi_schema_is_complete(lin) -> None:
    schema = lin.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            ok = operation["responses"]["200"]["content"]
            assert ok, (method, path)
            if method == "post":
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                assert body["$ref"].rsplit("/", 1)[-1] in components, path
                assert "422" in operation["responses"], path
    features = components["CustomerFeatures"]
    assert "required" not in features  # any subset; the rest is filled in
    assert set(features["properties"]) == set(FEATURE_NAMES)
    assert all("If left out: " in p["description"] for p in features["properties"].values())
    assert features["additionalProperties"] is False
    assert features["properties"]["recency"]["maximum"] == 730
    assert features["properties"]["consent_sms"]["enum"] == [0, 1]
    assert all(p["description"] for p in features["properties"].values())
    for name in ("RecommendRequest", "BatchRecommendRequest", "ExplainRequest", "RewardRequest",
                 "RecommendResponse", "BatchRecommendResponse", "ExplainResponse",
                 "RewardResponse"):  # fmt: skip
        assert components[name]["examples"], name
    assert "APIKeyHeader" in schema["components"]["securitySchemes"]
    reward = schema["paths"]["/v1/events/{event_id}/reward"]["post"]
    assert {"401", "404", "409", "422"} <= set(reward["responses"])
    assert schema["paths"]["/v1/model"]["get"]["security"]
    assert "security" not in schema["paths"]["/v1/recommend"]["post"]
