"""The slate world: exact slate values, the greedy oracle, decoding, masks and slate boredom."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from item_checks import (
    assert_mean_close,
    attentive,
    category_rows,
    draw,
    fit,
    products_in,
    replicate,
)

from rec_env import SLATE_ENV_ID, EnvSettings
from rec_env.features import CHANNELS, FEATURE_INDEX
from rec_env.item_dynamics import ItemBatch
from rec_env.item_env import SlateModel
from rec_env.products import load_products, save_products

NO_MESSAGE = len(CHANNELS)
CONSENT_EMAIL = FEATURE_INDEX["consent_email"]


@pytest.fixture(scope="module", params=["mnl", "cascade"])
def model(request: pytest.FixtureRequest) -> SlateModel:
    return EnvSettings(world="slate", choice_model=request.param).build_model()  # type: ignore[return-value]


def no_message(model: SlateModel, batch: ItemBatch) -> np.ndarray:
    """Exact expected reward of sending nothing (organic purchases only)."""
    n = batch.n
    empty = np.full((n, model.slate_size), -1)
    return model.expected_slate_rewards(batch, empty, np.full(n, NO_MESSAGE), np.zeros(n))


def scoring_action(model: SlateModel, weights: np.ndarray, channel: str) -> np.ndarray:
    """A slate action: embedding weights, then the channel scores (``channel`` wins)."""
    action = np.zeros(model.action_dim, dtype=np.float32)
    e = model.embeddings.shape[1]
    action[:e] = weights
    action[e + 1 + CHANNELS.index(channel)] = 1.0
    return action


def test_expected_slate_rewards_equal_the_monte_carlo_mean(model: SlateModel) -> None:
    batch = draw(model, 100, seed=1)
    slates, channels, values = model.oracle_slates(batch)
    i = int(np.argmax(values))
    batch.parameter("purchase_rate")[i] = 8.0  # organic buys often: no rare-event tail
    rng = np.random.default_rng(0)
    other = rng.choice(np.flatnonzero(model.allowed_products(batch)[i]), 4, replace=False)
    n = 200_000
    for seed, (slate, discount) in enumerate([(slates[i], 0.0), (slates[i], 0.15), (other, 0.0)]):
        one = (slate[None, :], channels[i : i + 1], np.array([discount]))
        expected = model.expected_slate_rewards(replicate(model, batch, i, 1), *one)[0]
        copies = replicate(model, batch, i, n)
        args = (np.tile(slate, (n, 1)), np.full(n, channels[i]), np.full(n, discount))
        outcome = model.step_slates(copies, *args, np.random.default_rng(seed))
        assert_mean_close(outcome.reward, float(expected))
        assert np.bincount(outcome.click_position.astype(int) + 1, minlength=5)[1:].min() > 20


def test_position_bias_follows_the_choice_model(model: SlateModel) -> None:
    base = attentive(draw(model, 1, seed=2))
    base.item_hidden[:] = 0.0  # no novelty: the utility is the taste term alone
    product = int(products_in(model, 6)[0])
    n = 200_000
    copies = replicate(model, base, 0, n)
    slate = np.full((n, 4), product)  # the same product in every position
    outcome = model.step_slates(
        copies, slate, np.zeros(n, int), np.zeros(n), np.random.default_rng(1)
    )
    counts = np.bincount(outcome.click_position.astype(int) + 1, minlength=5)[1:]
    ratio = counts[1] / counts[0]
    utility = 3.0 * fit(model, base, product)[0]
    expected = np.exp(-0.3)
    if model.choice_model == "cascade":
        expected *= 1.0 - 1.0 / (1.0 + np.exp(2.0 - utility))
    assert ratio == pytest.approx(expected, rel=0.05)
    assert np.all(np.diff(counts) < 0)


def test_greedy_oracle_beats_random_allowed_slates(model: SlateModel) -> None:
    batch = draw(model, 200, seed=3)
    slates, channels, values = model.oracle_slates(batch)
    baseline = no_message(model, batch)
    np.testing.assert_allclose(
        model.expected_slate_rewards(batch, slates, channels, np.zeros(200)) - baseline,
        values,
        atol=1e-9,
    )
    assert (values >= 0).all() and (values > 0).mean() > 0.5
    allowed = model.allowed_products(batch)
    rng = np.random.default_rng(4)
    random_values = []
    for _ in range(20):
        random_slates = np.array([rng.choice(np.flatnonzero(a), 4, replace=False) for a in allowed])
        random_channels = rng.integers(0, NO_MESSAGE, 200)
        random_values.append(
            model.expected_slate_rewards(batch, random_slates, random_channels, np.zeros(200))
            - baseline
        )
    random_values = np.array(random_values)
    assert (values >= random_values.mean(axis=0)).all()
    assert (values[None, :] >= random_values - 1e-12).mean() > 0.99
    assert values.mean() > random_values.mean() + 1.0


def test_decode_takes_the_top_k_allowed_products_best_first(model: SlateModel) -> None:
    batch = draw(model, 50, seed=5)
    model.step_slates(
        batch,
        np.tile(np.arange(4), (50, 1)),
        np.zeros(50, int),
        np.zeros(50),
        np.random.default_rng(0),
    )
    actions = np.random.default_rng(1).uniform(-1, 1, (50, model.action_dim))
    slates, channels, discounts = model.decode(batch, actions)
    e = model.embeddings.shape[1]
    scores = np.where(model.allowed_products(batch), actions[:, :e] @ model.embeddings.T, -np.inf)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(slates, expected)
    channel_choice = actions[:, e : e + 4].argmax(axis=1)
    np.testing.assert_array_equal(
        channels, np.where(channel_choice == 0, NO_MESSAGE, channel_choice - 1)
    )
    assert (discounts == 0.0).all()


def test_env_oracle_and_expected_reward_agree_with_the_model() -> None:
    env = gym.make(SLATE_ENV_ID).unwrapped
    env.reset(seed=0)
    action = env.action_space.sample()
    slates, channels, discounts = env.model.decode(env._batch, action[None, :])
    exact = env.model.expected_slate_rewards(env._batch, slates, channels, discounts)[0]
    assert env.expected_reward(action) == exact
    slate, channel, value = env.oracle_slate()
    assert channel in (*CHANNELS, "none") and slate.shape == (4,)
    assert value >= 0.0


# ---------------------------------------------------------------------- masks


def test_a_channel_without_consent_delivers_nothing() -> None:
    env = gym.make(SLATE_ENV_ID).unwrapped
    env.reset(seed=0)
    weights = np.ones(env.model.embeddings.shape[1])
    for consent in (0.0, 1.0, 0.0):
        env._batch.features[CONSENT_EMAIL] = consent
        _, _, _, _, info = env.step(scoring_action(env.model, weights, "email"))
        assert info["channel"] == "email" and info["delivered"] == consent
        assert (info["slate"] >= 0).all()


def test_the_last_slate_is_not_shown_again_next_cycle() -> None:
    env = gym.make(SLATE_ENV_ID).unwrapped
    env.reset(seed=1)
    attentive(env._batch)
    action = scoring_action(env.model, np.linspace(-1, 1, env.model.embeddings.shape[1]), "push")
    shown = []
    for _ in range(3):
        _, _, _, _, info = env.step(action)
        assert info["delivered"] == 1.0
        shown.append(set(info["slate"].tolist()))
    assert not shown[0] & shown[1] and not shown[1] & shown[2]
    assert shown[0] == shown[2]  # allowed again once another message was delivered


@pytest.fixture(scope="module")
def half_stocked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    table = load_products("default")
    stock = np.where(np.arange(table.n_products) % 2 == 0, 0, table.stock)
    path = tmp_path_factory.mktemp("products") / "half_stocked.csv"
    return save_products(dataclasses.replace(table, stock=stock), path)


def test_out_of_stock_products_are_never_in_a_slate(half_stocked: Path) -> None:
    env = gym.make(SLATE_ENV_ID, products=str(half_stocked))
    out_of_stock = env.unwrapped.model.products.stock == 0
    assert out_of_stock.sum() == 100
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(30):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert not out_of_stock[info["slate"]].any()
        if terminated or truncated:
            env.reset()
    model = env.unwrapped.model
    batch = draw(model, 500, seed=1)
    actions = np.random.default_rng(2).uniform(-1, 1, (500, model.action_dim))
    slates, _, _ = model.decode(batch, actions)
    assert (slates >= 0).all() and not out_of_stock[slates].any()


# ---------------------------------------------------------------------- boredom


def test_a_diverse_slate_bores_less_than_a_same_category_slate(model: SlateModel) -> None:
    n = 20_000
    same = products_in(model, 8, new=False)[:4]
    diverse = np.array([products_in(model, c, new=False)[0] for c in (8, 1, 4, 10)])
    then = products_in(model, 8, new=False)[4:8]  # the next e-mail: four other products of 8
    bored = category_rows(model, "recommended")[8]
    clicks = []
    for first in (same, diverse):
        batch = attentive(draw(model, n, seed=6))
        email = np.zeros(n, dtype=int)
        model.step_slates(
            batch, np.tile(first, (n, 1)), email, np.zeros(n), np.random.default_rng(3)
        )
        assert batch.features[bored].mean() == pytest.approx(4.0 if first is same else 1.0)
        outcome = model.step_slates(
            batch, np.tile(then, (n, 1)), email, np.zeros(n), np.random.default_rng(4)
        )
        clicks.append(outcome.clicked.mean())
    assert clicks[0] < 0.8 * clicks[1]


def test_a_slate_is_valued_without_its_products_out_of_stock(half_stocked: Path) -> None:
    # the step leaves out-of-stock products out of a slate, so the exact value must too
    model = EnvSettings(world="slate", products=str(half_stocked)).build_model()
    batch = draw(model, 300, seed=3)
    gap = np.array([[0, 1, 3, -1]] * batch.n)  # product 0 is out of stock
    shown = np.array([[1, 3, -1, -1]] * batch.n)
    email, none = np.zeros(batch.n, dtype=np.intp), np.zeros(batch.n)
    with_gap = model.expected_slate_rewards(batch, gap, email, none)
    np.testing.assert_allclose(with_gap, model.expected_slate_rewards(batch, shown, email, none))
    together = model.candidate_rewards(batch, np.stack([gap[0], shown[0]]), [0, 0], [0.0, 0.0])
    np.testing.assert_allclose(together[:, 0], together[:, 1])
