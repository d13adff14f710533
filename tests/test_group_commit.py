"""Group commit: concurrent requests share one transaction, and acknowledged means durable.

Each caller returns only once the transaction holding its rows committed; if that transaction
fails, every caller in it gets the error and none of their rows exists. A failure is forced by
a SQLite trigger that aborts the insert of one customer's decision, inside the shared
transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from rec_env.agents.explain import population_background
from rec_env.agents.training import train
from rec_env.catalog import ActionTable, load_catalog
from rec_env.features import FEATURE_NAMES
from rec_env.serve.app import create_app
from rec_env.serve.decision_log import DecisionLog
from rec_env.serve.group_commit import GroupCommit, committed
from rec_env.serve.service import DecisionService
from rec_env.serve.settings import ServeSettings

A = ActionTable.from_catalog(load_catalog("strategy")).n_actions
BOOM = "boom"
_TRIGGER = (
    "CREATE TRIGGER forced_failure BEFORE INSERT ON decisions "
    f"WHEN NEW.customer_id = '{BOOM}' BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
)


def one_decision(seed: int) -> dict:
    """The arrays of one customer's decision, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    probabilities = rng.random((1, A))
    probabilities /= probabilities.sum()
    return {
        "features": rng.random((1, len(FEATURE_NAMES))),
        "allowed": np.ones((1, A), dtype=bool),
        "probabilities": probabilities,
        "actions": np.array([int(rng.integers(A))]),
    }


def log_one(log: DecisionLog, customer: str, seed: int = 0) -> list[str]:
    """Log one decision for ``customer`` (sampler seed 7)."""
    return log.log_decisions("m1", 0, **one_decision(seed), customer_ids=[customer], sampler_seed=7)


def logged(db: Path) -> list[tuple[str, str]]:
    """``(event_id, customer_id)`` of every logged decision, read by a separate connection."""
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT event_id, customer_id FROM decisions").fetchall()


def request_rows(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT COUNT(*) FROM requests").fetchone()[0]


def wait_until(condition, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds (the threads of a test reach their wait)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


@pytest.fixture
def log(tmp_path) -> Iterator[DecisionLog]:
    log = DecisionLog(tmp_path / "decisions.db")
    yield log
    log.close()


# ------------------------------------------------------------------ GroupCommit alone
def test_threads_queued_during_a_transaction_share_the_next_one() -> None:
    groups: list[list[int]] = []
    first_started, release = threading.Event(), threading.Event()

    def transact(writes: list[int]) -> None:
        if not groups:  # hold the first transaction until the others are queued
            first_started.set()
            release.wait(10)
        groups.append(list(writes))

    group = GroupCommit(transact)
    threads = [threading.Thread(target=group.commit, args=(0,))]
    threads[0].start()
    first_started.wait(10)
    threads += [threading.Thread(target=group.commit, args=(k,)) for k in range(1, 5)]
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(group._queue) == 4)
    release.set()
    for thread in threads:
        thread.join(10)
    assert groups[0] == [0] and sorted(groups[1]) == [1, 2, 3, 4] and len(groups) == 2
    assert group.transactions == 2


def test_a_failed_transaction_fails_every_thread_in_it_and_only_them() -> None:
    first_started, release = threading.Event(), threading.Event()
    calls: list[list[str]] = []

    def transact(writes: list[str]) -> None:
        calls.append(list(writes))
        if len(calls) == 1:
            first_started.set()
            release.wait(10)
        if BOOM in writes:
            raise sqlite3.OperationalError("forced failure")

    group = GroupCommit(transact)
    outcomes: dict[str, str] = {}

    def caller(write: str) -> None:
        try:
            group.commit(write)
            outcomes[write] = "ok"
        except sqlite3.OperationalError as error:
            outcomes[write] = str(error)

    first = threading.Thread(target=caller, args=("first",))
    first.start()
    first_started.wait(10)
    others = [threading.Thread(target=caller, args=(w,)) for w in ("a", BOOM, "b")]
    for thread in others:
        thread.start()
    wait_until(lambda: len(group._queue) == 3)
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert outcomes == {"first": "ok", "a": "forced failure", BOOM: "forced failure",
                        "b": "forced failure"}  # fmt: skip
    group.commit("later")  # the failure does not stick
    assert calls[-1] == ["later"]


# ------------------------------------------------------------------ the decision log
def test_a_lone_caller_commits_at_once(log) -> None:
    ids = log_one(log, "c0")
    assert log._group.transactions == 1
    assert logged(log.path) == [(ids[0], "c0")]  # visible to another connection on return


def test_coroutines_ready_together_share_one_commit(log) -> None:
    async def decide_all() -> list[list[str]]:
        calls = [committed(lambda c=c: log_one(log, f"c{c}", c)) for c in range(8)]
        return await asyncio.gather(*calls)

    before = log._group.transactions
    answers = asyncio.run(decide_all())
    assert log._group.transactions == before + 1
    rows = logged(log.path)
    assert sorted(rows) == sorted((ids[0], f"c{c}") for c, ids in enumerate(answers))
    assert log.sampler_draws(7) == 8  # one count for the group, all of its draws


def test_a_failed_group_commit_fails_every_coroutine_in_it(log) -> None:
    log_one(log, "before")
    log._connection.execute(_TRIGGER)

    async def decide_all() -> list[object]:
        calls = [committed(lambda c=c: log_one(log, c)) for c in ("a", BOOM, "b")]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(decide_all())
    assert all(isinstance(o, sqlite3.IntegrityError) for o in outcomes), outcomes
    assert [customer for _, customer in logged(log.path)] == ["before"]
    assert request_rows(log.path) == 1 and log.sampler_draws(7) == 1
    assert [c for _, c in logged(log.path)] == ["before"]
    log_one(log, "after")  # the log still works
    assert sorted(c for _, c in logged(log.path)) == ["after", "before"]


def test_a_failed_group_commit_fails_every_thread_in_it(log) -> None:
    log._connection.execute(_TRIGGER)
    outcomes: dict[str, object] = {}

    def caller(customer: str) -> None:
        try:
            outcomes[customer] = log_one(log, customer)[0]
        except sqlite3.IntegrityError as error:
            outcomes[customer] = error

    with log._lock:  # the first caller leads and waits here; the others queue behind it
        threads = [threading.Thread(target=caller, args=(c,)) for c in ("lead", "a", BOOM, "b")]
        threads[0].start()
        wait_until(lambda: log._group._leading)
        for thread in threads[1:]:
            thread.start()
        wait_until(lambda: len(log._group._queue) == 3)
    for thread in threads:
        thread.join(10)
    assert isinstance(outcomes["lead"], str)
    assert all(isinstance(outcomes[c], sqlite3.IntegrityError) for c in ("a", BOOM, "b"))
    assert logged(log.path) == [(outcomes["lead"], "lead")]
    assert log._group.transactions == 2


def test_concurrent_threads_log_every_decision_exactly_once(log) -> None:
    results: list[list[str]] = []

    def caller(k: int) -> None:
        for j in range(20):
            results.append(log_one(log, f"t{k}-{j}", 100 * k + j))

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    rows = logged(log.path)
    assert len(rows) == 80 and len({event for event, _ in rows}) == 80
    assert {ids[0] for ids in results} == {event for event, _ in rows}
    assert log.sampler_draws(7) == 80


def test_same_seed_same_decisions(tmp_path) -> None:
    """Grouping changes when rows are committed, not what is logged: same inputs, same rows."""

    def run(directory: Path) -> list[tuple]:
        log = DecisionLog(directory / "d.db")

        async def decide_all() -> None:
            await asyncio.gather(
                *(committed(lambda c=c: log_one(log, f"c{c}", c)) for c in range(4))
            )

        asyncio.run(decide_all())
        log.close()
        with sqlite3.connect(directory / "d.db") as connection:
            return connection.execute(
                "SELECT customer_id, action, propensity FROM decisions ORDER BY customer_id"
            ).fetchall()

    first, second = tmp_path / "1", tmp_path / "2"
    first.mkdir(), second.mkdir()
    assert run(first) == run(second)


# ------------------------------------------------------------------ over HTTP
@pytest.fixture(scope="module")
def lin_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "linucb"
    return train("linucb", steps=512, out=out, eval_customers=20, final_customers=20,
                 hyperparams={"n_envs": 128})  # fmt: skip


def customer_body(k: int) -> dict:
    """Customer ``k``'s request: population features, and the failing id for ``k == 5``."""
    row = population_background(1, seed=k).astype(np.float64)[0].round(4)
    features = dict(zip(FEATURE_NAMES, row.tolist(), strict=True))
    return {"features": features, "customer_id": BOOM if k == 5 else f"c{k}"}


def test_concurrent_recommendations_are_acknowledged_only_once_durable(lin_run, tmp_path) -> None:
    settings = ServeSettings(model_dir=lin_run, db=tmp_path / "d.db", seed=0, explain=False)
    service = DecisionService.from_settings(settings)
    service.log._connection.execute(_TRIGGER)
    app = create_app(settings, service=service)

    async def post_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),  # closes the service at the end
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            posts = [client.post("/v1/recommend", json=customer_body(k)) for k in range(24)]
            return await asyncio.gather(*posts)

    responses = asyncio.run(post_all())
    acknowledged = {r.json()["event_id"] for r in responses if r.status_code == 200}
    assert responses[5].status_code == 500  # the forced failure
    rows = logged(tmp_path / "d.db")
    assert len(rows) == len({event for event, _ in rows})  # each decision logged once
    assert {event for event, _ in rows} == acknowledged  # ...and exactly the acknowledged ones
    assert BOOM not in {customer for _, customer in rows}
    assert all(r.status_code in (200, 500) for r in responses)
