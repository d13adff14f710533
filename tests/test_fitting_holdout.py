"""Calibration/holdout summaries and holdout-forecast metrics (rec_env.fitting.holdout)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rec_env.datasets.cdnow import load_cdnow
from rec_env.fitting.holdout import (
    CalibrationHoldout,
    HoldoutForecast,
    as_day,
    calibration_holdout,
    conditional_expectations,
    count_shares,
    forecast_shares,
    holdout_report,
    tracking_mape,
)
from rec_env.fitting.purchase_log import PurchaseLog, PurchaseLogError

REFERENCE = Path(__file__).parent / "data" / "cdnow_holdout_reference.json"
CAL, HOLD = "1997-09-30", "1998-06-30"
LIFETIMES_WEEK_ORIGIN = "1996-12-30"  # a Monday: pandas' weekly periods (freq="W") start on it


@pytest.fixture(scope="module")
def cdnow() -> PurchaseLog:
    return load_cdnow()


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


def _hand_log() -> PurchaseLog:
    """Four customers on a day grid starting at day 0 (see the expectations in the tests).

    Calibration ends on day 27, the holdout on day 41: calendar weeks 0-3 and 4-5.
    """
    rows = [
        ("a", 0, 10.0), ("a", 3, 5.0), ("a", 10, 20.0), ("a", 11, 1.0), ("a", 20, 7.0),
        ("a", 30, 3.0), ("a", 31, 4.0), ("a", 45, 99.0),  # day 45: after the holdout
        ("b", 5, 8.0), ("b", 33, 2.0),
        ("c", 15, 1.0), ("c", 27, 6.0), ("c", 28, 100.0),  # week 1 of c straddles day 27
        ("d", 30, 50.0),  # first seen after the calibration: not in the cohort
    ]  # fmt: skip
    customer, day, amount = zip(*rows, strict=True)
    return PurchaseLog("hand", np.array(customer), np.array(day, np.int64), np.array(amount))


def _hand(unit: str, **options: object) -> CalibrationHoldout:
    return calibration_holdout(_hand_log(), 27, 41, unit, **options)  # type: ignore[arg-type]


# --- CDNOW against the literature and lifetimes -------------------------------------------------


def test_cdnow_cohort_and_textbook_counts(cdnow: PurchaseLog) -> None:
    days = calibration_holdout(cdnow, CAL, HOLD, "days")
    assert days.n_customers == 23_570 and cdnow.n_transactions == 69_659
    assert days.n_weeks == 78 and days.n_calibration_weeks == 39 and days.holdout_weeks == 39.0
    assert days.start_day == as_day("1997-01-01")
    # 67,591 purchase days, of which 23,570 are first purchases.
    assert days.frequency.sum() + days.holdout.sum() == 67_591 - 23_570
    assert days.T.max() == pytest.approx(272 / 7)  # first purchase on 1997-01-01
    assert days.n_purchases.sum() >= days.n_purchase_days.sum() == days.frequency.sum() + 23_570


def test_cdnow_days_match_lifetimes(cdnow: PurchaseLog, reference: dict) -> None:
    ref = reference["D"]
    days = calibration_holdout(cdnow, CAL, HOLD, "days")
    assert days.n_customers == ref["n_customers"]
    assert days.frequency.sum() == ref["frequency_cal"] == 24_337
    assert days.holdout.sum() == ref["frequency_holdout"] == 19_684
    assert (days.recency * 7).sum() == pytest.approx(ref["recency_cal"])
    assert (days.T * 7).sum() == pytest.approx(ref["T_cal"])
    assert np.nansum(days.monetary_repeat) == pytest.approx(ref["monetary_value_cal"])
    assert (days.holdout == 0).sum() == ref["no_holdout_customers"]
    index = {int(c): i for i, c in enumerate(days.customer_ids)}
    for customer, row in ref["customers"].items():
        i = index[int(customer)]
        assert days.frequency[i] == row["frequency_cal"]
        assert days.recency[i] * 7 == pytest.approx(row["recency_cal"])
        assert days.T[i] * 7 == pytest.approx(row["T_cal"])
        assert days.holdout[i] == row["frequency_holdout"]
        assert np.nan_to_num(days.monetary_repeat[i]) == pytest.approx(row["monetary_value_cal"])


def test_cdnow_calendar_weeks_match_lifetimes(cdnow: PurchaseLog, reference: dict) -> None:
    ref = reference["W"]
    weeks = calibration_holdout(cdnow, CAL, HOLD, "weeks", week_origin=LIFETIMES_WEEK_ORIGIN)
    assert weeks.frequency.sum() == ref["frequency_cal"] == 22_198
    assert weeks.recency.sum() == ref["recency_cal"]
    assert weeks.T.sum() == ref["T_cal"]
    assert np.nansum(weeks.monetary_repeat) == pytest.approx(ref["monetary_value_cal"])
    # lifetimes also counts in the holdout the week 1997-09-29..10-05 of a customer who bought
    # on both sides of the calibration end; here that week is one calibration occasion.
    day = cdnow.day
    before = np.unique(cdnow.customer[(day >= as_day("1997-09-29")) & (day <= as_day(CAL))])
    after = np.unique(cdnow.customer[(day > as_day(CAL)) & (day <= as_day("1997-10-05"))])
    straddling = np.intersect1d(before, after).size
    assert straddling > 0
    assert weeks.holdout.sum() + straddling == ref["frequency_holdout"] == 18_440


def test_cdnow_weekly_occasions_of_the_issue(cdnow: PurchaseLog) -> None:
    weeks = calibration_holdout(cdnow, CAL, HOLD, "weeks")
    assert weeks.holdout.sum() == 18_414  # issue 13's "actual" row
    assert weeks.frequency.sum() == 21_607
    assert (weeks.holdout == 0).mean() == pytest.approx(0.701, abs=5e-4)
    assert weeks.weekly_repeats[:39].sum() == weeks.frequency.sum()
    assert weeks.weekly_repeats[39:].sum() == weeks.holdout.sum()
    assert np.array_equal(weeks.T, (as_day(CAL) - weeks.first_day) // 7)


# --- hand-made logs -----------------------------------------------------------------------------


def test_weekly_occasions_from_first_purchase() -> None:
    data = _hand("weeks")
    assert data.customer_ids.tolist() == ["a", "b", "c"]  # d starts after the calibration
    assert data.frequency.tolist() == [2, 0, 1]
    assert data.recency.tolist() == [2, 0, 1]
    assert data.T.tolist() == [3, 3, 1]
    assert data.holdout.tolist() == [1, 1, 0]  # c's straddling week belongs to the calibration
    np.testing.assert_allclose(data.monetary_repeat, [14.0, np.nan, 6.0])  # c: not 106
    np.testing.assert_allclose(data.monetary_all, [43 / 3, 8.0, 3.5])
    assert data.first_value.tolist() == [15.0, 8.0, 1.0]
    assert data.n_purchases.tolist() == [5, 1, 2]
    assert data.n_purchase_days.tolist() == [5, 1, 2]
    assert data.weekly_repeats.tolist() == [0, 1, 1, 1, 2, 0]
    assert (data.n_weeks, data.n_calibration_weeks, data.holdout_weeks) == (6, 4, 2.0)


def test_purchase_days() -> None:
    data = _hand("days")
    assert data.frequency.tolist() == [4, 0, 1]
    np.testing.assert_allclose(data.recency, [20 / 7, 0.0, 12 / 7])
    np.testing.assert_allclose(data.T, [27 / 7, 22 / 7, 12 / 7])
    assert data.holdout.tolist() == [2, 1, 1]
    np.testing.assert_allclose(data.monetary_repeat, [8.25, np.nan, 6.0])
    assert data.first_value.tolist() == [10.0, 8.0, 1.0]
    assert data.weekly_repeats.tolist() == [1, 2, 1, 1, 4, 0]


def test_calendar_weeks() -> None:
    data = _hand("weeks", week_origin=0)
    # c: days 15, 27 and 28 fall in calendar weeks 2, 3 and 4.
    assert data.frequency.tolist() == [2, 0, 1]
    assert data.T.tolist() == [3, 3, 1]
    assert data.holdout.tolist() == [1, 1, 1]


def test_summary_ignores_row_order() -> None:
    log = _hand_log()
    order = np.random.default_rng(0).permutation(log.n_transactions)
    shuffled = PurchaseLog("shuffled", log.customer[order], log.day[order], log.amount[order])
    for unit in ("weeks", "days"):
        a = calibration_holdout(log, 27, 41, unit).columns()
        b = calibration_holdout(shuffled, 27, 41, unit).columns()
        for name, values in a.items():
            np.testing.assert_array_equal(values, b[name], err_msg=name)


def test_bad_arguments() -> None:
    log = _hand_log()
    with pytest.raises(ValueError, match="unit"):
        calibration_holdout(log, 27, 41, "months")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="after"):
        calibration_holdout(log, 27, 27)
    with pytest.raises(PurchaseLogError, match="hand"):
        calibration_holdout(log, -1, 41)


# --- metrics ------------------------------------------------------------------------------------


def test_tracking_mape() -> None:
    # cumulative actual 1, 2, 4, 6 and forecast 1, 2, 3, 6: holdout weeks 3 and 4 err 25 % and 0.
    assert tracking_mape(np.array([1, 1, 2, 2]), np.array([1, 1, 1, 3]), 2) == pytest.approx(12.5)
    with pytest.raises(ValueError, match="length"):
        tracking_mape(np.ones(4), np.ones(3), 2)
    with pytest.raises(ValueError, match="holdout week"):
        tracking_mape(np.ones(4), np.ones(4), 4)


def test_conditional_expectations_bins() -> None:
    customers, actual, forecast = conditional_expectations(
        np.array([0, 0, 1, 9]), np.array([0.0, 2.0, 1.0, 5.0]), np.array([1.0, 1.0, 3.0, 4.0])
    )
    assert customers.tolist() == [2, 1, 0, 0, 0, 0, 0, 1]
    np.testing.assert_allclose(actual[[0, 1, 7]], [1.0, 1.0, 5.0])
    np.testing.assert_allclose(forecast[[0, 1, 7]], [1.0, 3.0, 4.0])
    assert np.isnan(actual[2]) and np.isnan(forecast[2])


def test_shares() -> None:
    np.testing.assert_allclose(count_shares(np.array([0, 0, 1, 2, 3, 7])), [2, 1, 1, 2] / np.r_[6])
    p = np.array([[0.5, 0.3, 0.1], [0.1, 0.2, 0.3]])
    np.testing.assert_allclose(forecast_shares(p_holdout=p), [0.3, 0.25, 0.2, 0.25])
    draws = np.array([[0, 1], [4, 0]])
    np.testing.assert_allclose(forecast_shares(draws=draws), [0.5, 0.25, 0.0, 0.25])
    assert forecast_shares(p_holdout=p, draws=draws)[0] == pytest.approx(0.3)  # p wins
    assert forecast_shares() is None
    with pytest.raises(ValueError, match="K >= 3"):
        forecast_shares(p_holdout=p[:, :2])


def test_holdout_report() -> None:
    data = _hand("days")  # holdout 2, 1, 1; frequency 4, 0, 1
    forecast = HoldoutForecast(
        expected=np.array([3.0, 1.5, 1.5]),
        weekly=np.array([1, 2, 1, 1, 3, 1.0]),
        draws=np.array([[2, 1, 0], [3, 0, 1]]),
    )
    report = holdout_report(data, forecast)
    assert (report.actual_total, report.forecast_total) == (4.0, 6.0)
    assert report.relative_error == pytest.approx(0.5)
    # cumulative actual weeks 5-6: 9, 9; forecast 8, 9
    assert report.tracking_mape == pytest.approx(100 * (1 / 9) / 2)
    assert report.correlation == pytest.approx(1.0)  # forecast = 1.5 x actual
    assert report.conditional_mae == pytest.approx(np.mean([0.5, 0.5, 1.0]))  # bins 0, 1, 4
    np.testing.assert_allclose(report.actual_shares, [0, 2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(report.forecast_shares, [1 / 3, 1 / 3, 1 / 6, 1 / 6])
    assert report.as_dict()["frequency_bins"][-1] == "7+"
    no_extras = holdout_report(data, HoldoutForecast(np.array([2.0, 1.0, 1.0])))
    assert no_extras.tracking_mape is None and no_extras.forecast_shares is None
    assert no_extras.relative_error == 0.0 and no_extras.conditional_mae == 0.0
    with pytest.raises(ValueError, match=r"\(3,\)"):
        holdout_report(data, HoldoutForecast(np.ones(2)))
