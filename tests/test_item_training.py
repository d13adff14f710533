"""SB3 agents in the item and slate worlds: training, consent, slates, run directories (tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rec_env
from rec_env import ConfigError
from rec_env.agents.runs import RUN_FILE, load_run, read_run_info
from rec_env.agents.sb3 import (
    ExpectedRewards,
    MaskablePPOPolicy,
    PPOPolicy,
    SB3Policy,
    load_hyperparams,
    train_sb3,
)
from rec_env.agents.sb3.network import numpy_network, output_difference
from rec_env.agents.sb3.slate import SlateDecoder, SlatePPOPolicy
from rec_env.agents.training import check_hyperparameters, train
from rec_env.features import CHANNELS
from rec_env.settings import EnvSettings

ITEM = EnvSettings(world="item")
SLATE = EnvSettings(world="slate")
TINY = {
    "ppo": {"n_envs": 16, "n_steps": 16, "batch_size": 128, "n_epochs": 2},
    "maskable_ppo": {"n_envs": 16, "n_steps": 16, "batch_size": 128, "n_epochs": 2},
    "dqn": {"n_envs": 16, "learning_starts": 256, "buffer_size": 2_000, "batch_size": 64},
}
STEPS = 1_024


def tiny(algorithm: str, settings: EnvSettings, seed: int = 0) -> SB3Policy:
    policy, curve = train_sb3(
        algorithm, settings, STEPS, seed, TINY[algorithm], eval_every=0, eval_customers=20
    )
    assert curve[0]["timesteps"] == 0 and curve[-1]["timesteps"] >= STEPS
    return policy


@pytest.fixture(scope="module")
def item_policies() -> dict[str, SB3Policy]:
    return {name: tiny(name, ITEM) for name in ("ppo", "maskable_ppo", "dqn")}


@pytest.fixture(scope="module")
def slate_policy() -> SlatePPOPolicy:
    policy = tiny("ppo", SLATE)
    assert isinstance(policy, SlatePPOPolicy)
    return policy


def without_consent(settings: EnvSettings, n: int = 400, seed: int = 3):
    """Observations, masks and the vec env; consent withdrawn on random channels."""
    venv = rec_env.make_vec_env(n, seed=seed, settings=settings)
    venv.reset()
    batch = venv.slots.batch
    refused = np.random.default_rng(seed).random((n, len(CHANNELS))) < 0.5
    for c, channel in enumerate(CHANNELS):
        batch.feature(f"consent_{channel}")[refused[:, c]] = 0.0
    return venv.model.observe(batch), venv, refused


# ---------------------------------------------------------------- item world
@pytest.mark.parametrize("algorithm", ["ppo", "maskable_ppo", "dqn"])
def test_item_policies_see_the_item_features_and_actions(item_policies, algorithm) -> None:
    policy = item_policies[algorithm]
    model = ITEM.build_model()
    assert policy.algorithm == algorithm
    assert policy.features.names == tuple(model.feature_names) and len(model.feature_names) == 52
    assert policy.action_names == model.actions.names and policy.n_actions == 601
    assert policy.action_channels == model.actions.channel_names


@pytest.mark.parametrize("algorithm", ["ppo", "maskable_ppo", "dqn"])
def test_item_policies_are_consent_safe_without_masks(item_policies, algorithm) -> None:
    policy = item_policies[algorithm]
    obs, venv, refused = without_consent(ITEM)
    channel = venv.model.actions.channel
    for deterministic in (True, False):
        actions = policy.predict(obs, deterministic=deterministic)  # no masks given
        sent = channel[actions] < len(CHANNELS)
        assert not refused[np.flatnonzero(sent), channel[actions][sent]].any()
    probs = policy.action_probabilities(obs)
    assert (probs[~venv.action_masks() & ~_stock_or_repeat(venv)] == 0.0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)


def _stock_or_repeat(venv) -> np.ndarray:
    """Actions masked for stock or repetition only (the policy cannot see those)."""
    model, batch = venv.model, venv.slots.batch
    products = np.ones((batch.n, model.actions.n_actions), dtype=bool)
    products[:, 1:] = model.allowed_products(batch)[:, model.actions.product[1:]]
    return ~products


def test_maskable_ppo_respects_the_env_masks(item_policies) -> None:
    policy = item_policies["maskable_ppo"]
    assert isinstance(policy, MaskablePPOPolicy)
    obs, venv, _ = without_consent(ITEM)
    masks = venv.action_masks()
    actions = policy.predict(obs, masks)
    assert masks[np.arange(obs.shape[0]), actions].all()


def test_expected_rewards_wrapper_is_exact_in_the_item_world() -> None:
    plain = rec_env.make_vec_env(32, seed=2, settings=ITEM)
    wrapped = ExpectedRewards(rec_env.make_vec_env(32, seed=2, settings=ITEM))
    plain.reset(), wrapped.reset()
    rng = np.random.default_rng(0)
    for _ in range(3):
        masks = plain.action_masks()
        actions = np.array([rng.choice(np.flatnonzero(row)) for row in masks])
        expected = plain.expected_rewards()[np.arange(32), actions]
        plain.step(actions)
        _, rewards, _, _ = wrapped.step(actions)
        np.testing.assert_allclose(rewards, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- slate world
def test_slate_decoder_decodes_like_the_env() -> None:
    venv = rec_env.make_vec_env(300, seed=4, settings=SLATE)
    venv.reset()
    model, batch = venv.model, venv.slots.batch
    for _ in range(3):  # a few cycles, so that last messages exclude products
        venv.step(np.random.default_rng(1).uniform(-1, 1, (300, model.action_dim)))
    decoder = SlateDecoder.from_model(model)
    vectors = np.random.default_rng(5).uniform(-1, 1, (300, model.action_dim)).astype(np.float32)
    vectors[:20, : decoder.n_embedding] = 0.0  # every score tied: the lowest indices win
    expected = model.decode(batch, vectors)
    decoded = decoder.decode(vectors, model.allowed_products(batch))
    for mine, theirs in zip(decoded, expected, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert SlateDecoder.from_dict(json.loads(json.dumps(decoder.to_dict()))).to_dict() == (
        decoder.to_dict()
    )


def test_slate_policy_is_consent_safe_and_decodes_its_box_output(slate_policy) -> None:
    obs, venv, refused = without_consent(SLATE)
    model, batch = venv.model, venv.slots.batch
    slates, channels, _ = slate_policy.predict_slates(obs, model.allowed_products(batch))
    sent = channels < len(CHANNELS)
    assert not refused[np.flatnonzero(sent), channels[sent]].any()
    assert np.take_along_axis(model.allowed_products(batch), slates.clip(0), 1)[slates >= 0].all()
    vectors = slate_policy.predict(obs)  # the env's actions, masks omitted
    assert vectors.shape == (obs.shape[0], model.action_dim)
    assert vectors.min() >= -1.0 and vectors.max() <= 1.0
    env_slates, env_channels, _ = model.decode(batch, vectors)
    np.testing.assert_array_equal(env_channels, channels)  # the consented channel, or none
    np.testing.assert_array_equal(env_slates, slates)
    probs = slate_policy.action_probabilities(obs, venv.action_masks())
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    lead = np.argmax(probs, axis=1)
    lead_products = np.where(lead > 0, model.actions.product[lead], -1)
    np.testing.assert_array_equal(lead_products[sent], slates[sent, 0])


def test_slate_score_network_is_what_the_policy_ranks(slate_policy) -> None:
    obs, _, _ = without_consent(SLATE, n=50)
    scores = slate_policy.slate.scores(slate_policy.scoring_vectors(obs))
    np.testing.assert_allclose(slate_policy.score_network().outputs(obs), scores, atol=1e-4)
    contrast = output_difference(slate_policy.score_network(), 3, 7)
    np.testing.assert_allclose(contrast.outputs(obs)[:, 0], scores[:, 3] - scores[:, 7], atol=1e-4)


def test_slate_world_trains_ppo_only() -> None:
    for algorithm in ("dqn", "maskable_ppo"):
        with pytest.raises(ValueError, match="slate world"):
            check_hyperparameters(algorithm, SLATE)


def test_expected_rewards_wrapper_is_exact_in_the_slate_world() -> None:
    plain = rec_env.make_vec_env(32, seed=2, settings=SLATE)
    wrapped = ExpectedRewards(rec_env.make_vec_env(32, seed=2, settings=SLATE))
    plain.reset(), wrapped.reset()
    model = plain.model
    vectors = np.random.default_rng(0).uniform(-1, 1, (32, model.action_dim))
    slates, channels, discounts = model.decode(plain.slots.batch, vectors)
    expected = model.expected_slate_rewards(plain.slots.batch, slates, channels, discounts)
    _, rewards, _, _ = wrapped.step(vectors)
    np.testing.assert_allclose(rewards, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- hyperparameters and runs
@pytest.mark.parametrize(
    ("algorithm", "env_id"),
    [
        ("ppo", rec_env.ITEM_ENV_ID),
        ("maskable_ppo", rec_env.ITEM_ENV_ID),
        ("dqn", rec_env.ITEM_ENV_ID),
        ("ppo", rec_env.SLATE_ENV_ID),
    ],
)
def test_item_worlds_have_shipped_hyperparameters(algorithm, env_id) -> None:
    params = load_hyperparams(algorithm, env_id)
    assert params["n_envs"] > 0 and params["n_timesteps"] > 0
    world = rec_env.ENV_WORLDS[env_id]
    assert check_hyperparameters(algorithm, EnvSettings(world=world)) == params


def test_a_world_without_hyperparameters_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="ItemRecommendation-v0"):
        check_hyperparameters("a2c", ITEM)


@pytest.fixture(scope="module")
def item_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "item-ppo"
    return train("ppo", ITEM, steps=512, out=out, hyperparams=TINY["ppo"], eval_every=512,
                 eval_customers=10, final_customers=20)  # fmt: skip


@pytest.fixture(scope="module")
def slate_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "slate-ppo"
    return train("ppo", SLATE, steps=512, out=out, hyperparams=TINY["ppo"], eval_every=512,
                 eval_customers=10, final_customers=20)  # fmt: skip


@pytest.mark.parametrize(("fixture", "env_id"), [("item_run", rec_env.ITEM_ENV_ID),
                                                 ("slate_run", rec_env.SLATE_ENV_ID)])  # fmt: skip
def test_run_directory_round_trip(fixture, env_id, request) -> None:
    run = request.getfixturevalue(fixture)
    info = read_run_info(run)
    assert info.env_id == env_id and info.settings.world == rec_env.ENV_WORLDS[env_id]
    assert len(info.feature_names) == 52 and info.feature_names[16] == "purchases_apparel"
    policy, _ = load_run(run)  # every file's SHA-256 and the weights' hash verified
    assert isinstance(policy, PPOPolicy)
    assert isinstance(policy, SlatePPOPolicy) == (env_id == rec_env.SLATE_ENV_ID)
    assert policy.weights_sha256() == info.weights_sha256
    obs, _, _ = without_consent(info.settings, n=30)
    again, _ = load_run(run)
    np.testing.assert_array_equal(again.predict(obs), policy.predict(obs))


@pytest.mark.parametrize("fixture", ["item_run", "slate_run"])
def test_tampered_item_runs_are_refused(fixture, request, tmp_path) -> None:
    import shutil

    run = shutil.copytree(request.getfixturevalue(fixture), tmp_path / "run")
    config = json.loads((run / "policy.json").read_text())
    config["config"]["action_names"][1] = "P0001:sms"
    (run / "policy.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="SHA-256 does not match"):
        load_run(run)
    info = json.loads((run / RUN_FILE).read_text())
    info["env_id"] = rec_env.ENV_ID  # the strategy env, with an item world's settings
    (run / RUN_FILE).write_text(json.dumps(info))
    with pytest.raises(ValueError, match="env_id"):
        read_run_info(run)


def test_output_difference_is_the_difference_of_two_outputs(item_policies) -> None:
    network = numpy_network(item_policies["dqn"])
    assert network is not None
    obs, _, _ = without_consent(ITEM, n=20)
    outputs = network.outputs(obs)
    contrast = output_difference(network, 5, 0).outputs(obs)
    np.testing.assert_allclose(contrast[:, 0], outputs[:, 5] - outputs[:, 0], atol=1e-5)
