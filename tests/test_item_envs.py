"""ItemRecommendation-v0 and SlateRecommendation-v0 as envs: conformance, vectorisation, seeds.

Both envs pass Gymnasium's and SB3's checkers, run in SB3's ``make_vec_env``, in the native SB3
``VecEnv`` and in the native Gymnasium ``VectorEnv`` (with autoreset), keep every observation in
the observation space, are bit-for-bit deterministic with a seed, reject bad settings by field
name, and work with a 10,000-product catalog.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import rec_env
from rec_env import ENV_WORLDS, ITEM_ENV_ID, SLATE_ENV_ID, EnvSettings
from rec_env.errors import ConfigError
from rec_env.products import load_products, save_products, synthetic_products

ITEM_IDS = [ITEM_ENV_ID, SLATE_ENV_ID]


def sample_actions(space: gym.Space, n: int, seed: int) -> list:
    """``n`` actions drawn from ``space`` with its own seeded generator."""
    space.seed(seed)
    return [space.sample() for _ in range(n)]


# ---------------------------------------------------------------------- conformance


@pytest.mark.parametrize("env_id", ITEM_IDS)
def test_gymnasium_check_env(env_id: str) -> None:
    gym_check_env(gym.make(env_id).unwrapped)
    gym_check_env(gym.make(env_id, render_mode="ansi").unwrapped)


@pytest.mark.parametrize("env_id", ITEM_IDS)
def test_sb3_check_env(env_id: str) -> None:
    sb3_check_env(gym.make(env_id).unwrapped, warn=True)


@pytest.mark.parametrize("env_id", ITEM_IDS)
def test_sb3_make_vec_env_steps_through_episode_ends(env_id: str) -> None:
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(env_id, n_envs=2, seed=0)
    obs = venv.reset()
    dones = 0
    for action in sample_actions(venv.action_space, 60, seed=0):
        obs, rewards, done, _ = venv.step(np.stack([action, action]))
        assert all(venv.observation_space.contains(row) for row in obs)
        assert rewards.shape == (2,)
        dones += int(done.sum())
    assert dones >= 2  # the 52-cycle horizon ended every episode at least once


@pytest.mark.parametrize("env_id", ITEM_IDS)
def test_native_sb3_vec_env_autoresets(env_id: str) -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

    venv = rec_env.make_vec_env(32, seed=0, world=ENV_WORLDS[env_id], horizon=3)
    assert isinstance(venv, VecEnv) and not isinstance(venv, DummyVecEnv)
    single = gym.make(env_id)
    assert venv.observation_space == single.observation_space
    assert venv.action_space == single.action_space
    obs = venv.reset()
    age = np.zeros(32, dtype=int)
    rng = np.random.default_rng(0)
    for _ in range(7):
        actions = sample_actions(venv.action_space, 32, int(rng.integers(1 << 30)))
        obs, _, dones, infos = venv.step(np.stack(actions))
        assert all(venv.observation_space.contains(row) for row in obs)
        age += 1
        truncated = np.array([bool(info.get("TimeLimit.truncated")) for info in infos])
        assert dones[age == 3].all() and not truncated[age < 3].any()  # earlier: churn
        for i in np.flatnonzero(dones):
            assert venv.observation_space.contains(infos[i]["terminal_observation"])
            assert obs[i, rec_env.FEATURE_NAMES.index("contacts_last_30d")] == 0.0  # new
        for i in np.flatnonzero(~dones):
            assert "terminal_observation" not in infos[i]
        age[dones] = 0


@pytest.mark.parametrize("env_id", ITEM_IDS)
def test_gymnasium_vector_env_autoresets_next_step(env_id: str) -> None:
    envs = gym.make_vec(env_id, num_envs=16, vectorization_mode="vector_entry_point", horizon=3)
    assert isinstance(envs, gym.vector.VectorEnv)
    assert not isinstance(envs, gym.vector.SyncVectorEnv)
    assert envs.single_action_space == gym.make(env_id).action_space
    obs, _ = envs.reset(seed=0)
    assert obs in envs.observation_space
    envs.action_space.seed(0)
    age = np.zeros(16, dtype=int)
    restarting = np.zeros(16, dtype=bool)
    for _ in range(11):  # the 11th step truncates (cycles 1-3 and 5-7 end at 3 and 7, then 11)
        obs, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())
        assert obs in envs.observation_space
        # NEXT_STEP: a slot that ended starts a new customer, with reward 0 and no end
        assert (rewards[restarting] == 0).all()
        assert not (terminated | truncated)[restarting].any()
        if restarting.any():
            assert infos["_segment"][restarting].all()
        age = np.where(restarting, 0, age + 1)
        np.testing.assert_array_equal(truncated, age == 3)
        restarting = terminated | truncated
    assert restarting.any()


def test_maskable_ppo_reads_the_item_vec_env_masks() -> None:
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

    venv = rec_env.make_vec_env(8, seed=0, world="item")
    assert is_masking_supported(venv)
    obs = venv.reset()
    masks = get_action_masks(venv)
    assert masks.shape == (8, venv.action_space.n) and masks.dtype == bool
    np.testing.assert_array_equal(masks, np.stack(venv.env_method("action_masks")))
    assert masks[:, 0].all() and not masks.all()  # some customers lack some consent
    agent = MaskablePPO("MlpPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, seed=0)
    for _ in range(5):
        masks = get_action_masks(venv)
        actions, _ = agent.predict(obs, action_masks=masks)
        assert masks[np.arange(8), actions].all()
        obs, _, _, _ = venv.step(actions)


def test_item_action_table_layout() -> None:
    env = gym.make(ITEM_ENV_ID, offers=(0.0, 0.15)).unwrapped
    table = env.model.actions
    assert env.action_space.n == table.n_actions == 1 + env.model.products.n_products * 3 * 2
    a = np.arange(1, table.n_actions)
    product, channel, offer = (a - 1) // 6, (a - 1) // 2 % 3, (a - 1) % 2
    np.testing.assert_array_equal(table.product[1:], product)
    np.testing.assert_array_equal(table.channel[1:], channel)
    np.testing.assert_array_equal(table.discount[1:], np.array([0.0, 0.15])[offer])
    assert table.names[0] == "no_action" and table.names[6] == "P0001:push:15off"


# ---------------------------------------------------------------------- determinism


def single_run(env_id: str, seed: int, steps: int = 80) -> list:
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    trace = [obs.tobytes()]
    for action in sample_actions(env.action_space, steps, seed=1):
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs.tobytes(), float(reward), info["clicked_product"], info["profit"]))
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(obs.tobytes())
    return trace


def vector_runs(env_id: str, seed: int, steps: int = 30) -> tuple[list, list]:
    world = ENV_WORLDS[env_id]
    venv = rec_env.make_vec_env(16, seed=seed, world=world, horizon=10)
    envs = gym.make_vec(env_id, num_envs=16, vectorization_mode="vector_entry_point", horizon=10)
    sb3, gymnasium = [venv.reset().tobytes()], [envs.reset(seed=seed)[0].tobytes()]
    for action in sample_actions(envs.action_space, steps, seed=1):
        obs, rewards, dones, _ = venv.step(action)
        sb3.append((obs.tobytes(), rewards.tobytes(), dones.tobytes()))
        obs, rewards, _, _, infos = envs.step(action)
        gymnasium.append((obs.tobytes(), rewards.tobytes(), infos["profit"].tobytes()))
    return sb3, gymnasium


@pytest.mark.parametrize("env_id", ITEM_IDS)
def test_single_env_is_deterministic_with_a_seed(env_id: str) -> None:
    assert single_run(env_id, 3) == single_run(env_id, 3)
    assert single_run(env_id, 3) != single_run(env_id, 4)


@pytest.mark.parametrize("env_id", ITEM_IDS)
def test_vector_envs_are_deterministic_with_a_seed(env_id: str) -> None:
    first, again, other = vector_runs(env_id, 5), vector_runs(env_id, 5), vector_runs(env_id, 6)
    for k in range(2):
        assert first[k] == again[k]
        assert first[k] != other[k]


# ---------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"world": "items"}, "world"),
        ({"world": "slate", "slate_size": 0}, "slate_size"),
        ({"world": "item", "reward_mode": "rule"}, "reward_mode"),
        ({"world": "item", "offers": (0.0, 1.0)}, "offers"),
        ({"world": "item", "offers": (-0.1,)}, "offers"),
        ({"world": "item", "offers": ()}, "offers"),
        ({"world": "slate", "choice_model": "probit"}, "choice_model"),
    ],
)
def test_bad_settings_name_the_field(settings: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        EnvSettings(**settings)
    env_id = SLATE_ENV_ID if settings["world"] == "slate" else ITEM_ENV_ID
    overrides = {k: v for k, v in settings.items() if k != "world"} or settings
    with pytest.raises(ValueError, match=field):
        gym.make(env_id, **overrides)
    with pytest.raises(ValueError, match=field):
        rec_env.make_vec_env(2, **settings)


def test_the_item_env_is_not_another_world() -> None:
    with pytest.raises(ValueError, match="world"):
        gym.make(ITEM_ENV_ID, world="slate")


def test_bad_product_file_names_the_file(tmp_path: Path) -> None:
    path = save_products(load_products("default"), tmp_path / "mine.csv")
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[5].split(",")
    row[header.index("price")] = "-3"
    lines[5] = ",".join(row)
    path.write_text("\n".join(lines) + "\n")
    for env_id in ITEM_IDS:
        with pytest.raises(ConfigError, match=r"mine\.csv") as error:
            gym.make(env_id, products=str(path))
        assert "price" in str(error.value)
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        gym.make(ITEM_ENV_ID, products=str(tmp_path / "missing.yaml"))


# ---------------------------------------------------------------------- large catalogs


@pytest.fixture(scope="module")
def large_catalog(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("large") / "products_10k.csv"
    return str(save_products(synthetic_products(10_000, seed=0), path))


def test_ten_thousand_products_in_the_item_env(large_catalog: str) -> None:
    env = gym.make(ITEM_ENV_ID, products=large_catalog)
    assert env.action_space.n == 1 + 10_000 * 3
    assert env.observation_space.shape == (16 + 3 * 12,)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        masks = env.unwrapped.action_masks()
        assert masks.shape == (30_001,)
        action = int(rng.choice(np.flatnonzero(masks)))
        obs, reward, *_ = env.step(action)
        assert obs in env.observation_space and np.isfinite(reward)
    assert env.unwrapped.expected_rewards().shape == (30_001,)


def test_ten_thousand_products_in_the_slate_env(large_catalog: str) -> None:
    env = gym.make(SLATE_ENV_ID, products=large_catalog)
    products = env.unwrapped.model.products
    env.reset(seed=0)
    for action in sample_actions(env.action_space, 5, seed=0):
        obs, reward, _, _, info = env.step(action)
        assert obs in env.observation_space and np.isfinite(reward)
        slate = info["slate"]
        assert slate.shape == (4,) and len(set(slate.tolist())) == 4
        assert (products.stock[slate] != 0).all()
    venv = rec_env.make_vec_env(4, seed=0, world="slate", products=large_catalog)
    venv.reset()
    venv.step(np.stack(sample_actions(venv.action_space, 4, seed=1)))
