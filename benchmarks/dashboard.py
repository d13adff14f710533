"""Issue 15: the live dashboard's data-load time on a decision log of 1 and 10 million decisions.

Builds a decision log of ``N`` strategy decisions by bulk ``executemany`` (the tables
``recenv serve`` writes, rows as it writes them): about one customer per request (90 % one,
the rest two to five), over the last 30 days with a daily cycle, actions drawn from a few
segments' probability vectors, 5 % of customers held out (no_action, propensity 1), 30 % of
requests with a 7-day reward window (closed unless younger than 7 days), and a final reward for
60 % of the decisions (10 % of them positive, about $25), numbered in the order received.

Then serves it (a random policy, ``recenv serve``'s app in process) and times
``GET /v1/dashboard/summary`` for the last 7 days by the hour, the page's one data request:

* **catch-up from empty:** from empty summary tables (a log that never had a dashboard): the
  calls (each folds in about :data:`~rec_env.serve.routes.dashboard.CATCH_UP_SECONDS` of the
  backlog and answers with what is summarised so far) until one answers ``caught_up``: their
  total time, the first call's and the slowest call's;
* **warm load:** the next call (nothing new to fold in), median of 20;
* **after traffic:** a call after 1,000 new decisions and 600 rewards were logged;

against two references in the same process: a bare ``SELECT COUNT(*)`` of the range's decisions
(what any query of the raw log over the range costs: ``requests`` has no index on its time), and
reading the summary rows of the range (``SELECT COUNT(*) FROM summary_decisions`` over it).

A minute at 1M, several at 10M (most of it building the log; ``--keep DIR`` keeps the logs for
another run)::

    OMP_NUM_THREADS=1 python benchmarks/dashboard.py --decisions 1000000 10000000 --keep /tmp/dash
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from rec_env.agents.baselines import RandomPolicy
from rec_env.agents.runs import RunInfo, policy_digests, write_run_info
from rec_env.catalog import ActionTable, load_catalog
from rec_env.serve import ServeSettings, create_app
from rec_env.serve.decision_log_schema import open_decision_log
from rec_env.serve.schemas import EXAMPLE_FEATURES

TABLE = ActionTable.from_catalog(load_catalog("strategy"))
A = TABLE.n_actions
DAY = 86400.0
DAYS = 30
CHUNK = 250_000
MODEL = "bench-1"


def build_log(path: Path, n_decisions: int, seed: int = 0) -> float:
    """Write a log of ``n_decisions`` at ``path``; the seconds it took."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    sizes = np.where(rng.random(n_decisions) < 0.9, 1, rng.integers(2, 6, n_decisions))
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n_decisions) + 1]
    sizes[-1] -= sizes.sum() - n_decisions
    n_requests = sizes.size
    now = time.time()
    # a daily cycle: more decisions by day than by night
    hours = rng.uniform(0, DAYS * 24, n_requests * 2)
    keep = rng.random(hours.size) < 0.6 + 0.4 * np.sin(2 * np.pi * (hours % 24) / 24)
    created = now - DAYS * DAY + hours[keep][:n_requests] * 3600
    created = np.sort(np.concatenate([created, np.full(n_requests - created.size, now - 60)]))
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    request_of = np.repeat(np.arange(n_requests), sizes)
    position = np.arange(n_decisions) - first[request_of]
    segments = rng.dirichlet(np.full(A, 0.7), 8)
    segment = rng.integers(0, 8, n_decisions)
    cumulative = segments.cumsum(axis=1)[segment]
    action = (rng.random((n_decisions, 1)) > cumulative).sum(axis=1).clip(0, A - 1)
    propensity = segments[segment, action]
    held = rng.random(n_decisions) < 0.05
    action[held], propensity[held] = TABLE.no_action, 1.0
    windowed = rng.random(n_requests) < 0.3
    decision_time = created[request_of]

    connection = open_decision_log(path, 30.0)
    connection.execute("PRAGMA synchronous=OFF")
    raw = connection.raw
    raw.execute(
        "INSERT INTO models (model_version, algorithm, sha256, action_names, registered_at) "
        "VALUES (?, 'bench', ?, ?, ?)",
        (MODEL, "0" * 64, json.dumps(list(TABLE.names)), now),
    )
    features = rng.random((CHUNK, 16)).tobytes()
    allowed, probs = np.ones(A, dtype=np.uint8).tobytes(), segments[0].tobytes()
    for lo in range(0, n_requests, CHUNK):
        hi = min(lo + CHUNK, n_requests)
        raw.execute("BEGIN")
        raw.executemany(
            "INSERT INTO requests (request_id, request_key, position_offset, created_at, "
            "model_version, policy_updates, n, features, allowed, probabilities) "
            "VALUES (?, ?, 0, ?, ?, 0, ?, ?, ?, ?)",
            (
                (i + 1, f"{i:032x}", created[i], MODEL, int(sizes[i]),
                 features[: 128 * sizes[i]], allowed * int(sizes[i]), probs * int(sizes[i]))
                for i in range(lo, hi)
            ),
        )  # fmt: skip
        raw.executemany(
            "INSERT INTO request_terms VALUES (?, ?, ?, ?, 0, ?)",
            (
                (i + 1, created[i], int(sizes[i]), 7 * DAY, int(created[i] < now - 7 * DAY))
                for i in range(lo, hi)
                if windowed[i]
            ),
        )
        raw.execute("COMMIT")
    for lo in range(0, n_decisions, CHUNK):
        hi = min(lo + CHUNK, n_decisions)
        raw.execute("BEGIN")
        raw.executemany(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            zip(
                (request_of[lo:hi] + 1).tolist(), position[lo:hi].tolist(),
                (_event_id(i) for i in range(lo, hi)), (f"c{i}" for i in range(lo, hi)),
                action[lo:hi].tolist(), propensity[lo:hi].tolist(),
                held[lo:hi].astype(int).tolist(),
                strict=True,
            ),
        )  # fmt: skip
        raw.execute("COMMIT")
    # final rewards: 60 % of the decisions, but not those of windows still open
    open_window = windowed[request_of] & (decision_time >= now - 7 * DAY)
    rewarded = np.flatnonzero((rng.random(n_decisions) < 0.6) & ~open_window)
    received = decision_time[rewarded] + np.where(
        windowed[request_of[rewarded]], 7 * DAY, rng.exponential(DAY, rewarded.size)
    )
    received = np.minimum(received, now)
    order = np.argsort(received, kind="stable")
    rewarded, received = rewarded[order], received[order]
    value = np.where(rng.random(rewarded.size) < 0.1, rng.normal(25, 10, rewarded.size), 0.0)
    defaulted = np.where(windowed[request_of[rewarded]] & (value == 0), 1, None)
    for lo in range(0, rewarded.size, CHUNK):
        hi = min(lo + CHUNK, rewarded.size)
        ids = rewarded[lo:hi]
        raw.execute("BEGIN")
        raw.executemany(
            "INSERT INTO rewards VALUES (?, ?, ?, ?, ?, ?, ?)",
            zip(
                range(lo + 1, hi + 1), (_event_id(i) for i in ids.tolist()),
                (request_of[ids] + 1).tolist(), position[ids].tolist(), value[lo:hi].tolist(),
                received[lo:hi].tolist(), defaulted[lo:hi].tolist(), strict=True,
            ),
        )  # fmt: skip
        raw.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return time.perf_counter() - start


def _event_id(i: int) -> str:
    """An event id as long as a real one (a UUID), unique per decision."""
    return f"00000000-0000-4000-8000-{i:012x}"


def write_run(directory: Path) -> Path:
    """A random policy's run directory (offline: nothing to replay at start-up)."""
    policy = RandomPolicy(A, action_names=TABLE.names)
    policy.save(directory)
    write_run_info(directory, RunInfo(
        algorithm=policy.algorithm, env_id="rec_env/Recommendation-v0", env={}, feature_names=[],
        action_names=list(TABLE.names), hyperparameters={}, seed=0, recenv_version="bench",
        **policy_digests(directory, policy),
    ))  # fmt: skip
    return directory


def _get(client: TestClient, since: float) -> tuple[float, dict]:
    start = time.perf_counter()
    reply = client.get("/v1/dashboard/summary", params={"since": str(since)})
    elapsed = time.perf_counter() - start
    reply.raise_for_status()
    return elapsed, reply.json()


def _timed(db: Path, sql: str, params: tuple) -> tuple[float, int]:
    with sqlite3.connect(db) as connection:
        start = time.perf_counter()
        value = connection.execute(sql, params).fetchone()[0]
        return time.perf_counter() - start, int(value)


def measure(db: Path, run: Path) -> dict[str, float]:
    """Time the dashboard's data loads on the log ``db`` (its summary tables dropped first)."""
    with sqlite3.connect(db) as connection:
        for table in ("decisions", "rewards", "received", "watermarks"):
            connection.execute(f"DROP TABLE IF EXISTS summary_{table}")
    settings = ServeSettings(model_dir=run, db=db, seed=0, explain=False)
    result: dict[str, float] = {}
    with TestClient(create_app(settings)) as client:
        since = time.time() - 7 * DAY
        calls, first = 0, 0.0
        while True:
            elapsed, data = _get(client, since)
            if calls == 0:
                result["first_call_s"] = elapsed
            result["slowest_call_s"] = max(result.get("slowest_call_s", 0.0), elapsed)
            calls, first = calls + 1, first + elapsed
            if data["catch_up"]["caught_up"]:
                break
        result.update(first_load_s=first, first_load_calls=calls)
        warm = [_get(client, since)[0] for _ in range(20)]
        result["warm_load_s"] = statistics.median(warm)
        result["warm_query_s"] = data["query_seconds"]
        result["decisions_in_range"] = data["rewards"]["decisions"]
        columns = {name: [value] * 100 for name, value in EXAMPLE_FEATURES.items()}
        for _ in range(10):
            events = client.post("/v1/recommend/batch", json={"columns": columns}).json()
            paid = [{"event_id": e, "reward": 1.0} for e in events["event_ids"][:60]]
            client.post("/v1/rewards/batch", json=paid).raise_for_status()
        result["after_traffic_s"], data = _get(client, since)
        result["after_traffic_folded"] = data["catch_up"]["decisions_folded"]
    first_hour = int(since // 3600)
    result["count_range_s"], counted = _timed(
        db,
        "SELECT COUNT(*) FROM decisions AS d JOIN requests AS r ON r.request_id = d.request_id "
        "WHERE r.created_at >= ?",
        (first_hour * 3600.0,),
    )
    result["summary_rows_s"], rows = _timed(
        db, "SELECT COUNT(*) FROM summary_decisions WHERE hour >= ?", (first_hour,)
    )
    result["summary_rows"] = rows
    result["counted_decisions"] = counted
    return result


def main() -> None:
    """Build each log (or reuse it) and print the times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--keep", type=Path, default=None, help="Keep (and reuse) logs here.")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="recenv-dashboard-"))
    directory.mkdir(parents=True, exist_ok=True)
    run = write_run(Path(tempfile.mkdtemp(prefix="recenv-run-")) / "random")
    for n in args.decisions:
        db = directory / f"decisions-{n}.db"
        if not db.exists():
            print(f"building {n:,} decisions …", flush=True)
            print(f"  built in {build_log(db, n):.1f} s ({db.stat().st_size / 1e9:.2f} GB)")
        result = measure(db, run)
        print(json.dumps({"decisions": n, **result}))
        print(
            f"{n:>12,} decisions: catch-up from empty {result['first_load_s']:.1f} s "
            f"({result['first_load_calls']} calls, the first {result['first_call_s']:.2f} s, "
            f"the slowest {result['slowest_call_s']:.2f} s), warm "
            f"{result['warm_load_s'] * 1000:.1f} ms, after 1,000 new decisions "
            f"{result['after_traffic_s'] * 1000:.1f} ms; COUNT(*) of the range's decisions "
            f"{result['count_range_s'] * 1000:.0f} ms "
            f"(warm load / count = {result['warm_load_s'] / result['count_range_s']:.3f}), "
            f"summary rows {result['summary_rows_s'] * 1000:.2f} ms"
        )


if __name__ == "__main__":
    main()
