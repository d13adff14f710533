"""``recenv train``, ``recenv eval`` and ``recenv compare`` through Typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from cli_checks import assert_bad_input
from typer.testing import CliRunner

from rec_env.agents.runs import read_run_info
from rec_env.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def bandit_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "egreedy"
    result = runner.invoke(
        app,
        [
            "train", "egreedy", "--steps", "2048", "--seed", "1", "--out", str(out),
            "--eval-customers", "200", "--final-customers", "500", "--no-progress",
            "--set", "n_envs=256",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_a_run_directory(bandit_run) -> None:
    info = read_run_info(bandit_run)  # validates every field of run.json
    assert info.algorithm == "egreedy" and info.seed == 1 and info.final_metrics
    assert info.settings.profile == "default"
    assert info.env["horizon"] == 52
    assert not [p.name for p in bandit_run.parent.iterdir() if p.name.startswith(".")]
    assert (bandit_run / "learning_curve.csv").read_text().startswith("timesteps")


def test_eval_run_directory(bandit_run) -> None:
    result = runner.invoke(app, ["eval", str(bandit_run), "--customers", "300", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["policy"] == "egreedy" and "profit_per_customer" in data["kpis"]


def test_compare_runs_and_names(bandit_run, tmp_path) -> None:
    out = tmp_path / "cmp"
    args = ["compare", str(bandit_run), "random", "oracle", "linucb", "--customers", "300"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "oracle" in result.stdout and "linucb (online)" in result.stdout
    assert "egreedy (online)" in result.stdout  # the bandit run also keeps learning
    for name in ("comparison.csv", "comparison.json", "kpis.png", "learning_curves.png"):
        assert (out / name).stat().st_size > 0


def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # default outputs (runs/, comparison/) would land here
    assert_bad_input(runner.invoke(app, ["train", "sarsa"]), "sarsa", "choose one of")
    assert_bad_input(runner.invoke(app, ["train", "ppo", "--steps", "0"]), "--steps")
    assert_bad_input(runner.invoke(app, ["train", "linucb", "--profile", "nope"]), "nope")
    assert_bad_input(runner.invoke(app, ["train", "linucb", "--set", "alpha"]), "KEY=VALUE")
    assert_bad_input(runner.invoke(app, ["eval", str(tmp_path / "missing")]), "no such run")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run.json").write_text("{not json")
    assert_bad_input(runner.invoke(app, ["eval", str(tmp_path / "junk")]), "malformed")
    assert_bad_input(runner.invoke(app, ["compare", "random", "sarsa"]), "sarsa")
    assert_bad_input(runner.invoke(app, ["compare", "runs/none"]), "no such run")
    assert_bad_input(runner.invoke(app, ["compare", "ppo"]), "recenv train ppo")
