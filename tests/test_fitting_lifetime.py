"""Pareto/NBD and BG/NBD with time-invariant covariates, and the gamma-gamma spend model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rec_env.fitting.holdout import calibration_holdout, holdout_report
from rec_env.fitting.lifetime import (
    LifetimeFit,
    fit_lifetime_model,
    fit_spend_model,
    forecast_pareto_nbd_covariates,
)
from rec_env.fitting.purchase_log import PurchaseLog

REFERENCE = Path(__file__).parent / "data" / "cdnow_lifetime_reference.json"
TRUE_PARETO = {"r": 0.6, "alpha": 10.0, "s": 0.7, "beta": 12.0}
TRUE_BG = {"r": 0.4, "alpha": 6.0, "a": 0.8, "b": 2.5}
GAMMA_PURCHASE, GAMMA_DROPOUT = 0.4, -0.5


def simulate(
    model: str, n: int, seed: int, horizon: float = 39.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, t_x, T, z, holdout)`` drawn from the model's own generative process.

    The covariate ``z`` is standard normal; ``T`` is uniform on 26-39 weeks; ``holdout`` counts
    the repeat purchases in ``(T, T + horizon]``.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    big_t = rng.uniform(26.0, 39.0, n)
    end = big_t + horizon
    if model == "pareto_nbd":
        p = TRUE_PARETO
        rate = rng.gamma(p["r"], 1.0 / (p["alpha"] * np.exp(-GAMMA_PURCHASE * z)))
        death = rng.gamma(p["s"], 1.0 / (p["beta"] * np.exp(-GAMMA_DROPOUT * z)))
        life = rng.exponential(1.0 / death)
        x = rng.poisson(rate * np.minimum(life, big_t)).astype(float)
        # The last of x uniform purchase times on (0, min(life, T)].
        t_x = np.where(
            x > 0, np.minimum(life, big_t) * rng.random(n) ** (1.0 / np.maximum(x, 1)), 0
        )
        holdout = rng.poisson(rate * np.clip(np.minimum(life, end) - big_t, 0.0, None))
        return x, t_x, big_t, z, holdout.astype(float)
    p = TRUE_BG
    rate = rng.gamma(p["r"], 1.0 / (p["alpha"] * np.exp(-GAMMA_PURCHASE * z)))
    drop = np.exp(GAMMA_DROPOUT * z)
    dropout = rng.beta(p["a"] * drop, p["b"] * drop)
    times = np.cumsum(rng.exponential(1.0, (n, 400)), axis=1) / rate[:, None]
    # The customer survives purchases before the geometric one at which they drop out.
    last = rng.geometric(np.clip(dropout, 1e-12, 1.0))
    alive = np.arange(1, 401)[None, :] <= last[:, None]
    x = ((times <= big_t[:, None]) & alive).sum(axis=1).astype(float)
    t_x = np.where(
        x > 0, np.take_along_axis(times, np.maximum(x, 1).astype(int)[:, None] - 1, 1)[:, 0], 0
    )
    holdout = ((times > big_t[:, None]) & (times <= end[:, None]) & alive).sum(axis=1)
    return x, t_x.astype(float), big_t, z, holdout.astype(float)


@pytest.fixture(scope="module")
def pareto_data() -> tuple[np.ndarray, ...]:
    return simulate("pareto_nbd", 3000, seed=11)


@pytest.fixture(scope="module")
def pareto_fit(pareto_data: tuple[np.ndarray, ...]) -> LifetimeFit:
    x, t_x, big_t, z, _ = pareto_data
    return fit_lifetime_model(x, t_x, big_t, z, covariate_names=("z",))


def test_simulation_same_seed_same_data() -> None:
    first, second = simulate("bg_nbd", 200, seed=3), simulate("bg_nbd", 200, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], simulate("bg_nbd", 200, seed=4)[0])


def test_pareto_parameters_and_covariate_signs_recovered(pareto_fit: LifetimeFit) -> None:
    # s and beta are weakly identified one by one from 3,000 customers (their ratio, the mean
    # death rate, is not); the covariate is standard normal, so its standardised effect is
    # close to the raw one.
    params = pareto_fit.params
    for name in ("r", "alpha"):
        assert abs(np.log(params[name] / TRUE_PARETO[name])) < 0.3, (name, params)
    mean_death = TRUE_PARETO["s"] / TRUE_PARETO["beta"]
    assert params["s"] / params["beta"] == pytest.approx(mean_death, rel=0.3)
    assert pareto_fit.gamma_purchase[0] == pytest.approx(GAMMA_PURCHASE, abs=0.1)
    assert pareto_fit.gamma_dropout[0] == pytest.approx(GAMMA_DROPOUT, abs=0.2)


def test_bg_nbd_parameters_and_covariate_signs_recovered() -> None:
    x, t_x, big_t, z, _ = simulate("bg_nbd", 3000, seed=12)
    fit = fit_lifetime_model(x, t_x, big_t, z, model="bg_nbd")
    params = fit.params
    for name in ("r", "alpha"):
        assert abs(np.log(params[name] / TRUE_BG[name])) < 0.3, (name, params)
    mean_dropout = TRUE_BG["a"] / (TRUE_BG["a"] + TRUE_BG["b"])
    assert params["a"] / (params["a"] + params["b"]) == pytest.approx(mean_dropout, rel=0.15)
    assert fit.gamma_purchase[0] == pytest.approx(GAMMA_PURCHASE, abs=0.1)
    # The BG/NBD covariate scales a and b together (the concentration of p), weakly identified.
    assert -1.0 < fit.gamma_dropout[0] < 0.0


def test_forecast_matches_simulated_holdout(
    pareto_data: tuple[np.ndarray, ...], pareto_fit: LifetimeFit
) -> None:
    holdout = pareto_data[4]
    expected = pareto_fit.expected_purchases(39.0)
    assert expected.sum() == pytest.approx(holdout.sum(), rel=0.08)
    assert np.corrcoef(expected, holdout)[0, 1] > 0.5


def test_same_data_any_row_order_same_fit(pareto_data: tuple[np.ndarray, ...]) -> None:
    x, t_x, big_t, z, _ = (a[:600] for a in pareto_data)
    fit = fit_lifetime_model(x, t_x, big_t, z)
    again = fit_lifetime_model(x, t_x, big_t, z)
    order = np.random.default_rng(5).permutation(x.shape[0])
    shuffled = fit_lifetime_model(x[order], t_x[order], big_t[order], z[order])
    assert fit.params == again.params == shuffled.params
    assert np.array_equal(fit.gamma_purchase, shuffled.gamma_purchase)
    assert np.array_equal(fit.expected_purchases(39.0)[order], shuffled.expected_purchases(39.0))


def test_p_alive_bounded_and_falls_with_the_gap_since_the_last_purchase(
    pareto_fit: LifetimeFit,
) -> None:
    for model in ("pareto_nbd", "bg_nbd"):
        fit = pareto_fit if model == "pareto_nbd" else _bg_fit(pareto_fit)
        assert np.all((fit.p_alive() >= 0) & (fit.p_alive() <= 1))
        recency = np.linspace(0.5, 39.0, 30)
        grid = fit.with_customers(np.full(30, 3.0), recency, np.full(30, 39.0), np.zeros(30))
        alive = grid.p_alive()
        assert np.all(np.diff(alive) > 0), model  # larger t_x = smaller gap T - t_x
        assert alive[-1] > 0.8 and alive[0] < 0.5, alive


def _bg_fit(fit: LifetimeFit) -> LifetimeFit:
    return LifetimeFit.from_dict(
        {
            **fit.to_dict(),
            "model": "bg_nbd",
            "params": TRUE_BG,
            "gamma_dropout": [GAMMA_DROPOUT],
        }
    ).with_customers(fit.frequency, fit.recency, fit.T, fit.covariates)


def test_predictive_counts_sum_to_one_and_match_the_expectation(pareto_fit: LifetimeFit) -> None:
    for fit in (pareto_fit, _bg_fit(pareto_fit)):
        small = fit.with_customers(
            fit.frequency[:300], fit.recency[:300], fit.T[:300], fit.covariates[:300]
        )
        p = small.predictive_counts(39.0, kmax=3)
        assert p.shape == (300, 4)
        assert np.all(p >= 0) and np.allclose(p.sum(axis=1), 1.0)
        # With a long tail, sum k P(k) is the closed-form conditional expectation.
        long = small.predictive_counts(39.0, kmax=400)[:, :-1]
        mean = long @ np.arange(400)
        np.testing.assert_allclose(mean, small.expected_purchases(39.0), rtol=1e-5, atol=1e-8)


def test_pareto_likelihood_agrees_with_numerical_integration(pareto_fit: LifetimeFit) -> None:
    from scipy.integrate import quad
    from scipy.special import gammaln

    alpha, _, beta = pareto_fit.scales()
    r, s = pareto_fit.params["r"], pareto_fit.params["s"]
    _, dead = pareto_fit._log_parts()
    for i in np.flatnonzero(pareto_fit.frequency > 0)[:20]:
        x, t_x, big_t = pareto_fit.frequency[i], pareto_fit.recency[i], pareto_fit.T[i]
        lead = gammaln(r + x) - gammaln(r) + r * np.log(alpha[i]) + s * np.log(beta[i])
        integral, _ = quad(
            lambda y, i=i, x=x: (alpha[i] + y) ** -(r + x) * (beta[i] + y) ** -(s + 1),
            t_x,
            big_t,
            epsabs=0,
            epsrel=1e-12,
        )
        assert dead[i] == pytest.approx(lead + np.log(s * integral), rel=1e-9)


def test_cumulative_curve_matches_the_simulated_calibration(
    pareto_data: tuple[np.ndarray, ...], pareto_fit: LifetimeFit
) -> None:
    x, big_t = pareto_data[0], pareto_data[2]
    curve = pareto_fit.cumulative_curve(np.column_stack([big_t / 2, big_t]))
    assert curve[0] < curve[1]
    assert curve[1] == pytest.approx(x.sum(), rel=0.08)
    with pytest.raises(ValueError, match="ages"):
        pareto_fit.cumulative_curve(big_t)


def test_rate_posterior_is_the_conjugate_update(pareto_fit: LifetimeFit) -> None:
    post = pareto_fit.rate_posterior()
    alpha, _, beta = pareto_fit.scales()
    np.testing.assert_array_equal(
        post.purchase_shape, pareto_fit.params["r"] + pareto_fit.frequency
    )
    np.testing.assert_array_equal(post.purchase_rate, alpha + pareto_fit.T)
    np.testing.assert_array_equal(post.dropout_second, beta + pareto_fit.T)
    # Customers with more purchases in the same time have a higher posterior rate.
    grid = pareto_fit.with_customers(
        np.arange(5.0), np.r_[0.0, np.full(4, 30.0)], np.full(5, 35.0), np.zeros(5)
    )
    assert np.all(np.diff(grid.rate_posterior().mean_rate) > 0)


def test_to_dict_round_trip_through_json(pareto_fit: LifetimeFit) -> None:
    saved = json.loads(json.dumps(pareto_fit.to_dict(include_customers=True)))
    restored = LifetimeFit.from_dict(saved)
    np.testing.assert_array_equal(
        restored.expected_purchases(39.0), pareto_fit.expected_purchases(39.0)
    )
    bare = LifetimeFit.from_dict(json.loads(json.dumps(pareto_fit.to_dict())))
    assert bare.n_customers == 0 and bare.params == pareto_fit.params
    with pytest.raises(ValueError, match="model"):
        LifetimeFit.from_dict({**saved, "model": "pareto"})
    with pytest.raises(ValueError, match="covariate_names"):
        LifetimeFit.from_dict({k: v for k, v in saved.items() if k != "covariate_names"})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frequency": [1.5, 0.0]}, "frequency"),
        ({"recency": [10.0, 1.0]}, "recency"),
        ({"recency": [50.0, 0.0]}, "recency"),
        ({"T": [0.0, 20.0]}, "T must be positive for customers with repeat purchases"),
        ({"T": [30.0]}, "differ in length"),
        ({"covariates": [[1.0], [1.0]]}, "constant"),
        ({"covariates": [1.0, np.nan]}, "covariates"),
        ({"model": "bgnbd"}, "model"),
        ({"unit_days": 0.0}, "unit_days"),
    ],
)
def test_bad_inputs_are_named(kwargs: dict, match: str) -> None:
    args = {"frequency": [2.0, 0.0], "recency": [10.0, 0.0], "T": [30.0, 20.0]}
    args.update({k: v for k, v in kwargs.items() if k in args})
    options = {k: v for k, v in kwargs.items() if k not in args}
    with pytest.raises(ValueError, match=match):
        fit_lifetime_model(args["frequency"], args["recency"], args["T"], **options)


@pytest.mark.parametrize("model", ["pareto_nbd", "bg_nbd"])
def test_customers_first_seen_in_the_last_period_keep_the_prior(model: str) -> None:
    """T = 0 (a first purchase in the week of the cut-off) adds nothing to the likelihood."""
    x, t_x, big_t, z, _ = simulate(model, 1500, seed=5)
    new = 4
    fit = fit_lifetime_model(x, t_x, big_t, z, model=model, covariate_names=("z",))
    with_new = fit_lifetime_model(
        np.r_[x, np.zeros(new)], np.r_[t_x, np.zeros(new)], np.r_[big_t, np.zeros(new)],
        np.r_[z, np.linspace(-1.0, 1.0, new)], model=model, covariate_names=("z",),
    )  # fmt: skip
    for name, value in fit.params.items():
        assert with_new.params[name] == pytest.approx(value, rel=1e-3), name
    np.testing.assert_allclose(with_new.p_alive()[-new:], 1.0)
    assert np.all(with_new.expected_purchases(52.0)[-new:] > 0)


def test_spend_model_recovers_its_parameters() -> None:
    rng = np.random.default_rng(21)
    p, q, v, n = 6.0, 4.0, 15.0, 3000
    x = rng.integers(1, 8, n).astype(float)
    nu = rng.gamma(q, 1.0 / v, n)
    mean_value = rng.gamma(p * x, 1.0 / nu) / x
    fit = fit_spend_model(x, mean_value)
    assert fit.p == pytest.approx(p, rel=0.25)
    assert fit.q == pytest.approx(q, rel=0.3)
    assert fit.v == pytest.approx(v, rel=0.4)
    expected = fit.expected_value(np.r_[0.0, 1.0, 10.0], np.r_[np.nan, 200.0, 200.0])
    # Shrinkage: more repeat purchases pull the estimate towards the customer's own mean.
    assert expected[0] == pytest.approx(fit.population_mean)
    assert expected[0] < expected[1] < expected[2] < 200.0
    with pytest.raises(ValueError, match="monetary"):
        fit_spend_model(np.zeros(5), np.zeros(5))


@pytest.fixture(scope="module")
def cdnow() -> PurchaseLog:
    from rec_env.datasets.cdnow import load_cdnow

    return load_cdnow()


def _cdnow_days_subsample(
    log: PurchaseLog,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Customers whose id is a multiple of 8 (2,946), on purchase days."""
    data = calibration_holdout(log, "1997-09-30", "1998-06-30", "days")
    keep = data.customer_ids.astype(int) % 8 == 0
    return data.frequency[keep], data.recency[keep], data.T[keep], data.first_value[keep]


@pytest.mark.parametrize("model", ["pareto_nbd", "bg_nbd"])
def test_no_covariate_fit_matches_lifetimes_on_cdnow(model: str, cdnow: PurchaseLog) -> None:
    reference = json.loads(REFERENCE.read_text())["subsample_id_mod_8"]
    x, t_x, big_t, _ = _cdnow_days_subsample(cdnow)
    assert x.shape[0] == reference["n_customers"]
    assert x.sum() == reference["frequency_sum"]
    fit = fit_lifetime_model(x, t_x, big_t, model=model, unit_days=7.0)
    # lifetimes measures time in days here; recenv's purchase-day unit, in weeks.
    in_days = {**fit.params, "alpha": fit.params["alpha"] * 7}
    if model == "pareto_nbd":
        in_days["beta"] = fit.params["beta"] * 7
    for name, value in in_days.items():
        assert value == pytest.approx(reference[model][name], rel=2e-3), name
    jacobian = x.sum() * np.log(7.0)  # densities of event times per day, not per week
    assert fit.log_likelihood - jacobian == pytest.approx(
        reference[model]["log_likelihood"], abs=0.05
    )
    expected = fit.expected_purchases(39.0).sum()
    assert expected == pytest.approx(reference[f"{model}_expected_39_weeks"], rel=1e-3)


def test_first_purchase_value_raises_the_likelihood_on_cdnow(cdnow: PurchaseLog) -> None:
    x, t_x, big_t, value = _cdnow_days_subsample(cdnow)
    plain = fit_lifetime_model(x, t_x, big_t)
    with_value = fit_lifetime_model(x, t_x, big_t, np.log1p(value), covariate_names=("lv",))
    assert with_value.log_likelihood > plain.log_likelihood + 10
    assert with_value.bic < plain.bic
    assert with_value.gamma_purchase[0] > 0  # bigger first orders, more repeat purchases


def test_holdout_forecast_plugs_into_the_holdout_report(cdnow: PurchaseLog) -> None:
    data = calibration_holdout(cdnow, "1997-09-30", "1998-06-30", "weeks")
    keep = data.customer_ids.astype(int) % 8 == 0
    columns = {name: values[keep] for name, values in data.columns().items()}
    sample = replace(data, **columns)
    forecast = forecast_pareto_nbd_covariates(sample)
    report = holdout_report(sample, forecast)
    assert forecast.p_holdout is not None and np.allclose(forecast.p_holdout.sum(axis=1), 1.0)
    assert forecast.weekly is not None and forecast.weekly.shape == (sample.n_weeks,)
    # The unconditional curve tracks the calibration weeks it was fitted on.
    calibration = slice(0, sample.n_calibration_weeks)
    assert forecast.weekly[calibration].sum() == pytest.approx(sample.frequency.sum(), rel=0.05)
    assert 0.4 < report.correlation < 0.9
    assert abs(report.relative_error) < 0.3
