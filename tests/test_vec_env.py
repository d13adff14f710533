"""Both vector envs on the batched core (SB3 VecEnv, Gymnasium VectorEnv): autoreset, seeding."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import rec_env
from rec_env import ENV_ID
from rec_env.features import FEATURE_INDEX


def test_is_a_real_vec_env_not_a_dummy() -> None:
    venv = rec_env.make_vec_env(8, seed=0)
    assert isinstance(venv, VecEnv) and not isinstance(venv, DummyVecEnv)
    assert venv.num_envs == 8
    assert venv.observation_space.shape == (16,)
    assert venv.action_space.n == 16


def test_autoreset_fills_terminal_observation_and_time_limit() -> None:
    venv = rec_env.make_vec_env(256, seed=1, horizon=5)
    obs = venv.reset()
    assert obs.shape == (256, 16) and obs.dtype == np.float32
    terminated_seen = truncated_seen = 0
    age = np.zeros(256, dtype=int)
    for _ in range(12):
        obs, rewards, dones, infos = venv.step(np.zeros(256, dtype=np.int64))
        assert rewards.dtype == np.float32 and dones.dtype == bool and len(infos) == 256
        for i in np.flatnonzero(dones):
            info = infos[i]
            assert info["terminal_observation"].shape == (16,)
            if info["TimeLimit.truncated"]:
                truncated_seen += 1
            else:
                terminated_seen += 1
            # the returned observation is the new customer's: no contact history yet
            assert obs[i, FEATURE_INDEX["contacts_last_30d"]] == 0.0
        for i in np.flatnonzero(~dones):
            assert "terminal_observation" not in infos[i]
        age += 1
        truncated = np.array([bool(infos[i].get("TimeLimit.truncated")) for i in range(256)])
        # truncation only at the horizon (a churn on the last cycle counts as termination)
        assert not (truncated & (age != 5)).any()
        assert dones[age == 5].all()
        age[dones] = 0
    assert truncated_seen > 0 and terminated_seen > 0


def rollout(seed: int) -> list:
    venv = rec_env.make_vec_env(64, seed=seed)
    trace = [venv.reset().tobytes()]
    actions = np.random.default_rng(0).integers(0, 16, (120, 64))
    for a in actions:
        obs, rewards, dones, _ = venv.step(a)
        trace.append((obs.tobytes(), rewards.tobytes(), dones.tobytes()))
    return trace


def test_seeded_and_deterministic() -> None:
    assert rollout(3) == rollout(3)
    assert rollout(3) != rollout(4)
    venv = rec_env.make_vec_env(16, seed=None)
    venv.seed(3)
    first = venv.reset()
    venv.seed(3)
    assert np.array_equal(venv.reset(), first)


def test_env_method_answers_per_slot() -> None:
    venv = rec_env.make_vec_env(32, seed=0)
    venv.reset()
    masks = venv.env_method("action_masks")
    assert len(masks) == 32 and masks[0].shape == (16,) and masks[0].dtype == bool
    assert np.array_equal(np.stack(masks), venv.action_masks())
    assert all(m[0] for m in masks)  # doing nothing is always allowed
    expected = venv.env_method("expected_rewards", indices=[0, 5])
    assert len(expected) == 2 and np.allclose(expected[1], venv.expected_rewards()[5])
    with pytest.raises(AttributeError):
        venv.env_method("no_such_method")
    assert venv.get_attr("horizon") == [52] * 32
    assert venv.env_is_wrapped(DummyVecEnv) == [False] * 32


def test_step_before_reset_is_an_error() -> None:
    venv = rec_env.make_vec_env(4, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros(4, dtype=np.int64))


def test_maskable_ppo_trains_and_never_picks_masked_actions() -> None:
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    venv = rec_env.make_vec_env(16, seed=0)
    model = MaskablePPO("MlpPolicy", venv, n_steps=16, batch_size=64, n_epochs=1, seed=0)
    model.learn(256)
    obs = venv.reset()
    for _ in range(20):
        masks = get_action_masks(venv)
        actions, _ = model.predict(obs, action_masks=masks)
        assert masks[np.arange(16), actions].all()
        obs, _, _, _ = venv.step(actions)


# ---------------------------------------------------------------------- Gymnasium VectorEnv


def make_vector(num_envs: int, **kwargs: object) -> gym.vector.VectorEnv:
    return gym.make_vec(
        ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
    )


def test_make_vec_returns_a_native_vector_env() -> None:
    envs = make_vector(1024)
    assert isinstance(envs, gym.vector.VectorEnv)
    assert not isinstance(envs, gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert envs.num_envs == 1024 and envs.spec is not None and envs.spec.id == ENV_ID
    single = gym.make(ENV_ID)
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.observation_space == batch_space(single.observation_space, 1024)
    assert envs.action_space == batch_space(single.action_space, 1024)
    obs, infos = envs.reset(seed=0)
    assert obs in envs.observation_space and obs.dtype == np.float32
    segments = set(envs.unwrapped.model.sampler.segment_names)
    assert infos["_segment"].all() and set(infos["segment"]) <= segments
    envs.action_space.seed(0)
    obs, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())
    assert obs in envs.observation_space
    assert rewards.shape == terminated.shape == truncated.shape == (1024,)
    assert terminated.dtype == truncated.dtype == np.bool_
    assert envs.action_masks().shape == envs.expected_rewards().shape == (1024, 16)


def check_next_step_autoreset(envs: gym.vector.VectorEnv, horizon: int, steps: int) -> set:
    """Gymnasium's NEXT_STEP contract, checked on any vector env; returns the info keys seen."""
    envs.reset(seed=5)
    ended = np.zeros(envs.num_envs, dtype=bool)
    age = np.zeros(envs.num_envs, dtype=int)
    keys: set = set()
    rng = np.random.default_rng(0)
    for _ in range(steps):
        obs, rewards, terminated, truncated, infos = envs.step(rng.integers(0, 16, envs.num_envs))
        keys |= set(infos)
        # the step after an ending is a reset: new customer, reward 0, no flags, no step info
        assert (rewards[ended] == 0).all()
        assert not (terminated[ended] | truncated[ended]).any()
        assert (obs[ended, FEATURE_INDEX["contacts_last_30d"]] == 0).all()
        stepped = infos.get("_profit", np.zeros(envs.num_envs, dtype=bool))
        if ended.any():
            assert infos["_segment"][ended].all() and not infos["_segment"][~ended].any()
        assert np.array_equal(stepped, ~ended)
        age = np.where(ended, 0, age + 1)
        assert (truncated == (age == horizon)).all()  # truncation exactly at the horizon
        ended = terminated | truncated
    return keys


def test_next_step_autoreset_like_sync_vector_env() -> None:
    ours = check_next_step_autoreset(make_vector(64, horizon=3, max_episode_steps=3), 3, 12)
    sync = gym.make_vec(ENV_ID, num_envs=8, vectorization_mode="sync", horizon=3)
    assert check_next_step_autoreset(sync, 3, 12) == ours  # the same info keys


def test_max_episode_steps_truncates_as_time_limit_does() -> None:
    assert make_vector(4).unwrapped.horizon == 52
    assert make_vector(4, horizon=104).unwrapped.horizon == 52  # the registration's TimeLimit
    assert make_vector(4, horizon=104, max_episode_steps=104).unwrapped.horizon == 104


def vector_rollout(seed: int, steps: int = 60) -> list:
    envs = make_vector(32, horizon=8, max_episode_steps=8)
    obs, _ = envs.reset(seed=seed)
    trace = [obs.tobytes()]
    for actions in np.random.default_rng(0).integers(0, 16, (steps, 32)):
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        trace.append((obs.tobytes(), rewards.tobytes(), terminated.tobytes(), truncated.tobytes()))
        trace.append(infos["profit"].tobytes())
    return trace


def test_vector_env_is_deterministic_under_seed() -> None:
    assert vector_rollout(3) == vector_rollout(3)
    assert vector_rollout(3) != vector_rollout(4)
    envs = make_vector(16)
    first, _ = envs.reset(seed=11)
    envs.step(np.zeros(16, dtype=np.int64))
    again, _ = envs.reset(seed=11)
    assert np.array_equal(first, again)


def test_reset_mask_resets_only_those_slots() -> None:
    envs = make_vector(8)
    envs.reset(seed=0)
    before, *_ = envs.step(np.full(8, 1))
    mask = np.zeros(8, dtype=bool)
    mask[[2, 5]] = True
    obs, infos = envs.reset(options={"reset_mask": mask})
    assert np.array_equal(obs[~mask], before[~mask])
    assert (obs[mask, FEATURE_INDEX["contacts_last_30d"]] == 0).all()
    assert np.array_equal(infos["_segment"], mask)
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.zeros(8, dtype=bool)})
    with pytest.raises(ValueError, match="unknown reset option"):
        envs.reset(options={"customer": {}})


def test_gym_vector_env_and_sb3_vec_env_share_the_bookkeeping() -> None:
    """Same seed and actions: the same customers, outcomes and replacements in both."""
    gym_envs = make_vector(64, horizon=4, max_episode_steps=4)
    sb3_envs = rec_env.make_vec_env(64, seed=9, horizon=4)
    gym_obs, _ = gym_envs.reset(seed=9)
    assert np.array_equal(gym_obs, sb3_envs.reset())
    actions = np.random.default_rng(1).integers(0, 16, 64)
    for _ in range(4):  # everyone ends by the 4th step
        sb3_obs, sb3_rewards, dones, infos = sb3_envs.step(actions)
        gym_obs, gym_rewards, terminated, truncated, _ = gym_envs.step(actions)
        assert np.array_equal(sb3_rewards, gym_rewards.astype(np.float32))
        assert np.array_equal(dones, terminated | truncated)
        if dones.any():
            break
        assert np.array_equal(sb3_obs, gym_obs)
    rows = np.flatnonzero(dones)
    final = np.stack([infos[i]["terminal_observation"] for i in rows])
    assert np.array_equal(final, gym_obs[rows])
    time_limit = [infos[i]["TimeLimit.truncated"] for i in rows]
    assert time_limit == list(truncated[rows] & ~terminated[rows])
    # SB3 restarts in the same step, Gymnasium in the next one: the same new customers
    restarted, *_ = gym_envs.step(actions)
    assert np.array_equal(restarted[rows], sb3_obs[rows])


def test_gymnasium_vector_wrappers_accept_it() -> None:
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    envs = RecordEpisodeStatistics(make_vector(16, horizon=3, max_episode_steps=3))
    envs.reset(seed=0)
    episodes = 0
    for _ in range(7):
        *_, infos = envs.step(np.zeros(16, dtype=np.int64))
        if "episode" in infos:
            episodes += int(infos["_episode"].sum())
            assert (infos["episode"]["l"][infos["_episode"]] <= 3).all()
    assert episodes >= 16


def test_vector_render_modes() -> None:
    envs = make_vector(3, render_mode="rgb_array")
    envs.reset(seed=0)
    frames = envs.render()
    assert len(frames) == 3 and frames[0].dtype == np.uint8 and frames[0].ndim == 3
    envs.step(np.array([0, 1, 2]))
    assert not np.array_equal(envs.render()[1], frames[1])
    text = make_vector(2, render_mode="ansi")
    text.reset(seed=0)
    text.step(np.array([0, 1]))
    assert "last: " + text.unwrapped.action_names[1] in text.render()[1]
    assert make_vector(2).render() is None


def test_sb3_vec_env_images() -> None:
    venv = rec_env.make_vec_env(4, seed=0, render_mode="rgb_array")
    venv.reset()
    venv.step(np.array([0, 1, 2, 3]))
    images = venv.get_images()
    assert len(images) == 4 and all(image.dtype == np.uint8 for image in images)
    assert rec_env.make_vec_env(2, seed=0).get_images() == [None, None]
