"""The analysis of a real A/B test from a table of one row per customer.

The table (a CSV or Parquet file, such as the joined decision log) holds each customer's arm,
the metric (profit, spend …), optionally a 0/1 conversion column, and optionally pre-period
covariates for CUPED. :func:`read_test` reads and checks it; :func:`analyze_test` reports, with
the statistics of :mod:`~rec_env.agents.evaluation.ab_stats` that simulated tests use too:

* each arm's size, mean metric and conversion with 95 % CIs;
* the sample-ratio-mismatch check of the arm sizes against the planned split;
* the lift of each treatment arm over the control: Welch's t-test on the metric, the
  two-proportion z-test on conversion, and, with covariates, the CUPED-adjusted lift on the
  metric (θ estimated on all arms pooled) and the variance reduction it achieved;
* the power each test had for the effect observed, and its minimum detectable effect at 80 %.

Conversion is the conversion column when one is given, otherwise ``metric > 0`` (a customer who
spent or earned anything), and the report names which. The p-values are not adjusted for
several treatment arms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.agents.evaluation.ab_stats import (
    Lift,
    SampleRatioCheck,
    cuped_adjust,
    mean_ci,
    mean_difference_se,
    mean_mde,
    mean_power,
    proportion_ci,
    proportion_lift,
    proportion_mde,
    proportion_power,
    sample_ratio_check,
    welch_lift,
)
from rec_env.agents.evaluation.evaluate import KPI
from rec_env.datasets.encoding import Location, as_numbers, as_texts
from rec_env.datasets.table_io import check_columns, read_columns, read_header
from rec_env.errors import ConfigError

__all__ = [
    "DESIGN_POWER",
    "ABAnalysis",
    "ArmSummary",
    "Comparison",
    "ResultsTable",
    "analyze_test",
    "default_control",
    "read_test",
]

DESIGN_POWER = 0.8
"""Power at which minimum detectable effects are reported."""

_CONTROL_NAMES = ("control", "holdout")


@dataclass(frozen=True)
class ResultsTable:
    """The columns of a real test, checked.

    Attributes:
        source: Where the rows come from (the file), for messages.
        arms: ``(n,)`` arm of each customer (text).
        metric: ``(n,)`` the metric, finite.
        metric_name: The metric column.
        converted: ``(n,)`` bool, whether each customer converted.
        conversion_name: The conversion column, or ``"<metric> > 0"`` when derived.
        covariates: Pre-period covariate column → ``(n,)`` values, finite.
    """

    source: str
    arms: np.ndarray
    metric: np.ndarray
    metric_name: str
    converted: np.ndarray
    conversion_name: str
    covariates: dict[str, np.ndarray]


@dataclass(frozen=True)
class ArmSummary:
    """One arm's size and KPIs.

    Attributes:
        name: The arm.
        customers: Its rows.
        share: Its share of all rows.
        expected_share: Its planned share.
        metric: Mean metric and 95 % CI half-width.
        conversion: Conversion rate and 95 % CI half-width.
    """

    name: str
    customers: int
    share: float
    expected_share: float
    metric: KPI
    conversion: KPI


@dataclass(frozen=True)
class Comparison:
    """A treatment arm against the control.

    Attributes:
        arm: The treatment arm.
        metric: Lift in the metric (Welch t-test).
        conversion: Lift in conversion (two-proportion z-test).
        cuped: Lift in the CUPED-adjusted metric (Welch t-test), or ``None`` without covariates.
        cuped_variance_reduction: ``1 - SE²(CUPED lift) / SE²(lift)``, or ``None``.
        metric_power: Power of the metric's test for the observed difference.
        metric_mde: Smallest difference of the metric detected with 80 % power.
        cuped_power: ``metric_power`` with the CUPED standard error, or ``None``.
        cuped_mde: ``metric_mde`` with the CUPED standard error, or ``None``.
        conversion_power: Power of the z-test for the observed conversion rates.
        conversion_mde: Smallest rise in conversion detected with 80 % power (NaN if none).
    """

    arm: str
    metric: Lift
    conversion: Lift
    cuped: Lift | None
    cuped_variance_reduction: float | None
    metric_power: float
    metric_mde: float
    cuped_power: float | None
    cuped_mde: float | None
    conversion_power: float
    conversion_mde: float


@dataclass(frozen=True)
class ABAnalysis:
    """Everything :func:`analyze_test` reports.

    Attributes:
        source: The file analysed.
        metric_name: The metric column.
        conversion_name: The conversion column, or ``"<metric> > 0"``.
        control: The control arm.
        arms: Every arm, in sorted order of names.
        sample_ratio: The sample-ratio-mismatch check.
        comparisons: Each treatment arm against the control, in sorted order.
        covariates: The CUPED covariates (empty for none).
        theta: Their pooled coefficients.
        variance_reduction: Share of the metric's pooled variance CUPED removed.
        alpha: Significance level of the power figures.
    """

    source: str
    metric_name: str
    conversion_name: str
    control: str
    arms: tuple[ArmSummary, ...]
    sample_ratio: SampleRatioCheck
    comparisons: tuple[Comparison, ...]
    covariates: tuple[str, ...]
    theta: tuple[float, ...]
    variance_reduction: float | None
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (NaN and infinities become ``None``)."""
        arms = [
            {
                **{k: v for k, v in asdict(arm).items() if k not in ("metric", "conversion")},
                "metric": {"mean": arm.metric.mean, "ci95": arm.metric.ci},
                "conversion": {"mean": arm.conversion.mean, "ci95": arm.conversion.ci},
            }
            for arm in self.arms
        ]
        payload = {
            "source": self.source,
            "metric": self.metric_name,
            "conversion": self.conversion_name,
            "control": self.control,
            "arms": arms,
            "sample_ratio": asdict(self.sample_ratio),
            "comparisons": [asdict(c) for c in self.comparisons],
            "cuped": {
                "covariates": list(self.covariates),
                "theta": list(self.theta),
                "variance_reduction": self.variance_reduction,
            },
            "alpha": self.alpha,
            "mde_power": DESIGN_POWER,
        }
        return _finite(payload)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinite floats replaced by ``None`` (strict JSON has neither)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _complete(values: np.ndarray, column: str, where: Location) -> np.ndarray:
    """``values`` as finite float64; a missing cell is an error naming its row."""
    numbers = as_numbers(values, column, where)
    missing = np.isnan(numbers)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ConfigError(
            f"{where.cell(row, column)}: the value is missing; every customer needs one "
            "(fill unrewarded customers with the default reward, e.g. 0)"
        )
    return numbers


def read_test(
    path: str | Path,
    arm: str,
    metric: str,
    conversion: str | None = None,
    covariates: Sequence[str] = (),
) -> ResultsTable:
    """Read and check the columns of a real test from a CSV or Parquet file.

    Args:
        path: The file: ``.csv``, ``.csv.gz`` or ``.parquet``, one row per customer.
        arm: Column holding each customer's arm.
        metric: Numeric column of the metric to compare.
        conversion: 0/1 column of conversions; ``None`` derives conversion as ``metric > 0``.
        covariates: Numeric pre-period columns for CUPED.

    Raises:
        ConfigError: Naming the file, and the row and column where it applies, if the file
            cannot be read, a column is missing, a metric, conversion or covariate cell is not
            a number or is missing, a conversion is not 0 or 1, or an arm is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    roles = {arm: "arm", metric: "metric", **dict.fromkeys(covariates, "CUPED covariate")}
    if conversion:
        roles[conversion] = "conversion column"
    header = read_header(path)
    for name, role in roles.items():
        check_columns(path, header, [name], role)
    columns, where = read_columns(path, list(roles))
    labels, missing = as_texts(columns[arm])
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ConfigError(f"{where.cell(row, arm)}: the arm is missing")
    values = _complete(columns[metric], metric, where)
    if conversion:
        flags = _complete(columns[conversion], conversion, where)
        wrong = (flags != 0) & (flags != 1)
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            raise ConfigError(
                f"{where.cell(row, conversion)}: {flags[row]:g} is not a conversion (0 or 1)"
            )
        converted, conversion_name = flags == 1, conversion
    else:
        converted, conversion_name = values > 0, f"{metric} > 0"
    extra = {name: _complete(columns[name], name, where) for name in dict.fromkeys(covariates)}
    return ResultsTable(str(path), labels, values, metric, converted, conversion_name, extra)


def default_control(arms: Sequence[str]) -> str:
    """The arm named like a control or holdout if exactly one is, else the first in sorted order."""
    ordered = sorted(arms)
    named = [a for a in ordered if any(word in a.lower() for word in _CONTROL_NAMES)]
    return named[0] if len(named) == 1 else ordered[0]


def _expected_shares(
    names: Sequence[str], split: Sequence[float] | Mapping[str, float] | None
) -> list[float]:
    """Planned share of each arm in ``names`` (sorted), normalised to sum to 1.

    Raises:
        ValueError: If the split does not give one positive share per arm.
    """
    if split is None:
        return [1 / len(names)] * len(names)
    if isinstance(split, Mapping):
        unknown = sorted(set(split) - set(names))
        absent = [n for n in names if n not in split]
        if unknown or absent:
            raise ValueError(
                f"--expected-split names arms {sorted(split)}, the data has {list(names)}"
            )
        shares = [float(split[n]) for n in names]
    else:
        shares = [float(s) for s in split]
        if len(shares) != len(names):
            raise ValueError(
                f"--expected-split gives {len(shares)} shares for {len(names)} arms "
                f"({', '.join(names)}, in this order)"
            )
    if not all(np.isfinite(s) and s > 0 for s in shares):
        raise ValueError(f"--expected-split shares must be positive numbers, got {shares}")
    total = sum(shares)
    return [s / total for s in shares]


def _compare(
    table: ResultsTable,
    control: np.ndarray,
    treated: np.ndarray,
    name: str,
    adjusted: np.ndarray | None,
    alpha: float,
) -> Comparison:
    """One treatment arm (rows ``treated``) against the control (rows ``control``)."""
    metric_c, metric_t = table.metric[control], table.metric[treated]
    lift = welch_lift(metric_c, metric_t, table.metric_name)
    se = mean_difference_se(metric_c, metric_t)
    n_c, n_t = int(control.sum()), int(treated.sum())
    won_c, won_t = int(table.converted[control].sum()), int(table.converted[treated].sum())
    conversion = proportion_lift(won_c, n_c, won_t, n_t, table.conversion_name)
    cuped = reduction = cuped_power = cuped_mde = None
    if adjusted is not None:
        cuped = welch_lift(adjusted[control], adjusted[treated], f"{table.metric_name} (CUPED)")
        cuped_se = mean_difference_se(adjusted[control], adjusted[treated])
        reduction = 1.0 - (cuped_se / se) ** 2 if se > 0 else 0.0
        cuped_power = mean_power(cuped.difference, cuped_se, alpha)
        cuped_mde = mean_mde(cuped_se, alpha, DESIGN_POWER)
    return Comparison(
        arm=name,
        metric=lift,
        conversion=conversion,
        cuped=cuped,
        cuped_variance_reduction=reduction,
        metric_power=mean_power(lift.difference, se, alpha),
        metric_mde=mean_mde(se, alpha, DESIGN_POWER),
        cuped_power=cuped_power,
        cuped_mde=cuped_mde,
        conversion_power=proportion_power(conversion.a, conversion.b, n_c, n_t, alpha),
        conversion_mde=proportion_mde(conversion.a, n_c, n_t, alpha, DESIGN_POWER),
    )


def analyze_test(
    table: ResultsTable,
    control: str | None = None,
    expected_split: Sequence[float] | Mapping[str, float] | None = None,
    alpha: float = 0.05,
) -> ABAnalysis:
    """Analyse a real test: arms, sample ratio, lifts over the control, CUPED and power.

    Args:
        table: The test, from :func:`read_test`.
        control: The control arm; ``None`` picks :func:`default_control`.
        expected_split: Planned shares, in sorted order of arm names or as arm → share;
            ``None`` for equal shares.
        alpha: Significance level of the power and MDE figures (the CIs are 95 %).

    Raises:
        ValueError: With fewer than two arms, an arm of fewer than two customers, an unknown
            control, a split that does not fit the arms, or a constant covariate.
    """
    levels, counts = np.unique(table.arms, return_counts=True)
    names = [str(level) for level in levels]
    if len(names) < 2:
        raise ValueError(
            f"{table.source}: the arm column has {len(names)} arm ({', '.join(names)}); "
            "a test needs at least two"
        )
    small = [f"{n!r} ({c})" for n, c in zip(names, counts, strict=True) if c < 2]
    if small:
        raise ValueError(
            f"{table.source}: every arm needs at least two customers; {', '.join(small)} has fewer"
        )
    control = default_control(names) if control is None else control
    if control not in names:
        raise ValueError(f"--control {control!r} is not an arm; the arms are {', '.join(names)}")
    shares = _expected_shares(names, expected_split)
    total = int(counts.sum())
    arms = []
    for name, count, share in zip(names, counts, shares, strict=True):
        rows = table.arms == name
        arms.append(
            ArmSummary(
                name,
                int(count),
                int(count) / total,
                share,
                mean_ci(table.metric[rows]),
                proportion_ci(int(table.converted[rows].sum()), int(count)),
            )
        )
    adjusted, theta, reduction = None, (), None
    for name, values in table.covariates.items():
        if not values.std() > 0:
            raise ValueError(f"{table.source}: the CUPED covariate {name!r} is constant")
    if table.covariates:
        cuped = cuped_adjust(table.metric, np.column_stack(list(table.covariates.values())))
        adjusted, theta = cuped.adjusted, tuple(map(float, cuped.theta))
        reduction = cuped.variance_reduction
    control_rows = table.arms == control
    comparisons = tuple(
        _compare(table, control_rows, table.arms == name, name, adjusted, alpha)
        for name in names
        if name != control
    )
    return ABAnalysis(
        source=table.source,
        metric_name=table.metric_name,
        conversion_name=table.conversion_name,
        control=control,
        arms=tuple(arms),
        sample_ratio=sample_ratio_check(counts.tolist(), shares),
        comparisons=comparisons,
        covariates=tuple(table.covariates),
        theta=theta,
        variance_reduction=reduction,
        alpha=alpha,
    )
