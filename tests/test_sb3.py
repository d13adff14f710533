"""SB3 agents: the policy wrapper, hyperparameter files and training (tiny budgets)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

import rec_env
from rec_env import ConfigError
from rec_env.agents.baselines import RandomPolicy
from rec_env.agents.evaluation.evaluate import evaluate
from rec_env.agents.sb3 import (
    MODEL_FILE,
    DQNPolicy,
    ExpectedRewards,
    SB3Policy,
    ScaledFeatures,
    hyperparams_file,
    load_hyperparams,
    train_sb3,
)
from rec_env.features import OBS_HIGH, OBS_LOW

ALGORITHMS = ("ppo", "a2c", "dqn", "maskable_ppo")
TINY = {
    "ppo": {"n_envs": 16, "n_steps": 16, "batch_size": 128, "n_epochs": 2},
    "maskable_ppo": {"n_envs": 16, "n_steps": 16, "batch_size": 128, "n_epochs": 2},
    "a2c": {"n_envs": 16, "n_steps": 8},
    "dqn": {"n_envs": 16, "learning_starts": 500, "buffer_size": 5_000, "batch_size": 64},
}
SMOKE_STEPS = 2_000


def tiny_train(algorithm: str, seed: int = 0, steps: int = SMOKE_STEPS, **kwargs):
    return train_sb3(
        algorithm,
        {},
        total_timesteps=steps,
        seed=seed,
        hyperparams=TINY[algorithm],
        eval_every=1_000,
        eval_customers=200,
        **kwargs,
    )


@pytest.fixture(scope="module")
def trained() -> dict[str, tuple[SB3Policy, list[dict[str, float]]]]:
    return {algorithm: tiny_train(algorithm) for algorithm in ALGORITHMS}


@pytest.fixture(scope="module")
def customers() -> tuple[np.ndarray, np.ndarray]:
    """1000 observations with random masks within their consent (no_action always allowed)."""
    venv = rec_env.make_vec_env(1_000, seed=3)
    obs = venv.reset()
    masks = np.random.default_rng(4).random((1_000, 16)) < 0.4
    masks[:, 0] = True
    return obs, masks & venv.action_masks()  # the policies add the consent read from obs


# ---------------------------------------------------------------- training and the curve
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_smoke_training_gives_a_policy_and_a_learning_curve(trained, algorithm) -> None:
    policy, curve = trained[algorithm]
    assert policy.algorithm == algorithm
    assert policy.action_names[0] == "no_action"
    assert curve[0]["timesteps"] == 0
    assert curve[-1]["timesteps"] >= SMOKE_STEPS
    assert set(curve[0]) == {"timesteps", "wall_time_s", "profit_per_customer", "profit_ci95"}
    assert all(b["wall_time_s"] >= a["wall_time_s"] for a, b in itertools.pairwise(curve))
    result = evaluate(policy, {}, 300, seed=1, compare_to_oracle=False)
    assert np.isfinite(result.kpis["profit_per_customer"].mean)


def test_same_seed_same_policy() -> None:
    first, _ = tiny_train("ppo", seed=5, steps=1_000)
    second, _ = tiny_train("ppo", seed=5, steps=1_000)
    obs = rec_env.make_vec_env(500, seed=9).reset()
    np.testing.assert_array_equal(first.predict(obs), second.predict(obs))
    np.testing.assert_array_equal(first.action_probabilities(obs), second.action_probabilities(obs))


# ---------------------------------------------------------------- the policy interface
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_masks_are_respected(trained, customers, algorithm) -> None:
    policy = trained[algorithm][0]
    obs, masks = customers
    for deterministic in (True, False):
        actions = policy.predict(obs, masks, deterministic=deterministic)
        assert actions.shape == (1_000,)
        assert masks[np.arange(1_000), actions].all()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_probabilities_sum_to_one_and_masked_are_zero(trained, customers, algorithm) -> None:
    policy = trained[algorithm][0]
    obs, masks = customers
    probs = policy.action_probabilities(obs, masks)
    assert probs.shape == (1_000, 16)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert (probs[~masks] == 0.0).all()
    assert (probs >= 0).all()
    unmasked = policy.action_probabilities(obs)
    np.testing.assert_allclose(unmasked.sum(axis=1), 1.0, atol=1e-9)
    if algorithm != "dqn":  # DQN's deterministic action is the masked argmax of Q
        np.testing.assert_array_equal(policy.predict(obs, masks), np.argmax(probs, axis=1))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_save_load_round_trip(trained, customers, algorithm, tmp_path: Path) -> None:
    policy = trained[algorithm][0]
    obs, masks = customers
    policy.save(tmp_path)
    assert (tmp_path / "policy.json").is_file() and (tmp_path / MODEL_FILE).is_file()
    loaded = SB3Policy.load(tmp_path)
    assert type(loaded) is type(policy) and loaded.algorithm == algorithm
    assert loaded.action_names == policy.action_names
    np.testing.assert_array_equal(loaded.predict(obs, masks), policy.predict(obs, masks))
    np.testing.assert_array_equal(
        loaded.action_probabilities(obs, masks), policy.action_probabilities(obs, masks)
    )
    assert type(policy).load(tmp_path).algorithm == algorithm


def test_load_rejects_other_policies(tmp_path: Path) -> None:
    RandomPolicy(16).save(tmp_path)
    with pytest.raises(ValueError, match="not an SB3"):
        SB3Policy.load(tmp_path)


def test_dqn_is_epsilon_greedy_over_masked_q_values(trained, customers) -> None:
    policy = trained["dqn"][0]
    assert isinstance(policy, DQNPolicy)
    obs, masks = customers
    assert policy.epsilon == policy.model.exploration_final_eps
    q = policy.q_values(obs)
    assert q.shape == (1_000, 16) and q.dtype == np.float32
    greedy = np.argmax(np.where(masks, q, -np.inf), axis=1)
    np.testing.assert_array_equal(policy.predict(obs, masks), greedy)
    explorer = DQNPolicy(policy.model, epsilon=0.3)
    probs = explorer.action_probabilities(obs, masks)
    expected = 0.3 * masks / masks.sum(axis=1, keepdims=True)
    expected[np.arange(1_000), greedy] += 0.7
    np.testing.assert_allclose(probs, expected)


def test_observations_are_scaled_to_the_unit_interval() -> None:
    space = rec_env.make_vec_env(1, seed=0).observation_space
    for scaling in ("linear", "log"):
        extractor = ScaledFeatures(space, scaling)
        obs = np.vstack([OBS_LOW, OBS_HIGH, rec_env.make_vec_env(200, seed=1).reset()])
        scaled = extractor(torch.as_tensor(obs)).numpy()
        assert scaled.min() >= 0.0 and scaled.max() <= 1.0
        np.testing.assert_allclose(scaled[1], 1.0, rtol=1e-6)


def test_expected_rewards_wrapper_replaces_the_sampled_reward() -> None:
    plain = rec_env.make_vec_env(64, seed=2)
    wrapped = ExpectedRewards(rec_env.make_vec_env(64, seed=2))
    plain.reset(), wrapped.reset()
    actions = np.random.default_rng(0).integers(0, 16, size=(5, 64))
    for step_actions in actions:
        expected = plain.expected_rewards()[np.arange(64), step_actions]
        plain.step(step_actions)
        _, rewards, _, _ = wrapped.step(step_actions)
        np.testing.assert_allclose(rewards, expected, rtol=1e-6)


# ---------------------------------------------------------------- hyperparameter files
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_shipped_hyperparameters_are_valid(algorithm) -> None:
    params = load_hyperparams(algorithm)
    assert params["n_envs"] > 0 and params["n_timesteps"] > 0


def test_overrides_are_applied() -> None:
    defaults = load_hyperparams("ppo")
    params = load_hyperparams(
        "ppo",
        overrides={
            "n_timesteps": 50_000,
            "learning_rate": 1e-3,
            "policy_kwargs": {"net_arch": [32]},
            "policy_kwargs.observation_scaling": "linear",
        },
    )
    assert params["n_timesteps"] == 50_000 and params["learning_rate"] == 1e-3
    assert params["policy_kwargs"]["net_arch"] == [32]
    assert params["policy_kwargs"]["observation_scaling"] == "linear"
    assert params["policy_kwargs"]["activation_fn"] == defaults["policy_kwargs"]["activation_fn"]
    assert params["gamma"] == defaults["gamma"]


def test_unknown_override_is_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match="learning_rat"):
        load_hyperparams("ppo", overrides={"learning_rat": 1e-3})


def test_bad_override_type_names_the_field() -> None:
    with pytest.raises(ConfigError, match="n_steps"):
        load_hyperparams("a2c", overrides={"n_steps": "many"})


def _bad_file(tmp_path: Path, replace: str, by: str) -> Path:
    text = hyperparams_file("ppo").read_text(encoding="utf-8")
    assert replace in text
    path = tmp_path / "ppo.yaml"
    path.write_text(text.replace(replace, by), encoding="utf-8")
    return path


def test_unknown_key_in_file_names_file_and_field(tmp_path: Path) -> None:
    path = _bad_file(tmp_path, "  n_envs:", "  n_envz: 3\n  n_envs:")
    with pytest.raises(ConfigError) as error:
        load_hyperparams("ppo", path=path)
    assert str(path) in str(error.value) and "n_envz" in str(error.value)


def test_bad_type_in_file_names_file_and_field(tmp_path: Path) -> None:
    path = _bad_file(tmp_path, "  gamma:", "  gamma: lots\n  _unused_gamma:")
    with pytest.raises(ConfigError) as error:
        load_hyperparams("ppo", path=path)
    assert str(path) in str(error.value) and "gamma" in str(error.value)


def test_missing_env_id_is_an_error(tmp_path: Path) -> None:
    path = _bad_file(tmp_path, "rec_env/Recommendation-v0:", "other/Env-v0:")
    with pytest.raises(ConfigError, match="Recommendation-v0"):
        load_hyperparams("ppo", path=path)


def test_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="ppo"):
        load_hyperparams("sac")


# ---------------------------------------------------------------- learning quality
@pytest.mark.slow
def test_ppo_learns_to_beat_random() -> None:
    policy, _ = train_sb3(
        "ppo", {}, total_timesteps=300_000, seed=0, eval_every=0, eval_customers=500
    )
    ppo = evaluate(policy, {}, 5_000, seed=21, compare_to_oracle=False)
    random = evaluate(RandomPolicy(16, random_state=0), {}, 5_000, seed=21, compare_to_oracle=False)
    assert ppo.kpis["profit_per_customer"].low > random.kpis["profit_per_customer"].high
