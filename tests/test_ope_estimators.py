"""SNDR, Switch-DR and DRos, the diagnostics and the refit bootstrap of off-policy estimates.

The hand-computed values follow Open Bandit Pipeline's definitions (``obp.ope.estimators``):
SNDR ``q_pi + iw * (r - q_a) / iw.mean()``, Switch-DR ``q_pi + iw * (iw <= lambda_) * (r - q_a)``
and DRos ``q_pi + lambda_ * iw / (iw**2 + lambda_) * (r - q_a)``, averaged over rows.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from rec_env.agents.ope import (
    ALL_ESTIMATORS,
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    LoggedBanditData,
    OPEWarning,
    SelfNormalizedDoublyRobust,
    SelfNormalizedIPS,
    SwitchDoublyRobust,
    evaluate_policy,
)
from rec_env.agents.ope.bootstrap import bootstrap_counts
from rec_env.agents.ope.refit import refit_bootstrap_sums

TINY = {
    "contexts": np.array([[0.0], [1.0], [2.0], [3.0]]),
    "actions": np.array([0, 1, 0, 1]),
    "propensities": np.array([0.5, 0.25, 0.8, 0.5]),
    "rewards": np.array([1.0, 0.0, 2.0, 4.0]),
    "n_actions": 2,
}
TARGET = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.2, 0.8]])
Q_HAT = np.tile([1.5, 2.0], (4, 1))
# weights w = [2, 2, 0, 1.6]; direct terms sum_a pi q = [1.5, 1.75, 2, 1.9] (sum 7.15);
# residuals r - q(a_i) = [-0.5, -2, 0.5, 2]; DR corrections w * residual = [-1, -4, 0, 3.2]


@pytest.fixture
def tiny() -> LoggedBanditData:
    return LoggedBanditData(**TINY)


def _random_log(n: int = 400, n_actions: int = 3, seed: int = 0) -> LoggedBanditData:
    rng = np.random.default_rng(seed)
    contexts = rng.normal(size=(n, 2))
    logging = rng.dirichlet(np.ones(n_actions), size=n) * 0.7 + 0.3 / n_actions
    actions = (logging.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1)
    rewards = contexts[:, 0] * (actions == 1) + rng.normal(0, 0.5, n) + actions
    return LoggedBanditData(
        contexts, actions, logging[np.arange(n), actions], rewards, n_actions,
        logging_distribution=logging,
    )  # fmt: skip


def _greedy(data: LoggedBanditData, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(data.n_actions) * 0.3, size=data.n)


# ---------------------------------------------------------------------------- by hand
def test_doubly_robust_variants_by_hand(tiny) -> None:
    def value(estimator):
        return estimator.estimate(tiny, TARGET, estimated_rewards=Q_HAT).value

    assert value(DoublyRobust(n_bootstrap=20)) == pytest.approx((7.15 - 1.8) / 4)
    # SNDR: mean direct + sum(w * residual) / sum(w) = 7.15 / 4 - 1.8 / 5.6
    assert value(SelfNormalizedDoublyRobust(n_bootstrap=20)) == pytest.approx(7.15 / 4 - 1.8 / 5.6)
    # Switch-DR, tau 1.8: only the weights 0 and 1.6 keep their correction (0 and 3.2)
    assert value(SwitchDoublyRobust(tau=1.8, n_bootstrap=20)) == pytest.approx((7.15 + 3.2) / 4)
    # DRos, lambda 4: shrunk weights 4w / (w^2 + 4) = [1, 1, 0, 6.4 / 6.56]
    shrunk = 6.4 / 6.56
    dros = DoublyRobustWithShrinkage(lambda_=4.0, n_bootstrap=20)
    assert value(dros) == pytest.approx((7.15 - 0.5 - 2.0 + shrunk * 2.0) / 4)
    result = dros.estimate(tiny, TARGET, estimated_rewards=Q_HAT)
    assert result.estimator == "dros4"
    assert result.max_weight == pytest.approx(1.0)  # the shrunk weights
    assert result.raw_max_weight == pytest.approx(2.0)


def test_correction_share_of_the_doubly_robust_family(tiny) -> None:
    dr = DoublyRobust(n_bootstrap=20).estimate(tiny, TARGET, estimated_rewards=Q_HAT)
    assert dr.correction_share == pytest.approx(0.45 / (7.15 / 4 + 0.45))
    sndr = SelfNormalizedDoublyRobust(n_bootstrap=20).estimate(
        tiny, TARGET, estimated_rewards=Q_HAT
    )
    assert sndr.correction_share == pytest.approx((1.8 / 5.6) / (7.15 / 4 + 1.8 / 5.6))
    assert (
        InverseProbabilityWeighting(n_bootstrap=20).estimate(tiny, TARGET).correction_share is None
    )


# ---------------------------------------------------------------------------- limits
@pytest.mark.parametrize(
    ("variant", "limit"),
    [
        (SwitchDoublyRobust(tau=math.inf, n_bootstrap=100), DoublyRobust),
        (SwitchDoublyRobust(tau=0.0, n_bootstrap=100), DirectMethod),
        (DoublyRobustWithShrinkage(lambda_=math.inf, n_bootstrap=100), DoublyRobust),
        (DoublyRobustWithShrinkage(lambda_=0.0, n_bootstrap=100), DirectMethod),
    ],
)
def test_switch_and_shrinkage_reach_dr_and_dm_at_their_limits(variant, limit) -> None:
    data = _random_log()
    target = _greedy(data)
    q_hat = variant.fit_rewards(data)
    got = variant.estimate(data, target, estimated_rewards=q_hat)
    want = limit(n_bootstrap=100).estimate(data, target, estimated_rewards=q_hat)
    assert got.value == pytest.approx(want.value, rel=1e-12)
    assert (got.ci_low, got.ci_high) == pytest.approx((want.ci_low, want.ci_high), rel=1e-9)
    # and far from the other limit: the variants are not trivially equal to both
    other = DirectMethod if limit is DoublyRobust else DoublyRobust
    assert got.value != pytest.approx(other(n_bootstrap=100).estimate(
        data, target, estimated_rewards=q_hat).value, rel=1e-6)  # fmt: skip


def test_every_estimator_runs_through_evaluate_policy() -> None:
    data = _random_log()
    results = evaluate_policy(data, _greedy(data), [cls(n_bootstrap=30) for cls in
                                                     ALL_ESTIMATORS.values()])  # fmt: skip
    labels = [r.estimator for r in results]
    assert labels == ["ips", "snips", "dm", "dr", "sndr", "switch_dr100", "dros1000"]
    assert all(r.ci_low <= r.value <= r.ci_high for r in results), results
    assert results[2].interval == "refit_bootstrap"
    assert results[3].interval == "bootstrap_fixed_model"
    # Switch-DR and DRos leave large-weight rows to the model, so they refit it by default
    assert [r.interval for r in results[4:]] == [
        "bootstrap_fixed_model", "refit_bootstrap", "refit_bootstrap"]  # fmt: skip


@pytest.mark.parametrize("cls", [SwitchDoublyRobust, DoublyRobustWithShrinkage])
def test_variant_settings_are_validated(cls) -> None:
    field = "tau" if cls is SwitchDoublyRobust else "lambda_"
    with pytest.raises(ValueError, match=field):
        cls(**{field: -1.0})
    with pytest.raises(ValueError, match="n_refit_bootstrap"):
        cls(n_refit_bootstrap=1)


# ---------------------------------------------------------------------------- replicates
def test_undefined_snips_replicates_are_counted_and_warned_about() -> None:
    """Only row 0 has weight: every replicate that misses it has SNIPS = 0 / 0."""
    n, replicates = 10, 400
    data = LoggedBanditData(np.zeros((n, 1)), np.r_[0, np.ones(n - 1, int)], np.full(n, 0.5),
                            np.arange(n, dtype=float), 2)  # fmt: skip
    target = np.tile([1.0, 0.0], (n, 1))
    with pytest.warns(OPEWarning, match=r"snips: \d+ of 400 bootstrap replicates are undefined"):
        result = SelfNormalizedIPS(n_bootstrap=replicates, random_state=3).estimate(data, target)
    counts = np.concatenate(list(bootstrap_counts(n, replicates, 3)))
    assert result.n_replicates == replicates
    assert result.n_undefined_replicates == int(np.sum(counts[:, 0] == 0)) > 0
    assert result.value == result.ci_low == result.ci_high == 0.0  # defined ones all give r_0 = 0


def test_no_warning_when_every_replicate_is_defined(tiny) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = SelfNormalizedIPS(n_bootstrap=50).estimate(_random_log(), _greedy(_random_log()))
    assert result.n_undefined_replicates == 0 and result.n_replicates == 50


# ---------------------------------------------------------------------------- refit bootstrap
class ActionMean:
    """The mean reward of the rows it is fitted on (no sample_weight: rows are repeated)."""

    def fit(self, X, y):  # noqa: N803
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):  # noqa: N803
        return np.full(len(X), self.mean_)


def test_refit_bootstrap_refits_the_model_on_each_resample() -> None:
    data = _random_log(n=30)
    target = _greedy(data)

    def columns(q_hat):
        return np.column_stack([np.sum(target * q_hat, axis=1), np.ones(data.n)])

    sums = refit_bootstrap_sums(data, columns, estimator=ActionMean(), n_folds=1, pooled=False,
                                n_replicates=5, random_state=4)  # fmt: skip
    for counts, got in zip(np.concatenate(list(bootstrap_counts(30, 5, 4))), sums, strict=True):
        means = [np.average(data.rewards, weights=counts * (data.actions == a)) for a in range(3)]
        want = counts @ (target @ np.array(means))
        assert got == pytest.approx([want, counts.sum()])


def test_weighted_ridge_equals_ridge_on_repeated_rows() -> None:
    from rec_env.agents.ope.reward_models import RidgeRewardEstimator

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=50)
    counts = rng.integers(0, 4, 50)
    weighted = RidgeRewardEstimator().fit(x, y, sample_weight=counts)
    rows = np.repeat(np.arange(50), counts)
    repeated = RidgeRewardEstimator().fit(x[rows], y[rows])
    np.testing.assert_allclose(weighted.predict(x), repeated.predict(x), rtol=1e-10)


def test_dm_refit_interval_is_wider_than_the_fixed_model_one_and_seeded() -> None:
    """Rewards are pure noise: q-hat varies little over contexts, so a bootstrap that holds it
    fixed sees almost no variance, while the model's own estimation error is ~ 1 / sqrt(100)."""
    log = _random_log(n=300)
    data = log.with_rewards(np.random.default_rng(9).normal(size=300))
    target = _greedy(data)
    refit = DirectMethod(n_bootstrap=60).estimate(data, target)
    fixed = DirectMethod(n_bootstrap=60, refit_bootstrap=False).estimate(data, target)
    assert refit.interval == "refit_bootstrap" and fixed.interval == "bootstrap_fixed_model"
    assert refit.value == fixed.value
    assert refit.ci_high - refit.ci_low > 3 * (fixed.ci_high - fixed.ci_low)
    assert refit == DirectMethod(n_bootstrap=60).estimate(data, target)
    assert refit != DirectMethod(n_bootstrap=60, random_state=1).estimate(data, target)
    given = DirectMethod(n_bootstrap=60).estimate(data, target, estimated_rewards=np.ones((300, 3)))
    assert given.interval == "bootstrap_fixed_model"  # a caller's q-hat cannot be refitted


def test_paired_difference_with_a_refit_bootstrap() -> None:
    data = _random_log(n=300)
    target, baseline = _greedy(data), _greedy(data, seed=5)
    dm = DirectMethod(n_bootstrap=40)
    difference = dm.estimate_difference(data, target, baseline)
    assert difference.value == pytest.approx(
        dm.estimate(data, target).value - dm.estimate(data, baseline).value
    )
    same = dm.estimate_difference(data, target, target)
    assert (same.value, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)
    assert difference.interval == "refit_bootstrap"


# ---------------------------------------------------------------------------- support
def test_unsupported_mass_from_the_logging_distribution() -> None:
    data = _random_log(n=200)
    logging = data.logging_distribution.copy()
    logging[:100, 2] = 1e-4  # action 2 (almost) never taken in the first half of the log
    logging[:100] /= logging[:100].sum(axis=1, keepdims=True)
    keep = ~((np.arange(200) < 100) & (data.actions == 2))
    rows = np.flatnonzero(keep)
    data = LoggedBanditData(
        data.contexts[rows], data.actions[rows], logging[rows, data.actions[rows]],
        data.rewards[rows], 3, logging_distribution=logging[rows],
    )  # fmt: skip
    target = np.tile([0.0, 0.5, 0.5], (data.n, 1))
    first_half = int(np.sum(rows < 100))
    with pytest.warns(OPEWarning, match=r"ips: .*% of the target policy's probability"):
        result = InverseProbabilityWeighting(n_bootstrap=20).estimate(data, target)
    assert result.unsupported_mass == pytest.approx(0.5 * first_half / data.n)
    quiet = InverseProbabilityWeighting(n_bootstrap=20, max_unsupported_mass=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet.estimate(data, target)


def test_unsupported_mass_from_the_log_alone_counts_never_logged_actions(tiny) -> None:
    data = LoggedBanditData(**{**TINY, "n_actions": 3})  # action 2 never logged
    target = np.array([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    with pytest.warns(OPEWarning, match="never logged"):
        result = InverseProbabilityWeighting(n_bootstrap=20).estimate(data, target)
    assert result.unsupported_mass == pytest.approx(1.5 / 4)
    assert InverseProbabilityWeighting(n_bootstrap=20).estimate(tiny, TARGET).unsupported_mass == 0


def test_logging_distribution_is_validated() -> None:
    base = {**TINY, "logging_distribution": np.array([[0.5, 0.5], [0.75, 0.25], [0.8, 0.2],
                                                       [0.5, 0.5]])}  # fmt: skip
    LoggedBanditData(**base)
    with pytest.raises(ValueError, match="disagrees with the propensities"):
        LoggedBanditData(**{**base, "propensities": np.array([0.5, 0.3, 0.8, 0.5])})
    with pytest.raises(ValueError, match="sum to 1 over actions"):
        LoggedBanditData(**{**base, "logging_distribution": np.full((4, 2), 0.4)})
    with pytest.raises(ValueError, match=r"shape mismatch: logging_distribution"):
        LoggedBanditData(**{**base, "logging_distribution": np.full((4, 3), 1 / 3)})
