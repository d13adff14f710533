"""Multi-seed statistics (IQM, stratified bootstrap, probability of improvement) and their report.

rliable's definitions are the reference: ``scipy.stats.trim_mean(x, 0.25, axis=None)`` for the
IQM and the Mann–Whitney ``U / (n_x n_y)`` for P(X > Y). ``benchmarks/multiseed_reference.py``
compares against the rliable package itself.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from rec_env.agents.evaluation import (
    ImprovementProbability,
    IQMEstimate,
    aggregate_iqm,
    improvement_probability,
    interquartile_mean,
    iqm_estimate,
    probability_of_improvement,
    stratified_bootstrap,
)
from rec_env.agents.evaluation.multiseed import percentile_interval

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "multiseed.py"


# --- interquartile mean -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        (np.arange(1, 9), (3 + 4 + 5 + 6) / 4),  # 8 scores: 2 cut from each end
        ([1.0, 2.0, 3.0, 100.0], (2 + 3) / 2),  # 4 scores: the outlier is cut
        ([5.0, 1.0, 100.0, 3.0, 2.0], (2 + 3 + 5) / 3),  # 5 seeds: ⌊1.25⌋ = 1 cut each side
        ([1.0, 2.0, 10.0], 13 / 3),  # fewer than 4: nothing to cut, the plain mean
        ([7.5], 7.5),
        ([[1.0, 8.0], [2.0, 7.0], [3.0, 6.0], [4.0, 5.0]], 4.5),  # tasks are pooled
    ],
)
def test_iqm_hand_computed(scores: object, expected: float) -> None:
    assert interquartile_mean(scores) == pytest.approx(expected)


def test_iqm_matches_scipy_trim_mean() -> None:
    rng = np.random.default_rng(0)
    for n_runs in range(1, 23):
        for n_tasks in (1, 3):
            scores = rng.standard_t(3, (n_runs, n_tasks))
            reference = stats.trim_mean(scores, 0.25, axis=None)
            assert interquartile_mean(scores) == pytest.approx(reference, abs=1e-12)


# --- stratified bootstrap ---------------------------------------------------------------------


def test_bootstrap_resamples_runs_within_each_task() -> None:
    scores = np.array([[0.0, 100.0], [1.0, 101.0], [2.0, 102.0]])
    resamples = stratified_bootstrap(scores, n_resamples=500, seed=1)
    assert resamples.shape == (500, 3, 2)
    assert set(np.unique(resamples[:, :, 0])) == {0.0, 1.0, 2.0}
    assert set(np.unique(resamples[:, :, 1])) == {100.0, 101.0, 102.0}


def test_percentile_interval_is_the_tails() -> None:
    assert percentile_interval(np.arange(101), 0.95) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.arange(101), 0.5) == pytest.approx((25.0, 75.0))


def test_iqm_interval_covers_the_truth_in_a_seeded_simulation() -> None:
    """Symmetric scores: the population IQM is the centre. 95 % intervals should cover it."""
    rng = np.random.default_rng(2021)
    truth, trials = 3.0, 300
    covered = 0
    for trial in range(trials):
        scores = truth + rng.standard_normal(20)
        estimate = iqm_estimate(scores, n_resamples=400, seed=trial)
        assert estimate.low <= estimate.iqm <= estimate.high
        covered += estimate.low <= truth <= estimate.high
    # percentile intervals run a little narrow with 20 runs; far from 95 % would be a bug
    assert 0.85 <= covered / trials <= 0.99


def test_interval_narrows_with_more_runs_and_is_a_point_for_one_run() -> None:
    rng = np.random.default_rng(3)
    few = iqm_estimate(rng.standard_normal(5), seed=0)
    many = iqm_estimate(rng.standard_normal(500), seed=0)
    assert many.high - many.low < few.high - few.low
    single = iqm_estimate([8.07], "oracle")
    assert (single.iqm, single.low, single.high, single.n_runs) == (8.07, 8.07, 8.07, 1)


def test_seeded_results_are_deterministic() -> None:
    rng = np.random.default_rng(4)
    scores = {"ppo": rng.normal(9, 0.3, 5), "linucb": rng.normal(7, 0.3, (5, 2))}
    first = aggregate_iqm(scores, seed=7)
    assert aggregate_iqm(scores, seed=7) == first
    other = aggregate_iqm(scores, seed=8)
    assert (other["ppo"].low, other["ppo"].high) != (first["ppo"].low, first["ppo"].high)
    # an algorithm's interval does not depend on the others reported with it
    assert aggregate_iqm({"ppo": scores["ppo"]}, seed=7)["ppo"] == first["ppo"]
    scores["b"] = rng.normal(9, 0.3, 5)
    pair = probability_of_improvement(scores, "ppo", "b", seed=3)
    assert probability_of_improvement(scores, "ppo", "b", seed=3) == pair
    assert probability_of_improvement(scores, "ppo", "b", seed=4) != pair


def test_a_generator_is_used_as_given() -> None:
    scores = np.arange(10.0)
    a = iqm_estimate(scores, seed=np.random.default_rng(5))
    b = iqm_estimate(scores, seed=np.random.default_rng(5))
    assert a == b
    generator = np.random.default_rng(5)
    iqm_estimate(scores, seed=generator)
    assert iqm_estimate(scores, seed=generator) != a  # the generator's state moved on


# --- probability of improvement ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        ([5.0, 6.0, 7.0], [1.0, 2.0, 3.0], 1.0),  # separated
        ([1.0, 2.0, 3.0], [5.0, 6.0, 7.0], 0.0),  # reversed
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 0.5),  # identical
        ([1.0, 2.0, 3.0], [0.0, 2.0], 4.5 / 6),  # one tie counts half
        ([9.1, 9.3, 8.9], [8.07], 1.0),  # a single run of the other algorithm
        ([[5.0, 1.0], [6.0, 2.0]], [[1.0, 5.0], [2.0, 6.0]], 0.5),  # averaged over tasks
    ],
)
def test_improvement_probability_hand_computed(x: object, y: object, expected: float) -> None:
    assert improvement_probability(x, y) == pytest.approx(expected)


def test_improvement_probability_is_mann_whitney_u() -> None:
    rng = np.random.default_rng(6)
    for _ in range(20):
        x, y = rng.integers(0, 5, 7).astype(float), rng.integers(0, 5, 4).astype(float)
        u = stats.mannwhitneyu(x, y, alternative="greater").statistic
        assert improvement_probability(x, y) == pytest.approx(u / (x.size * y.size))


def test_probability_of_improvement_with_intervals() -> None:
    scores = {"ppo": [9.1, 9.3, 8.9, 9.2, 9.0], "bandit": [7.1, 7.3, 7.0, 7.2, 7.2]}
    better = probability_of_improvement(scores, "ppo", "bandit")
    assert (better.probability, better.low, better.high) == (1.0, 1.0, 1.0)
    worse = probability_of_improvement(scores, "bandit", "ppo")
    assert (worse.probability, worse.low, worse.high) == (0.0, 0.0, 0.0)
    same = probability_of_improvement({**scores, "copy": scores["ppo"]}, "ppo", "copy")
    assert same.probability == 0.5 and same.low < 0.5 < same.high
    assert (same.x, same.y, same.n_runs_x, same.n_runs_y, same.n_tasks) == ("ppo", "copy", 5, 5, 1)


# --- results and errors -----------------------------------------------------------------------


def test_results_are_frozen_and_serialise() -> None:
    estimate = aggregate_iqm({"ppo": [1.0, 2.0, 3.0]})["ppo"]
    improvement = probability_of_improvement({"a": [1.0], "b": [0.0]}, "a", "b")
    assert isinstance(estimate, IQMEstimate) and isinstance(improvement, ImprovementProbability)
    for result in (estimate, improvement):
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.low = 0.0  # type: ignore[misc]
        assert json.loads(json.dumps(result.to_dict())) == result.to_dict()
    assert estimate.to_dict()["algorithm"] == "ppo"
    assert (estimate.confidence, estimate.n_resamples) == (0.95, 2_000)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: aggregate_iqm({}), "no algorithms"),
        (lambda: aggregate_iqm({"ppo": []}), "ppo: no scores"),
        (lambda: aggregate_iqm({"ppo": [1.0, np.nan]}), "ppo: scores must be finite"),
        (lambda: aggregate_iqm({"ppo": np.zeros((2, 2, 2))}), "ppo: scores must be 1-D"),
        (lambda: aggregate_iqm({"ppo": ["a", "b"]}), "ppo: scores must be numbers"),
        (lambda: aggregate_iqm({"ppo": [1.0]}, n_resamples=0), "n_resamples must be a positive"),
        (lambda: aggregate_iqm({"ppo": [1.0]}, confidence=95), r"confidence must be in \(0, 1\)"),
        (lambda: probability_of_improvement({"a": [1.0]}, "a", "oracle"), "'oracle': no scores"),
        (
            lambda: probability_of_improvement({"a": [[1.0, 2.0]], "b": [1.0]}, "a", "b"),
            "a has 2 task",
        ),
        (lambda: interquartile_mean(np.zeros((0, 3))), "no scores"),
    ],
)
def test_input_errors_name_the_problem(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


# --- the benchmark's report -------------------------------------------------------------------


def _benchmark_module(monkeypatch: pytest.MonkeyPatch) -> object:
    spec = importlib.util.spec_from_file_location("multiseed_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_benchmark_tables_from_fake_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _benchmark_module(monkeypatch)
    world = bench.strategy_world()  # type: ignore[attr-defined]
    fake = {
        "ppo": [9.2, 9.0, 9.4],
        "trained_linucb": [7.2, 7.1, 7.3],
        "linucb": [5.5, 5.5, 5.5],
        "lin_ts": [6.5, 6.6, 6.4],
    }
    runs = [
        bench.RunScore(agent, seed, profit, 0.3, 15.0, 0.1, 0.4, 1.0)  # type: ignore[attr-defined]
        for agent, values in fake.items()
        for seed, profit in enumerate(values)
    ]
    runs += [
        bench.RunScore(agent, None, profit, 0.25, 20.0, 0.2, 0.6, 1.0)  # type: ignore[attr-defined]
        for agent, profit in (("no_action", 5.98), ("oracle", 8.07), ("cooldown", 8.52))
    ]
    analysis = bench.analyse(world, runs)  # type: ignore[attr-defined]
    by_reference = {imp["reference"]: imp for imp in analysis["improvements"]}
    assert by_reference["best bandit"]["y"] == "trained_linucb"
    assert by_reference["best baseline"]["y"] == "cooldown"
    assert by_reference["myopic oracle"]["probability"] == 1.0
    assert analysis["estimates"]["no_action"]["n_runs"] == 1
    table = bench.format_tables(analysis)  # type: ignore[attr-defined]
    lines = table.splitlines()
    assert lines[0].startswith("| policy | runs | IQM profit $ (95% CI) | seed 0 | seed 1 | seed 2")
    assert lines[2].startswith("| ppo | 3 | 9.20 [9.00, 9.40] | 9.20 ± 0.30 | 9.00 ± 0.30 |")
    assert "| no_action | 1 | 5.98 [5.98, 5.98] | 5.98 ± 0.25 | — | — |" in lines
    assert any(line.startswith("| linucb (trained, frozen) | 3 | 7.20") for line in lines)
    assert any(line.startswith("| linucb (online) | 3 | 5.50 [5.50, 5.50]") for line in lines)
    assert "| ppo over linucb (trained, frozen) (best bandit) | 1.00 | [1.00, 1.00] |" in lines
    assert "| ppo over oracle (myopic oracle) | 1.00 | [1.00, 1.00] |" in lines


def test_item_world_agents_are_built_on_the_item_actions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bench = _benchmark_module(monkeypatch)
    world = bench.item_world()  # type: ignore[attr-defined]
    n_actions = world.settings.build_model().actions.n_actions
    assert "hybrid_linucb" in world.all_bandits and "cooldown" in world.agents
    for agent in world.agents:
        if world.trains(agent):
            continue
        policy, learns, _ = bench._build_policy(world, agent, 0, tmp_path)  # type: ignore[attr-defined]
        assert policy.n_actions == n_actions, agent
        assert learns == (agent in world.bandits), agent
