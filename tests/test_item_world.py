"""The item world's customer model: exact expectations, the direction of every effect, masks.

Every test works on controlled states: customers drawn from the population and then given a
taste, a satiation or a boredom state directly, or many replicas of one customer, so that the
effect under test is the only difference between the groups compared.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from item_checks import (
    action_index,
    assert_mean_close,
    attentive,
    category_rows,
    draw,
    fit,
    products_in,
    replicate,
    set_novelty,
)

from rec_env import EnvSettings
from rec_env.dynamics import StepOutcome
from rec_env.features import CHANNELS, FEATURE_INDEX
from rec_env.item_dynamics import ItemBatch, ItemModel
from rec_env.item_features import SATIATION_DAYS
from rec_env.products import load_products, save_products

CONTACTS = FEATURE_INDEX["contacts_last_30d"]
DISCOUNTS = FEATURE_INDEX["discounts_last_90d"]
CONSENT_EMAIL = FEATURE_INDEX["consent_email"]


@pytest.fixture(scope="module")
def model() -> ItemModel:
    """The default item world with a 15 % offer on every product message."""
    return EnvSettings(world="item", offers=(0.0, 0.15)).build_model()  # type: ignore[return-value]


def random_allowed_messages(
    model: ItemModel, batch: ItemBatch, rng: np.random.Generator
) -> np.ndarray:
    """A random allowed product message for every customer (no action where none is allowed)."""
    masks = model.action_masks(batch)
    masks[:, model.actions.no_action] = False
    scores = np.where(masks, rng.random(masks.shape), -1.0)
    actions = scores.argmax(axis=1)
    actions[scores.max(axis=1) < 0] = model.actions.no_action
    return actions


# ---------------------------------------------------------------------- exactness


@pytest.mark.parametrize("reward_mode", ["profit", "conversion"])
def test_expected_rewards_equal_the_monte_carlo_mean(reward_mode: str) -> None:
    model = EnvSettings(world="item", offers=(0.0, 0.15), reward_mode=reward_mode).build_model()
    batch = draw(model, 64, seed=3)
    gain = model.expected_rewards(batch) - model.expected_rewards(batch)[:, :1]
    i = int(np.argmax(gain.max(axis=1)))  # the customer a message matters most to
    batch.parameter("purchase_rate")[i] = 8.0  # organic buys often: no rare-event tail
    expected = model.expected_rewards(batch)[i]
    best = int(np.argmax(np.where(model.actions.discount == 0.0, expected, -np.inf)))
    product = int(model.actions.product[best])
    channel = CHANNELS[model.actions.channel[best]]
    actions = [
        model.actions.no_action,
        best,
        action_index(model, product, channel, 0.15),
        action_index(model, (product + 37) % model.products.n_products, channel),
    ]
    assert len(set(np.round(expected[actions], 6))) == len(actions)  # they differ
    n = 200_000
    for seed, action in enumerate(actions):
        copies = replicate(model, batch, i, n)
        outcome = model.step(copies, np.full(n, action), np.random.default_rng(seed))
        assert_mean_close(outcome.reward, float(expected[action]))


def test_single_product_oracle_is_the_best_allowed_action(model: ItemModel) -> None:
    batch = draw(model, 300, seed=1)
    slates, channels, values = model.oracle_slates(batch)
    expected = model.expected_rewards(batch)
    allowed = model.action_masks(batch) & (model.actions.discount == 0.0)  # the oracle's offer
    gain = np.where(allowed, expected - expected[:, :1], -np.inf)
    np.testing.assert_allclose(values, np.maximum(gain.max(axis=1), 0.0), atol=1e-12)
    sent = values > 0
    assert sent.mean() > 0.5
    best = gain.argmax(axis=1)
    np.testing.assert_array_equal(slates[sent, 0], model.actions.product[best][sent])
    np.testing.assert_array_equal(channels[sent], model.actions.channel[best][sent])
    assert (channels[~sent] == len(CHANNELS)).all() and (slates[~sent] == -1).all()


# ---------------------------------------------------------------------- sequential effects


def test_interest_drift_moves_the_taste_towards_clicked_and_bought_products(
    model: ItemModel,
) -> None:
    batch = attentive(draw(model, 6000, seed=2))
    product = int(products_in(model, 3)[0])
    before_taste = batch.taste.copy()
    before = fit(model, batch, product)
    outcome = model.step(
        batch, np.full(6000, action_index(model, product)), np.random.default_rng(0)
    )
    rise = fit(model, batch, product) - before
    clicked = outcome.clicked > 0
    bought = outcome.message_purchase > 0
    assert clicked.sum() > 300 and bought.sum() > 50
    assert (rise[clicked] > 0).all()
    np.testing.assert_array_equal(batch.taste[:, ~clicked], before_taste[:, ~clicked])
    np.testing.assert_allclose(np.linalg.norm(batch.taste, axis=0), 1.0)
    assert rise[bought].mean() > 2 * rise[clicked & ~bought].mean()  # a purchase moves it more


def test_satiation_lowers_buying_in_the_category_and_decays_back(model: ItemModel) -> None:
    base = attentive(draw(model, 64, seed=4))
    category = 0
    product = int(products_in(model, category)[0])
    other = int(products_in(model, 5)[0])
    action, other_action = action_index(model, product), action_index(model, other)
    i = int(np.argmax(model.expected_rewards(base)[:, action]))
    sat = category_rows(model, "purchases")[category]
    fresh, sated = replicate(model, base, i, 40_000), replicate(model, base, i, 40_000)
    sated.features[sat] = 2.0
    # same uniforms: the sated customer clicks alike and buys a subset of what the fresh buys
    runs = [
        model.step(b, np.full(40_000, action), np.random.default_rng(7)) for b in (fresh, sated)
    ]
    np.testing.assert_array_equal(runs[0].clicked, runs[1].clicked)
    assert (runs[1].message_purchase <= runs[0].message_purchase).all()
    assert runs[1].message_purchase.sum() < 0.5 * runs[0].message_purchase.sum()
    # exact: lower for products of the category only, then back towards fresh as it decays
    fresh, sated = replicate(model, base, i, 1), replicate(model, base, i, 1)
    sated.features[sat] = 2.0
    gap = model.expected_rewards(sated)[0] - model.expected_rewards(fresh)[0]
    in_category = model.actions.product >= 0
    in_category[in_category] = model.products.category[model.actions.product[in_category]] == 0
    assert (gap[in_category] < 0).all() and gap[other_action] == 0.0
    values = []
    for _ in range(8):
        values.append(model.expected_rewards(sated)[0, action])
        before = sated.features[sat, 0]
        model.step(sated, np.zeros(1, dtype=np.intp), np.random.default_rng(0))
        assert sated.features[sat, 0] == pytest.approx(before * np.exp(-7 / SATIATION_DAYS))
    assert np.all(np.diff(values) > 0)
    assert values[-1] > values[0] and values[-1] < model.expected_rewards(fresh)[0, action]


def test_a_purchase_feeds_satiation_and_the_category_history(model: ItemModel) -> None:
    batch = attentive(draw(model, 6000, seed=5))
    product = int(products_in(model, 2)[0])
    rows = category_rows(model, "purchases")
    days = category_rows(model, "days_since")
    before = batch.features[rows[2]].copy()
    outcome = model.step(
        batch, np.full(6000, action_index(model, product)), np.random.default_rng(1)
    )
    bought = outcome.message_purchase > 0
    assert bought.sum() > 50
    decayed = before * np.exp(-7 / SATIATION_DAYS)
    np.testing.assert_allclose(batch.features[rows[2], bought], decayed[bought] + 1.0)
    np.testing.assert_allclose(batch.features[rows[2], ~bought], decayed[~bought])
    assert (batch.features[days[2], bought] == 0.0).all()


def test_boredom_repeated_category_lowers_its_click_rate(model: ItemModel) -> None:
    n = 20_000
    batch = attentive(draw(model, n, seed=6))
    cat_products = products_in(model, 7, new=False)
    bored = category_rows(model, "recommended")[7]
    boredom = []
    rng = np.random.default_rng(2)
    for cycle in range(4):  # four different products of category 7, one a week
        boredom.append(batch.features[bored].mean())
        outcome = model.step(batch, np.full(n, action_index(model, int(cat_products[cycle]))), rng)
        assert outcome.delivered.all() and outcome.opened.all()
    assert np.all(np.diff(boredom) > 0.5)
    # the same product later, against customers who were shown other categories meanwhile
    fresh = attentive(draw(model, n, seed=6))
    for cycle in range(4):
        product = int(products_in(model, 1 + cycle, new=False)[0])
        model.step(fresh, np.full(n, action_index(model, product)), rng)
    last = action_index(model, int(cat_products[4]))
    clicks = [model.step(b, np.full(n, last), rng).clicked.mean() for b in (batch, fresh)]
    assert clicks[0] < 0.7 * clicks[1]
    # exact: boredom lowers the click utility of that category's products only
    copy = replicate(model, fresh, 0, 1)
    copy.features[bored] += 3.0
    change = model.utilities(copy)[0] - model.utilities(replicate(model, fresh, 0, 1))[0]
    in_category = model.products.category == 7
    assert (change[in_category] < 0).all() and (change[~in_category] == 0).all()


def test_novelty_seekers_click_new_products_more(model: ItemModel) -> None:
    n = 30_000
    base = attentive(draw(model, 1, seed=8))
    new, old = int(products_in(model, 4, new=True)[0]), int(products_in(model, 4, new=False)[0])
    clicks = {}
    for appetite in (0.0, 1.0):
        for product in (new, old):
            copies = replicate(model, base, 0, n)
            set_novelty(copies, appetite)
            outcome = model.step(
                copies, np.full(n, action_index(model, product)), np.random.default_rng(3)
            )
            clicks[appetite, product] = outcome.clicked
    assert clicks[1.0, new].sum() > 1.5 * clicks[0.0, new].sum()
    assert (clicks[1.0, new] >= clicks[0.0, new]).all()  # same uniforms: a superset
    np.testing.assert_array_equal(clicks[1.0, old], clicks[0.0, old])


# ---------------------------------------------------------------------- the lifecycle


def test_messages_raise_contacts_and_fatigue_lowers_opens(model: ItemModel) -> None:
    n = 6000
    batch = draw(model, n, seed=9)
    batch.features[CONSENT_EMAIL] = 1.0
    batch.parameter("unsubscribe_rate")[:] = 0.0
    rng = np.random.default_rng(4)
    action = action_index(model, 0)
    open_rates = []
    for _ in range(4):
        before = batch.features[CONTACTS].copy()
        outcome = model.step(batch, np.full(n, action), rng)
        assert outcome.delivered.all()
        np.testing.assert_array_equal(batch.features[CONTACTS], before + 1.0)
        open_rates.append(outcome.opened.mean())
    assert open_rates[-1] < 0.8 * open_rates[0] and np.all(np.diff(open_rates) < 0)


def test_heavy_messaging_unsubscribes_and_masks_the_channel(model: ItemModel) -> None:
    n = 3000
    batch = draw(model, n, seed=10)
    batch.features[CONSENT_EMAIL] = 1.0
    rng = np.random.default_rng(5)
    unsubscribed = np.zeros(n, dtype=bool)
    for cycle in range(6):
        outcome = model.step(batch, np.full(n, action_index(model, cycle)), rng)
        unsubscribed |= outcome.unsubscribed > 0
    assert unsubscribed.sum() > 30
    assert (batch.features[CONSENT_EMAIL, unsubscribed] == 0.0).all()
    masks = model.action_masks(batch)
    on_email = model.actions.channel == CHANNELS.index("email")
    assert not masks[np.ix_(unsubscribed, on_email)].any()
    outcome = model.step(batch, np.full(n, action_index(model, 50)), rng)
    assert (outcome.delivered[unsubscribed] == 0).all()


def test_an_offer_raises_discounts_last_90d(model: ItemModel) -> None:
    batch = attentive(draw(model, 500, seed=11))
    offer, plain = action_index(model, 3, "sms", 0.15), action_index(model, 3, "sms", 0.0)
    half = np.arange(500) < 250
    before = batch.features[DISCOUNTS].copy()
    model.step(batch, np.where(half, offer, plain), np.random.default_rng(6))
    np.testing.assert_array_equal(batch.features[DISCOUNTS], before + half)


def test_heavy_messaging_raises_churn(model: ItemModel) -> None:
    n = 1500
    churned = {}
    for heavy in (False, True):
        batch = draw(model, n, seed=12)
        rng, choose = np.random.default_rng(7), np.random.default_rng(8)
        ever = np.zeros(n, dtype=bool)
        for _ in range(12):
            actions = random_allowed_messages(model, batch, choose) if heavy else np.zeros(n, int)
            ever |= model.step(batch, actions, rng).churned > 0
        churned[heavy] = ever.mean()
    assert churned[True] > churned[False] + 0.1


# ---------------------------------------------------------------------- masks


def test_no_message_is_delivered_without_consent(model: ItemModel) -> None:
    n = 2000
    batch = draw(model, n, seed=13)
    rng = np.random.default_rng(9)
    refused = 0
    for _ in range(8):
        actions = rng.integers(0, model.actions.n_actions, n)  # ignoring the masks
        channel = model.actions.channel[actions]
        consent = np.ones(n, dtype=bool)
        sent = channel < len(CHANNELS)
        consent[sent] = batch.features[CONSENT_EMAIL + channel[sent], np.flatnonzero(sent)] > 0.5
        masks = model.action_masks(batch)
        assert (masks[np.arange(n), actions] <= consent).all()
        outcome = model.step(batch, actions, rng)
        assert (outcome.delivered[~consent] == 0).all()
        refused += (~consent).sum()
    assert refused > 500


def test_the_last_message_is_masked_for_one_cycle(model: ItemModel) -> None:
    batch = attentive(draw(model, 4, seed=14))
    of_product = model.actions.product == 12
    rng = np.random.default_rng(0)
    model.step(batch, np.full(4, action_index(model, 12, "push")), rng)
    assert not model.action_masks(batch)[:, of_product].any()
    assert model.action_masks(batch)[:, model.actions.product == 13].all()
    model.step(batch, np.zeros(4, dtype=np.intp), rng)  # nothing delivered: still masked
    assert not model.action_masks(batch)[:, of_product].any()
    model.step(batch, np.full(4, action_index(model, 13)), rng)
    assert model.action_masks(batch)[:, of_product].all()
    assert not model.action_masks(batch)[:, model.actions.product == 13].any()


@pytest.fixture(scope="module")
def half_stocked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default table with every even-numbered product out of stock, as a CSV."""
    table = load_products("default")
    stock = np.where(np.arange(table.n_products) % 2 == 0, 0, table.stock)
    path = tmp_path_factory.mktemp("products") / "half_stocked.csv"
    return save_products(dataclasses.replace(table, stock=stock), path)


def test_out_of_stock_products_are_masked(half_stocked: Path) -> None:
    model = EnvSettings(world="item", products=str(half_stocked)).build_model()
    out = np.flatnonzero(model.products.stock == 0)
    assert out.size == 100
    masks = model.action_masks(attentive(draw(model, 50)))
    product = model.actions.product
    assert not masks[:, np.isin(product, out)].any()
    assert masks[:, (product >= 0) & ~np.isin(product, out)].all()
    assert (model.allowed_products(draw(model, 5)).sum(axis=1) == 100).all()


def purchases_of(products: Path) -> tuple[np.ndarray, StepOutcome]:
    """One cycle of 5,000 frequent buyers sent (out-of-stock) product 0 by e-mail."""
    model = EnvSettings(world="item", products=str(products)).build_model()
    batch = attentive(draw(model, 5000, seed=15), organic=True)
    batch.parameter("purchase_rate")[:] = 20.0  # per year: many organic purchases
    action = np.full(5000, action_index(model, 0))
    return ~model.arrays.available, model.step(batch, action, np.random.default_rng(0))


def test_organic_purchases_never_pick_out_of_stock_products(half_stocked: Path) -> None:
    out_of_stock, outcome = purchases_of(half_stocked)
    organic = outcome.organic_product[outcome.organic_purchase > 0].astype(int)
    assert organic.size > 500
    assert not out_of_stock[organic].any()


def test_a_message_never_sells_an_out_of_stock_product(half_stocked: Path) -> None:
    out_of_stock, outcome = purchases_of(half_stocked)
    assert out_of_stock[0]
    assert outcome.message_purchase.sum() == 0
    assert outcome.delivered.sum() == 0  # nothing left to show: the message is not sent


# ---------------------------------------------------------------------- organic purchases


def test_organic_purchases_follow_taste_and_grow_the_history(model: ItemModel) -> None:
    n = 4000
    batch = attentive(draw(model, n, seed=16), organic=True)
    batch.parameter("purchase_rate")[:] = 20.0  # per year
    group = np.arange(n) < n // 2
    batch.taste[:, group] = model.arrays.cat_topics[3][:, None]
    batch.taste[:, ~group] = model.arrays.cat_topics[9][:, None]
    rows = category_rows(model, "purchases")
    history = batch.features[rows].sum(axis=0)
    category = np.full((3, n), -1)
    rng = np.random.default_rng(10)
    for cycle in range(3):
        outcome = model.step(batch, np.zeros(n, dtype=np.intp), rng)
        assert outcome.delivered.sum() == 0 and outcome.message_purchase.sum() == 0
        bought = outcome.organic_purchase > 0
        category[cycle, bought] = model.products.category[
            outcome.organic_product[bought].astype(int)
        ]
    share_3 = [(category[:, g] == 3).sum() / (category[:, g] >= 0).sum() for g in (group, ~group)]
    share_9 = [(category[:, g] == 9).sum() / (category[:, g] >= 0).sum() for g in (group, ~group)]
    assert share_3[0] > 2 * share_3[1] and share_9[1] > 2 * share_9[0]
    buyers = (category >= 0).any(axis=0)
    assert buyers.sum() > 1000
    assert (batch.features[rows].sum(axis=0)[buyers] > history[buyers] * 0.9).all()
    assert batch.features[rows].sum() > history.sum() + 0.5 * buyers.sum()
