"""Schemathesis against a real ``recenv serve``: every check, bounded examples.

The server (a strategy run, then an item run) runs as a subprocess with an API key (from the
environment) and explanations on;
schemathesis reads its OpenAPI schema and sends generated requests (the schema's examples, its
coverage cases, then fuzzed valid and invalid data) with the key. Any 5xx, any response that
breaks the schema, any invalid request accepted or valid request refused fails the test; the
only refusals let through are the two constraints JSON Schema cannot express (see
``schemathesis_hooks.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serve_process import running_server

from rec_env.agents.training import train
from rec_env.serve.schemas import EXAMPLE_FEATURES
from rec_env.settings import EnvSettings

TESTS = Path(__file__).parent
KEY = "schemathesis-key"
# Runs are trained on an 8-cycle horizon with one learning-curve evaluation: every evaluation
# rolls a cohort over the whole horizon, the server never reads it, and the item run's
# evaluations cost more than its training at the default 52.
SHORT = EnvSettings(horizon=8)

pytestmark = pytest.mark.usefixtures("one_thread")  # the runs' training, not the servers


def _schemathesis(url: str, event_id: str, directory: Path, max_examples: int, phases: str) -> dict:
    """Run schemathesis against the server at ``url``; its JSON report (asserting exit 0)."""
    config = directory / "schemathesis.toml"
    config.write_text(f'[parameters]\nevent_id = "{event_id}"\n')
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
        f"{url}/openapi.json", "--checks", "all", "--header", f"X-API-Key: {KEY}",
        "--max-examples", str(max_examples), "--seed", "10",
        "--phases", phases, "--generation-database", "none", "--no-color",
        "--workers", "1", "--request-timeout", "20", "--suppress-health-check", "all",
        "--report", "json", "--report-json-path", str(directory / "report.json"),
    ]  # fmt: skip
    python_path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "PYTHONPATH": python_path}
    result = subprocess.run(  # in directory: schemathesis keeps a cache in its directory
        command, env=env, cwd=directory, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    report: dict = json.loads((directory / "report.json").read_text())
    assert report["operations"]["tested"] == report["operations"]["total"] == 13
    assert report["failures"] == [] and report["errors"] == []
    assert not report["warnings"]["missing_test_data"]  # rewards reach a logged decision
    return report


@pytest.mark.slow
def test_schemathesis_finds_no_failure(tmp_path) -> None:
    run = train("linucb", SHORT, steps=1024, out=tmp_path / "linucb", eval_every=1024,
                eval_customers=50, final_customers=50, hyperparams={"n_envs": 128})  # fmt: skip
    with running_server(run, tmp_path, "--seed", "0", api_key=KEY) as server:
        decision = httpx.post(f"{server.url}/v1/recommend", json={"features": EXAMPLE_FEATURES})
        report = _schemathesis(
            server.url, decision.json()["event_id"], tmp_path, 15, "examples,coverage,fuzzing"
        )
    assert report["test_cases"]["generated"] > 500


@pytest.mark.slow
def test_schemathesis_finds_no_failure_on_an_item_server(tmp_path) -> None:
    """The same checks against a PPO run of the item world: its features, products, and
    explanations of why this product (one background customer keeps them cheap).

    The coverage phase is left out to keep this under half a minute: with 52 features it
    generates about 7,000 cases (70 s); it passes too (``"examples,coverage,fuzzing"``).
    """
    hyperparams = {"n_envs": 64, "n_steps": 16, "batch_size": 256, "n_epochs": 1}
    run = train("ppo", SHORT.replace(world="item"), steps=1024, out=tmp_path / "item-ppo",
                hyperparams=hyperparams, eval_every=1024, eval_customers=10,
                final_customers=10)  # fmt: skip
    options = ("--seed", "0", "--n-background", "1")
    with running_server(run, tmp_path, *options, api_key=KEY) as server:
        decision = httpx.post(f"{server.url}/v1/recommend", json={"consent_email": 1})
        report = _schemathesis(
            server.url, decision.json()["event_id"], tmp_path, 10, "examples,fuzzing"
        )
    assert report["test_cases"]["generated"] > 40
