"""Per-position logs (3-D action distributions), independent IPS of slates, pooled reward models."""

from __future__ import annotations

import numpy as np
import pytest

from rec_env.agents.ope import (
    DoublyRobust,
    InverseProbabilityWeighting,
    LoggedBanditData,
    OPEWarning,
    PerActionRewardModel,
    PooledRewardModel,
    SlateIndependentIPS,
    cross_fitted_rewards,
)

RECORDS = {  # two slates of two positions, one record per (slate, position)
    "contexts": np.array([[0.0], [0.0], [1.0], [1.0]]),
    "actions": np.array([0, 1, 1, 0]),
    "propensities": np.array([0.5, 0.5, 0.5, 0.25]),
    "rewards": np.array([1.0, 0.0, 1.0, 1.0]),
    "n_actions": 3,
    "positions": np.array([0, 1, 0, 1]),
}
SLATE_IDS = np.array([7, 7, 9, 9])
# pi(a at position k): position 0 -> [0.8, 0.2, 0], position 1 -> [0.2, 0.8, 0], every record
TARGET_3D = np.tile(np.array([[0.8, 0.2], [0.2, 0.8], [0.0, 0.0]]), (4, 1, 1))


@pytest.fixture
def records() -> LoggedBanditData:
    return LoggedBanditData(**RECORDS)


def test_a_3d_distribution_is_read_at_each_rows_position(records) -> None:
    # weights: 0.8/0.5, 0.8/0.5, 0.2/0.5, 0.2/0.25 = 1.6, 1.6, 0.4, 0.8
    result = InverseProbabilityWeighting(n_bootstrap=20).estimate(records, TARGET_3D)
    assert result.value == pytest.approx((1.6 * 1 + 0 + 0.4 * 1 + 0.8 * 1) / 4)
    assert records.n_positions == 2
    sliced = TARGET_3D[np.arange(4), :, RECORDS["positions"]]
    flat = LoggedBanditData(**{k: v for k, v in RECORDS.items() if k != "positions"})
    assert InverseProbabilityWeighting(n_bootstrap=20).estimate(flat, sliced) == result


def test_independent_ips_of_slates_by_hand(records) -> None:
    # per slate: sum of w * r = 1.6 * 1 + 1.6 * 0 = 1.6 and 0.4 * 1 + 0.8 * 1 = 1.2
    result = SlateIndependentIPS(n_bootstrap=50).estimate(records, TARGET_3D, SLATE_IDS)
    assert result.estimator == "slate_iips"
    assert result.value == pytest.approx(1.4)
    assert result.n == 2
    assert 1.2 <= result.ci_low <= result.ci_high <= 1.6  # only two slates to resample
    flat = LoggedBanditData(**{k: v for k, v in RECORDS.items() if k != "positions"})
    with pytest.raises(ValueError, match="needs one record per"):
        SlateIndependentIPS().estimate(flat, TARGET_3D, SLATE_IDS)
    with pytest.raises(ValueError, match="slate_ids must have shape"):
        SlateIndependentIPS().estimate(records, TARGET_3D, SLATE_IDS[:3])


def test_clear_errors_for_a_distribution_that_does_not_fit_the_log(records) -> None:
    flat = LoggedBanditData(**{k: v for k, v in RECORDS.items() if k != "positions"})
    ips = InverseProbabilityWeighting(n_bootstrap=20)
    with pytest.raises(ValueError, match=r"3-D .* but the log has no positions"):
        ips.estimate(flat, TARGET_3D)
    with pytest.raises(ValueError, match=r"the log has positions \(2\), so .* must be 3-D"):
        ips.estimate(records, TARGET_3D[:, :, 0])
    with pytest.raises(ValueError, match=r"shape mismatch: .*\(4, 3, 2\), got \(4, 3, 3\)"):
        ips.estimate(records, np.full((4, 3, 3), 1 / 3))
    with pytest.raises(ValueError, match="sum to 1 per row"):
        ips.estimate(records, TARGET_3D * 0.5)
    with pytest.raises(ValueError, match="estimated rewards must be 3-D"):
        DoublyRobust().estimate(records, TARGET_3D, estimated_rewards=np.zeros((4, 3)))


def test_positions_are_validated_and_kept_by_subsets(records) -> None:
    with pytest.raises(ValueError, match=r"positions outside \[0, 2\)"):
        LoggedBanditData(**{**RECORDS, "n_positions": 2, "positions": np.array([0, 1, 2, 0])})
    with pytest.raises(ValueError, match="n_positions is given without positions"):
        LoggedBanditData(**{**RECORDS, "positions": None, "n_positions": 2})
    assert records.subset(np.array([1, 3])).positions.tolist() == [1, 1]
    assert records.subset(np.array([1, 3])).n_positions == 2
    assert records.with_rewards(np.zeros(4)).positions.tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="action_context must have shape"):
        LoggedBanditData(**RECORDS, action_context=np.zeros((2, 4)))


def test_estimated_rewards_and_reward_models_use_the_position(records) -> None:
    q_3d = np.zeros((4, 3, 2))
    q_3d[:, :, 1] = 1.0  # the model says: position 1 earns 1, position 0 nothing
    dr = DoublyRobust(n_bootstrap=20).estimate(records, TARGET_3D, estimated_rewards=q_3d)
    # direct part: q at the row's position -> [0, 1, 0, 1]; residuals r - q = [1, -1, 1, 0]
    assert dr.value == pytest.approx((0 + 1 + 0 + 1 + 1.6 * 1 + 1.6 * -1 + 0.4 * 1 + 0) / 4)
    rng = np.random.default_rng(0)
    n = 200
    positions = rng.integers(0, 2, n)
    data = LoggedBanditData(rng.normal(size=(n, 1)), rng.integers(0, 2, n), np.full(n, 0.5),
                            2.0 * positions, 2, positions=positions)  # fmt: skip
    predicted = cross_fitted_rewards(data, n_folds=1)
    np.testing.assert_allclose(predicted, 2.0 * positions[:, None] * np.ones((1, 2)), atol=0.05)


def test_unsupported_mass_per_position_without_a_logging_distribution(records) -> None:
    # logged (action, position) cells: (0, 0), (1, 1), (1, 0), (0, 1); action 2 never logged
    target = TARGET_3D.copy()
    target[:, :, 1] = [0.0, 0.5, 0.5]  # half the mass at position 1 on the never-logged action
    with pytest.warns(OPEWarning, match="never logged"):
        result = InverseProbabilityWeighting(n_bootstrap=20).estimate(records, target)
    assert result.unsupported_mass == pytest.approx(0.5 * 2 / 4)  # rows 1 and 3 at position 1


# ---------------------------------------------------------------------------- pooled model
def _shared_feature_log(n: int = 600, seed: int = 0) -> LoggedBanditData:
    """Reward 2 * phi_a + x with phi_a = a; action 3 is never logged."""
    rng = np.random.default_rng(seed)
    contexts = rng.normal(size=(n, 1))
    actions = rng.integers(0, 3, n)
    rewards = 2.0 * actions + contexts[:, 0] + rng.normal(0, 0.1, n)
    return LoggedBanditData(contexts, actions, np.full(n, 1 / 3), rewards, 4,
                            action_context=np.arange(4.0)[:, None])  # fmt: skip


def test_pooled_model_shares_strength_through_action_features() -> None:
    data = _shared_feature_log()
    truth = 2.0 * np.arange(4)[None, :] + data.contexts
    pooled = PooledRewardModel(data.action_context).fit(data.contexts, data.actions, data.rewards)
    np.testing.assert_allclose(pooled.predict(data.contexts), truth, atol=0.05)
    per_action = PerActionRewardModel(4).fit(data.contexts, data.actions, data.rewards)
    assert np.abs(per_action.predict(data.contexts)[:, 3] - truth[:, 3]).mean() > 1.0
    crossed = cross_fitted_rewards(data, pooled=True)
    np.testing.assert_allclose(crossed, truth, atol=0.15)  # half the rows, extrapolated


def test_pooled_interactions_let_a_linear_model_rank_actions_by_context() -> None:
    rng = np.random.default_rng(3)
    n = 800
    contexts = rng.normal(size=(n, 2))
    actions = rng.integers(0, 2, n)
    rewards = np.where(actions == 0, contexts[:, 0], -contexts[:, 0])
    one_hot = np.eye(2)
    plain = PooledRewardModel(one_hot).fit(contexts, actions, rewards).predict(contexts)
    crossed = PooledRewardModel(one_hot, interactions=True).fit(contexts, actions, rewards)
    truth = np.column_stack([contexts[:, 0], -contexts[:, 0]])
    np.testing.assert_allclose(crossed.predict(contexts), truth, atol=0.02)
    assert np.abs(plain - truth).mean() > 0.5


def test_pooled_doubly_robust_and_its_refit_bootstrap() -> None:
    data = _shared_feature_log(n=300)
    target = np.tile([0.0, 0.0, 1.0, 0.0], (data.n, 1))  # always action 2: value 4
    dr = DoublyRobust(pooled=True, refit_bootstrap=True, n_bootstrap=40).estimate(data, target)
    assert dr.interval == "refit_bootstrap"
    assert dr.ci_low <= 4.0 + data.contexts.mean() <= dr.ci_high
