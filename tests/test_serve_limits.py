"""Resource limits and reward bounds of the decision service: the body limit (413), the value
budget that refuses huge batches before parsing them (422), and the reward range that keeps a
poisoning reward out of the log and out of an online bandit."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from rec_env.agents.explain import population_background
from rec_env.agents.training import train
from rec_env.catalog import ActionTable, load_catalog
from rec_env.features import FEATURE_NAMES
from rec_env.serve import ServeSettings, create_app
from rec_env.serve.limits import BodyLimitMiddleware, ValueBudget, _scan
from rec_env.serve.schemas import EXAMPLE_FEATURES
from rec_env.serve.validation import build_validators

JSON = {"content-type": "application/json"}
TABLE = ActionTable.from_catalog(load_catalog("strategy"))


@pytest.fixture(scope="module")
def ucb_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ucb1"
    return train("ucb1", steps=1024, out=out, eval_customers=50, final_customers=50,
                 hyperparams={"n_envs": 128})  # fmt: skip


@contextmanager
def serving(run: Path, directory: Path, **settings) -> Iterator[TestClient]:
    directory.mkdir(parents=True, exist_ok=True)
    settings = {"db": directory / "decisions.db", "seed": 0, "explain": False, **settings}
    with TestClient(create_app(ServeSettings(model_dir=run, **settings))) as client:
        yield client


@pytest.fixture(scope="module")
def client(ucb_run, tmp_path_factory) -> Iterator[TestClient]:
    directory = tmp_path_factory.mktemp("limits")
    with serving(ucb_run, directory, max_body_bytes=64 * 1024, max_batch=100) as client:
        yield client


def validators(max_batch: int = 10_000):
    return build_validators(TABLE.names, "no_action", max_batch, -1000.0, 1000.0)


def tiny_rows(n: int) -> bytes:
    return b'{"customers": [' + b",".join([b"{}"] * n) + b"]}"


# ---------------------------------------------------------------------------- body limit
class _App:
    """An ASGI app that reads its whole body, counting the receive calls."""

    def __init__(self) -> None:
        self.called = False
        self.body = b""

    async def __call__(self, scope, receive, send) -> None:
        self.called = True
        while True:
            message = await receive()
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _call(middleware, headers, chunks):
    received, sent = [], []

    async def receive():
        received.append(1)
        chunk = chunks[len(received) - 1]
        return {"type": "http.request", "body": chunk, "more_body": len(received) < len(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    await middleware(scope, receive, send)
    return len(received), sent


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    app = _App()
    middleware = BodyLimitMiddleware(app, max_body_bytes=1000)
    headers = [(b"content-length", b"50000000")]
    n_received, sent = asyncio.run(_call(middleware, headers, [b"x"] * 5))
    assert n_received == 0 and not app.called
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    assert b"1000 bytes" in sent[1]["body"]


def test_a_chunked_body_is_counted_and_reading_stops_past_the_limit() -> None:
    chunks = [b"x" * 400] * 1000  # 400 kB sent without a Content-Length
    app = _App()
    middleware = BodyLimitMiddleware(app, max_body_bytes=1000)
    headers = [(b"transfer-encoding", b"chunked")]
    n_received, sent = asyncio.run(_call(middleware, headers, chunks))
    assert n_received == 3  # 1,200 bytes > 1,000: no fourth chunk is read
    assert sent[0]["status"] == 413 and len(app.body) == 800
    small = _App()
    n_received, sent = asyncio.run(_call(BodyLimitMiddleware(small, 1000), [], [b"x" * 400] * 2))
    assert n_received == 2 and sent[0]["status"] == 200 and len(small.body) == 800


def test_a_declared_length_within_the_limit_passes_untouched() -> None:
    app = _App()
    headers = [(b"content-length", b"5")]
    n_received, sent = asyncio.run(_call(BodyLimitMiddleware(app, 1000), headers, [b"hello"]))
    assert (n_received, sent[0]["status"], app.body) == (1, 200, b"hello")


def test_large_bodies_get_413_on_every_endpoint_and_nothing_is_logged(client) -> None:
    logged = client.app.state.service.log.counts()
    big = json.dumps({"customers": [EXAMPLE_FEATURES] * 400}).encode()  # ~190 kB > 64 kB
    event = client.post("/v1/recommend", json=EXAMPLE_FEATURES).json()["event_id"]
    for path in ("/v1/recommend", "/v1/recommend/batch", "/v1/explain",
                 f"/v1/events/{event}/reward"):  # fmt: skip
        response = client.post(path, content=big, headers=JSON)
        assert response.status_code == 413, path
        assert "65536 bytes" in response.json()["detail"]
    assert client.app.state.service.log.counts()[0] == logged[0] + 1  # the one decision
    metrics = client.get("/metrics").text
    assert 'status="413"' in metrics


# ---------------------------------------------------------------------------- value budget
def test_the_million_row_attack_is_refused_before_parsing_with_bounded_memory() -> None:
    batch = validators().batch
    attack = tiny_rows(1_000_000)  # 3 MB, within the body limit
    calls = []
    adapter = batch._adapter

    class Spy:
        def validate_json(self, raw):
            calls.append(len(raw))
            return adapter.validate_json(raw)

    batch._adapter = Spy()
    tracemalloc.start()
    try:
        with pytest.raises(RequestValidationError) as caught:
            batch.parse(attack)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    error = caught.value.errors()[0]
    assert error["loc"] == ("body", "customers") and error["type"] == "too_long"
    assert "at most 10000 items" in error["msg"]
    assert calls == []  # pydantic never saw the body
    assert peak < 16 * 2**20  # scratch memory of the scan, not a million parsed rows
    # more objects than a valid batch has: scanned too, though its values are within budget
    for raw, loc in ((tiny_rows(90_000), ("body", "customers")),
                     (b'{"columns": {"recency": [' + b"[]," * 20_000 + b"[]]}}",
                      ("body", "columns"))):  # fmt: skip
        with pytest.raises(RequestValidationError) as caught:
            batch.parse(raw)
        assert caught.value.errors()[0]["loc"] == loc
    batch.parse(tiny_rows(10_000))  # the limit itself is fine
    assert calls == [len(tiny_rows(10_000))]


def test_the_scan_stops_once_over_budget() -> None:
    budget = ValueBudget(tokens=1000, opens=1000, reason="test")
    scan = _scan(tiny_rows(1_000_000), budget)
    assert 1000 < scan.tokens < 2 * 2**18  # one 256 KiB chunk, not 2,000,001 tokens


def test_the_batch_limit_of_the_settings_is_checked_before_the_rows(client) -> None:
    for rows, status in ((100, 200), (101, 422)):
        response = client.post("/v1/recommend/batch", content=tiny_rows(rows), headers=JSON)
        assert response.status_code == status, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "customers"]
    ids = client.post("/v1/recommend/batch", json={"customers": [{}], "customer_ids": ["a"] * 101})
    assert ids.status_code == 422 and ids.json()["detail"][0]["loc"] == ["body", "customer_ids"]
    column = client.post("/v1/recommend/batch", json={"columns": {"recency": [1] * 101}})
    assert column.json()["detail"][0]["loc"] == ["body", "columns", "recency"]


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        (b'{"features": {"recency": [' + b"[]," * 2000 + b"[]]}}", ["body", "features"]),
        (b"[" + b"{}," * 2000 + b"{}]", ["body"]),
        (b'{"excluded_actions": [' + b'"discount_10_sms",' * 300 + b'"no_action"]}',
         ["body", "excluded_actions"]),
    ],
)  # fmt: skip
def test_single_customer_bodies_with_too_many_values_are_422(client, raw, loc) -> None:
    for path in ("/v1/recommend", "/v1/explain"):
        response = client.post(path, content=raw, headers=JSON)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == loc


def test_tokens_inside_strings_do_not_count() -> None:
    text = '{"customer_id": "a", "description": "' + ",[{" * 5000 + '\\\\", "recency": 3}'
    body = validators().recommend.parse(text.encode())
    assert body.features == {"recency": 3.0}
    raw = b'{"a": "x\\",[{", "b": [1, 2]}'  # an escaped quote does not end the string
    budget = ValueBudget(tokens=4, opens=4)
    assert budget.needs_scan(raw)  # 7 counted in and out of strings
    assert _scan(raw, budget).tokens == 4  # { , [ ,
    assert budget.excess(raw) is None


def test_the_scan_names_the_field_holding_the_values() -> None:
    budget = ValueBudget(tokens=100, opens=100, reason="test")
    raw = b'{"customer_ids": ["a,b"], "zz": [' + b"0," * 500 + b"0]}"
    error = budget.excess(raw)
    assert error is not None and error["loc"] == ("body", "zz")
    assert error["type"] == "too_many_values"


# ---------------------------------------------------------------------------- rewards
def test_rewards_outside_the_range_are_422_and_neither_logged_nor_learned(
    ucb_run, tmp_path
) -> None:
    with serving(ucb_run, tmp_path, reward_min=-5.0, reward_max=5.0) as client:
        event = client.post("/v1/recommend", json=EXAMPLE_FEATURES).json()["event_id"]
        url = f"/v1/events/{event}/reward"
        for raw in ("5.000001", "-5.5", "1e308", "-1e308", "1e999", "true"):
            response = client.post(url, content=f'{{"reward": {raw}}}', headers=JSON)
            assert response.status_code == 422, raw
            assert response.json()["detail"][0]["loc"] == ["body", "reward"]
        assert client.get("/v1/model").json()["n_updates"] == 0
        assert client.app.state.service.log.counts()[1] == 0
        assert client.post(url, json={"reward": 5}).json()["learned"] is True  # bounds included
        schema = client.get("/openapi.json").json()["components"]["schemas"]["RewardRequest"]
        assert schema["properties"]["reward"]["minimum"] == -5.0
        assert schema["properties"]["reward"]["maximum"] == 5.0


def _customers(n: int, seed: int) -> dict[str, list[float]]:
    obs = population_background(n, seed=seed).astype(np.float64).round(4)
    return {name: obs[:, j].tolist() for j, name in enumerate(FEATURE_NAMES)}


def _finite_state(client: TestClient) -> bool:
    arrays = client.app.state.service.policy.learned_arrays()
    return bool(arrays) and all(np.isfinite(array).all() for array in arrays.values())


def test_the_poisoning_attack_changes_no_decision_and_no_explanation(ucb_run, tmp_path) -> None:
    """Issue 10's attack: one reward of 1e308 made its arm win 95 % of decisions, and two on the
    same arm put inf into the state. Replayed against a served UCB1 beside a control server
    that never sees it, the bandits end equal."""
    outcomes = {}
    for name in ("control", "attacked"):
        with serving(ucb_run, tmp_path / name, explain=True, state_dir=tmp_path / name / "s") as c:
            served = c.post("/v1/recommend/batch", json={"columns": _customers(40, seed=1)})
            events, actions = served.json()["event_ids"], served.json()["action_indices"]
            for k, event in enumerate(events[:30]):
                assert c.post(f"/v1/events/{event}/reward", json={"reward": k % 7 - 2.0}).is_success
            if name == "attacked":
                arm = max(set(actions[30:]), key=actions[30:].count)
                poisoned = [e for e, a in zip(events[30:], actions[30:], strict=True) if a == arm]
                assert len(poisoned) >= 2
                for event in poisoned[:2]:  # two on the same arm: inf in a naive mean
                    for value in ("1e308", "-1e308", "1000.5"):
                        reply = c.post(f"/v1/events/{event}/reward",
                                       content=f'{{"reward": {value}}}', headers=JSON)  # fmt: skip
                        assert reply.status_code == 422
                        assert reply.json()["detail"][0]["loc"] == ["body", "reward"]
            assert _finite_state(c)
            probe = {"columns": _customers(200, seed=2), "include_probabilities": True}
            decided = c.post("/v1/recommend/batch", json=probe).json()
            explained = c.post("/v1/explain", json={"features": EXAMPLE_FEATURES}).json()
            model = c.get("/v1/model").json()
            outcomes[name] = (decided["action_indices"], decided["probabilities"], explained,
                              model["n_updates"], c.app.state.service.log.counts()[1])  # fmt: skip
        with serving(ucb_run, tmp_path / name, state_dir=tmp_path / name / "s") as restarted:
            assert _finite_state(restarted)  # nor after a restart from the state and the log
    assert outcomes["attacked"] == outcomes["control"]
    assert outcomes["control"][3] == outcomes["control"][4] == 30
    assert all(np.isfinite(c["contribution"]) for c in outcomes["attacked"][2]["contributions"])


def test_a_reward_for_an_unknown_event_is_checked_for_range_first(client) -> None:
    response = client.post(f"/v1/events/{uuid.uuid4()}/reward", json={"reward": 1e300})
    assert response.status_code == 422
