"""Latency and throughput of the decision service, end to end over HTTP on loopback.

Starts ``recenv serve`` (one uvicorn worker) in a subprocess on a free port, drives it over
keep-alive connections for a fixed time per scenario, and reports p50 / p99 latency,
throughput and the server's CPU time per request:

1. ``recommend``: ``POST /v1/recommend``, one customer per request, one connection (latency
   without queueing), then ``recommend x4``: four connections (throughput).
2. ``explain``: ``POST /v1/recommend`` with ``"explain": true``, one connection.
3. ``batch``: ``POST /v1/recommend/batch``, 10,000 customers per request (column layout), two
   connections.

Customers are drawn from the default population and their request bodies are encoded before
the clock starts. The client is a minimal asyncio HTTP/1.1 client: httpx costs about a
millisecond of CPU per request, which on a small machine saturates the client before the
server. Goals (one worker): recommend p50 ≤ 3 ms and ≥ 1,000 requests/s, explain p50 ≤ 60 ms,
batch ≥ 50,000 customers/s. Client and server share the machine's cores; ``srv cpu ms`` tells
what the server alone needs per request.

Run from the repository root::

    python benchmarks/serve.py --model runs/ppo        # about half a minute
    python benchmarks/serve.py                         # trains a small PPO run first
    python benchmarks/serve.py --model runs/ppo --duration 2 --json serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

from rec_env.features import FEATURES

RECOMMEND_P50_MS = 3.0
RECOMMEND_RPS = 1_000
EXPLAIN_P50_MS = 60.0
BATCH_CUSTOMERS_PER_S = 50_000
BATCH_SIZE = 10_000
_SERVE = "from rec_env.cli.main import app; app()"


@dataclass(frozen=True)
class Result:
    """One scenario's measurements.

    ``server_cpu_ms`` is the server process's CPU time per request (Linux only, else NaN): what
    one worker could serve with the client elsewhere is about ``1000 / server_cpu_ms`` req/s.
    """

    scenario: str
    requests: int
    customers_per_request: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float

    @property
    def requests_per_s(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds

    @property
    def customers_per_s(self) -> float:
        """Decided customers per second."""
        return self.requests_per_s * self.customers_per_request


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def train_small_run(directory: Path) -> Path:
    """A small PPO run (a few seconds of training) for when no --model is given."""
    from rec_env.agents.training import train

    hyperparams = {"n_envs": 64, "n_steps": 16, "batch_size": 256}
    return train(
        "ppo", steps=8192, out=directory / "ppo", hyperparams=hyperparams,
        eval_customers=200, final_customers=200,
    )  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_server(model: Path, db: Path, port: int) -> Iterator[tuple[str, int]]:
    """Run ``recenv serve`` until the block ends; yield its base URL and process id."""
    command = [
        sys.executable, "-c", _SERVE, "serve", "--model", str(model), "--db", str(db),
        "--port", str(port), "--seed", "0", "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited: {server.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 120 s")
            time.sleep(0.2)
        yield url, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def draw_customers(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 16)`` customers of the default population, rounded like a CRM export."""
    from rec_env.agents.explain import population_background

    return np.round(population_background(n, seed=seed).astype(np.float64), 4)


def recommend_bodies(customers: np.ndarray, explain: bool) -> list[bytes]:
    """One encoded ``/v1/recommend`` body per customer."""
    names = [f.name for f in FEATURES]
    return [
        json.dumps(
            {"features": dict(zip(names, row.tolist(), strict=True)), "explain": explain}
        ).encode()
        for row in customers
    ]


def batch_body(customers: np.ndarray) -> bytes:
    """One ``/v1/recommend/batch`` body in the column layout."""
    columns = {f.name: customers[:, j].tolist() for j, f in enumerate(FEATURES)}
    return json.dumps({"columns": columns}).encode()


class _Connection:
    """A minimal HTTP/1.1 keep-alive client connection (POST with a JSON body).

    httpx spends about a millisecond of CPU per request on a small machine, which would make
    the client, not the server, the bottleneck; this client parses only the status line and
    ``content-length`` (uvicorn's JSON responses are never chunked).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        """Connect to ``host:port``."""
        return cls(*await asyncio.open_connection(host, port))

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """Send one request and read its response: ``(status, body)``."""
        head = (
            f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        """Close the connection."""
        self.writer.close()


async def _drive(
    url: str, path: str, bodies: list[bytes], concurrency: int, duration: float
) -> tuple[list[float], float]:
    """Post ``bodies`` round-robin from ``concurrency`` connections for ``duration`` seconds."""
    host, port = url.removeprefix("http://").split(":")
    connections = [await _Connection.open(host, int(port)) for _ in range(concurrency)]
    latencies: list[float] = []
    for k, connection in enumerate(connections):  # warm the connections up
        status, payload = await connection.post(path, bodies[k % len(bodies)])
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status}: {payload[:500]!r}")
    start = time.perf_counter()
    stop = start + duration

    async def worker(offset: int, connection: _Connection) -> None:
        i = offset
        while time.perf_counter() < stop:
            sent = time.perf_counter()
            status, payload = await connection.post(path, bodies[i % len(bodies)])
            latencies.append(time.perf_counter() - sent)
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status}: {payload[:500]!r}")
            i += concurrency

    await asyncio.gather(*(worker(k, c) for k, c in enumerate(connections)))
    elapsed = time.perf_counter() - start
    for connection in connections:
        connection.close()
    return latencies, elapsed


def measure(
    server: tuple[str, int],
    scenario: str,
    path: str,
    bodies: list[bytes],
    customers_per_request: int,
    concurrency: int,
    duration: float,
) -> Result:
    """Run one scenario and summarise it."""
    url, pid = server
    cpu = cpu_seconds(pid)
    latencies, elapsed = asyncio.run(_drive(url, path, bodies, concurrency, duration))
    cpu = cpu_seconds(pid) - cpu
    ms = np.array(latencies) * 1e3
    return Result(
        scenario, len(latencies), customers_per_request, elapsed,
        float(np.percentile(ms, 50)), float(np.percentile(ms, 99)),
        1e3 * cpu / (len(latencies) + concurrency),
    )  # fmt: skip


def goals(results: dict[str, Result], concurrency: int) -> list[tuple[str, bool, str]]:
    """``(goal, passed, measured)`` for every goal."""
    recommend, loaded = results["recommend"], results[f"recommend x{concurrency}"]
    explain, batch = results["explain"], results["batch"]
    return [
        (f"recommend p50 <= {RECOMMEND_P50_MS:g} ms", recommend.p50_ms <= RECOMMEND_P50_MS,
         f"{recommend.p50_ms:.2f} ms"),
        (f"recommend >= {RECOMMEND_RPS:,} req/s", loaded.requests_per_s >= RECOMMEND_RPS,
         f"{loaded.requests_per_s:,.0f} req/s"),
        (f"explain p50 <= {EXPLAIN_P50_MS:g} ms", explain.p50_ms <= EXPLAIN_P50_MS,
         f"{explain.p50_ms:.1f} ms"),
        (f"batch >= {BATCH_CUSTOMERS_PER_S:,} customers/s",
         batch.customers_per_s >= BATCH_CUSTOMERS_PER_S, f"{batch.customers_per_s:,.0f}/s"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", type=Path, help="Run directory (default: train a small PPO).")
    parser.add_argument("--duration", type=float, default=6.0, help="Seconds per scenario.")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="Connections of the throughput run."
    )
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="recenv-serve-bench-") as tmp:
        model = args.model or train_small_run(Path(tmp))
        customers = draw_customers(BATCH_SIZE)
        plain, explained = (
            recommend_bodies(customers[:2000], False),
            recommend_bodies(customers[:500], True),
        )
        batches = [batch_body(np.roll(customers, k, axis=0)) for k in range(3)]
        with running_server(model, Path(tmp) / "decisions.db", free_port()) as server:
            scenarios = [
                ("recommend", "/v1/recommend", plain, 1, 1),
                (f"recommend x{args.concurrency}", "/v1/recommend", plain, 1, args.concurrency),
                ("explain", "/v1/recommend", explained, 1, 1),
                ("batch", "/v1/recommend/batch", batches, BATCH_SIZE, 2),
            ]
            results = {
                name: measure(server, name, path, bodies, size, connections, args.duration)
                for name, path, bodies, size, connections in scenarios
            }
    print(f"model {model}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    header = ("scenario", "requests", "p50 ms", "p99 ms", "req/s", "cust/s", "srv cpu ms")
    print(f"{header[0]:<12}" + "".join(f" {h:>9}" for h in header[1:]))
    for r in results.values():
        print(
            f"{r.scenario:<12} {r.requests:>9,} {r.p50_ms:>9.2f} {r.p99_ms:>9.2f} "
            f"{r.requests_per_s:>9,.0f} {r.customers_per_s:>9,.0f} {r.server_cpu_ms:>10.2f}"
        )
    for goal, passed, measured in goals(results, args.concurrency):
        print(f"{'PASS' if passed else 'FAIL'}  {goal:<36} measured {measured}")
    if args.json:
        payload = {
            name: {**asdict(r), "requests_per_s": r.requests_per_s,
                   "customers_per_s": r.customers_per_s}
            for name, r in results.items()
        }  # fmt: skip
        payload["goals"] = [
            {"goal": g, "passed": p, "measured": m} for g, p, m in goals(results, args.concurrency)
        ]
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
