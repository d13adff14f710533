"""The errors a new user hit (issue 9, section 6): one ``error:`` line, exit code 2, no leftovers.

Every command that writes files checks ``--out`` before its work starts, stages what it writes
next to the target and renames it into place at the end, so a failure or Ctrl-C leaves nothing.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
import typer
from cli_checks import assert_bad_input
from typer.testing import CliRunner

from rec_env.agents.registry import TRAINABLE, make_bandit
from rec_env.agents.runs import RunInfo, default_run_dir, policy_digests, write_run_info
from rec_env.cli._errors import INTERRUPTED_EXIT_CODE, MAX_CUSTOMERS
from rec_env.cli.main import app
from rec_env.env import build_model
from rec_env.features import FEATURE_NAMES
from rec_env.serve.settings import MAX_BACKGROUND

runner = CliRunner()
README = Path(__file__).parents[1] / "README.md"
USER = Path(__file__).parents[1] / "profiles" / "users" / "loyal_vip.json"
TINY_TRAIN = ["--steps", "256", "--eval-customers", "20", "--final-customers", "20"]


def tree(root: Path) -> list[str]:
    """Every path under ``root`` (hidden ones included), to show that nothing was left behind."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def run_dir(tmp_path_factory) -> Path:
    """An untrained LinUCB saved as a run directory (no training needed for argument checks)."""
    directory = tmp_path_factory.mktemp("run") / "linucb-seed0"
    model = build_model()
    policy = make_bandit("linucb", model, 0)
    policy.save(directory)
    write_run_info(
        directory,
        RunInfo(
            algorithm="linucb",
            env_id="rec_env/Recommendation-v0",
            env={"profile": "default", "reward_mode": "profit"},
            feature_names=list(FEATURE_NAMES),
            action_names=list(policy.action_names),
            hyperparameters={},
            seed=0,
            recenv_version="0",
            **policy_digests(directory, policy),
        ),
    )
    return directory


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty working directory, so that default outputs (runs/, decisions.db) land in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------------- train --set
def test_train_unknown_hyperparameter_is_one_line_and_writes_nothing(workdir) -> None:
    result = runner.invoke(app, ["train", "linucb", "--set", "foo=1", *TINY_TRAIN])
    assert_bad_input(result, "unknown hyperparameter", "foo", "alpha")
    assert tree(workdir) == []


def test_train_invalid_hyperparameter_value_leaves_no_empty_run_directory(workdir) -> None:
    args = ["train", "ppo", "--set", "learning_rate=abc", "--out", "out", *TINY_TRAIN]
    assert_bad_input(runner.invoke(app, args), "learning_rate")
    assert tree(workdir) == []


# ---------------------------------------------------------------------------- simulate
def test_simulate_caps_the_cohort_before_allocating_it() -> None:
    huge = ["simulate", "--policy", "random", "--customers", "1000000000", "--horizon", "1"]
    assert_bad_input(runner.invoke(app, huge), f"at most {MAX_CUSTOMERS:,}", "seeds")
    just_over = ["simulate", "--customers", str(MAX_CUSTOMERS + 1), "--horizon", "1"]
    assert_bad_input(runner.invoke(app, just_over), "--customers")


# ---------------------------------------------------------------------------- config files
NESTED = {
    "deep.yaml": "[" * 10_000 + "]" * 10_000,
    "deep.json": '{"a":' * 10_000 + "1" + "}" * 10_000,
}


@pytest.mark.parametrize("name", sorted(NESTED))
def test_profiles_validate_deeply_nested_file(tmp_path, name: str) -> None:
    path = tmp_path / name
    path.write_text(NESTED[name])
    result = runner.invoke(app, ["profiles", "validate", str(path)])
    assert_bad_input(result, name, "nested too deeply")


@pytest.mark.parametrize("name", ["binary.yaml", "binary.json"])
def test_binary_config_file_names_the_file_and_says_not_utf8(tmp_path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(bytes(range(256)))
    result = runner.invoke(app, ["profiles", "validate", str(path)])
    assert_bad_input(result, name, "not UTF-8 text")


# ---------------------------------------------------------------------------- --out
def out_commands(out: Path, run: Path) -> dict[str, list[str]]:
    """Each command with an ``--out``, with arguments that would start long work."""
    return {
        "train": ["train", "egreedy", *TINY_TRAIN, "--out", str(out)],
        "compare": ["compare", "random", "--customers", "50", "--out", str(out)],
        "bench": ["bench", "hillstrom", "--customers", "1000", "--out", str(out)],
        "explain": ["explain", str(USER), "--model", str(run), "--out", str(out)],
        "profiles fit": ["profiles", "fit", "cdnow", "--out", str(out)],
    }


OUT_COMMANDS = ("train", "compare", "bench", "explain", "profiles fit")


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_out_in_a_missing_directory(workdir, run_dir, command: str) -> None:
    out = workdir / "missing" / "out.png"
    if command == "profiles fit":
        out = out.with_suffix(".yaml")
    assert_bad_input(runner.invoke(app, out_commands(out, run_dir)[command]), "no such directory")
    assert tree(workdir) == []


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_out_in_an_unwritable_directory(workdir, run_dir, command: str) -> None:
    out = Path("/proc/x.yaml" if command == "profiles fit" else "/proc/x.png")
    assert_bad_input(runner.invoke(app, out_commands(out, run_dir)[command]), "cannot write")
    assert tree(workdir) == []


@pytest.mark.parametrize("command", OUT_COMMANDS)
def test_out_on_an_existing_file_is_not_overwritten(workdir, run_dir, command: str) -> None:
    out = workdir / ("mine.yaml" if command == "profiles fit" else "mine.png")
    out.write_text("precious")
    result = runner.invoke(app, out_commands(out, run_dir)[command])
    fragment = "is a file" if command in ("train", "compare", "bench") else "--force"
    assert_bad_input(result, str(out), fragment)
    assert out.read_text() == "precious"
    assert tree(workdir) == ["mine.png" if command != "profiles fit" else "mine.yaml"]


@pytest.mark.parametrize("command", ["train", "compare", "bench"])
def test_out_on_a_non_empty_directory_needs_force(workdir, run_dir, command: str) -> None:
    out = workdir / "results"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    result = runner.invoke(app, out_commands(out, run_dir)[command])
    assert_bad_input(result, "not empty", "--force")
    assert tree(workdir) == ["results", "results/notes.txt"]


def test_train_force_refuses_a_directory_it_did_not_write(workdir) -> None:
    out = workdir / "home"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    args = ["train", "egreedy", *TINY_TRAIN, "--out", str(out), "--force"]
    assert_bad_input(runner.invoke(app, args), "run.json", "refusing")
    assert (out / "notes.txt").read_text() == "precious"


def test_train_force_replaces_a_run_directory_whole(workdir) -> None:
    out = workdir / "run"
    args = ["train", "egreedy", *TINY_TRAIN, "--no-progress", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    (out / "stale.txt").write_text("from an older run")
    assert_bad_input(runner.invoke(app, args), "already exists", "--force")
    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert not (out / "stale.txt").exists() and (out / "run.json").is_file()
    assert tree(workdir) == sorted(["run", *(f"run/{p.name}" for p in out.iterdir())])


def test_compare_force_writes_into_an_existing_directory(workdir) -> None:
    out = workdir / "cmp"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    args = ["compare", "random", "--customers", "50", "--out", str(out), "--force"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "kept" and (out / "comparison.json").is_file()
    assert not [p for p in workdir.iterdir() if p.name.startswith(".")]


def test_explain_rejects_a_format_matplotlib_cannot_write(workdir, run_dir) -> None:
    args = ["explain", str(USER), "--model", str(run_dir), "--out", "x.txt"]
    assert_bad_input(runner.invoke(app, args), "x.txt", "'.txt'", ".png")
    assert tree(workdir) == []


def test_explain_caps_the_background_as_the_server_does(workdir, run_dir) -> None:
    args = ["explain", str(USER), "--model", str(run_dir), "--background", "100000000"]
    assert_bad_input(runner.invoke(app, args), "--background", f"{MAX_BACKGROUND:,}")
    assert tree(workdir) == []


# ---------------------------------------------------------------------------- run.json
def test_eval_rejects_a_run_json_with_wrong_types(run_dir) -> None:
    path = run_dir / "run.json"
    info = json.loads(path.read_text())
    info["action_names"] = 5
    path.write_text(json.dumps(info))
    assert_bad_input(
        runner.invoke(app, ["eval", str(run_dir), "--customers", "20"]), "action_names"
    )


# ---------------------------------------------------------------------------- serve
def test_serve_bad_log_level_leaves_no_decision_log(workdir, run_dir) -> None:
    result = runner.invoke(app, ["serve", "--model", str(run_dir), "--log-level", "bogus"])
    assert_bad_input(result, "--log-level", "bogus", "debug")
    assert tree(workdir) == []


def test_serve_on_a_busy_port_is_one_line_and_exit_2(workdir, run_dir) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["serve", "--model", str(run_dir), "--host", "127.0.0.1", "--port", str(port)]
        assert_bad_input(runner.invoke(app, args), f"--port {port}", "in use")
    assert tree(workdir) == []


def test_serve_on_an_invalid_host_is_one_line_and_exit_2(workdir, run_dir) -> None:
    result = runner.invoke(app, ["serve", "--model", str(run_dir), "--host", "999.1.1.1"])
    assert_bad_input(result, "--host 999.1.1.1")
    assert tree(workdir) == []


# ---------------------------------------------------------------------------- Ctrl-C
def test_train_interrupted_leaves_no_run_directory(workdir, monkeypatch) -> None:
    def interrupted_training(algorithm, settings, *, out, **kwargs) -> Path:
        (Path(out) / "model.zip").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr("rec_env.agents.training.train", interrupted_training)
    result = runner.invoke(app, ["train", "ppo", "--steps", "64"])
    assert result.exit_code == INTERRUPTED_EXIT_CODE, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: interrupted"), result.stderr
    assert tree(workdir) == []  # neither runs/ppo-seed0 nor runs/


# ---------------------------------------------------------------------------- help and README
def test_help_lists_every_command_and_group() -> None:
    root = typer.main.get_command(app)
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert set(root.commands) >= {"simulate", "train", "eval", "serve", "profiles", "bench"}
    for name, command in root.commands.items():
        assert re.search(rf"│ {name} ", result.stdout), name
        for sub in getattr(command, "commands", {}):
            group_help = runner.invoke(app, [name, "--help"])
            assert re.search(rf"│ {sub} ", group_help.stdout), f"{name} {sub}"


def test_readme_names_run_directories_as_train_writes_them() -> None:
    pages = (README, *sorted((README.parent / "docs").rglob("*.md")))  # the README and the docs
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    algorithms = "|".join(TRAINABLE)
    wrong = re.findall(rf"runs/(?:{algorithms})\b(?!-seed)", text)
    assert wrong == [], wrong
    assert str(default_run_dir("ppo", 0)) in text and str(default_run_dir("linucb", 0)) in text
