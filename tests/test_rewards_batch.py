"""Rewards in bulk and the reward window: ``/v1/rewards/batch``, ``/v1/rewards/close``,
``recenv rewards upload`` and ``recenv rewards close``, and the bias a closed window removes."""

from __future__ import annotations

import re
import sqlite3
import time
import types
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rec_env.agents.training import train
from rec_env.catalog import ActionTable, load_catalog
from rec_env.cli.main import app
from rec_env.datasets.decision_log_tables import export_decisions
from rec_env.features import FEATURE_NAMES
from rec_env.serve import ServeSettings, create_app
from rec_env.serve import decision_log as decision_log_module
from rec_env.serve.decision_log import (
    SCHEMA_VERSION,
    ColumnarDecisions,
    DecisionLog,
    LateRewardError,
    RewardBatchError,
)
from rec_env.serve.rewards import DAY_SECONDS, close_windows, parse_as_of
from rec_env.serve.schemas import EXAMPLE_FEATURES

TABLE = ActionTable.from_catalog(load_catalog("strategy"))
A = TABLE.n_actions
runner = CliRunner()
DAY = DAY_SECONDS


@pytest.fixture
def log(tmp_path) -> DecisionLog:
    log = DecisionLog(tmp_path / "decisions.db")
    log.register_model("linucb-abc", "linucb", "abc" * 21 + "a", TABLE.names)
    yield log
    log.close()


def write(log: DecisionLog, n: int, seed: int = 0) -> list[str]:
    """Log ``n`` row decisions drawn with ``seed``; their event ids."""
    rng = np.random.default_rng(seed)
    probabilities = np.full((n, A), 1.0 / A)
    return log.log_decisions(
        "linucb-abc", 0, rng.random((n, len(FEATURE_NAMES))), np.ones((n, A), dtype=bool),
        probabilities, rng.integers(0, A, n),
    )  # fmt: skip


def write_columnar(log: DecisionLog, n: int) -> list[str]:
    """Log ``n`` columnar decisions; their event ids."""
    decisions = ColumnarDecisions(
        np.zeros(n, dtype=np.int32), np.full(n, 0.5), np.ones(A, dtype=bool)
    )
    return log.log_columnar("linucb-abc", 0, np.zeros((n, len(FEATURE_NAMES))), decisions)


def next_id(event: str) -> str:
    """The event id of the position after ``event``'s in its request."""
    return f"{event[:-8]}{(int(event[-8:], 16) + 1) % (1 << 32):08x}"


def upper_case(events: list[str]) -> str:
    """One of ``events`` with its position in upper case (one whose position has a letter)."""
    event = next(e for e in events if not e[-8:].isdigit())
    return event[:-8] + event[-8:].upper()


def rewards_of(path: Path) -> dict[str, tuple[float, int | None]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT event_id, reward, defaulted FROM rewards").fetchall()
    return {event: (reward, defaulted) for event, reward, defaulted in rows}


def at(monkeypatch, seconds: float) -> None:
    """Make the decision log's clock read ``seconds``."""
    monkeypatch.setattr(decision_log_module, "time", types.SimpleNamespace(time=lambda: seconds))


# ---------------------------------------------------------------------------- the log
def test_a_batch_is_recorded_once_and_its_duplicates_change_nothing(log) -> None:
    events = write(log, 50) + write_columnar(log, 20)
    picked = [events[3], events[60], events[10], events[3]]  # the last is a duplicate
    batch = log.record_rewards(picked, [1.0, 2.0, 3.0, 1.0])
    assert (batch.recorded, batch.duplicates, batch.late) == (3, 1, [])
    assert batch.first_seq == 1 and batch.recorded_sum == 6.0
    replayed = [(s, d.event_id, r) for s, d, r in log.rewards_after(0, "linucb-abc")]
    expected = sorted([(events[3], 1.0), (events[60], 2.0), (events[10], 3.0)])  # id order
    assert replayed == [(k + 1, *item) for k, item in enumerate(expected)]
    again = log.record_rewards(picked, [1.0, 2.0, 3.0, 1.0])
    assert (again.recorded, again.duplicates, again.first_seq) == (0, 4, None)
    single = log.record_reward(events[60], 2.0)  # the single path agrees
    assert single.duplicate and single.seq == 1 + expected.index((events[60], 2.0))
    assert log.counts() == (70, 3)


@pytest.mark.parametrize(
    ("items", "index", "field"),
    [
        (lambda e: [(e[0], 1.0), (str(uuid.uuid4()), 1.0)], 1, "event_id"),
        (lambda e: [(e[0], 1.0), (e[1][:-1] + "z", 1.0)], 1, "event_id"),
        (lambda e: [(e[0], 1.0), (next_id(e[59]), 1.0)], 1, "event_id"),  # past the end
        (lambda e: [(e[0], 1.0), (next_id(e[39]), 1.0)], 1, "event_id"),
        (lambda e: [(e[0], 1.0), (upper_case(e[:40]), 1.0)], 1, "event_id"),
        (lambda e: [(e[0], 1.0), (e[3][:-8] + "+" + e[3][-7:], 1.0)], 1, "event_id"),
        (lambda e: [(e[1], 1.0), (e[2], 6.0), (e[3], 1.0), (e[3], 2.0)], 1, "reward"),
        (lambda e: [(e[2], 9.0), (e[1], 1.0)], 0, "reward"),  # e[2] has 5.0
        (lambda e: [(e[1], 1.0), (e[1], 2.0)], 1, "reward"),  # conflict within the batch
    ],
)
def test_a_bad_item_refuses_the_whole_batch_naming_it(log, items, index, field) -> None:
    events = write(log, 40) + write_columnar(log, 20)
    log.record_reward(events[2], 5.0)
    ids, values = zip(*items(events), strict=True)
    with pytest.raises(RewardBatchError) as error:
        log.record_rewards(list(ids), list(values))
    assert (error.value.index, error.value.field) == (index, field)
    assert log.counts()[1] == 1  # nothing of the batch was recorded


def test_closing_records_the_default_for_old_unrewarded_decisions_once(log, monkeypatch) -> None:
    at(monkeypatch, 1_000 * DAY)
    old = write(log, 30) + write_columnar(log, 10)
    at(monkeypatch, 1_006 * DAY)
    recent = write(log, 5, seed=1)
    log.record_reward(old[0], 7.0)
    log.record_reward(old[35], 4.0)
    assert close_windows(log, 7, default_reward=0.5, as_of=1_009 * DAY) == 38
    assert close_windows(log, 7, default_reward=0.5, as_of=1_009 * DAY) == 0  # once
    recorded = rewards_of(log.path)
    assert recorded[old[0]] == (7.0, None) and recorded[old[35]] == (4.0, None)
    assert all(recorded[e] == (0.5, 1) for e in old[1:35] + old[36:])
    assert not set(recent) & set(recorded)
    # late rewards never replace the default: refused alone, counted late in a batch
    with pytest.raises(LateRewardError, match="window closed"):
        log.record_reward(old[1], 0.5)
    batch = log.record_rewards([recent[0], old[2], old[36]], [1.0, 3.0, 2.0])
    assert (batch.recorded, batch.late) == (1, [1, 2])
    assert rewards_of(log.path)[old[2]] == (0.5, 1)
    assert log.record_reward(old[0], 7.0).duplicate  # a posted reward is still itself


def test_as_of_and_window_are_checked() -> None:
    assert parse_as_of("1970-01-02T00:00:00") == DAY == parse_as_of("86400")
    assert parse_as_of("1970-01-02T02:00:00+02:00") == DAY
    for bad in ("yesterday", "nan"):
        with pytest.raises(ValueError, match="as-of"):
            parse_as_of(bad)


def test_a_version_3_log_is_upgraded_to_mark_defaults(log, tmp_path) -> None:
    events = write(log, 10)
    log.record_reward(events[4], 2.0)
    log.close()
    with sqlite3.connect(log.path) as connection:  # back to the version-3 layout
        connection.executescript(
            "ALTER TABLE rewards DROP COLUMN defaulted; PRAGMA user_version = 3;"
        )
    upgraded = DecisionLog(log.path)
    try:
        assert close_windows(upgraded, 1, as_of=time.time() + 2 * DAY) == 9
    finally:
        upgraded.close()
    with sqlite3.connect(log.path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    recorded = rewards_of(log.path)
    assert recorded[events[4]] == (2.0, None) and recorded[events[5]] == (0.0, 1)


# ---------------------------------------------------------------------------- the bias
def simulated_log(log: DecisionLog, monkeypatch, seed: int) -> tuple[list[str], np.ndarray]:
    """4,000 decisions 10 days old; a customer buys with probability 0.1 for a profit of about
    30; only buyers post their reward. Returns the event ids and every customer's true reward."""
    rng = np.random.default_rng(seed)
    at(monkeypatch, 1_000 * DAY)
    events = write(log, 4_000, seed=seed)
    bought = rng.random(4_000) < 0.1
    truth = np.where(bought, rng.gamma(4.0, 7.5, 4_000), 0.0)
    buyers = np.flatnonzero(bought)
    log.record_rewards([events[i] for i in buyers], truth[buyers].tolist())
    return events, truth


def mean_logged_reward(path: Path) -> float:
    with sqlite3.connect(path) as connection:
        return float(connection.execute("SELECT AVG(reward) FROM rewards").fetchone()[0])


def test_closing_the_windows_removes_the_bias_of_buyers_only_rewards(
    log, monkeypatch, tmp_path
) -> None:
    _, truth = simulated_log(log, monkeypatch, seed=3)
    biased = mean_logged_reward(log.path)
    assert biased > 5 * truth.mean()  # only buyers: about 30 against about 3
    assert close_windows(log, 7, as_of=1_010 * DAY) == int((truth == 0).sum())
    unbiased = mean_logged_reward(log.path)
    assert unbiased == pytest.approx(truth.mean(), rel=1e-9)  # every decision, once
    assert abs(unbiased - 3.0) < 4 * truth.std() / np.sqrt(truth.size)  # the true mean
    out = tmp_path / "log.parquet"  # what recenv ope reads: every decision has its reward
    export_decisions(log.path, out, 100_000)
    exported = pq.read_table(out, columns=["reward"]).column("reward").to_numpy()
    assert exported.size == truth.size and exported.mean() == pytest.approx(truth.mean())


def test_the_simulation_is_seeded(tmp_path, monkeypatch) -> None:
    truths = []
    for k in range(2):
        log = DecisionLog(tmp_path / f"{k}.db")
        log.register_model("linucb-abc", "linucb", "abc" * 21 + "a", TABLE.names)
        try:
            truths.append(simulated_log(log, monkeypatch, seed=3)[1])
        finally:
            log.close()
    np.testing.assert_array_equal(*truths)


# ---------------------------------------------------------------------------- the CLI
def test_upload_records_a_csv_or_parquet_file_once(log, tmp_path, monkeypatch) -> None:
    at(monkeypatch, 1_000 * DAY)
    events = write(log, 100)
    log.close()
    csv = tmp_path / "results.csv"
    csv.write_text("event_id,reward\n" + "".join(f"{e.upper()},{i}\n" for i, e in
                                                 enumerate(events[:60])))  # fmt: skip
    parquet = tmp_path / "results.parquet"
    table = pa.table({"event_id": events[50:80], "reward": [float(i) for i in range(50, 80)]})
    pq.write_table(table, parquet)
    db = ["--db", str(log.path)]
    result = runner.invoke(app, ["rewards", "upload", str(csv), *db])
    assert result.exit_code == 0, result.output
    assert "recorded 60 rewards, 0 duplicates, 0 late" in result.output
    result = runner.invoke(app, ["rewards", "upload", str(parquet), *db])
    assert "recorded 20 rewards, 10 duplicates, 0 late" in result.output, result.output
    result = runner.invoke(app, ["rewards", "close", "--window-days", "7", "--as-of",
                                 "2000-01-01T00:00:00", *db])  # fmt: skip
    assert result.exit_code == 0 and "for 20 decisions" in result.output, result.output
    late = tmp_path / "late.parquet"
    rewards = [float(i) for i in range(70, 90)]  # 70-79 as recorded, 80-89 after the close
    pq.write_table(pa.table({"event_id": events[70:90], "reward": rewards}), late)
    result = runner.invoke(app, ["rewards", "upload", str(late), *db])
    assert "recorded 0 rewards, 10 duplicates, 10 late" in result.output, result.output
    recorded = rewards_of(log.path)
    assert len(recorded) == 100 and recorded[events[5]] == (5.0, None)
    assert recorded[events[85]] == (0.0, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("event_id,value\n{0},1\n", "no column reward"),
        ("event_id,reward\n{0},1\n{1},\n", "row 2: reward is empty"),
        ("event_id,reward\n{0},1\n{1},inf\n", "row 2: reward inf is not finite"),
        ("event_id,reward\n{0},1\n{1},abc\n", "reward must hold numbers"),
        ("event_id,reward\n{0},1\n{2},1\n", "row 2, event_id: no decision"),
        ("event_id,reward\n{0},1\n{0},2\n", "row 2, reward: event .* different reward"),
    ],
)
def test_upload_refuses_bad_input_with_one_line_and_writes_nothing(
    log, tmp_path, text, message
) -> None:
    events = write(log, 3)
    log.close()
    path = tmp_path / "results.csv"
    path.write_text(text.format(events[0], events[1], str(uuid.uuid4())))
    result = runner.invoke(app, ["rewards", "upload", str(path), "--db", str(log.path)])
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: ") and re.search(message, line), line
    assert rewards_of(log.path) == {}


def test_the_cli_refuses_a_missing_log_and_a_bad_as_of(tmp_path) -> None:
    path = tmp_path / "results.csv"
    path.write_text("event_id,reward\n")
    missing = ["--db", str(tmp_path / "none.db")]
    result = runner.invoke(app, ["rewards", "upload", str(path), *missing])
    assert result.exit_code == 2 and "no such decision log" in result.output
    assert not (tmp_path / "none.db").exists()
    result = runner.invoke(app, ["rewards", "close", "--window-days", "7", "--as-of", "soon"])
    assert result.exit_code == 2 and "as-of" in result.output
    result = runner.invoke(app, ["rewards", "close", "--window-days", "0", *missing])
    assert result.exit_code == 2


# ---------------------------------------------------------------------------- the API
@pytest.fixture(scope="module")
def lin_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "linucb"
    return train("linucb", steps=1024, out=out, eval_customers=50, final_customers=50,
                 hyperparams={"n_envs": 128})  # fmt: skip


def served(client: TestClient, n: int) -> list[str]:
    columns = {name: [value] * n for name, value in EXAMPLE_FEATURES.items()}
    body = client.post("/v1/recommend/batch", json={"columns": columns}).json()
    return body["event_ids"]


def test_the_batch_endpoint_records_learns_and_names_bad_items(lin_run, tmp_path) -> None:
    settings = ServeSettings(model_dir=lin_run, db=tmp_path / "d.db", seed=0, explain=False)
    with TestClient(create_app(settings)) as client:
        events = served(client, 30)
        items = [{"event_id": e, "reward": float(i)} for i, e in enumerate(events[:20])]
        reply = client.post("/v1/rewards/batch", json=items)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"recorded": 20, "duplicates": 0, "late": [], "pending": 0,
                                "learned": 20, "n_updates": 20}  # fmt: skip
        again = client.post("/v1/rewards/batch", json=items).json()
        assert (again["duplicates"], again["learned"], again["n_updates"]) == (20, 0, 20)
        single = client.post(f"/v1/events/{events[20]}/reward", json={"reward": 1.0}).json()
        assert single["n_updates"] == 21  # the live path continues after the batch

        bad = [*items[:2], {"event_id": events[25], "reward": "1"}]
        error = client.post("/v1/rewards/batch", json=bad)
        assert error.status_code == 422
        assert error.json()["detail"][0]["loc"] == ["body", 2, "reward"]
        bad = [{"event_id": events[25], "reward": 1.0}, {"event_id": "x", "reward": 1.0}]
        assert client.post("/v1/rewards/batch", json=bad).json()["detail"][0]["loc"] == [
            "body", 1, "event_id"]  # fmt: skip
        unknown = [{"event_id": events[25], "reward": 1.0},
                   {"event_id": str(uuid.uuid4()), "reward": 1.0}]  # fmt: skip
        reply = client.post("/v1/rewards/batch", json=unknown)
        assert reply.status_code == 404 and "item 1, event_id" in reply.json()["detail"]
        conflict = [{"event_id": events[25], "reward": 1.0}, {**items[3], "reward": 99.0}]
        reply = client.post("/v1/rewards/batch", json=conflict)
        assert reply.status_code == 409 and "item 1, reward" in reply.json()["detail"]
        too_many = [items[0]] * 10_001
        reply = client.post("/v1/rewards/batch", json=too_many)
        assert reply.status_code == 422
        assert client.post("/v1/rewards/batch", content=b"[{", headers={
            "content-type": "application/json"}).status_code == 422  # fmt: skip
        assert client.get("/v1/model").json()["n_updates"] == 21  # nothing of those

        close = client.post(
            "/v1/rewards/close", json={"window_days": 1, "as_of": time.time() + 2 * DAY}
        )
        assert close.status_code == 200, close.text
        assert close.json() == {"closed": 9, "learned": 9, "n_updates": 30}
        late = client.post(f"/v1/events/{events[29]}/reward", json={"reward": 4.0})
        assert late.status_code == 409 and "window closed" in late.json()["detail"]
        reply = client.post("/v1/rewards/batch", json=[{"event_id": events[29], "reward": 4.0}])
        assert reply.json()["late"] == [0] and reply.json()["n_updates"] == 30
        bad_close = client.post("/v1/rewards/close", json={"window_days": 0})
        assert bad_close.status_code == 422
    with TestClient(create_app(settings)) as restarted:  # the replay learns the same rewards
        assert restarted.get("/v1/model").json()["n_updates"] == 30
