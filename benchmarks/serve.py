"""Latency and throughput of the decision service, end to end over HTTP on loopback.

Starts ``recenv serve`` (one uvicorn worker) in a subprocess on a free port, drives it over
keep-alive connections for a fixed time per scenario, and reports p50 / p99 latency,
throughput and the server's CPU time per request:

1. ``recommend``: ``POST /v1/recommend``, one customer per request, one connection (latency
   without queueing), then ``recommend x4``: four connections (throughput).
2. ``explain``: ``POST /v1/recommend`` with ``"explain": true``, one connection.
3. ``batch``: ``POST /v1/recommend/batch``, 10,000 customers per request (column layout), two
   connections.

Then, in the same run, a second server serves a PPO run of ``rec_env/ItemRecommendation-v0``
(200 products, 601 actions; customers with all 52 features, item history included):

4. ``item rec``: ``POST /v1/recommend``, one connection: a product, its propensity and the five
   most probable actions;
5. ``item batch``: ``POST /v1/recommend/batch``, ``--item-batch`` customers per request (column
   layout, 10,000 by default), two connections; ``item batch 16`` sends the 16 strategy
   features only (no item history: the server fills in 36 columns).

And, in the same run, the floor (:func:`serve_rss.floor_server`): a bare FastAPI app under uvicorn
whose ``POST /v1/recommend`` parses the same body into a pydantic model and answers a small
constant, driven by the same client:

6. ``floor x4``: the bare app, four connections, measured alternately with ``recommend x4``
   (``--rounds`` times each; the pair of the median ratio is shown). ``recommend ÷ floor``,
   the ratio of their throughputs, has the goal ≥ 0.5: deciding and committing a decision
   costs at most as much as what any FastAPI endpoint costs.

Customers are drawn from the default population (the item world's after a few cycles in
operation) and their request bodies are encoded before the clock starts. The client is a
minimal asyncio HTTP/1.1 client: httpx costs about a millisecond of CPU per request, which on a
small machine saturates the client before the server. Goals (one worker): recommend p50 ≤ 3 ms
and ≥ 1,000 requests/s, explain p50 ≤ 60 ms, batch ≥ 50,000 customers/s; an item decision costs
the server at most 1.5 times the CPU of a strategy decision, and item batches reach 100,000
customers/s. Client and server share the machine's cores; ``srv cpu ms`` tells what the server
alone needs per request, and ``cust/cpu-s`` how many customers one worker decides per second of
its CPU (what it reaches with the client elsewhere). The load average is printed with the
results: on a shared machine, compare ratios measured in the same run.

Run from the repository root::

    python benchmarks/serve.py --model runs/ppo --item-model runs/item-ppo   # a minute or two
    python benchmarks/serve.py                         # trains small PPO runs first
    python benchmarks/serve.py --model runs/ppo --duration 2 --json serve.json
    python benchmarks/serve.py --model runs/ppo --floor-only   # recommend x4 and the floor only
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
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
from serve_rss import floor_server

from rec_env.features import FEATURES

RECOMMEND_P50_MS = 3.0
RECOMMEND_RPS = 1_000
EXPLAIN_P50_MS = 60.0
BATCH_CUSTOMERS_PER_S = 50_000
BATCH_SIZE = 10_000
ITEM_CPU_RATIO = 1.5
ITEM_BATCH_CUSTOMERS_PER_S = 100_000
FLOOR_RATIO = 0.5
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

    @property
    def customers_per_cpu_s(self) -> float:
        """Customers decided per second of the server's CPU."""
        return 1e3 * self.customers_per_request / self.server_cpu_ms


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def train_small_run(directory: Path, world: str = "strategy") -> Path:
    """A small PPO run of ``world`` (seconds of training) for when no run is given."""
    from rec_env.agents.training import train

    hyperparams = {"n_envs": 64, "n_steps": 16, "batch_size": 256}
    return train(
        "ppo", {"world": world}, steps=8192, out=directory / f"ppo-{world}",
        hyperparams=hyperparams, eval_customers=200, final_customers=200,
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


def draw_item_customers(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Feature names and ``(n, 52)`` customers of the default item world, rounded.

    Each is observed after 1 to 8 cycles in operation, so their item history is not empty.
    """
    from rec_env.agents.explain.background import operating_background
    from rec_env.settings import EnvSettings

    model = EnvSettings(world="item").build_model()
    customers = operating_background(n, model=model, seed=seed, cycles=8)
    return list(model.feature_names), np.round(customers.astype(np.float64), 4)


def recommend_bodies(
    customers: np.ndarray, explain: bool, names: list[str] | None = None
) -> list[bytes]:
    """One encoded ``/v1/recommend`` body per customer (explain: strategy runs only)."""
    names = names or [f.name for f in FEATURES]
    options = {"explain": explain} if explain else {}
    return [
        json.dumps({"features": dict(zip(names, row.tolist(), strict=True)), **options}).encode()
        for row in customers
    ]


def batch_body(customers: np.ndarray, names: list[str] | None = None) -> bytes:
    """One ``/v1/recommend/batch`` body in the column layout."""
    names = names or [f.name for f in FEATURES]
    columns = {name: customers[:, j].tolist() for j, name in enumerate(names)}
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
    """``(goal, passed, measured)`` for every goal whose scenarios were measured."""
    loaded = results[f"recommend x{concurrency}"]
    floor = results[f"floor x{concurrency}"]
    ratio = loaded.requests_per_s / floor.requests_per_s
    checks = [
        (f"recommend >= {RECOMMEND_RPS:,} req/s", loaded.requests_per_s >= RECOMMEND_RPS,
         f"{loaded.requests_per_s:,.0f} req/s"),
        (f"recommend x{concurrency} >= {FLOOR_RATIO:g} x floor req/s", ratio >= FLOOR_RATIO,
         f"{ratio:.2f} ({loaded.requests_per_s:,.0f} / {floor.requests_per_s:,.0f} req/s)"),
    ]  # fmt: skip
    if "recommend" not in results:  # --floor-only
        return checks
    recommend, explain, batch = results["recommend"], results["explain"], results["batch"]
    item, item_batch = results["item rec"], results["item batch"]
    item_ratio = item.server_cpu_ms / recommend.server_cpu_ms
    return [
        (f"recommend p50 <= {RECOMMEND_P50_MS:g} ms", recommend.p50_ms <= RECOMMEND_P50_MS,
         f"{recommend.p50_ms:.2f} ms"),
        *checks,
        (f"explain p50 <= {EXPLAIN_P50_MS:g} ms", explain.p50_ms <= EXPLAIN_P50_MS,
         f"{explain.p50_ms:.1f} ms"),
        (f"batch >= {BATCH_CUSTOMERS_PER_S:,} customers/s",
         batch.customers_per_s >= BATCH_CUSTOMERS_PER_S, f"{batch.customers_per_s:,.0f}/s"),
        (f"item rec srv cpu <= {ITEM_CPU_RATIO:g}x recommend's", item_ratio <= ITEM_CPU_RATIO,
         f"{item_ratio:.2f}x ({item.server_cpu_ms:.2f} / {recommend.server_cpu_ms:.2f} ms)"),
        (f"item batch >= {ITEM_BATCH_CUSTOMERS_PER_S:,} customers/s",
         item_batch.customers_per_s >= ITEM_BATCH_CUSTOMERS_PER_S,
         f"{item_batch.customers_per_s:,.0f}/s ({item_batch.customers_per_cpu_s:,.0f} per cpu-s)"),
    ]  # fmt: skip


def _median_pair(
    pairs: list[tuple[Result, Result]], ratio: Callable[[Result, Result], float]
) -> tuple[tuple[Result, Result], list[float]]:
    """The pair of the median ``ratio`` and every pair's ratio, in order."""
    ratios = [ratio(*pair) for pair in pairs]
    middle = sorted(range(len(pairs)), key=lambda k: ratios[k])[len(pairs) // 2]
    return pairs[middle], ratios


def _print(results: dict[str, Result]) -> None:
    """The table of results."""
    header = ("scenario", "requests", "p50 ms", "p99 ms", "req/s", "cust/s", "srv cpu ms")
    print(f"{header[0]:<14}" + "".join(f" {h:>9}" for h in header[1:]) + "  cust/cpu-s")
    for r in results.values():
        print(
            f"{r.scenario:<14} {r.requests:>9,} {r.p50_ms:>9.2f} {r.p99_ms:>9.2f} "
            f"{r.requests_per_s:>9,.0f} {r.customers_per_s:>9,.0f} {r.server_cpu_ms:>10.2f}"
            f" {r.customers_per_cpu_s:>11,.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", type=Path, help="Strategy run (default: train a small PPO).")
    parser.add_argument(
        "--item-model", type=Path, help="Item-world run (default: train a small PPO)."
    )
    parser.add_argument("--duration", type=float, default=6.0, help="Seconds per scenario.")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="Connections of the throughput run."
    )
    parser.add_argument(
        "--item-batch", type=int, default=BATCH_SIZE, help="Customers per item batch request."
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="Times recommend and item rec, and recommend xN and the floor, are measured "
        "alternately (the ratio's median).",
    )
    parser.add_argument(
        "--floor-only",
        action="store_true",
        help="Measure only recommend xN against the floor (no item run, explain or batch).",
    )
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()

    load = os.getloadavg()
    loaded, floor_name = f"recommend x{args.concurrency}", f"floor x{args.concurrency}"
    results: dict[str, Result] = {}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="recenv-serve-bench-") as tmp, ExitStack() as stack:
        model = args.model or train_small_run(Path(tmp))
        item_model = (
            None if args.floor_only else args.item_model or train_small_run(Path(tmp), "item")
        )
        customers = draw_customers(BATCH_SIZE)
        plain = recommend_bodies(customers[:2000], False)
        server = stack.enter_context(running_server(model, Path(tmp) / "decisions.db", free_port()))
        floor = stack.enter_context(floor_server(Path(tmp)))

        def run(scenario: str, target: tuple[str, int], path: str, bodies: list[bytes],
                size: int, connections: int) -> Result:  # fmt: skip
            return measure(target, scenario, path, bodies, size, connections, args.duration)

        floor_pairs = [
            (
                run(loaded, server, "/v1/recommend", plain, 1, args.concurrency),
                run(floor_name, floor, "/v1/recommend", plain, 1, args.concurrency),
            )
            for _ in range(args.rounds)
        ]
        (results[loaded], results[floor_name]), floor_ratios = _median_pair(
            floor_pairs, lambda r, f: r.requests_per_s / f.requests_per_s
        )
        if item_model is not None:
            explained = recommend_bodies(customers[:500], True)
            batches = [batch_body(np.roll(customers, k, axis=0)) for k in range(3)]
            names, item_customers = draw_item_customers(max(args.item_batch, 2000))
            item_plain = recommend_bodies(item_customers[:2000], False, names)
            item_batches = [
                batch_body(np.roll(item_customers, k, axis=0)[: args.item_batch], names)
                for k in range(3)
            ]
            no_history = [  # the 16 strategy features only: no history in any category
                batch_body(np.roll(item_customers, k, axis=0)[: args.item_batch, :16], names[:16])
                for k in range(3)
            ]
            item_server = stack.enter_context(
                running_server(item_model, Path(tmp) / "items.db", free_port())
            )
            pairs = [
                (
                    run("recommend", server, "/v1/recommend", plain, 1, 1),
                    run("item rec", item_server, "/v1/recommend", item_plain, 1, 1),
                )
                for _ in range(args.rounds)
            ]
            (results["recommend"], results["item rec"]), ratios = _median_pair(
                pairs, lambda strategy, item: item.server_cpu_ms / strategy.server_cpu_ms
            )
            results |= {
                "explain": run("explain", server, "/v1/recommend", explained, 1, 1),
                "batch": run("batch", server, "/v1/recommend/batch", batches, BATCH_SIZE, 2),
                "item batch": run(
                    "item batch", item_server, "/v1/recommend/batch", item_batches,
                    args.item_batch, 2,
                ),
                "item batch 16": run(
                    "item batch 16", item_server, "/v1/recommend/batch", no_history,
                    args.item_batch, 2,
                ),
            }  # fmt: skip
    print(f"model {model}, item model {item_model}")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average "
          f"{load[0]:.1f} before, {os.getloadavg()[0]:.1f} after")  # fmt: skip
    _print(results)
    print(
        f"recommend x{args.concurrency} / floor req/s by round: "
        + ", ".join(f"{r:.2f}" for r in floor_ratios)
    )
    if ratios:
        print("item rec / recommend srv cpu by round: " + ", ".join(f"{r:.2f}" for r in ratios))
    for goal, passed, measured in goals(results, args.concurrency):
        print(f"{'PASS' if passed else 'FAIL'}  {goal:<40} measured {measured}")
    if args.json:
        payload: dict[str, object] = {
            name: {**asdict(r), "requests_per_s": r.requests_per_s,
                   "customers_per_s": r.customers_per_s,
                   "customers_per_cpu_s": r.customers_per_cpu_s}
            for name, r in results.items()
        }  # fmt: skip
        payload["item_cpu_ratios"] = ratios
        payload["floor_ratios"] = floor_ratios
        payload["load_average"] = [load[0], os.getloadavg()[0]]
        payload["goals"] = [
            {"goal": g, "passed": p, "measured": m} for g, p, m in goals(results, args.concurrency)
        ]
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
