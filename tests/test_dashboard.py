"""The live dashboard: its JSON API against a direct computation from the decision log, the
incremental catch-up against a full recomputation, range validation, the API key, and a page
that loads nothing from another host."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rec_env.features import FEATURE_NAMES
from rec_env.serve import ServeSettings, create_app
from rec_env.serve.dashboard.ranges import Bucket, parse_range
from rec_env.serve.dashboard.report import summarise
from rec_env.serve.dashboard.schemas import CatchUpInfo, ModelState
from rec_env.serve.dashboard.statistics import Z95, Moments
from rec_env.serve.dashboard.summaries import SummaryStore
from rec_env.serve.decision_log import ColumnarDecisions, DecisionLog
from rec_env.serve.routes.dashboard import ASSETS
from rec_env.serve.schemas import EXAMPLE_FEATURES
from tests.served_runs import CHANNELS, TABLE, A, uniform_bandit_run

KEY = "dashboard-secret"
CHART_IDS = (
    *("chart-decisions", "chart-rewards", "chart-off-policy", "chart-holdout"),
    *("chart-action-mix", "chart-propensities", "chart-conversion", "chart-profit"),
)


@pytest.fixture(scope="module")
def bandit_run(tmp_path_factory) -> Path:
    return uniform_bandit_run(tmp_path_factory.mktemp("runs") / "egreedy")


def settings(run: Path, directory: Path, **extra) -> ServeSettings:
    return ServeSettings(model_dir=run, db=directory / "d.db", seed=0, explain=False, **extra)


def traffic(client: TestClient, n: int, seed: int, rewarded: float = 0.7, **fields) -> list[str]:
    """Serve ``n`` customers (ids ``c<seed>-<i>``) and post seeded rewards for some of them."""
    rng = np.random.default_rng(seed)
    columns = {name: [value] * n for name, value in EXAMPLE_FEATURES.items()}
    ids = [f"c{seed}-{i}" for i in range(n)]
    reply = client.post("/v1/recommend/batch",
                        json={"columns": columns, "customer_ids": ids, **fields})  # fmt: skip
    assert reply.status_code == 200, reply.text
    events = reply.json()["event_ids"]
    chosen = np.flatnonzero(rng.random(n) < rewarded)
    rewards = np.where(rng.random(chosen.size) < 0.3, rng.normal(20.0, 8.0, chosen.size), 0.0)
    items = [{"event_id": events[i], "reward": round(float(r), 4)}
             for i, r in zip(chosen, rewards, strict=True)]  # fmt: skip
    reply = client.post("/v1/rewards/batch", json=items, headers={"X-API-Key": KEY})
    assert reply.status_code == 200, reply.text
    return events


def logged(db: Path) -> list[tuple[str, float, int, float | None]]:
    """``(action name, propensity, holdout, final reward or None)`` of every row decision."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT d.action, d.propensity, COALESCE(d.holdout, 0), w.reward FROM decisions AS d "
            "LEFT JOIN rewards AS w ON w.request_id = d.request_id AND w.position = d.position"
        ).fetchall()
    return [(TABLE.names[a], p, h, r) for a, p, h, r in rows]


def summary(client: TestClient, **params) -> dict:
    reply = client.get("/v1/dashboard/summary", params=params, headers={"X-API-Key": KEY})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_api_equals_a_direct_computation_from_the_log(bandit_run, tmp_path) -> None:
    with TestClient(
        create_app(settings(bandit_run, tmp_path, holdout=0.25, api_key=KEY))
    ) as client:
        traffic(client, 240, seed=1)
        traffic(client, 40, seed=2, rewarded=0.5, reward_window_days=7)  # parts: pending
        data = summary(client)
        n_updates = client.app.state.service.n_updates
    rows = logged(tmp_path / "d.db")
    names = np.array([row[0] for row in rows])
    propensity = np.array([row[1] for row in rows])
    held = np.array([row[2] for row in rows]) == 1
    reward = np.array([np.nan if row[3] is None else row[3] for row in rows])
    final = ~np.isnan(reward)
    assert held.any() and (~held).any() and final.sum() < len(rows)

    assert data["rewards"]["decisions"] == len(rows) == sum(p["decisions"] for p in data["series"])
    assert data["rewards"]["rewarded"] == final.sum()
    assert data["rewards"]["pending_windows"] == 40  # posted parts stay pending until the close
    assert data["rewards"]["without_reward"] == len(rows) - final.sum() - 40
    assert data["rewards"]["reward_sum"] == pytest.approx(reward[final].sum())
    assert {a["action"]: a["decisions"] for a in data["action_mix"]} == {
        name: int((names == name).sum()) for name in set(names)
    }
    for outcome in data["actions"]:
        mine = final & (names == outcome["action"])
        assert outcome["rewarded"] == mine.sum()
        if mine.sum() > 1:
            assert outcome["profit"]["value"] == pytest.approx(reward[mine].mean())
            assert outcome["conversion"]["value"] == pytest.approx((reward[mine] > 0).mean())
            half = Z95 * reward[mine].std(ddof=1) / np.sqrt(mine.sum())
            assert outcome["profit"]["ci_high"] - outcome["profit"]["value"] == pytest.approx(half)
    bins = np.minimum((propensity * 20).astype(int), 19)
    assert data["propensities"]["counts"] == np.bincount(bins, minlength=20).tolist()
    assert data["holdout"]["holdout"]["value"] == pytest.approx(reward[final & held].mean())
    assert data["holdout"]["treated"]["n"] == (final & ~held).sum()

    treated = final & ~held
    ips_terms = np.where(names[treated] == "no_action", reward[treated] / propensity[treated], 0)
    ope = data["off_policy"]
    assert ope["running_policy"]["value"] == pytest.approx(reward[treated].mean())
    assert ope["baseline"]["value"] == pytest.approx(ips_terms.mean())
    assert ope["baseline"]["ci_high"] - ope["baseline"]["value"] == pytest.approx(
        Z95 * ips_terms.std(ddof=1) / np.sqrt(treated.sum())
    )
    paired = reward[treated] - ips_terms
    assert ope["difference"]["value"] == pytest.approx(paired.mean())
    assert ope["difference"]["ci_low"] == pytest.approx(
        paired.mean() - Z95 * paired.std(ddof=1) / np.sqrt(treated.sum())
    )
    assert ope["baseline"]["value"] == pytest.approx(
        project_ips(names, propensity, reward, treated)
    )
    assert data["model"]["n_updates"] == n_updates == final.sum()  # ε-greedy learns each reward
    assert data["catch_up"]["caught_up"] is True


def project_ips(names, propensity, reward, rows) -> float:
    """The project's own IPS estimator of always no_action on the same decisions."""
    from rec_env.agents.ope import InverseProbabilityWeighting
    from rec_env.datasets.logged import LoggedBanditData

    actions = np.array([TABLE.names.index(name) for name in names[rows]])
    data = LoggedBanditData(
        contexts=np.zeros((rows.sum(), 1)), actions=actions, propensities=propensity[rows],
        rewards=reward[rows], n_actions=A,
    )  # fmt: skip
    always = np.zeros((rows.sum(), A))
    always[:, TABLE.no_action] = 1.0
    return InverseProbabilityWeighting(n_bootstrap=10, random_state=0).estimate(data, always).value


def summary_range(client: TestClient, **params) -> dict:
    return summary(client, **params)["range"]


def test_the_range_selects_decisions_by_their_hour(bandit_run, tmp_path) -> None:
    with TestClient(create_app(settings(bandit_run, tmp_path))) as client:
        traffic(client, 30, seed=3)
        now = time.time()
        hour = now // 3600 * 3600
        inside = summary(client, since=str(hour - 3600), until=str(hour + 3600))
        before = summary(client, since="2020-01-01", until="2020-01-02T00:00:00+00:00")
        by_day = summary(client, since=str(now - 86400 * 365), bucket="day")
        wider = summary_range(client, since=str(hour - 1800), until=str(hour + 60))
    assert inside["rewards"]["decisions"] == 30 and inside["range"]["n_buckets"] == 2
    assert inside["series"][1]["decisions"] == 30 and inside["series"][0]["decisions"] == 0
    assert (wider["since"], wider["until"]) == (hour - 3600, hour + 3600)  # whole hours
    assert before["rewards"]["decisions"] == 0 and len(before["series"]) == 24
    assert before["off_policy"]["running_policy"]["value"] is None
    assert by_day["range"]["bucket"] == "day" and by_day["range"]["since"] % 86400 == 0
    assert sum(p["decisions"] for p in by_day["series"]) == 30


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"since": "yesterday"}, "since", "should match pattern"),
        ({"since": "2026-13-45"}, "since", "not an ISO 8601 date"),
        ({"until": "99999999999999"}, "until", "between 1970"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "since", "before until"),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "since", "use bucket=day"),
        ({"since": "1990-01-01", "until": "2026-01-01", "bucket": "day"}, "since", "at most 2400"),
        ({"bucket": "week"}, "bucket", "hour"),
    ],
)
def test_a_bad_range_is_refused_naming_the_field(bandit_run, tmp_path, params, field, message):
    with TestClient(create_app(settings(bandit_run, tmp_path))) as client:
        reply = client.get("/v1/dashboard/summary", params=params)
    assert reply.status_code == 422
    [error] = reply.json()["detail"]
    assert error["loc"] == ["query", field] and message in error["msg"]
    if "pattern" not in message and field != "bucket":  # what the schema cannot express
        assert error["type"] == "time_range"


def test_the_api_needs_the_key_and_the_page_asks_for_it(bandit_run, tmp_path) -> None:
    with TestClient(create_app(settings(bandit_run, tmp_path, api_key=KEY))) as client:
        for path in ("/v1/dashboard/summary", "/v1/dashboard/status"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"X-API-Key": "wrong"}).status_code == 401
            assert client.get(path, headers={"X-API-Key": KEY}).status_code == 200
        page = client.get("/dashboard")  # the page holds no data: it asks for the key
        assert page.status_code == 200 and 'id="api-key-form"' in page.text
        status = client.get("/v1/dashboard/status", headers={"X-API-Key": KEY}).json()
        assert status["model"]["model_version"] == client.app.state.service.model_version
        schema = client.get("/openapi.json").json()
    summary_op = schema["paths"]["/v1/dashboard/summary"]["get"]
    assert summary_op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DashboardSummary"
    }
    assert {"401", "422"} <= set(summary_op["responses"])
    assert summary_op["security"] and "OffPolicyEstimate" in schema["components"]["schemas"]


_URL = re.compile(r"""(?:https?:)?//[\w.-]+|url\(\s*['"]?(?!/)[^)'"]+""", re.IGNORECASE)
_SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML namespace name, never fetched


def test_the_page_and_its_assets_load_from_this_server_only(bandit_run, tmp_path) -> None:
    with TestClient(create_app(settings(bandit_run, tmp_path))) as client:
        root = client.get("/", follow_redirects=False)
        assert root.status_code in (302, 307) and root.headers["location"] == "/dashboard"
        page = client.get("/dashboard")
        assets = {name: client.get(f"/dashboard/{name}") for name in ASSETS}
        assert client.get("/dashboard/secrets.txt").status_code == 404
        assert client.get("/dashboard/..%2Fapp.py").status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    for name, reply in assets.items():
        assert reply.status_code == 200 and reply.headers["content-type"] == ASSETS[name]
    texts = {"dashboard.html": page.text, **{name: reply.text for name, reply in assets.items()}}
    for name, text in texts.items():
        assert _URL.findall(text.replace(_SVG_NAMESPACE, "")) == [], name
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references and all(
        (ref.startswith("/") and not ref.startswith("//")) or ref == "data:," for ref in references
    )
    for chart in CHART_IDS:  # stable ids for the browser test, drawn into SVG
        assert f'<svg id="{chart}" data-testid="{chart}"' in page.text
    assert 'id="error"' in page.text and "dataset.ready" in texts["dashboard.js"]
    static = files("rec_env.serve") / "static"
    assert sorted(p.name for p in static.iterdir() if p.name.startswith("dashboard")) == sorted(
        ["dashboard.html", *ASSETS]
    )


# ---------------------------------------------------------------------------- the catch-up
def write_traffic(log: DecisionLog, seed: int, n_requests: int) -> None:
    """Row and columnar requests, holdouts, windows, posted rewards and closed windows."""
    rng = np.random.default_rng(seed)
    for _ in range(n_requests):
        n = int(rng.integers(1, 6))
        probabilities = rng.dirichlet(np.ones(A), n)
        actions = np.array([rng.choice(A, p=row) for row in probabilities])
        window = 3600.0 if rng.random() < 0.3 else None
        events = log.log_decisions(
            "m-1", 0, rng.random((n, len(FEATURE_NAMES))), np.ones((n, A), dtype=bool),
            probabilities, actions, holdout=rng.random(n) < 0.2, window_seconds=window,
        )  # fmt: skip
        if rng.random() < 0.3:
            columnar = ColumnarDecisions(rng.integers(0, A, n), rng.uniform(0.01, 1.0, n),
                                         np.ones(A, dtype=bool))  # fmt: skip
            events += log.log_columnar("m-1", 0, np.zeros((n, len(FEATURE_NAMES))), columnar)
        paid = [e for e in events if rng.random() < 0.6]
        log.record_rewards(paid, rng.normal(5.0, 10.0, len(paid)).round(3).tolist())
    log.close_windows(time.time() + 7200)


def summary_tables(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as connection:
        return {
            table: [
                tuple(round(v, 6) if isinstance(v, float) else v for v in row)
                for row in connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4, 5")
            ]
            for table in ("summary_decisions", "summary_rewards")
        } | {
            "summary_received": connection.execute(
                "SELECT hour, rewards, defaulted, ROUND(sum_reward, 6) "
                "FROM summary_received ORDER BY 1"
            ).fetchall()
        }


def test_the_incremental_catch_up_equals_a_full_recomputation(tmp_path) -> None:
    db = tmp_path / "d.db"
    log = DecisionLog(db)
    log.register_model("m-1", "random", "0" * 64, TABLE.names, action_channels=CHANNELS)
    store, rival = SummaryStore(db, chunk=7), SummaryStore(db, chunk=5)
    write_traffic(log, seed=4, n_requests=25)
    first = store.catch_up()
    assert first.caught_up and first.decisions > 0 and first.rewards > 0
    write_traffic(log, seed=5, n_requests=25)
    rival.catch_up()  # another process folds in half the backlog…
    again = store.catch_up()  # …and this one only the rest
    decisions, rewards = log.counts()
    log.close()
    assert first.decisions + again.decisions <= decisions
    assert again.request_watermark == rival.catch_up().request_watermark
    store.close()
    rival.close()
    incremental = summary_tables(db)
    fresh = tmp_path / "fresh.db"
    shutil.copy(db, fresh)
    with sqlite3.connect(fresh) as connection:
        connection.executescript(
            "DROP TABLE summary_decisions; DROP TABLE summary_rewards; "
            "DROP TABLE summary_received; DROP TABLE summary_watermarks;"
        )
    full = SummaryStore(fresh)
    done = full.catch_up()
    full.close()
    assert (done.decisions, done.rewards) == (decisions, rewards)
    assert summary_tables(fresh) == incremental
    assert sum(row[5] for row in incremental["summary_decisions"]) == decisions


def test_a_catch_up_with_a_budget_stops_and_resumes(tmp_path) -> None:
    db = tmp_path / "d.db"
    log = DecisionLog(db)
    log.register_model("m-1", "random", "0" * 64, TABLE.names, action_channels=CHANNELS)
    write_traffic(log, seed=6, n_requests=12)
    total = log.counts()[0]
    log.close()
    store = SummaryStore(db, chunk=3)
    step = store.catch_up(budget_seconds=0.0)  # one chunk, then out of time
    assert not step.caught_up and 0 < step.decisions < total
    rest = store.catch_up()
    store.close()
    assert rest.caught_up and step.decisions + rest.decisions == total


def test_moments_give_the_mean_and_normal_interval_and_a_seed_repeats() -> None:
    values = np.random.default_rng(7).normal(3.0, 2.0, 50)
    estimate = Moments(50, values.sum(), (values**2).sum()).estimate()
    assert estimate.value == pytest.approx(values.mean())
    assert estimate.ci_high - estimate.value == pytest.approx(Z95 * values.std(ddof=1) / 50**0.5)
    again = np.random.default_rng(7).normal(3.0, 2.0, 50)
    assert Moments(50, again.sum(), (again**2).sum()).estimate() == estimate
    assert Moments(1, 2.0, 4.0).estimate().ci_low is None
    assert Moments(0, 0.0, 0.0).estimate().value is None


# ---------------------------------------------------------------------------- PostgreSQL
@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema of the server named by ``RECENV_TEST_POSTGRES_URL`` (``.ci/run``)."""
    server = os.environ.get("RECENV_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("no PostgreSQL server: RECENV_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    psycopg = pytest.importorskip("psycopg")
    schema = f"recenv_dashboard_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    yield f"{server}{'&' if '?' in server else '?'}options=-csearch_path%3D{schema}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


def summarised(db: str | Path, served: str = "m-1") -> dict:
    """The dashboard's numbers over every hour of the log ``db``, caught up in small chunks."""
    log = DecisionLog(db)
    log.register_model("m-1", "random", "0" * 64, TABLE.names, action_channels=CHANNELS)
    store = SummaryStore(db, chunk=7)
    write_traffic(log, seed=8, n_requests=15)
    store.catch_up()
    write_traffic(log, seed=9, n_requests=15)
    log.close()
    now = time.time()
    everything = parse_range(str(now - 86400), str(now + 86400), Bucket.day, now)
    model = ModelState(model_version=served, algorithm="random", online=False, n_updates=0)
    done = store.catch_up()
    progress = CatchUpInfo(caught_up=done.caught_up, decisions_folded=done.decisions,
                           rewards_folded=done.rewards, request_watermark=done.request_watermark,
                           reward_watermark=done.reward_watermark, seconds=0.0)  # fmt: skip
    data = summarise(store, everything, model, progress).model_dump(
        exclude={"query_seconds", "range", "series"}
    )
    store.close()
    return data


def test_the_same_summaries_on_postgresql(postgres_url, tmp_path) -> None:
    on_postgres, on_sqlite = summarised(postgres_url), summarised(tmp_path / "d.db")
    assert on_postgres["rewards"]["decisions"] > 0
    assert _approx_equal(on_postgres, on_sqlite)


def _approx_equal(first: object, second: object) -> bool:
    if isinstance(first, dict) and isinstance(second, dict):
        assert first.keys() == second.keys()
        return all(_approx_equal(first[k], second[k]) for k in first)
    if isinstance(first, list) and isinstance(second, list):
        assert len(first) == len(second)
        return all(_approx_equal(a, b) for a, b in zip(first, second, strict=True))
    if isinstance(first, float):
        assert first == pytest.approx(second, rel=1e-9, abs=1e-9)
        return True
    assert first == second
    return True


def test_the_off_policy_estimate_is_of_the_model_served_now(tmp_path) -> None:
    earlier = summarised(tmp_path / "d.db", served="m-2")  # m-1's decisions: another policy's
    assert earlier["rewards"]["rewarded"] > 0 and earlier["holdout"]["treated"]["n"] > 0
    assert earlier["off_policy"]["model_version"] == "m-2"
    assert earlier["off_policy"]["running_policy"] == {"value": None, "ci_low": None,
                                                       "ci_high": None, "n": 0}  # fmt: skip
