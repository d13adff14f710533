"""Each mechanism of the customer model, and the direction of its effect.

Comparisons use common random numbers: the same customers and the same random draws under two
conditions, so that differences are the mechanism's and not noise.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import copy_batch, make_batch

from rec_env.dynamics import CustomerModel

N = 40_000


def act(model: CustomerModel, name: str, n: int = N) -> np.ndarray:
    return np.full(n, model.actions.index(name), dtype=np.intp)


def step_both(model, batch_a, batch_b, actions_a, actions_b, seed=1):
    out_a = model.step(batch_a, actions_a, np.random.default_rng(seed))
    out_b = model.step(batch_b, actions_b, np.random.default_rng(seed))
    return out_a, out_b


def test_expected_rewards_match_sampled_means(model, conversion_model) -> None:
    for m in (model, conversion_model):
        for name in ("no_action", "discount_15_email", "free_shipping_push", "recommendation_sms"):
            batch, rng = make_batch(m, N, seed=4)
            expected = m.expected_rewards(batch)[:, m.actions.index(name)].mean()
            rewards = m.step(batch, act(m, name), rng).reward
            se = rewards.std() / np.sqrt(N)
            assert abs(rewards.mean() - expected) < 4 * se + 1e-9, (m.reward_mode, name)


def test_organic_purchases_happen_without_contact(conversion_model) -> None:
    m = conversion_model
    batch, rng = make_batch(m, N)
    out = m.step(batch, act(m, "no_action"), rng)
    assert out.purchased.mean() > 0.001
    assert out.delivered.sum() == 0 and out.contact_cost.sum() == 0
    expected = m.expected_rewards(batch)
    lift = expected[:, m.actions.index("recommendation_email")] - expected[:, 0]
    # what a message buys is the incremental lift on top of organic purchases
    assert np.all(lift >= -1e-12) and lift.mean() < expected[:, 0].mean() * 5


def test_contact_needs_consent(model) -> None:
    batch, rng = make_batch(model, N, consent_sms=0.0)
    out = model.step(batch, act(model, "recommendation_sms"), rng)
    assert out.delivered.sum() == 0 and out.opened.sum() == 0 and out.contact_cost.sum() == 0
    assert not model.action_masks(batch)[:, model.actions.index("recommendation_sms")].any()


def test_fatigue_lowers_open_rates(model) -> None:
    fresh, _ = make_batch(model, N, contacts_last_30d=0.0, consent_email=1.0)
    tired = copy_batch(model, fresh)
    tired.feature("contacts_last_30d")[:] = 4.0
    a = act(model, "recommendation_email")
    out_fresh, out_tired = step_both(model, fresh, tired, a, a)
    assert out_tired.opened.mean() < 0.8 * out_fresh.opened.mean()


def test_offer_relevance(conversion_model) -> None:
    m = conversion_model
    idx = m.actions.index
    batch, _ = make_batch(m, N, consent_email=1.0)
    expected = m.expected_rewards(batch)
    lift_discount = expected[:, idx("discount_15_email")] - expected[:, idx("no_action")]
    sensitive = batch.feature("discount_sensitive") > 0.5
    assert lift_discount[sensitive].mean() > 1.5 * lift_discount[~sensitive].mean()
    lift_shipping = expected[:, idx("free_shipping_email")] - expected[:, idx("no_action")]
    prefers = batch.feature("free_shipping_preferred") > 0.5
    assert lift_shipping[prefers].mean() > 1.5 * lift_shipping[~prefers].mean()
    low, _ = make_batch(m, N, consent_email=1.0, engagement_score=0.1)
    high, _ = make_batch(m, N, consent_email=1.0, engagement_score=0.9)
    rec, none = idx("recommendation_email"), idx("no_action")
    lift_low = m.expected_rewards(low)[:, rec] - m.expected_rewards(low)[:, none]
    lift_high = m.expected_rewards(high)[:, rec] - m.expected_rewards(high)[:, none]
    assert lift_high.mean() > 1.2 * lift_low.mean()


def test_costs_discount_margin_and_channel_cost(model) -> None:
    plain, _ = make_batch(model, N, consent_email=1.0)
    discounted = copy_batch(model, plain)
    out_plain, out_disc = step_both(
        model,
        plain,
        discounted,
        act(model, "recommendation_email"),
        act(model, "discount_20_email"),
    )
    both = (out_plain.purchased > 0) & (out_disc.purchased > 0)
    assert both.sum() > 50
    # the same purchase earns less margin under a discount
    assert np.all(out_disc.profit[both] + out_disc.contact_cost[both] < out_plain.profit[both])
    assert np.allclose(out_disc.discount_cost[both], 0.2 * out_disc.revenue[both] / 0.8)
    assert np.allclose(out_plain.contact_cost, 0.005 * out_plain.delivered)
    sms, _ = make_batch(model, N, consent_sms=1.0)
    out = model.step(sms, act(model, "recommendation_sms"), np.random.default_rng(0))
    assert np.allclose(out.contact_cost, 0.04)


def test_unsubscribes_rise_with_fatigue_and_are_permanent(model) -> None:
    fresh, _ = make_batch(model, N, contacts_last_30d=0.0, consent_email=1.0)
    tired = copy_batch(model, fresh)
    tired.feature("contacts_last_30d")[:] = 4.0
    a = act(model, "recommendation_email")
    out_fresh, out_tired = step_both(model, fresh, tired, a, a)
    assert out_tired.unsubscribed.mean() > 1.5 * out_fresh.unsubscribed.mean()
    gone = out_tired.unsubscribed > 0
    assert gone.any()
    assert np.all(tired.feature("consent_email")[gone] == 0.0)
    rng = np.random.default_rng(5)
    for _ in range(10):
        model.step(tired, a, rng)
    assert np.all(tired.feature("consent_email")[gone] == 0.0)
    column = model.actions.index("recommendation_email")
    assert not model.action_masks(tired)[gone, column].any()


def test_discount_habituation_lowers_full_price_purchases(conversion_model) -> None:
    m = conversion_model
    naive, _ = make_batch(m, N, discounts_last_90d=0.0)
    habituated, _ = make_batch(m, N, discounts_last_90d=8.0)
    none = m.actions.index("no_action")
    assert m.expected_rewards(habituated)[:, none].mean() < 0.8 * (
        m.expected_rewards(naive)[:, none].mean()
    )
    # the state carries the habit: discounts are counted over the 90-day window
    batch, rng = make_batch(m, 1000, consent_email=1.0)
    delivered = np.zeros(1000)
    for _ in range(5):
        delivered += m.step(batch, act(m, "discount_10_email", 1000), rng).delivered
    assert np.array_equal(batch.feature("discounts_last_90d"), delivered)
    assert delivered.mean() > 4.5


def test_churn_rises_with_recency_and_over_contact(model) -> None:
    recent, _ = make_batch(model, N, last_purchase_days=10.0, contacts_last_30d=0.0)
    old = copy_batch(model, recent)
    old.feature("last_purchase_days")[:] = 600.0
    none = act(model, "no_action")
    out_recent, out_old = step_both(model, recent, old, none, none)
    assert out_old.churned.mean() > 1.3 * out_recent.churned.mean()
    calm, _ = make_batch(model, N, contacts_last_30d=0.0, consent_email=1.0)
    pushed = copy_batch(model, calm)
    pushed.feature("contacts_last_30d")[:] = 4.0
    a = act(model, "recommendation_email")
    out_calm, out_pushed = step_both(model, calm, pushed, a, a)
    assert out_pushed.churned.mean() > 1.5 * out_calm.churned.mean()
    assert np.array_equal(out_pushed.terminated, out_pushed.churned > 0)


def test_purchase_updates_the_state(model) -> None:
    batch, rng = make_batch(model, N, last_purchase_days=100.0, recency=100.0)
    before = copy_batch(model, batch)
    out = model.step(batch, act(model, "no_action"), rng)
    bought = out.purchased > 0
    assert bought.sum() > 50
    f = batch.feature
    assert np.all(f("last_purchase_days")[bought] == 0.0)
    assert np.all(f("recency")[bought] == 0.0)
    assert np.all(f("last_purchase_days")[~bought] == 107.0)
    decayed = before.feature("frequency") * np.exp(-7.0 / 365.0)
    np.testing.assert_allclose(f("frequency")[bought], decayed[bought] + 1.0)
    np.testing.assert_allclose(f("frequency")[~bought], decayed[~bought])
    assert np.all(f("engagement_score")[bought] > before.feature("engagement_score")[bought])
    order = out.revenue[bought]
    moved = f("monetary_value")[bought] - before.feature("monetary_value")[bought]
    toward = order - before.feature("monetary_value")[bought]
    assert np.allclose(
        moved, 0.3 * np.minimum(toward, 2000.0 - before.feature("monetary_value")[bought])
    )


def test_windows_forget_old_contacts(model) -> None:
    batch, rng = make_batch(model, 500, consent_email=1.0, contacts_last_30d=0.0)
    model.step(batch, act(model, "recommendation_email", 500), rng)
    assert np.all(batch.feature("contacts_last_30d") == 1.0)
    assert np.all(batch.feature("days_since_contact") == 0.0)
    for _ in range(model.window_30d):
        model.step(batch, act(model, "no_action", 500), rng)
    assert np.all(batch.feature("contacts_last_30d") == 0.0)
    assert np.all(batch.feature("days_since_contact") == 7.0 * model.window_30d)


def test_rule_reward(model) -> None:
    from rec_env import build_model

    m = build_model("default", "rule")
    batch, rng = make_batch(m, 4, consent_email=1.0, consent_sms=1.0, consent_push=1.0)
    batch.feature("discount_sensitive")[:] = [1, 0, 1, 0]
    batch.feature("free_shipping_preferred")[:] = [0, 1, 0, 0]
    batch.feature("email_opens")[:] = 0.5
    batch.feature("sms_response")[:] = 0.1
    batch.feature("push_response")[:] = 0.1
    expected = m.expected_rewards(batch)
    idx = m.actions.index
    assert expected[0, idx("discount_15_email")] == pytest.approx(0.8)
    assert expected[0, idx("discount_15_sms")] == pytest.approx(0.5)
    assert expected[1, idx("free_shipping_email")] == pytest.approx(0.8)
    assert expected[1, idx("discount_15_email")] == pytest.approx(0.3)
    assert expected[3, idx("no_action")] == 0.0
    out = m.step(batch, np.array([idx("discount_15_email")] * 4), rng)
    np.testing.assert_allclose(out.reward, [0.8, 0.3, 0.8, 0.3])


def test_step_is_deterministic_given_the_generator(model) -> None:
    a, _ = make_batch(model, 2000, seed=9)
    b = copy_batch(model, a)
    actions = np.random.default_rng(0).integers(0, 16, 2000)
    for seed in range(5):
        out_a, out_b = step_both(model, a, b, actions, actions, seed=seed)
        np.testing.assert_array_equal(out_a.values, out_b.values)
    np.testing.assert_array_equal(a.features, b.features)
