"""Customer twins: posteriors from a purchase log, simulated forward in the simulator."""

from __future__ import annotations

import re

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


def test_twins_file_round_trips_and_bad_files_are_named(twins: Twins, tmp_path) -> None:
    from rec_env.fitting.twins import load_twins

    path = twins.calibrated(13, draws=2, rounds=1).save(tmp_path / "twins.npz")
    back = load_twins(path)
    assert np.array_equal(back.customer_ids, twins.customer_ids)
    assert np.array_equal(back.features, twins.features) and back.unit == twins.unit
    assert np.allclose(back.p_alive(), twins.p_alive(), rtol=0, atol=1e-12)
    assert back.calibration_weeks == 13 and back.engagement_mean is not None
    same = back.draw(np.random.default_rng(5))
    assert np.array_equal(same.hidden, load_twins(path).draw(np.random.default_rng(5)).hidden)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=re.escape("junk.npz: not a twins file")):
        load_twins(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", features=np.zeros((2, 16)))
    with pytest.raises(ValueError, match=re.escape("other.npz: not a twins file; it lacks meta")):
        load_twins(tmp_path / "other.npz")
    with pytest.raises(ValueError, match=re.escape("missing.npz: no such twins file")):
        load_twins(tmp_path / "missing.npz")
    with np.load(path) as data:
        arrays = dict(data)
    arrays["features"] = arrays["features"][:, :10]
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(ValueError, match=re.escape("cut.npz: features has the wrong shape")):
        load_twins(tmp_path / "cut.npz")


def test_calibrated_twins_in_the_envs_buy_at_their_models_rate(twins: Twins, tmp_path) -> None:
    """Twins drawn one at a time (envs, cohorts) buy near their model once calibrated."""
    from rec_env.rollout import Cohort
    from rec_env.settings import EnvSettings

    def purchases(path: str) -> float:
        model = EnvSettings(profile="cdnow", customers=path).build_model()
        cohort = Cohort(model, 20_000, seed=0)  # draws from the settings' twins
        total = 0.0
        for _ in range(39):
            out = model.step(cohort.batch, np.full(20_000, model.actions.no_action), cohort.rng)
            total += float((out.orders * cohort.alive).sum())
            cohort.alive &= ~out.terminated
        return total / 20_000 * twins.n

    expected = twins.lifetime.expected_purchases(39).sum()
    raw = purchases(str(twins.save(tmp_path / "raw.npz")))
    calibrated = purchases(str(twins.calibrated(39, draws=8).save(tmp_path / "cal.npz")))
    assert raw > 1.3 * expected  # engagement feedback without the per-customer mapping
    assert calibrated == pytest.approx(expected, rel=0.08)


def test_settings_name_a_twins_file_for_every_adapter(twins: Twins, tmp_path) -> None:
    import gymnasium as gym

    import rec_env
    from rec_env.errors import ConfigError
    from rec_env.settings import EnvSettings

    path = str(twins.save(tmp_path / "twins.npz"))
    rows = {tuple(np.round(r, 4)) for r in twins.features.astype(np.float32)}
    settings = EnvSettings(profile="cdnow", customers=path)
    assert settings.to_dict()["customers"] == path
    assert "customers" not in EnvSettings().to_dict()
    vec = rec_env.make_vec_env(8, seed=0, settings=settings)
    assert all(tuple(np.round(o, 4)) in rows for o in vec.reset())
    env = gym.make("rec_env/Recommendation-v0", profile="cdnow", customers=path)
    assert tuple(np.round(env.reset(seed=0)[0], 4)) in rows
    with pytest.raises(ValueError, match="strategy world"):
        EnvSettings(world="item", customers=path)
    with pytest.raises(ConfigError, match="purchase_days"):
        EnvSettings(profile="cdnow", customers=path, purchase_days=True).build_model()
    with pytest.raises(ConfigError, match=r"customers: .*no such twins file"):
        EnvSettings(profile="cdnow", customers=str(tmp_path / "gone.npz")).build_model()


def test_cli_twins_train_eval_and_compare_on_your_customers(tmp_path) -> None:
    import csv
    import json

    from typer.testing import CliRunner

    from rec_env.cli.main import app
    from tests.cli_checks import assert_bad_input

    log = load_cdnow()
    keep = np.isin(log.customer, np.unique(log.customer)[::40])
    days = (np.datetime64("1970-01-01") + log.day[keep].astype("timedelta64[D]")).astype(str)
    orders = tmp_path / "orders.csv"
    with orders.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "date", "amount"])
        writer.writerows(zip(log.customer[keep], days, log.amount[keep], strict=True))
    twins = tmp_path / "twins.npz"
    runner = CliRunner()
    made = runner.invoke(app, ["profiles", "twins", str(orders), "--as-of", "1997-09-30",
                               "--weeks", "13", "--consent", "email",
                               "--out", str(twins)])  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "590 customers" in made.stdout and twins.exists()
    run = tmp_path / "run"
    trained = runner.invoke(app, ["train", "a2c", "--twins", str(twins), "--steps", "600",
                                  "--eval-customers", "100", "--final-customers", "200",
                                  "--out", str(run), "--no-progress"])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    env = json.loads((run / "run.json").read_text())["env"]
    assert env["profile"] == "cdnow" and env["customers"] == str(twins.resolve())
    evaluated = runner.invoke(app, ["eval", str(run), "--customers", "300", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["settings"]["customers"] == str(twins.resolve())
    compared = runner.invoke(app, ["compare", "no_action", "rule", "--twins", str(twins),
                                   "--customers", "300",
                                   "--out", str(tmp_path / "cmp")])  # fmt: skip
    assert compared.exit_code == 0, compared.output
    assert "no_action" in compared.stdout
    assert_bad_input(runner.invoke(app, ["train", "a2c", "--twins", str(tmp_path / "x.npz")]),
                     "--twins")  # fmt: skip
    assert_bad_input(runner.invoke(app, ["profiles", "twins", str(orders), "--as-of",
                                         "1997-09-30", "--consent", "fax",
                                         "--out", str(tmp_path / "t2.npz")]), "fax")  # fmt: skip
    assert not (tmp_path / "t2.npz").exists()
