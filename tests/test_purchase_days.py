"""Purchases at day resolution: several orders a cycle, the same decision to buy."""

from __future__ import annotations

import numpy as np
import pytest

from rec_env.features import FEATURE_NAMES
from rec_env.fitting.builder import build_features, read_events
from rec_env.fitting.simulated_history import simulate_history
from rec_env.settings import EnvSettings


def _run(purchase_days: bool, reward_mode: str = "profit", cycles: int = 8) -> tuple:
    model = EnvSettings(reward_mode=reward_mode, purchase_days=purchase_days).build_model()
    rng = np.random.default_rng(4)
    batch = model.new_batch(20_000)
    model.draw_customers(batch, np.arange(batch.n), rng)
    expected, outcomes = [], []
    for _ in range(cycles):
        actions = rng.integers(0, model.actions.n_actions, batch.n)
        masks = model.action_masks(batch)
        actions = np.where(masks[np.arange(batch.n), actions], actions, model.actions.no_action)
        expected.append(model.expected_rewards(batch)[np.arange(batch.n), actions])
        outcomes.append(model.step(batch, actions, rng))
    return expected, outcomes


def test_whether_a_customer_buys_is_drawn_as_before() -> None:
    _, plain = _run(False, "conversion")
    _, days = _run(True, "conversion")
    for a, b in zip(plain, days, strict=True):
        assert np.array_equal(a.purchased, b.purchased)  # the same random numbers, the same buys
    orders = np.concatenate([o.orders for o in days])
    assert (
        orders.max() > 1 and (orders[np.concatenate([o.purchased for o in days]) == 0] == 0).all()
    )
    assert (np.concatenate([o.orders for o in plain]) <= 1).all()


def test_the_oracle_expects_what_step_samples() -> None:
    expected, outcomes = _run(True, "profit")
    got = np.concatenate([o.reward for o in outcomes]).mean()
    want = np.concatenate(expected).mean()
    spread = np.concatenate([o.reward for o in outcomes]).std() / np.sqrt(160_000)
    assert abs(got - want) < 4 * spread
    plain_expected, _ = _run(False, "profit")
    assert want > np.concatenate(plain_expected).mean()  # more orders, more profit


def test_the_builder_reads_several_orders_a_cycle(tmp_path) -> None:
    simulated = simulate_history(2000, 40, seed=3, purchase_days=True)
    start = np.datetime64(simulated.since)
    cycles = [
        (row["customer_id"], int((np.datetime64(row["time"]) - start).astype(int)) // 7)
        for row in simulated.tables["orders"]
    ]
    assert len(set(cycles)) < len(cycles)  # some cycles hold several orders
    paths = simulated.write_csv(tmp_path)
    built = build_features(
        read_events(**paths),
        simulated.as_of,
        since=simulated.since,
        irritation=simulated.irritation,
        customers=simulated.customer_ids,
    )
    for j, name in enumerate(FEATURE_NAMES):
        assert np.allclose(built.observations[:, j], simulated.features[:, j], atol=1e-9), name


def test_purchase_days_is_a_strategy_setting() -> None:
    assert "purchase_days" not in EnvSettings().to_dict()  # old run.json files still match
    assert EnvSettings(purchase_days=True).to_dict()["purchase_days"] is True
    with pytest.raises(ValueError, match="purchase_days is the strategy world's"):
        EnvSettings(world="item", purchase_days=True)
