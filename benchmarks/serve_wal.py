"""Size of the decision log's write-ahead log (WAL) under sustained writes over HTTP.

Starts ``recenv serve`` from a given command (so it measures any version of the code) on a free
port with a fresh ``--db``, then for ``--duration`` seconds drives it from ``--threads`` client
threads, each on its own keep-alive connection: nine single ``POST /v1/recommend`` for every
``POST /v1/recommend/batch`` of ``--batch-size`` customers, and a reward for every single
decision and for one batch decision in ten. A sampler thread reads the size of ``<db>-wal`` every
100 ms. One batch and one single decision warm the server up first (they are counted in the
log check, not in the rates). When the clients stop, a read-only connection runs
``PRAGMA integrity_check`` and compares the logged decisions and rewards with those the server
acknowledged (HTTP 200), exactly; then the server is stopped.

Goal: the WAL stays under ``--wal-max-bytes`` (default 64 MiB) and the log is consistent.

Run from the repository root::

    python benchmarks/serve_wal.py                              # 60 s, this checkout
    python benchmarks/serve_wal.py --command "/tmp/venv_before/bin/recenv" --no-wal-option
    python benchmarks/serve_wal.py --duration 10 --json wal.json

Without ``--model`` the given command first trains a small LinUCB run (a few seconds). The
server runs in the temporary directory, so a ``python -c`` command there imports the installed
package rather than this checkout.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from _serve_process import free_port, start_server, train_small_run

from rec_env.features import FEATURES

DEFAULT_COMMAND = f"{shlex.quote(sys.executable)} -c 'from rec_env.cli.main import app; app()'"
DEFAULT_WAL_MAX_BYTES = 64 * 1024 * 1024
SAMPLE_EVERY = 0.1
MIB = 1024 * 1024


@dataclass
class ClientTally:
    """What one client thread sent and what the server acknowledged."""

    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    decisions: list[str] = field(default_factory=list)
    rewards: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    """The measurements of one run."""

    command: str
    wal_max_bytes: int | None
    seconds: float
    requests: int
    requests_per_s: float
    p99_ms: float
    max_ms: float
    max_wal_bytes: int
    db_bytes: int
    integrity: str
    acknowledged_decisions: int
    logged_decisions: int
    acknowledged_rewards: int
    logged_rewards: int
    rewards_match: bool
    errors: dict[str, int]


def request_bodies(batch_size: int, seed: int = 0) -> tuple[list[bytes], list[bytes]]:
    """Encoded single-customer and batch bodies drawn from the default population."""
    from rec_env.agents.explain import population_background

    customers = np.round(population_background(2000, seed=seed).astype(np.float64), 4)
    names = [f.name for f in FEATURES]
    singles = [
        json.dumps({"features": dict(zip(names, row.tolist(), strict=True))}).encode()
        for row in customers
    ]
    batches = []
    for k in range(8):
        rows = np.roll(customers, k * 97, axis=0)[:batch_size]
        batches.append(
            json.dumps({"columns": {n: rows[:, j].tolist() for j, n in enumerate(names)}}).encode()
        )
    return singles, batches


def _post(connection: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, dict]:
    connection.request("POST", path, body, {"content-type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    return response.status, (json.loads(payload) if response.status == 200 else {})


def client(
    port: int,
    worker: int,
    bodies: tuple[list[bytes], list[bytes]],
    stop_at: float,
    tally: ClientTally,
    iterations: int | None = None,
) -> None:
    """Post decisions and rewards until ``stop_at``, counting what the server acknowledged.

    Each iteration is one decision request and the rewards of its decisions; ``iterations``
    caps their number (for the warm-up).
    """
    singles, batches = bodies
    rng = np.random.default_rng(worker)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    i = 0
    while time.perf_counter() < stop_at and (iterations is None or i < iterations):
        batch = i % 10 == 0
        path, body = (
            ("/v1/recommend/batch", batches[i % len(batches)])
            if batch
            else ("/v1/recommend", singles[(worker * 7919 + i) % len(singles)])
        )
        calls = [(path, body, None)]
        while calls:
            path, body, reward_of = calls.pop()
            sent = time.perf_counter()
            status, payload = _post(connection, path, body)
            tally.latencies.append(time.perf_counter() - sent)
            tally.requests += 1
            if status != 200:
                tally.errors[str(status)] = tally.errors.get(str(status), 0) + 1
            elif reward_of is not None:
                if not payload["duplicate"]:
                    tally.rewards[reward_of[0]] = reward_of[1]
            else:
                events = payload["event_ids"] if batch else [payload["event_id"]]
                tally.decisions.extend(events)
                for event in events[:: 10 if batch else 1]:
                    value = round(float(rng.uniform(-5.0, 20.0)), 2)
                    reward_body = json.dumps({"reward": value}).encode()
                    calls.append((f"/v1/events/{event}/reward", reward_body, (event, value)))
        i += 1
    connection.close()


def sample_wal(db: Path, stop: threading.Event, sizes: list[int]) -> None:
    """Append the WAL file's size every :data:`SAMPLE_EVERY` seconds until ``stop``."""
    wal = Path(f"{db}-wal")
    while not stop.wait(SAMPLE_EVERY):
        try:
            sizes.append(wal.stat().st_size)
        except FileNotFoundError:
            sizes.append(0)


def check_log(db: Path, tallies: list[ClientTally]) -> dict:
    """Integrity and exact counts of the log against what the clients were acknowledged."""
    decisions = {event for tally in tallies for event in tally.decisions}
    rewards = {event: value for tally in tallies for event, value in tally.rewards.items()}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as reader:
        integrity = "; ".join(row[0] for row in reader.execute("PRAGMA integrity_check"))
        logged_decisions = reader.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
        logged = dict(reader.execute("SELECT event_id, reward FROM rewards"))
    return {
        "integrity": integrity,
        "acknowledged_decisions": len(decisions),
        "logged_decisions": int(logged_decisions),
        "acknowledged_rewards": len(rewards),
        "logged_rewards": len(logged),
        "rewards_match": logged == rewards,
    }


def run(args: argparse.Namespace, directory: Path) -> Report:
    """Start the server, load it, sample the WAL, check the log, stop the server."""
    command = shlex.split(args.command)
    model = args.model or train_small_run(command, directory)
    db, port = directory / "decisions.db", free_port()
    wal_max_bytes = None if args.no_wal_option else args.wal_max_bytes
    bodies = request_bodies(args.batch_size)
    options = [] if wal_max_bytes is None else ["--wal-max-bytes", str(wal_max_bytes)]
    server = start_server(command, model, db, port, options)
    try:
        warm_up = ClientTally()  # the first batch and single: lazy imports, compilation
        client(port, args.threads, bodies, float("inf"), warm_up, iterations=2)
        tallies = [ClientTally() for _ in range(args.threads)]
        sizes: list[int] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_wal, args=(db, stop, sizes))
        start = time.perf_counter()
        clients = [
            threading.Thread(target=client, args=(port, k, bodies, start + args.duration, t))
            for k, t in enumerate(tallies)
        ]
        sampler.start()
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        elapsed = time.perf_counter() - start
        stop.set()
        sampler.join()
        checked = check_log(db, [*tallies, warm_up])
        db_bytes = db.stat().st_size
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    requests = sum(t.requests for t in tallies)
    ms = np.array([x for t in tallies for x in t.latencies]) * 1e3
    errors: dict[str, int] = {}
    for tally in tallies:
        for status, count in tally.errors.items():
            errors[status] = errors.get(status, 0) + count
    return Report(
        command=args.command, wal_max_bytes=wal_max_bytes, seconds=elapsed, requests=requests,
        requests_per_s=requests / elapsed, p99_ms=float(np.percentile(ms, 99)),
        max_ms=float(ms.max()), max_wal_bytes=max(sizes, default=0), db_bytes=db_bytes,
        errors=errors, **checked,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--command", default=DEFAULT_COMMAND, help="How to run `recenv`.")
    parser.add_argument("--model", type=Path, help="Run directory (default: train LinUCB).")
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds of load.")
    parser.add_argument("--threads", type=int, default=4, help="Client threads.")
    parser.add_argument("--batch-size", type=int, default=100, help="Customers per batch.")
    parser.add_argument("--wal-max-bytes", type=int, default=DEFAULT_WAL_MAX_BYTES)
    parser.add_argument(
        "--no-wal-option", action="store_true", help="Leave --wal-max-bytes out (older code)."
    )
    parser.add_argument("--json", type=Path, help="Also write the report here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="recenv-wal-bench-") as tmp:
        report = run(args, Path(tmp))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"command: {report.command}  --wal-max-bytes {report.wal_max_bytes}")
    print(
        f"{report.requests:,} requests in {report.seconds:.1f} s: "
        f"{report.requests_per_s:,.0f} req/s, p99 {report.p99_ms:.1f} ms, "
        f"max {report.max_ms:.0f} ms; errors {report.errors or 'none'}"
    )
    print(f"max WAL {report.max_wal_bytes / MIB:,.1f} MiB; db {report.db_bytes / MIB:,.1f} MiB")
    print(
        f"integrity_check: {report.integrity}; decisions logged/acknowledged "
        f"{report.logged_decisions:,}/{report.acknowledged_decisions:,}; rewards "
        f"{report.logged_rewards:,}/{report.acknowledged_rewards:,} "
        f"({'identical' if report.rewards_match else 'DIFFERENT'})"
    )
    bound = report.wal_max_bytes or DEFAULT_WAL_MAX_BYTES
    passed = report.max_wal_bytes <= bound and report.integrity == "ok"
    passed = passed and report.logged_decisions == report.acknowledged_decisions
    passed = passed and report.rewards_match
    print(f"{'PASS' if passed else 'FAIL'}  WAL <= {bound / MIB:g} MiB and the log is consistent")
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
