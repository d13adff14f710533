"""The decision service for runs of the item and slate worlds: products, slates, propensities,
consent, validation, the decision log, rewards and online learning (FastAPI's TestClient)."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_bad_input
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rec_env import ITEM_ENV_ID
from rec_env.agents.integrity import policy_digests
from rec_env.agents.registry import make_bandit
from rec_env.agents.runs import RunInfo, write_run_info
from rec_env.agents.training import train
from rec_env.cli.main import app
from rec_env.datasets.decision_log_tables import iter_decision_tables
from rec_env.features import CHANNELS
from rec_env.serve import DecisionLog, ServeSettings, create_app
from rec_env.serve.decision_log import SCHEMA_VERSION
from rec_env.serve.exploration import Exploration
from rec_env.serve.item_sampling import (
    policy_weights,
    sample_item_actions,
    serving_probabilities,
)
from rec_env.serve.slates import SlateSampler
from rec_env.settings import EnvSettings

ITEM = EnvSettings(world="item")
SLATE = EnvSettings(world="slate")
SMALL_PPO = {"n_envs": 64, "n_steps": 16, "batch_size": 256, "n_epochs": 1}
NO_EMAIL = {"consent_email": 0, "consent_sms": 1, "consent_push": 1}
runner = CliRunner()


# ---------------------------------------------------------------------------- runs
def _train(algorithm: str, settings: EnvSettings, out: Path) -> Path:
    return train(algorithm, settings, steps=1024, out=out, hyperparams=SMALL_PPO,
                 eval_every=1024, eval_customers=20, final_customers=20)  # fmt: skip


@pytest.fixture(scope="module")
def item_ppo_run(tmp_path_factory) -> Path:
    return _train("ppo", ITEM, tmp_path_factory.mktemp("runs") / "item-ppo")


@pytest.fixture(scope="module")
def slate_ppo_run(tmp_path_factory) -> Path:
    return _train("ppo", SLATE, tmp_path_factory.mktemp("runs") / "slate-ppo")


@pytest.fixture(scope="module")
def hybrid_run(tmp_path_factory) -> Path:
    """A hybrid LinUCB run of the item world (untrained: it learns online here)."""
    directory = tmp_path_factory.mktemp("runs") / "hybrid"
    policy = make_bandit("hybrid_linucb", ITEM.build_model(), seed=0)
    policy.save(directory)
    info = RunInfo(
        algorithm="hybrid_linucb", env_id=ITEM_ENV_ID, env=ITEM.to_dict(),
        feature_names=list(policy.features.names), action_names=list(policy.action_names),
        hyperparameters={}, seed=0, recenv_version="0", **policy_digests(directory, policy),
    )  # fmt: skip
    write_run_info(directory, info)
    return directory


@contextmanager
def serving(run: Path, directory: Path, **settings) -> Iterator[TestClient]:
    settings = {"db": directory / "decisions.db", "seed": 0, **settings}
    with TestClient(create_app(ServeSettings(model_dir=run, **settings))) as client:
        yield client


@pytest.fixture(scope="module")
def item(item_ppo_run, tmp_path_factory) -> Iterator[TestClient]:
    # one background customer: explanations of customers near it cost 2^(a few) coalitions
    with serving(item_ppo_run, tmp_path_factory.mktemp("item-serve"), n_background=1) as client:
        yield client


@pytest.fixture(scope="module")
def slate(slate_ppo_run, tmp_path_factory) -> Iterator[TestClient]:
    with serving(slate_ppo_run, tmp_path_factory.mktemp("slate-serve"), n_background=1) as client:
        yield client


def logged(client: TestClient) -> dict[str, dict]:
    """The export of the client's decision log, by event id."""
    db = client.app.state.settings.db
    return {r["event_id"]: r for t in iter_decision_tables(db) for r in t.to_pylist()}


def random_customers(n: int, seed: int) -> dict[str, list[float]]:
    """``n`` customers as columns: some strategy and item features, every consent mix."""
    rng = np.random.default_rng(seed)
    consents = rng.integers(0, 2, (n, len(CHANNELS)))
    columns = {f"consent_{c}": consents[:, j].tolist() for j, c in enumerate(CHANNELS)}
    columns["recency"] = rng.uniform(0, 200, n).round(2).tolist()
    columns["purchases_footwear"] = rng.uniform(0, 5, n).round(2).tolist()
    columns["days_since_beauty"] = rng.uniform(0, 365, n).round(1).tolist()
    return columns


# ---------------------------------------------------------------------------- item runs
def test_an_item_decision_names_the_product_channel_offer_and_propensity(item) -> None:
    customer = {"recency": 12, "consent_email": 1, "purchases_footwear": 2, "top_actions": 3}
    response = item.post("/v1/recommend", json={**customer, "customer_id": "c-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    action = body["action"]
    assert body["model_version"].startswith("ppo-")
    assert action["channel"] in ("email", "none")  # no SMS or push consent given
    if action["product"] is not None:
        assert set(action["product"]) == {"id", "name", "category", "price"}
        assert action["name"] == f"{action['product']['id']}:{action['channel']}"
        assert action["offer"] == "recommendation" and action["discount"] == 0.0
    probabilities = body["probabilities"]
    assert len(probabilities) == 3 and list(probabilities.values()) == sorted(
        probabilities.values(), reverse=True
    )
    assert 0.0 < body["propensity"] <= 1.0
    if action["name"] in probabilities:
        assert probabilities[action["name"]] == body["propensity"]
    filled = {f["feature"]: f for f in body["filled_in"]}
    assert "purchases_footwear" not in filled and "recency" not in filled
    assert filled["days_since_footwear"]["value"] == 365.0
    assert filled["recommended_apparel"]["value"] == 0.0
    assert "no history" in filled["purchases_beauty"]["reason"]


def test_consent_holds_whatever_the_caller_leaves_out(item, slate) -> None:
    """No e-mail without e-mail consent, and no channel at all whose consent is left out."""
    for client in (item, slate):
        columns = {"recency": [5.0] * 300, **{k: [v] * 300 for k, v in NO_EMAIL.items()}}
        request = {"columns": columns}
        body = client.post("/v1/recommend/batch", json=request).json()
        assert "email" not in body["channels"] and set(body["channels"]) <= {"sms", "push", "none"}
        silent = client.post("/v1/recommend/batch", json={"columns": {"recency": [1.0] * 200}})
        assert set(silent.json()["channels"]) == {"none"}  # unknown consent is no consent
    columns = random_customers(1000, seed=3)
    body = item.post("/v1/recommend/batch", json={"columns": columns}).json()
    for j, channel in enumerate(body["channels"]):
        assert channel == "none" or columns[f"consent_{channel}"][j] == 1


def test_item_features_are_validated_by_name_and_range(item) -> None:
    cases = {
        "purchases_footwear_x": 1,  # not a category of the product table
        "purchases_footwear": 21,  # above its bound (20)
        "days_since_beauty": -1,
        "recommended_toys_games": True,
    }
    for name, value in cases.items():
        for body in ({"features": {name: value}}, {name: value}):
            response = item.post("/v1/recommend", json=body)
            assert response.status_code == 422, (name, response.text)
            assert name in response.json()["detail"][0]["loc"], response.text
    batch = item.post("/v1/recommend/batch", json={"customers": [{}, {"purchases_nope": 1}]})
    assert batch.status_code == 422
    assert batch.json()["detail"][0]["loc"] == ["body", "customers", 1, "purchases_nope"]
    unknown = item.post("/v1/recommend", json={"excluded_products": ["P9999"]})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"][1] == (
        "excluded_products"
    )


def test_excluded_products_and_actions_are_never_served(item) -> None:
    columns = {"consent_email": [1] * 500, "consent_sms": [1] * 500}
    first = item.post("/v1/recommend/batch", json={"columns": columns}).json()
    common = [p for p, _ in Counter(p for p in first["products"] if p).most_common(3)]
    request = {"columns": columns, "excluded_products": common[:2],
               "excluded_actions": [f"{common[2]}:email"]}  # fmt: skip
    body = item.post("/v1/recommend/batch", json=request).json()
    assert not set(common[:2]) & set(body["products"])
    assert f"{common[2]}:email" not in body["actions"]


def test_batch_rows_and_columns_decide_alike(item_ppo_run, tmp_path) -> None:
    columns = random_customers(50, seed=4)
    rows = [{k: v[i] for k, v in columns.items()} for i in range(50)]
    decided = []
    for layout, customers in (("columns", columns), ("customers", rows)):
        (tmp_path / layout).mkdir()
        with serving(item_ppo_run, tmp_path / layout) as client:
            body = client.post("/v1/recommend/batch", json={layout: customers}).json()
            decided.append((body["actions"], body["propensities"]))
    assert decided[0] == decided[1]


def test_the_log_holds_the_product_and_propensity_and_rewards_close_the_loop(item) -> None:
    request = {"columns": random_customers(20, seed=5), "include_probabilities": True}
    body = item.post("/v1/recommend/batch", json=request).json()
    assert len(body["top_actions"]) == 20
    event = body["event_ids"][0]
    reward = item.post(f"/v1/events/{event}/reward", json={"reward": 23.5})
    assert reward.status_code == 200 and reward.json()["learned"] is False  # PPO is offline
    assert item.post(f"/v1/events/{event}/reward", json={"reward": 23.5}).json()["duplicate"]
    assert item.post(f"/v1/events/{event}/reward", json={"reward": 1.0}).status_code == 409
    log = logged(item)
    for i, event_id in enumerate(body["event_ids"]):
        row = log[event_id]
        assert row["action"] == body["actions"][i]
        assert row["propensity"] == body["propensities"][i]
        product = body["products"][i]
        assert product is None or row["action"].startswith(product)
        assert row["purchases_footwear"] == request["columns"]["purchases_footwear"][i]
        assert row[f"allowed_{row['action']}"]
    assert log[event]["reward"] == 23.5
    assert not any(name.startswith("prob_P0") for name in log[event])  # 601 would be waste


def test_a_hybrid_bandit_learns_item_rewards_and_replays_them(hybrid_run, tmp_path) -> None:
    customer = {"consent_email": 1, "consent_sms": 1, "purchases_beauty": 1.5}
    with serving(hybrid_run, tmp_path) as client:
        events = [client.post("/v1/recommend", json=customer).json()["event_id"] for _ in range(5)]
        for k, event in enumerate(events):
            answer = client.post(f"/v1/events/{event}/reward", json={"reward": float(k)}).json()
            assert answer["learned"] and answer["n_updates"] == k + 1
        learned = client.app.state.service.policy.learned_arrays()
    with serving(hybrid_run, tmp_path) as client:  # the log is replayed at startup
        assert client.get("/v1/model").json()["n_updates"] == 5
        replayed = client.app.state.service.policy.learned_arrays()
    for name, array in learned.items():
        np.testing.assert_array_equal(replayed[name], array)


def test_the_schema_is_the_item_world_s(item) -> None:
    schema = item.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    features = components["CustomerFeatures"]["properties"]
    assert features["purchases_footwear"]["maximum"] == 20
    assert features["days_since_footwear"]["maximum"] == 365
    assert len(features) == 16 + 3 * 12
    assert "P0001" in json.dumps(components["RecommendRequest"])
    paths = schema["paths"]
    ok = paths["/v1/recommend"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/ItemRecommendResponse")
    model = item.get("/v1/model").json()
    assert model["world"] == "item" and model["actions"][1]["product"]["id"] == "P0001"


def near_background(client: TestClient, **changes: float) -> dict[str, float]:
    """The server's background customer with all consent and ``changes``: cheap to explain."""
    service = client.app.state.service
    row = service.explainer.background[0].tolist()
    customer = dict(zip(service.world.feature_names, row, strict=True))
    return {**customer, "consent_email": 1.0, "consent_sms": 1.0, "consent_push": 1.0, **changes}


def test_item_explanations_say_why_this_product_as_recenv_explain_does(item) -> None:
    customer = near_background(item, purchases_footwear=2.0, recency=3.0)
    response = item.post("/v1/explain", json={"features": customer, "top": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "log_odds" and body["product"] is None and body["slate"] is None
    action, runner_up = body["action"], body["runner_up"]
    assert body["explained_output"] == f"log P({action['name']})/P({runner_up['name']})"
    assert action["name"] != runner_up["name"] and len(body["contributions"]) == 3
    # the agents layer's explanation, which recenv explain prints
    service = item.app.state.service
    obs = service.world.customers.fill_rows([customer]).observations
    expected = service.explainer.explain(obs)
    assert expected.contrast.chosen == action["index"]
    assert body["model_output"] == pytest.approx(expected.values.output)
    top = expected.top_features(3)
    assert body["grouping"] == expected.groups.level == "feature"  # near the background
    assert [c["feature"] for c in body["contributions"]] == [
        service.world.feature_names[j] for j in top
    ]
    assert all(c["features"] is None and c["value"] is not None for c in body["contributions"])
    full = item.post("/v1/explain", json={"features": customer}).json()["contributions"]
    total = body["base_value"] + sum(c["contribution"] for c in full)
    assert total == pytest.approx(body["model_output"], abs=1e-4)  # float32 network
    runner = item.post("/v1/explain", json={"features": customer, "action": runner_up["name"]})
    assert runner.json()["action"]["name"] == runner_up["name"]


def test_item_explanations_refuse_what_they_cannot_explain(item, hybrid_run, tmp_path) -> None:
    customer = near_background(item)
    chosen = item.post("/v1/explain", json={"features": customer}).json()["action"]
    excluded = {"features": customer, "excluded_products": [chosen["product"]["id"]]}
    assert item.post("/v1/explain", json=excluded).json()["action"] != chosen
    refused = item.post("/v1/explain", json={**excluded, "action": chosen["name"]})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "action"]
    silent = item.post("/v1/explain", json={"features": {"consent_email": 0}})
    assert silent.status_code == 422  # no consent: nothing but no_action to contrast
    served = item.post("/v1/recommend", json={"explain": True})
    assert served.status_code == 422 and served.json()["detail"][0]["loc"] == ["body", "explain"]
    with serving(hybrid_run, tmp_path) as bandit:  # no network to explain
        answer = bandit.post("/v1/explain", json={})
        assert answer.status_code == 503 and "hybrid_linucb" in answer.json()["detail"]


# ---------------------------------------------------------------------------- slate runs
def test_a_slate_decision_lists_k_products_with_their_probabilities(slate) -> None:
    body = slate.post("/v1/recommend", json={"consent_email": 1, "consent_push": 1}).json()
    message = body["slate"]
    assert body["propensity"] == message["probability"] > 0.0
    if message["channel"] != "none":
        assert [p["position"] for p in message["products"]] == [1, 2, 3, 4]
        assert len({p["id"] for p in message["products"]}) == 4
        positions = np.prod([p["probability"] for p in message["products"]])
        assert message["probability"] <= positions + 1e-12


def test_slate_probabilities_match_how_often_slates_are_served(slate_ppo_run, tmp_path) -> None:
    """ε = 0.5: each message's probability is its channel's times its positions', the logged
    probabilities are how often slates and first products are served, and the log holds them."""
    n, epsilon = 4000, 0.5
    customer = {"consent_email": [1] * n, "consent_sms": [1] * n, "recency": [3.0] * n}
    with serving(slate_ppo_run, tmp_path, epsilon=epsilon) as client:
        body = client.post("/v1/recommend/batch", json={"columns": customer}).json()
        reward = client.post(f"/v1/events/{body['event_ids'][0]}/reward", json={"reward": 4.0})
        assert reward.status_code == 200
        log = logged(client)
    # none, e-mail and SMS are open: the policy's channel gets 1 - ε + ε/3, the others ε/3
    channel_shares = {1 - epsilon + epsilon / 3, epsilon / 3}
    messages = []
    for i, (slate, channel) in enumerate(zip(body["slates"], body["channels"], strict=True)):
        messages.append((tuple(slate), channel))
        positions = body["position_probabilities"][i]
        assert len(positions) == len(slate) == (0 if channel == "none" else 4)
        share = body["propensities"][i] / np.prod(positions)
        assert min(abs(share - c) for c in channel_shares) < 1e-12
        row = log[body["event_ids"][i]]
        assert [row[f"slate_{k}"] for k in range(1, 5)] == (list(slate) or [None] * 4)
        logged_positions = [row[f"slate_probability_{k}"] for k in range(1, 1 + len(slate))]
        assert logged_positions == positions and row["propensity"] == body["propensities"][i]
    assert log[body["event_ids"][0]]["reward"] == 4.0
    (best, seen), *_ = Counter(messages).most_common(1)
    probability = body["propensities"][messages.index(best)]
    assert abs(seen / n - probability) < 4 * np.sqrt(probability * (1 - probability) / n)
    first = Counter(slate[0] for slate, _ in messages if slate)
    sent = sum(first.values())
    for product, count in first.most_common(2):
        i = next(j for j, (slate, _) in enumerate(messages) if slate and slate[0] == product)
        p = body["position_probabilities"][i][0]
        assert abs(count / sent - p) < 4 * np.sqrt(p * (1 - p) / sent)


def test_the_schema_is_the_slate_world_s(slate) -> None:
    paths = slate.get("/openapi.json").json()["paths"]
    ok = paths["/v1/recommend/batch"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/SlateBatchRecommendResponse")
    assert slate.get("/v1/model").json()["slate_size"] == 4


def test_slate_explanations_contrast_the_first_product_with_the_best_left_out(slate) -> None:
    customer = near_background(slate)
    response = slate.post("/v1/explain", json={"features": customer})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "score_margin" and body["action"] is None
    ids = [product["id"] for product in body["slate"]]
    assert len(ids) == 4 and body["product"]["id"] == ids[0] and body["rival"]["id"] not in ids
    assert body["explained_output"] == f"score({ids[0]}) - score({body['rival']['id']})"
    assert body["model_output"] > 0.0  # the policy ranks its first product above the others
    second = slate.post("/v1/explain", json={"features": customer, "action": ids[1]}).json()
    assert second["product"]["id"] == ids[1]
    schema = slate.get("/openapi.json").json()["paths"]["/v1/explain"]["post"]["responses"]
    assert schema["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ItemExplainResponse"
    )


def test_a_deterministic_slate_policy_logs_probability_one(slate_ppo_run, tmp_path) -> None:
    customer = {"consent_email": 1, "consent_sms": 1, "consent_push": 1}
    with serving(slate_ppo_run, tmp_path, exploration="none") as client:
        bodies = [client.post("/v1/recommend", json=customer).json() for _ in range(3)]
    assert all(b["propensity"] == 1.0 for b in bodies)
    assert all(p["probability"] == 1.0 for b in bodies for p in b["slate"]["products"])
    assert len({json.dumps(b["slate"]) for b in bodies}) == 1


# ---------------------------------------------------------------------------- samplers
def test_item_sampling_draws_from_the_serving_probabilities() -> None:
    rng = np.random.default_rng(0)
    n, n_actions = 20_000, 7
    scores = np.repeat(rng.normal(size=(1, n_actions)) * 2, n, axis=0)
    channel = np.array([3, 0, 1, 2, 0, 1, 2])  # action 0 sends nothing
    consent = np.repeat([[True, False, True]], n, axis=0)
    request = np.array([True, True, True, True, False, True, True])
    for kind in ("epsilon", "temperature", "none"):
        exploration = Exploration(kind, epsilon=0.2, temperature=2.0)
        weights = policy_weights(scores, logits=True)
        q = serving_probabilities(weights[:1], consent[:1], channel, request, exploration)[0]
        assert q[4] == q[2] == 0.0 and q.sum() == pytest.approx(1.0)  # excluded, no consent
        actions, propensities = sample_item_actions(
            weights, consent, channel, request, exploration, rng.random(n)
        )
        np.testing.assert_allclose(propensities, q[actions], rtol=1e-12)
        frequencies = np.bincount(actions, minlength=n_actions) / n
        assert np.all(frequencies[q == 0.0] == 0.0)
        assert np.abs(frequencies - q).max() < 4 * np.sqrt(0.25 / n)


@pytest.mark.parametrize("kind", ["epsilon", "temperature"])
def test_slate_probabilities_are_exact_and_sum_to_one(kind) -> None:
    """Every message of a small catalog, drawn often: each is served as often as its logged
    probability says, and the probabilities of all messages sum to 1."""
    from rec_env.agents.sb3.slate import SlateDecoder

    rng = np.random.default_rng(1)
    decoder = SlateDecoder(rng.normal(size=(5, 2)), 2, (0.0, 0.2), np.array([1, 1, 0, 1, 1], bool))
    sampler = SlateSampler(decoder, Exploration(kind, epsilon=0.6, temperature=1.5))
    n = 40_000
    vectors = np.repeat(rng.uniform(-1, 1, (1, decoder.action_dim)), n, axis=0)
    consent = np.repeat([[True, False, True]], n, axis=0)
    allowed = np.array([True, True, True, True, False])  # product 4 excluded, 2 out of stock
    drawn = sampler.sample(vectors, allowed & decoder.available, consent, rng.random((n, 5)))
    messages = list(
        zip(map(tuple, drawn.slates.tolist()), drawn.channels, drawn.discounts, strict=True)
    )
    probability = {}
    for message, p in zip(messages, drawn.propensities, strict=True):
        assert probability.setdefault(message, p) == pytest.approx(p, rel=1e-12)
    assert sum(probability.values()) == pytest.approx(1.0, abs=1e-3)
    assert not {s for s, *_ in messages} & {(2,), (4,)} and all(4 not in s for s, *_ in messages)
    for message, count in Counter(messages).items():
        p = probability[message]
        assert abs(count / n - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-4, message
    sent = drawn.channels != 3
    assert np.all(
        np.nanprod(drawn.position_probabilities[sent], axis=1) >= drawn.propensities[sent]
    )


# ---------------------------------------------------------------------------- log and CLI
def test_a_version_2_log_is_upgraded_and_a_newer_one_refused(tmp_path) -> None:
    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as connection:
        connection.executescript("""
            CREATE TABLE models (model_version TEXT PRIMARY KEY, algorithm TEXT NOT NULL,
                sha256 TEXT NOT NULL, action_names TEXT NOT NULL, registered_at REAL NOT NULL);
            CREATE TABLE requests (request_id INTEGER PRIMARY KEY, request_key TEXT NOT NULL
                UNIQUE, position_offset INTEGER NOT NULL, created_at REAL NOT NULL,
                model_version TEXT NOT NULL, policy_updates INTEGER NOT NULL, n INTEGER NOT NULL,
                features BLOB NOT NULL, allowed BLOB NOT NULL, probabilities BLOB NOT NULL);
            PRAGMA user_version = 2;
        """)  # fmt: skip
    log = DecisionLog(path)
    log.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        columns = {row[1] for row in connection.execute("PRAGMA table_info(requests)")}
        assert {"actions", "propensities", "slates", "slate_probabilities"} <= columns
        connection.execute("PRAGMA user_version = 6")
    with pytest.raises(ValueError, match="schema 6, expected 5"):
        DecisionLog(path)


def test_recenv_serve_refuses_what_it_cannot_serve(hybrid_run, tmp_path) -> None:
    run = tmp_path / "edited"
    run.mkdir()
    for name in ("policy.json", "state.npz", "run.json"):
        (run / name).write_bytes((hybrid_run / name).read_bytes())
    info = json.loads((run / "run.json").read_text())
    info["env"]["products"] = str(tmp_path / "gone.yaml")
    (run / "run.json").write_text(json.dumps(info))
    db = ["--db", str(tmp_path / "d.db"), "--port", "8799"]
    assert_bad_input(runner.invoke(app, ["serve", str(run), *db]), "gone.yaml")
    both = ["serve", str(hybrid_run), "--model", str(hybrid_run), *db]
    assert_bad_input(runner.invoke(app, both), "RUN", "--model")
    assert not (tmp_path / "d.db").exists()


def test_a_customer_far_from_the_background_is_explained_by_groups(item) -> None:
    """Too many differing features for one player each: the finest grouping that fits."""
    names = item.app.state.service.world.feature_names
    far = {name: 1.0 for name in names}
    response = item.post("/v1/explain", json={"features": far})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["grouping"] in ("category", "kind")
    total = body["base_value"] + sum(c["contribution"] for c in body["contributions"])
    assert total == pytest.approx(body["model_output"], abs=1e-4)
    groups = [c for c in body["contributions"] if c["features"] is not None]
    assert groups and all(c["value"] is None for c in groups)
    grouped = {feature for c in groups for feature in c["features"]}
    assert all(c["feature"] not in grouped for c in body["contributions"])
    explained = len(body["contributions"]) - len(groups) + len(grouped)
    assert explained == len(names)  # every feature is in exactly one player


def test_rules_and_holdout_are_refused_for_item_runs(item_ppo_run, tmp_path) -> None:
    """Strategy-world rules and holdouts would be silently ignored by an item run: refused."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("caps: [{max_messages: 1}]\n")
    for option, message in (({"holdout": 0.1}, "--holdout"), ({"rules": rules}, "--rules")):
        with (
            pytest.raises(ValueError, match=f"{message} applies to strategy runs"),
            serving(item_ppo_run, tmp_path, **option),
        ):
            pass
