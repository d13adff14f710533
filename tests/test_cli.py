"""The ``recenv`` command line, driven through Typer's ``CliRunner``."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rec_env
from rec_env.cli import app

runner = CliRunner()

SMALL_RUN = ["simulate", "--customers", "200", "--horizon", "5"]
KPI_LABELS = (
    "Profit per customer",
    "Revenue per customer",
    "Conversion rate",
    "Purchases per customer",
    "Contacts per customer",
    "Discount cost per customer",
    "Unsubscribe rate",
    "Churn rate",
)


def default_profile_path() -> Path:
    return Path(str(resources.files("rec_env.profiles") / "default.yaml"))


def assert_bad_input(args: list[str]) -> str:
    """The command fails with exit code 2 and exactly one ``error:`` line, no traceback."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "simulate" in result.output
    assert "profiles" in result.output


def test_simulate_help_documents_every_option() -> None:
    result = runner.invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0
    for option in ("--policy", "--customers", "--profile", "--seed", "--horizon", "--json"):
        assert option in result.output
    assert "--reward-mode" in result.output
    assert "--catalog" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"recenv {rec_env.__version__}"


def test_profiles_list_shows_default() -> None:
    result = runner.invoke(app, ["profiles", "list"])
    assert result.exit_code == 0, result.output
    assert "default" in result.stdout
    assert "bargain_hunters" in result.stdout


@pytest.mark.parametrize("population", ["default", None])
def test_profiles_show(population: str | None) -> None:
    target = population or str(default_profile_path())
    result = runner.invoke(app, ["profiles", "show", target])
    assert result.exit_code == 0, result.output
    for text in ("bargain_hunters", "loyal_high_value", "purchase_rate", "contact_tolerance"):
        assert text in result.stdout
    assert "lognormal(median=55, sigma=0.3)" in result.stdout


def test_profiles_validate_good_file() -> None:
    path = default_profile_path()
    result = runner.invoke(app, ["profiles", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"OK: {path} (4 segments)"


def test_profiles_validate_bad_weight(tmp_path: Path) -> None:
    text = default_profile_path().read_text(encoding="utf-8")
    assert "weight: 0.30" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("weight: 0.30", "weight: -1", 1), encoding="utf-8")
    line = assert_bad_input(["profiles", "validate", str(bad)])
    assert str(bad) in line
    assert "segments.0.weight" in line


def test_profiles_validate_broken_yaml_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\nsegments:\n  - {\n", encoding="utf-8")
    assert str(bad) in assert_bad_input(["profiles", "validate", str(bad)])


@pytest.mark.parametrize(
    "policy", ["random", "fixed:discount_15_email", "oracle", "rule", "cooldown"]
)
def test_simulate_every_policy_prints_kpis(policy: str) -> None:
    result = runner.invoke(app, [*SMALL_RUN, "--policy", policy])
    assert result.exit_code == 0, result.output
    for label in KPI_LABELS:
        assert label in result.stdout
    assert "Top 5 actions" in result.stdout
    assert "Reward per customer" not in result.stdout


def test_simulate_shows_reward_when_not_profit() -> None:
    result = runner.invoke(app, [*SMALL_RUN, "--reward-mode", "conversion"])
    assert result.exit_code == 0, result.output
    assert "Reward per customer (conversion)" in result.stdout


def test_simulate_json_is_machine_readable_and_deterministic() -> None:
    args = [*SMALL_RUN, "--seed", "7", "--json"]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    kpis = json.loads(first.stdout)
    assert kpis["customers"] == 200
    assert set(kpis) >= {"profit_per_customer", "conversion_rate", "churn_rate"}
    assert sum(kpis["action_shares"].values()) == pytest.approx(1.0)
    assert first.stdout == second.stdout
    other_seed = runner.invoke(app, [*SMALL_RUN, "--seed", "8", "--json"])
    assert other_seed.stdout != first.stdout


def test_simulate_long_run_uses_progress_without_touching_stdout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("rec_env.cli.simulate.PROGRESS_MIN_CUSTOMER_CYCLES", 1)
    result = runner.invoke(app, [*SMALL_RUN, "--json"])
    assert result.exit_code == 0, result.output
    assert "profit_per_customer" in json.loads(result.stdout)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--policy", "nope"], "unknown policy 'nope'"),
        (["--policy", "fixed"], "needs an action name"),
        (["--policy", "fixed:nope"], "valid actions: no_action,"),
        (["--customers", "0"], "--customers must be at least 1"),
        (["--horizon", "0"], "--horizon must be at least 1"),
        (["--seed", "-1"], "--seed must be 0 or more"),
        (["--profile", "does_not_exist"], "does_not_exist: no such file"),
        (["--reward-mode", "bad"], "unknown reward mode 'bad'"),
        (["--catalog", "nope.yaml"], "nope.yaml: file not found"),
    ],
)
def test_simulate_bad_input_is_one_error_line(args: list[str], expected: str) -> None:
    line = assert_bad_input([*SMALL_RUN, *args])
    assert expected in line


def test_simulate_invalid_profile_file_names_file_and_field(tmp_path: Path) -> None:
    text = default_profile_path().read_text(encoding="utf-8")
    bad = tmp_path / "population.yaml"
    bad.write_text(
        text.replace("contact_tolerance: 2.0", "contact_tolerance: -3"), encoding="utf-8"
    )
    line = assert_bad_input([*SMALL_RUN, "--profile", str(bad)])
    assert str(bad) in line
    assert "contact_tolerance" in line


def test_profiles_show_unknown_name() -> None:
    message = assert_bad_input(["profiles", "show", "nope"])
    assert "available: " in message and "default" in message and "cdnow" in message
