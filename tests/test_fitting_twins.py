"""Customer twins: posteriors from a purchase log, simulated forward in the simulator."""

from __future__ import annotations

import numpy as np
import pytest

from rec_env.datasets.cdnow import load_cdnow
from rec_env.fitting.purchase_log import PurchaseLog
from rec_env.fitting.twins import Twins, fit_twins, simulate_twins
from rec_env.parameters import HIDDEN_PARAMETERS

PURCHASE_RATE = list(HIDDEN_PARAMETERS).index("purchase_rate")


@pytest.fixture(scope="module")
def twins() -> Twins:
    log = load_cdnow()
    keep = np.isin(log.customer, np.unique(log.customer)[::8])  # every 8th customer
    small = PurchaseLog("cdnow-1/8", log.customer[keep], log.day[keep], log.amount[keep])
    return fit_twins(small, "1997-09-30", population="cdnow")


def test_twins_carry_their_customers_features_and_posteriors(twins: Twins) -> None:
    assert twins.n == 2947 and twins.features.shape == (twins.n, 16)
    p_alive = twins.p_alive()
    assert ((p_alive > 0) & (p_alive <= 1)).all()
    drawn = twins.draw(np.random.default_rng(0), draws=4)
    assert drawn.hidden.shape == (4 * twins.n, len(HIDDEN_PARAMETERS))
    # Dead twins never buy; the share alive follows P(alive).
    assert (drawn.hidden[~drawn.alive, PURCHASE_RATE] == 0).all()
    assert drawn.alive.mean() == pytest.approx(p_alive.mean(), abs=0.02)
    # Heavier buyers get higher purchase rates, and not everyone lands in one segment.
    frequency = twins.lifetime.frequency
    rate = drawn.hidden[: twins.n, PURCHASE_RATE]
    alive = drawn.alive[: twins.n]
    assert rate[alive & (frequency >= 3)].mean() > 3 * rate[alive & (frequency == 0)].mean()
    assert len(np.unique(drawn.segments)) > 1


def test_draws_and_simulation_are_seeded(twins: Twins) -> None:
    a = simulate_twins(twins, 13, seed=3, draws=2, calibration_rounds=1)
    b = simulate_twins(twins, 13, seed=3, draws=2, calibration_rounds=1)
    assert a.shape == (2, twins.n, 13) and np.array_equal(a, b)
    assert not np.array_equal(a, simulate_twins(twins, 13, seed=4, draws=2, calibration_rounds=1))
    with pytest.raises(ValueError, match="weeks"):
        simulate_twins(twins, 0)


def test_simulated_twins_forecast_near_their_model(twins: Twins) -> None:
    """Forward in the simulator, the twins buy about what their fitted model expects."""
    bought = simulate_twins(twins, 39, seed=0, draws=4)
    simulated = bought.sum(axis=2).mean(axis=0)
    expected = twins.lifetime.expected_purchases(39)
    assert simulated.sum() == pytest.approx(expected.sum(), rel=0.2)
    assert np.corrcoef(simulated, expected)[0, 1] > 0.8
    # Without calibrating the mapping, engagement feedback makes them buy far more.
    raw = simulate_twins(twins, 39, seed=0, draws=4, calibration_rounds=0).sum(axis=2).mean(0)
    assert raw.sum() > 1.4 * expected.sum()


def test_envs_start_customers_as_twins(twins: Twins) -> None:
    import gymnasium as gym

    import rec_env
    from rec_env.vector_env import RecommendationVectorEnv

    rows = {tuple(np.round(r, 4)) for r in twins.features.astype(np.float32)}
    env = gym.make("rec_env/Recommendation-v0", profile="cdnow", customers=twins)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        assert tuple(np.round(obs, 4)) in rows
    first, _ = env.reset(seed=1)
    again, _ = env.reset(seed=1)
    assert np.array_equal(first, again)
    vec = rec_env.make_vec_env(16, seed=0, profile="cdnow", customers=twins)
    assert all(tuple(np.round(o, 4)) in rows for o in vec.reset())
    vec.step(np.zeros(16, dtype=int))
    vector = RecommendationVectorEnv(8, profile="cdnow", customers=twins)
    observations, _ = vector.reset(seed=2)
    assert all(tuple(np.round(o, 4)) in rows for o in observations)
    with pytest.raises(ValueError, match="population 'cdnow' is not the env's"):
        gym.make("rec_env/Recommendation-v0", customers=twins)
    with pytest.raises(ValueError, match="customers must be twins"):
        rec_env.make_vec_env(4, customers=[1, 2])


def test_stationary_engagement_balances_visits_and_decay() -> None:
    from rec_env.fitting.twins import stationary_engagement

    assert stationary_engagement(48.0) == pytest.approx(0.5, abs=0.01)
    assert stationary_engagement(0.0) == 0.0
    assert stationary_engagement(12.0) < stationary_engagement(48.0) < stationary_engagement(200.0)


def test_twins_in_purchase_days_buy_several_times_a_week() -> None:
    log = load_cdnow()
    keep = np.isin(log.customer, np.unique(log.customer)[::16])
    small = PurchaseLog("cdnow-1/16", log.customer[keep], log.day[keep], log.amount[keep])
    twins = fit_twins(small, "1997-09-30", population="cdnow", unit="days")
    assert twins.unit == "days"
    bought = simulate_twins(twins, 39, seed=1, draws=4)
    assert bought.max() > 1  # several purchase days in one week
    expected = twins.lifetime.expected_purchases(39)
    assert bought.sum(axis=2).mean(axis=0).sum() == pytest.approx(expected.sum(), rel=0.2)
    with pytest.raises(ValueError, match="unit"):
        fit_twins(small, "1997-09-30", population="cdnow", unit="months")


def test_cli_forecast_writes_and_scores_each_customer(tmp_path) -> None:
    import csv

    from typer.testing import CliRunner

    from rec_env.cli.main import app
    from tests.cli_checks import assert_bad_input

    log = load_cdnow()
    keep = np.isin(log.customer, np.unique(log.customer)[::20])
    days = (np.datetime64("1970-01-01") + log.day[keep].astype("timedelta64[D]")).astype(str)
    path = tmp_path / "orders.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "date", "amount"])
        writer.writerows(zip(log.customer[keep], days, log.amount[keep], strict=True))
    out = tmp_path / "forecast.csv"
    runner = CliRunner()
    args = ["profiles", "forecast", str(path), "--as-of", "1997-09-30", "--draws", "2",
            "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "actual:" in result.stdout and "twins in the simulator" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(np.unique(log.customer[keep]))
    assert set(rows[0]) >= {"p_alive", "expected_purchases", "twins_purchases", "actual_purchases"}
    assert_bad_input(runner.invoke(app, [*args[:-1], str(tmp_path / "f2.csv"), "--unit", "x"]),
                     "--unit")  # fmt: skip


def test_sb3_trains_on_twins(twins: Twins) -> None:
    """A policy trained on the retailer's own customers: SB3's PPO on the twins' vector env."""
    from stable_baselines3 import PPO

    import rec_env

    env = rec_env.make_vec_env(32, seed=0, profile="cdnow", customers=twins)
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=128, n_epochs=1, seed=0, device="cpu")
    model.learn(512)
    actions, _ = model.predict(env.reset(), deterministic=True)
    assert actions.shape == (32,)
