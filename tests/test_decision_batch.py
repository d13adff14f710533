"""Single-customer requests that reach the event loop together are decided in one policy call.

Each keeps its own request row, event id and outcome: batching changes how many times the
policy is called, not what is drawn or logged. Requests are sent concurrently through
``httpx.ASGITransport``, so that they are all ready on the loop at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest

from rec_env.agents.explain import population_background
from rec_env.features import FEATURE_NAMES
from rec_env.serve import DecisionService, ServeSettings, create_app
from rec_env.serve.decision_batch import POLLS, RequestBatcher
from rec_env.serve.schemas import EXAMPLE_FEATURES
from tests.served_runs import uniform_bandit_run

N = 12


@pytest.fixture(scope="module")
def uniform_run(tmp_path_factory) -> Path:
    return uniform_bandit_run(tmp_path_factory.mktemp("runs") / "uniform")


def body(k: int, **extra: object) -> dict:
    """Customer ``k`` of the population, with id ``c<k>``."""
    row = population_background(1, seed=k).astype(np.float64)[0].round(4)
    return {"features": dict(zip(FEATURE_NAMES, row.tolist(), strict=True)),
            "customer_id": f"c{k}", **extra}  # fmt: skip


class CountingService:
    """Counts the calls of a service's policy (its probabilities)."""

    def __init__(self, service: DecisionService) -> None:
        self.calls: list[int] = []
        inner = service._probabilities

        def counted(obs: np.ndarray, allowed: np.ndarray) -> np.ndarray:
            self.calls.append(obs.shape[0])
            return inner(obs, allowed)

        service._probabilities = counted


def serve(run: Path, db: Path, bodies: list[dict], concurrent: bool, **settings: object):
    """Post ``bodies`` to a fresh server (together or one at a time); responses and calls."""
    config = ServeSettings(model_dir=run, db=db, seed=0, explain=False, **settings)
    service = DecisionService.from_settings(config)
    counter = CountingService(service)
    app = create_app(config, service=service)

    async def post_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            if concurrent:
                return await asyncio.gather(*(client.post("/v1/recommend", json=b) for b in bodies))
            return [await client.post("/v1/recommend", json=b) for b in bodies]

    return asyncio.run(post_all()), counter.calls


def logged(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT d.customer_id, d.action, d.propensity, r.n FROM decisions d "
            "JOIN requests r USING (request_id) ORDER BY d.customer_id"
        ).fetchall()


def test_requests_ready_together_share_one_policy_call(uniform_run, tmp_path) -> None:
    responses, calls = serve(uniform_run, tmp_path / "d.db", [body(k) for k in range(N)], True)
    assert [r.status_code for r in responses] == [200] * N
    assert sum(calls) == N and len(calls) < N  # several customers per call
    assert max(calls) > 1
    rows = logged(tmp_path / "d.db")
    assert len(rows) == N and all(n == 1 for *_, n in rows)  # one request row per HTTP call
    assert len({r.json()["event_id"] for r in responses}) == N


def test_batched_decisions_are_those_made_one_at_a_time(uniform_run, tmp_path) -> None:
    """Same seed, same order: the same draws, whether batched or not."""
    bodies = [body(k) for k in range(N)]
    together, calls = serve(uniform_run, tmp_path / "a.db", bodies, True)
    alone, single_calls = serve(uniform_run, tmp_path / "b.db", bodies, False)
    assert len(calls) < N and single_calls == [1] * N
    assert logged(tmp_path / "a.db") == logged(tmp_path / "b.db")
    assert [r.json()["action"] for r in together] == [r.json()["action"] for r in alone]


def test_a_refused_baseline_fails_its_request_alone(uniform_run, tmp_path) -> None:
    no_email = {**EXAMPLE_FEATURES, "consent_email": 0}
    bodies = [body(k, baseline_action="no_action") for k in range(N)]
    bodies[3] = {"features": no_email, "customer_id": "refused",
                 "baseline_action": "discount_15_email"}  # fmt: skip
    responses, calls = serve(uniform_run, tmp_path / "d.db", bodies, True)
    assert responses[3].status_code == 422
    assert responses[3].json()["detail"][0]["loc"] == ["body", "baseline_action"]
    assert all(r.status_code == 200 for i, r in enumerate(responses) if i != 3)
    assert sum(calls) == N - 1  # the refused customer drew nothing
    customers = [customer for customer, *_ in logged(tmp_path / "d.db")]
    assert "refused" not in customers and len(customers) == N - 1
    with sqlite3.connect(tmp_path / "d.db") as connection:
        (draws,) = connection.execute("SELECT draws FROM sampler_draws").fetchone()
    assert draws == N - 1


def test_the_recommend_lane_is_documented_and_counted(uniform_run, tmp_path) -> None:
    """The lane skips FastAPI's routing, not its documentation or the metrics."""
    config = ServeSettings(model_dir=uniform_run, db=tmp_path / "d.db", seed=0, explain=False)
    from fastapi.testclient import TestClient

    with TestClient(create_app(config)) as client:
        assert client.post("/v1/recommend", json=body(0)).status_code == 200
        assert client.get("/v1/recommend").status_code == 405
        assert "post" in client.get("/openapi.json").json()["paths"]["/v1/recommend"]
        metrics = client.get("/metrics").text
    assert 'path="/v1/recommend"' in metrics and 'status="200"' in metrics


# ------------------------------------------------------------------ RequestBatcher alone
def recording(calls: list[list[int]]):
    """A ``decide`` that records its batches and refuses request 13 alone."""

    def decide(requests: Sequence[int]) -> list[int | BaseException]:
        calls.append(list(requests))
        return [ValueError("unlucky") if r == 13 else 10 * r for r in requests]

    return decide


async def after(batcher: RequestBatcher, request: int, turns: int) -> int:
    """Submit ``request`` after ``turns`` turns of the event loop."""
    for _ in range(turns):
        await asyncio.sleep(0)
    return await batcher.submit(request)


def test_requests_that_arrive_within_the_polls_share_one_call() -> None:
    calls: list[list[int]] = []
    batcher = RequestBatcher(recording(calls), polls=4)

    async def main() -> list[int]:
        return await asyncio.gather(
            after(batcher, 1, 0), after(batcher, 2, 1), after(batcher, 3, 4),
            after(batcher, 4, 5), after(batcher, 5, 30),
        )  # fmt: skip

    assert asyncio.run(main()) == [10, 20, 30, 40, 50]
    assert calls == [[1, 2, 3], [4], [5]]  # the first batch closed in turn 5
    assert batcher.batches == 3


def test_without_polls_only_the_requests_ready_together_share_a_call() -> None:
    calls: list[list[int]] = []
    batcher = RequestBatcher(recording(calls), polls=0)

    async def main() -> list[int]:
        return await asyncio.gather(
            after(batcher, 1, 0), after(batcher, 2, 0), after(batcher, 3, 1)
        )

    assert asyncio.run(main()) == [10, 20, 30]
    assert calls == [[1, 2], [3]]


def test_a_request_refused_alone_does_not_fail_its_batch() -> None:
    calls: list[list[int]] = []
    batcher = RequestBatcher(recording(calls))

    async def main() -> list[object]:
        requests = (after(batcher, r, 0) for r in (12, 13, 14))
        return await asyncio.gather(*requests, return_exceptions=True)

    first, refused, last = asyncio.run(main())
    assert (first, last) == (120, 140) and isinstance(refused, ValueError)
    assert calls == [[12, 13, 14]]


def test_an_error_of_the_whole_batch_reaches_every_request() -> None:
    def broken(requests: Sequence[int]) -> list[int | BaseException]:
        raise RuntimeError("the policy failed")

    batcher = RequestBatcher(broken)

    async def main() -> list[object]:
        requests = (after(batcher, r, 0) for r in range(3))
        return await asyncio.gather(*requests, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(o, RuntimeError) for o in outcomes), outcomes


def test_a_lone_request_on_an_idle_loop_is_decided() -> None:
    calls: list[list[int]] = []
    batcher = RequestBatcher(recording(calls))
    assert asyncio.run(batcher.submit(7)) == 70 and calls == [[7]]
    assert POLLS >= 1
    with pytest.raises(ValueError, match="polls"):
        RequestBatcher(recording(calls), polls=-1)
