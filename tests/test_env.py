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
from rec_env import ENV_ID, FEATURE_NAMES, EnvSettings, RecommendationEnv
from rec_env.features import FEATURES, OBS_HIGH, OBS_LOW, PROFILE_FEATURES
from rec_env.settings import DEFAULT_HORIZON


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


@pytest.mark.parametrize("render_mode", [None, "ansi", "rgb_array"])
def test_gymnasium_check_env(render_mode: str | None) -> None:
    env = gym.make(ENV_ID, render_mode=render_mode)
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
    assert spec.max_episode_steps == DEFAULT_HORIZON == 52
    assert spec.kwargs == {
        "profile": "default",
        "reward_mode": "profit",
        "catalog": "strategy",
        "horizon": DEFAULT_HORIZON,
    }
    assert spec.vector_entry_point == "rec_env.vector_env:RecommendationVectorEnv"
    env = gym.make(ENV_ID, reward_mode="conversion", profile="default")
    assert env.unwrapped.model.reward_mode == "conversion"
    assert env.unwrapped.settings == EnvSettings(reward_mode="conversion")


def test_settings_object_or_keywords() -> None:
    settings = EnvSettings(reward_mode="conversion", horizon=10, cycle_days=14)
    env = RecommendationEnv(settings)
    assert env.settings is settings and env.horizon == 10
    assert env.model.reward_mode == "conversion" and env.model.cycle_days == 14.0
    # keywords override the settings' fields; a mapping works like settings
    assert RecommendationEnv(settings, horizon=20).settings == settings.replace(horizon=20)
    assert RecommendationEnv({"horizon": 5}).settings == EnvSettings(horizon=5)
    with pytest.raises(TypeError, match="keywords"):
        RecommendationEnv("default")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown environment setting"):
        RecommendationEnv({"horizn": 5})


def test_sb3_make_vec_env_on_our_id() -> None:
    # SB3 passes render_mode="rgb_array" by default and retries only on a TypeError.
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("rec_env:rec_env/Recommendation-v0", n_envs=4, seed=0)
    obs = venv.reset()
    assert obs.shape == (4, 16)
    obs, rewards, dones, _ = venv.step(np.arange(4))
    assert rewards.shape == (4,) and not dones.any()
    images = venv.get_images()
    assert len(images) == 4 and images[0].dtype == np.uint8 and images[0].shape[2] == 3


def test_docstring_observation_table_matches_features() -> None:
    doc = RecommendationEnv.__doc__ or ""
    section = doc.split("## Observation Space", 1)[1].split("##", 1)[0]
    rows = [line.strip() for line in section.splitlines() if line.strip().startswith("|")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]
    assert [int(row[0]) for row in cells] == list(range(len(FEATURES)))
    assert [row[1] for row in cells] == [f.name for f in FEATURES]
    assert [float(row[-2]) for row in cells] == [f.low for f in FEATURES]
    assert [float(row[-1]) for row in cells] == [f.high for f in FEATURES]


def test_import_is_light() -> None:
    # the Gymnasium vector env and the wrappers are part of the light import too
    code = (
        "import sys, rec_env, rec_env.vector_env, rec_env.wrappers; "
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


def test_render_ansi_shows_last_action_and_reward() -> None:
    env = RecommendationEnv(render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert text.startswith("cycle 0") and "recency=" in text and "last: none" in text
    action = env.action_names.index("discount_15_email")
    _, reward, _, _, _ = env.step(action)
    text = env.render()
    assert text.startswith("cycle 1") and "last: discount_15_email" in text
    assert f"reward={reward:+.4g}" in text


def test_render_rgb_array_is_a_picture_that_follows_the_customer() -> None:
    env = gym.make(ENV_ID, render_mode="rgb_array")
    assert env.metadata["render_modes"] == ["human", "ansi", "rgb_array"]
    env.reset(seed=0)
    first = env.render()
    assert first.ndim == 3 and first.shape[2] == 3 and first.dtype == np.uint8
    assert first.shape[0] >= 32 and first.shape[1] >= 64
    env.step(env.unwrapped.action_names.index("recommendation_email"))
    second = env.render()
    assert second.shape == first.shape and not np.array_equal(first, second)
    assert RecommendationEnv().render() is None
    with pytest.raises(ValueError, match="render_mode"):
        RecommendationEnv(render_mode="rgb_array_list")


def test_expected_rewards_shape_and_no_action_has_no_cost() -> None:
    env = RecommendationEnv()
    env.reset(seed=0, options={"customer": {"consent_email": 0.0}})
    expected = env.expected_rewards()
    assert expected.shape == (16,)
    assert expected[0] >= 0.0
    # a message on a channel without consent is not delivered: same value as doing nothing
    assert expected[env.action_names.index("recommendation_email")] == pytest.approx(expected[0])
