"""Building blocks of the service without HTTP: decision log, export, exploration, event ids,
and the ``recenv log export`` / ``recenv serve`` command lines."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from cli_checks import assert_bad_input
from typer.testing import CliRunner

from rec_env.agents.bandits import LinUCB
from rec_env.agents.integrity import policy_digests
from rec_env.agents.runs import RunInfo, write_run_info
from rec_env.catalog import ActionTable, load_catalog
from rec_env.cli.main import app
from rec_env.features import FEATURE_NAMES
from rec_env.serve import decision_log
from rec_env.serve.decision_log import (
    SCHEMA_VERSION,
    DecisionLog,
    RewardConflictError,
    UnknownEventError,
)
from rec_env.serve.event_ids import event_ids, new_request_key
from rec_env.serve.exploration import MIN_PROBABILITY, Exploration, sample_actions
from rec_env.serve.settings import ServeSettings

runner = CliRunner()
TABLE = ActionTable.from_catalog(load_catalog("strategy"))
A = TABLE.n_actions


def decisions(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    allowed = rng.random((n, A)) < 0.7
    allowed[:, 0] = True
    probabilities = np.where(allowed, rng.random((n, A)), 0.0)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return {
        "features": rng.random((n, len(FEATURE_NAMES))) * 10,
        "allowed": allowed,
        "probabilities": probabilities,
        "actions": sample_actions(probabilities, rng),
    }


@pytest.fixture
def log(tmp_path) -> DecisionLog:
    log = DecisionLog(tmp_path / "decisions.db")
    log.register_model("linucb-abc", "linucb", "abc" * 21 + "a", TABLE.names)
    yield log
    log.close()


def write(log: DecisionLog, batch: dict, customer_ids=None, updates: int = 0) -> list[str]:
    batch["event_ids"] = log.log_decisions(
        "linucb-abc", updates, batch["features"], batch["allowed"], batch["probabilities"],
        batch["actions"], customer_ids,
    )  # fmt: skip
    return batch["event_ids"]


# ---------------------------------------------------------------------------- event ids
def test_new_request_keys_are_time_ordered_version_7_uuids() -> None:
    before = time.time_ns() // 1_000_000
    keys = [new_request_key() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len({key for key, _ in keys}) == len(keys)
    assert {offset >> 32 for _, offset in keys} == {0}  # offsets are 32-bit
    millis = [uuid.UUID(event_ids(key, offset, 1)[0]).int >> 80 for key, offset in keys]
    assert millis == sorted(millis) and before <= millis[0] and millis[-1] <= after
    for key, offset in keys[:50]:
        parsed = uuid.UUID(event_ids(key, offset, 1)[0])
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_event_ids_of_a_version_4_key_share_their_request_prefix() -> None:
    key = str(uuid.uuid4())[:28]  # as older logs hold
    ids = event_ids(key, (1 << 32) - 3, 5000)  # the position code wraps around
    assert len(set(ids)) == len(ids)
    assert ids[2].endswith("ffffffff") and ids[3].endswith("00000000")
    for text in ids[:50] + ids[-1:]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and str(parsed) == text and text.startswith(key)


def test_each_request_gets_its_own_random_ids(log) -> None:
    ids = [event for _ in range(200) for event in write(log, decisions(1))]
    ids += write(log, decisions(300))
    assert len(set(ids)) == len(ids) == 500
    assert len({event[-8:] for event in ids[:200]}) == 200  # suffixes look random too
    for event in (ids[0], ids[250], ids[-1]):
        assert log.decision(event).event_id == event
    for wrong in (ids[0][:-1] + "x", ids[0].upper(), ids[0][:30], ids[-1][:28] + "0" * 8):
        assert log.decision(wrong) is None


# ---------------------------------------------------------------------------- decision log
def test_the_log_is_sqlite_in_wal_mode(log) -> None:
    with sqlite3.connect(log.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_decisions_and_rewards_round_trip(log) -> None:
    batch = decisions(20)
    write(log, batch, customer_ids=[f"c{i}" for i in range(20)])
    event = batch["event_ids"][7]
    decision = log.decision(event)
    np.testing.assert_array_equal(decision.features, batch["features"][7])
    assert decision.action == batch["actions"][7]
    assert decision.propensity == batch["probabilities"][7, batch["actions"][7]]
    assert log.decision(str(uuid.uuid4())) is None
    receipt = log.record_reward(event, 1.5)
    assert not receipt.duplicate and receipt.decision.action == decision.action
    assert log.record_reward(event, 1.5).duplicate
    with pytest.raises(RewardConflictError) as conflict:
        log.record_reward(event, 2.0)
    assert conflict.value.recorded == 1.5
    with pytest.raises(UnknownEventError):
        log.record_reward(str(uuid.uuid4()), 1.0)
    assert log.counts() == (20, 1)


def test_concurrent_writers_lose_nothing(log) -> None:
    batches = [decisions(n, seed) for seed, n in enumerate([1, 3, 50, 1, 7, 1, 200, 2] * 4)]

    def work(batch):
        write(log, batch)
        for event in batch["event_ids"][::2]:
            log.record_reward(event, 1.0)
            log.record_reward(event, 1.0)  # a retry

    threads = [threading.Thread(target=work, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    n_decisions = sum(len(b["event_ids"]) for b in batches)
    n_rewards = sum(len(b["event_ids"][::2]) for b in batches)
    assert log.counts() == (n_decisions, n_rewards)


def test_files_that_are_not_decision_logs_are_refused(tmp_path) -> None:
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ValueError, match=r"junk\.db"):
        DecisionLog(tmp_path / "junk.db")
    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("CREATE TABLE decisions (event_id TEXT)")
    with pytest.raises(ValueError, match="another --db"):
        DecisionLog(tmp_path / "other.db")


def test_rewards_are_numbered_in_the_order_they_are_recorded(log) -> None:
    assert log.last_reward_seq() == 0
    events = write(log, decisions(5))
    receipts = [log.record_reward(event, float(i)) for i, event in enumerate(events[:3])]
    assert [r.seq for r in receipts] == [1, 2, 3] and log.last_reward_seq() == 3
    retry = log.record_reward(events[1], 1.0)
    assert retry.duplicate and retry.seq == 2 and log.last_reward_seq() == 3
    with pytest.raises(RewardConflictError):
        log.record_reward(events[1], 9.0)
    assert log.record_reward(events[4], 4.0).seq == 4


def test_rewards_after_replays_one_models_rewards_in_order_in_chunks(log, monkeypatch) -> None:
    monkeypatch.setattr(decision_log, "REPLAY_CHUNK", 3)  # several chunks
    log.register_model("other-1", "linucb", "0" * 64, TABLE.names)
    ours, big = write(log, decisions(4, seed=1)), write(log, decisions(300, seed=2))
    theirs = log.log_decisions("other-1", 0, **{k: v for k, v in decisions(3).items()})
    order = [big[299], theirs[0], ours[2], big[7], theirs[1], ours[0], big[150], big[8]]
    seqs = {event: log.record_reward(event, float(i)).seq for i, event in enumerate(order)}
    mine = [event for event in order if event not in theirs]
    replayed = list(log.rewards_after(0, "linucb-abc"))
    assert [decision.event_id for _, decision, _ in replayed] == mine
    assert [seq for seq, _, _ in replayed] == [seqs[event] for event in mine]
    for _, decision, reward in replayed:
        expected = log.decision(decision.event_id)
        np.testing.assert_array_equal(decision.features, expected.features)
        assert (decision.action, decision.propensity) == (expected.action, expected.propensity)
        assert decision.model_version == "linucb-abc" and reward == order.index(decision.event_id)
    after = list(log.rewards_after(seqs[ours[2]], "linucb-abc"))
    assert [decision.event_id for _, decision, _ in after] == mine[2:]
    assert list(log.rewards_after(log.last_reward_seq(), "linucb-abc")) == []
    assert [d.event_id for _, d, _ in log.rewards_after(0, "other-1")] == theirs[:2]


def test_the_sampler_draws_are_counted_per_seed_with_the_decisions(log) -> None:
    seed = 2**63 - 1
    assert log.sampler_draws(seed) == 0
    for n in (7, 1, 250):
        log.log_decisions("linucb-abc", 0, **decisions(n), sampler_seed=seed)
    write(log, decisions(4))  # no seed: not counted
    log.log_decisions("linucb-abc", 0, **decisions(2), sampler_seed=5)
    assert log.sampler_draws(seed) == 258 and log.sampler_draws(5) == 2


def test_a_version_1_log_is_upgraded_and_its_rewards_numbered(log, tmp_path) -> None:
    events = write(log, decisions(50)) + write(log, decisions(2, seed=1))
    for i, event in enumerate([events[40], events[51], events[3]]):
        log.record_reward(event, float(i))
    log.close()
    with sqlite3.connect(log.path) as connection:  # back to the version-1 layout
        connection.executescript("""
            CREATE TABLE old (event_id TEXT PRIMARY KEY, reward REAL NOT NULL,
                              received_at REAL NOT NULL);
            INSERT INTO old SELECT event_id, reward, received_at FROM rewards ORDER BY seq;
            DROP TABLE rewards; ALTER TABLE old RENAME TO rewards;
            DROP TABLE sampler_draws; PRAGMA user_version = 1;
        """)  # fmt: skip
    out = tmp_path / "v1.csv"
    result = runner.invoke(app, ["log", "export", "--db", str(log.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    upgraded = DecisionLog(log.path)
    try:
        replayed = [(seq, d.event_id, r) for seq, d, r in upgraded.rewards_after(0, "linucb-abc")]
        assert replayed == [(1, events[40], 0.0), (2, events[51], 1.0), (3, events[3], 2.0)]
        assert upgraded.record_reward(events[0], 5.0).seq == 4
        assert upgraded.sampler_draws(0) == 0
    finally:
        upgraded.close()
    with sqlite3.connect(log.path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5


def test_one_writer_per_database(log, tmp_path) -> None:
    """A second writer is refused, naming the holder; readers and shared writers are not."""
    with pytest.raises(ValueError, match=rf"decisions\.db: already in use .*pid {os.getpid()}"):
        DecisionLog(log.path)
    link = tmp_path / "link.db"
    link.symlink_to(log.path)
    with pytest.raises(ValueError, match="already in use"):
        DecisionLog(link)
    shared = DecisionLog(log.path, exclusive=False)
    try:
        event = write(log, decisions(1))[0]
        assert shared.record_reward(event, 2.0).seq == 1
        assert log.record_reward(event, 2.0).duplicate
    finally:
        shared.close()
    out = tmp_path / "while-open.csv"
    result = runner.invoke(app, ["log", "export", "--db", str(log.path), "--out", str(out)])
    assert result.exit_code == 0 and "1 decisions" in result.stdout
    log.close()
    DecisionLog(log.path).close()  # released on close


# ---------------------------------------------------------------------------- export
def test_export_joins_decisions_with_rewards(log, tmp_path) -> None:
    first, second = decisions(30, seed=1), decisions(5, seed=2)
    write(log, first, customer_ids=[f"c{i}" for i in range(30)])
    write(log, second, updates=4)
    log.record_reward(first["event_ids"][3], -2.5)
    log.record_reward(second["event_ids"][4], 7.0)
    for suffix in ("parquet", "csv"):
        out = tmp_path / f"decisions.{suffix}"
        result = runner.invoke(app, ["log", "export", "--db", str(log.path), "--out", str(out),
                                     "--chunk-rows", "8"])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "35 decisions" in result.stdout
        if suffix == "parquet":
            rows = pq.read_table(out).to_pylist()
        else:
            with out.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
        assert [row["event_id"] for row in rows] == first["event_ids"] + second["event_ids"]
        for row, batch, k, reward in ((rows[3], first, 3, -2.5), (rows[34], second, 4, 7.0)):
            assert float(row["reward"]) == reward
            assert int(row["action_index"]) == batch["actions"][k]
            assert row["action"] == TABLE.names[batch["actions"][k]]
            assert float(row["propensity"]) == batch["probabilities"][k, batch["actions"][k]]
            for j, name in enumerate(TABLE.names):
                assert float(row[f"prob_{name}"]) == batch["probabilities"][k, j]
                assert str(row[f"allowed_{name}"]).lower() == str(batch["allowed"][k, j]).lower()
            for j, name in enumerate(FEATURE_NAMES):
                assert float(row[name]) == batch["features"][k, j]
        assert rows[0]["reward"] in (None, "") and rows[0]["customer_id"] == "c0"
        assert int(rows[34]["policy_updates"]) == 4 and rows[34]["customer_id"] in (None, "")


def test_export_of_an_empty_log(log, tmp_path) -> None:
    out = tmp_path / "empty.parquet"
    result = runner.invoke(app, ["log", "export", "--db", str(log.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows == 0 and "prob_no_action" in table.schema.names


def test_export_bad_input(log, tmp_path) -> None:
    export = ["log", "export", "--db", str(log.path), "--out"]
    assert_bad_input(runner.invoke(app, [*export, str(tmp_path / "x.xlsx")]), ".xlsx", ".parquet")
    assert_bad_input(runner.invoke(app, [*export, str(tmp_path / "x")]), "no extension")
    missing = ["log", "export", "--db", str(tmp_path / "none.db"), "--out", "x.csv"]
    assert_bad_input(runner.invoke(app, missing), "none.db")
    assert not (tmp_path / "none.db").exists()
    (tmp_path / "other.db").write_bytes(b"")
    other = ["log", "export", "--db", str(tmp_path / "other.db"), "--out", "x.csv"]
    assert_bad_input(runner.invoke(app, other), "not a recenv decision log")
    nowhere = [*export, str(tmp_path / "no" / "dir" / "x.csv")]
    assert_bad_input(runner.invoke(app, nowhere), "no such directory")


# ---------------------------------------------------------------------------- exploration
def test_epsilon_mixing() -> None:
    masks = np.array([[True, True, False, True], [True, False, False, False]])
    one_hot = np.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    q = Exploration("epsilon", epsilon=0.1).apply(one_hot, masks)
    np.testing.assert_allclose(q[0], [0.1 / 3, 0.9 + 0.1 / 3, 0.0, 0.1 / 3])
    np.testing.assert_allclose(q[1], [1.0, 0.0, 0.0, 0.0])


def test_temperature_explores_a_one_hot_policy() -> None:
    masks = np.array([[True, True, False, True]])
    one_hot = np.array([[0.0, 1.0, 0.0, 0.0]])
    q = Exploration("temperature", temperature=2.0).apply(one_hot, masks)
    floor = MIN_PROBABILITY**0.5
    np.testing.assert_allclose(q[0], np.array([floor, 1.0, 0.0, floor]) / (1.0 + 2 * floor))
    soft = np.array([[0.2, 0.5, 0.0, 0.3]])
    np.testing.assert_allclose(Exploration("temperature", temperature=1.0).apply(soft, masks), soft)
    flat = Exploration("temperature", temperature=1e3).apply(soft, masks)
    assert np.ptp(flat[0, masks[0]]) < 1e-3
    np.testing.assert_array_equal(Exploration("none").apply(one_hot, masks), one_hot)


def test_invalid_exploration_settings() -> None:
    for kwargs in ({"kind": "softmax"}, {"epsilon": 1.5}, {"temperature": 0.0}):
        with pytest.raises(ValueError):
            Exploration(**kwargs)


def test_sampling_follows_the_probabilities_and_never_picks_a_zero() -> None:
    probabilities = np.tile([0.0, 0.7, 0.0, 0.2, 0.1, 0.0], (200_000, 1))
    actions = sample_actions(probabilities, np.random.default_rng(0))
    frequencies = np.bincount(actions, minlength=6) / len(actions)
    np.testing.assert_allclose(frequencies, probabilities[0], atol=0.005)
    again = sample_actions(probabilities[:100], np.random.default_rng(0))
    np.testing.assert_array_equal(again, actions[:100])
    edge = np.array([[0.0, 1.0, 0.0, 0.0]])
    assert (sample_actions(np.repeat(edge, 1000, axis=0), np.random.default_rng(1)) == 1).all()


# ---------------------------------------------------------------------------- settings
def test_settings_come_from_recenv_environment_variables(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RECENV_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("RECENV_API_KEY", "from-env")
    monkeypatch.setenv("RECENV_EXPLORATION", "temperature")
    monkeypatch.setenv("RECENV_TEMPERATURE", "2.5")
    monkeypatch.setenv("RECENV_ASSUME_CONSENT", "push, email")
    settings = ServeSettings()
    assert settings.assume_consent == ("email", "push")
    assert settings.model_dir == tmp_path and settings.api_key.get_secret_value() == "from-env"
    assert settings.exploration == "temperature" and settings.temperature == 2.5
    assert settings.epsilon == 0.05  # the default
    assert "from-env" not in repr(settings)
    assert ServeSettings(model_dir=tmp_path, epsilon=0.2).epsilon == 0.2  # arguments win
    monkeypatch.setenv("RECENV_MAX_BATCH", "20000")
    with pytest.raises(ValueError, match="max_batch"):
        ServeSettings()


# ---------------------------------------------------------------------------- recenv serve
@pytest.fixture
def bandit_run(tmp_path) -> Path:
    """A run directory of an untrained LinUCB (no training needed for argument checks)."""
    directory = tmp_path / "run"
    policy = LinUCB(A, TABLE.names, random_state=0)
    policy.save(directory)
    info = RunInfo(
        algorithm="linucb", env_id="rec_env/Recommendation-v0",
        env={"profile": "default", "reward_mode": "profit"},
        feature_names=list(FEATURE_NAMES), action_names=list(TABLE.names), hyperparameters={},
        seed=0, recenv_version="0", **policy_digests(directory, policy),
    )  # fmt: skip
    write_run_info(directory, info)
    return directory


def test_serve_bad_input_is_one_line_and_exit_2(bandit_run, tmp_path) -> None:
    serve = ["serve", "--model"]
    assert_bad_input(runner.invoke(app, [*serve, str(tmp_path / "nope")]), "no such run")
    assert_bad_input(runner.invoke(app, [*serve, str(bandit_run), "--epsilon", "2"]), "--epsilon")
    bad_kind = [*serve, str(bandit_run), "--exploration", "greedy"]
    assert_bad_input(runner.invoke(app, bad_kind), "--exploration")
    assert_bad_input(runner.invoke(app, [*serve, str(bandit_run), "--port", "0"]), "--port")
    bad_channel = [*serve, str(bandit_run), "--assume-consent", "email,fax"]
    assert_bad_input(runner.invoke(app, bad_channel), "--assume-consent", "unknown channel 'fax'")
    bad_db = [*serve, str(bandit_run), "--db", str(tmp_path / "no" / "dir" / "d.db")]
    assert_bad_input(runner.invoke(app, bad_db), "decision log")
    run = json.loads((bandit_run / "run.json").read_text())
    run["files"]["state.npz"] = "0" * 64
    (bandit_run / "run.json").write_text(json.dumps(run))
    assert_bad_input(runner.invoke(app, [*serve, str(bandit_run)]), "SHA-256")
