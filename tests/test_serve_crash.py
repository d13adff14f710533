"""``kill -9`` of a real ``recenv serve`` under load, at random points: no update is lost.

Client threads post decisions and rewards (some retried, some for decisions of an earlier
process) while the server is killed at a seeded random time, then restarted, 12 times in all
over two bandits and a mix of ``--state-save-every`` and runs without a state directory. After
every restart the server has learned every logged reward of its model version
(``n_updates``); after the last, a clean stop saves its state, which must equal, bit for bit, a
fresh bandit of the run that learned every logged reward once in seq order.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from replay_checks import assert_same_state, logged_rewards, relearned

from rec_env.agents.runs import load_run
from rec_env.agents.training import train
from rec_env.serve.schemas import EXAMPLE_FEATURES
from rec_env.serve.state import PolicyStateStore

pytestmark = pytest.mark.slow  # about 40 s: 14 server starts

_SERVE = "from rec_env.cli.main import app; app()"
ALGORITHMS = ("ucb1", "linucb")
TRIALS = 6
"""Crashes per bandit: 12 in all."""
SAVE_EVERY = (1, 3, 10)
CLIENTS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Lineage:
    """One decision log and state directory, served by one process after another."""

    run: Path
    directory: Path
    pending: list[tuple[str, float]] = field(default_factory=list)  # rewards to (re)post
    errors: list[str] = field(default_factory=list)  # what client threads saw go wrong
    lock: threading.Lock = field(default_factory=threading.Lock)
    process: subprocess.Popen | None = None
    url: str = ""
    acknowledged: int = 0  # rewards answered 200

    @property
    def db(self) -> Path:
        return self.directory / "decisions.db"

    def launch(self, state_dir: bool, save_every: int) -> None:
        """Start a server process on this lineage's log (see :meth:`wait_until_serving`)."""
        port = free_port()
        command = [
            sys.executable, "-c", _SERVE, "serve", "--model", str(self.run), "--port", str(port),
            "--db", str(self.db), "--no-explain", "--seed", "0", "--log-level", "warning",
            "--state-save-every", str(save_every),
            *(["--state-dir", str(self.directory / "state")] if state_dir else []),
        ]  # fmt: skip
        with (self.directory / "server.log").open("a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"

    def wait_until_serving(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, (self.directory / "server.log").read_text()
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no snapshot."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def client(self, seed: int, stop: threading.Event) -> None:
        """Decide and reward until the server dies; keep unanswered rewards for a retry."""
        rng = random.Random(seed)
        with httpx.Client(base_url=self.url, timeout=10.0) as http:
            while not stop.is_set():
                reward: tuple[str, float] | None = None
                try:
                    with self.lock:
                        reward = self.pending.pop() if self.pending else None
                    if reward is None:
                        body = {**EXAMPLE_FEATURES, "recency": rng.uniform(0, 365)}
                        event = http.post("/v1/recommend", json=body).json()["event_id"]
                        reward = (event, round(rng.gauss(5.0, 30.0), 2))
                        if rng.random() < 0.2:  # rewarded by a later process
                            with self.lock:
                                self.pending.append(reward)
                            continue
                    for _ in range(1 + (rng.random() < 0.2)):  # some retries
                        reply = http.post(
                            f"/v1/events/{reward[0]}/reward", json={"reward": reward[1]}
                        )
                        if reply.status_code != 200:
                            raise RuntimeError(f"{reply.status_code}: {reply.text}")
                        with self.lock:
                            self.acknowledged += 1
                except httpx.TransportError:  # killed: the reward may or may not be logged
                    if reward is not None:
                        with self.lock:
                            self.pending.append(reward)
                    return
                except Exception as exc:  # reported by the test, not lost in the thread
                    self.errors.append(repr(exc))
                    return


def n_updates(lineage: Lineage) -> tuple[int, str]:
    model = httpx.get(f"{lineage.url}/v1/model", timeout=10.0).json()
    return model["n_updates"], model["model_version"]


def check_nothing_lost(lineage: Lineage) -> tuple[int, str]:
    """The restarted server has learned every logged reward of its version."""
    learned, version = n_updates(lineage)
    assert learned == sum(1 for _ in logged_rewards(lineage.db, version))
    return learned, version


@pytest.fixture(scope="module")
def lineages(tmp_path_factory) -> Iterator[list[Lineage]]:
    """A tiny run of each bandit, with its own log and state directory."""
    found = []
    for algorithm in ALGORITHMS:
        directory = tmp_path_factory.mktemp(f"crash-{algorithm}")
        run = train(algorithm, steps=256, out=directory / "run", eval_customers=20,
                    final_customers=20, hyperparams={"n_envs": 64})  # fmt: skip
        found.append(Lineage(run, directory))
    yield found
    for lineage in found:  # whatever failed, no server outlives the test
        lineage.kill()


def crash_under_load(lineages: list[Lineage], trial: int, rng: np.random.Generator) -> None:
    """Serve every lineage under load and kill each at its own random time."""
    stop = threading.Event()
    clients = [
        threading.Thread(target=lineage.client, args=(100 * trial + 10 * k + i, stop))
        for k, lineage in enumerate(lineages)
        for i in range(CLIENTS)
    ]
    try:
        for lineage in lineages:
            lineage.wait_until_serving()
            if trial:
                check_nothing_lost(lineage)
        before = [lineage.acknowledged for lineage in lineages]
        for client in clients:
            client.start()
        deadline = time.monotonic() + 60
        while any(lin.acknowledged == n for lin, n in zip(lineages, before, strict=True)):
            assert time.monotonic() < deadline, "no reward was acknowledged"
            time.sleep(0.01)  # the load has reached every server: kill them while it runs
        elapsed = 0.0
        for lineage, kill_at in zip(lineages, np.sort(rng.uniform(0.0, 1.0, len(lineages))),
                                    strict=True):  # fmt: skip
            time.sleep(kill_at - elapsed)
            elapsed = kill_at
            lineage.kill()
    finally:
        for lineage in lineages:
            lineage.kill()
        stop.set()
        for client in clients:
            if client.is_alive():
                client.join(timeout=30)


def test_kill_9_under_load_loses_no_update(lineages: list[Lineage]) -> None:
    rng = np.random.default_rng(0)
    for trial in range(TRIALS):  # the lineages run side by side: server starts use both cores
        with_state = trial % 4 != 3  # every fourth process runs without a state directory
        for lineage in lineages:
            lineage.launch(with_state, int(rng.choice(SAVE_EVERY)))
        crash_under_load(lineages, trial, rng)
        for lineage in lineages:
            assert not lineage.errors, lineage.errors
    for lineage in lineages:
        lineage.launch(True, 1)
    for lineage in lineages:
        try:
            lineage.wait_until_serving()
            n_rewards, version = check_nothing_lost(lineage)
        finally:
            lineage.process.terminate()  # a clean stop snapshots the state
            lineage.process.wait(timeout=60)
        assert n_rewards >= TRIALS  # every process learned under load
        info = load_run(lineage.run)[1]
        store = PolicyStateStore(lineage.directory / "state", info.algorithm, info.model_sha256)
        restored = store.load()
        expected, n = relearned(lineage.run, lineage.db, version)
        assert restored.n_updates == n == n_rewards
        assert_same_state(restored.policy, expected)
