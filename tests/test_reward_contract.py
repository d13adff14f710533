"""The reward contract: activations, attribution windows that add parts up and close by
themselves, late rewards, holdout and apprentice columns, and the bias windows remove."""

from __future__ import annotations

import json
import sqlite3
import time
import types
import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rec_env.agents.baselines import RandomPolicy
from rec_env.cli.main import app
from rec_env.datasets.decision_log import read_decision_log
from rec_env.datasets.decision_log_tables import export_decisions
from rec_env.features import FEATURE_NAMES
from rec_env.serve import DecisionService, ServeSettings, create_app
from rec_env.serve import decision_log as decision_log_module
from rec_env.serve.decision_log import (
    SCHEMA_VERSION,
    ColumnarDecisions,
    DecisionLog,
    EventBatchError,
    LateRewardError,
    NotActivatedError,
    RewardBatchError,
    RewardConflictError,
    RewardTerms,
)
from rec_env.serve.rewards import (
    DAY_SECONDS,
    close_windows,
    service_close_due,
    service_record_rewards,
)
from rec_env.serve.schemas import EXAMPLE_FEATURES
from tests.served_runs import CHANNELS, TABLE, A, uniform_bandit_run, write_run

DAY = DAY_SECONDS
T0 = 1_000 * DAY
runner = CliRunner()


def at(monkeypatch, seconds: float) -> None:
    """Make the decision log's clock read ``seconds``."""
    monkeypatch.setattr(decision_log_module, "time", types.SimpleNamespace(time=lambda: seconds))


@pytest.fixture
def log(tmp_path) -> DecisionLog:
    log = DecisionLog(tmp_path / "decisions.db")
    log.register_model("m-1", "random", "0" * 64, TABLE.names, action_channels=CHANNELS)
    yield log
    log.close()


def write(log: DecisionLog, n: int, seed: int = 0, **contract) -> list[str]:
    """Log ``n`` uniformly random row decisions; their event ids."""
    rng = np.random.default_rng(seed)
    return log.log_decisions(
        "m-1", 0, rng.random((n, len(FEATURE_NAMES))), np.ones((n, A), dtype=bool),
        np.full((n, A), 1.0 / A), rng.integers(0, A, n), **contract,
    )  # fmt: skip


def write_columnar(log: DecisionLog, n: int, **contract) -> list[str]:
    decisions = ColumnarDecisions(np.arange(n) % A, np.full(n, 0.5), np.ones(A, dtype=bool))
    return log.log_columnar("m-1", 0, np.zeros((n, len(FEATURE_NAMES))), decisions, **contract)


def final_rewards(path: Path) -> dict[str, tuple[float, int | None]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT event_id, reward, defaulted FROM rewards").fetchall()
    return {event: (reward, defaulted) for event, reward, defaulted in rows}


def late_rewards(path: Path) -> list[tuple[str, str, float]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT event_id, part_id, reward FROM late_rewards ORDER BY event_id, part_id"
        ).fetchall()


# ---------------------------------------------------------------------------- windows
def test_parts_add_up_inside_the_window_and_close_into_one_final_reward(log, monkeypatch) -> None:
    at(monkeypatch, T0)
    events = write(log, 6, window_seconds=7 * DAY) + write_columnar(log, 4, window_seconds=7 * DAY)
    at(monkeypatch, T0 + DAY)
    first = log.record_reward(events[0], 10.0, "order-1")
    assert first.pending and not first.duplicate
    assert log.record_reward(events[0], 10.0, "order-1").duplicate  # the same part again
    with pytest.raises(RewardConflictError, match="part 'order-1'"):
        log.record_reward(events[0], 11.0, "order-1")
    log.record_reward(events[0], 5.5, "order-2")
    batch = log.record_rewards([events[1], events[7], events[1], events[7]],
                               [3.0, 2.0, 3.0, 1.0], ["a", "a", "a", "b"])  # fmt: skip
    assert (batch.recorded, batch.pending, batch.duplicates, batch.late) == (3, 3, 1, [])
    assert log.counts()[1] == 0 and list(log.rewards_after(0, "m-1")) == []  # nothing final
    assert close_windows(log, None, default_reward=0.5, as_of=T0 + 6 * DAY) == 0  # still open
    assert close_windows(log, None, default_reward=0.5, as_of=T0 + 8 * DAY) == 10
    assert close_windows(log, None, default_reward=0.5, as_of=T0 + 9 * DAY) == 0  # once
    final = final_rewards(log.path)
    assert final[events[0]] == (15.5, None) and final[events[1]] == (3.0, None)
    assert final[events[7]] == (3.0, None)
    assert all(final[e] == (0.5, 1) for i, e in enumerate(events) if i not in (0, 1, 7))
    replayed = [(d.event_id, r) for _, d, r in log.rewards_after(0, "m-1")]
    assert [e for e, _ in replayed] == events  # numbered in the order of the decisions
    # a part after the close is late: logged, never learned, the final reward stands
    at(monkeypatch, T0 + 10 * DAY)
    with pytest.raises(LateRewardError, match="window closed"):
        log.record_reward(events[0], 4.0, "order-3")
    batch = log.record_rewards([events[2], events[8]], [1.0, 2.0])
    assert (batch.recorded, batch.late) == (0, [0, 1])
    assert late_rewards(log.path) == sorted(
        [(events[0], "order-3", 4.0), (events[2], "", 1.0), (events[8], "", 2.0)]
    )
    assert final_rewards(log.path)[events[0]] == (15.5, None)


def test_a_part_after_the_window_is_late_even_before_the_close(log, monkeypatch) -> None:
    at(monkeypatch, T0)
    [event] = write(log, 1, window_seconds=DAY)
    at(monkeypatch, T0 + 2 * DAY)
    with pytest.raises(LateRewardError, match="it is over"):
        log.record_reward(event, 4.0)
    assert close_windows(log, None, as_of=T0 + 2 * DAY) == 1
    assert final_rewards(log.path)[event] == (0.0, 1)


def test_the_window_starts_at_activation(log, monkeypatch) -> None:
    at(monkeypatch, T0)
    events = write(log, 3, window_seconds=7 * DAY)
    at(monkeypatch, T0 + DAY)
    assert log.activate(events[:1], T0 + 5 * DAY).activated == 1  # sent on day 5
    at(monkeypatch, T0 + 9 * DAY)  # day 9: the activated decision's window is still open
    assert log.record_reward(events[0], 2.0).pending
    with pytest.raises(LateRewardError):
        log.record_reward(events[1], 2.0)
    assert close_windows(log, None, as_of=T0 + 9 * DAY) == 2
    assert events[0] not in final_rewards(log.path)
    assert close_windows(log, None, as_of=T0 + 13 * DAY) == 1
    assert final_rewards(log.path)[events[0]] == (2.0, None)


def test_without_a_window_a_reward_is_final_at_once(log) -> None:
    [event] = write(log, 1)
    receipt = log.record_reward(event, 3.0, "ignored")
    assert not receipt.pending and receipt.seq == 1
    with pytest.raises(RewardConflictError):
        log.record_reward(event, 4.0, "another")


def test_an_explicit_close_respects_each_requests_window(log, monkeypatch) -> None:
    at(monkeypatch, T0)
    windowed = write(log, 2, window_seconds=30 * DAY)
    plain = write(log, 2, seed=1)
    assert close_windows(log, 7, as_of=T0 + 8 * DAY) == 2  # only the plain ones
    assert set(final_rewards(log.path)) == set(plain)
    assert close_windows(log, 7, as_of=T0 + 31 * DAY) == 2
    assert set(final_rewards(log.path)) == set(plain + windowed)


# ---------------------------------------------------------------------------- activation
def test_activation_is_idempotent_all_or_nothing_and_names_the_unknown_item(log) -> None:
    events = write(log, 5) + write_columnar(log, 3)
    batch = log.activate([events[0], events[6], events[0]], [100.0, 200.0, 300.0])
    assert (batch.activated, batch.duplicates) == (2, 1)
    assert log.activate([events[0]], 999.0).duplicates == 1
    assert log.activation(events[0]) == 100.0 and log.activation(events[6]) == 200.0
    assert log.activation(events[1]) is None
    with pytest.raises(EventBatchError) as error:
        log.activate([events[2], str(uuid.uuid4())])
    assert (error.value.index, error.value.field, error.value.kind) == (1, "event_id", "unknown")
    assert log.activation(events[2]) is None  # nothing of the batch


def test_with_required_activation_only_activated_decisions_get_rewards(log, monkeypatch) -> None:
    at(monkeypatch, T0)
    log.terms = RewardTerms(7 * DAY, require_activation=True)
    events = write(log, 4) + write_columnar(log, 2)
    log.activate([events[0], events[1], events[4]], T0)
    with pytest.raises(NotActivatedError, match="not activated"):
        log.record_reward(events[2], 1.0)
    with pytest.raises(RewardBatchError) as error:
        log.record_rewards([events[0], events[3]], [1.0, 1.0])
    assert (error.value.index, error.value.kind) == (1, "not_activated")
    log.record_rewards([events[0]], [6.0])
    assert close_windows(log, None, as_of=T0 + 8 * DAY) == 3  # the activated ones only
    assert set(final_rewards(log.path)) == {events[0], events[1], events[4]}
    log.activate([events[5]], T0 + 8 * DAY)  # sent late: its window opens now
    assert close_windows(log, None, as_of=T0 + 16 * DAY) == 1
    assert final_rewards(log.path)[events[5]] == (0.0, 1)


# ---------------------------------------------------------------------------- storage
def test_holdout_apprentice_and_contract_columns_are_exported(log, tmp_path, monkeypatch) -> None:
    at(monkeypatch, T0)
    rows = write(log, 4, holdout=np.array([True, False, False, False]),
                 policy_actions=np.array([-1, 3, -1, 5]), window_seconds=DAY)  # fmt: skip
    columnar = write_columnar(log, 2, holdout=np.array([False, True]),
                              policy_actions=np.array([2, -1]))  # fmt: skip
    log.activate([rows[1]], T0 + 60)
    log.record_reward(columnar[0], 1.5)
    close_windows(log, None, as_of=T0 + 2 * DAY)
    out = tmp_path / "log.parquet"
    assert export_decisions(log.path, out) == 6
    table = pq.read_table(out).to_pydict()
    assert table["holdout"] == [True, False, False, False, False, True]
    assert table["policy_action"] == [None, TABLE.names[3], None, TABLE.names[5],
                                      TABLE.names[2], None]  # fmt: skip
    assert table["window_seconds"] == [DAY] * 4 + [None, None]
    assert table["activated_at"][1].timestamp() == T0 + 60 and table["activated_at"][0] is None
    assert table["reward"] == [0.0] * 4 + [1.5, None]
    assert table["reward_defaulted"] == [True] * 4 + [False, None]


def test_a_version_4_log_is_upgraded(log, tmp_path) -> None:
    [event] = write(log, 1)
    log.close()
    with sqlite3.connect(log.path) as connection:  # back to the version-4 layout
        connection.executescript("""
            DROP TABLE request_terms; DROP TABLE activations; DROP TABLE reward_parts;
            DROP TABLE late_rewards;
            ALTER TABLE decisions DROP COLUMN holdout;
            ALTER TABLE decisions DROP COLUMN policy_action;
            ALTER TABLE requests DROP COLUMN holdout;
            ALTER TABLE requests DROP COLUMN policy_actions;
            PRAGMA user_version = 4;
        """)  # fmt: skip
    upgraded = DecisionLog(log.path)
    try:
        assert upgraded.record_reward(event, 2.0).seq == 1  # an old request: final at once
        upgraded.register_model("m-1", "random", "0" * 64, TABLE.names)
        later = write(upgraded, 2, holdout=np.array([True, False]), window_seconds=DAY)
        assert upgraded.record_reward(later[0], 1.0).pending
    finally:
        upgraded.close()
    with sqlite3.connect(log.path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5


# ---------------------------------------------------------------------------- the service
@pytest.fixture(scope="module")
def bandit_run(tmp_path_factory) -> Path:
    return uniform_bandit_run(tmp_path_factory.mktemp("runs") / "egreedy")


def served(client: TestClient, n: int, **fields) -> list[str]:
    columns = {name: [value] * n for name, value in EXAMPLE_FEATURES.items()}
    reply = client.post("/v1/recommend/batch", json={"columns": columns, **fields})
    assert reply.status_code == 200, reply.text
    return reply.json()["event_ids"]


def test_the_api_activates_adds_parts_and_learns_closed_windows(bandit_run, tmp_path) -> None:
    settings = ServeSettings(model_dir=bandit_run, db=tmp_path / "d.db", seed=0, explain=False,
                             reward_window_days=7, default_reward=0.25)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        events = served(client, 6)
        reply = client.post(f"/v1/events/{events[0]}/activate")
        assert reply.status_code == 200 and reply.json()["duplicate"] is False
        again = client.post(f"/v1/events/{events[0]}/activate", json={"activated_at": 5.0})
        assert again.json()["duplicate"] is True
        assert again.json()["activated_at"] == reply.json()["activated_at"]
        assert client.post(f"/v1/events/{uuid.uuid4()}/activate").status_code == 404
        bad = client.post("/v1/events/activate", json=[{"event_id": events[1]},
                                                       {"event_id": "x"}])  # fmt: skip
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", 1, "event_id"]
        missing = [{"event_id": events[1]}, {"event_id": str(uuid.uuid4())}]
        unknown = client.post("/v1/events/activate", json=missing)
        assert unknown.status_code == 404 and "item 1, event_id" in unknown.json()["detail"]
        batch = client.post("/v1/events/activate", json=[{"event_id": e} for e in events[:3]])
        assert batch.json() == {"activated": 2, "duplicates": 1}

        part = client.post(f"/v1/events/{events[0]}/reward", json={"reward": 4.0, "part_id": "o1"})
        assert part.json()["pending"] is True and part.json()["learned"] is False
        items = [{"event_id": events[0], "reward": 1.0, "part_id": "o2"},
                 {"event_id": events[1], "reward": 2.0}]  # fmt: skip
        reply = client.post("/v1/rewards/batch", json=items)
        assert reply.json() == {"recorded": 2, "duplicates": 0, "late": [], "pending": 2,
                                "learned": 0, "n_updates": 0}  # fmt: skip
        close = client.post("/v1/rewards/close", json={"as_of": time.time() + 8 * DAY})
        assert close.json() == {"closed": 6, "learned": 6, "n_updates": 6}
        late = client.post(f"/v1/events/{events[0]}/reward", json={"reward": 1.0, "part_id": "o3"})
        assert late.status_code == 409 and "window closed" in late.json()["detail"]
        policy = client.app.state.service.policy
        means = policy.means_.copy()
    recorded = sorted(final_rewards(settings.db).values())
    assert recorded == [(0.25, 1)] * 4 + [(2.0, None), (5.0, None)]
    with TestClient(create_app(settings)) as restarted:  # the replay learns the same rewards
        assert restarted.get("/v1/model").json()["n_updates"] == 6
        np.testing.assert_array_equal(restarted.app.state.service.policy.means_, means)


def test_required_activation_through_the_api(bandit_run, tmp_path) -> None:
    settings = ServeSettings(
        model_dir=bandit_run, db=tmp_path / "d.db", seed=0, explain=False, require_activation=True
    )
    with TestClient(create_app(settings)) as client:
        events = served(client, 2)
        reply = client.post(f"/v1/events/{events[0]}/reward", json={"reward": 1.0})
        assert reply.status_code == 409 and "not activated" in reply.json()["detail"]
        client.post(f"/v1/events/{events[0]}/activate")
        reply = client.post(f"/v1/events/{events[0]}/reward", json={"reward": 1.0})
        assert reply.json()["learned"] is True  # no window: final at once


def test_a_request_gives_its_own_window(bandit_run, tmp_path) -> None:
    settings = ServeSettings(model_dir=bandit_run, db=tmp_path / "d.db", seed=0, explain=False)
    service = DecisionService.from_settings(settings)
    try:
        obs = np.tile([EXAMPLE_FEATURES[f] for f in FEATURE_NAMES], (2, 1))
        allowed = np.ones((2, A), dtype=bool)
        windowed = service.decide(obs, allowed, reward_window_days=3).event_ids
        plain = service.decide(obs, allowed).event_ids
        assert service.reward(windowed[0], 2.0).receipt.pending
        assert service.reward(plain[0], 2.0).learned
        assert service_close_due(service, as_of=time.time() + 4 * DAY).batch.recorded == 2
        assert service.n_updates == 3
    finally:
        service.close()


def test_windows_close_by_themselves_in_the_background(bandit_run, tmp_path) -> None:
    settings = ServeSettings(model_dir=bandit_run, db=tmp_path / "d.db", seed=0, explain=False,
                             reward_window_days=0.2 / DAY, window_close_interval=0.05)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        events = served(client, 3)
        client.post(f"/v1/events/{events[0]}/reward", json={"reward": 3.0})
        deadline = time.monotonic() + 20
        while client.get("/v1/model").json()["n_updates"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/v1/model").json()["n_updates"] == 3
    assert sorted(final_rewards(settings.db).values()) == [(0.0, 1), (0.0, 1), (3.0, None)]


# ---------------------------------------------------------------------------- the CLI
def test_the_cli_activates_uploads_parts_and_closes_by_each_window(log, tmp_path, monkeypatch):
    at(monkeypatch, T0)
    events = write(log, 4, window_seconds=DAY)
    log.close()
    db = ["--db", str(log.path)]
    sent = tmp_path / "sent.csv"
    sent.write_text(f"event_id,activated_at\n{events[0]},{T0 + 3600}\n{events[1]},\n")
    result = runner.invoke(app, ["rewards", "activate", str(sent), *db])
    assert result.exit_code == 0 and "activated 2 decisions" in result.output, result.output
    results = tmp_path / "results.csv"
    results.write_text("event_id,reward,part_id\n"
                       f"{events[0]},2.5,o1\n{events[0]},1.5,o2\n{events[0]},1.5,o2\n")  # fmt: skip
    result = runner.invoke(app, ["rewards", "upload", str(results), *db])
    assert "recorded 2 rewards (2 parts of open windows), 1 duplicates" in result.output, (
        result.output
    )
    result = runner.invoke(app, ["rewards", "close", "--as-of", str(T0 + DAY + 1800), *db])
    assert result.exit_code == 0 and "for 3 decisions" in result.output, result.output
    assert events[0] not in final_rewards(log.path)  # sent an hour late: still open
    result = runner.invoke(app, ["rewards", "close", "--as-of", str(T0 + 3 * DAY), *db])
    assert "for 1 decisions" in result.output, result.output
    assert final_rewards(log.path)[events[0]] == (4.0, None)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text(f"event_id\n{events[2]}\n{uuid.uuid4()}\n")
    result = runner.invoke(app, ["rewards", "activate", str(unknown), *db])
    assert result.exit_code == 2 and "row 2, event_id: no decision" in result.output


# ---------------------------------------------------------------------------- the bias
N_DECISIONS = 8_000
BUY = np.linspace(0.05, 0.15, A)  # each arm's chance of a purchase: about 1 in 10 buy
MARGIN = np.linspace(20.0, 40.0, A)[::-1]  # a buyer's margin, net of discount and message


def buyers(actions: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Who bought and every customer's true reward (0 for non-buyers)."""
    rng = np.random.default_rng(seed)
    bought = rng.random(actions.size) < BUY[actions]
    return bought, np.where(bought, rng.gamma(4.0, MARGIN[actions] / 4.0), 0.0)


def posted(events: list[str], bought: np.ndarray, truth: np.ndarray, parts: bool) -> tuple:
    """Only buyers post: with ``parts`` each reward in two parts (two orders), else at once."""
    index = np.flatnonzero(bought)
    if not parts:
        return [events[i] for i in index], truth[index].tolist(), None
    ids = [events[i] for i in index for _ in range(2)]
    rewards = [share * truth[i] for i in index for share in (0.6, 0.4)]
    return ids, rewards, ["o1", "o2"] * index.size


def test_windows_make_ope_and_the_online_bandit_unbiased(bandit_run, tmp_path, monkeypatch):
    """Simulated traffic where about 10 % buy and only buyers post rewards: with the window and
    the default reward, OPE of the logging policy and the bandit's per-arm values are
    unbiased; without them both are several times too high."""
    value = float(np.mean(BUY * MARGIN))  # the uniform logging policy's true mean reward
    run = write_run(tmp_path / "random", RandomPolicy(A, action_names=TABLE.names))
    figures = {}
    for name, window in (("window", 7.0), ("none", None)):
        settings = ServeSettings(model_dir=bandit_run, db=tmp_path / f"{name}.db", seed=0,
                                 explain=False, reward_window_days=window,
                                 window_close_interval=0)  # fmt: skip
        at(monkeypatch, T0)
        service = DecisionService.from_settings(settings)
        try:
            obs = np.tile([EXAMPLE_FEATURES[f] for f in FEATURE_NAMES], (N_DECISIONS, 1))
            decisions = service.decide(obs, np.ones((N_DECISIONS, A), dtype=bool))
            bought, truth = buyers(decisions.actions, seed=5)
            at(monkeypatch, T0 + DAY)
            items = posted(decisions.event_ids, bought, truth, parts=window is not None)
            service_record_rewards(service, *items)
            if window is not None:
                service_close_due(service, as_of=T0 + 8 * DAY)
            means = service.policy.means_.copy()
            counts = service.policy.counts_.copy()
        finally:
            service.close()
        result = runner.invoke(app, ["ope", "--log", str(settings.db), "--policy", str(run),
                                     "--estimators", "ips,snips", "--n-bootstrap", "200",
                                     "--json"])  # fmt: skip
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        figures[name] = (report, means, counts, truth)
    report, means, counts, truth = figures["window"]
    assert report["with_reward"] == N_DECISIONS
    for estimate in report["estimates"]:
        assert estimate["ci_low"] <= value <= estimate["ci_high"], estimate
    se = np.sqrt(BUY * MARGIN**2 * (1 + 1 / 4.0) - (BUY * MARGIN) ** 2) / np.sqrt(counts)
    assert np.all(np.abs(means - BUY * MARGIN) < 4 * se)  # every arm near its true value
    biased, biased_means, _, _ = figures["none"]
    assert biased["with_reward"] == int((truth > 0).sum())  # the buyers alone
    assert all(e["value"] > 3 * value for e in biased["estimates"])
    assert np.all(biased_means > 3 * BUY * MARGIN)
    ips, snips = report["estimates"]
    print(
        f"truth {value:.3f}; with the window: IPS {ips['value']:.3f} "
        f"[{ips['ci_low']:.3f}, {ips['ci_high']:.3f}], SNIPS {snips['value']:.3f}, bandit arms "
        f"{means.mean():.3f} (max |error| {np.abs(means - BUY * MARGIN).max():.3f}); without: "
        f"IPS {biased['estimates'][0]['value']:.3f}, bandit arms {biased_means.mean():.3f}"
    )


def test_the_simulated_purchases_are_seeded() -> None:
    actions = np.arange(1_000) % A
    np.testing.assert_array_equal(buyers(actions, 5)[1], buyers(actions, 5)[1])
    assert not np.array_equal(buyers(actions, 5)[1], buyers(actions, 6)[1])


def test_ope_leaves_out_the_holdout_and_decisions_never_activated(log, tmp_path) -> None:
    log.terms = RewardTerms(require_activation=True)
    events = write(log, 6, holdout=np.array([True, True, False, False, False, False]))
    log.activate(events[:5])
    log.record_rewards(events[:5], [9.0, 7.0, 1.0, 2.0, 3.0])
    loaded = read_decision_log(log.path, TABLE.names)
    assert loaded.n_not_activated == 1 and loaded.data.n == 3
    np.testing.assert_array_equal(loaded.holdout_rewards, [9.0, 7.0])
    np.testing.assert_array_equal(loaded.data.rewards, [1.0, 2.0, 3.0])


def test_serve_takes_the_contract_options_and_names_a_bad_one(bandit_run, tmp_path) -> None:
    db = ["--db", str(tmp_path / "d.db"), "--no-explain"]
    result = runner.invoke(app, ["serve", str(bandit_run), "--reward-window-days", "0", *db])
    assert result.exit_code == 2 and "--reward-window-days:" in result.output, result.output
    result = runner.invoke(app, ["serve", str(bandit_run), "--default-reward", "5000", *db])
    assert result.exit_code == 2 and "default_reward" in result.output, result.output
    assert not (tmp_path / "d.db").exists()


def test_ope_from_the_logged_probabilities_is_the_logged_policy(log, tmp_path) -> None:
    events = write(log, 300, policy_actions=np.arange(300) % A)  # an apprentice log
    rewards = np.random.default_rng(1).gamma(2.0, 1.0, 300)
    log.record_rewards(events, rewards.tolist())
    run = write_run(tmp_path / "random", RandomPolicy(A, action_names=TABLE.names))
    args = ["ope", "--log", str(log.path), "--policy", str(run), "--estimators", "ips"]
    result = runner.invoke(app, [*args, "--from-log", "--n-bootstrap", "20", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["logged_policy"]["mean"] == pytest.approx(rewards.mean())
    assert report["estimates"][0]["value"] == pytest.approx(rewards.mean())  # every weight 1
