"""Uplift metrics: hand-computed cases, scikit-uplift's own values, OPE agreement and plots."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rec_env.agents.evaluation.targeting import policy_value_curve, targeting_summary
from rec_env.agents.evaluation.uplift import (
    matched_two_action,
    perfect_qini_curve,
    perfect_uplift_curve,
    qini_auc_score,
    qini_curve,
    uplift_at_k,
    uplift_auc_score,
    uplift_curve,
)
from rec_env.agents.evaluation.uplift_plots import plot_policy_value_curves, plot_uplift_curves
from rec_env.agents.ope import DoublyRobust, InverseProbabilityWeighting
from rec_env.datasets import LoggedBanditData

REFERENCE = Path(__file__).parent / "data" / "uplift_sklift_reference.json"

# Six customers ranked by score: treated (1), control (0) and their 0/1 response.
Y = np.array([1, 0, 1, 0, 1, 0])
T = np.array([1, 1, 0, 0, 1, 0])
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])


def test_curves_match_a_hand_computed_case() -> None:
    # Top k: treated mean minus control mean (0 while a group is empty), times N_T or k.
    n, qini = qini_curve(Y, SCORES, T)
    np.testing.assert_array_equal(n, [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(qini, [0, 1, 1, -1, 0, 0.5, 1])
    _, uplift = uplift_curve(Y, SCORES, T)
    np.testing.assert_allclose(uplift, [0, 1, 1, -1.5, 0, 5 / 6, 2])
    assert uplift_at_k(Y, SCORES, T, "overall", k=0.5) == pytest.approx(0.5 - 1.0)
    # by_group: top 1 of each group ranked separately (int(0.34 * 3) = 1): 1 - 1.
    assert uplift_at_k(Y, SCORES, T, "by_group", k=0.34) == pytest.approx(0.0)


def test_ties_give_one_point_per_distinct_score() -> None:
    n, values = qini_curve(Y, np.array([1.0, 1.0, 0.5, 0.5, 0.5, 0.0]), T)
    np.testing.assert_array_equal(n, [0, 2, 5, 6])
    np.testing.assert_allclose(values, [0, 1, 0.5, 1])


@pytest.mark.parametrize("case_index", [0, 1])
def test_metrics_match_scikit_uplift(case_index: int) -> None:
    # Values computed by scikit-uplift 0.5.1 itself (command in the JSON).
    case = json.loads(REFERENCE.read_text())["cases"][case_index]
    y, t, u = (np.array(case[key]) for key in ("y", "treatment", "uplift"))
    for name, function in (("qini_curve", qini_curve), ("uplift_curve", uplift_curve)):
        n, values = function(y, u, t)
        np.testing.assert_array_equal(n, case[name][0])
        np.testing.assert_allclose(values, case[name][1], atol=1e-12)
    for name, function in (
        ("perfect_qini_curve", perfect_qini_curve),
        ("perfect_uplift_curve", perfect_uplift_curve),
    ):
        n, values = function(y, t)
        np.testing.assert_allclose(n, case[name][0])
        np.testing.assert_allclose(values, case[name][1], atol=1e-12)
    assert qini_auc_score(y, u, t) == pytest.approx(case["qini_auc_score"], abs=1e-12)
    assert qini_auc_score(y, u, t, negative_effect=False) == pytest.approx(
        case["qini_auc_score_no_negative"], abs=1e-12
    )
    assert uplift_auc_score(y, u, t) == pytest.approx(case["uplift_auc_score"], abs=1e-12)
    for key, expected in case["uplift_at_k"].items():
        strategy, k_text = key.rsplit("_", 1)
        k: float | int = float(k_text) if "." in k_text else int(k_text)
        assert uplift_at_k(y, u, t, strategy, k) == pytest.approx(expected, abs=1e-12), key


def test_perfect_ranking_scores_one_and_reversed_ranking_below_zero() -> None:
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, 400)
    y = (rng.random(400) < 0.2 + 0.3 * t).astype(int)
    perfect = y * t - y * (1 - t)
    assert qini_auc_score(y, perfect, t) == pytest.approx(1.0)
    assert qini_auc_score(y, -perfect, t) < 0
    assert uplift_auc_score(y, 2 * (y == t) + t, t) <= 1.0 + 1e-12


def test_propensities_weight_the_group_means() -> None:
    # Constant propensities per arm leave the means unchanged.
    same = uplift_at_k(Y, SCORES, T, k=0.5, propensities=np.where(T == 1, 0.3, 0.7))
    assert same == pytest.approx(uplift_at_k(Y, SCORES, T, k=0.5))
    # Top 3: treated rows 1 (y=1, p=0.25) and 2 (y=0, p=0.5): (4*1 + 2*0) / 6.
    p = np.array([0.25, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert uplift_at_k(Y, SCORES, T, k=0.5, propensities=p) == pytest.approx(4 / 6 - 1.0)
    _, weighted = qini_curve(Y, SCORES, T, propensities=p)
    assert weighted[3] == pytest.approx((4 / 6 - 1.0) * 2)


def test_bad_inputs_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="0/1 outcome"):
        qini_auc_score(Y * 2.5, SCORES, T)
    with pytest.raises(ValueError, match="treatment must hold"):
        qini_curve(Y, SCORES, T + 1)
    with pytest.raises(ValueError, match="no control"):
        uplift_at_k(Y, SCORES, T, k=2)
    with pytest.raises(ValueError, match="strategy"):
        uplift_at_k(Y, SCORES, T, "top")
    with pytest.raises(ValueError, match="propensities"):
        qini_curve(Y, SCORES, T, propensities=np.zeros(6))
    with pytest.raises(ValueError, match="not the control"):
        matched_two_action(np.array([0, 1]), np.array([1, 0]), control_action=0)


def test_continuous_outcomes_are_allowed_for_curves() -> None:
    spend = Y * np.array([10.0, 0, 20.0, 0, 30.0, 0])
    _, values = uplift_curve(spend, SCORES, T)
    assert values[-1] == pytest.approx((40 / 3 - 20 / 3) * 6)


def test_policy_value_curve_is_ips_of_the_targeting_policy() -> None:
    # Share 0: all control, (1 + 0 + 0) * 2 / 6; share 1: all treated, (1 + 0 + 1) * 2 / 6.
    half = np.full(6, 0.5)
    curve = policy_value_curve(Y, T, half, SCORES, 1, 0, shares=np.array([0, 0.5, 1]))
    np.testing.assert_allclose(curve.value, [1 / 3, 1 / 3, 2 / 3])
    np.testing.assert_array_equal(curve.n_targeted, [0, 3, 6])
    assert (curve.ci_low < curve.value).all() and (curve.value < curve.ci_high).all()


def _campaign(n: int, seed: int) -> tuple[LoggedBanditData, np.ndarray]:
    """A three-action randomised log with unequal propensities and a reward model."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    p = np.array([0.2, 0.3, 0.5])
    actions = rng.choice(3, size=n, p=p)
    rewards = (rng.random(n) < 0.2 + 0.1 * actions * (x[:, 0] > 0)).astype(float)
    data = LoggedBanditData(x, actions, p[actions], rewards, 3)
    return data, rng.random((n, 3))


@pytest.mark.parametrize("use_model", [False, True])
def test_policy_value_curve_agrees_with_the_ope_estimators(use_model: bool) -> None:
    data, model = _campaign(500, 1)
    scores = data.contexts[:, 0]
    recommended = np.where(data.contexts[:, 1] > 0, 1, 2)
    model_arg = model if use_model else None
    curve = policy_value_curve(
        data.rewards, data.actions, data.propensities, scores, recommended, 0, model_arg
    )
    estimator = (
        DoublyRobust(n_bootstrap=2) if use_model else InverseProbabilityWeighting(n_bootstrap=2)
    )
    order = np.argsort(scores, kind="mergesort")[::-1]
    for share, value in zip(curve.shares[::5], curve.value[::5], strict=True):
        chosen = np.zeros(data.n, dtype=int)
        chosen[order[: int(share * data.n)]] = recommended[order[: int(share * data.n)]]
        target = np.eye(3)[chosen]
        expected = estimator.estimate(data, target, estimated_rewards=model_arg).value
        assert value == pytest.approx(expected, abs=1e-12)


def test_targeting_summary_counts_the_targeted_group() -> None:
    half = np.full(6, 0.5)
    summary = targeting_summary(
        Y, T, half, SCORES, 1, 0, share=0.5, value_per_unit=10.0, cost_per_contact=0.5
    )
    # Top 3 rows: treated terms (2, 0, 0), control terms (0, 0, 2): rates 2/3 and 2/3.
    assert summary.n_targeted == 3
    assert summary.incremental_rate == pytest.approx(0.0)
    assert summary.net_incremental_revenue == pytest.approx(-1.5)
    with pytest.raises(ValueError, match="targets nobody"):
        targeting_summary(Y, T, half, SCORES, 1, 0, share=0.1)


def test_matched_two_action_keeps_recommended_and_control_rows() -> None:
    rows, treated = matched_two_action(np.array([0, 1, 2, 2, 1]), np.array([1, 1, 1, 2, 2]), 0)
    np.testing.assert_array_equal(rows, [0, 1, 3])
    np.testing.assert_array_equal(treated, [0, 1, 1])


def test_metrics_are_deterministic() -> None:
    data, model = _campaign(300, 2)
    args = (data.rewards, data.actions, data.propensities, data.contexts[:, 0], 1, 0, model)
    first, second = policy_value_curve(*args), policy_value_curve(*args)
    np.testing.assert_array_equal(first.value, second.value)
    np.testing.assert_array_equal(first.ci_high, second.ci_high)


def test_plots_are_written(tmp_path: Path) -> None:
    data, model = _campaign(300, 3)
    treated = (data.actions == 1).astype(int)
    curves = {"model": qini_curve(data.rewards, data.contexts[:, 0], treated)}
    qini_png = plot_uplift_curves(curves, tmp_path / "qini.png", outcome="visits")
    value = policy_value_curve(
        data.rewards, data.actions, data.propensities, data.contexts[:, 0], 1, 0, model
    )
    value_png = plot_policy_value_curves(
        {"model": value},
        tmp_path / "value.png",
        value_label="visits per customer",
        references={"e-mail everyone": float(value.value[-1])},
    )
    for png in (qini_png, value_png):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000
    with pytest.raises(ValueError, match="kind"):
        plot_uplift_curves(curves, tmp_path / "x.png", kind="lift")


def _anchor_script() -> Any:
    """``benchmarks/uplift_anchors.py`` as a module (it is a script, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "uplift_anchors.py"
    spec = importlib.util.spec_from_file_location("uplift_anchors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_split_is_stratified_and_seeded() -> None:
    script = _anchor_script()
    actions = np.repeat([0, 1, 2], [101, 50, 7])
    train, test = script.stratified_split(actions, seed=3)
    assert np.intersect1d(train, test).size == 0 and train.size + test.size == actions.size
    np.testing.assert_array_equal(np.bincount(actions[train]), [51, 25, 4])
    again, _ = script.stratified_split(actions, seed=3)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, script.stratified_split(actions, seed=4)[0])


def test_benchmark_turns_uplift_into_a_profit_aware_policy() -> None:
    script = _anchor_script()
    # Columns: Mens, Womens, none. Spend uplift of $1 → 0.30 margin - 0.10 cost > 0: e-mail.
    uplift = np.array([[1.0, 0.2, 0.0], [0.2, 0.3, 0.0], [-1.0, -2.0, 0.0]])
    np.testing.assert_array_equal(script.uplift_policy(uplift, "profit").argmax(axis=1), [0, 2, 2])
    np.testing.assert_array_equal(script.uplift_policy(uplift, "spend").argmax(axis=1), [0, 1, 2])
