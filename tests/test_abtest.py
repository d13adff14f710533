"""Simulated A/B tests: statistics, A/A false positives, power plans, determinism and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from cli_checks import assert_bad_input
from scipy import stats
from typer.testing import CliRunner

from rec_env import build_model
from rec_env.agents.evaluation.ab_stats import (
    proportion_lift,
    sample_size_two_proportions,
    welch_lift,
)
from rec_env.agents.evaluation.abtest import run_ab_test
from rec_env.cli.main import app
from rec_env.dynamics import CustomerModel

runner = CliRunner()


@pytest.fixture(scope="module")
def model() -> CustomerModel:
    return build_model("default")


@pytest.fixture(scope="module")
def bandit_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "egreedy"
    result = runner.invoke(
        app,
        [
            "train", "egreedy", "--steps", "1024", "--seed", "1", "--out", str(out),
            "--eval-customers", "100", "--final-customers", "100", "--no-progress",
            "--set", "n_envs=256",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


# ---------------------------------------------------------------------- statistics
def test_sample_size_matches_textbook_values() -> None:
    # JMP's documented example: 0.08 vs 0.06, two-sided alpha 0.05, power 0.8 -> 2554 per group
    assert sample_size_two_proportions(0.08, 0.06) == 2554
    # Zar (1999), Biostatistical Analysis, example 24.26, with continuity correction: 127.23
    assert sample_size_two_proportions(0.45, 0.25, power=0.9, continuity_correction=True) == 128
    assert sample_size_two_proportions(0.10, 0.15) == 686  # Fleiss eq. 4.14, no correction


def test_planned_sample_size_has_the_planned_power() -> None:
    """Simulated two-proportion z-tests at the planned n reject 80 % of the time."""
    n = sample_size_two_proportions(0.10, 0.15)
    rng = np.random.default_rng(0)
    repetitions = 3000
    control = rng.binomial(n, 0.10, repetitions)
    treated = rng.binomial(n, 0.15, repetitions)
    pairs = zip(control, treated, strict=True)
    rejected = [proportion_lift(a, n, b, n).p_value < 0.05 for a, b in pairs]
    assert np.mean(rejected) == pytest.approx(0.80, abs=0.025)


def test_sample_size_rejects_impossible_plans() -> None:
    with pytest.raises(ValueError, match="differ"):
        sample_size_two_proportions(0.1, 0.1)
    with pytest.raises(ValueError, match="alpha"):
        sample_size_two_proportions(0.1, 0.2, alpha=1.5)


def test_welch_lift_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.exponential(2.0, 300), rng.exponential(2.5, 500)
    lift = welch_lift(a, b)
    reference = stats.ttest_ind(b, a, equal_var=False)
    assert lift.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    low, high = reference.confidence_interval(0.95)
    assert (lift.ci_low, lift.ci_high) == pytest.approx((low, high), rel=1e-10)
    assert lift.difference == pytest.approx(b.mean() - a.mean())
    assert lift.relative == pytest.approx(b.mean() / a.mean() - 1)


def test_proportion_lift_by_hand() -> None:
    lift = proportion_lift(50, 500, 75, 500)
    pooled_se = math.sqrt(0.125 * 0.875 * 2 / 500)
    assert lift.p_value == pytest.approx(2 * stats.norm.sf(0.05 / pooled_se), rel=1e-12)
    half = 1.959963985 * math.sqrt(0.1 * 0.9 / 500 + 0.15 * 0.85 / 500)
    assert (lift.ci_low, lift.ci_high) == pytest.approx((0.05 - half, 0.05 + half), rel=1e-8)
    assert proportion_lift(0, 10, 0, 10).p_value == 1.0


# ---------------------------------------------------------------------- simulated tests
def test_aa_test_false_positive_rate_is_about_alpha(model: CustomerModel) -> None:
    """The same policy on both arms: p < 0.05 in 2-10 % of 100 seeded repetitions."""
    profit, conversion = [], []
    for seed in range(100):
        result = run_ab_test("random", "random", 400, 6, seed, model=model)
        profit.append(result.profit.p_value < 0.05)
        conversion.append(result.conversion.p_value < 0.05)
    print(
        f"A/A false positives: profit {np.mean(profit):.0%}, conversion {np.mean(conversion):.0%}"
    )
    assert 0.02 <= np.mean(profit) <= 0.10
    assert 0.02 <= np.mean(conversion) <= 0.10


def test_ab_test_detects_a_real_difference(model: CustomerModel) -> None:
    result = run_ab_test("fixed:no_action", "oracle", 6000, 8, 0, model=model)
    assert result.a.label == "fixed:no_action" and result.b.label == "oracle"
    assert result.profit.difference > 0 and result.profit.p_value < 0.01
    assert result.profit.ci_low > 0
    assert result.a.kpis["contacts_per_customer"].mean == 0.0


def test_ab_test_is_deterministic_and_splits_customers(model: CustomerModel) -> None:
    first = run_ab_test("random", "rule", 11, 3, 7, model=model)
    again = run_ab_test("random", "rule", 11, 3, 7, model=model)
    assert first.to_dict() == again.to_dict()
    assert (first.a.n_customers, first.b.n_customers) == (6, 5)
    other = run_ab_test("random", "rule", 11, 3, 8, model=model)
    assert other.to_dict() != first.to_dict()


def test_ab_test_with_a_run_directory_and_an_online_bandit(bandit_run, model) -> None:
    result = run_ab_test(str(bandit_run), "linucb", 300, 4, 0, model=model)
    assert result.a.label == "egreedy" and result.b.label == "linucb (online)"


def test_ab_test_rejects_bad_settings(model: CustomerModel) -> None:
    with pytest.raises(ValueError, match="at least 4 customers"):
        run_ab_test("random", "random", 3, 4, model=model)
    with pytest.raises(ValueError, match="at least 1 cycle"):
        run_ab_test("random", "random", 10, 0, model=model)
    with pytest.raises(ValueError, match="unknown action 'nope'"):
        run_ab_test("fixed:nope", "random", 10, 1, model=model)


# ---------------------------------------------------------------------- CLI
def test_cli_ab_simulate_reports_arms_lifts_and_p_values() -> None:
    args = ["ab", "simulate", "random", "fixed:no_action", "--customers", "400", "--cycles", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for text in ("A: random (200)", "B: fixed:no_action (200)", "Lift of B over A", "Welch t"):
        assert text in result.stdout
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert data["a"]["customers"] == 200 and data["b"]["policy"] == "fixed:no_action"
    assert set(data["lift"]) == {"profit_per_customer", "conversion"}
    assert 0.0 <= data["lift"]["conversion"]["p_value"] <= 1.0
    # `recenv ab A B` is short for `recenv ab simulate A B`.
    short = runner.invoke(app, ["ab", *args[2:], "--json"])
    assert short.exit_code == 0, short.output
    assert json.loads(short.stdout) == data


def test_cli_ab_plan() -> None:
    plan = ["--baseline-rate", "0.10", "--lift", "0.5"]
    for args in (["ab", "plan", *plan], ["ab", "--plan", *plan]):  # the old form still works
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "10.00% → 15.00%" in result.stdout and "686 customers per arm" in result.stdout


def test_cli_ab_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["ab", "--help"])
    assert result.exit_code == 0, result.output
    for command in ("simulate", "plan", "analyze"):
        assert command in result.stdout


def test_cli_ab_bad_input_is_one_line_and_exit_2(tmp_path) -> None:
    ab = ["ab"]  # short for `recenv ab simulate`
    assert_bad_input(runner.invoke(app, ["ab", "simulate", "random"]), "two policies")
    assert_bad_input(runner.invoke(app, ["ab", "simulate", "random", "rule", "--cycles", "0"]),
                     "--cycles")  # fmt: skip
    assert_bad_input(runner.invoke(app, [*ab, "random"]), "two policies")
    assert_bad_input(runner.invoke(app, [*ab, "random", "rule", "--customers", "3"]), "4")
    assert_bad_input(runner.invoke(app, [*ab, "random", "rule", "--cycles", "0"]), "--cycles")
    assert_bad_input(runner.invoke(app, [*ab, "random", "sarsa"]), "sarsa", "choose one of")
    assert_bad_input(runner.invoke(app, [*ab, "random", "ppo"]), "recenv train ppo")
    assert_bad_input(runner.invoke(app, [*ab, "fixed:nope", "rule"]), "unknown action")
    missing = str(tmp_path / "runs" / "none")
    assert_bad_input(runner.invoke(app, [*ab, missing, "rule"]), "no such run directory")
    assert_bad_input(runner.invoke(app, [*ab, "random", "rule", "--profile", "nope"]), "nope")
    assert_bad_input(runner.invoke(app, [*ab, "--plan", "random", "rule"]), "no policies")
    assert_bad_input(runner.invoke(app, [*ab, "--plan", "--lift", "0.1"]), "--baseline-rate")
    plan = [*ab, "--plan", "--baseline-rate", "0.1"]
    assert_bad_input(runner.invoke(app, [*plan, "--lift", "0"]), "differ")
    assert_bad_input(runner.invoke(app, [*plan, "--lift", "9"]), "between 0 and 1")
    assert_bad_input(runner.invoke(app, [*plan, "--lift", "0.1", "--alpha", "2"]), "alpha")
    assert_bad_input(runner.invoke(app, ["ab", "plan", "--lift", "0.1"]), "--baseline-rate")
    assert_bad_input(runner.invoke(app, ["ab", "plan", "--baseline-rate", "0.1", "--lift", "9"]),
                     "between 0 and 1")  # fmt: skip
