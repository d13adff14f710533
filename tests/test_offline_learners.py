"""Offline learners (``rec_env.agents.offline``) on synthetic logs with a known best action."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB

from rec_env.agents.base import POLICY_FILE, Policy
from rec_env.agents.integrity import load_policy, load_verified_policy, policy_digests
from rec_env.agents.offline import (
    LEARNERS,
    OutcomeReward,
    UpliftPolicy,
    learn,
    learner_options,
    policy_rewards,
)
from rec_env.datasets import LoggedBanditData, load_hillstrom

PROPENSITIES = np.array([0.2, 0.3, 0.5])  # non-uniform logging: every learner must cope


def campaign(n: int = 3_000, seed: int = 0) -> tuple[LoggedBanditData, np.ndarray]:
    """A 3-action log: control 0, treatment 1 pays where ``x0 > 0``, treatment 2 where ``x0 < 0``.

    Expected reward ``E[r | x, a] = 2·x0·[a=1] − 2·x0·[a=2]``: the best action is 1 or 2 by the
    sign of ``x0`` (the control is never best), with unit Gaussian noise.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    a = rng.choice(3, size=n, p=PROPENSITIES)
    mean = 2.0 * x[:, 0] * ((a == 1).astype(float) - (a == 2))
    r = mean + rng.normal(size=n)
    return LoggedBanditData(x, a, PROPENSITIES[a], r, 3, action_names=("none", "up", "down")), x


def best_actions(x: np.ndarray) -> np.ndarray:
    return np.where(x[:, 0] > 0, 1, 2)


@pytest.fixture(scope="module")
def log() -> LoggedBanditData:
    return campaign()[0]


@pytest.fixture(scope="module")
def test_contexts() -> np.ndarray:
    return np.random.default_rng(99).normal(size=(2_000, 3))


@pytest.mark.parametrize("name", LEARNERS)
def test_each_learner_finds_the_better_action(
    name: str, log: LoggedBanditData, test_contexts: np.ndarray
) -> None:
    options = {"control": "none"} if name.endswith("_learner") else {}
    policy = learn(name, log, **options)
    chosen = policy.predict(test_contexts, deterministic=True)
    clear = np.abs(test_contexts[:, 0]) > 0.5  # where the better action wins by at least 2
    assert (chosen == best_actions(test_contexts))[clear].mean() > 0.95


# ---------------------------------------------------------------------------- classifier + cost
def profit_log(n: int = 4_000, lift: float = 0.02, seed: int = 1):
    """Treat (1) or not (0), 50/50: P(buy) = 0.3 + lift·[treated].

    The reward is a profit, 10.5·buy − 0.15·treated: continuous, not a class label.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    a = rng.integers(0, 2, size=n)
    buy = (rng.random(n) < 0.3 + lift * a).astype(float)
    profit = 10.5 * buy - 0.15 * a
    return LoggedBanditData(x, a, np.full(n, 0.5), profit, 2), buy


def test_a_classifier_on_a_continuous_profit_says_what_to_do() -> None:
    data, _ = profit_log()
    with pytest.raises(ValueError, match=r"continuous.*outcome="):
        learn("reward_model", data, estimator=LogisticRegression())


def test_a_classifier_on_the_outcome_with_a_cost_model_predicts_expected_profit() -> None:
    # uplift 0.1 × 10.5 = 1.05 > cost 0.5: treat; above a cost of 1.6: do not
    data, buy = profit_log(n=20_000, lift=0.1)
    x = np.random.default_rng(5).normal(size=(500, 2))
    cheap = OutcomeReward(value=10.5, cost=[0.0, 0.5])
    policy = learn("reward_model", data, estimator=LogisticRegression(), outcome=buy, reward=cheap)
    scores = policy.scores(x)
    np.testing.assert_allclose(scores.mean(axis=0), [10.5 * 0.3, 10.5 * 0.4 - 0.5], atol=0.12)
    assert (policy.predict(x) == 1).mean() > 0.9
    dear = OutcomeReward(value=10.5, cost=[0.0, 1.6])
    policy = learn("reward_model", data, estimator=LogisticRegression(), outcome=buy, reward=dear)
    assert (policy.predict(x) == 0).mean() > 0.9


@pytest.mark.parametrize("name", ["t_learner", "x_learner", "dr_learner"])
def test_uplift_learners_treat_only_where_the_net_uplift_is_positive(name: str) -> None:
    data, buy = profit_log(n=20_000, lift=0.1)  # uplift 1.05 per treated customer
    x = np.random.default_rng(5).normal(size=(500, 2))
    for cost, treated_share in ((0.3, 1.0), (3.0, 0.0)):
        spec = OutcomeReward(value=10.5, cost=[0.0, cost])
        policy = learn(name, data, control=0, outcome=buy, reward=spec)
        assert isinstance(policy, UpliftPolicy)
        assert (policy.predict(x) == 1).mean() == pytest.approx(treated_share, abs=0.05)


def test_uplift_policy_respects_masks(log: LoggedBanditData, test_contexts: np.ndarray) -> None:
    policy = learn("t_learner", log, control="none")
    only_control = np.tile([True, False, False], (len(test_contexts), 1))
    assert (policy.predict(test_contexts, only_control) == 0).all()
    no_control = np.tile([False, True, True], (len(test_contexts), 1))
    chosen = policy.predict(test_contexts, no_control)
    assert (chosen == best_actions(test_contexts)).mean() > 0.93


# ---------------------------------------------------------------------------- IPS / DR learner
def test_ipw_weights_turn_negative_rewards_into_weight_on_the_other_actions() -> None:
    data = LoggedBanditData(np.zeros((2, 1)), np.array([0, 1]), np.array([0.5, 0.25]),
                            np.array([2.0, -1.0]), 3)  # fmt: skip
    gamma = policy_rewards(data, "ips")
    np.testing.assert_allclose(gamma, [[4.0, 0, 0], [0, -4.0, 0]])
    weights = gamma - gamma.min(axis=1, keepdims=True)
    np.testing.assert_allclose(weights, [[4.0, 0, 0], [4.0, 0, 4.0]])


def test_ipw_learner_avoids_the_action_that_loses_money() -> None:
    rng = np.random.default_rng(3)
    n = 2_000
    x = rng.normal(size=(n, 2))
    a = rng.integers(0, 2, size=n)
    r = np.where(a == 1, -1.0, 0.0) + 0.1 * rng.normal(size=n)  # action 1 always loses
    data = LoggedBanditData(x, a, np.full(n, 0.5), r, 2)
    for objective in ("ips", "dr"):
        policy = learn("ipw", data, objective=objective)
        assert (policy.predict(x) == 0).mean() > 0.95


# ---------------------------------------------------------------------------- seeds and saving
@pytest.mark.parametrize("name", LEARNERS)
def test_learning_is_seeded(name: str, log: LoggedBanditData) -> None:
    options = {"control": 0} if name.endswith("_learner") else {}
    first = learn(name, log, random_state=7, **options)
    again = learn(name, log, random_state=7, **options)
    assert first.weights_sha256() == again.weights_sha256()


def test_another_seed_changes_the_cross_fitting(log: LoggedBanditData) -> None:
    first = learn("dr_learner", log, control=0, random_state=1)
    other = learn("dr_learner", log, control=0, random_state=2)
    assert first.weights_sha256() != other.weights_sha256()


@pytest.mark.parametrize("name", LEARNERS)
def test_save_load_round_trip(
    name: str, log: LoggedBanditData, test_contexts: np.ndarray, tmp_path: Path
) -> None:
    options = {"control": 0} if name.endswith("_learner") else {}
    policy = learn(name, log, **options)
    policy.save(tmp_path)
    loaded = load_policy(tmp_path)
    assert type(loaded) is type(policy)
    assert loaded.weights_sha256() == policy.weights_sha256()
    np.testing.assert_array_equal(loaded.predict(test_contexts), policy.predict(test_contexts))
    # and through the verified loader of run directories
    digests = policy_digests(tmp_path, policy)
    verified = load_verified_policy(
        tmp_path, policy.algorithm, digests["files"], digests["weights_sha256"]
    )
    np.testing.assert_array_equal(verified.predict(test_contexts), policy.predict(test_contexts))


def test_a_classifier_outcome_model_round_trips(tmp_path: Path) -> None:
    data, buy = profit_log()
    spec = OutcomeReward(value=10.5, cost=[0.0, 0.15])
    policy = learn("x_learner", data, estimator=LogisticRegression(), outcome=buy, reward=spec)
    policy.save(tmp_path)
    loaded = load_policy(tmp_path)
    x = np.random.default_rng(0).normal(size=(100, 2))
    np.testing.assert_array_equal(loaded.scores(x), policy.scores(x))


def test_an_estimator_neither_linear_nor_trees_refuses_to_save(
    log: LoggedBanditData, tmp_path: Path
) -> None:
    policy = learn("ipw", log, classifier=GaussianNB())
    assert policy.predict(log.contexts[:5]).shape == (5,)
    with pytest.raises(ValueError, match="without pickle"):
        policy.save(tmp_path)
    assert not (tmp_path / POLICY_FILE).exists()


def test_a_tampered_state_file_is_refused(log: LoggedBanditData, tmp_path: Path) -> None:
    policy = learn("reward_model", log)
    policy.save(tmp_path)
    arrays = dict(np.load(tmp_path / "state.npz"))
    arrays["action_0.coef"] = arrays["action_0.coef"][:, :2]
    np.savez(tmp_path / "state.npz", **arrays)
    with pytest.raises(ValueError, match="action_0"):
        Policy.load.__func__(type(policy), tmp_path)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- the registry
def test_learn_names_unknown_learners_and_options(log: LoggedBanditData) -> None:
    with pytest.raises(ValueError, match=r"unknown offline learner 'ppo'.*t_learner"):
        learn("ppo", log)
    with pytest.raises(ValueError, match=r"no option 'alfa'.*alpha"):
        learn("linucb_replay", log, alfa=1.0)
    assert "objective" in learner_options("IPW")


def test_pooled_model_with_action_features_learns_the_shared_effect(
    log: LoggedBanditData, test_contexts: np.ndarray
) -> None:
    features = np.array([[0.0], [1.0], [-1.0]])  # the treatments are mirror images
    policy = learn("reward_model", log, pooled=True, action_features=features)
    assert (policy.predict(test_contexts) == best_actions(test_contexts)).mean() > 0.93


# ---------------------------------------------------------------------------- Hillstrom
def test_learned_policies_beat_no_email_on_held_out_hillstrom() -> None:
    from rec_env.agents.ope import InverseProbabilityWeighting

    data = load_hillstrom("visit")
    rows = np.random.default_rng(0).permutation(data.n)[:8_000]
    train, test = data.subset(rows[:4_000]), data.subset(rows[4_000:])
    ips = InverseProbabilityWeighting(n_bootstrap=10, random_state=0)
    never = np.tile([0.0, 0.0, 1.0], (test.n, 1))
    never_value = ips.estimate(test, never).value
    for name in ("reward_model", "t_learner", "dr_learner", "ipw"):
        options = {"control": "no_email"} if name.endswith("_learner") else {}
        policy = learn(name, train, **options)
        value = ips.estimate(test, policy.action_probabilities(test.contexts)).value
        assert value > never_value + 0.04, name  # e-mailing adds ~8 visits per 100


# ---------------------------------------------------------------------------- consent, reward spec
@pytest.mark.parametrize("name", ["reward_model", "t_learner", "ipw"])
def test_policies_never_e_mail_without_consent(name: str) -> None:
    from rec_env.feature_space import FeatureSpace
    from rec_env.features import OBS_HIGH

    rng = np.random.default_rng(0)
    n = 2_000
    obs = rng.random((n, 16)) * OBS_HIGH
    obs[:, 13:] = 1.0  # consent to every channel in the log
    a = rng.integers(0, 2, size=n)
    r = np.where(a == 1, 1.0, 0.0) + 0.1 * rng.normal(size=n)  # e-mail always pays
    data = LoggedBanditData(obs, a, np.full(n, 0.5), r, 2, feature_names=FeatureSpace.env().names)
    options = {"control": 0} if name.endswith("_learner") else {}
    policy = learn(name, data, features=FeatureSpace.env(), action_channels=["none", "email"],
                   **options)  # fmt: skip
    assert (policy.predict(obs) == 1).all()
    obs[:, 13] = 0.0  # no consent to e-mail
    assert (policy.predict(obs) == 0).all()
    assert (policy.action_probabilities(obs)[:, 1] == 0).all()


def test_a_parsed_reward_spec_becomes_an_outcome_reward() -> None:
    from rec_env.datasets.reward_spec import RewardSpec

    spec = RewardSpec.parse("10*purchase - 0.15*treated")
    reward = OutcomeReward.from_reward_spec(spec, ["promo", "none"], control="none")
    assert (reward.value, reward.constant) == (10.0, 0.0)
    np.testing.assert_allclose(reward.costs(2), [0.15, 0.0])
    with pytest.raises(ValueError, match="2 outcome terms"):
        OutcomeReward.from_reward_spec(RewardSpec.parse("purchase + visit"), ["a", "b"])
    assert OutcomeReward.coerce({"value": 2.0}) == OutcomeReward(value=2.0)
