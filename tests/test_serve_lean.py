"""A lean replica (issue 14, section 5): a serving process that does not explain loads neither
torch, shap nor scikit-learn, decides exactly as the torch path does, and builds its explainer
on the first request that explains."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rec_env.agents.explain import population_background
from rec_env.agents.runs import NETWORK_FILE, RUN_FILE, load_run
from rec_env.agents.sb3.network import NumpyNetwork
from rec_env.agents.sb3.network_policy import NetworkPolicy
from rec_env.agents.training import train
from rec_env.catalog import ActionTable, load_catalog
from rec_env.features import CHANNELS, FEATURE_INDEX, FEATURE_NAMES
from rec_env.serve import DecisionService, ServeSettings, create_app
from rec_env.serve.fast_policy import serving_probabilities
from rec_env.serve.loading import LazyExplainer

TABLE = ActionTable.from_catalog(load_catalog("strategy"))
HEAVY = ("torch", "shap", "sklearn", "stable_baselines3", "sb3_contrib")
_TINY = {"n_envs": 16, "n_steps": 4, "batch_size": 64, "n_epochs": 1}


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ppo"
    return train("ppo", steps=128, out=out, hyperparams=_TINY, eval_every=128,
                 eval_customers=5, final_customers=5)  # fmt: skip


@pytest.fixture(scope="module")
def torch_run(ppo_run, tmp_path_factory) -> Path:
    """The same run as written before ``network.npz`` existed."""
    return without_network(ppo_run, tmp_path_factory.mktemp("old") / "ppo")


def without_network(run: Path, copy: Path) -> Path:
    shutil.copytree(run, copy)
    (copy / NETWORK_FILE).unlink()
    edit_run_json(copy, lambda payload: payload["files"].pop(NETWORK_FILE))
    return copy


def edit_run_json(run: Path, change) -> None:
    payload = json.loads((run / RUN_FILE).read_text())
    change(payload)
    (run / RUN_FILE).write_text(json.dumps(payload))


def customers(n: int, seed: int) -> np.ndarray:
    """Population customers with every combination of consents."""
    obs = population_background(n, seed=seed).astype(np.float64).round(4)
    consents = [FEATURE_INDEX[f"consent_{c}"] for c in CHANNELS]
    obs[:, consents] = np.random.default_rng(seed).integers(0, 2, (n, len(CHANNELS)))
    return obs


@contextmanager
def serving(run: Path, directory: Path, **settings) -> Iterator[TestClient]:
    settings = {"db": directory / "decisions.db", "seed": 0, "explain": False, **settings}
    with TestClient(create_app(ServeSettings(model_dir=run, **settings))) as client:
        yield client


# ------------------------------------------------------------------ the replica's imports
_REPLICA = """
import json, sys, tempfile
from pathlib import Path
from fastapi.testclient import TestClient
from rec_env.serve import ServeSettings, create_app

heavy = {heavy!r}
loaded = lambda: [name for name in heavy if name in sys.modules]
db = Path(tempfile.mkdtemp()) / "decisions.db"
report = {{}}
app = create_app(ServeSettings(model_dir={run!r}, db=db, seed=0, explain=True))
with TestClient(app) as client:
    body = {{"features": {{"recency": 12.0, "consent_email": 1.0}}}}
    report["recommend"] = client.post("/v1/recommend", json=body).status_code
    report["built"] = app.state.service.explainer.built
    report["after_recommend"] = loaded()
    explained = client.post("/v1/explain", json=body)
    report["explain"] = explained.status_code
    report["explanation"] = explained.json()
    report["after_explain"] = loaded()
print(json.dumps(report))
"""


def test_an_idle_replica_loads_neither_torch_shap_nor_sklearn(ppo_run) -> None:
    script = _REPLICA.format(heavy=HEAVY, run=str(ppo_run))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["recommend"] == 200 and report["built"] is False
    assert report["after_recommend"] == []
    assert report["explain"] == 200, report["explanation"]
    explanation = report["explanation"]
    total = explanation["base_value"] + sum(c["contribution"] for c in explanation["contributions"])
    assert total == pytest.approx(explanation["model_output"], abs=1e-6)
    assert "shap" in report["after_explain"]  # loaded by the first explanation, and only then
    assert "torch" not in report["after_explain"]  # the network copy explains without it


# ------------------------------------------------------------------ the same decisions
def test_the_lean_and_torch_paths_decide_alike(ppo_run, torch_run) -> None:
    lean, info = load_run(ppo_run, lean=True)
    heavy, torch_info = load_run(torch_run)
    assert isinstance(lean, NetworkPolicy) and not isinstance(heavy, NetworkPolicy)
    assert lean.weights_sha256() == heavy.weights_sha256() == info.weights_sha256
    assert info.model_version == torch_info.model_version
    obs = customers(500, seed=3)
    masks = TABLE.consent_masks(obs) & (np.random.default_rng(3).random((500, 16)) < 0.7)
    masks[:, 0] = True
    fast = [serving_probabilities(p, TABLE, "default", "strategy") for p in (lean, heavy)]
    served = [f(obs, masks) for f in fast]
    np.testing.assert_allclose(served[0], served[1], rtol=0, atol=1e-12)
    # and the SB3 policy's own (torch, float32) probabilities within the copy's tolerance
    np.testing.assert_allclose(
        lean.action_probabilities(obs, masks), heavy.action_probabilities(obs, masks), atol=1e-5
    )


def test_a_seeded_service_serves_the_same_decisions_either_way(
    ppo_run, torch_run, tmp_path
) -> None:
    obs = customers(300, seed=5)
    columns = {name: obs[:, j].tolist() for j, name in enumerate(FEATURE_NAMES)}
    body = {"columns": columns, "include_probabilities": True}
    answers = []
    for label, run in (("lean", ppo_run), ("torch", torch_run)):
        (tmp_path / label).mkdir()
        with serving(run, tmp_path / label) as client:
            assert isinstance(client.app.state.service.policy, NetworkPolicy) == (label == "lean")
            response = client.post("/v1/recommend/batch", json=body)
            assert response.status_code == 200, response.text
            answers.append(response.json())
    lean, heavy = answers
    assert lean["model_version"] == heavy["model_version"]
    assert lean["actions"] == heavy["actions"]
    np.testing.assert_allclose(lean["propensities"], heavy["propensities"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(lean["probabilities"], heavy["probabilities"], rtol=0, atol=1e-12)


def test_an_old_run_is_served_through_torch_and_the_log_says_so(
    torch_run, tmp_path, caplog
) -> None:
    settings = ServeSettings(model_dir=torch_run, db=tmp_path / "d.db", seed=0, explain=False)
    with caplog.at_level(logging.WARNING, logger="rec_env.serve"):
        service = DecisionService.from_settings(settings)
    service.close()
    assert not isinstance(service.policy, NetworkPolicy)
    assert f"no {NETWORK_FILE}" in caplog.text and "serving through torch" in caplog.text


# ------------------------------------------------------------------ integrity of the copy
def test_a_tampered_network_file_is_refused(ppo_run, tmp_path) -> None:
    flipped = shutil.copytree(ppo_run, tmp_path / "flipped")
    data = bytearray((flipped / NETWORK_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (flipped / NETWORK_FILE).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{NETWORK_FILE}: SHA-256 does not match"):
        load_run(flipped, lean=True)
    weights = shutil.copytree(ppo_run, tmp_path / "weights")
    edit_run_json(weights, lambda payload: payload.update(weights_sha256="f" * 64))
    with pytest.raises(ValueError, match="weights do not match"):
        load_run(weights, lean=True)
    unlisted = shutil.copytree(ppo_run, tmp_path / "unlisted")
    edit_run_json(unlisted, lambda payload: payload["files"].pop(NETWORK_FILE))
    for lean in (True, False):
        with pytest.raises(ValueError, match=f"{NETWORK_FILE}: present but not listed"):
            load_run(unlisted, lean=lean)
    beside = shutil.copytree(ppo_run, tmp_path / "beside")
    (beside / "state.npz").write_bytes(b"not ours")
    with pytest.raises(ValueError, match=r"state\.npz: present but not listed"):
        load_run(beside, lean=True)


def test_the_network_arrays_round_trip_and_are_checked(ppo_run) -> None:
    network = load_run(ppo_run, lean=True)[0].network
    arrays = network.to_arrays()
    again = NumpyNetwork.from_arrays(arrays)
    obs = customers(50, seed=1)
    assert np.array_equal(again.outputs(obs), network.outputs(obs))
    broken = {**arrays, "layers.0.activation": np.array("swish")}
    with pytest.raises(ValueError, match=r"layers\.0\.activation 'swish'"):
        NumpyNetwork.from_arrays(broken)
    with pytest.raises(ValueError, match=r"no array 'layers\.1\.bias'"):
        NumpyNetwork.from_arrays({k: v for k, v in arrays.items() if k != "layers.1.bias"})
    wide = {**arrays, "layers.1.weight": np.zeros((3, 4), dtype=np.float32)}
    with pytest.raises(ValueError, match=r"layers\.1\.weight does not take"):
        NumpyNetwork.from_arrays(wide)


# ------------------------------------------------------------------ the lazy explainer
def test_the_explainer_is_built_once_by_the_first_caller() -> None:
    builds: list[int] = []

    def build() -> object:
        time.sleep(0.05)  # long enough for every thread to be waiting
        builds.append(1)
        return {"kind": "explainer"}

    lazy = LazyExplainer(build)
    assert not lazy.built
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(lazy.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and lazy.built
    assert all(explainer is seen[0] for explainer in seen)
    assert lazy.keys() == {"kind"}  # attributes are the explainer's


def test_a_failed_build_raises_and_the_next_call_tries_again() -> None:
    attempts: list[int] = []

    def build() -> object:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("no background")
        return "explainer"

    lazy = LazyExplainer(build)
    with pytest.raises(ValueError, match="no background"):
        lazy.get()
    assert not lazy.built and lazy.get() == "explainer" and len(attempts) == 2


def test_a_broken_explainer_fails_its_requests_not_the_service(
    ppo_run, tmp_path, monkeypatch
) -> None:
    from rec_env.agents.explain import explainer

    def broken(*args, **kwargs):
        raise ValueError("no background")

    monkeypatch.setattr(explainer.PolicyExplainer, "__init__", broken)
    body = {"features": {"recency": 12.0}}
    settings = ServeSettings(model_dir=ppo_run, db=tmp_path / "d.db", seed=0, explain=True)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert not client.app.state.service.explainer.built  # started without building it
        assert client.post("/v1/recommend", json=body).status_code == 200
        assert client.post("/v1/explain", json=body).status_code == 500
        assert client.post("/v1/recommend", json=body).status_code == 200
    assert (tmp_path / "d.db").exists()


def test_explanations_off_still_answer_503(ppo_run, tmp_path) -> None:
    with serving(ppo_run, tmp_path, explain=False) as client:
        assert client.app.state.service.explainer is None
        response = client.post("/v1/explain", json={"features": {"recency": 12.0}})
        assert response.status_code == 503 and "disabled" in response.text
