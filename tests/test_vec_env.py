"""The SB3 VecEnv on the batched core: autoreset, infos, seeding, masks, MaskablePPO."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import rec_env
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
