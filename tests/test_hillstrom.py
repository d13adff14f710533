"""The Hillstrom data set, bandits on its own features, replay and ``recenv bench hillstrom``."""

from __future__ import annotations

import csv
import hashlib
from importlib import resources

import numpy as np
import pytest
from cli_checks import assert_bad_input
from typer.testing import CliRunner

from rec_env.agents.bandits import LinearThompsonSampling, LinUCB
from rec_env.agents.base import OnlinePolicy
from rec_env.agents.baselines import FixedActionPolicy
from rec_env.agents.benchmarks.hillstrom import CONSTANT_POLICIES, LEARNED_POLICIES, run_hillstrom
from rec_env.agents.ope import InverseProbabilityWeighting, SelfNormalizedIPS
from rec_env.agents.ope.replay import replay
from rec_env.cli.main import app
from rec_env.datasets import (
    HILLSTROM_ACTIONS,
    HILLSTROM_FEATURES,
    LoggedBanditData,
    load_hillstrom,
)
from rec_env.datasets.hillstrom import _codes
from rec_env.feature_space import FeatureSpace

runner = CliRunner()


# ---------------------------------------------------------------------------- the data set
def test_the_shipped_file_is_the_original() -> None:
    data = resources.files("rec_env.datasets").joinpath("hillstrom.csv.gz").read_bytes()
    assert hashlib.sha256(data).hexdigest().startswith("720b13c7e538")


def test_load_hillstrom_encodes_the_campaign() -> None:
    data = load_hillstrom("visit")
    assert (data.n, data.n_actions) == (64_000, 3)
    assert data.action_names == HILLSTROM_ACTIONS == ("mens_email", "womens_email", "no_email")
    assert data.feature_names == HILLSTROM_FEATURES and data.contexts.shape == (64_000, 11)
    np.testing.assert_array_equal(np.bincount(data.actions), [21_307, 21_387, 21_306])
    np.testing.assert_allclose(data.propensities, 1 / 3)
    zips = data.contexts[:, 4:7]
    channels = data.contexts[:, 8:11]
    np.testing.assert_array_equal(zips.sum(axis=1), 1.0)
    np.testing.assert_array_equal(channels.sum(axis=1), 1.0)
    np.testing.assert_array_equal(zips.sum(axis=0), [25_661, 28_776, 9_563])  # Urban, Sub., Rural
    np.testing.assert_array_equal(
        channels.sum(axis=0), [28_021, 28_217, 7_762]
    )  # Phone, Web, Multi
    assert data.contexts[:, 0].min() == 1 and data.contexts[:, 0].max() == 12  # recency
    # the first customer: 10,2) $100 - $200,142.44,1,0,Surburban,0,Phone,Womens E-Mail,0,0,0
    np.testing.assert_array_equal(data.contexts[0], [10, 142.44, 1, 0, 0, 1, 0, 0, 1, 0, 0])
    assert data.actions[0] == 1 and data.rewards[0] == 0
    visits = [data.rewards[data.actions == a].mean() for a in range(3)]
    np.testing.assert_allclose(visits, [0.182757, 0.151400, 0.106167], atol=1e-6)


def test_rewards_and_the_documented_profit() -> None:
    spend = load_hillstrom("spend")
    assert load_hillstrom("conversion").rewards.sum() == 578
    assert spend.rewards.max() == 499.0
    emailed = spend.actions != 2
    np.testing.assert_allclose(
        load_hillstrom("profit").rewards, spend.rewards * 0.3 - 0.1 * emailed
    )
    custom = load_hillstrom("profit", profit_margin=0.5, email_cost=0.0)
    np.testing.assert_allclose(custom.rewards, spend.rewards * 0.5)
    with pytest.raises(ValueError, match="unknown Hillstrom reward 'clicks'"):
        load_hillstrom("clicks")
    with pytest.raises(ValueError, match="row 2 has an unknown zip_code 'Mars'"):
        _codes("zip_code", ("Urban", "Mars"), ("Urban", "Rural"))


def test_estimators_on_the_real_campaign_by_hand() -> None:
    """Uniform propensities 1/3: IPS = 3/n * sum of Mens visits, SNIPS = the Mens visit rate."""
    data = load_hillstrom("visit")
    always_mens = np.tile([1.0, 0.0, 0.0], (data.n, 1))
    mens = data.actions == 0
    ips = InverseProbabilityWeighting(n_bootstrap=20).estimate(data, always_mens)
    assert ips.value == pytest.approx(3 * data.rewards[mens].sum() / data.n)
    snips = SelfNormalizedIPS(n_bootstrap=20).estimate(data, always_mens)
    assert snips.value == pytest.approx(data.rewards[mens].mean())
    assert snips.effective_sample_size == pytest.approx(mens.sum())
    assert snips.max_weight == 3.0


# ---------------------------------------------------------------------------- own features
def test_linucb_is_ridge_regression_on_the_standardised_contexts() -> None:
    rng = np.random.default_rng(0)
    contexts = rng.normal(5.0, 3.0, size=(400, 11))
    actions = rng.integers(0, 3, 400)
    rewards = contexts[:, 0] * 0.1 - actions + rng.normal(size=400)
    space = FeatureSpace.standardised(HILLSTROM_FEATURES, contexts)
    bandit = LinUCB(n_actions=3, features=space, alpha=0.7)
    bandit.update(contexts, actions, rewards)
    mean, std = contexts.mean(0), contexts.std(0)
    z = np.column_stack([(contexts - mean) / std, np.ones(400)])
    np.testing.assert_allclose(bandit.contexts(contexts), z, rtol=1e-12, atol=1e-12)
    assert bandit.theta_.shape == (3, 12)  # 11 features and the bias, no padding
    grams = [np.eye(12) + z[actions == a].T @ z[actions == a] for a in range(3)]
    thetas = [np.linalg.solve(g, z[actions == a].T @ rewards[actions == a]) for a, g in
              enumerate(grams)]  # fmt: skip
    for a in range(3):
        np.testing.assert_allclose(bandit.theta_[a], thetas[a], atol=1e-9)
    fresh = rng.normal(5.0, 3.0, size=(50, 11))
    zf = np.column_stack([(fresh - mean) / std, np.ones(50)])
    scores = np.column_stack([
        zf @ thetas[a] + 0.7 * np.sqrt(np.einsum("ij,jk,ik->i", zf, np.linalg.inv(grams[a]), zf))
        for a in range(3)
    ])  # fmt: skip
    np.testing.assert_array_equal(bandit.predict(fresh), scores.argmax(axis=1))
    with pytest.raises(ValueError, match=r"shape \(n, 11\)"):
        bandit.predict(np.zeros((2, 5)))


# ---------------------------------------------------------------------------- replay
class Recorder(OnlinePolicy):
    """Always action 0 until it has learned from two rounds, then always action 1."""

    def __init__(self) -> None:
        super().__init__(2, features=["row"])
        self.seen: list[float] = []

    def _action_probabilities(self, obs, masks):
        return np.tile([1.0, 0.0] if len(self.seen) < 2 else [0.0, 1.0], (len(obs), 1))

    def update(self, obs, actions, rewards) -> None:
        self.seen += list(obs[:, 0])


def uniform_log(actions, n_actions: int = 2) -> LoggedBanditData:
    n = len(actions)
    return LoggedBanditData(np.arange(n, dtype=float)[:, None], np.array(actions),
                            np.full(n, 1 / n_actions), np.arange(n) * 10.0, n_actions)  # fmt: skip


def test_replay_keeps_the_matching_rounds_and_learns_only_from_them() -> None:
    data = uniform_log([1, 0, 1, 0, 0, 1, 0, 1])
    result = replay(Recorder(), data, name="recorder")
    # action 0 is kept at rows 1 and 3; from then on the policy wants 1: rows 5 and 7
    np.testing.assert_array_equal(result.rows, [1, 3, 5, 7])
    np.testing.assert_array_equal(result.cumulative_reward, [10, 40, 90, 160])
    assert (result.policy, result.n_logged, result.n_kept, result.mean_reward) == (
        "recorder", 8, 4, 40.0,
    )  # fmt: skip
    frozen = replay(FixedActionPolicy(2, 0), data)
    np.testing.assert_array_equal(frozen.rows, [1, 3, 4, 6])


def test_replay_needs_every_action_allowed() -> None:
    # non-uniform logs are replayed by rejection sampling: tests/test_offline_replay.py
    masked = LoggedBanditData(np.zeros((2, 1)), np.array([0, 1]), np.full(2, 0.5), np.zeros(2), 2,
                              action_masks=np.array([[1, 0], [1, 1]], bool))  # fmt: skip
    with pytest.raises(ValueError, match="every action to be allowed"):
        replay(FixedActionPolicy(2, 0), masked)


def test_bandits_learn_by_replay_on_hillstrom() -> None:
    data = load_hillstrom("visit").subset(np.arange(6_000))
    space = FeatureSpace.standardised(data.feature_names, data.contexts)
    for bandit in (
        LinUCB(n_actions=3, features=space),
        LinearThompsonSampling(n_actions=3, random_state=0, features=space),
    ):
        result = replay(bandit, data)
        assert 1_700 < result.n_kept < 2_300  # about a third of the rounds
        assert bandit.counts_.sum() == result.n_kept


# ---------------------------------------------------------------------------- benchmark
def test_benchmark_is_seeded_and_complete() -> None:
    first = run_hillstrom("conversion", seed=4, n_bootstrap=30, customers=3_000)
    again = run_hillstrom("conversion", seed=4, n_bootstrap=30, customers=3_000)
    assert first.rows() == again.rows() and first.gain_rows() == again.gain_rows()
    assert (first.n_train, first.n_test) == (1_500, 1_500)
    assert set(first.estimates) == {*LEARNED_POLICIES, *CONSTANT_POLICIES, "random"}
    assert first.best_constant in CONSTANT_POLICIES and set(first.gains) == set(LEARNED_POLICIES)
    assert [r.estimator for r in first.estimates["never"]] == ["ips", "snips", "dr"]
    np.testing.assert_allclose(first.action_shares["never"], [0, 0, 1])
    assert {r.policy for r in first.replays} == set(first.estimates) - {"reward_model"}
    assert all(
        v.startswith(("beats", "worse", "no significant")) for v in first.verdicts().values()
    )
    with pytest.raises(ValueError, match="customers must be between"):
        run_hillstrom(customers=2)


def test_bench_hillstrom_command(tmp_path) -> None:
    out = tmp_path / "bench"
    args = ["bench", "hillstrom", "--reward", "profit", "--seed", "1", "--customers", "4000",
            "--n-bootstrap", "50", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for text in ("always_mens", "always_womens", "never", "random", "linucb", "lin_ts", "DR"):
        assert text in result.stdout
    with (out / "hillstrom_profit.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7 * 3 and {"ci_low", "ci_high", "effective_sample_size"} <= set(rows[0])
    for name in ("hillstrom_profit_gains.csv", "hillstrom_profit_replay.csv"):
        assert (out / name).stat().st_size > 0
    assert (out / "hillstrom_profit_replay.png").read_bytes()[:4] == b"\x89PNG"
    bench = ["bench", "hillstrom", "--out", str(tmp_path / "unused")]  # out is not empty now
    assert_bad_input(runner.invoke(app, [*bench, "--reward", "clicks"]), "--reward", "visit")
    assert_bad_input(runner.invoke(app, [*bench, "--n-bootstrap", "1"]), "--n-bootstrap")
    assert_bad_input(runner.invoke(app, [*bench, "--customers", "1"]), "customers must be")
    assert_bad_input(runner.invoke(app, [*bench, "--v", "0"]), "--v > 0")
