"""Nothing a served bandit learns is lost: durable snapshots, replay of the decision log after a
snapshot's watermark, rewards learned in seq order, the reward range, and a sampler stream that
continues across restarts."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from replay_checks import assert_same_state, relearned

from rec_env.agents.bandits import LinUCB
from rec_env.agents.training import train
from rec_env.catalog import ActionTable, load_catalog
from rec_env.features import FEATURE_NAMES
from rec_env.serve import state as state_module
from rec_env.serve.service import DecisionService, RewardOutOfRangeError
from rec_env.serve.settings import ServeSettings
from rec_env.serve.state import CURRENT_FILE, MANIFEST_FILE, PolicyStateStore

TABLE = ActionTable.from_catalog(load_catalog("strategy"))
A = TABLE.n_actions
RUN_SHA = "f" * 64


def learned_policy(n: int, seed: int = 0) -> LinUCB:
    policy = LinUCB(A, TABLE.names, random_state=0)
    rng = np.random.default_rng(seed)
    policy.update(rng.random((n, len(FEATURE_NAMES))), rng.integers(0, A, n), rng.random(n))
    return policy


def snapshots(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("snapshot-*"))


# ---------------------------------------------------------------------------- snapshots
def test_snapshots_keep_the_previous_one_and_record_their_watermark(tmp_path) -> None:
    store = PolicyStateStore(tmp_path, "linucb", RUN_SHA)
    assert store.load() is None
    paths = [store.save(learned_policy(10 * (i + 1)), 10 * (i + 1), 5 * (i + 1)) for i in range(3)]
    assert snapshots(tmp_path) == sorted(p.name for p in paths[1:])  # the last two
    assert (tmp_path / CURRENT_FILE).read_text() == paths[-1].name
    manifest = json.loads((paths[-1] / MANIFEST_FILE).read_text())
    assert manifest["reward_seq"] == 15 and manifest["n_updates"] == 30
    assert set(manifest["files"]) == {"policy.json", "state.npz"}
    restored = PolicyStateStore(tmp_path, "linucb", RUN_SHA).load()
    assert (restored.n_updates, restored.reward_seq) == (30, 15)
    assert_same_state(restored.policy, learned_policy(30))
    assert not list(tmp_path.glob(".*tmp"))  # no staging left


def test_a_snapshot_is_fsynced_before_it_is_renamed_and_before_the_old_one_goes(
    tmp_path, monkeypatch
) -> None:
    """Every file and directory is flushed before the rename that publishes it, ``CURRENT`` is
    flushed before it replaces the old one, and the old snapshot is deleted last."""
    events: list[tuple[str, str]] = []
    fsync, replace, rmtree = os.fsync, os.replace, shutil.rmtree

    def record_fsync(descriptor: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        fsync(descriptor)

    def record_replace(source, target) -> None:
        events.append(("replace", str(target)))
        replace(source, target)

    def record_rmtree(path, *args, **kwargs) -> None:
        events.append(("rmtree", str(path)))
        rmtree(path, *args, **kwargs)

    tmp_path = tmp_path.resolve()  # as /proc/self/fd names it
    store = PolicyStateStore(tmp_path, "linucb", RUN_SHA)
    first = store.save(learned_policy(5), 5, 5)
    monkeypatch.setattr(state_module.os, "fsync", record_fsync)
    monkeypatch.setattr(state_module.os, "replace", record_replace)
    monkeypatch.setattr(state_module.shutil, "rmtree", record_rmtree)
    second = store.save(learned_policy(9), 9, 9)
    third = store.save(learned_policy(12), 12, 12)
    assert not first.exists() and second.is_dir() and third.is_dir()
    staging = f"{tmp_path}/.{third.name}.tmp"
    order = {event: i for i, event in enumerate(events)}  # the last occurrence of each
    published = order[("replace", str(third))]
    for name in ("policy.json", "state.npz", MANIFEST_FILE):
        assert order[("fsync", f"{staging}/{name}")] < published
    assert order[("fsync", staging)] < published
    current = order[("replace", str(tmp_path / CURRENT_FILE))]
    assert order[("fsync", f"{tmp_path}/.{CURRENT_FILE}.tmp")] < current
    assert published < order[("fsync", str(tmp_path))]  # the rename itself is flushed
    assert current < order[("fsync", str(tmp_path))]
    assert order[("rmtree", str(first))] > order[("fsync", str(tmp_path))]  # deleted last


@pytest.mark.parametrize(
    "damage", ["garbage CURRENT", "truncated state", "deleted", "manifest", "manifest types"]
)
def test_a_damaged_live_snapshot_falls_back_to_the_previous_one(tmp_path, caplog, damage) -> None:
    store = PolicyStateStore(tmp_path, "linucb", RUN_SHA)
    store.save(learned_policy(10), 10, 7)
    newest = store.save(learned_policy(20), 20, 11)
    if damage == "garbage CURRENT":
        (tmp_path / CURRENT_FILE).write_bytes(b"\xff\x00 not a snapshot")
    elif damage == "truncated state":
        state = newest / "state.npz"
        state.write_bytes(state.read_bytes()[:100])
    elif damage == "deleted":
        shutil.rmtree(newest)
    elif damage == "manifest":
        (newest / MANIFEST_FILE).write_text('{"algorithm": "lin')
    else:
        manifest = json.loads((newest / MANIFEST_FILE).read_text())
        (newest / MANIFEST_FILE).write_text(json.dumps({**manifest, "reward_seq": "11"}))
    with caplog.at_level(logging.WARNING, logger="rec_env.serve.state"):
        restored = PolicyStateStore(tmp_path, "linucb", RUN_SHA).load()
    expected = (20, 11) if damage == "garbage CURRENT" else (10, 7)
    assert (restored.n_updates, restored.reward_seq) == expected
    assert_same_state(restored.policy, learned_policy(expected[0]))
    assert caplog.records, "a fallback is reported"


def test_no_intact_snapshot_starts_from_the_run_and_another_model_is_refused(
    tmp_path, caplog
) -> None:
    store = PolicyStateStore(tmp_path, "linucb", RUN_SHA)
    only = store.save(learned_policy(10), 10, 7)
    (only / "policy.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="rec_env.serve.state"):
        assert PolicyStateStore(tmp_path, "linucb", RUN_SHA).load() is None
    assert "no intact snapshot" in caplog.text
    with pytest.raises(ValueError, match="another model"):
        PolicyStateStore(tmp_path, "linucb", "0" * 64).load()
    with pytest.raises(ValueError, match="another model"):
        PolicyStateStore(tmp_path, "ucb1", RUN_SHA).load()


def test_a_snapshot_ahead_of_the_log_is_discarded_for_good(tmp_path) -> None:
    """After a power loss the log may lack its last rewards; a snapshot that learned them must
    never be restored, even once the log's seqs grow past its watermark again."""
    store = PolicyStateStore(tmp_path, "linucb", RUN_SHA)
    store.save(learned_policy(10), 10, 7)
    ahead = store.save(learned_policy(20), 20, 11)
    restored = PolicyStateStore(tmp_path, "linucb", RUN_SHA).load(max_reward_seq=9)
    assert (restored.n_updates, restored.reward_seq) == (10, 7)
    assert not ahead.exists() and (tmp_path / f"discarded-{ahead.name}").is_dir()
    again = PolicyStateStore(tmp_path, "linucb", RUN_SHA).load(max_reward_seq=50)
    assert again.reward_seq == 7


# ---------------------------------------------------------------------------- the service
@pytest.fixture(scope="module")
def ucb_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ucb1"
    return train("ucb1", steps=256, out=out, eval_customers=20, final_customers=20,
                 hyperparams={"n_envs": 64})  # fmt: skip


@pytest.fixture(scope="module")
def lin_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "linucb"
    return train("linucb", steps=256, out=out, eval_customers=20, final_customers=20,
                 hyperparams={"n_envs": 64})  # fmt: skip


def start(run: Path, directory: Path, **settings) -> DecisionService:
    settings = {"db": directory / "decisions.db", "seed": 0, "explain": False, **settings}
    return DecisionService.from_settings(ServeSettings(model_dir=run, **settings))


def crash(service: DecisionService) -> None:
    """Stop like ``kill -9``: no snapshot at shutdown (closing the log only frees its lock)."""
    service.log.close()


def customers(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.random((n, len(FEATURE_NAMES))) * 10
    obs[:, [FEATURE_NAMES.index(f"consent_{c}") for c in ("email", "sms", "push")]] = 1.0
    return obs, np.ones((n, A), dtype=bool)


def serve_and_reward(service: DecisionService, n: int, seed: int) -> list[str]:
    """``n`` decisions, each with a distinct reward; returns their event ids."""
    obs, allowed = customers(n, seed)
    events = service.decide(obs, allowed).event_ids
    rewards = np.random.default_rng(seed).normal(5.0, 20.0, n)
    for event, reward in zip(events, rewards, strict=True):
        assert service.reward(event, float(reward)).learned
    return events


def test_a_reward_whose_update_a_crash_lost_is_learned_at_restart(ucb_run, tmp_path) -> None:
    """The crash falls between logging a reward and learning it: the restart learns it from
    the log, and the client's retry is a duplicate that is not learned twice."""
    service = start(ucb_run, tmp_path, state_dir=tmp_path / "state")
    serve_and_reward(service, 5, seed=1)
    obs, allowed = customers(2, seed=2)
    lost = service.decide(obs, allowed).event_ids[0]
    service.log.record_reward(lost, 42.0)  # logged; the update dies with the process
    assert service.n_updates == 5
    crash(service)
    restarted = start(ucb_run, tmp_path, state_dir=tmp_path / "state")
    try:
        assert restarted.n_updates == 6
        retry = restarted.reward(lost, 42.0)
        assert retry.receipt.duplicate and not retry.learned and retry.n_updates == 6
        expected, n = relearned(ucb_run, tmp_path / "decisions.db", restarted.model_version)
        assert n == 6
        assert_same_state(restarted.policy, expected)
    finally:
        restarted.close()
    without_state = start(ucb_run, tmp_path)  # the log alone is enough, from the run
    try:
        assert without_state.n_updates == 6
        assert_same_state(without_state.policy, expected)
    finally:
        without_state.close()


def test_a_state_dir_serves_only_the_log_it_learned_from(ucb_run, tmp_path) -> None:
    """Snapshots of one log on another log would learn rewards that log never held."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start(ucb_run, tmp_path / "a", state_dir=tmp_path / "state", state_save_every=1)
    serve_and_reward(first, 3, seed=1)
    first.close()
    with pytest.raises(ValueError, match="another decision log"):
        start(ucb_run, tmp_path / "b", state_dir=tmp_path / "state")
    again = start(ucb_run, tmp_path / "a", state_dir=tmp_path / "state")  # its own log: fine
    try:
        assert again.n_updates == 3
    finally:
        again.close()


@pytest.mark.parametrize(
    "damage", ["garbage CURRENT", "truncated state", "deleted snapshot", "log lost commits"]
)
def test_a_damaged_state_dir_restores_every_logged_reward_once(lin_run, tmp_path, damage) -> None:
    state_dir = tmp_path / "state"
    service = start(lin_run, tmp_path, state_dir=state_dir, state_save_every=3)
    serve_and_reward(service, 8, seed=3)
    serve_and_reward(service, 5, seed=4)
    crash(service)
    newest = state_dir / (state_dir / CURRENT_FILE).read_text()
    assert len(list(state_dir.glob("snapshot-*"))) == 2
    if damage == "garbage CURRENT":
        (state_dir / CURRENT_FILE).write_text("snapshot-../../etc")
    elif damage == "truncated state":
        (newest / "state.npz").write_bytes((newest / "state.npz").read_bytes()[:64])
    elif damage == "deleted snapshot":
        shutil.rmtree(newest)
    else:  # a power loss took the last commits that the newest snapshot had learned
        with sqlite3.connect(tmp_path / "decisions.db") as connection:
            connection.execute("DELETE FROM rewards WHERE seq > 10")
    restarted = start(lin_run, tmp_path, state_dir=state_dir)
    try:
        expected, n = relearned(lin_run, tmp_path / "decisions.db", restarted.model_version)
        assert restarted.n_updates == n == (10 if damage == "log lost commits" else 13)
        assert_same_state(restarted.policy, expected)
    finally:
        restarted.close()


def test_concurrent_rewards_are_learned_in_seq_order(ucb_run, tmp_path) -> None:
    """A running mean depends on the order of its updates; the live bandit must follow the
    log's order, which a replay follows too."""
    service = start(ucb_run, tmp_path)
    obs, allowed = customers(240, seed=5)
    events = service.decide(obs, allowed).event_ids
    rewards = np.random.default_rng(5).normal(0.0, 300.0, len(events))
    chunks = np.array_split(np.arange(len(events)), 8)

    def post(indices: np.ndarray) -> None:
        for i in indices:
            service.reward(events[i], float(rewards[i]))

    threads = [threading.Thread(target=post, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        expected, n = relearned(ucb_run, tmp_path / "decisions.db", service.model_version)
        assert service.n_updates == n == len(events)
        assert_same_state(service.policy, expected)
    finally:
        service.close()


@pytest.mark.parametrize("reward", [1e308, -1e308, math.inf, -math.inf, math.nan, 1000.5, -2e3])
def test_rewards_out_of_range_are_neither_logged_nor_learned(ucb_run, tmp_path, reward) -> None:
    service = start(ucb_run, tmp_path)
    try:
        obs, allowed = customers(20, seed=6)
        event = service.decide(obs, allowed).event_ids[0]
        probabilities = service.policy.action_probabilities(obs, allowed)
        state = {k: v.copy() for k, v in service.policy.learned_arrays().items()}
        for _ in range(2):  # two such rewards on one arm used to put inf into the state
            with pytest.raises(RewardOutOfRangeError, match="outside the accepted range"):
                service.reward(event, reward)
        assert service.log.counts() == (20, 0) and service.n_updates == 0
        assert service.metrics.rewards["out_of_range"] == 2
        for name, array in service.policy.learned_arrays().items():
            np.testing.assert_array_equal(array, state[name])
        np.testing.assert_array_equal(service.policy.action_probabilities(obs, allowed),
                                      probabilities)  # fmt: skip
        assert service.reward(event, 1000.0).learned  # the bounds themselves are accepted
    finally:
        service.close()


def test_the_operator_sets_the_reward_range(ucb_run, tmp_path) -> None:
    service = start(ucb_run, tmp_path, reward_min=0.0, reward_max=10.0)
    try:
        obs, allowed = customers(2, seed=7)
        first, second = service.decide(obs, allowed).event_ids
        with pytest.raises(RewardOutOfRangeError):
            service.reward(first, -0.5)
        assert service.reward(second, 10.0).learned
    finally:
        service.close()


def test_replay_skips_logged_rewards_that_are_now_out_of_range(ucb_run, tmp_path) -> None:
    """A log written before the range existed may hold a poisoning reward: never learned."""
    service = start(ucb_run, tmp_path)
    serve_and_reward(service, 3, seed=8)
    obs, allowed = customers(1, seed=9)
    service.log.record_reward(service.decide(obs, allowed).event_ids[0], 1e308)
    crash(service)
    restarted = start(ucb_run, tmp_path)
    try:
        in_range = restarted.reward_in_range
        expected, n = relearned(ucb_run, tmp_path / "decisions.db", restarted.model_version,
                                in_range)  # fmt: skip
        assert restarted.n_updates == n == 3
        assert_same_state(restarted.policy, expected)
    finally:
        restarted.close()


def test_the_sampler_stream_continues_across_restarts(ucb_run, tmp_path) -> None:
    """With a fixed seed a restart continues the stream: the sessions together draw what one
    uninterrupted session draws, and the second does not repeat the first."""
    settings = {"seed": 11, "exploration": "epsilon", "epsilon": 1.0}  # uniform: draws show
    obs, allowed = customers(40, seed=10)

    def session(directory: Path, calls: list[slice]) -> np.ndarray:
        service = start(ucb_run, directory, **settings)
        try:
            return np.concatenate([service.decide(obs[c], allowed[c]).actions for c in calls])
        finally:
            service.close()

    calls = [slice(0, 15), slice(15, 40)]
    first = session(tmp_path, calls)
    second = session(tmp_path, calls)  # restarted on the same log
    (tmp_path / "once").mkdir()
    uninterrupted = session(tmp_path / "once", calls + calls)
    np.testing.assert_array_equal(np.concatenate([first, second]), uninterrupted)
    assert (first != second).mean() > 0.5


def test_without_a_seed_the_sampler_draws_fresh_entropy(ucb_run, tmp_path) -> None:
    service = start(ucb_run, tmp_path, seed=None)
    try:
        obs, allowed = customers(5, seed=12)
        service.decide(obs, allowed)
        assert service.log.sampler_draws(service.seed) == 0  # nothing to continue
    finally:
        service.close()
    again = start(ucb_run, tmp_path, seed=None)
    again.close()
    assert again.seed != service.seed


def test_no_database_is_created_before_the_model_and_state_are_loaded(ucb_run, tmp_path) -> None:
    # (the explainer is built by the first explanation: tests/test_serve_lean.py)
    PolicyStateStore(tmp_path / "state", "ucb1", "0" * 64).save(learned_policy(1), 1, 1)
    with pytest.raises(ValueError, match="another model"):
        start(ucb_run, tmp_path, state_dir=tmp_path / "state")
    assert not (tmp_path / "decisions.db").exists()
