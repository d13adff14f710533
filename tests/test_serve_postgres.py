"""The decision log in PostgreSQL, shared by several ``recenv serve`` replicas.

Runs against the server named by ``RECENV_TEST_POSTGRES_URL`` (``.ci/run`` starts one and sets
it); each test gets a fresh schema. Without the variable every test skips with the reason; with
it, a server that cannot be reached (or a missing psycopg) fails the test, so CI cannot pass
without PostgreSQL.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rec_env.agents.baselines import RandomPolicy
from rec_env.cli.main import app
from rec_env.datasets.decision_log import read_decision_log
from rec_env.datasets.decision_log_backend import (
    connect_postgres,
    connect_sqlite,
    describe,
    postgres_url,
)
from rec_env.features import FEATURE_NAMES
from rec_env.serve import DecisionService, ServeSettings
from rec_env.serve.database_lock import DatabaseLock
from rec_env.serve.decision_log import (
    ColumnarDecisions,
    DecisionLog,
    LateRewardError,
    RewardBatchError,
    RewardConflictError,
)
from rec_env.serve.log_follower import catch_up
from rec_env.serve.rewards import service_close_windows, service_record_rewards
from rec_env.serve.schemas import EXAMPLE_FEATURES
from tests.served_runs import CHANNELS, TABLE, A, uniform_bandit_run, write_run

URL_VARIABLE = "RECENV_TEST_POSTGRES_URL"
DAY = 86_400.0
runner = CliRunner()


def _server_url() -> str:
    """The test server's URL; skip without one, fail if the one given cannot be used.

    ``.ci/run`` always gives one, so a server that did not start fails CI instead of skipping.
    """
    url = os.environ.get(URL_VARIABLE)
    if not url:
        pytest.skip(f"no PostgreSQL server: {URL_VARIABLE} is not set (.ci/run sets it)")
    try:
        import psycopg
    except ImportError:
        pytest.fail(f"{URL_VARIABLE} is set but psycopg is not installed (recenv[postgres])")
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        pytest.fail(
            f"{URL_VARIABLE} is set but PostgreSQL at {describe(url)} is unreachable: {exc}"
        )
    return url


@pytest.fixture
def url() -> Iterator[str]:
    """A fresh, empty schema of the test server, as a URL whose search path is that schema."""
    import psycopg

    server = _server_url()
    schema = f"recenv_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in server else "?"
    yield f"{server}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def log(url) -> Iterator[DecisionLog]:
    log = DecisionLog(url)
    log.register_model("m-1", "random", "0" * 64, TABLE.names, action_channels=CHANNELS)
    yield log
    log.close()


def write(log: DecisionLog, n: int, seed: int = 0, **contract) -> list[str]:
    rng = np.random.default_rng(seed)
    return log.log_decisions(
        "m-1", 0, rng.random((n, len(FEATURE_NAMES))), np.ones((n, A), dtype=bool),
        np.full((n, A), 1.0 / A), rng.integers(0, A, n), sampler_seed=seed, **contract,
    )  # fmt: skip


def write_columnar(log: DecisionLog, n: int, **contract) -> list[str]:
    decisions = ColumnarDecisions(np.arange(n) % A, np.full(n, 0.5), np.ones(A, dtype=bool))
    return log.log_columnar("m-1", 0, np.zeros((n, len(FEATURE_NAMES))), decisions, **contract)


# ---------------------------------------------------------------------------- the log
def test_a_url_is_a_url_even_through_a_path() -> None:
    folded = str(Path("postgresql://u:secret@db.example:5432/recenv"))
    assert postgres_url(folded) == "postgresql://u:secret@db.example:5432/recenv"
    assert postgres_url("postgres://h/d") == "postgresql://h/d"
    assert postgres_url("decisions.db") is None
    assert describe("postgresql://u:secret@h/d") == "postgresql://u:***@h/d"
    assert ServeSettings(model_dir=".", db=folded).db == postgres_url(folded)


def test_the_log_is_created_reopened_and_another_version_refused(url) -> None:
    first = DecisionLog(url)
    second = DecisionLog(url)  # replicas: no OS lock, one identity
    DatabaseLock(url).release()
    assert first.shared and second.shared and first.log_id == second.log_id
    assert first.wal_bytes() == 0
    first.close()
    second.close()
    assert sql(url, "SELECT version FROM log_schema") == [(5,)]
    sql(url, "UPDATE log_schema SET version = 99")
    with pytest.raises(ValueError, match="schema 99, expected 5"):
        DecisionLog(url)


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"postgresql://recenv:\*\*\*@127.0.0.1:1/x: cannot"):
        DecisionLog("postgresql://recenv:secret@127.0.0.1:1/x", timeout=1.0)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_staged_batch_holds_exactly_its_rows(backend, tmp_path, request) -> None:
    if backend == "sqlite":
        connection = connect_sqlite(tmp_path / "stage.db", timeout=1.0)
    else:
        connection = connect_postgres(request.getfixturevalue("url"), timeout=5.0)
    columns = (("name", "text"), ("k", "int8"), ("x", "float8"))
    rows = [("a\tb", 1, 0.1), ("c\\d", -(2**40), float("inf")), ("é", 3, 1e-300)]
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.stage("staged", columns, [("old", 0, 0.0)])
        connection.stage("staged", columns, rows)  # replaces the rows
        assert connection.execute("SELECT * FROM staged ORDER BY k").fetchall() == sorted(
            rows, key=lambda row: row[1]
        )
        connection.execute("CREATE TABLE appended (name TEXT, k BIGINT, x DOUBLE PRECISION)")
        connection.insert_rows("appended", columns, rows)
        connection.insert_rows("appended", columns, rows[:1])
        assert connection.execute("SELECT COUNT(*) FROM appended").fetchone()[0] == 4
        connection.execute("COMMIT")
        left = 0 if backend == "postgresql" else 3  # PostgreSQL's is emptied at commit
        assert connection.execute("SELECT COUNT(*) FROM staged").fetchone()[0] == left
    finally:
        connection.close()


def test_decisions_and_rewards_round_trip(log) -> None:
    rows = write(log, 5, seed=3)
    columnar = write_columnar(log, 4)
    receipt = log.record_reward(rows[0], 2.5)
    assert (receipt.seq, receipt.duplicate) == (1, False)
    assert log.record_reward(rows[0], 2.5).duplicate
    with pytest.raises(RewardConflictError):
        log.record_reward(rows[0], 3.0)
    assert log.record_reward(columnar[2], 1.0).seq == 2
    decision = log.decision(rows[1])
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(decision.features, rng.random((5, 16))[1])  # float64 bytes
    assert log.decision(columnar[3]).action == 3 % A
    assert [d.event_id for _, d, _ in log.rewards_after(0, "m-1")] == [rows[0], columnar[2]]
    assert log.counts() == (9, 2) and log.last_reward_seq() == 2
    assert log.sampler_draws(3) == 5


def test_batch_rewards_are_all_or_nothing_and_numbered_in_order(log) -> None:
    events = write(log, 6)
    batch = log.record_rewards([events[2], events[0], events[2]], [1.0, 2.0, 1.0])
    assert (batch.recorded, batch.duplicates, batch.first_seq) == (2, 1, 1)
    with pytest.raises(RewardBatchError, match="item 1"):
        log.record_rewards([events[3], events[0]], [1.0, 9.0])  # a conflict: nothing recorded
    assert log.counts()[1] == 2
    replayed = [(seq, d.event_id) for seq, d, _ in log.rewards_after(0, "m-1")]
    assert replayed == sorted([(1, min(events[0], events[2])), (2, max(events[0], events[2]))])


def test_a_batch_numbers_only_its_new_rewards_gaplessly_after_the_others(log) -> None:
    old = write(log, 3)
    log.record_reward(old[0], 1.0)
    log.record_reward(old[1], 2.0)
    assert log.close_windows(time.time() + 2 * DAY, DAY) == 1  # old[2]: the default, seq 3
    events = write(log, 40, seed=1)  # ids of one request: in position order
    log.record_reward(events[6], 6.0)  # seq 4
    picked = [events[7], old[0], events[5], old[2], old[1], events[6], events[7]]
    batch = log.record_rewards(picked, [7.0, 1.0, 5.0, 3.0, 2.0, 6.0, 7.0])
    assert (batch.recorded, batch.duplicates, batch.late, batch.first_seq) == (2, 4, [3], 5)
    assert batch.recorded_sum == 12.0
    rows = sql(log.path, "SELECT seq, event_id FROM rewards WHERE seq > 4 ORDER BY seq")
    assert rows == [(5, events[5]), (6, events[7])]  # no gap for events[6], recorded before
    assert sql(log.path, "SELECT event_id, reward FROM late_rewards") == [(old[2], 3.0)]
    with pytest.raises(RewardBatchError, match="item 2") as error:
        log.record_rewards([events[8], events[9], old[0]], [8.0, 9.0, 4.0])
    assert error.value.field == "reward"
    assert log.counts()[1] == 6  # nothing of the refused batch
    assert log.record_rewards([events[8]], [8.0]).first_seq == 7  # staging left nothing
    assert log.record_reward(events[9], 9.0).seq == 8  # the trigger numbers single rewards
    assert [s for s, _, _ in log.rewards_after(0, "m-1")] == list(range(1, 9))


def test_batches_of_two_writers_become_visible_in_seq_order(url) -> None:
    log = DecisionLog(url)
    log.register_model("m-1", "random", "0" * 64, TABLE.names, action_channels=CHANNELS)
    events = write(log, 1_200)
    other = DecisionLog(url)
    seen: list[list[int]] = []
    done = threading.Event()

    def post(writer: DecisionLog, share: list[str]) -> None:
        for start in range(0, len(share), 100):
            chunk = share[start : start + 100]
            writer.record_rewards(chunk, [1.0] * len(chunk))

    def watch() -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as reader:
            while not done.is_set():
                rows = reader.execute("SELECT seq FROM rewards ORDER BY seq").fetchall()
                seen.append([s for (s,) in rows])

    threads = [
        threading.Thread(target=post, args=(log, events[0::2])),
        threading.Thread(target=post, args=(other, events[1::2])),
    ]
    watcher = threading.Thread(target=watch)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()
    other.close()
    seen.append([s for (s,) in sql(url, "SELECT seq FROM rewards ORDER BY seq")])
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in seen)  # never a hole
    assert len(seen[-1]) == 1_200 and len({len(seqs) for seqs in seen}) > 2
    log.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_batch_of_parts_sorts_new_duplicate_late_and_conflicting_items(
    backend, tmp_path, request, monkeypatch
) -> None:
    from rec_env.serve import decision_log as decision_log_module

    now = [1_000 * DAY]
    monkeypatch.setattr(decision_log_module, "time", type("T", (), {"time": lambda: now[0]}))
    db = tmp_path / "parts.db" if backend == "sqlite" else request.getfixturevalue("url")
    log = DecisionLog(db)
    log.register_model("m-1", "random", "0" * 64, TABLE.names, action_channels=CHANNELS)
    events = write(log, 6, window_seconds=7 * DAY)
    short = write(log, 2, seed=1, window_seconds=DAY)
    log.record_reward(events[0], 1.0, "x")
    now[0] += 2 * DAY  # short's windows are over, not yet closed
    picked = [events[0], events[0], events[1], short[0], events[1], short[0]]
    batch = log.record_rewards(
        picked, [1.0, 2.0, 3.0, 4.0, 3.0, 4.0], ["x", "y", None, "x", None, "x"]
    )
    assert (batch.recorded, batch.pending, batch.duplicates, batch.late) == (2, 2, 3, [3])
    parts = "SELECT event_id, part_id, reward FROM reward_parts ORDER BY event_id, part_id"
    stored = sorted([(events[0], "x", 1.0), (events[0], "y", 2.0), (events[1], "", 3.0)])
    late = [(short[0], "x", 4.0)]
    for items, index in [
        ([(events[2], 1.0, "a"), (events[0], 9.0, "x")], 1),  # recorded before
        ([(events[2], 1.0, "a"), (events[2], 2.0, "a")], 1),  # earlier in the batch
        ([(short[1], 1.0, "z"), (short[0], 5.0, "x"), (short[0], 4.0, "x")], 2),  # late
    ]:
        with pytest.raises(RewardBatchError) as error:
            log.record_rewards(*map(list, zip(*items, strict=True)))
        assert (error.value.index, error.value.kind) == (index, "conflict")
    assert sql_of(db, parts) == stored  # the refused batches left nothing
    assert log.close_windows(now[0] + 30 * DAY) == 8  # closed early: its clock says so
    batch = log.record_rewards([events[3], events[4]], [1.0, 2.0], ["q", None])
    assert (batch.recorded, batch.late) == (0, [0, 1])  # final: late though not over
    log.close()
    late += [(events[3], "q", 1.0), (events[4], "", 2.0)]
    late_parts = "SELECT event_id, part_id, reward FROM late_rewards ORDER BY event_id, part_id"
    assert sql_of(db, late_parts) == sorted(late)


def sql_of(db: Path | str, statement: str) -> list[tuple]:
    """Rows of a query on a SQLite file or a PostgreSQL URL."""
    if isinstance(db, str):
        return sql(db, statement)
    import sqlite3

    with sqlite3.connect(db) as connection:
        return connection.execute(statement).fetchall()


def test_windows_parts_activation_and_late_rewards(log, monkeypatch) -> None:
    from rec_env.serve import decision_log as decision_log_module

    now = [1_000 * DAY]
    monkeypatch.setattr(decision_log_module, "time", type("T", (), {"time": lambda: now[0]}))
    events = write(log, 3, window_seconds=7 * DAY) + write_columnar(log, 2, window_seconds=DAY)
    needs = write(log, 2, seed=1, window_seconds=DAY)
    log.terms = log.terms.__class__(None, True)
    required = write(log, 2, seed=2)
    assert log.activate([required[0]], activated_at=now[0] + DAY).activated == 1
    now[0] += DAY / 2
    log.record_reward(events[0], 4.0, "o1")
    log.record_reward(events[0], 1.5, "o2")
    assert log.record_rewards([events[3], events[3]], [2.0, 2.0], ["a", "a"]).duplicates == 1
    with pytest.raises(RewardConflictError):
        log.record_reward(required[1], 1.0)  # never activated
    assert log.close_windows(now[0] + 2 * DAY) == 4  # the one-day windows
    assert log.close_windows(now[0] + 8 * DAY) == 3
    with pytest.raises(LateRewardError):
        log.record_reward(events[0], 1.0, "o3")
    final = dict(sql(log.path, "SELECT event_id, reward FROM rewards"))
    assert final[events[0]] == 5.5 and final[events[3]] == 2.0 and final[needs[0]] == 0.0
    assert sql(log.path, "SELECT event_id, part_id FROM late_rewards") == [(events[0], "o3")]
    assert required[1] not in final
    assert [s for s, _, _ in log.rewards_after(0, "m-1")] == list(range(1, 8))


def test_two_writers_store_each_reward_once_with_gapless_seqs(url) -> None:
    log = DecisionLog(url)
    log.register_model("m-1", "random", "0" * 64, TABLE.names, action_channels=CHANNELS)
    events = write(log, 300)
    other = DecisionLog(url)
    results: list[list] = [[], []]

    def post(writer: DecisionLog, k: int) -> None:
        for i, event in enumerate(events):
            results[k].append(writer.record_reward(event, float(i % 7)))

    threads = [threading.Thread(target=post, args=(w, k)) for k, w in enumerate((log, other))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()
    seqs = sql(url, "SELECT seq FROM rewards ORDER BY seq")
    assert [s for (s,) in seqs] == list(range(1, 301))
    fresh = [r.seq for rs in results for r in rs if not r.duplicate]
    assert sorted(fresh) == list(range(1, 301))  # each event recorded by exactly one writer
    log.close()


# ---------------------------------------------------------------------------- readers
def test_export_and_ope_read_the_postgres_log(log, tmp_path) -> None:
    events = write(log, 40, seed=4)
    log.record_rewards(events, [float(i % 3) for i in range(40)])
    out = tmp_path / "log.parquet"
    result = runner.invoke(app, ["log", "export", "--db", str(log.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert table.column("event_id").to_pylist() == events
    assert table.column("reward").to_pylist() == [float(i % 3) for i in range(40)]
    loaded = read_decision_log(log.path, TABLE.names)  # what `recenv ope --log` reads
    assert len(loaded.data.rewards) == 40
    run = write_run(tmp_path / "random", RandomPolicy(A, action_names=TABLE.names))
    command = ["ope", "--log", str(log.path), "--policy", str(run), "--estimators", "ips"]
    result = runner.invoke(app, [*command, "--from-log", "--n-bootstrap", "20", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    mean = np.mean([i % 3 for i in range(40)])
    assert report["with_reward"] == 40
    assert report["estimates"][0]["value"] == pytest.approx(mean)  # the logged policy: weights 1


# ---------------------------------------------------------------------------- replicas
@pytest.fixture(scope="module")
def bandit_run(tmp_path_factory) -> Path:
    return uniform_bandit_run(tmp_path_factory.mktemp("runs") / "egreedy")


def replica(url: str, run: Path, seed: int, **settings) -> DecisionService:
    options = {"seed": seed, "explain": False, "window_close_interval": 0, **settings}
    return DecisionService.from_settings(ServeSettings(model_dir=run, db=url, **options))


def test_two_replicas_learn_every_reward_exactly_once(url, bandit_run) -> None:
    first = replica(url, bandit_run, seed=1, refresh_seconds=0)
    second = replica(url, bandit_run, seed=2, refresh_seconds=0)
    try:
        obs = np.tile([EXAMPLE_FEATURES[f] for f in FEATURE_NAMES], (30, 1))
        allowed = np.ones((30, A), dtype=bool)
        events = first.decide(obs, allowed).event_ids + second.decide(obs, allowed).event_ids
        rewards = np.random.default_rng(0).random(60).round(3)
        first.reward(events[0], rewards[0])  # posted to either replica
        outcome = second.reward(events[40], rewards[40])
        assert outcome.learned and outcome.n_updates == 2  # first's reward came first
        service_record_rewards(first, events[1:20], rewards[1:20].tolist())
        service_record_rewards(second, events[20:40], rewards[20:40].tolist())
        assert second.reward(events[0], rewards[0]).receipt.duplicate  # recorded once
        windowed = second.decide(obs[:5], allowed[:5], reward_window_days=1.0).event_ids
        service_close_windows(first, None, as_of=time.time() + 2 * DAY)  # default rewards
        for service in (first, second):
            catch_up(service)
            assert service.learner.n_updates == 46  # 41 posted, 5 closed windows
            assert service.learner.reward_seq == 46
        np.testing.assert_array_equal(first.policy.means_, second.policy.means_)
        np.testing.assert_array_equal(first.policy.counts_, second.policy.counts_)
        assert first.policy.counts_.sum() == 46 and len(windowed) == 5
        # a restarted replica replays the shared log to the same state
        third = replica(url, bandit_run, seed=3, refresh_seconds=0)
        try:
            np.testing.assert_array_equal(third.policy.means_, first.policy.means_)
        finally:
            third.close()
    finally:
        first.close()
        second.close()


def test_a_replica_follows_rewards_recorded_by_another(url, bandit_run) -> None:
    poster = replica(url, bandit_run, seed=1, refresh_seconds=0)
    follower = replica(url, bandit_run, seed=2, refresh_seconds=0.05)
    try:
        obs = np.tile([EXAMPLE_FEATURES[f] for f in FEATURE_NAMES], (10, 1))
        events = poster.decide(obs, np.ones((10, A), dtype=bool)).event_ids
        service_record_rewards(poster, events, [1.0] * 10)
        deadline = time.monotonic() + 30
        while follower.n_updates < 10:
            assert time.monotonic() < deadline, "the follower never caught up"
            time.sleep(0.02)
        np.testing.assert_array_equal(follower.policy.means_, poster.policy.means_)
    finally:
        poster.close()
        follower.close()


def test_a_replica_that_follows_and_records_learns_each_reward_once(url, bandit_run) -> None:
    busy = replica(url, bandit_run, seed=1, refresh_seconds=0.005)  # catches up all the time
    other = replica(url, bandit_run, seed=2, refresh_seconds=0)
    try:
        obs = np.tile([EXAMPLE_FEATURES[f] for f in FEATURE_NAMES], (40, 1))
        events = busy.decide(obs, np.ones((40, A), dtype=bool)).event_ids
        for i, event in enumerate(events):
            (busy if i % 2 else other).reward(event, float(i % 3))
        catch_up(busy)
        catch_up(other)
        assert busy.n_updates == other.n_updates == 40
        np.testing.assert_array_equal(busy.policy.counts_, other.policy.counts_)
    finally:
        busy.close()
        other.close()


def test_two_serve_processes_share_the_log_and_learn_alike(url, tmp_path) -> None:
    """Two real ``recenv serve`` replicas (uvicorn processes) on one PostgreSQL log.

    Decisions go to both, each reward to the replica that did not make the decision; both
    then hold the same policy, which is no longer the one they started from.
    """
    import httpx

    from rec_env.agents.bandits import EpsilonGreedy
    from tests.serve_process import running_server

    policy = EpsilonGreedy(n_actions=A, action_names=TABLE.names, random_state=0, epsilon=0.3,
                           decay=0.0, min_epsilon=0.0)  # fmt: skip
    run = write_run(tmp_path / "run", policy)
    consenting = {**EXAMPLE_FEATURES, **{f"consent_{c}": 1 for c in ("email", "sms", "push")}}
    body = {"features": consenting}
    options = ("--refresh-seconds", "0.1", "--no-explain", "--window-close-interval", "0")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running_server(run, tmp_path / "a", *options, "--seed", "1", db=url) as first,
        running_server(run, tmp_path / "b", *options, "--seed", "2", db=url) as second,
        httpx.Client(timeout=30) as client,
    ):
        replicas = (first.url, second.url)
        before = client.post(f"{first.url}/v1/recommend", json=body).json()["probabilities"]
        decided = []
        for k in range(40):
            answer = client.post(f"{replicas[k % 2]}/v1/recommend", json=body)
            assert answer.status_code == 200, answer.text
            decided.append(answer.json())
        for k, decision in enumerate(decided):  # the other replica records the reward
            reward = TABLE.names.index(decision["action"]["name"]) / A
            posted = client.post(
                f"{replicas[(k + 1) % 2]}/v1/events/{decision['event_id']}/reward",
                json={"reward": reward},
            )
            assert posted.status_code == 200, posted.text
        deadline = time.monotonic() + 60
        while any(client.get(f"{r}/v1/model").json()["n_updates"] < 40 for r in replicas):
            assert time.monotonic() < deadline, "a replica never learned every reward"
            time.sleep(0.1)
        assert [client.get(f"{r}/v1/model").json()["n_updates"] for r in replicas] == [40, 40]
        learned = [
            client.post(f"{r}/v1/recommend", json=body).json()["probabilities"] for r in replicas
        ]
    assert learned[0] == learned[1]  # the same state, learned in the same order
    assert learned[0] != before
    rewards = sql(url, "SELECT count(*), count(DISTINCT event_id) FROM rewards")
    decisions = sql(url, "SELECT count(*) FROM decisions")
    assert rewards == [(40, 40)] and decisions == [(43,)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_closing_windows_numbers_the_new_finals_gaplessly_in_decision_order(
    backend, tmp_path, request
) -> None:
    """A close skips decisions rewarded already and numbers the others after the last seq."""
    db = request.getfixturevalue("url") if backend == "postgres" else tmp_path / "d.db"
    log = DecisionLog(db)
    try:
        log.register_model("m-1", "random", "0" * 64, TABLE.names, action_channels=CHANNELS)
        plain, windowed, later = write(log, 50), write(log, 30, window_seconds=0.2), write(log, 20)
        log.record_reward(plain[3], 1.0)
        log.record_reward(later[5], 2.0)
        time.sleep(0.3)
        assert log.close_windows(time.time()) == 30  # the windowed request's own window
        assert log.close_windows(time.time() + 10, window_seconds=1.0) == 68  # the rest
        rows = sql_of(db, "SELECT seq, event_id FROM rewards ORDER BY seq")
        assert [seq for seq, _ in rows] == list(range(1, 101))
        order = {event: i for i, event in enumerate(plain + windowed + later)}
        closed = [order[event] for _, event in rows[2:]]
        assert closed[:30] == sorted(order[e] for e in windowed)
        assert closed[30:] == sorted(closed[30:]) and len(set(closed)) == 98
    finally:
        log.close()
