"""Hybrid bandits with action features: a plain transcription of Li et al.'s algorithm 2, exact
batch updates, the reduction to disjoint LinUCB, save / load, consent, seeds, the law of the
Thompson draws, and generalisation to actions that were rarely or never tried."""

from __future__ import annotations

import numpy as np
import pytest

from rec_env.agents.bandits import (
    BANDITS,
    HybridLinearThompsonSampling,
    HybridLinUCB,
    LinearThompsonSampling,
    LinUCB,
    linear_contexts,
)
from rec_env.agents.base import read_policy_file
from rec_env.agents.registry import action_kwargs
from rec_env.feature_space import FeatureSpace
from rec_env.features import CONSENT_FEATURES

HYBRIDS = (HybridLinUCB, HybridLinearThompsonSampling)


def space(n_features: int) -> FeatureSpace:
    """``n_features`` features in [0, 1] (contexts are the features and a bias)."""
    names = [f"c{j}" for j in range(n_features)]
    return FeatureSpace(names, np.zeros(n_features), np.ones(n_features))


def state(policy) -> dict[str, np.ndarray]:
    return {name: getattr(policy, name).copy() for name in policy.state_names}


# ---------------------------------------------------------------------------- algorithm 2
class PlainHybridLinUCB:
    """Li et al. (2010), algorithm 2, written plainly: ``z = x_P ⊗ f_a``, ``np.linalg.inv``."""

    def __init__(self, features, select, alpha, regularization, shared, per_action) -> None:
        self.features, self.select, self.alpha, self.per_action = (
            features,
            select,
            alpha,
            per_action,
        )
        n_actions, m = features.shape[0], select.shape[0] * features.shape[1]
        d = int(select.max()) + 1  # the bias is the last column of x
        self.a0, self.b0 = shared * np.eye(m), np.zeros(m)
        self.a = [regularization * np.eye(d) for _ in range(n_actions)]
        self.big_b = [np.zeros((d, m)) for _ in range(n_actions)]
        self.b = [np.zeros(d) for _ in range(n_actions)]

    def z(self, x: np.ndarray, action: int) -> np.ndarray:
        return np.kron(x[self.select], self.features[action])

    def scores(self, x: np.ndarray) -> np.ndarray:
        a0_inv = np.linalg.inv(self.a0)
        beta = a0_inv @ self.b0
        scores = []
        for action in range(len(self.a)):
            z = self.z(x, action)
            s, mean = z @ a0_inv @ z, z @ beta
            if self.per_action:
                a_inv, big_b = np.linalg.inv(self.a[action]), self.big_b[action]
                theta = a_inv @ (self.b[action] - big_b @ beta)
                s += -2 * z @ a0_inv @ big_b.T @ a_inv @ x + x @ a_inv @ x
                s += x @ a_inv @ big_b @ a0_inv @ big_b.T @ a_inv @ x
                mean += x @ theta
            scores.append(mean + self.alpha * np.sqrt(s))
        return np.array(scores)

    def learn(self, x: np.ndarray, action: int, reward: float) -> None:
        z = self.z(x, action)
        if not self.per_action:
            self.a0 += np.outer(z, z)
            self.b0 += reward * z
            return
        a_inv, big_b, b = np.linalg.inv(self.a[action]), self.big_b[action], self.b[action]
        self.a0 += big_b.T @ a_inv @ big_b
        self.b0 += big_b.T @ a_inv @ b
        self.a[action] += np.outer(x, x)
        big_b += np.outer(x, z)
        b += reward * x
        a_inv = np.linalg.inv(self.a[action])
        self.a0 += np.outer(z, z) - big_b.T @ a_inv @ big_b
        self.b0 += reward * z - big_b.T @ a_inv @ b


@pytest.mark.parametrize("per_action", [True, False])
@pytest.mark.parametrize("interactions", [None, ("c3", "c0")])
def test_hybrid_linucb_matches_a_plain_transcription_of_algorithm_2(
    per_action: bool, interactions: tuple[str, ...] | None
) -> None:
    rng = np.random.default_rng(0)
    features, n_actions, alpha = space(5), 7, 0.7
    action_features = rng.normal(size=(n_actions, 3))
    policy = HybridLinUCB(
        n_actions, features=features, action_features=action_features, alpha=alpha,
        regularization=1.5, shared_regularization=0.5, per_action=per_action,
        interaction_features=interactions,
    )  # fmt: skip
    select = np.array([3, 0, 5]) if interactions else np.arange(6)
    reference = PlainHybridLinUCB(action_features, select, alpha, 1.5, 0.5, per_action)
    obs = rng.random((120, 5))
    contexts = linear_contexts(obs, features)
    weights = rng.normal(size=(6, 3))
    for t in range(120):
        expected = reference.scores(contexts[t])
        means, widths = policy.moments(obs[t : t + 1])
        np.testing.assert_allclose(means[0] + alpha * np.sqrt(widths[0]), expected, atol=1e-9)
        action = int(policy.predict(obs[t])[0])
        assert action == int(np.argmax(expected)), f"round {t}"
        reward = contexts[t] @ weights @ action_features[action] + rng.normal()
        policy.update(obs[t], [action], [reward])
        reference.learn(contexts[t], action, reward)
    # the estimate is linear in the context (what the explainer reads)
    np.testing.assert_allclose(policy.moments(obs)[0], policy.contexts(obs) @ policy.theta_.T)


# ---------------------------------------------------------------------------- exact updates
def stream(seed: int = 1, n: int = 300, n_actions: int = 9, n_features: int = 4):
    """``rng, obs, actions, rewards, action_features`` of a random logged stream."""
    rng = np.random.default_rng(seed)
    obs = rng.random((n, n_features))
    actions, rewards = rng.integers(0, n_actions, n), rng.normal(size=n)
    return rng, obs, actions, rewards, rng.normal(size=(n_actions, 3))


@pytest.mark.parametrize("cls", HYBRIDS)
@pytest.mark.parametrize("per_action", [True, False])
def test_a_batch_update_is_exactly_the_sequential_one(cls, per_action: bool) -> None:
    _, obs, actions, rewards, action_features = stream()
    kwargs = {"features": space(4), "action_features": action_features, "per_action": per_action}
    batched, chunked, one_by_one = (cls(9, random_state=0, **kwargs) for _ in range(3))
    batched.update(obs, actions, rewards)
    for chunk in np.array_split(np.arange(obs.shape[0]), 7):
        chunked.update(obs[chunk], actions[chunk], rewards[chunk])
        chunked.predict(obs[:3])  # decisions in between rebuild the posterior
    for t in range(obs.shape[0]):
        one_by_one.update(obs[t], [actions[t]], [rewards[t]])
    for other in (chunked, one_by_one):
        for name, array in state(batched).items():
            np.testing.assert_array_equal(getattr(other, name), array, err_msg=name)
        np.testing.assert_array_equal(other.theta_, batched.theta_)
        np.testing.assert_array_equal(other.moments(obs)[1], batched.moments(obs)[1])
        assert other.weights_sha256() == batched.weights_sha256()
    assert batched.counts_.sum() == obs.shape[0]


def test_zero_action_features_reduce_to_disjoint_linucb() -> None:
    """With f_a = 0 the shared part vanishes: the decisions are exactly LinUCB's."""
    rng, features = np.random.default_rng(2), space(6)
    hybrid = HybridLinUCB(12, features=features, action_features=np.zeros((12, 4)), alpha=0.8)
    disjoint = LinUCB(12, features=features, alpha=0.8)
    weights = rng.normal(size=(12, 7))
    for _ in range(30):
        obs = rng.random((10, 6))
        actions = hybrid.predict(obs)
        np.testing.assert_array_equal(actions, disjoint.predict(obs))
        rewards = (linear_contexts(obs, features) * weights[actions]).sum(axis=1)
        rewards += rng.normal(size=10)
        hybrid.update(obs, actions, rewards)
        disjoint.update(obs, actions, rewards)
    np.testing.assert_array_equal(hybrid.gram_inverse_, disjoint.gram_inverse_)
    np.testing.assert_array_equal(hybrid.theta_, disjoint.theta_)
    for mine, theirs in zip(hybrid.moments(obs), disjoint.moments(obs), strict=True):
        np.testing.assert_array_equal(mine, theirs)


# ---------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("cls", HYBRIDS)
@pytest.mark.parametrize("per_action", [True, False])
def test_save_load_round_trip_decides_identically(cls, per_action: bool, tmp_path) -> None:
    _, obs, actions, rewards, action_features = stream(3)
    policy = cls(
        9, random_state=4, features=space(4), action_features=action_features,
        per_action=per_action, interaction_features=["c2", "c0"],
    )  # fmt: skip
    policy.update(obs, actions, rewards)
    policy.save(tmp_path)
    config = read_policy_file(tmp_path)["config"]
    assert config["action_features"] == action_features.tolist()
    assert config["interaction_features"] == ["c2", "c0"] and config["per_action"] is per_action
    loaded = BANDITS[cls.algorithm].load(tmp_path)
    assert type(loaded) is cls and loaded.get_config() == policy.get_config()
    for name, array in state(policy).items():
        np.testing.assert_array_equal(getattr(loaded, name), array, err_msg=name)
    assert loaded.weights_sha256() == policy.weights_sha256()
    for deterministic in (True, False):  # both generators continue from the saved state
        np.testing.assert_array_equal(
            loaded.predict(obs, deterministic=deterministic),
            policy.predict(obs, deterministic=deterministic),
        )
    np.testing.assert_array_equal(
        loaded.action_probabilities(obs[:20]), policy.action_probabilities(obs[:20])
    )


# ---------------------------------------------------------------------------- consent and seeds
@pytest.mark.parametrize("cls", HYBRIDS)
def test_no_action_on_a_channel_without_consent_even_without_masks(cls, model) -> None:
    rng, n = np.random.default_rng(5), 2_000
    batch = model.new_batch(n)
    model.draw_customers(batch, np.arange(n), rng)
    for name in CONSENT_FEATURES:
        batch.feature(name)[:] = rng.random(n) < 0.5
    obs = model.observe(batch)
    allowed = model.actions.consent_masks(obs)
    n_actions = model.actions.n_actions
    channels = np.array(model.actions.channel_names)
    action_features = np.column_stack([channels == c for c in ("email", "sms", "push")])
    policy = cls(
        n_actions, random_state=0, action_features=action_features.astype(float),
        **action_kwargs(model.actions),
    )  # fmt: skip
    actions = rng.integers(0, n_actions, n)  # e-mail pays best, consent or not
    policy.update(obs, actions, 5.0 * (channels[actions] == "email") + rng.normal(size=n))
    unmasked = HybridLinUCB(n_actions, action_features=action_features.astype(float))
    unmasked.update(obs, actions, 5.0 * (channels[actions] == "email") + rng.normal(size=n))
    assert not allowed[np.arange(n), unmasked.predict(obs)].all()  # a consent-blind one errs
    for deterministic in (True, False):
        chosen = policy.predict(obs, deterministic=deterministic)
        assert allowed[np.arange(n), chosen].all()
    probabilities = policy.action_probabilities(obs[:200])
    assert (probabilities[~allowed[:200]] == 0.0).all()
    for i in range(5):  # one customer at a time, 1-D
        assert allowed[i, policy.predict(obs[i], deterministic=False)[0]]


def thompson_run(random_state: int, per_action: bool) -> tuple[np.ndarray, np.ndarray]:
    rng, obs, _, _, action_features = stream(6)
    policy = HybridLinearThompsonSampling(
        9, random_state=random_state, features=space(4), action_features=action_features,
        per_action=per_action,
    )  # fmt: skip
    chosen = []
    for chunk in np.array_split(np.arange(obs.shape[0]), 10):
        actions = policy.predict(obs[chunk], deterministic=False)
        policy.update(obs[chunk], actions, rng.normal(size=chunk.shape[0]) + 0.1 * actions)
        chosen.append(actions)
    return np.concatenate(chosen), policy.action_probabilities(obs[:5])


@pytest.mark.parametrize("per_action", [True, False])
def test_thompson_sampling_is_deterministic_with_a_seed(per_action: bool) -> None:
    actions, probabilities = thompson_run(7, per_action)
    again, probabilities_again = thompson_run(7, per_action)
    np.testing.assert_array_equal(actions, again)
    np.testing.assert_array_equal(probabilities, probabilities_again)
    assert not np.array_equal(actions, thompson_run(8, per_action)[0])


# ---------------------------------------------------------------------------- posterior draws
def joint_posterior_frequencies(
    obs, actions, rewards, customer, action_features, per_action, v, n_draws, rng
) -> np.ndarray:
    """The argmax frequencies of exact draws from the joint ridge posterior over
    ``(vec B, theta_1, ..., theta_A)`` (regularization 1), built plainly."""
    features = space(obs.shape[1])
    contexts, x = linear_contexts(obs, features), linear_contexts(customer, features)[0]
    n_actions, d = action_features.shape[0], x.shape[0]

    def phi(context: np.ndarray, action: int) -> np.ndarray:
        shared = np.kron(context, action_features[action])
        own = np.zeros(n_actions * d if per_action else 0)
        own[action * d : (action + 1) * d] = context if per_action else own[:0]
        return np.concatenate([shared, own])

    rows = np.array([phi(c, a) for c, a in zip(contexts, actions, strict=True)])
    precision = np.eye(rows.shape[1]) + rows.T @ rows
    mean = np.linalg.solve(precision, rows.T @ rewards)
    draws = rng.multivariate_normal(mean, v**2 * np.linalg.inv(precision), size=n_draws)
    scores = draws @ np.array([phi(x, a) for a in range(n_actions)]).T
    return np.bincount(scores.argmax(axis=1), minlength=n_actions) / n_draws


@pytest.mark.parametrize("per_action", [True, False])
def test_thompson_draws_follow_the_joint_posterior(per_action: bool) -> None:
    """One shared draw per customer (``shared_draws >= n``) is exact Thompson sampling, and
    ``action_probabilities`` is its law."""
    rng = np.random.default_rng(0)
    obs, n_actions = rng.random((40, 2)), 4
    action_features = rng.normal(size=(n_actions, 2))
    actions = rng.integers(0, n_actions, 40)
    rewards = rng.normal(size=40)
    n_draws, v = 8_000, 1.0
    policy = HybridLinearThompsonSampling(
        n_actions, random_state=1, features=space(2), action_features=action_features, v=v,
        per_action=per_action, shared_draws=n_draws, n_mc_draws=n_draws,
    )  # fmt: skip
    policy.update(obs, actions, rewards)
    customer = rng.random((1, 2))
    expected = joint_posterior_frequencies(
        obs, actions, rewards, customer, action_features, per_action, v, n_draws, rng
    )
    assert 0.05 < expected.max() < 0.9  # a spread-out law, not a sure choice
    sampled = policy.predict(np.repeat(customer, n_draws, axis=0), deterministic=False)
    frequencies = np.bincount(sampled, minlength=n_actions) / n_draws
    np.testing.assert_allclose(frequencies, expected, atol=0.03)
    np.testing.assert_allclose(policy.action_probabilities(customer)[0], expected, atol=0.03)


# ---------------------------------------------------------------------------- generalisation
def bilinear_world(seed: int, n_actions: int = 200, n_features: int = 6, k: int = 6):
    """Reward ``x^T W f_a`` plus noise: many actions, each described by ``k`` features."""
    rng = np.random.default_rng(seed)
    action_features = rng.normal(size=(n_actions, k)) / np.sqrt(k)
    weights = rng.normal(size=(n_features + 1, k))
    return rng, space(n_features), action_features, weights


def online_regret(policy, seed: int, batches: int = 40, batch: int = 50) -> float:
    """Mean regret per decision over ``batches × batch`` customers (10 per action)."""
    rng, features, action_features, weights = bilinear_world(seed)
    regret = 0.0
    for _ in range(batches):
        obs = rng.random((batch, features.d))
        expected = linear_contexts(obs, features) @ weights @ action_features.T
        actions = policy.predict(obs, deterministic=False)
        values = expected[np.arange(batch), actions]
        regret += (expected.max(axis=1) - values).sum()
        policy.update(obs, actions, values + 0.5 * rng.normal(size=batch))
    return regret / (batches * batch)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hybrid_bandits_generalise_across_rarely_tried_actions(seed: int) -> None:
    _, features, action_features, _ = bilinear_world(seed)
    hybrid = {"features": features, "action_features": action_features}
    disjoint_ucb = online_regret(LinUCB(200, features=features), seed)
    hybrid_ucb = online_regret(HybridLinUCB(200, **hybrid), seed)
    assert hybrid_ucb < 0.5 * disjoint_ucb
    disjoint_ts = LinearThompsonSampling(200, random_state=0, features=features)
    disjoint_ts_regret = online_regret(disjoint_ts, seed)
    shared_ts = HybridLinearThompsonSampling(200, random_state=0, per_action=False, **hybrid)
    assert online_regret(shared_ts, seed) < 0.5 * disjoint_ts_regret
    # with per-action parts, Thompson sampling needs a prior that items follow their features
    # (λ = 1 lets each of 200 untried items deviate as much as the signal: it explores them all)
    hybrid_ts = HybridLinearThompsonSampling(200, random_state=0, regularization=10.0, **hybrid)
    assert online_regret(hybrid_ts, seed) < 0.5 * disjoint_ts_regret


@pytest.mark.parametrize("per_action", [True, False])
def test_hybrid_linucb_ranks_actions_it_never_tried(per_action: bool) -> None:
    """Trained on half the actions only, it picks the best of the other half; LinUCB cannot."""
    rng, features, action_features, weights = bilinear_world(3)
    obs = rng.random((2_000, features.d))
    actions = rng.integers(0, 100, 2_000)
    expected = linear_contexts(obs, features) @ weights @ action_features.T
    rewards = expected[np.arange(2_000), actions] + 0.5 * rng.normal(size=2_000)
    hybrid = HybridLinUCB(
        200, features=features, action_features=action_features, per_action=per_action
    )
    disjoint = LinUCB(200, features=features)
    test = rng.random((1_000, features.d))
    truth = linear_contexts(test, features) @ weights @ action_features.T
    held_out = np.zeros((1_000, 200), dtype=bool)
    held_out[:, 100:] = True
    best = np.argmax(np.where(held_out, truth, -np.inf), axis=1)
    for policy in (hybrid, disjoint):
        policy.update(obs, actions, rewards)
    accuracy = {
        name: (np.argmax(np.where(held_out, p.moments(test)[0], -np.inf), axis=1) == best).mean()
        for name, p in (("hybrid", hybrid), ("disjoint", disjoint))
    }
    assert accuracy["hybrid"] >= 0.75 and accuracy["disjoint"] <= 0.1
    assert held_out[np.arange(1_000), hybrid.predict(test, held_out)].all()


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (HybridLinUCB, {"action_features": np.ones((3, 2))}, "action_features"),
        (HybridLinUCB, {"action_features": [[1.0, np.nan]] * 4}, "action_features"),
        (HybridLinUCB, {"action_features": "price"}, "action_features"),
        (HybridLinUCB, {"interaction_features": ["spend"]}, "interaction_features"),
        (HybridLinUCB, {"interaction_features": "recency"}, "interaction_features"),
        (HybridLinUCB, {"shared_regularization": 0.0}, "shared_regularization"),
        (HybridLinUCB, {"per_action": "yes"}, "per_action"),
        (HybridLinUCB, {"alpha": -1.0}, "alpha"),
        (HybridLinearThompsonSampling, {"shared_draws": 0}, "shared_draws"),
        (HybridLinearThompsonSampling, {"v": 0.0}, "v"),
    ],
)
def test_invalid_hyperparameters_name_the_field(cls, kwargs, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must"):
        cls(4, **kwargs)
