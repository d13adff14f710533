"""The decision log's write-ahead log stays under ``wal_max_bytes`` while writes go on.

The bound is small here (1 MiB) and every transaction small (at most 40 customers: about ten
4 KiB pages), so the guarantee of :mod:`rec_env.serve.wal_bound` is exactly the bound: a writer
that finds the WAL past three quarters of it restarts it before writing, and the quarter
left is far more than one transaction. Without checkpoints that reset the WAL, these workloads
write several times the bound.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from itertools import pairwise

import numpy as np
import pytest

from rec_env.datasets import decision_log_tables
from rec_env.serve import wal_bound
from rec_env.serve.decision_log import DecisionLog
from rec_env.serve.exploration import sample_actions

BOUND = 1 << 20
N_ACTIONS = 4
MODEL = "linucb-wal"


def open_log(path, **kwargs) -> DecisionLog:
    log = DecisionLog(path, wal_max_bytes=BOUND, **kwargs)
    log.register_model(MODEL, "linucb", "0" * 64, [f"a{j}" for j in range(N_ACTIONS)])
    return log


def write_batch(log: DecisionLog, n: int, rng: np.random.Generator) -> list[str]:
    probabilities = rng.dirichlet(np.ones(N_ACTIONS), size=n)
    return log.log_decisions(
        MODEL, 0, rng.random((n, 16)), np.ones((n, N_ACTIONS), dtype=bool), probabilities,
        sample_actions(probabilities, rng),
    )  # fmt: skip


def assert_consistent(log: DecisionLog, n_decisions: int, n_rewards: int) -> None:
    assert log.counts() == (n_decisions, n_rewards)
    with sqlite3.connect(f"file:{log.path}?mode=ro", uri=True) as reader:
        assert reader.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_the_wal_stays_under_its_bound_under_concurrent_writes(tmp_path) -> None:
    log = open_log(tmp_path / "decisions.db")
    sizes: list[int] = []
    written = [0, 0]
    done = threading.Event()

    def writer(worker: int) -> None:
        rng = np.random.default_rng(worker)
        for i in range(120):
            events = write_batch(log, 1 + (i * 7) % 40, rng)
            sizes.append(log.wal_bytes())
            for event in events[::3]:
                log.record_reward(event, float(worker))
                sizes.append(log.wal_bytes())
            written[0] += len(events)
            written[1] += len(events[::3])

    def watcher() -> None:
        while not done.is_set():
            sizes.append(log.wal_bytes())
            time.sleep(0.002)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    watching = threading.Thread(target=watcher)
    try:
        watching.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        done.set()
        watching.join()
    assert 0 < max(sizes) <= BOUND
    assert_consistent(log, *written)
    log.close()


def test_a_writer_restarts_the_wal_when_the_background_thread_does_not(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(wal_bound, "POLL_INTERVAL", 3600.0)  # the thread sleeps throughout
    log = open_log(tmp_path / "decisions.db", checkpoint_interval=3600.0)
    rng = np.random.default_rng(0)
    sizes, n_decisions = [], 0
    for i in range(400):
        n_decisions += len(write_batch(log, 1 + i % 40, rng))
        sizes.append(log.wal_bytes())
    assert max(sizes) <= BOUND
    assert sum(b < a for a, b in pairwise(sizes)) >= 3  # cut back, again and again
    assert_consistent(log, n_decisions, 0)
    log.close()


def wal_frames(log: DecisionLog) -> int:
    """Frames in the WAL now (a PASSIVE checkpoint's report, from another connection)."""
    with sqlite3.connect(log.path) as other:
        return other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]


def test_the_background_thread_restarts_the_wal_past_half_the_bound(tmp_path) -> None:
    log = open_log(tmp_path / "decisions.db", checkpoint_interval=3600.0)
    rng = np.random.default_rng(0)
    n_decisions = 0
    while log.wal_bytes() < BOUND // 2:  # stops below 3/4: no writer restarts it
        n_decisions += len(write_batch(log, 40, rng))
    full = wal_frames(log)
    deadline = time.monotonic() + 30
    # once the thread has restarted the WAL, the next write starts it over: few frames, and
    # journal_size_limit cuts the file back to a quarter of the bound
    while True:
        n_decisions += len(write_batch(log, 1, rng))
        if wal_frames(log) < full // 10 and log.wal_bytes() <= BOUND // 4:
            break
        assert time.monotonic() < deadline, f"the WAL stayed at {log.wal_bytes()} bytes"
        time.sleep(0.05)
    assert_consistent(log, n_decisions, 0)
    log.close()


@pytest.mark.parametrize("bound", [0, -1])
def test_a_bound_must_be_positive(tmp_path, bound) -> None:
    with pytest.raises(ValueError, match="wal_max_bytes"):
        DecisionLog(tmp_path / "decisions.db", wal_max_bytes=bound)


def test_an_export_in_progress_does_not_keep_the_wal_from_restarting(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(decision_log_tables, "_GROUP_PAGE", 2)  # several pages of requests
    log = open_log(tmp_path / "decisions.db")
    rng = np.random.default_rng(0)
    sizes = [3, 1, 4, 1, 5, 9, 2]
    events = [event for n in sizes for event in write_batch(log, n, rng)]
    chunks = decision_log_tables.iter_decision_tables(log.path, chunk_rows=3)
    exported = next(chunks).column("event_id").to_pylist()
    write_batch(log, 2, rng)  # logged after the export started: not exported
    before = wal_frames(log)
    with log._lock:  # between two chunks the export holds no snapshot
        assert log._wal.restart(log._connection)
    write_batch(log, 1, rng)  # starts the WAL over (not exported either)
    assert wal_frames(log) < before
    exported += [event for chunk in chunks for event in chunk.column("event_id").to_pylist()]
    assert exported == events
    log.close()
