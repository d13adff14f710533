"""Gymnasium / SB3 conformance, registration, determinism and the env's API."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import rec_env
from rec_env import ENV_ID, FEATURE_NAMES, RecommendationEnv
from rec_env.features import OBS_HIGH, OBS_LOW, PROFILE_FEATURES


def test_profile_features_are_the_classic_ten_in_order() -> None:
    assert PROFILE_FEATURES == (
        "recency",
        "frequency",
        "monetary_value",
        "engagement_score",
        "discount_sensitive",
        "free_shipping_preferred",
        "email_opens",
        "sms_response",
        "push_response",
        "last_purchase_days",
    )
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    for name in ("days_since_contact", "contacts_last_30d", "discounts_last_90d"):
        assert name in FEATURE_NAMES


def test_gymnasium_check_env() -> None:
    env = gym.make(ENV_ID)
    gym_check_env(env.unwrapped)


@pytest.mark.parametrize("reward_mode", ["profit", "conversion", "rule"])
def test_sb3_check_env(reward_mode: str) -> None:
    sb3_check_env(RecommendationEnv(reward_mode=reward_mode), warn=True)


def test_gym_make_without_importing_first() -> None:
    code = (
        "import gymnasium as gym; "
        "env = gym.make('rec_env:rec_env/Recommendation-v0'); "
        "obs, info = env.reset(seed=0); "
        "print(env.spec.max_episode_steps, obs.shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "52 (16,)"


def test_registration_kwargs() -> None:
    spec = gym.spec(ENV_ID)
    assert spec.max_episode_steps == 52
    assert spec.kwargs == {
        "profile": "default",
        "reward_mode": "profit",
        "catalog": "strategy",
        "horizon": 52,
    }
    env = gym.make(ENV_ID, reward_mode="conversion", profile="default")
    assert env.unwrapped.model.reward_mode == "conversion"


def test_import_is_light() -> None:
    code = (
        "import sys, rec_env; "
        "heavy = [m for m in ('torch', 'shap', 'fastapi', 'stable_baselines3', 'numba') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_spaces_and_names() -> None:
    env = RecommendationEnv()
    assert env.observation_space.dtype == np.float32
    assert np.all(np.isfinite(env.observation_space.low))
    assert np.all(np.isfinite(env.observation_space.high))
    np.testing.assert_array_equal(env.observation_space.low, OBS_LOW)
    np.testing.assert_array_equal(env.observation_space.high, OBS_HIGH)
    assert env.feature_names == FEATURE_NAMES
    assert env.action_space.n == len(env.action_names) == 16
    assert env.action_names[0] == "no_action"
    assert "discount_15_email" in env.action_names


def rollout(env: gym.Env, seed: int, steps: int = 300) -> list:
    trace = []
    obs, info = env.reset(seed=seed)
    actions = np.random.default_rng(123).integers(0, env.action_space.n, steps)
    trace.append((obs.tobytes(), info))
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(int(action))
        trace.append((obs.tobytes(), reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset()
            trace.append((obs.tobytes(), info))
    return trace


def test_env_determinism_rollout() -> None:
    first = rollout(gym.make(ENV_ID), seed=7)
    second = rollout(gym.make(ENV_ID), seed=7)
    assert first == second
    assert rollout(gym.make(ENV_ID), seed=8) != first


def test_observations_stay_in_bounds_over_long_runs() -> None:
    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(3000):
        obs, reward, terminated, truncated, _ = env.step(int(rng.integers(16)))
        assert env.observation_space.contains(obs)
        assert np.isfinite(reward)
        if terminated or truncated:
            obs, _ = env.reset()


def test_episode_ends_by_truncation_at_horizon_or_by_churn() -> None:
    env = gym.make(ENV_ID, horizon=10, max_episode_steps=10)
    lengths, churned = [], 0
    for seed in range(40):
        env.reset(seed=seed)
        for t in range(1, 11):
            _, _, terminated, truncated, info = env.step(0)
            if terminated:
                assert info["churned"] == 1.0
                churned += 1
                break
            if truncated:
                assert t == 10
                break
        lengths.append(t)
    assert max(lengths) == 10


def test_horizon_argument_truncates_without_time_limit() -> None:
    env = RecommendationEnv(horizon=20)
    env.reset(seed=0, options={"customer": {"last_purchase_days": 0.0}})
    truncated, t = False, 0
    while not truncated:
        _, _, terminated, truncated, _ = env.step(0)
        t += 1
        if terminated:
            env.reset(options={"customer": {"last_purchase_days": 0.0}})
            t = 0
    assert t == 20


def test_action_masks_follow_consent() -> None:
    env = RecommendationEnv()
    features = {"consent_email": 1.0, "consent_sms": 0.0, "consent_push": 0.0}
    env.reset(seed=0, options={"customer": features})
    masks = env.action_masks()
    for name, allowed in zip(env.action_names, masks, strict=True):
        assert allowed == (name == "no_action" or name.endswith("_email")), name


def test_reset_with_given_customer() -> None:
    env = RecommendationEnv()
    given = {"recency": 3.0, "frequency": 5.0, "monetary_value": 180.0, "engagement_score": 0.9}
    obs, info = env.reset(seed=1, options={"customer": given})
    for name, value in given.items():
        assert obs[FEATURE_NAMES.index(name)] == pytest.approx(value)
    assert info["segment"] in env.model.sampler.segment_names
    with pytest.raises(ValueError, match="frequency"):
        env.reset(options={"customer": {"frequency": -1}})
    with pytest.raises(ValueError, match="unknown segment"):
        env.reset(options={"customer": {"segment": "nope", "features": given}})


def test_invalid_arguments_are_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="reward_mode"):
        RecommendationEnv(reward_mode="revenue")
    with pytest.raises(rec_env.ConfigError, match="available"):
        RecommendationEnv(profile="no_such_population")
    with pytest.raises(ValueError, match="horizon"):
        RecommendationEnv(horizon=0)
    env = RecommendationEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="Discrete"):
        env.step(99)


def test_render_ansi() -> None:
    env = RecommendationEnv(render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert text.startswith("cycle 0") and "recency=" in text


def test_expected_rewards_shape_and_no_action_has_no_cost() -> None:
    env = RecommendationEnv()
    env.reset(seed=0, options={"customer": {"consent_email": 0.0}})
    expected = env.expected_rewards()
    assert expected.shape == (16,)
    assert expected[0] >= 0.0
    # a message on a channel without consent is not delivered: same value as doing nothing
    assert expected[env.action_names.index("recommendation_email")] == pytest.approx(expected[0])
