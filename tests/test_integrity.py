"""Run directories load only the bytes that were hashed (issue 10, defect 1), and
``model_version`` identifies the weights (issue 10, smaller defects).

Each tampering of a run directory is refused by the loader for every agent kind, and by
``recenv eval``, ``compare``, ``explain`` and ``serve`` (one ``error:`` line, exit 2) and the
decision service for a PPO and a LinUCB run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_checks import assert_bad_input
from typer.testing import CliRunner

from rec_env import build_model
from rec_env.agents.baselines import FixedActionPolicy, FlagTargetedPolicy, RandomPolicy
from rec_env.agents.registry import TRAINABLE, action_kwargs
from rec_env.agents.runs import NETWORK_FILE, RunInfo, load_run, policy_digests, write_run_info
from rec_env.agents.sb3.network_policy import NETWORK_ALGORITHMS
from rec_env.agents.training import train
from rec_env.cli.main import app
from rec_env.features import FEATURE_NAMES
from rec_env.serve import DecisionService, ServeSettings

runner = CliRunner()
USER = Path(__file__).parents[1] / "profiles" / "users" / "bargain_hunter.json"

_TINY = {
    "ppo": {"n_envs": 16, "n_steps": 4, "batch_size": 64, "n_epochs": 1},
    "maskable_ppo": {"n_envs": 16, "n_steps": 4, "batch_size": 64, "n_epochs": 1},
    "a2c": {"n_envs": 16, "n_steps": 4},
    "dqn": {"n_envs": 16, "learning_starts": 0, "batch_size": 16, "buffer_size": 1_000},
}
BASELINE_KINDS = ("random", "fixed", "flag_targeted")


def train_tiny(algorithm: str, out: Path, seed: int = 0) -> Path:
    """A run of a few hundred steps: enough to have weights, fast enough for a test."""
    hyperparams = _TINY.get(algorithm, {"n_envs": 16})
    return train(algorithm, steps=128, seed=seed, out=out, hyperparams=hyperparams,
                 eval_every=128, eval_customers=5, final_customers=5)  # fmt: skip


def save_baseline(kind: str, directory: Path) -> Path:
    """A baseline saved as a run directory, as the API would write it."""
    model = build_model()
    catalog = action_kwargs(model.actions)
    n = model.actions.n_actions
    policy = {
        "random": lambda: RandomPolicy(n, random_state=0, **catalog),
        "fixed": lambda: FixedActionPolicy(n, 3, **catalog),
        "flag_targeted": lambda: FlagTargetedPolicy(n, "discount_sensitive", 3, **catalog),
    }[kind]()
    policy.save(directory)
    write_run_info(directory, RunInfo(
        algorithm=policy.algorithm, env_id="rec_env/Recommendation-v0",
        env={"profile": "default", "reward_mode": "profit"}, feature_names=list(FEATURE_NAMES),
        action_names=list(policy.action_names), hyperparameters={}, seed=0,
        recenv_version="test", **policy_digests(directory, policy),
    ))  # fmt: skip
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One run directory of every agent kind, and a second PPO run (another seed)."""
    root = tmp_path_factory.mktemp("runs")
    made = {name: train_tiny(name, root / name) for name in TRAINABLE}
    made.update({kind: save_baseline(kind, root / kind) for kind in BASELINE_KINDS})
    made["ppo_other"] = train_tiny("ppo", root / "ppo_other", seed=1)
    return made


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edit_run_json(run: Path, change: Callable[[dict], None]) -> None:
    payload = json.loads((run / "run.json").read_text())
    change(payload)
    (run / "run.json").write_text(json.dumps(payload))


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def main_file(run: Path) -> str:
    return "model.zip" if (run / "model.zip").exists() else "state.npz"


_ALTERED = "SHA-256 does not match"
_NOT_OURS = "is not a policy file of a run directory"


def tamperings(runs: dict[str, Path]) -> dict[str, tuple[Callable[[Path], None], str]]:
    """Ways to tamper with a (PPO or bandit) run directory, and what the refusal says."""
    other_zip = runs["ppo_other"] / "model.zip"

    def swap_in_other_model(run: Path) -> None:
        name = main_file(run)
        shutil.copyfile(other_zip if name == "model.zip" else runs["ucb1"] / name, run / name)

    def list_another_file(run: Path) -> None:  # the hash of another file under a listed name
        name = main_file(run)
        edit_run_json(run, lambda p: p["files"].update({name: sha256(run / "policy.json")}))

    def name_outside(target: str) -> Callable[[Path], None]:
        def change(run: Path) -> None:
            name = main_file(run)
            digest = sha256(run / name)
            files = {"policy.json": sha256(run / "policy.json"), target: digest}
            edit_run_json(run, lambda p: p.update(files=files))

        return change

    def link_main_file(run: Path) -> None:  # the genuine bytes, but through a link outside
        name = main_file(run)
        outside = run.parent / f"{run.name}-{name}"
        shutil.move(run / name, outside)
        (run / name).symlink_to(outside)

    def list_policy_json_only(run: Path) -> None:  # the model file left unhashed
        shutil.copyfile(other_zip, run / "model.zip")
        edit_run_json(run, lambda p: p.update(files={"policy.json": p["files"]["policy.json"]}))

    def add_unlisted_model_file(run: Path) -> None:  # beside the listed ones
        extra = "state.npz" if main_file(run) == "model.zip" else "model.zip"
        shutil.copyfile(other_zip if extra == "model.zip" else runs["ucb1"] / extra, run / extra)

    def issues_attack(run: Path) -> None:
        the_issues_attack(run, other_zip if (run / "model.zip").exists() else None)

    def change_weights_hash(run: Path) -> None:
        edit_run_json(run, lambda p: p.update(weights_sha256="0" * 64))

    changes = {
        "flip a byte of policy.json": (lambda run: _flip(run, "policy.json"), _ALTERED),
        "flip a byte of the model file": (lambda run: _flip(run, main_file(run)), _ALTERED),
        "another run's model file": (swap_in_other_model, _ALTERED),
        "files names another file's hash": (list_another_file, _ALTERED),
        "files names an absolute path": (name_outside("/etc/passwd"), _NOT_OURS),
        "files names ../": (name_outside("../ppo_other/model.zip"), _NOT_OURS),
        "files names a file in a subdirectory": (name_outside("sub/model.zip"), _NOT_OURS),
        "files names an unknown file": (name_outside("learning_curve.csv"), _NOT_OURS),
        "model file is a symbolic link": (link_main_file, "symbolic link"),
        "model file missing": (lambda run: (run / main_file(run)).unlink(), "missing"),
        "files lists policy.json only": (list_policy_json_only, "files does not list"),
        "a policy file present but unlisted": (add_unlisted_model_file, "not listed"),
        "weights_sha256 changed": (change_weights_hash, "weights do not match"),
        "the issue's attack (old format naming policy.json)": (issues_attack, "retrain"),
    }
    return changes


def the_issues_attack(run: Path, swapped_zip: Path | None = None) -> None:
    """Issue 10's reproduction: run.json names ``policy.json`` with its genuine hash, while
    ``model.zip`` is swapped for another model (here: another run's)."""
    if swapped_zip is not None:
        shutil.copyfile(swapped_zip, run / "model.zip")
    payload = json.loads((run / "run.json").read_text())
    del payload["files"], payload["weights_sha256"]
    payload["model_file"] = "policy.json"
    payload["model_sha256"] = sha256(run / "policy.json")
    (run / "run.json").write_text(json.dumps(payload))


def tampered_copy(run: Path, tmp_path: Path, label: str, change: Callable[[Path], None]) -> Path:
    copy = tmp_path / label.replace(" ", "_").replace("/", "_").replace("'", "")
    shutil.copytree(run, copy)
    change(copy)
    return copy


# ---------------------------------------------------------------------------- loader, every kind
@pytest.mark.parametrize("kind", [*TRAINABLE, *BASELINE_KINDS])
def test_every_kind_hashes_each_file_it_loads(runs, kind, tmp_path) -> None:
    run = runs[kind]
    policy, info = load_run(run)
    recorded = json.loads((run / "run.json").read_text())
    lean = (NETWORK_FILE,) if kind in NETWORK_ALGORITHMS else ()  # the torch-free loader's
    read = {*policy.saved_files, *lean}
    assert set(recorded["files"]) == read  # every file the loaders read
    assert recorded["files"] == {name: sha256(run / name) for name in read}
    assert policy.weights_sha256() == info.weights_sha256
    assert info.model_version == f"{info.algorithm}-{info.weights_sha256[:12]}"
    for name in policy.saved_files:
        flipped = tampered_copy(run, tmp_path, f"flip-{name}", lambda r, n=name: _flip(r, n))
        with pytest.raises(ValueError, match=f"{name}: SHA-256 does not match"):
            load_run(flipped)
        linked = tampered_copy(run, tmp_path, f"link-{name}", lambda r, n=name: _link(r, n))
        with pytest.raises(ValueError, match="symbolic link"):
            load_run(linked)
        unlisted = tampered_copy(run, tmp_path, f"unlist-{name}", lambda r, n=name: _unlist(r, n))
        with pytest.raises(ValueError, match=f"does not list {name}|must list policy.json"):
            load_run(unlisted)
    weights = tampered_copy(run, tmp_path, "weights", lambda r: edit_run_json(
        r, lambda p: p.update(weights_sha256="f" * 64)))  # fmt: skip
    with pytest.raises(ValueError, match="weights do not match"):
        load_run(weights)


def _flip(run: Path, name: str) -> None:
    flip_a_byte(run / name)


def _link(run: Path, name: str) -> None:
    shutil.move(run / name, run.parent / f"{run.name}-{name}")
    (run / name).symlink_to(run.parent / f"{run.name}-{name}")


def _unlist(run: Path, name: str) -> None:
    edit_run_json(run, lambda p: p["files"].pop(name))


def test_a_file_changed_after_the_check_is_never_loaded(runs, tmp_path, monkeypatch) -> None:
    """The loader reads the private copy it verified, not the run directory again."""
    from rec_env.agents import integrity

    run = shutil.copytree(runs["ppo"], tmp_path / "run")
    genuine = run / "model.zip"
    hashed = integrity._read_regular_file

    def read_then_swap(path: Path) -> bytes:
        data = hashed(path)
        if path.name == "model.zip":  # the attacker swaps the file right after it is read
            shutil.copyfile(runs["ppo_other"] / "model.zip", genuine)
        return data

    monkeypatch.setattr(integrity, "_read_regular_file", read_then_swap)
    policy, info = load_run(run)
    assert policy.weights_sha256() == info.weights_sha256  # the genuine weights, not the swap
    assert sha256(genuine) == sha256(runs["ppo_other"] / "model.zip")


def test_same_seed_same_model_version_though_the_zips_differ(runs, tmp_path) -> None:
    again = train_tiny("ppo", tmp_path / "again")
    first, second = load_run(runs["ppo"])[1], load_run(again)[1]
    assert first.files["model.zip"] != second.files["model.zip"]  # SB3 stores its start time
    assert first.model_version == second.model_version
    other = load_run(runs["ppo_other"])[1]
    assert other.model_version != first.model_version  # another seed, other weights


def test_weights_hash_covers_config_and_arrays_but_not_the_seed() -> None:
    model = build_model()
    catalog = action_kwargs(model.actions)
    n = model.actions.n_actions
    base = FixedActionPolicy(n, 3, **catalog).weights_sha256()
    assert FixedActionPolicy(n, 4, **catalog).weights_sha256() != base
    assert RandomPolicy(n, random_state=1).weights_sha256() == RandomPolicy(n).weights_sha256()


def test_runs_of_the_old_format_are_refused_with_one_line(runs, tmp_path) -> None:
    run = tampered_copy(runs["linucb"], tmp_path, "old", the_issues_attack)
    with pytest.raises(ValueError, match=r"older recenv.*retrain it with `recenv train`"):
        load_run(run)
    assert_bad_input(runner.invoke(app, ["eval", str(run)]), "run.json", "retrain")


# ---------------------------------------------------------------------------- every entry point
def refused_everywhere(
    run: Path, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``eval``, ``compare``, ``explain``, ``serve`` and the service each refuse ``run``."""
    import uvicorn

    def listen(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("recenv serve started listening on a tampered run")

    monkeypatch.setattr(uvicorn, "run", listen)
    tmp_path.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path)
    commands = {
        "eval": ["eval", str(run), "--customers", "10"],
        "compare": ["compare", str(run), "--customers", "10", "--out", str(tmp_path / "cmp")],
        "explain": ["explain", str(USER), "--model", str(run), "--out", str(tmp_path / "w.png")],
        "serve": ["serve", "--model", str(run), "--db", str(tmp_path / "d.db"),
                  "--port", str(free_port())],
    }  # fmt: skip
    for name, command in commands.items():
        result = runner.invoke(app, command)
        try:
            assert_bad_input(result, reason)
        except AssertionError as exc:
            raise AssertionError(f"recenv {name}: {exc}") from None
    settings = ServeSettings(model_dir=run, db=tmp_path / "service.db")
    with pytest.raises(ValueError, match=reason):
        DecisionService.from_settings(settings)
    assert not (tmp_path / "service.db").exists() and not (tmp_path / "d.db").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("kind", ["ppo", "linucb"])
def test_every_tampering_is_refused_by_every_command(runs, kind, tmp_path, monkeypatch) -> None:
    for label, (change, reason) in tamperings(runs).items():
        run = tampered_copy(runs[kind], tmp_path, label, change)
        with pytest.raises(ValueError, match=reason):
            load_run(run)
        cwd = tmp_path / f"{run.name}-cwd"
        try:
            refused_everywhere(run, reason, cwd, monkeypatch)
        except AssertionError as exc:
            raise AssertionError(f"{kind}, {label}: {exc}") from None


def test_the_untampered_runs_pass_every_command(runs, tmp_path) -> None:
    """The same commands accept the genuine runs (so the refusals above are the tampering)."""
    for kind in ("ppo", "linucb"):
        result = runner.invoke(app, ["eval", str(runs[kind]), "--customers", "10"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["explain", str(USER), "--model", str(runs[kind]),
                                     "--out", str(tmp_path / f"{kind}.png")])  # fmt: skip
        assert result.exit_code == 0, result.output


def test_serve_refuses_the_issues_attack_before_listening(runs, tmp_path) -> None:
    """``recenv serve`` as a process: the issue's attack exits 2 with one line, never listens."""
    run = shutil.copytree(runs["ppo"], tmp_path / "run")
    the_issues_attack(run, swapped_zip=runs["ppo_other"] / "model.zip")
    port = free_port()
    command = [sys.executable, "-c", "from rec_env.cli.main import app; app()", "serve",
               "--model", str(run), "--db", str(tmp_path / "d.db"),
               "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "retrain" in lines[0], stderr
    assert not (tmp_path / "d.db").exists()
