"""Replay by rejection sampling (``rec_env.agents.ope.replay``) on non-uniform logs."""

from __future__ import annotations

import numpy as np
import pytest

from rec_env.agents.bandits import LinUCB
from rec_env.agents.baselines import FixedActionPolicy
from rec_env.agents.ope.replay import replay
from rec_env.datasets import LoggedBanditData
from rec_env.feature_space import FeatureSpace


def skewed_log(n: int = 40_000, seed: int = 0) -> LoggedBanditData:
    """Two actions; the logging policy favours action 1 where it pays (confounded).

    ``x ~ U(0, 1)``, ``μ(1 | x) = 0.8`` if ``x > 0.5`` else ``0.2``; the reward of action 1 is
    Bernoulli(``x``), of action 0 Bernoulli(0.3). The true value of "always 1" is 0.5.
    """
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    p1 = np.where(x > 0.5, 0.8, 0.2)
    a = (rng.random(n) < p1).astype(int)
    reward = np.where(a == 1, rng.random(n) < x, rng.random(n) < 0.3).astype(float)
    propensity = np.where(a == 1, p1, 1 - p1)
    return LoggedBanditData(x[:, None], a, propensity, reward, 2)


def test_rejection_replay_of_a_fixed_policy_is_unbiased_where_plain_replay_is_not() -> None:
    data = skewed_log()  # seeded 0 like the replay: its draws must not replay the log's stream
    always_one = FixedActionPolicy(2, 1, features=FeatureSpace.named(["x"]))
    result = replay(always_one, data)
    standard_error = 0.5 / np.sqrt(result.n_kept)
    assert result.mean_reward == pytest.approx(0.5, abs=4 * standard_error)
    assert result.n_kept == pytest.approx(0.2 * data.n, rel=0.05)  # a share p_min is kept
    assert result.min_propensity == pytest.approx(0.2) and result.n_matched > result.n_kept
    # keeping every match (the uniform-logging algorithm) overweights x > 0.5: biased upwards
    matched = data.actions == 1
    assert data.rewards[matched].mean() > 0.5 + 10 * standard_error


def test_rejection_replay_is_seeded() -> None:
    data = skewed_log(n=2_000)
    policy = FixedActionPolicy(2, 0, features=FeatureSpace.named(["x"]))
    first = replay(policy, data, random_state=3)
    np.testing.assert_array_equal(first.rows, replay(policy, data, random_state=3).rows)
    assert not np.array_equal(first.rows, replay(policy, data, random_state=4).rows)


def test_a_near_uniform_split_is_accepted_and_a_bandit_learns_from_it() -> None:
    rng = np.random.default_rng(0)
    n = 4_000
    x = rng.random((n, 1))
    a = rng.integers(0, 2, size=n)
    propensity = np.where(a == 1, 0.5011, 0.4989)  # the observed split of a real campaign
    reward = np.where(a == 1, x[:, 0], 1 - x[:, 0])
    data = LoggedBanditData(x, a, propensity, reward, 2)
    bandit = LinUCB(2, features=FeatureSpace.named(["x"]), alpha=0.1)
    result = replay(bandit, data)
    assert bandit.counts_.sum() == result.n_kept
    assert result.n_kept == pytest.approx(0.4989 * n, rel=0.06)
    np.testing.assert_array_equal(bandit.predict(np.array([[0.9], [0.1]])), [1, 0])


def test_uniform_logs_keep_every_match_without_drawing() -> None:
    n = 1_000
    rng = np.random.default_rng(1)
    data = LoggedBanditData(rng.random((n, 1)), rng.integers(0, 2, size=n), np.full(n, 0.5),
                            rng.random(n), 2)  # fmt: skip
    policy = FixedActionPolicy(2, 1, features=FeatureSpace.named(["x"]))
    for seed in (0, 1):
        result = replay(policy, data, random_state=seed)
        np.testing.assert_array_equal(result.rows, np.flatnonzero(data.actions == 1))


def test_min_propensity_must_bound_the_logged_ones() -> None:
    data = skewed_log(n=100)
    policy = FixedActionPolicy(2, 1, features=FeatureSpace.named(["x"]))
    with pytest.raises(ValueError, match=r"min_propensity must be in \(0, 0.2\]"):
        replay(policy, data, min_propensity=0.3)
    smaller = replay(policy, data, min_propensity=0.1)
    assert smaller.min_propensity == 0.1 and smaller.n_kept < replay(policy, data).n_kept
