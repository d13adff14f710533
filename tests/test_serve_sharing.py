"""One writer per decision log, and safe sharing when a caller opts out of the writer lock.

The default is to refuse: a second ``recenv serve`` on the same ``--db`` exits 2 with one
``error:`` line. Recording a reward is nevertheless one atomic statement, so writers in two
processes that do share a file (``DecisionLog(exclusive=False)``) store exactly one reward per
event and never fail on the unique constraint.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from rec_env.agents.training import train
from rec_env.cli.main import app
from rec_env.serve.decision_log import DecisionLog
from rec_env.serve.schemas import EXAMPLE_FEATURES

runner = CliRunner()
N_EVENTS = 1500
_SERVE = [sys.executable, "-c", "from rec_env.cli.main import app; app()", "serve"]

# A writer process: open the shared log, say it is ready, wait for "go", post every reward.
_REWARD_POSTER = """
import json, sys, time
from pathlib import Path
from rec_env.serve.decision_log import DecisionLog
db, events, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
events = json.loads(events.read_text())
log = DecisionLog(db, exclusive=False)
ready.touch()
while not go.exists():
    time.sleep(0.001)
receipts = [log.record_reward(event, float(i % 7)) for i, event in enumerate(events)]
log.close()
print(json.dumps([[r.seq, r.duplicate] for r in receipts]))
"""


def test_two_processes_sharing_a_log_store_each_reward_once(tmp_path) -> None:
    db = tmp_path / "decisions.db"
    log = DecisionLog(db)
    log.register_model("m-1", "linucb", "0" * 64, ["a", "b"])
    rng = np.random.default_rng(0)
    events = log.log_decisions(
        "m-1", 0, rng.random((N_EVENTS, 16)), np.ones((N_EVENTS, 2), dtype=bool),
        np.full((N_EVENTS, 2), 0.5), rng.integers(0, 2, N_EVENTS),
    )  # fmt: skip
    log.close()
    go, events_file = tmp_path / "go", tmp_path / "events.json"
    events_file.write_text(json.dumps(events))
    posters = []
    for k in range(2):
        ready = tmp_path / f"ready{k}"
        command = [sys.executable, "-c", _REWARD_POSTER, str(db), str(events_file), str(ready),
                   str(go)]  # fmt: skip
        posters.append((ready, subprocess.Popen(command, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)))  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not all(ready.exists() for ready, _ in posters):
            assert all(p.poll() is None for _, p in posters), posters[0][1].stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        go.touch()  # both post the same rewards in the same order, at the same time
        outputs = [poster.communicate(timeout=300) for _, poster in posters]
    finally:
        for _, poster in posters:
            if poster.poll() is None:
                poster.kill()
                poster.wait()
    for (_, poster), (_, err) in zip(posters, outputs, strict=True):
        assert poster.returncode == 0, err
    first, second = (json.loads(out) for out, _ in outputs)
    assert [seq for seq, _ in first] == [seq for seq, _ in second]  # same row, same number
    assert all(one != other for (_, one), (_, other) in zip(first, second, strict=True))
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT seq, event_id, reward FROM rewards").fetchall()
    assert sorted(seq for seq, _, _ in rows) == list(range(1, N_EVENTS + 1))
    stored = {event: reward for _, event, reward in rows}
    assert stored == {event: float(i % 7) for i, event in enumerate(events)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(run: Path, db: Path, log_file: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [*_SERVE, "--model", str(run), "--port", str(port), "--db", str(db),
               "--no-explain", "--log-level", "warning"]  # fmt: skip
    with log_file.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def wait_until_healthy(process: subprocess.Popen, url: str, log_file: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, log_file.read_text()
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_second_server_on_the_same_db_refuses_to_start(tmp_path) -> None:
    run = train("linucb", steps=512, out=tmp_path / "linucb", eval_customers=20,
                final_customers=20, hyperparams={"n_envs": 64}, progress=False)  # fmt: skip
    db = tmp_path / "decisions.db"
    first, url = start_server(run, db, tmp_path / "first.log")
    try:
        wait_until_healthy(first, url, tmp_path / "first.log")
        decision = httpx.post(f"{url}/v1/recommend", json={"features": EXAMPLE_FEATURES})
        assert decision.status_code == 200
        second, _ = start_server(run, db, tmp_path / "second.log")
        assert second.wait(timeout=120) == 2
        lines = (tmp_path / "second.log").read_text().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), lines
        assert str(db) in lines[0] and f"pid {first.pid}" in lines[0]
        assert "already in use" in lines[0] and "--db" in lines[0]
        out = tmp_path / "export.csv"  # readers do not need the lock
        result = runner.invoke(app, ["log", "export", "--db", str(db), "--out", str(out)])
        assert result.exit_code == 0 and "1 decisions" in result.stdout, result.output
        os.kill(first.pid, signal.SIGKILL)  # the kernel releases the lock of a killed server
        first.wait(timeout=30)
        DecisionLog(db).close()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
