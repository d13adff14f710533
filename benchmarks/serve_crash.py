"""Updates a served bandit loses per ``kill -9``, over N crash trials under concurrent load.

Starts ``recenv serve`` (from the given Python, so an older checkout can be measured too) on a
bandit run with a state directory, drives it with client threads that post decisions and
rewards (some retried, some for decisions of an earlier process, every reward whose answer the
crash swallowed posted again after the restart), kills it with SIGKILL at a seeded random time,
restarts it, and repeats. After each restart::

    lost = rewards in the decision log - the restarted server's n_updates (GET /v1/model)

counts the logged rewards the bandit did not learn; the per-crash figure is its increase. The
run has one model version, so every logged reward is one the bandit should have learned.

With ``--latency-seconds S`` it first measures single-customer recommend latency (p50, p99)
for S seconds alone and S seconds while another client posts rewards (each one a snapshot at
``--state-save-every 1``): decisions must not wait for the snapshots' disk writes.

Run from the repository root::

    python benchmarks/serve_crash.py                                    # this checkout
    python benchmarks/serve_crash.py --python /tmp/venv_before/bin/python --state-save-every 100
    python benchmarks/serve_crash.py --trials 20 --json crash.json
    python benchmarks/serve_crash.py --trials 0 --latency-seconds 10

Subprocesses run in a temporary directory, so ``--python`` imports its own installed
``rec_env`` rather than this checkout's.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
from _serve_process import free_port, start_server

_CLI = "from rec_env.cli.main import app; app()"
_CUSTOMER = {
    "recency": 12.0, "frequency": 2.0, "monetary_value": 48.5, "engagement_score": 0.5,
    "discount_sensitive": 1.0, "free_shipping_preferred": 0.0, "email_opens": 0.07,
    "sms_response": 0.18, "push_response": 0.05, "last_purchase_days": 40.0,
    "days_since_contact": 9.0, "contacts_last_30d": 3.0, "discounts_last_90d": 5.0,
    "consent_email": 1.0, "consent_sms": 1.0, "consent_push": 0.0,
}  # fmt: skip
"""One valid customer (the service's example); each request changes its recency."""


@dataclass
class Report:
    """Measurements of one benchmark run."""

    python: str
    algorithm: str
    state_save_every: int
    trials: int
    rewards_logged: int = 0
    updates_lost: int = 0
    lost_per_crash: list[int] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)
    latency: dict[str, dict[str, float]] = field(default_factory=dict)


class Load:
    """Client threads posting decisions and rewards to one server until it dies."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.pending: list[tuple[str, float]] = []  # rewards to post to a later process
        self.errors: list[str] = []
        self.acknowledged = 0  # rewards answered 200
        self._lock = threading.Lock()

    def run(self, url: str, seed: int, stop: threading.Event) -> list[threading.Thread]:
        """Start the client threads."""
        threads = [
            threading.Thread(target=self._client, args=(url, seed * 100 + i, stop), daemon=True)
            for i in range(self.clients)
        ]
        for thread in threads:
            thread.start()
        return threads

    def _client(self, url: str, seed: int, stop: threading.Event) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=10.0) as http:
            while not stop.is_set():
                with self._lock:
                    reward = self.pending.pop() if self.pending else None
                try:
                    if reward is None:
                        body = {**_CUSTOMER, "recency": rng.uniform(0, 365)}
                        event = http.post("/v1/recommend", json=body).json()["event_id"]
                        reward = (event, round(rng.gauss(5.0, 30.0), 2))
                        if rng.random() < 0.2:  # rewarded by a later process
                            with self._lock:
                                self.pending.append(reward)
                            continue
                    for _ in range(1 + (rng.random() < 0.2)):  # some retries
                        reply = http.post(
                            f"/v1/events/{reward[0]}/reward", json={"reward": reward[1]}
                        )
                        if reply.status_code != 200:
                            raise RuntimeError(f"{reply.status_code}: {reply.text[:200]}")
                        with self._lock:
                            self.acknowledged += 1
                except httpx.TransportError:  # killed: retry this reward after the restart
                    if reward is not None:
                        with self._lock:
                            self.pending.append(reward)
                    return
                except Exception as exc:  # reported, not lost in the thread
                    self.errors.append(repr(exc))
                    return


def _train(python: str, algorithm: str, directory: Path) -> Path:
    out = directory / algorithm
    command = [python, "-c", _CLI, "train", algorithm, "--steps", "256", "--out", str(out),
               "--eval-customers", "20", "--final-customers", "20", "--no-progress"]  # fmt: skip
    subprocess.run(command, cwd=directory, check=True, capture_output=True)
    return out


def _start(
    python: str, run: Path, directory: Path, save_every: int
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    options = ["--state-dir", str(directory / "state"), "--state-save-every", str(save_every)]
    process = start_server(
        [python, "-c", _CLI], run, directory / "decisions.db", port, options,
        log=directory / "server.log",
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def _lost(directory: Path, url: str) -> tuple[int, int]:
    """Rewards logged and, of them, not learned by the server at ``url``."""
    n_updates = httpx.get(f"{url}/v1/model", timeout=10.0).json()["n_updates"]
    with sqlite3.connect(directory / "decisions.db", timeout=30.0) as connection:
        logged = connection.execute("SELECT COUNT(*) FROM rewards").fetchone()[0]
    return logged, logged - n_updates


def _rewarding(url: str, stop: threading.Event, counter: list[int]) -> None:
    """Decide and reward one customer at a time until ``stop``."""
    with httpx.Client(base_url=url, timeout=10.0) as http:
        while not stop.is_set():
            event = http.post("/v1/recommend", json=_CUSTOMER).json()["event_id"]
            http.post(f"/v1/events/{event}/reward", json={"reward": 1.0}).raise_for_status()
            counter[0] += 1


def recommend_latency(url: str, seconds: float, with_rewards: bool) -> dict[str, float]:
    """p50 / p99 latency (ms) of single recommends, alone or beside a reward-posting client."""
    stop, counter = threading.Event(), [0]
    poster = threading.Thread(target=_rewarding, args=(url, stop, counter), daemon=True)
    if with_rewards:
        poster.start()
    latencies = []
    with httpx.Client(base_url=url, timeout=10.0) as http:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            http.post("/v1/recommend", json=_CUSTOMER).raise_for_status()
            latencies.append(time.perf_counter() - start)
    stop.set()
    if with_rewards:
        poster.join(timeout=30)
    p50, p99 = np.percentile(np.array(latencies) * 1e3, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99), "rewards_per_s": counter[0] / seconds}


def measure(
    python: str,
    algorithm: str,
    trials: int,
    save_every: int,
    clients: int,
    seed: int,
    latency_seconds: float = 0.0,
) -> Report:
    """Run ``trials`` crashes and count the updates lost by each."""
    report = Report(python, algorithm, save_every, trials)
    rng = np.random.default_rng(seed)
    load = Load(clients)
    with tempfile.TemporaryDirectory(prefix="serve-crash-") as tmp:
        directory = Path(tmp)
        run = _train(python, algorithm, directory)
        process, url = _start(python, run, directory, save_every)
        lost_before = 0
        try:
            if latency_seconds > 0:
                for name, with_rewards in (("alone", False), ("with rewards", True)):
                    report.latency[name] = recommend_latency(url, latency_seconds, with_rewards)
            for trial in range(trials):
                stop = threading.Event()
                before = load.acknowledged
                threads = load.run(url, seed * 1000 + trial, stop)
                deadline = time.monotonic() + 60
                while load.acknowledged == before and time.monotonic() < deadline:
                    time.sleep(0.01)  # kill only once the load has reached the server
                time.sleep(rng.uniform(0.0, 1.0))
                process.kill()  # SIGKILL: no shutdown, no snapshot
                process.wait()
                stop.set()
                for thread in threads:
                    thread.join(timeout=30)
                if load.errors:
                    raise RuntimeError(f"client errors: {load.errors[:3]}")
                process, url = _start(python, run, directory, save_every)
                report.rewards_logged, lost = _lost(directory, url)
                report.lost_per_crash.append(lost - lost_before)
                lost_before = lost
                print(
                    f"crash {trial + 1:>3}: {report.rewards_logged:>6} rewards logged, "
                    f"{lost:>4} not learned ({report.lost_per_crash[-1]} by this crash)",
                    flush=True,
                )
        finally:
            process.kill()
            process.wait()
        report.updates_lost = lost_before
        report.client_errors = load.errors
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="Python that runs recenv.")
    parser.add_argument("--algorithm", default="ucb1", help="Bandit to serve (a tiny run).")
    parser.add_argument("--trials", type=int, default=20, help="kill -9 trials.")
    parser.add_argument("--state-save-every", type=int, default=1, help="Server option.")
    parser.add_argument("--clients", type=int, default=3, help="Client threads.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill times.")
    parser.add_argument(
        "--latency-seconds", type=float, default=0.0, help="Measure recommend latency first."
    )
    parser.add_argument("--json", type=Path, help="Also write the report here.")
    args = parser.parse_args()
    report = measure(
        args.python,
        args.algorithm,
        args.trials,
        args.state_save_every,
        args.clients,
        args.seed,
        args.latency_seconds,
    )
    for name, figures in report.latency.items():
        print(
            f"recommend {name:>12}: p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} "
            f"ms ({figures['rewards_per_s']:.0f} rewards/s beside)"
        )
    if report.trials:
        per_crash = np.array(report.lost_per_crash)
        print(
            f"\n{report.python} ({report.algorithm}, --state-save-every "
            f"{report.state_save_every}): {report.updates_lost} of {report.rewards_logged} "
            f"logged rewards not learned after {report.trials} crashes; per crash: min "
            f"{per_crash.min()}, max {per_crash.max()}, mean {per_crash.mean():.2f}"
        )
    if report.client_errors:
        print(f"client errors: {report.client_errors[:5]}")
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
