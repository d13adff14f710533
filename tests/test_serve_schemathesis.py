"""Schemathesis against a real ``recenv serve``: every check, bounded examples.

The server runs as a subprocess with an API key (from the environment) and explanations on;
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

TESTS = Path(__file__).parent
KEY = "schemathesis-key"


@pytest.mark.slow
def test_schemathesis_finds_no_failure(tmp_path) -> None:
    run = train("linucb", steps=1024, out=tmp_path / "linucb", eval_customers=50,
                final_customers=50, hyperparams={"n_envs": 128})  # fmt: skip
    with running_server(run, tmp_path, "--seed", "0", api_key=KEY) as server:
        url = server.url
        decision = httpx.post(f"{url}/v1/recommend", json={"features": EXAMPLE_FEATURES})
        config = tmp_path / "schemathesis.toml"
        config.write_text(f'[parameters]\nevent_id = "{decision.json()["event_id"]}"\n')
        command = [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
            f"{url}/openapi.json", "--checks", "all", "--header", f"X-API-Key: {KEY}",
            "--max-examples", "15", "--seed", "10", "--phases", "examples,coverage,fuzzing",
            "--generation-database", "none", "--no-color", "--workers", "1",
            "--request-timeout", "20", "--suppress-health-check", "all",
            "--report", "json", "--report-json-path", str(tmp_path / "report.json"),
        ]  # fmt: skip
        python_path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "PYTHONPATH": python_path}
        result = subprocess.run(  # in tmp_path: schemathesis keeps a cache in its directory
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["operations"]["tested"] == report["operations"]["total"] == 7
    assert report["failures"] == [] and report["errors"] == []
    assert report["test_cases"]["generated"] > 500
    assert not report["warnings"]["missing_test_data"]  # rewards reach a logged decision
