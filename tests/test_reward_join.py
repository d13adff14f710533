"""Rewards and activations joined to decisions by customer id and decision time."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime

import numpy as np
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rec_env.cli.main import app
from rec_env.features import FEATURE_NAMES
from rec_env.serve import ServeSettings, create_app
from rec_env.serve.decision_log import DecisionLog
from rec_env.serve.schemas import EXAMPLE_FEATURES
from tests.served_runs import CHANNELS, TABLE, A, uniform_bandit_run
from tests.test_reward_contract import at

runner = CliRunner()
MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC).timestamp()
WEEK = 7 * 86_400.0


def weekly_log(path, monkeypatch) -> list[list[str]]:
    """Two weekly campaigns to customers c0..c2 (Mondays at 09:00); their event ids by week."""
    log = DecisionLog(path)
    log.register_model("m-1", "random", "0" * 64, TABLE.names, action_channels=CHANNELS)
    weeks = []
    for week in range(2):
        at(monkeypatch, MONDAY + week * WEEK)
        weeks.append(log.log_decisions(
            "m-1", 0, np.zeros((3, len(FEATURE_NAMES))), np.ones((3, A), dtype=bool),
            np.full((3, A), 1.0 / A), np.zeros(3, dtype=np.intp), ["c0", "c1", "c2"],
        ))  # fmt: skip
    log.close()
    return weeks


def rewards_of(path) -> dict[str, float]:
    with sqlite3.connect(path) as connection:
        return dict(connection.execute("SELECT event_id, reward FROM rewards").fetchall())


def test_upload_joins_by_customer_and_the_decisions_day_or_time(tmp_path, monkeypatch) -> None:
    db = tmp_path / "decisions.db"
    weeks = weekly_log(db, monkeypatch)
    results = tmp_path / "results.csv"
    # a bare date is its whole day; a timestamp takes the latest decision at or before it
    results.write_text(
        "customer_id,decided_at,reward\n"
        "c0,2026-11-30,5.0\n"
        "c1,2026-12-07,7.0\n"
        "c2,2026-12-06T23:00:00,3.0\n"
    )
    result = runner.invoke(app, ["rewards", "upload", str(results), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert rewards_of(db) == {weeks[0][0]: 5.0, weeks[1][1]: 7.0, weeks[0][2]: 3.0}


def test_an_unmatched_customer_is_one_error_line_and_records_nothing(tmp_path, monkeypatch):
    db = tmp_path / "decisions.db"
    weekly_log(db, monkeypatch)
    for body, message in [
        ("customer_id,decided_at,reward\nc0,2026-11-30,1\nc9,2026-11-30,1\n",
         "row 2: no decision for customer 'c9'"),
        ("customer_id,decided_at,reward\nc0,2026-11-29,1\n",
         "row 1: no decision for customer 'c0' at or before"),
        ("customer_id,decided_at,reward\nc0,last week,1\n", "row 1: decided_at 'last week'"),
        ("customer_id,reward\nc0,1\n", "nor customer_id and decided_at"),
    ]:  # fmt: skip
        results = tmp_path / "results.csv"
        results.write_text(body)
        result = runner.invoke(app, ["rewards", "upload", str(results), "--db", str(db)])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert rewards_of(db) == {}


def test_activation_joins_by_customer_too(tmp_path, monkeypatch) -> None:
    db = tmp_path / "decisions.db"
    weeks = weekly_log(db, monkeypatch)
    sent = tmp_path / "sent.csv"
    sent.write_text("customer_id,decided_at,activated_at\nc1,2026-12-07,2026-12-07T10:00:00\n")
    result = runner.invoke(app, ["rewards", "activate", str(sent), "--db", str(db)])
    assert result.exit_code == 0 and "activated 1 decisions" in result.output, result.output
    with sqlite3.connect(db) as connection:
        activated = connection.execute("SELECT event_id, activated_at FROM activations").fetchall()
    assert activated == [(weeks[1][1], MONDAY + WEEK + 3_600.0)]


def test_the_batch_endpoints_join_by_customer_and_time(tmp_path) -> None:
    run = uniform_bandit_run(tmp_path / "run")
    settings = ServeSettings(model_dir=run, db=tmp_path / "d.db", seed=0, explain=False)
    columns = {name: [value] * 2 for name, value in EXAMPLE_FEATURES.items()}
    with TestClient(create_app(settings)) as client:
        reply = client.post(
            "/v1/recommend/batch", json={"columns": columns, "customer_ids": ["a", "b"]}
        )
        events = reply.json()["event_ids"]
        now = time.time() + 1
        unmatched = client.post("/v1/rewards/batch", json=[
            {"customer_id": "a", "decided_at": now, "reward": 1.0},
            {"customer_id": "zz", "decided_at": now, "reward": 1.0},
        ])  # fmt: skip
        assert unmatched.status_code == 404 and "item 1, customer_id" in unmatched.text
        both = client.post("/v1/rewards/batch", json=[
            {"event_id": events[0], "customer_id": "a", "decided_at": now, "reward": 1.0}
        ])  # fmt: skip
        assert both.status_code == 422 and both.json()["detail"][0]["loc"][:2] == ["body", 0]
        half = client.post("/v1/rewards/batch", json=[{"customer_id": "a", "reward": 1.0}])
        assert half.status_code == 422
        ok = client.post("/v1/rewards/batch", json=[
            {"customer_id": "b", "decided_at": now, "reward": 2.5},
            {"event_id": events[0], "reward": 1.5},
        ])  # fmt: skip
        assert ok.status_code == 200 and ok.json()["recorded"] == 2, ok.text
        sent = client.post("/v1/events/activate", json=[
            {"customer_id": "a", "decided_at": now, "activated_at": 5.0},
        ])  # fmt: skip
        assert sent.status_code == 200 and sent.json()["activated"] == 1, sent.text
        nobody = client.post("/v1/events/activate", json=[{"customer_id": "zz", "decided_at": now}])
        assert nobody.status_code == 404 and "item 0, customer_id" in nobody.text
    assert rewards_of(settings.db) == {events[1]: 2.5, events[0]: 1.5}
    with sqlite3.connect(settings.db) as connection:
        activated = connection.execute("SELECT event_id, activated_at FROM activations").fetchall()
    assert activated == [(events[0], 5.0)]
