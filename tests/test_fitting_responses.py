"""Response calibration from a randomised campaign (``rec_env.fitting.responses``) on Hillstrom."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_bad_input
from typer.testing import CliRunner

from rec_env.cli.main import app
from rec_env.features import FEATURE_INDEX
from rec_env.fitting.campaign_log import (
    ANY_EMAIL,
    CampaignLog,
    CampaignLogError,
    campaign_segments,
    read_campaign_log,
    twin_features,
)
from rec_env.fitting.response_check import check_responses, simulate_uplift, split_campaign
from rec_env.fitting.responses import (
    FITTED_RESPONSE_PARAMETERS,
    UNIDENTIFIED,
    fit_campaign_responses,
)
from rec_env.population import load_population

runner = CliRunner()
SUBSAMPLE = 8_000


def _subsample(log: CampaignLog, n: int, seed: int = 0) -> CampaignLog:
    rows = np.sort(np.random.default_rng(seed).choice(log.n, n, replace=False))
    return log.subset(rows)


@pytest.fixture(scope="module")
def hillstrom() -> CampaignLog:
    return read_campaign_log("hillstrom")


@pytest.fixture(scope="module")
def small(hillstrom: CampaignLog) -> CampaignLog:
    return _subsample(hillstrom, SUBSAMPLE)


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory, hillstrom: CampaignLog) -> Path:
    """A Hillstrom-like campaign CSV of 3,000 customers (the shipped file's first rows)."""
    source = Path(str(load_source()))
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(3_001)]
    path = tmp_path_factory.mktemp("campaigns") / "campaign.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def load_source() -> Path:
    from rec_env.datasets.log_spec import load_preset

    return load_preset("hillstrom").file


# ---------------------------------------------------------------------------- reading, twins
def test_hillstrom_reads_as_a_campaign(hillstrom: CampaignLog) -> None:
    assert hillstrom.n == 64_000
    assert hillstrom.arm_names == ("mens_email", "womens_email", "no_email")
    assert hillstrom.arm_names[hillstrom.control] == "no_email"
    assert int(hillstrom.conversion.sum()) == 578
    assert hillstrom.treated_arms == ("mens_email", "womens_email")


def test_twins_map_hillstrom_columns_to_the_features(small: CampaignLog) -> None:
    twins = twin_features(small, order_value=100.0)
    days = twins[:, FEATURE_INDEX["last_purchase_days"]]
    assert days.min() >= 0 and days.max() <= 365
    np.testing.assert_allclose(days, np.clip(small.recency * 30.4375 - 15.21875, 0, 730))
    assert (twins[:, FEATURE_INDEX["recency"]] == days).all()
    engaged = twins[:, FEATURE_INDEX["engagement_score"]]
    assert engaged[small.recency == 1].mean() > engaged[small.recency == 12].mean()
    assert (twins[:, FEATURE_INDEX["consent_email"]] == 1).all()
    assert (twins[:, FEATURE_INDEX["consent_sms"]] == 0).all()
    orders = np.maximum(small.history / 100.0, 1.0)
    np.testing.assert_allclose(
        twins[:, FEATURE_INDEX["monetary_value"]], np.clip(small.history / orders, 1, 2000)
    )


# ---------------------------------------------------------------------------- the fit
def test_fit_is_deterministic_and_the_split_is_seeded(small: CampaignLog) -> None:
    a, b = fit_campaign_responses(small), fit_campaign_responses(small)
    assert a.population().model_dump() == b.population().model_dump()
    first, second = split_campaign(small, 3), split_campaign(small, 3)
    np.testing.assert_array_equal(first[0], second[0])
    assert not np.array_equal(first[0], split_campaign(small, 4)[0])
    # stratified: each arm is split in half
    for k in range(3):
        in_arm = small.arm == k
        assert abs(in_arm[first[0]].sum() - in_arm.sum() / 2) <= 1


def test_fit_matches_the_arms_totals_in_closed_form(hillstrom: CampaignLog) -> None:
    """The fitted segments reproduce each arm's visit rate (main effects keep level totals)."""
    fit = fit_campaign_responses(hillstrom)
    weights = np.array([s.customers for s in fit.segments], dtype=float)
    for arm, outcome in (("control", "visit"), ("mens_email", "visit"), ("womens_email", "visit")):
        fitted = np.array([s.targets[arm][outcome] for s in fit.segments]) @ weights
        mask = hillstrom.arm == hillstrom.control if arm == "control" else hillstrom.treated(arm)
        assert fitted / weights.sum() == pytest.approx(hillstrom.visit[mask].mean(), rel=0.02)
    mens = {s.name: s.email_responsiveness["womens_email"] for s in fit.segments}
    womens_buyers = np.mean([v for k, v in mens.items() if k.startswith("womens_")])
    mens_buyers = np.mean([v for k, v in mens.items() if k.startswith("mens_")])
    assert womens_buyers > 3 * mens_buyers  # the Womens e-mail moves womens buyers


def test_the_closed_form_is_the_kernels_expectation(hillstrom: CampaignLog) -> None:
    """CustomerModel.expected_rewards (conversion) over a segment's twins gives the fitted rates."""
    from rec_env.catalog import ActionTable, load_catalog
    from rec_env.dynamics import CustomerModel

    fit = fit_campaign_responses(hillstrom)
    population = fit.population("mens_email")
    codes, names, _ = campaign_segments(hillstrom)
    k = names.index("womens_new_web")
    twins = np.tile(twin_features(hillstrom)[codes == k], (20, 1))
    table = ActionTable.from_catalog(load_catalog("strategy"))
    model = CustomerModel(table, population, reward_mode="conversion", cycle_days=14.0)
    segment = [s.name for s in population.segments].index("womens_new_web")
    n = twins.shape[0]
    flags = {"discount_sensitive": 0.0, "free_shipping_preferred": 0.0}
    rng = np.random.default_rng(0)
    _, hidden, _ = model.sampler.sample(rng, n, segments=np.full(n, segment), fixed=flags)
    batch = model.new_batch(n)
    model.set_customers(batch, np.arange(n), twins, hidden, np.full(n, segment))
    expected = model.expected_rewards(batch).mean(axis=0)
    targets = fit.segments[k].targets
    assert expected[table.names.index("no_action")] == pytest.approx(
        targets["control"]["conversion"], rel=0.03
    )
    assert expected[table.names.index("recommendation_email")] == pytest.approx(
        targets["mens_email"]["conversion"], rel=0.03
    )


def test_unidentified_parameters_keep_defaults_and_are_reported(small: CampaignLog) -> None:
    from rec_env.fitting.defaults import load_fit_defaults

    defaults = load_fit_defaults()
    population = fit_campaign_responses(small).population("mens_email")
    sources = population.fitted_from or {}
    for name in FITTED_RESPONSE_PARAMETERS:
        assert sources[name].startswith("data: hillstrom.csv.gz"), name
    for name in UNIDENTIFIED:
        assert sources[name].startswith("default: not identified"), name
    for segment in population.segments:
        for name in UNIDENTIFIED:
            if name != "churn_rate":
                assert segment.hidden[name] == defaults.hidden[name], name
    with pytest.raises(ValueError, match="unknown arm 'sms'"):
        fit_campaign_responses(small).population("sms")


# ---------------------------------------------------------------------------- the check
def test_fitted_responses_move_the_simulated_uplift_to_the_real_one(small: CampaignLog) -> None:
    """Womens e-mail to mens-only buyers: defaults overstate the visit uplift, the fit does not.

    The Womens e-mail barely moved buyers of mens merchandise; the default responsiveness (the
    same for every e-mail) predicts the full e-mail lift for them.
    """
    result = check_responses(small, seed=0, replicas=4)
    row = result.row("womens_email", "mens only", "visit")
    assert row.inside and not row.baseline_inside
    assert abs(row.simulated - row.real) < abs(row.baseline - row.real)
    every_arm = [result.row(arm, "all", "visit") for arm in result.fit.arms]
    assert sum(r.inside for r in every_arm) >= 2
    assert result.inside_share() >= 0.7
    assert "| womens_email | mens only |" in result.to_markdown()


def test_simulated_uplift_is_seeded(small: CampaignLog) -> None:
    fit = fit_campaign_responses(small)
    population = fit.population()
    twins = twin_features(small)[:500]
    segments = np.zeros(500, dtype=np.intp)
    first = simulate_uplift(population, twins, segments, 14.0, seed=5, replicas=2)
    again = simulate_uplift(population, twins, segments, 14.0, seed=5, replicas=2)
    other = simulate_uplift(population, twins, segments, 14.0, seed=6, replicas=2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


# ---------------------------------------------------------------------------- bad input, CLI
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("recency,", "recent,", 1), "missing columns 'recency'"),
        (lambda t: t.replace(",0,0,0\n", ",2,0,0\n", 1), "column 'visit' must be 0 or 1"),
        (lambda t: t.replace("Womens E-Mail", "Kids E-Mail", 1), "column 'segment' has unknown"),
        (lambda t: t.replace(",Phone,", ",Fax,", 1), "column 'channel' has unknown value 'Fax'"),
    ],
)
def test_bad_campaign_logs_name_the_field(
    small_csv: Path, tmp_path: Path, edit: object, message: str
) -> None:
    text = small_csv.read_text(encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(edit(text), encoding="utf-8")  # type: ignore[operator]
    with pytest.raises(CampaignLogError, match=message):
        read_campaign_log(bad)


def test_a_log_spec_names_its_own_columns_and_arms(small_csv: Path, tmp_path: Path) -> None:
    text = small_csv.read_text(encoding="utf-8").replace("segment,visit", "promo,visit", 1)
    text = text.replace("Mens E-Mail", "m").replace("Womens E-Mail", "w").replace("No E-Mail", "-")
    (tmp_path / "mine.csv").write_text(text, encoding="utf-8")
    spec = tmp_path / "mine.yaml"
    spec.write_text(
        "file: mine.csv\naction: promo\ncontrol: '-'\nfeatures: [recency]\nreward: visit\n"
        "propensity: uniform\n",
        encoding="utf-8",
    )
    log = read_campaign_log(spec)
    assert log.arm_names == ("arm", "m", "w") and log.arm_names[log.control] == "arm"
    assert log.channel_names == ("multichannel", "phone", "web")
    reference = read_campaign_log(small_csv)
    np.testing.assert_array_equal(log.visit, reference.visit)
    np.testing.assert_array_equal(log.treated("m"), reference.treated("mens_email"))
    spec.write_text(spec.read_text(encoding="utf-8").replace("control: '-'\n", ""), "utf-8")
    with pytest.raises(CampaignLogError, match="field 'control'"):
        read_campaign_log(spec)


def test_cli_fits_a_campaign_population_that_loads(small_csv: Path, tmp_path: Path) -> None:
    from test_fitting import write_synthetic_log

    orders = tmp_path / "orders.csv"
    end = write_synthetic_log(orders, n=300)
    end_date = str(np.datetime64(end, "D"))
    out = tmp_path / "shop.yaml"
    args = ["profiles", "fit", str(orders), "--out", str(out), "--segments", "1",
            "--end-date", end_date, "--campaigns", str(small_csv)]  # fmt: skip
    result = runner.invoke(app, [*args, "--check"])
    assert result.exit_code == 0, result.output
    assert "email_responsiveness: data: campaign.csv" in result.stdout
    assert (
        "| mens_email | all |" in result.stdout and "inside the held-out 95 % CI" in result.stdout
    )
    population = load_population(out)
    assert population.fitted_from is not None
    assert population.fitted_from["churn_rate"].startswith("data: purchase log orders.csv")
    assert population.fitted_from["sms_responsiveness"].startswith("default")
    assert len(population.segments) == 18
    assert population.name == f"campaign_{ANY_EMAIL}"
    no_campaign = runner.invoke(app, [*args[:-2], "--check", "--force"])
    assert_bad_input(no_campaign, "--check needs --campaigns")
    bad = runner.invoke(app, [*args[:-1], str(tmp_path / "none.csv"), "--force"])
    assert_bad_input(bad, "none.csv: file not found")
    arm = runner.invoke(app, [*args, "--campaign-arm", "kids_email", "--force"])
    assert_bad_input(arm, "unknown --campaign-arm 'kids_email'")
