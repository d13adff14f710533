"""Apprentice mode and the holdout in the decision log: the caller's choice is served, the
model's is logged beside it, and ``recenv ope`` estimates both from the same log."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rec_env.cli.main import app
from rec_env.features import FEATURE_NAMES
from rec_env.serve import DecisionService, ServeSettings, create_app
from rec_env.serve.rewards import service_close_due, service_record_rewards
from rec_env.serve.schemas import EXAMPLE_FEATURES
from rec_env.serve.scoring import holdout_flags
from tests.served_runs import TABLE, A, uniform_bandit_run
from tests.test_reward_contract import (
    BUY,
    DAY,
    MARGIN,
    T0,
    at,
    buyers,
    posted,
)

runner = CliRunner()
NO_EMAIL = {**EXAMPLE_FEATURES, "consent_email": 0}


@pytest.fixture(scope="module")
def uniform_run(tmp_path_factory) -> Path:
    return uniform_bandit_run(tmp_path_factory.mktemp("runs") / "uniform")


def logged(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT action, propensity, holdout, policy_action FROM decisions "
            "ORDER BY request_id, position"
        ).fetchall()


def test_the_baseline_is_served_and_the_models_choice_logged(uniform_run, tmp_path) -> None:
    settings = ServeSettings(model_dir=uniform_run, db=tmp_path / "d.db", seed=0, explain=False)
    email = TABLE.index("discount_15_email")
    with TestClient(create_app(settings)) as client:
        reply = client.post(
            "/v1/recommend",
            json={"features": EXAMPLE_FEATURES, "baseline_action": "discount_15_email",
                  "baseline_propensity": 0.25},
        )  # fmt: skip
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["action"]["name"] == "discount_15_email" and body["propensity"] == 0.25
        model = body["policy_action"]["index"]
        assert sum(body["probabilities"].values()) == pytest.approx(1.0)
        # a live request has no policy_action
        assert (
            client.post("/v1/recommend", json={"features": EXAMPLE_FEATURES}).json()[
                "policy_action"
            ]
            is None
        )
        # the caller's choice must be allowed: no consent, no message, nothing logged
        refused = client.post(
            "/v1/recommend", json={"features": NO_EMAIL, "baseline_action": "discount_15_email"}
        )
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "baseline_action"]
        assert "not allowed" in refused.json()["detail"][0]["msg"]
        unknown = client.post(
            "/v1/recommend", json={"features": EXAMPLE_FEATURES, "baseline_action": "fax"}
        )
        assert unknown.status_code == 422 and "unknown action" in unknown.text
        columns = {name: [value] * 3 for name, value in EXAMPLE_FEATURES.items()}
        batch = client.post(
            "/v1/recommend/batch",
            json={"columns": columns, "baseline_actions": ["no_action", "discount_15_email",
                                                            "no_action"],
                  "baseline_propensities": [0.5, 0.5, 1.0]},
        )  # fmt: skip
        assert batch.status_code == 200, batch.text
        assert batch.json()["actions"] == ["no_action", "discount_15_email", "no_action"]
        assert len(batch.json()["policy_actions"]) == 3
        short = client.post(
            "/v1/recommend/batch", json={"columns": columns, "baseline_actions": ["no_action"]}
        )
        assert short.status_code == 422 and short.json()["detail"][0]["loc"] == [
            "body", "baseline_actions"
        ]  # fmt: skip
    rows = logged(settings.db)
    assert len(rows) == 5  # the refused requests logged nothing
    assert rows[0] == (email, 0.25, None, model)
    assert rows[1][3] is None  # live: the model served
    assert [r[0] for r in rows[2:]] == [TABLE.no_action, email, TABLE.no_action]
    assert [r[1] for r in rows[2:]] == [0.5, 0.5, 1.0]


def test_apprentice_servers_require_the_baseline(uniform_run, tmp_path) -> None:
    settings = ServeSettings(model_dir=uniform_run, db=tmp_path / "d.db", seed=0, explain=False,
                             apprentice=True)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        reply = client.post("/v1/recommend", json={"features": EXAMPLE_FEATURES})
        assert reply.status_code == 422
        assert reply.json()["detail"][0]["loc"] == ["body", "baseline_action"]
        assert "apprentice mode" in reply.json()["detail"][0]["msg"]
    assert logged(settings.db) == []


def test_the_holdout_is_logged_and_stays_untouched_in_apprentice_mode(uniform_run, tmp_path):
    settings = ServeSettings(model_dir=uniform_run, db=tmp_path / "d.db", seed=0, explain=False,
                             holdout=0.5, holdout_seed=3)  # fmt: skip
    ids = [f"c{i}" for i in range(40)]
    held = holdout_flags(np.array(ids), 0.5, 3)
    assert 5 < held.sum() < 35
    columns = {name: [value] * 40 for name, value in EXAMPLE_FEATURES.items()}
    with TestClient(create_app(settings)) as client:
        reply = client.post(
            "/v1/recommend/batch",
            json={"columns": columns, "customer_ids": ids,
                  "baseline_actions": ["discount_15_email"] * 40},
        )  # fmt: skip
        assert reply.status_code == 200, reply.text
        actions = np.array(reply.json()["actions"])
        assert reply.json()["holdout"] == held.tolist()
        assert (actions[held] == "no_action").all()  # a held-out customer gets nothing
        assert (actions[~held] == "discount_15_email").all()
    rows = logged(settings.db)
    assert [bool(r[2]) for r in rows] == held.tolist()
    assert all(r[1] == 1.0 for r, h in zip(rows, held, strict=True) if h)
    exported = runner.invoke(app, ["log", "export", "--db", str(settings.db),
                                   "--out", str(tmp_path / "log.csv")])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    with (tmp_path / "log.csv").open(newline="") as handle:
        flags = [row["holdout"] for row in csv.DictReader(handle)]
    assert [f.lower() in ("true", "1") for f in flags] == held.tolist()


def test_ope_estimates_the_model_and_the_baseline_from_one_apprentice_log(
    uniform_run, tmp_path, monkeypatch
) -> None:
    """The baseline gives the first action (the least valuable) to half the customers and a
    uniform draw of the others to the rest; the model is uniform."""
    n = 8_000
    value = BUY * MARGIN
    baseline_truth = 0.5 * value[0] + 0.5 * value[1:].mean()
    model_truth = value.mean()
    rng = np.random.default_rng(11)
    baseline = np.where(rng.random(n) < 0.5, 0, rng.integers(1, A, n))
    propensity = np.where(baseline == 0, 0.5, 0.5 / (A - 1))
    settings = ServeSettings(model_dir=uniform_run, db=tmp_path / "d.db", seed=0, explain=False,
                             reward_window_days=7, window_close_interval=0)  # fmt: skip
    at(monkeypatch, T0)
    service = DecisionService.from_settings(settings)
    try:
        obs = np.tile([EXAMPLE_FEATURES[f] for f in FEATURE_NAMES], (n, 1))
        decisions = service.decide(
            obs, np.ones((n, A), dtype=bool), baseline=baseline, baseline_propensities=propensity
        )
        assert np.array_equal(decisions.actions, baseline)
        bought, truth = buyers(decisions.actions, seed=5)
        at(monkeypatch, T0 + DAY)
        service_record_rewards(service, *posted(decisions.event_ids, bought, truth, parts=True))
        service_close_due(service, as_of=T0 + 8 * DAY)
    finally:
        service.close()
    result = runner.invoke(app, ["ope", "--log", str(settings.db), "--policy", str(uniform_run),
                                 "--from-log", "--estimators", "ips,snips", "--n-bootstrap",
                                 "200", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["with_reward"] == n
    for estimate in report["estimates"]:  # the model, from the baseline's decisions
        assert estimate["ci_low"] <= model_truth <= estimate["ci_high"], estimate
    baseline_mean = report["logged_policy"]["mean"]
    assert abs(baseline_mean - baseline_truth) < 2 * report["logged_policy"]["ci95"]
    assert abs(model_truth - baseline_truth) > 0.3  # two different policies were told apart
    print(
        f"apprentice log: baseline truth {baseline_truth:.3f}, logged {baseline_mean:.3f}; "
        f"model truth {model_truth:.3f}, IPS {report['estimates'][0]['value']:.3f}"
    )
