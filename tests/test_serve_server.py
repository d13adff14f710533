"""``recenv serve`` as a real uvicorn process on a loopback port, under concurrent load."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from serve_process import running_server

from rec_env.agents.training import train
from rec_env.serve.schemas import EXAMPLE_FEATURES
from rec_env.serve.state import CURRENT_FILE, MANIFEST_FILE

KEY = {"X-API-Key": "test-key"}


@dataclass
class ServedRun:
    url: str
    process: subprocess.Popen
    db: Path
    state_dir: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServedRun]:
    directory = tmp_path_factory.mktemp("server")
    run = train("linucb", steps=1024, out=directory / "linucb", eval_customers=50,
                final_customers=50, hyperparams={"n_envs": 128})  # fmt: skip
    options = ["--state-dir", str(directory / "state"), "--no-explain", "--seed", "0",
               "--assume-consent", "email"]  # fmt: skip
    with running_server(run, directory, *options, api_key="test-key") as served:
        yield ServedRun(served.url, served.process, directory / "decisions.db", directory / "state")


def test_the_api_key_comes_from_the_environment_not_argv(server) -> None:
    """The README's way: RECENV_API_KEY=... recenv serve ...; `ps` shows no key."""
    command_line = Path(f"/proc/{server.process.pid}/cmdline").read_bytes().split(b"\0")
    assert b"test-key" not in command_line and b"--api-key" not in command_line
    assert httpx.get(f"{server.url}/v1/model").status_code == 401
    assert httpx.get(f"{server.url}/v1/model", headers=KEY).status_code == 200


def test_the_real_server_answers_over_http(server) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/health").json()["status"] == "ok"
        decision = client.post("/v1/recommend", json={"features": EXAMPLE_FEATURES}).json()
        assert decision["model_version"].startswith("linucb-")
        reward = f"/v1/events/{decision['event_id']}/reward"
        assert client.post(reward, json={"reward": 1.0}).status_code == 401
        assert client.post(reward, json={"reward": 1.0}, headers=KEY).json()["learned"] is True
        assert client.get("/v1/model", headers=KEY).json()["n_updates"] == 1
        assert client.get("/openapi.json").status_code == 200


def test_the_real_server_refuses_large_bodies_with_413(server) -> None:
    """Over the default 8 MiB: refused on Content-Length, and chunked bodies are cut off."""
    big = b'{"customers": [' + b"{}," * (3 * 2**20) + b"{}]}"  # 9 MiB

    def chunks():
        for start in range(0, len(big), 2**16):
            yield big[start : start + 2**16]

    for content in (big, chunks()):
        response = httpx.post(f"{server.url}/v1/recommend/batch", content=content, timeout=60)
        assert response.status_code == 413 and "8388608 bytes" in response.json()["detail"]
    tiny = b'{"customers": [' + b"{}," * 200_000 + b"{}]}"  # within the limit: scanned, 422
    response = httpx.post(f"{server.url}/v1/recommend/batch", content=tiny, timeout=60)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "customers"]
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_concurrent_decisions_and_rewards_are_logged_exactly_once(server) -> None:
    def session(worker: int) -> dict[str, float]:
        rewards: dict[str, float] = {}
        with httpx.Client(base_url=server.url, headers=KEY, timeout=30.0) as client:
            for i in range(12):
                if i % 4 == 0:
                    body = {"customers": [EXAMPLE_FEATURES] * 5}
                    events = client.post("/v1/recommend/batch", json=body).json()["event_ids"]
                else:
                    features = {**EXAMPLE_FEATURES, "recency": float(worker * 12 + i)}
                    events = [client.post("/v1/recommend", json={"features": features}).json()[
                        "event_id"]]  # fmt: skip
                for event in events:
                    value = float(worker + i)
                    for _ in range(2):  # the second post is a retry: not counted again
                        reply = client.post(f"/v1/events/{event}/reward", json={"reward": value})
                        assert reply.status_code == 200, reply.text
                    rewards[event] = value
        return rewards

    before = httpx.get(f"{server.url}/v1/model", headers=KEY).json()["n_updates"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(session, range(8)))
    rewards = {event: value for result in results for event, value in result.items()}
    assert len(rewards) == 8 * (3 * 5 + 9)
    after = httpx.get(f"{server.url}/v1/model", headers=KEY).json()["n_updates"]
    assert after - before == len(rewards)
    with sqlite3.connect(f"file:{server.db}?mode=ro", uri=True) as connection:
        logged = connection.execute(
            "SELECT d.event_id, COUNT(*), MAX(w.reward) FROM decisions AS d "
            "LEFT JOIN rewards AS w USING (event_id) GROUP BY d.event_id"
        ).fetchall()
        n_rewards = connection.execute("SELECT COUNT(*) FROM rewards").fetchone()[0]
    by_event = {event: (count, reward) for event, count, reward in logged}
    for event, value in rewards.items():
        assert by_event[event] == (1, value)
    assert n_rewards == before + len(rewards)


def test_the_operator_can_assume_consent_on_a_channel(server) -> None:
    """Started with --assume-consent email: unknown e-mail consent counts as given, unknown SMS
    and push consent as refused."""
    unknown = {k: v for k, v in EXAMPLE_FEATURES.items() if not k.startswith("consent_")}
    body = {"customers": [unknown] * 50, "include_probabilities": True}
    with httpx.Client(base_url=server.url, headers=KEY) as client:
        assert client.get("/v1/model").json()["assume_consent"] == ["email"]
        decisions = client.post("/v1/recommend/batch", json=body).json()
        single = client.post("/v1/recommend", json=unknown).json()
    names = decisions["action_names"]
    for row in [*decisions["probabilities"], [single["probabilities"][n] for n in names]]:
        by_name = dict(zip(names, row, strict=True))
        assert sum(p for n, p in by_name.items() if n.endswith("_email")) > 0
        assert all(p == 0 for n, p in by_name.items() if n.endswith(("_sms", "_push")))
    filled = {item["feature"]: item for item in single["filled_in"]}
    assert filled["consent_email"]["value"] == 1 and "assumed" in filled["consent_email"]["reason"]
    assert filled["consent_sms"]["value"] == filled["consent_push"]["value"] == 0


def test_stopping_the_server_saves_the_online_state(server) -> None:
    n_updates = httpx.get(f"{server.url}/v1/model", headers=KEY).json()["n_updates"]
    server.process.terminate()  # uvicorn shuts down gracefully, then re-raises SIGTERM
    assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    snapshot = server.state_dir / (server.state_dir / CURRENT_FILE).read_text()
    assert json.loads((snapshot / MANIFEST_FILE).read_text())["n_updates"] == n_updates > 0


def test_an_api_key_on_the_command_line_is_warned_about(tmp_path) -> None:
    from typer.testing import CliRunner

    from rec_env.cli.main import app

    missing = str(tmp_path / "no-run")
    on_argv = CliRunner().invoke(app, ["serve", "--model", missing, "--api-key", "s3cret"])
    assert "set RECENV_API_KEY" in on_argv.stderr
    from_env = CliRunner().invoke(app, ["serve", "--model", missing], env={"RECENV_API_KEY": "k"})
    assert "RECENV_API_KEY" not in from_env.stderr and from_env.exit_code == 2
    empty = CliRunner().invoke(app, ["serve", "--model", missing], env={"RECENV_API_KEY": ""})
    assert empty.exit_code == 2 and "--api-key" in empty.stderr and "empty" in empty.stderr
