"""What a third party touches first: plain SB3 on gym.make, the wrappers, rl-baselines3-zoo."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

from rec_env import ENV_ID, EnvSettings
from rec_env.features import FEATURE_INDEX, OBS_HIGH
from rec_env.rollout import run_cohort
from rec_env.wrappers import ExpectedReward, ScaleObservation, scale_features

# ---------------------------------------------------------------------------- wrappers


def test_scale_features_maps_the_observation_space_to_unit_interval() -> None:
    env = gym.make(ENV_ID)
    low, high = env.observation_space.low, env.observation_space.high
    for scaling in ("log", "linear"):
        assert np.array_equal(scale_features(low, scaling), np.zeros_like(low))
        assert np.allclose(scale_features(high, scaling), 1.0)
    # the log scale keeps contact timing apart where x / high squeezes it
    days = np.zeros((2, len(OBS_HIGH)), dtype=np.float32)
    days[:, FEATURE_INDEX["days_since_contact"]] = [7.0, 14.0]
    column = FEATURE_INDEX["days_since_contact"]
    assert np.diff(scale_features(days, "log")[:, column]) > 0.1
    assert np.diff(scale_features(days, "linear")[:, column]) < 0.02
    with pytest.raises(ValueError, match="scaling"):
        scale_features(low, "minmax")  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_scale_observation_wrapper_passes_check_env() -> None:
    env = ScaleObservation(gym.make(ENV_ID))
    assert env.observation_space.low.min() == 0.0 and env.observation_space.high.max() == 1.0
    gym_check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(16)))
        assert obs in env.observation_space
        if terminated or truncated:
            obs, _ = env.reset()


def test_expected_reward_wrapper_trains_on_the_expectation() -> None:
    env = ExpectedReward(gym.make(ENV_ID))
    env.reset(seed=0)
    sampled = []
    for action in [1, 5, 0, 14]:
        expected = env.unwrapped.expected_rewards()[action]
        _, reward, _, _, info = env.step(action)
        assert reward == pytest.approx(expected)
        sampled.append(info["sampled_reward"])
    plain = gym.make(ENV_ID)
    plain.reset(seed=0)
    assert sampled == [plain.step(a)[1] for a in [1, 5, 0, 14]]  # the dynamics are untouched


# ---------------------------------------------------------------------------- plain SB3


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_PPO_KEYS = (
    "n_steps",
    "batch_size",
    "n_epochs",
    "learning_rate",
    "gamma",
    "gae_lambda",
    "ent_coef",
)


def recommended_ppo_settings() -> dict:
    """The plain-SB3 recipe: the zoo file ``rec_env/zoo/ppo.yml`` (the docs show the same)."""
    from rec_env.zoo import load_hyperparams

    return load_hyperparams("ppo")[ENV_ID]


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_plain_sb3_ppo_with_the_recommended_settings_beats_no_action() -> None:
    """Docs "Training with your own RL code": its settings, a short budget, a seeded cohort."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    params = recommended_ppo_settings()
    env = make_vec_env(
        ENV_ID,
        n_envs=params["n_envs"],
        seed=0,
        wrapper_class=lambda e: ExpectedReward(ScaleObservation(e)),
    )
    env = VecNormalize(env, norm_obs=False, norm_reward=True, gamma=params["gamma"])
    settings = {key: params[key] for key in _PPO_KEYS}
    model = PPO("MlpPolicy", env, seed=0, device="cpu", **settings)
    model.learn(200_000)

    class Trained:
        def predict(self, obs: np.ndarray, masks: object = None, det: bool = True) -> np.ndarray:
            return model.predict(scale_features(obs), deterministic=True)[0]

    class NoAction:
        def predict(self, obs: np.ndarray, masks: object = None, det: bool = True) -> np.ndarray:
            return np.zeros(len(obs), dtype=np.int64)

    world = EnvSettings().build_model()
    trained = run_cohort(world, Trained(), 20_000, seed=1).profit.mean()
    baseline = run_cohort(world, NoAction(), 20_000, seed=1).profit.mean()
    assert trained > baseline + 0.1, (trained, baseline)


def test_docs_snippet_uses_the_recommended_settings() -> None:
    training = Path(__file__).parents[1] / "docs" / "guide" / "training.md"
    page = training.read_text(encoding="utf-8")
    section = page.split("## Training with your own RL code", 1)[1].split("\n## ", 1)[0]
    snippet = section.split("```python", 1)[1].split("```", 1)[0]
    params = recommended_ppo_settings()
    for key in (*_PPO_KEYS, "n_envs"):
        match = re.search(rf"\b{key}=([0-9.e-]+),", snippet)
        assert match is not None, key
        assert float(match.group(1)) == float(params[key]), key
    assert "ExpectedReward(ScaleObservation(env))" in snippet
    assert "norm_reward=True" in snippet and "norm_obs=False" in snippet


# ---------------------------------------------------------------------------- rl-baselines3-zoo


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_zoo_hyperparameter_files_cover_our_env_id(algo: str) -> None:
    import importlib

    from rec_env.zoo import ZOO_ALGORITHMS, config_path, load_hyperparams

    assert algo in ZOO_ALGORITHMS and config_path(algo).is_file()
    module = importlib.import_module(f"rec_env.zoo.{algo}")  # what --conf-file imports
    assert module.hyperparams == load_hyperparams(algo)
    params = module.hyperparams[ENV_ID]
    assert params["env_wrapper"] == [
        "rec_env.wrappers.ScaleObservation",
        "rec_env.wrappers.ExpectedReward",
    ]
    assert params["n_envs"] >= 16 and params["n_timesteps"] >= 1e6


def test_zoo_train_runs_with_our_hyperparameters(tmp_path: Path) -> None:
    pytest.importorskip("rl_zoo3")
    command = [
        sys.executable,
        "-m",
        "rl_zoo3.train",
        "--algo",
        "ppo",
        "--env",
        ENV_ID,
        "--gym-packages",
        "rec_env",
        "--conf-file",
        "rec_env.zoo.ppo",
        "-n",
        "2000",
        "--eval-freq",
        "-1",
        "--seed",
        "0",
        "-f",
        str(tmp_path / "logs"),
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "logs" / "ppo" / "rec_env-Recommendation-v0_1"
    assert (run / "rec_env-Recommendation-v0.zip").is_file()
    assert (run / "rec_env-Recommendation-v0" / "vecnormalize.pkl").is_file()
    assert "ScaleObservation" in (run / "rec_env-Recommendation-v0" / "config.yml").read_text()
