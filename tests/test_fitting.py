"""Populations fitted from purchase logs: reading logs, RFM, the likelihood, the fit, the CLI."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_checks import assert_bad_input
from typer.testing import CliRunner

from rec_env import ConfigError, build_model
from rec_env.cli.main import app
from rec_env.datasets.cdnow import load_cdnow
from rec_env.fitting import FITTED_PARAMETERS, PopulationFit, fit_population, load_fit_defaults
from rec_env.fitting.latent_rates import GridLikelihood, RateGrid, fit_gamma
from rec_env.fitting.purchase_log import LogFormat, PurchaseLogError, read_purchase_log
from rec_env.fitting.rfm import (
    PurchaseHistory,
    history_from_log,
    ks_distance,
    rfm,
    rfm_ks_distances,
    simulate_history,
)
from rec_env.population import load_population

runner = CliRunner()
KS_GOAL = 0.1


def write_synthetic_log(path: Path, n: int = 1500, seed: int = 0) -> int:
    """A CSV log of customers simulated from the shipped cdnow population; returns the end day."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 60, n)
    end = 60 + 7 * 40
    history = simulate_history("cdnow", (end - first) // 7, seed)
    customers = np.concatenate([np.arange(n), history.occasion_customer])
    days = np.concatenate([first, first[history.occasion_customer] + 7 * history.occasion_cycle])
    values = np.concatenate([rng.lognormal(3.2, 0.6, n), history.occasion_value])
    dates = np.datetime64("2023-01-01") + days.astype("timedelta64[D]")
    lines = ["customer_id,date,amount"]
    lines += [f"c{c},{d},{v:.2f}" for c, d, v in zip(customers, dates, values, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return int((np.datetime64("2023-01-01") + np.timedelta64(end, "D")).astype(np.int64))


@pytest.fixture(scope="module")
def cdnow_rfm():
    return rfm(history_from_log(load_cdnow()))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("logs") / "shop.csv"
    return path, write_synthetic_log(path)


@pytest.fixture(scope="module")
def synthetic_fit(synthetic) -> PopulationFit:
    path, end = synthetic
    return fit_population(
        read_purchase_log(path), segments=2, end_day=end, calibration_customers=400
    )


# ---------------------------------------------------------------------- the shipped population
def test_cdnow_log_is_shipped_and_valid() -> None:
    log = load_cdnow()
    assert log.n_transactions == 69_659 and log.n_customers == 23_570
    assert (log.amount == 0).sum() == 80 and (log.amount >= 0).all()
    first, last = (np.datetime64(int(d), "D") for d in (log.day.min(), log.day.max()))
    assert str(first) == "1997-01-01" and str(last) == "1998-06-30"


@pytest.mark.parametrize("seed", [0, 1])
def test_cdnow_population_reproduces_the_rfm_marginals(cdnow_rfm, seed: int) -> None:
    """Simulate the shipped cdnow.yaml with the data's exposures: KS <= 0.1 on R, F and M."""
    exposure = cdnow_rfm.exposure.astype(np.int64)
    simulated = rfm(simulate_history("cdnow", exposure, seed=seed))
    distances = rfm_ks_distances(cdnow_rfm, simulated)
    print(f"cdnow KS distances (seed {seed}):", {k: round(v, 4) for k, v in distances.items()})
    assert all(distance <= KS_GOAL for distance in distances.values()), distances
    # the simulated customers also buy as often and spend as much on average
    assert simulated.frequency.mean() == pytest.approx(cdnow_rfm.frequency.mean(), rel=0.1)
    spend = np.nansum(cdnow_rfm.monetary * cdnow_rfm.frequency)
    assert np.nansum(simulated.monetary * simulated.frequency) == pytest.approx(spend, rel=0.15)


def test_cdnow_population_loads_in_the_env() -> None:
    population = load_population("cdnow")
    assert len(population.segments) >= 3
    model = build_model(profile="cdnow")
    assert model.population.name == "cdnow"
    for segment in population.segments:
        assert segment.observed["last_purchase_days"].dist == "constant"  # enter at acquisition


# ---------------------------------------------------------------------- RFM definitions
def test_rfm_of_a_small_log(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "customer_id,date,amount\n"
        "a,2024-01-01,10\n"
        "a,2024-01-04,5\n"  # same cycle as the acquisition: part of it
        "a,2024-01-11,20\n"  # cycle 1
        "a,2024-01-31,30\n"  # cycle 4
        "a,2024-02-02,6\n"  # cycle 4 again: one occasion worth 36
        "b,2024-01-08,7\n"
        "c,2024-02-19,1\n",  # the last day: 8 weeks after a's acquisition
        encoding="utf-8",
    )
    history = history_from_log(read_purchase_log(path))
    assert list(history.customer_ids) == ["a", "b", "c"]
    assert list(history.exposure) == [7, 6, 0]
    scores = rfm(history)
    assert list(scores.frequency) == [2, 0, 0]
    assert list(scores.recency) == [3, 6, 0]
    assert scores.monetary[0] == pytest.approx(28.0) and np.isnan(scores.monetary[1:]).all()


def test_ks_distance_handles_ties_and_nans() -> None:
    assert ks_distance(np.array([0.0, 0, 1]), np.array([0.0, 1, 1])) == pytest.approx(1 / 3)
    assert ks_distance(np.array([1.0, np.nan]), np.array([1.0])) == 0.0


# ---------------------------------------------------------------------- likelihood and gammas
@pytest.mark.parametrize(("purchase_rate", "churn_rate"), [(3.0, 0.5), (40.0, 20.0), (0.2, 2.0)])
def test_likelihood_sums_to_one_over_every_possible_history(
    purchase_rate: float, churn_rate: float
) -> None:
    exposure = 5
    patterns = list(itertools.product([0, 1], repeat=exposure))
    customers, cycles = [], []
    for i, pattern in enumerate(patterns):
        bought = [t + 1 for t, b in enumerate(pattern) if b]
        customers += [i] * len(bought)
        cycles += bought
    history = PurchaseHistory(
        exposure=np.full(len(patterns), exposure),
        occasion_customer=np.array(customers, dtype=np.int64),
        occasion_cycle=np.array(cycles, dtype=np.int64),
        occasion_value=np.ones(len(cycles)),
    )
    grid = RateGrid(np.array([purchase_rate]), np.array([churn_rate]))
    likelihood = GridLikelihood.from_history(history, grid)
    per_customer = (likelihood.likelihood[:, 0] * np.exp(likelihood.log_scale))[likelihood.inverse]
    assert per_customer.sum() == pytest.approx(1.0, rel=1e-12)


def test_likelihood_peaks_at_the_rates_that_generated_the_data() -> None:
    rng = np.random.default_rng(3)
    n, exposure, rate, churn, years = 4000, 60, 6.0, 1.5, 7 / 365
    alive = np.ones(n, dtype=bool)
    since = np.zeros(n)
    customers, cycles = [], []
    for cycle in range(1, exposure + 1):
        buy = alive & (rng.random(n) < 1 - math.exp(-rate * years))
        hazard = 1 - np.exp(-churn * years * (1 + since / 365))
        alive &= buy | (rng.random(n) >= hazard)
        customers.append(np.flatnonzero(buy))
        cycles.append(np.full(buy.sum(), cycle))
        since = np.where(buy, 0.0, since + 7)
    history = PurchaseHistory(
        exposure=np.full(n, exposure),
        occasion_customer=np.concatenate(customers),
        occasion_cycle=np.concatenate(cycles),
        occasion_value=np.ones(sum(c.size for c in customers)),
    )
    grid = RateGrid(np.geomspace(1, 36, 41), np.geomspace(0.1, 20, 41))
    likelihood = GridLikelihood.from_history(history, grid)
    total = likelihood.counts @ np.log(likelihood.likelihood) + likelihood.counts @ (
        likelihood.log_scale
    )[:, None].repeat(grid.size, axis=1)
    best_rate, best_churn = np.unravel_index(np.argmax(total), (41, 41))
    assert grid.purchase_rates[best_rate] == pytest.approx(rate, rel=0.1)
    assert grid.churn_rates[best_churn] == pytest.approx(churn, rel=0.3)


def test_fit_gamma_recovers_mean_and_shape() -> None:
    rng = np.random.default_rng(0)
    sample = rng.gamma(0.7, 3.0 / 0.7, 200_000)
    mean, shape = fit_gamma(sample, np.ones_like(sample))
    assert mean == pytest.approx(3.0, rel=0.02) and shape == pytest.approx(0.7, rel=0.02)


# ---------------------------------------------------------------------- fitting
def test_fit_writes_a_population_the_env_loads(synthetic_fit, tmp_path: Path) -> None:
    fit = synthetic_fit
    path = fit.write(tmp_path / "shop.yaml")
    population = load_population(path)
    assert population.name == "shop" and len(population.segments) == 2
    assert build_model(profile=path).population == population
    assert sum(s.share for s in fit.segments) == pytest.approx(1.0)
    defaults = load_fit_defaults()
    for segment in population.segments:
        for name, spec in segment.hidden.items():
            if name not in FITTED_PARAMETERS:
                assert spec == defaults.hidden[name]  # unidentifiable: documented default
    assert all(distance <= KS_GOAL for distance in fit.ks.values()), fit.ks
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Fitted by `recenv profiles fit` from shop.csv")
    assert "Kolmogorov-Smirnov" in text and yaml.safe_load(text)["name"] == "shop"


def test_fit_is_deterministic(synthetic, synthetic_fit) -> None:
    path, end = synthetic
    again = fit_population(
        read_purchase_log(path), segments=2, end_day=end, calibration_customers=400
    )
    assert again.to_yaml() == synthetic_fit.to_yaml()


def test_fit_chooses_the_number_of_segments_by_bic(synthetic) -> None:
    path, end = synthetic
    fit = fit_population(
        read_purchase_log(path), segments="auto", end_day=end, calibration_customers=0
    )
    assert set(fit.bics) == {2, 3, 4, 5, 6, 7, 8}
    assert len(fit.segments) == min(fit.bics, key=fit.bics.get)


def test_fit_rejects_a_log_too_short_to_fit(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("customer_id,date,amount\na,2024-01-01,3\nb,2024-01-02,4\n", encoding="utf-8")
    with pytest.raises(PurchaseLogError, match="no customer was observed for a whole cycle"):
        fit_population(read_purchase_log(path))


def test_fit_defaults_are_shipped_and_validated(tmp_path: Path) -> None:
    defaults = load_fit_defaults()
    assert "purchase_rate" not in defaults.hidden and "visit_rate" in defaults.hidden
    data = defaults.model_dump(mode="json")
    data["hidden"]["purchase_rate"] = {"dist": "constant", "value": 1.0}
    path = tmp_path / "defaults.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"defaults\.yaml.*unknown or fitted purchase_rate"):
        load_fit_defaults(path)


# ---------------------------------------------------------------------- reading logs
BAD_LOGS = [
    ("", "file is empty"),
    ("customer_id,date,amount\n", "file has no transactions"),
    ("cust,date\na,2024-01-01\n", "missing columns 'customer_id', 'amount'"),
    ("customer_id,date,amount\na,2024-01-01,3\nb,01/02/2024,4\n", "line 3: cannot parse date"),
    ("customer_id,date,amount\na,2024-01-01,3\n\nb,2024-01-03,-4\n", "line 4: negative amount"),
    ("customer_id,date,amount\na,2024-01-01,three\n", "line 2: cannot parse amount 'three'"),
    ("customer_id,date,amount\n,2024-01-01,3\n", "line 2: missing customer id"),
    ("customer_id,date,amount\na,2024-01-01,3,4\n", "line 2 has 4 fields, expected 3"),
]


@pytest.mark.parametrize(("text", "message"), BAD_LOGS)
def test_bad_logs_name_the_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PurchaseLogError) as error:
        read_purchase_log(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)


def test_custom_columns_and_date_format(tmp_path: Path) -> None:
    path = tmp_path / "orders.tsv"
    path.write_text("when\tclient\tpaid\n03/01/2024\tx\t12.5\n", encoding="utf-8")
    log_format = LogFormat("client", "when", "paid", "%d/%m/%Y", "\t")
    log = read_purchase_log(path, log_format)
    assert log.customer.tolist() == ["x"] and log.amount.tolist() == [12.5]
    assert str(np.datetime64(int(log.day[0]), "D")) == "2024-01-03"


def test_the_order_log_of_recenv_features_is_a_purchase_log(tmp_path: Path) -> None:
    """Its ``time`` column (dates or date-times) stands for ``date``; the rest is ignored."""
    path = tmp_path / "orders.csv"
    path.write_text(
        "customer_id,time,amount,discount,order_id\n"
        "a,2024-01-03 10:15:00,12.5,0,o1\nb,2024-01-05,20,1,o2\n",
        encoding="utf-8",
    )
    log = read_purchase_log(path)
    assert log.customer.tolist() == ["a", "b"] and log.amount.tolist() == [12.5, 20.0]
    assert [str(np.datetime64(int(d), "D")) for d in log.day] == ["2024-01-03", "2024-01-05"]
    path.write_text("customer_id,time,date,amount\na,2024-01-03,bad,1\n", encoding="utf-8")
    with pytest.raises(PurchaseLogError, match="column 'date'"):  # a date column wins
        read_purchase_log(path)


# ---------------------------------------------------------------------- CLI
def test_cli_fit_with_custom_columns(synthetic, tmp_path: Path) -> None:
    path, end = synthetic
    lines = path.read_text(encoding="utf-8").splitlines()
    renamed = tmp_path / "orders.csv"
    rows = [line.split(",") for line in lines[1:]]
    body = [f"{c};{d[8:10]}.{d[5:7]}.{d[:4]};{v}" for c, d, v in rows]
    renamed.write_text("\n".join(["client;day;paid", *body]) + "\n", encoding="utf-8")
    out = tmp_path / "orders.yaml"
    defaults = load_fit_defaults().model_dump(mode="json")
    defaults["observed"]["consent_sms"] = {"dist": "bernoulli", "p": 0.9}
    defaults_path = tmp_path / "my_defaults.yaml"
    defaults_path.write_text(yaml.safe_dump(defaults), encoding="utf-8")
    end_date = str(np.datetime64(end, "D"))
    args = ["profiles", "fit", str(renamed), "--out", str(out), "--segments", "2",
            "--customer-column", "client", "--date-column", "day", "--amount-column", "paid",
            "--date-format", "%d.%m.%Y", "--separator", ";", "--end-date", end_date,
            "--defaults", str(defaults_path), "--name", "my_shop"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Kolmogorov-Smirnov distance: recency" in result.stdout
    validated = runner.invoke(app, ["profiles", "validate", str(out)])
    assert validated.exit_code == 0 and "OK" in validated.stdout
    population = load_population(out)
    assert population.name == "my_shop"
    assert all(s.observed["consent_sms"].p == 0.9 for s in population.segments)
    assert f"defaults of {defaults_path}" in out.read_text(encoding="utf-8")


def test_cli_fit_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = str(tmp_path / "x.yaml")
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,date,amount\na,2024-01-01,-1\n", encoding="utf-8")
    fit = ["profiles", "fit"]
    assert_bad_input(runner.invoke(app, [*fit, str(bad), "--out", out]), "line 2", "'amount'")
    missing = str(tmp_path / "missing.csv")
    assert_bad_input(runner.invoke(app, [*fit, missing, "--out", out]), "file not found")
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert_bad_input(runner.invoke(app, [*fit, str(empty), "--out", out]), "file is empty")
    args = [*fit, str(bad), "--out", out]
    assert_bad_input(runner.invoke(app, [*args, "--segments", "two"]), "--segments")
    assert_bad_input(runner.invoke(app, [*args, "--segments", "0"]), "--segments")
    assert_bad_input(runner.invoke(app, [*args, "--preset", "excel"]), "excel", "cdnow")
    assert_bad_input(runner.invoke(app, [*args, "--end-date", "June"]), "--end-date")
    assert_bad_input(runner.invoke(app, [*args, "--amount-column", "paid"]), "missing column")
    nowhere = str(tmp_path / "no" / "x.yaml")
    assert_bad_input(runner.invoke(app, [*fit, str(bad), "--out", nowhere]), "does not exist")


@pytest.mark.slow
def test_refitting_cdnow_reproduces_the_shipped_population(tmp_path: Path) -> None:
    """`recenv profiles fit cdnow --out ...` regenerates profiles/cdnow.yaml (to rounding)."""
    out = tmp_path / "cdnow.yaml"
    result = runner.invoke(app, ["profiles", "fit", "cdnow", "--out", str(out)])
    assert result.exit_code == 0, result.output
    refitted, shipped = load_population(out), load_population("cdnow")
    assert [s.name for s in refitted.segments] == [s.name for s in shipped.segments]
    for new, old in zip(refitted.segments, shipped.segments, strict=True):
        assert new.weight == pytest.approx(old.weight, rel=0.01)
        for name in FITTED_PARAMETERS:
            for key, value in new.hidden[name].model_dump(exclude={"dist"}).items():
                assert value == pytest.approx(getattr(old.hidden[name], key), rel=0.02)
