"""Hand-written bandits: env smoke training, save/load, determinism, masks, a plain LinUCB
reference, learning quality and hyperparameter validation."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from rec_env.agents.bandits import (
    BANDITS,
    STATE_FILE,
    UCB1,
    BanditPolicy,
    EpsilonGreedy,
    LinearThompsonSampling,
    LinUCB,
    ThompsonSampling,
    linear_contexts,
)
from rec_env.agents.base import POLICY_FILE, read_policy_file
from rec_env.feature_space import FeatureSpace
from rec_env.features import OBS_HIGH
from rec_env.rollout import Cohort, run_cohort

N_ACTIONS = 16
RANDOMISED = ("egreedy", "thompson", "lin_ts", "hybrid_lin_ts")


def make(name: str, n_actions: int = N_ACTIONS, random_state: int | None = 0, **kwargs):
    return BANDITS[name](n_actions, random_state=random_state, **kwargs)


def synthetic_obs(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.random((n, OBS_HIGH.shape[0])) * OBS_HIGH).astype(np.float32)


def random_masks(rng: np.random.Generator, n: int, n_actions: int = N_ACTIONS) -> np.ndarray:
    masks = rng.random((n, n_actions)) < 0.4
    masks[:, 0] = True  # no_action is always allowed
    return masks


def trained(name: str, model, n_customers: int = 300, horizon: int = 5) -> BanditPolicy:
    policy = make(name, model.actions.n_actions)
    run_cohort(model, policy, n_customers, horizon, seed=1, learn=True, deterministic=False)
    return policy


def state_arrays(policy: BanditPolicy) -> dict[str, np.ndarray]:
    return {name: getattr(policy, name).copy() for name in policy.state_names}


# ---------------------------------------------------------------------------- interface
def test_registry_and_signatures() -> None:
    assert set(BANDITS) == {
        *("egreedy", "ucb1", "thompson", "linucb", "lin_ts", "hybrid_linucb", "hybrid_lin_ts")
    }
    for name, cls in BANDITS.items():
        assert cls.algorithm == name
        parameters = list(inspect.signature(cls).parameters.values())
        assert [p.name for p in parameters[:3]] == ["n_actions", "action_names", "random_state"]
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters[3:])
        policy = cls(4, random_state=3)
        assert isinstance(policy.random_, np.random.Generator)
        config = policy.get_config()
        assert set(config) == {p.name for p in parameters}
        assert cls(**json.loads(json.dumps(config))).get_config() == config


@pytest.mark.parametrize("name", sorted(BANDITS))
def test_smoke_training_on_the_env(name: str, model) -> None:
    policy = make(name, model.actions.n_actions)
    result = run_cohort(model, policy, 500, 10, seed=0, learn=True)
    assert np.isfinite(result.profit).all() and np.isfinite(result.reward).all()
    assert result.action_counts.sum() > 0
    assert policy.counts_.sum() == result.cycles.sum()
    assert all(np.isfinite(array).all() for array in state_arrays(policy).values())


# ---------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("name", sorted(BANDITS))
def test_save_load_round_trip(name: str, model, tmp_path) -> None:
    policy = trained(name, model)
    policy.save(tmp_path)
    payload = read_policy_file(tmp_path)
    assert payload["algorithm"] == name
    assert payload["config"] == json.loads(json.dumps(policy.get_config()))
    with np.load(tmp_path / STATE_FILE, allow_pickle=False) as data:
        assert set(data.files) == set(policy.state_names)
    loaded = BANDITS[payload["algorithm"]].load(tmp_path)
    assert type(loaded) is type(policy) and loaded.get_config() == policy.get_config()
    for key, array in state_arrays(policy).items():
        np.testing.assert_array_equal(getattr(loaded, key), array)
    cohort = Cohort(model, 1000, seed=5)
    obs, masks = cohort.observation(), cohort.action_masks()
    np.testing.assert_array_equal(loaded.predict(obs, masks), policy.predict(obs, masks))


def test_load_rejects_other_algorithms_and_broken_state(model, tmp_path) -> None:
    policy = trained("linucb", model)
    policy.save(tmp_path)
    with pytest.raises(ValueError, match="linucb"):
        LinearThompsonSampling.load(tmp_path)
    np.savez(tmp_path / STATE_FILE, gram_inverse_=np.eye(3))
    with pytest.raises(ValueError, match="gram_inverse_ has shape"):
        LinUCB.load(tmp_path)
    np.savez(tmp_path / STATE_FILE, gram_inverse_=policy.gram_inverse_)
    with pytest.raises(ValueError, match="missing array 'reward_vectors_'"):
        LinUCB.load(tmp_path)
    (tmp_path / STATE_FILE).unlink()
    with pytest.raises(ValueError, match=STATE_FILE):
        LinUCB.load(tmp_path)
    (tmp_path / POLICY_FILE).unlink()
    with pytest.raises(ValueError, match=POLICY_FILE):
        LinUCB.load(tmp_path)


# ---------------------------------------------------------------------------- determinism
def learning_run(name: str, model, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    policy = make(name, model.actions.n_actions, random_state=random_state)
    result = run_cohort(model, policy, 300, 6, seed=2, learn=True, deterministic=False)
    return result.action_counts, result.profit


@pytest.mark.parametrize("name", sorted(BANDITS))
def test_same_seed_same_actions(name: str, model) -> None:
    counts, profit = learning_run(name, model, random_state=7)
    counts_again, profit_again = learning_run(name, model, random_state=7)
    np.testing.assert_array_equal(counts, counts_again)
    np.testing.assert_array_equal(profit, profit_again)
    other_counts, _ = learning_run(name, model, random_state=8)
    if name in RANDOMISED:
        assert not np.array_equal(counts, other_counts)
    else:  # UCB algorithms draw nothing
        np.testing.assert_array_equal(counts, other_counts)


# ---------------------------------------------------------------------------- masks
@pytest.mark.parametrize("name", sorted(BANDITS))
def test_masks_are_respected(name: str, model) -> None:
    policy = trained(name, model)
    rng = np.random.default_rng(3)
    obs, masks = synthetic_obs(rng, 1000), random_masks(rng, 1000)
    rows = np.arange(1000)
    for deterministic in (True, False):
        actions = policy.predict(obs, masks, deterministic=deterministic)
        assert actions.shape == (1000,) and masks[rows, actions].all()
    probabilities = policy.action_probabilities(obs, masks)
    assert (probabilities[~masks] == 0.0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="allows no action"):
        policy.predict(obs[:2], np.zeros((2, N_ACTIONS), dtype=bool))
    with pytest.raises(ValueError, match="shape"):
        policy.predict(obs[:2], masks[:3])


def test_untrained_ucb1_spreads_a_batch_over_untried_allowed_actions() -> None:
    policy = UCB1(5)
    np.testing.assert_array_equal(policy.predict(np.zeros((7, 16))), [0, 1, 2, 3, 4, 0, 1])
    masks = np.array([[True, False, True, False, True]] * 3)
    np.testing.assert_array_equal(policy.predict(np.zeros((3, 16)), masks), [0, 2, 4])
    policy.update(None, [0, 2, 4], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(policy.predict(np.zeros((3, 16))), [1, 3, 1])


# ---------------------------------------------------------------------------- probabilities
def test_epsilon_greedy_schedule_and_probabilities() -> None:
    policy = EpsilonGreedy(3, epsilon=0.3, decay=0.5, min_epsilon=0.05)
    assert policy.current_epsilon == 0.3
    policy.update(None, [1, 1, 2, 0], [1.0, 2.0, 0.5, 0.0])
    assert policy.current_epsilon == pytest.approx(0.3 / 3.0)
    np.testing.assert_allclose(policy.means_, [0.0, 1.5, 0.5])
    probabilities = policy.action_probabilities(np.zeros((2, 16)), [[1, 1, 1], [1, 0, 1]])
    np.testing.assert_allclose(probabilities, [[0.1 / 3, 0.9 + 0.1 / 3, 0.1 / 3], [0.05, 0, 0.95]])
    policy.update(None, np.zeros(100, dtype=int), np.zeros(100))
    assert policy.current_epsilon == 0.05


def test_batch_moments_equal_the_sequential_ones() -> None:
    rng = np.random.default_rng(4)
    actions, rewards = rng.integers(3, size=500), rng.normal(5.0, 2.0, size=500)
    batched, sequential = ThompsonSampling(3), ThompsonSampling(3)
    for chunk in np.array_split(np.arange(500), 7):
        batched.update(None, actions[chunk], rewards[chunk])
    for a, r in zip(actions, rewards, strict=True):
        sequential.update(None, [a], [r])
    for a in range(3):
        mine = rewards[actions == a]
        assert batched.counts_[a] == mine.size
        assert batched.means_[a] == pytest.approx(mine.mean(), rel=1e-12)
        assert batched.squared_deviations_[a] == pytest.approx(mine.var() * mine.size, rel=1e-10)
        assert sequential.squared_deviations_[a] == pytest.approx(mine.var() * mine.size, rel=1e-10)


@pytest.mark.parametrize("name", ["thompson", "lin_ts"])
def test_thompson_probabilities_match_the_sampled_actions(name: str) -> None:
    """The Monte Carlo propensities are the law of ``predict(deterministic=False)``."""
    rng = np.random.default_rng(5)
    policy = make(name, 4, n_mc_draws=4000)
    obs = synthetic_obs(rng, 400)
    actions = rng.integers(4, size=400)
    policy.update(obs, actions, rng.normal(0.1 * actions, 1.0))
    customer, masks = obs[:1], np.array([[True, True, False, True]])
    probabilities = policy.action_probabilities(customer, masks)[0]
    sampled = policy.predict(
        np.repeat(customer, 20_000, axis=0), np.repeat(masks, 20_000, axis=0), False
    )
    frequencies = np.bincount(sampled, minlength=4) / sampled.size
    np.testing.assert_allclose(probabilities, frequencies, atol=0.03)
    assert probabilities[2] == 0.0 and probabilities.max() < 1.0


# ---------------------------------------------------------------------------- LinUCB reference
class PlainLinUCB:
    """Li et al. (2010), algorithm 1, written plainly: one arm at a time, ``np.linalg.inv``."""

    def __init__(self, n_actions: int, d: int, alpha: float, regularization: float) -> None:
        self.alpha = alpha
        self.gram = [regularization * np.eye(d) for _ in range(n_actions)]  # A_a
        self.b = [np.zeros(d) for _ in range(n_actions)]

    def choose(self, x: np.ndarray) -> int:
        scores = []
        for gram, b in zip(self.gram, self.b, strict=True):
            inverse = np.linalg.inv(gram)
            theta = inverse @ b
            scores.append(theta @ x + self.alpha * np.sqrt(x @ inverse @ x))
        return int(np.argmax(scores))

    def learn(self, x: np.ndarray, action: int, reward: float) -> None:
        self.gram[action] += np.outer(x, x)
        self.b[action] += reward * x


def test_linucb_matches_the_plain_reference() -> None:
    rng = np.random.default_rng(6)
    n_rounds, alpha, regularization = 600, 0.8, 1.5
    obs = synthetic_obs(rng, n_rounds)
    contexts = linear_contexts(obs)
    true_theta = rng.normal(size=(N_ACTIONS, contexts.shape[1]))
    rewards = contexts @ true_theta.T + rng.normal(size=(n_rounds, N_ACTIONS))
    policy = LinUCB(N_ACTIONS, alpha=alpha, regularization=regularization)
    reference = PlainLinUCB(N_ACTIONS, contexts.shape[1], alpha, regularization)
    chosen = np.empty(n_rounds, dtype=int)
    for t in range(n_rounds):
        chosen[t] = policy.predict(obs[t : t + 1])[0]
        assert chosen[t] == reference.choose(contexts[t]), f"round {t}"
        policy.update(obs[t : t + 1], chosen[t : t + 1], rewards[t, chosen[t : t + 1]])
        reference.learn(contexts[t], chosen[t], rewards[t, chosen[t]])
    assert (policy.counts_ > 0).sum() == N_ACTIONS
    for a in range(N_ACTIONS):
        inverse = np.linalg.inv(reference.gram[a])
        np.testing.assert_allclose(policy.gram_inverse_[a], inverse, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(policy.theta_[a], inverse @ reference.b[a], rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(policy.reward_vectors_[a], reference.b[a], rtol=1e-12)
    # one batch update is exactly the sequence of single updates
    batched = LinUCB(N_ACTIONS, alpha=alpha, regularization=regularization)
    batched.update(obs, chosen, rewards[np.arange(n_rounds), chosen])
    one_by_one = LinUCB(N_ACTIONS, alpha=alpha, regularization=regularization)
    for t in range(n_rounds):
        one_by_one.update(obs[t], [chosen[t]], [rewards[t, chosen[t]]])
    np.testing.assert_array_equal(batched.gram_inverse_, one_by_one.gram_inverse_)
    np.testing.assert_array_equal(batched.theta_, one_by_one.theta_)


# ---------------------------------------------------------------------------- learning quality
def contextual_stream(seed: int, n_rounds: int, batch: int, n_features: int = 5, n_arms: int = 4):
    """Batches of ``(obs, expected rewards)``: 5 informative features, linear arm values."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(n_arms, n_features))
    bias = 1.0 + 0.1 * rng.normal(size=n_arms)
    for _ in range(n_rounds // batch):
        features = rng.random((batch, n_features))
        obs = np.zeros((batch, OBS_HIGH.shape[0]))
        obs[:, :n_features] = features * OBS_HIGH[:n_features]
        yield obs, bias + (features - 0.5) @ weights.T, rng


@pytest.mark.slow
@pytest.mark.parametrize("name", ["linucb", "lin_ts"])
def test_linear_bandits_learn_a_contextual_problem(name: str) -> None:
    n_rounds, batch = 20_000, 50
    policy = make(name, 4, random_state=1)
    chosen, best, fixed = [], [], []
    for obs, expected, rng in contextual_stream(0, n_rounds, batch):
        actions = policy.predict(obs, deterministic=False)
        values = expected[np.arange(batch), actions]
        policy.update(obs, actions, values + rng.normal(0.0, 0.5, size=batch))
        chosen.append(values)
        best.append(expected.max(axis=1))
        fixed.append(expected)
    last = slice(int(0.8 * n_rounds / batch), None)
    optimal = np.concatenate(best[last]).sum()
    assert np.concatenate(chosen[last]).sum() >= 0.9 * optimal
    # no single arm gets there: the context is needed
    assert np.concatenate(fixed[last]).sum(axis=0).max() < 0.75 * optimal


@pytest.mark.slow
@pytest.mark.parametrize("name", ["egreedy", "ucb1", "thompson"])
def test_context_free_bandits_find_the_best_arm(name: str) -> None:
    rng = np.random.default_rng(9)
    means = np.array([0.1, 0.3, 0.8, 0.5, 0.2])
    policy = make(name, 5, random_state=2)
    picks = []
    for _ in range(500):
        actions = policy.predict(np.zeros((10, 16)), deterministic=False)
        policy.update(None, actions, rng.normal(means[actions], 1.0))
        picks.append(actions)
    assert policy.predict(np.zeros((1, 16)))[0] == 2
    assert (np.concatenate(picks[400:]) == 2).mean() >= 0.8


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (LinUCB, {"alpha": -1}, "alpha"),
        (LinUCB, {"regularization": 0.0}, "regularization"),
        (LinearThompsonSampling, {"v": 0}, "v"),
        (LinearThompsonSampling, {"n_mc_draws": 1.5}, "n_mc_draws"),
        (EpsilonGreedy, {"epsilon": 1.5}, "epsilon"),
        (EpsilonGreedy, {"decay": -0.1}, "decay"),
        (EpsilonGreedy, {"epsilon": 0.1, "min_epsilon": 0.2}, "min_epsilon"),
        (UCB1, {"c": float("nan")}, "c"),
        (ThompsonSampling, {"prior_count": 0}, "prior_count"),
        (ThompsonSampling, {"prior_rate": "1"}, "prior_rate"),
        (ThompsonSampling, {"n_mc_draws": 0}, "n_mc_draws"),
        (ThompsonSampling, {"prior_shape": True}, "prior_shape"),
    ],
)
def test_invalid_hyperparameters_name_the_field(cls, kwargs, field) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must"):
        cls(4, **kwargs)


def test_invalid_feedback_is_rejected_before_learning() -> None:
    obs = np.zeros((2, 16))
    for policy in (LinUCB(3), UCB1(3)):
        before = state_arrays(policy)
        with pytest.raises(ValueError, match="actions must be in"):
            policy.update(obs, [0, 3], [1.0, 1.0])
        with pytest.raises(ValueError, match="finite"):
            policy.update(obs, [0, 1], [1.0, np.nan])
        with pytest.raises(ValueError, match="same number"):
            policy.update(obs, [0], [1.0])
        for key, array in before.items():
            np.testing.assert_array_equal(getattr(policy, key), array)
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        LinUCB(3).predict(np.zeros((2, 5)))


# ---------------------------------------------------------------------------- non-finite values
def learned_some(name: str) -> BanditPolicy:
    """A bandit with some learned state (so "unchanged" is not just "still at the prior"),
    none of it on actions 1 and 2."""
    policy = make(name)
    rng = np.random.default_rng(3)
    obs = synthetic_obs(rng, 64)
    policy.update(obs, rng.integers(3, N_ACTIONS, 64), rng.normal(1.0, 2.0, 64))
    return policy


def assert_unchanged(policy: BanditPolicy, before: dict[str, np.ndarray], weights: str) -> None:
    for key, array in before.items():
        np.testing.assert_array_equal(getattr(policy, key), array)
    assert policy.weights_sha256() == weights


@pytest.mark.parametrize("name", sorted(BANDITS))
def test_non_finite_feedback_is_refused_and_learns_nothing(name: str) -> None:
    policy = learned_some(name)
    before, weights = state_arrays(policy), policy.weights_sha256()
    obs = synthetic_obs(np.random.default_rng(4), 2)
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="rewards must be finite"):
            policy.update(obs, [1, 2], [1.0, bad])
        broken = obs.copy()
        broken[1, 5] = bad
        with pytest.raises(ValueError, match="observations must be finite"):
            policy.update(broken, [1, 2], [1.0, 1.0])
        assert_unchanged(policy, before, weights)


@pytest.mark.parametrize("name", sorted(BANDITS))
def test_an_update_that_would_overflow_the_state_is_refused(name: str) -> None:
    """1e308 is finite, but two of them on one arm overflow sums: refused, state unchanged."""
    policy = learned_some(name)
    obs = np.ones((1, OBS_HIGH.shape[0]))
    linear = name in ("linucb", "lin_ts", "hybrid_linucb", "hybrid_lin_ts")
    policy.update(obs, [2], [1e308])  # one, on a fresh action, is still a finite state
    assert all(np.isfinite(array).all() for array in state_arrays(policy).values())
    before, weights = state_arrays(policy), policy.weights_sha256()
    # the linear bandits sum r·x (1e308 twice overflows); the running means overflow on the
    # deviation from the mean (-1e308 after 1e308), or on a batch's sum (1e308 twice)
    overflowing = [[1e308]] if linear else [[-1e308], [1e308, 1e308]]
    for rewards in overflowing:
        batch = np.repeat(obs, len(rewards), axis=0)
        with pytest.raises(ValueError, match="overflow"):
            policy.update(batch, [2] * len(rewards), rewards)
        assert_unchanged(policy, before, weights)
    policy.update(obs, [3], [1.0])  # and it still learns
    assert policy.counts_[3] == before["counts_"][3] + 1


@pytest.mark.parametrize("name", sorted(BANDITS))
def test_load_refuses_non_finite_state(name: str, tmp_path) -> None:
    policy = learned_some(name)
    policy.save(tmp_path)
    arrays = state_arrays(policy)
    for key, array in arrays.items():
        if array.dtype.kind != "f":
            continue
        for bad in (np.nan, np.inf):
            broken = array.copy()
            broken.flat[0] = bad
            np.savez(tmp_path / STATE_FILE, **{**arrays, key: broken})
            with pytest.raises(ValueError, match=rf"state\.npz: {key} holds non-finite values"):
                BANDITS[name].load(tmp_path)
    negative = arrays["counts_"].copy()
    negative[0] = -1
    np.savez(tmp_path / STATE_FILE, **{**arrays, "counts_": negative})
    with pytest.raises(ValueError, match=r"state\.npz: counts_ holds negative counts"):
        BANDITS[name].load(tmp_path)
    np.savez(tmp_path / STATE_FILE, **arrays)
    assert BANDITS[name].load(tmp_path).weights_sha256() == policy.weights_sha256()


# ---------------------------------------------------------------------------- any feature space
def named_space(d: int, seed: int = 0) -> FeatureSpace:
    """``d`` named features with bounds, so that the contexts are scaled into [0, 1]."""
    high = np.random.default_rng(seed).uniform(1.0, 100.0, size=d)
    return FeatureSpace([f"feature_{j}" for j in range(d)], np.zeros(d), high)


@pytest.mark.parametrize("d", [5, 64])
def test_linucb_on_any_feature_space_matches_the_plain_reference(d: int) -> None:
    rng = np.random.default_rng(d)
    n_rounds, n_actions, alpha, regularization = 300, 7, 0.6, 2.0
    space = named_space(d)
    obs = rng.random((n_rounds, d)) * space.high
    contexts = np.column_stack([obs / space.high, np.ones(n_rounds)])
    np.testing.assert_allclose(linear_contexts(obs, space), contexts, rtol=1e-15)
    rewards = contexts @ rng.normal(size=(d + 1, n_actions)) + rng.normal(
        size=(n_rounds, n_actions)
    )
    policy = LinUCB(n_actions, features=space, alpha=alpha, regularization=regularization)
    reference = PlainLinUCB(n_actions, d + 1, alpha, regularization)
    assert policy.d == d + 1 and policy.gram_inverse_.shape == (n_actions, d + 1, d + 1)
    for t in range(n_rounds):
        chosen = policy.predict(obs[t])
        assert chosen[0] == reference.choose(contexts[t]), f"round {t}"
        policy.update(obs[t], chosen, rewards[t, chosen])
        reference.learn(contexts[t], int(chosen[0]), float(rewards[t, chosen[0]]))
    for a in range(n_actions):
        inverse = np.linalg.inv(reference.gram[a])
        np.testing.assert_allclose(policy.gram_inverse_[a], inverse, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(policy.theta_[a], inverse @ reference.b[a], atol=1e-8)
    means, quadratic = policy.moments(obs[:20])
    thetas = [np.linalg.solve(g, b) for g, b in zip(reference.gram, reference.b, strict=True)]
    np.testing.assert_allclose(means, contexts[:20] @ np.array(thetas).T, atol=1e-8)
    inverses = np.array([np.linalg.inv(g) for g in reference.gram])
    expected = np.einsum("nj,ajk,nk->na", contexts[:20], inverses, contexts[:20])
    np.testing.assert_allclose(quadratic, expected, rtol=1e-7, atol=1e-10)
    with pytest.raises(ValueError, match=rf"shape \(n, {d}\)"):
        policy.predict(np.zeros((2, 16)))


@pytest.mark.parametrize("name", ["linucb", "lin_ts"])
@pytest.mark.parametrize("d", [5, 64])
def test_linear_bandits_save_and_load_their_feature_space(name: str, d: int, tmp_path) -> None:
    rng = np.random.default_rng(1)
    space = named_space(d)
    policy = make(name, 9, features=space)
    obs = rng.random((200, d)) * space.high
    policy.update(obs, rng.integers(0, 9, 200), rng.normal(size=200))
    policy.save(tmp_path)
    config = read_policy_file(tmp_path)["config"]
    assert config["features"]["names"] == list(space.names)
    loaded = BANDITS[name].load(tmp_path)
    assert loaded.features == space and loaded.d == d + 1 and loaded.n_actions == 9
    np.testing.assert_array_equal(loaded.gram_inverse_, policy.gram_inverse_)
    np.testing.assert_array_equal(loaded.predict(obs), policy.predict(obs))


@pytest.mark.parametrize("name", ["egreedy", "ucb1", "thompson"])
def test_context_free_bandits_take_any_number_of_features_and_actions(name: str) -> None:
    rng = np.random.default_rng(2)
    policy = make(name, 40, features=FeatureSpace.named([f"x{j}" for j in range(64)]))
    obs = rng.normal(size=(300, 64))
    policy.update(obs, rng.integers(0, 40, 300), rng.normal(size=300))
    probabilities = policy.action_probabilities(obs)
    assert probabilities.shape == (300, 40)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert policy.predict(obs, deterministic=False).max() < 40
