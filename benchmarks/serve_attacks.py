"""Memory and liveness of the decision service under oversized requests (issue 10's attacks).

Starts ``recenv serve`` from a given command (so it measures any version of the code) on a free
port with a fresh ``--db``, warms it up, then runs each attack in turn while two threads watch
the server: one polls ``GET /health`` every 10 ms on its own keep-alive connection (latency,
max and p99), the other samples the server's resident memory every 10 ms (and, on Linux, resets
and reads its peak, ``VmHWM``). Extra RSS is the peak during the attack minus the RSS just
before it.

Attacks:

1. ``rows_1m_tiny``: one ``POST /v1/recommend/batch`` of 1,000,000 empty customers
   (``{"customers": [{}, {}, ...]}``, 3 MB: within the default body limit).
2. ``rows_90k_tiny``: 90,000 empty customers, the most JSON values a valid batch may hold (so
   parsed by pydantic, which stops at customer 10,001).
3. ``rows_1m_full``: one batch of 1,000,000 full customers (about 340 MB).
4. ``bodies_4x50mb``: four concurrent 50 MB batch bodies with a ``Content-Length``.
5. ``chunked_4x50mb``: the same sent in chunks, without a ``Content-Length``.

Goal: under 100 MB of extra RSS and ``/health`` within 50 ms throughout, each attack refused
(413 or 422).

Run from the repository root::

    python benchmarks/serve_attacks.py                                    # this checkout
    python benchmarks/serve_attacks.py --command /tmp/venv_before/bin/recenv   # older code
    python benchmarks/serve_attacks.py --attacks rows_1m_tiny,bodies_4x50mb --json attacks.json

Without ``--model`` the given command first trains a small LinUCB run (a few seconds). The
server runs in a temporary directory, so a ``python -c`` command there imports the installed
package rather than this checkout.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import select
import shlex
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
from _serve_process import free_port, start_server, train_small_run

DEFAULT_COMMAND = f"{shlex.quote(sys.executable)} -c 'from rec_env.cli.main import app; app()'"
EXTRA_RSS_GOAL_MB = 100.0
HEALTH_GOAL_MS = 50.0
POLL_EVERY = 0.01
MB = 1024 * 1024
_FEATURES = {
    "recency": 12, "frequency": 2, "monetary_value": 48.5, "engagement_score": 0.5,
    "discount_sensitive": 1, "free_shipping_preferred": 0, "email_opens": 0.07,
    "sms_response": 0.18, "push_response": 0.05, "last_purchase_days": 40,
    "days_since_contact": 9, "contacts_last_30d": 3, "discounts_last_90d": 5,
    "consent_email": 1, "consent_sms": 1, "consent_push": 0,
}  # fmt: skip


@dataclass(frozen=True)
class AttackResult:
    """One attack's measurements."""

    attack: str
    body_mb: float
    outcomes: list[str]
    seconds: float
    rss_before_mb: float
    extra_rss_mb: float
    health_polls: int
    health_max_ms: float
    health_p99_ms: float

    @property
    def passed(self) -> bool:
        """Refused, within the memory bound, and /health always answered in time."""
        refused = all(outcome.split()[0] in ("413", "422", "closed") for outcome in self.outcomes)
        return (
            refused
            and self.extra_rss_mb < EXTRA_RSS_GOAL_MB
            and self.health_max_ms <= HEALTH_GOAL_MS
        )


@contextmanager
def running_server(command: list[str], model: Path, directory: Path) -> Iterator[tuple[int, int]]:
    """Run ``recenv serve`` until the block ends; yield its port and process id."""
    port = free_port()
    server = start_server(command, model, directory / "decisions.db", port)
    try:
        yield port, server.pid
    finally:
        server.kill()
        server.wait()


# ---------------------------------------------------------------------------- watching
def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of ``/proc/<pid>/status`` in MB (NaN where there is none)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def reset_peak(pid: int) -> bool:
    """Reset the process's peak RSS (``VmHWM``; Linux, needs the right to write clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Watch:
    """Poll ``/health`` and sample RSS every 10 ms in two threads, between start and stop."""

    def __init__(self, port: int, pid: int) -> None:
        self.port, self.pid = port, pid
        self.latencies: list[float] = []
        self.rss: list[float] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll_health),
            threading.Thread(target=self._sample_rss),
        ]

    def __enter__(self) -> Watch:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _poll_health(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        while not self._stop.is_set():
            sent = time.perf_counter()
            try:
                connection.request("GET", "/health")
                connection.getresponse().read()
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                continue
            elapsed = time.perf_counter() - sent
            self.latencies.append(elapsed)
            time.sleep(max(0.0, POLL_EVERY - elapsed))
        connection.close()

    def _sample_rss(self) -> None:
        while not self._stop.wait(POLL_EVERY):
            self.rss.append(rss_mb(self.pid))


# ---------------------------------------------------------------------------- attacks
def post(port: int, body: bytes, chunked: bool = False) -> str:
    """POST a batch body; the status, or ``closed`` if the server hung up without one.

    The headers go first; if the server answers within 50 ms (a refusal on ``Content-Length``)
    the body is not sent, else it is, in 1 MB pieces (HTTP chunks if ``chunked``).
    """
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    head = (
        "POST /v1/recommend/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        sock.sendall(head.encode())
        try:
            if not select.select([sock], [], [], 0.05)[0]:
                for i in range(0, len(body), MB):
                    piece = body[i : i + MB]
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server hung up mid-body: its answer, if any, is waiting
        try:
            response = http.client.HTTPResponse(sock)
            response.begin()
            return f"{response.status} {response.read()[:80].decode(errors='replace')}"
        except (OSError, http.client.HTTPException) as exc:
            return f"closed ({type(exc).__name__})"


def rows(n: int, row: bytes) -> bytes:
    """A batch body of ``n`` copies of one customer's JSON."""
    return b'{"customers": [' + b",".join([row] * n) + b"]}"


def attacks() -> dict[str, tuple[Callable[[], bytes], int, bool]]:
    """Each attack: how to build its body, how many concurrent posts, whether chunked."""
    full = json.dumps(_FEATURES).encode()
    fifty_mb = 50 * MB // (len(full) + 1)
    return {
        "rows_1m_tiny": (lambda: rows(1_000_000, b"{}"), 1, False),
        "rows_90k_tiny": (lambda: rows(90_000, b"{}"), 1, False),
        "rows_1m_full": (lambda: rows(1_000_000, full), 1, False),
        "bodies_4x50mb": (lambda: rows(fifty_mb, full), 4, False),
        "chunked_4x50mb": (lambda: rows(fifty_mb, full), 4, True),
    }


def run_attack(name: str, port: int, pid: int) -> AttackResult:
    """Build the body, then post it while watching the server."""
    build, copies, chunked = attacks()[name]
    body = build()
    time.sleep(0.5)  # let the server settle after the previous attack
    before = rss_mb(pid)
    has_peak = reset_peak(pid)
    with Watch(port, pid) as watch, ThreadPoolExecutor(copies) as pool:
        time.sleep(0.2)  # some polls before the attack
        start = time.perf_counter()
        outcomes = list(pool.map(lambda _: post(port, body, chunked), range(copies)))
        seconds = time.perf_counter() - start
        time.sleep(0.2)
    peak = max([*watch.rss, rss_mb(pid, "VmHWM") if has_peak else float("nan")])
    ms = np.array(watch.latencies) * 1e3
    return AttackResult(
        attack=name, body_mb=len(body) / MB, outcomes=outcomes, seconds=seconds,
        rss_before_mb=before, extra_rss_mb=max(0.0, peak - before), health_polls=len(ms),
        health_max_ms=float(ms.max()) if ms.size else float("nan"),
        health_p99_ms=float(np.percentile(ms, 99)) if ms.size else float("nan"),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--command", default=DEFAULT_COMMAND, help="How to run `recenv`.")
    parser.add_argument("--model", type=Path, help="Run directory (default: train LinUCB).")
    parser.add_argument(
        "--attacks", default=",".join(attacks()), help="Comma-separated attacks to run."
    )
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    command = shlex.split(args.command)
    results = []
    with tempfile.TemporaryDirectory(prefix="recenv-attack-bench-") as tmp:
        directory = Path(tmp)
        model = args.model or train_small_run(command, directory)
        with running_server(command, model, directory) as (port, pid):
            warm = {"customers": [_FEATURES] * 100}
            httpx.post(f"http://127.0.0.1:{port}/v1/recommend/batch", json=warm, timeout=60)
            for name in args.attacks.split(","):
                results.append(run_attack(name, port, pid))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"command: {args.command}")
    print(f"{'attack':<16}{'body MB':>9}{'s':>7}{'RSS MB':>8}{'+RSS MB':>9}"
          f"{'health max':>12}{'p99 ms':>8}  outcome")  # fmt: skip
    for r in results:
        outcome = "; ".join(sorted(set(o[:60] for o in r.outcomes)))
        print(
            f"{r.attack:<16}{r.body_mb:>9.1f}{r.seconds:>7.2f}{r.rss_before_mb:>8.0f}"
            f"{r.extra_rss_mb:>9.1f}{r.health_max_ms:>12.1f}{r.health_p99_ms:>8.1f}  "
            f"{'PASS' if r.passed else 'FAIL'} {outcome}"
        )
    print(f"goal: refused, +RSS < {EXTRA_RSS_GOAL_MB:g} MB, /health <= {HEALTH_GOAL_MS:g} ms")
    if args.json:
        payload = [{**asdict(r), "passed": r.passed} for r in results]
        args.json.write_text(json.dumps({"command": args.command, "results": payload}, indent=2))


if __name__ == "__main__":
    main()
