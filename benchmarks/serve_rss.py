"""Issue 14: the memory of an idle ``recenv serve`` replica against a bare FastAPI floor.

Starts, one after the other, real uvicorn processes on loopback, sends each the same 20
``POST /v1/recommend`` bodies (one customer of the default population, all 16 features), waits
a moment and reads the process's resident memory (``VmRSS`` of ``/proc/<pid>/status``):

* **the floor:** a bare FastAPI app under uvicorn whose ``/v1/recommend`` parses the same body
  into a pydantic model and answers a constant;
* ``recenv serve --no-explain``: a PPO run served without torch (its ``network.npz``);
* ``recenv serve``: explanations on, idle (the explainer is built by the first explanation);
* the same after one ``POST /v1/explain`` (what explaining loads: shap, numba's kernels);
* ``recenv serve --no-explain`` of the same run without ``network.npz`` (a run written before
  it existed): the torch path, as every run was served before.

The goal is an idle replica with explanations off within 3 times the floor. Linux only (reads
``/proc``). Half a minute, plus the training of a small PPO run if none is given::

    python benchmarks/serve_rss.py [--model runs/ppo-seed0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
from _serve_process import free_port, start_server, train_small_run

from rec_env.agents.explain import population_background
from rec_env.agents.runs import NETWORK_FILE, RUN_FILE
from rec_env.features import FEATURE_NAMES

GOAL_RATIO = 3.0
REQUESTS = 20
RECENV = (sys.executable, "-c", "from rec_env.cli.main import app; app()")

FLOOR_APP = """
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict


class RecommendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    features: dict[str, float]
    customer_id: str | None = None


app = FastAPI()


@app.post("/v1/recommend")
async def recommend(request: Request) -> dict:
    body = RecommendBody.model_validate_json(await request.body())
    return {"action": "no_action", "propensity": 1.0, "features": len(body.features)}


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}
"""


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def idle_rss(url: str, pid: int, body: bytes, explain: bool = False) -> float:
    """RSS after :data:`REQUESTS` recommendations (and one explanation if ``explain``)."""
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=60.0) as client:
        for _ in range(REQUESTS):
            client.post("/v1/recommend", content=body, headers=headers).raise_for_status()
        if explain:
            client.post("/v1/explain", content=body, headers=headers).raise_for_status()
    time.sleep(0.5)
    return rss_mb(pid)


def stop(server: subprocess.Popen) -> None:
    """Terminate ``server`` and wait for it."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@contextmanager
def floor_server(directory: Path) -> Iterator[tuple[str, int]]:
    """The bare FastAPI app under uvicorn; yields its URL and process id."""
    (directory / "floor_app.py").write_text(FLOOR_APP)
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "floor_app:app", "--port", str(port),
               "--log-level", "warning", "--no-access-log"]  # fmt: skip
    server = subprocess.Popen(command, cwd=directory)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the floor app did not start") from None
            time.sleep(0.05)
        yield url, server.pid
    finally:
        stop(server)


@contextmanager
def recenv_server(
    model: Path, directory: Path, options: Sequence[str]
) -> Iterator[tuple[str, int]]:
    """``recenv serve`` of ``model`` with ``options``; yields its URL and process id."""
    port = free_port()
    db = directory / f"decisions-{port}.db"
    server = start_server(RECENV, model, db, port, options)
    try:
        yield f"http://127.0.0.1:{port}", server.pid
    finally:
        stop(server)


def without_network(model: Path, directory: Path) -> Path:
    """A copy of run ``model`` without ``network.npz``, as runs were written before it."""
    copy = directory / f"{model.name}-torch"
    shutil.copytree(model, copy)
    (copy / NETWORK_FILE).unlink(missing_ok=True)
    info = json.loads((copy / RUN_FILE).read_text())
    info["files"].pop(NETWORK_FILE, None)
    (copy / RUN_FILE).write_text(json.dumps(info, indent=2))
    return copy


def main(argv: Sequence[str] | None = None) -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="PPO run directory (default: train one)")
    args = parser.parse_args(argv)
    customer = population_background(1, seed=0).astype(float)[0].round(4).tolist()
    body = json.dumps({"features": dict(zip(FEATURE_NAMES, customer, strict=True))}).encode()
    with tempfile.TemporaryDirectory(prefix="serve-rss-") as temporary:
        directory = Path(temporary)
        model = args.model.resolve() if args.model else None
        if model is None:
            model = train_small_run(RECENV, directory, "ppo", steps=2048)
        rows: list[tuple[str, float]] = []
        with floor_server(directory) as (url, pid):
            rows.append(("bare FastAPI floor (same body, pydantic)", idle_rss(url, pid, body)))
        with recenv_server(model, directory, ()) as (url, pid):
            rows.append(("recenv serve --no-explain (network.npz)", idle_rss(url, pid, body)))
        with recenv_server(model, directory, ("--explain",)) as (url, pid):
            rows.append(("recenv serve, explanations on, idle", idle_rss(url, pid, body)))
            rows.append(("  after its first /v1/explain", idle_rss(url, pid, body, True)))
        torch_run = without_network(model, directory)
        with recenv_server(torch_run, directory, ()) as (url, pid):
            rows.append(("recenv serve --no-explain, torch path", idle_rss(url, pid, body)))
    floor = rows[0][1]
    print(f"{'process':44s} {'RSS MB':>8s} {'x floor':>8s}")
    for name, rss in rows:
        print(f"{name:44s} {rss:8.1f} {rss / floor:8.2f}")
    lean = rows[1][1] / floor
    verdict = "met" if lean <= GOAL_RATIO else "NOT met"
    print(f"goal: explanations off within {GOAL_RATIO:g} x the floor: {verdict} ({lean:.2f} x)")


if __name__ == "__main__":
    main()
