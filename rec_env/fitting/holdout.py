"""Calibration/holdout summaries of a purchase log, and the metrics of a holdout forecast.

The standard out-of-sample test of purchase-log models (Fader, Hardie and Lee 2005, "Counting
your customers the easy way", Marketing Science 24(2); on CDNOW: calibration to 1997-09-30,
weeks 1-39; holdout to 1998-06-30, weeks 40-78): fit on each customer's calibration history,
forecast their number of repeat transactions in the holdout, and compare.

Two units of transaction are supported, both with time measured in weeks:

* ``"weeks"`` -- weekly purchase occasions. Time is cut into weeks counted from each customer's
  first purchase day (week 0 is the acquisition week; recenv's cycle, see
  :mod:`rec_env.fitting.rfm`), or, with ``week_origin``, into calendar weeks starting on that
  date (``lifetimes``' ``freq="W"`` is ``week_origin="1996-12-30"``, a Monday). A week with at
  least one purchase is one occasion, dated by its first purchase: it belongs to the
  calibration if that date is on or before the calibration end, else to the holdout. Recency
  and ``T`` are whole weeks. (``lifetimes`` instead splits the transactions at the calibration
  end first, so a week with purchases on both sides counts in both periods.)
* ``"days"`` -- purchase days: a day with at least one purchase is one transaction (the unit of
  the published CDNOW benchmark). Recency and ``T`` are days / 7, as in the literature (a
  customer first buying on 1997-01-01 has ``T = 272 / 7 = 38.86`` weeks on 1997-09-30).

The cohort is every customer whose first purchase is on or before the calibration end; their
first purchase (the acquisition) is not a repeat transaction. Only numpy is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from rec_env.fitting.purchase_log import PurchaseLog, PurchaseLogError

__all__ = [
    "UNITS",
    "CalibrationHoldout",
    "HoldoutForecast",
    "HoldoutReport",
    "Unit",
    "as_day",
    "calibration_holdout",
    "conditional_expectations",
    "count_shares",
    "forecast_shares",
    "holdout_report",
    "tracking_mape",
]

Unit = Literal["weeks", "days"]
UNITS: tuple[str, ...] = ("weeks", "days")
"""Transaction units: weekly purchase occasions, purchase days."""

MAX_FREQUENCY = 7
"""Calibration frequencies of the conditional expectations are binned 0, 1, ..., 6, 7+."""

MAX_COUNT = 3
"""Holdout counts of the distribution are binned 0, 1, 2, 3+."""

_CUSTOMER_COLUMNS = (
    "customer_ids",
    "first_day",
    "frequency",
    "recency",
    "T",
    "holdout",
    "monetary_repeat",
    "monetary_all",
    "first_value",
    "n_purchases",
    "n_purchase_days",
)


def as_day(date: str | int | np.datetime64) -> int:
    """A date as days since 1970-01-01 (an ``int`` is taken as already such a day)."""
    if isinstance(date, (int, np.integer)):
        return int(date)
    return int(np.datetime64(date, "D").astype(np.int64))


@dataclass(frozen=True)
class CalibrationHoldout:
    """Per-customer calibration summary, holdout counts and the cohort's weekly tracking.

    All ``(n,)`` arrays follow ``customer_ids``. Times are in weeks; counts are in ``unit``.

    Attributes:
        unit: ``"weeks"`` (weekly purchase occasions) or ``"days"`` (purchase days).
        customer_ids: ``(n,)`` customer ids, sorted.
        first_day: ``(n,)`` first purchase date (days since 1970-01-01).
        frequency: ``(n,)`` repeat transactions in the calibration period (x).
        recency: ``(n,)`` time of the last repeat transaction since the first purchase, 0 if
            none (t_x, weeks).
        T: ``(n,)`` age at the calibration end (weeks).
        holdout: ``(n,)`` repeat transactions in the holdout period.
        monetary_repeat: ``(n,)`` mean value of the calibration repeat transactions, NaN if none.
        monetary_all: ``(n,)`` mean value of all calibration transactions, the first included.
        first_value: ``(n,)`` value of the first transaction (the acquisition week or day).
        n_purchases: ``(n,)`` rows of the log in the calibration period, the first included.
        n_purchase_days: ``(n,)`` distinct calibration purchase days, the first included.
        calibration_end_day: Last calibration day (days since 1970-01-01).
        holdout_end_day: Last holdout day.
        start_day: First day of calendar week 1 of the tracking curve.
        weekly_repeats: ``(n_weeks,)`` the cohort's repeat transactions in each calendar week
            1, ..., n_weeks (week ``k`` is days ``start + 7(k - 1)`` to ``start + 7k - 1``).
        n_calibration_weeks: Calendar weeks up to the calibration end (39 on CDNOW).
    """

    unit: str
    customer_ids: np.ndarray
    first_day: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    holdout: np.ndarray
    monetary_repeat: np.ndarray
    monetary_all: np.ndarray
    first_value: np.ndarray
    n_purchases: np.ndarray
    n_purchase_days: np.ndarray
    calibration_end_day: int
    holdout_end_day: int
    start_day: int
    weekly_repeats: np.ndarray
    n_calibration_weeks: int

    @property
    def n_customers(self) -> int:
        """Customers in the cohort."""
        return int(self.customer_ids.shape[0])

    @property
    def n_weeks(self) -> int:
        """Calendar weeks of the tracking curve (78 on CDNOW)."""
        return int(self.weekly_repeats.shape[0])

    @property
    def holdout_weeks(self) -> float:
        """Length of the holdout period in weeks (39 on CDNOW)."""
        return (self.holdout_end_day - self.calibration_end_day) / 7.0

    def tracking_ages(self) -> tuple[np.ndarray, np.ndarray]:
        """Customer ages at the end of each calendar week, for a model's tracking curve.

        Customers who started on the same day share a row. The age at the end of week ``k`` is
        ``(start + 7k - 1 - first_day) / 7`` weeks, clipped at 0 (so 272 / 7 at the end of
        week 39 for a CDNOW customer who started on its first day, as ``T``).

        Returns:
            ``(ages, sizes)``: ``(g, n_weeks)`` ages and the ``(g,)`` number of customers of
            each start day, so that ``sizes @ E[X(ages)]`` is the expected cumulative curve.
        """
        days, sizes = np.unique(self.first_day, return_counts=True)
        week_end = self.start_day + 7 * np.arange(1, self.n_weeks + 1) - 1
        ages = np.clip((week_end[None, :] - days[:, None]) / 7.0, 0.0, None)
        return ages, sizes.astype(np.float64)

    def columns(self) -> dict[str, np.ndarray]:
        """The per-customer arrays by name (for a CSV or a model in another process)."""
        return {name: getattr(self, name) for name in _CUSTOMER_COLUMNS}


def calibration_holdout(
    log: PurchaseLog,
    calibration_end: str | int | np.datetime64,
    holdout_end: str | int | np.datetime64,
    unit: Unit = "weeks",
    week_origin: str | int | np.datetime64 | None = None,
    start: str | int | np.datetime64 | None = None,
) -> CalibrationHoldout:
    """Summarise a purchase log for a calibration/holdout test (see the module docstring).

    Args:
        log: The transactions.
        calibration_end: Last day of the calibration period (e.g. ``"1997-09-30"``).
        holdout_end: Last day of the holdout period (e.g. ``"1998-06-30"``).
        unit: ``"weeks"`` for weekly purchase occasions, ``"days"`` for purchase days.
        week_origin: ``None`` counts weeks from each customer's first purchase day; a date
            counts calendar weeks starting on it (``"weeks"`` only).
        start: First day of calendar week 1 of the tracking curve; defaults to the cohort's
            first purchase day (1997-01-01 on CDNOW).

    Returns:
        The summary of every customer first seen on or before ``calibration_end``.

    Raises:
        ValueError: If the unit is unknown or the holdout does not end after the calibration.
        PurchaseLogError: If no customer is first seen on or before ``calibration_end``.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    cal_end, hold_end = as_day(calibration_end), as_day(holdout_end)
    if hold_end <= cal_end:
        raise ValueError("the holdout must end after the calibration end")
    ids, first, customer, day, amount = _cohort_transactions(log, cal_end, hold_end)
    n = ids.shape[0]
    # Each transaction's slot: its day, or its week on the customer's or the calendar grid.
    if unit == "days":
        slot, cal_slot, scale = day, np.full(n, cal_end), 1.0 / 7.0
    else:
        origin = first if week_origin is None else np.full(n, as_day(week_origin))
        slot, cal_slot, scale = (day - origin[customer]) // 7, (cal_end - origin) // 7, 1.0
    occ = _occasions(customer, slot, day, amount, cal_end)
    first_slot = occ.slot[occ.is_first]
    calibration = occ.day <= cal_end
    repeat_cal = calibration & ~occ.is_first

    frequency = np.bincount(occ.customer[repeat_cal], minlength=n).astype(np.float64)
    last = first_slot.copy()
    np.maximum.at(last, occ.customer[repeat_cal], occ.slot[repeat_cal])
    holdout = np.bincount(occ.customer[~calibration], minlength=n).astype(np.float64)
    cal_value = np.bincount(occ.customer[calibration], occ.value[calibration], minlength=n)
    repeat_value = np.bincount(occ.customer[repeat_cal], occ.value[repeat_cal], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary_repeat = np.where(frequency > 0, repeat_value / frequency, np.nan)
    in_cal = day <= cal_end
    purchase_days = _occasions(customer[in_cal], day[in_cal], day[in_cal], amount[in_cal], cal_end)

    begin = int(first.min()) if start is None else as_day(start)
    n_weeks = -(-(hold_end - begin + 1) // 7)
    week = (occ.day[~occ.is_first] - begin) // 7
    return CalibrationHoldout(
        unit=unit,
        customer_ids=ids,
        first_day=first,
        frequency=frequency,
        recency=(last - first_slot) * scale,
        T=(cal_slot - first_slot) * scale,
        holdout=holdout,
        monetary_repeat=monetary_repeat,
        monetary_all=cal_value / (frequency + 1.0),
        first_value=occ.value[occ.is_first],
        n_purchases=np.bincount(customer[in_cal], minlength=n),
        n_purchase_days=np.bincount(purchase_days.customer, minlength=n),
        calibration_end_day=cal_end,
        holdout_end_day=hold_end,
        start_day=begin,
        weekly_repeats=np.bincount(week[week >= 0], minlength=n_weeks)[:n_weeks].astype(float),
        n_calibration_weeks=-(-(cal_end - begin + 1) // 7),
    )


def _cohort_transactions(
    log: PurchaseLog, cal_end: int, hold_end: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The cohort's transactions up to the holdout end.

    Returns:
        ``(ids, first, customer, day, amount)``: the ``(n,)`` sorted ids and first purchase
        days of the customers first seen by ``cal_end``, and their transactions with customer
        indices into ``ids``.
    """
    keep = log.day <= hold_end
    ids, customer = np.unique(log.customer[keep], return_inverse=True)
    day, amount = log.day[keep], log.amount[keep]
    first = np.full(ids.shape[0], np.iinfo(np.int64).max)
    np.minimum.at(first, customer, day)
    cohort = first <= cal_end
    if not cohort.any():
        raise PurchaseLogError(f"{log.source}: no customer is first seen by the calibration end")
    rows = cohort[customer]
    new_index = np.cumsum(cohort) - 1
    return ids[cohort], first[cohort], new_index[customer[rows]], day[rows], amount[rows]


@dataclass(frozen=True)
class _Occasions:
    """Transactions grouped by customer and slot, sorted by customer then slot."""

    customer: np.ndarray
    slot: np.ndarray
    day: np.ndarray  # the first purchase day of the occasion
    value: np.ndarray  # the amount bought on or before the calibration end
    is_first: np.ndarray  # the customer's first occasion (the acquisition)


def _occasions(
    customer: np.ndarray, slot: np.ndarray, day: np.ndarray, amount: np.ndarray, cal_end: int
) -> _Occasions:
    low = int(slot.min())
    width = int(slot.max()) - low + 1
    keys, occasion = np.unique(customer * width + (slot - low), return_inverse=True)
    occ_customer = keys // width
    occ_day = np.full(keys.shape[0], np.iinfo(np.int64).max)
    np.minimum.at(occ_day, occasion, day)
    # The holdout part of a week that straddles the calibration end must not leak into the
    # calibration summary, so values count calibration purchases only.
    value = np.bincount(occasion, weights=amount * (day <= cal_end), minlength=keys.shape[0])
    return _Occasions(
        customer=occ_customer,
        slot=keys % width + low,
        day=occ_day,
        value=value,
        is_first=np.r_[True, occ_customer[1:] != occ_customer[:-1]],
    )


@dataclass(frozen=True)
class HoldoutForecast:
    """A model's forecast of the holdout, in the unit of the :class:`CalibrationHoldout`.

    Attributes:
        expected: ``(n,)`` each customer's expected number of holdout repeat transactions.
        weekly: ``(n_weeks,)`` the cohort's expected repeat transactions in each calendar week
            1, ..., n_weeks, or None. A model of the whole history gives its unconditional
            curve; a forecast of the holdout only gives the actual calibration weeks followed
            by its own holdout weeks (say which in ``weekly_kind``).
        weekly_kind: ``"unconditional"`` or ``"conditional"`` (on the calibration), for reports.
        p_holdout: ``(n, K)`` each customer's P(X = k) for k = 0, ..., K - 1 (K >= 3), or None.
        draws: ``(n_draws, n)`` simulated holdout counts per customer, or None; used for the
            distribution when ``p_holdout`` is None.
    """

    expected: np.ndarray
    weekly: np.ndarray | None = None
    weekly_kind: str = "unconditional"
    p_holdout: np.ndarray | None = None
    draws: np.ndarray | None = None


@dataclass(frozen=True)
class HoldoutReport:
    """How a forecast compares with the holdout (see :func:`holdout_report`).

    Attributes:
        actual_total: Repeat transactions of the cohort in the holdout.
        forecast_total: Their forecast, the sum of ``expected``.
        relative_error: ``forecast_total / actual_total - 1``.
        tracking_mape: See :func:`tracking_mape` (percent), or None without a weekly curve.
        frequency_bins: Bin labels ``0, 1, ..., 7+`` of the calibration frequency.
        bin_customers: ``(8,)`` customers in each bin.
        conditional_actual: ``(8,)`` mean holdout transactions per customer in each bin.
        conditional_forecast: ``(8,)`` mean forecast per customer in each bin.
        conditional_mae: Mean over the non-empty bins of ``|forecast - actual|``.
        correlation: Pearson correlation of ``expected`` with the actual holdout counts.
        actual_shares: ``(4,)`` share of customers with 0, 1, 2, 3+ holdout transactions.
        forecast_shares: ``(4,)`` the forecast shares, or None without a distribution.
        weekly_kind: The forecast's ``weekly_kind``.
    """

    actual_total: float
    forecast_total: float
    relative_error: float
    tracking_mape: float | None
    frequency_bins: tuple[str, ...]
    bin_customers: np.ndarray
    conditional_actual: np.ndarray
    conditional_forecast: np.ndarray
    conditional_mae: float
    correlation: float
    actual_shares: np.ndarray
    forecast_shares: np.ndarray | None
    weekly_kind: str

    def as_dict(self) -> dict[str, object]:
        """JSON-ready values (arrays as lists)."""
        return {
            key: value.tolist() if isinstance(value, np.ndarray) else value
            for key, value in self.__dict__.items()
        }


def tracking_mape(
    actual_weekly: np.ndarray, forecast_weekly: np.ndarray, n_calibration_weeks: int
) -> float:
    """Mean absolute percentage error of the cumulative tracking curve over the holdout weeks.

    With ``A_k`` and ``F_k`` the actual and forecast cumulative repeat transactions of the cohort
    from week 1 to the end of calendar week ``k``, and ``H`` the holdout weeks
    ``n_calibration_weeks + 1, ..., n_weeks``::

        MAPE = 100 / |H| * sum_{k in H} |F_k - A_k| / A_k

    Args:
        actual_weekly: ``(n_weeks,)`` actual repeat transactions per calendar week.
        forecast_weekly: ``(n_weeks,)`` forecast repeat transactions per calendar week.
        n_calibration_weeks: Weeks of the calibration period.

    Returns:
        The error in percent.
    """
    actual = np.cumsum(np.asarray(actual_weekly, dtype=np.float64))
    forecast = np.cumsum(np.asarray(forecast_weekly, dtype=np.float64))
    if actual.shape != forecast.shape:
        raise ValueError(f"weekly curves differ in length: {actual.shape} vs {forecast.shape}")
    if not 0 <= n_calibration_weeks < actual.shape[0]:
        raise ValueError("n_calibration_weeks must leave at least one holdout week")
    held = slice(n_calibration_weeks, None)
    return float(100.0 * np.mean(np.abs(forecast[held] - actual[held]) / actual[held]))


def conditional_expectations(
    frequency: np.ndarray,
    actual: np.ndarray,
    forecast: np.ndarray,
    max_frequency: int = MAX_FREQUENCY,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean holdout transactions, actual and forecast, by calibration frequency.

    Customers are binned by calibration frequency ``0, 1, ..., max_frequency - 1`` and
    ``max_frequency`` or more (the last bin).

    Returns:
        ``(customers, actual_mean, forecast_mean)`` per bin, each ``(max_frequency + 1,)``;
        the means are NaN in empty bins.
    """
    bins = np.minimum(np.asarray(frequency), max_frequency).astype(np.int64)
    size = max_frequency + 1
    customers = np.bincount(bins, minlength=size).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        actual_mean = np.bincount(bins, weights=actual, minlength=size) / customers
        forecast_mean = np.bincount(bins, weights=forecast, minlength=size) / customers
    return customers, actual_mean, forecast_mean


def count_shares(counts: np.ndarray, max_count: int = MAX_COUNT) -> np.ndarray:
    """Share of counts equal to 0, 1, ..., ``max_count - 1`` and at least ``max_count``."""
    binned = np.minimum(np.asarray(counts).ravel(), max_count).astype(np.int64)
    return np.bincount(binned, minlength=max_count + 1) / binned.shape[0]


def forecast_shares(
    p_holdout: np.ndarray | None = None,
    draws: np.ndarray | None = None,
    max_count: int = MAX_COUNT,
) -> np.ndarray | None:
    """The forecast share of customers with 0, 1, 2, 3+ holdout transactions.

    Args:
        p_holdout: ``(n, K)`` P(X = k), k < K, with ``K >= max_count``; the customers' mean.
        draws: ``(n_draws, n)`` simulated counts, used if ``p_holdout`` is None; the share of
            all draws.
        max_count: The open last bin.

    Returns:
        ``(max_count + 1,)`` shares, or None if neither input is given.
    """
    if p_holdout is not None:
        p = np.asarray(p_holdout, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] < max_count:
            raise ValueError(f"p_holdout must be (n, K) with K >= {max_count}, got {p.shape}")
        head = p[:, :max_count].mean(axis=0)
        return np.r_[head, 1.0 - head.sum()]
    if draws is not None:
        return count_shares(draws, max_count)
    return None


def holdout_report(data: CalibrationHoldout, forecast: HoldoutForecast) -> HoldoutReport:
    """Compare a forecast with the actual holdout of a :class:`CalibrationHoldout`.

    Raises:
        ValueError: If the forecast's arrays do not match the cohort or the weekly curve.
    """
    expected = np.asarray(forecast.expected, dtype=np.float64)
    if expected.shape != (data.n_customers,):
        raise ValueError(f"expected must be ({data.n_customers},), got {expected.shape}")
    actual_total = float(data.holdout.sum())
    mape = None
    if forecast.weekly is not None:
        mape = tracking_mape(data.weekly_repeats, forecast.weekly, data.n_calibration_weeks)
    customers, actual_mean, forecast_mean = conditional_expectations(
        data.frequency, data.holdout, expected
    )
    filled = customers > 0
    return HoldoutReport(
        actual_total=actual_total,
        forecast_total=float(expected.sum()),
        relative_error=float(expected.sum() / actual_total - 1.0),
        tracking_mape=mape,
        frequency_bins=(*(str(b) for b in range(MAX_FREQUENCY)), f"{MAX_FREQUENCY}+"),
        bin_customers=customers,
        conditional_actual=actual_mean,
        conditional_forecast=forecast_mean,
        conditional_mae=float(np.mean(np.abs(forecast_mean - actual_mean)[filled])),
        correlation=_pearson(expected, data.holdout),
        actual_shares=count_shares(data.holdout),
        forecast_shares=forecast_shares(forecast.p_holdout, forecast.draws),
        weekly_kind=forecast.weekly_kind,
    )


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN if either vector is constant."""
    a, b = a - a.mean(), b - b.mean()
    scale = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b / scale) if scale > 0 else float("nan")
