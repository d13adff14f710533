"""Safe by default: no agent ever chooses a channel without consent, masks passed or not.

Every agent of the registry is built the way ``recenv`` builds it (bandits and baselines by the
registry, SB3 agents by ``train_sb3`` on a tiny budget) and asked about 5,000 drawn customers
whose consent flags are random: ``predict`` (greedy and sampled), ``action_probabilities``, one
customer at a time, after a batch ``update``, and after a save / load round trip.
"""

from __future__ import annotations

import numpy as np
import pytest

from rec_env.agents.base import Policy
from rec_env.agents.baselines import FixedActionPolicy, RandomPolicy
from rec_env.agents.registry import (
    ALGORITHMS,
    BANDIT_ALGORITHMS,
    SB3_ALGORITHMS,
    action_kwargs,
    make_bandit,
    make_baseline,
)
from rec_env.feature_space import FeatureSpace
from rec_env.features import CONSENT_FEATURES

N_CUSTOMERS = 5_000
TINY_SB3 = {
    "ppo": {"n_envs": 16, "n_steps": 16, "batch_size": 128, "n_epochs": 1},
    "maskable_ppo": {"n_envs": 16, "n_steps": 16, "batch_size": 128, "n_epochs": 1},
    "a2c": {"n_envs": 16, "n_steps": 8},
    "dqn": {"n_envs": 16, "learning_starts": 64, "buffer_size": 1_000, "batch_size": 32},
}


class _Customers:
    """Drawn customers with random consent flags; the oracle's view of them."""

    def __init__(self, model, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.model = model
        self.batch = model.new_batch(n)
        model.draw_customers(self.batch, np.arange(n), rng)
        for name in CONSENT_FEATURES:
            self.batch.feature(name)[:] = rng.random(n) < 0.5
        self.obs = model.observe(self.batch)
        self.allowed = model.actions.consent_masks(self.obs)

    def expected_rewards(self) -> np.ndarray:
        return self.model.expected_rewards(self.batch)


@pytest.fixture(scope="module")
def customers(model) -> _Customers:
    drawn = _Customers(model, N_CUSTOMERS, seed=11)
    assert 0.8 < (~drawn.allowed).any(axis=1).mean() < 0.95  # most customers refuse a channel
    return drawn


def _build(name: str, model, customers: _Customers) -> Policy:
    if name in SB3_ALGORITHMS:
        from rec_env.agents.sb3 import train_sb3

        hyperparams = TINY_SB3[name]
        return train_sb3(name, {}, 512, 0, hyperparams, eval_every=0, eval_customers=10)[0]
    if name in BANDIT_ALGORITHMS:
        policy = make_bandit(name, model, seed=0)
        rng = np.random.default_rng(1)  # learn from a batch that ignored consent
        actions = rng.integers(0, model.actions.n_actions, 1_000)
        policy.update(customers.obs[:1_000], actions, rng.normal(actions / 4.0, 1.0))
        return policy
    policy = make_baseline(name, model, seed=0, evaluation_customers=100)
    if hasattr(policy, "set_env"):
        policy.set_env(customers)
    return policy


@pytest.fixture(scope="module")
def agents(model, customers) -> dict[str, Policy]:
    return {name: _build(name, model, customers) for name in ALGORITHMS}


def _assert_consented(customers: _Customers, actions: np.ndarray, what: str) -> None:
    refused = ~customers.allowed[np.arange(actions.shape[0]), actions]
    assert not refused.any(), f"{what}: {refused.sum()} customers got a refused channel"


@pytest.mark.parametrize("name", ALGORITHMS)
def test_no_agent_chooses_a_refused_channel(agents, customers, name: str) -> None:
    policy, obs = agents[name], customers.obs
    for deterministic in (True, False):
        actions = policy.predict(obs, deterministic=deterministic)
        _assert_consented(customers, actions, f"{name} predict(deterministic={deterministic})")
    everything = np.ones_like(customers.allowed)
    _assert_consented(customers, policy.predict(obs, everything), f"{name} with all-True masks")
    probabilities = policy.action_probabilities(obs)
    assert (probabilities[~customers.allowed] == 0.0).all(), name
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    if hasattr(policy, "set_env"):  # the oracle decides the customers of its env only
        return
    for i in range(5):  # one customer at a time, 1-D
        action = int(policy.predict(obs[i], deterministic=False)[0])
        assert customers.allowed[i, action], f"{name} on customer {i}"


@pytest.mark.parametrize("name", BANDIT_ALGORITHMS)
def test_bandit_batch_paths_stay_consented(agents, customers, name: str) -> None:
    policy, obs = agents[name], customers.obs
    actions = policy.predict(obs, deterministic=False)
    rng = np.random.default_rng(2)
    policy.update(obs, actions, rng.normal(size=obs.shape[0]))
    _assert_consented(customers, policy.predict(obs, deterministic=False), f"{name} after update")
    if hasattr(policy, "moments"):  # the compiled scoring of the linear bandits
        assert policy.moments(obs)[0].shape == customers.allowed.shape


@pytest.mark.parametrize("name", [*BANDIT_ALGORITHMS, "ppo", "random", "best_fixed", "rule"])
def test_saved_policies_keep_their_channels(agents, customers, name: str, tmp_path) -> None:
    agents[name].save(tmp_path)
    loaded = type(agents[name]).load(tmp_path)
    assert loaded.action_channels == agents[name].action_channels is not None
    _assert_consented(customers, loaded.predict(customers.obs), f"loaded {name}")


def test_the_policy_masks_are_the_catalogs(model, customers) -> None:
    policy = RandomPolicy(model.actions.n_actions, **action_kwargs(model.actions))
    np.testing.assert_array_equal(policy.consent_masks(customers.obs), customers.allowed)
    caller = np.random.default_rng(3).random(customers.allowed.shape) < 0.5
    combined = policy.allowed_actions(customers.obs, caller)
    np.testing.assert_array_equal(combined, caller & customers.allowed)


def test_foreign_features_without_consent_have_no_consent_mask(model) -> None:
    n = model.actions.n_actions
    channels = action_kwargs(model.actions)["action_channels"]
    foreign = FeatureSpace.named(["age", "tenure", "spend"])
    policy = FixedActionPolicy(n, 5, action_channels=channels, features=foreign)
    assert policy.consent_masks(np.zeros((4, 3))) is None
    np.testing.assert_array_equal(policy.predict(np.zeros((4, 3))), 5)
    on_env = FixedActionPolicy(n, 5, action_channels=channels)
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        on_env.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="one channel per action"):
        FixedActionPolicy(n, 5, action_channels=("email",))
    with pytest.raises(ValueError, match="unknown channels"):
        FixedActionPolicy(2, 1, action_channels=("none", "fax"))
