"""CDNOW calibration/holdout: BG/NBD, Pareto/NBD and any recenv forecaster, side by side.

Protocol (Fader, Hardie and Lee 2005; the benchmark of issue 13, section 3):

1. The full CDNOW cohort (23,570 customers, first purchase in 1997 Q1) is summarised with
   :func:`rec_env.fitting.holdout.calibration_holdout`: calibration to 1997-09-30 (calendar
   weeks 1-39 from 1997-01-01), holdout to 1998-06-30 (weeks 40-78), in two units: weekly
   purchase occasions (weeks counted from each customer's first purchase) and purchase days.
   Times are in weeks in both.
2. Anchors: BG/NBD and Pareto/NBD are fitted by ``lifetimes`` (maximum likelihood, no penalty)
   on the same ``(x, t_x, T)``, in their own virtualenv ``benchmarks/.venv-btyd`` (created on
   first use with the pinned wheels :data:`PINS`) by ``_cdnow_anchor_models.py``. They give
   each customer's conditional expected holdout count, P(alive) and P(X = 0, 1, 2), and the
   cohort's unconditional expected tracking curve.
3. Contenders: every entry of :data:`FORECASTERS` (``name -> forecaster``, a forecaster maps
   the :class:`~rec_env.fitting.holdout.CalibrationHoldout` to a
   :class:`~rec_env.fitting.holdout.HoldoutForecast`), computed in this environment. The
   shipped ones are the naive baseline (calibration rate x holdout length) and recenv's
   Pareto/NBD and BG/NBD with the first purchase's value as a time-invariant covariate
   (:mod:`rec_env.fitting.lifetime`); more are added with ``--forecaster NAME=module:function``
   or by calling :func:`main` with ``forecasters=``.
4. Every forecast is scored by :func:`rec_env.fitting.holdout.holdout_report`: holdout total
   and its error, tracking-curve MAPE over the holdout weeks, conditional expectations by
   calibration frequency 0-7+ and their MAE, per-customer correlation, and the share of
   customers with 0, 1, 2, 3+ holdout transactions.

Run from the repository root (the first run installs the anchors, ~30 s)::

    python benchmarks/cdnow_holdout.py --json runs/cdnow_holdout.json --png runs/cdnow.png
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.datasets.cdnow import load_cdnow
from rec_env.fitting.holdout import (
    CalibrationHoldout,
    HoldoutForecast,
    HoldoutReport,
    calibration_holdout,
    holdout_report,
    tracking_mape,
)
from rec_env.fitting.lifetime import forecast_bg_nbd_covariates, forecast_pareto_nbd_covariates
from rec_env.fitting.purchase_log import LogFormat, PurchaseLog, read_purchase_log

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv-btyd"
WORKER = ROOT / "_cdnow_anchor_models.py"
PINS = (
    "lifetimes==0.11.3",
    "numpy==1.26.4",
    "scipy==1.11.4",
    "pandas==1.5.3",
    "autograd==1.6.2",
    "dill==0.3.8",
)
"""Anchor versions (``lifetimes`` 0.11.3 predates pandas 2); wheels only."""

CALIBRATION_END = "1997-09-30"
HOLDOUT_END = "1998-06-30"
UNIT_LABELS = {"weeks": "weekly purchase occasions", "days": "purchase days"}
ANCHORS = {"bgnbd": "BG/NBD", "paretonbd": "Pareto/NBD"}

Forecaster = Callable[[CalibrationHoldout], HoldoutForecast | None]
"""Maps the calibration summary (with its holdout hidden from use) to a holdout forecast."""


def naive_forecast(data: CalibrationHoldout) -> HoldoutForecast:
    """Each customer repeats at their calibration rate ``x / T`` through the holdout.

    The expected count is ``x / T * holdout_weeks``; the distribution is Poisson with that mean;
    the tracking curve is the actual calibration weeks followed by the summed rates.
    """
    rate = np.divide(data.frequency, data.T, out=np.zeros(data.n_customers), where=data.T > 0)
    expected = rate * data.holdout_weeks
    weekly = data.weekly_repeats.copy()
    weekly[data.n_calibration_weeks :] = rate.sum()
    counts = np.arange(3)
    factorial = np.array([1.0, 1.0, 2.0])
    p_holdout = np.exp(-expected)[:, None] * expected[:, None] ** counts / factorial
    return HoldoutForecast(expected, weekly, "conditional", p_holdout=p_holdout)


FORECASTERS: dict[str, Forecaster] = {
    "naive (rate x 39 wk)": naive_forecast,
    "recenv Pareto/NBD + first value": forecast_pareto_nbd_covariates,
    "recenv BG/NBD + first value": forecast_bg_nbd_covariates,
}
"""Contenders computed in this environment (:mod:`rec_env.fitting.lifetime`)."""


def twins_forecaster(log: PurchaseLog, seed: int, draws: int = 10) -> Forecaster:
    """The twins of recenv in the simulator (:mod:`rec_env.fitting.twins`), in either unit.

    Each customer's twins are drawn from their Pareto/NBD posterior at the calibration end and
    simulated forward, sending nothing, for the 39 holdout weeks: buying at most once a week
    for weekly occasions, at day resolution (``purchase_days``) for purchase days.
    """

    def forecast(data: CalibrationHoldout) -> HoldoutForecast | None:
        from rec_env.fitting.twins import fit_twins, simulate_twins

        twins = fit_twins(log, CALIBRATION_END, population="cdnow", unit=data.unit)
        if not np.array_equal(twins.customer_ids, data.customer_ids):
            raise ValueError("the twins' customers are not the summary's")
        bought = simulate_twins(twins, data.holdout_weeks, seed=seed, draws=draws)
        counts = bought.sum(axis=2)  # (draws, n)
        weekly = data.weekly_repeats.astype(np.float64).copy()
        holdout = bought.sum(axis=1).mean(axis=0)
        weekly[data.n_calibration_weeks : data.n_calibration_weeks + holdout.size] = holdout
        return HoldoutForecast(counts.mean(axis=0), weekly, "conditional", draws=counts)

    return forecast


def _peer_venv() -> Any:
    """``benchmarks/_peer_venv.py``, also when this file is imported from elsewhere (tests)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("_peer_venv")


def ensure_venv(say: Callable[[str], None]) -> Path:
    """The anchors' python: ``benchmarks/.venv-btyd`` with :data:`PINS`."""
    return _peer_venv().ensure_venv(VENV, PINS, say)


def run_anchors(
    data: CalibrationHoldout, n_draws: int, seed: int
) -> dict[str, tuple[HoldoutForecast, dict[str, Any]]]:
    """Fit BG/NBD and Pareto/NBD in their virtualenv; ``(forecast, details)`` per anchor."""
    python = ensure_venv(print)
    ages, sizes = data.tracking_ages()
    n_cal = data.n_calibration_weeks
    week_end = data.start_day + 7 * np.arange(n_cal + 1, data.n_weeks + 1) - 1
    horizons = (week_end - data.calibration_end_day) / 7.0
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            inputs,
            frequency=data.frequency,
            recency=data.recency,
            T=data.T,
            holdout_weeks=data.holdout_weeks,
            curve_ages=ages,
            curve_sizes=sizes,
            horizons=horizons,
            n_draws=n_draws,
            seed=seed,
        )
        subprocess.run(
            [str(python), "-W", "ignore", str(WORKER), "fit", str(inputs), str(outputs)],
            check=True,
        )
        with np.load(outputs) as saved:
            out = {key: saved[key] for key in saved.files}
    anchors: dict[str, tuple[HoldoutForecast, dict[str, Any]]] = {}
    for key in ANCHORS:
        cumulative = out[f"{key}:unconditional_cumulative"]
        conditional = data.weekly_repeats.copy()
        conditional[n_cal:] = np.diff(out[f"{key}:conditional_cumulative"], prepend=0.0)
        forecast = HoldoutForecast(
            expected=out[f"{key}:expected"],
            weekly=np.diff(cumulative, prepend=0.0),
            weekly_kind="unconditional",
            p_holdout=out[f"{key}:p_holdout"],
        )
        simulated = out[f"{key}:p_holdout_simulated"]
        details = {
            "params": dict(
                zip(out[f"{key}:param_names"].tolist(), out[f"{key}:params"].tolist(), strict=True)
            ),
            "log_likelihood": float(out[f"{key}:log_likelihood"]),
            "fit_seconds": float(out[f"{key}:seconds"]),
            "p_alive_mean": float(out[f"{key}:p_alive"].mean()),
            "tracking_mape_conditional": tracking_mape(data.weekly_repeats, conditional, n_cal),
            "weekly_conditional": conditional.tolist(),
            "check_simulated_mean_per_customer": float(out[f"{key}:simulated_mean"]),
            "check_expected_mean_per_customer": float(out[f"{key}:expected"].mean()),
            "check_simulated_p012": simulated.mean(axis=0).tolist(),
            "versions": out["versions"].tolist(),
        }
        anchors[ANCHORS[key]] = (forecast, details)
    return anchors


def textbook_sample() -> PurchaseLog:
    """The 1/10 sample of the cohort (2,357 customers) that ``lifetimes`` ships.

    It is the data of the published fits (Fader, Hardie and Lee 2005): on purchase days,
    BG/NBD r = 0.243, alpha = 4.414, a = 0.793, b = 2.426 (log-likelihood -9,582.4), and
    1,882 holdout repeat transactions.
    """
    python = ensure_venv(print)
    where = subprocess.run(
        [str(python), "-c", "import lifetimes, os; print(os.path.dirname(lifetimes.__file__))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    layout = LogFormat(
        customer_column="sample_id",
        date_column="date",
        amount_column="dollar_value",
        date_format="%Y%m%d",
        separator="whitespace",
        column_names=("customer_id", "sample_id", "date", "number_of_cds", "dollar_value"),
    )
    return read_purchase_log(Path(where) / "datasets" / "CDNOW_sample.txt", layout)


def evaluate_unit(
    log: PurchaseLog, unit: str, forecasters: dict[str, Forecaster], n_draws: int, seed: int
) -> dict[str, Any]:
    """All contenders on one unit: reports, details and curves, JSON-ready."""
    data = calibration_holdout(log, CALIBRATION_END, HOLDOUT_END, unit)  # type: ignore[arg-type]
    forecasts: dict[str, HoldoutForecast] = {}
    details: dict[str, dict[str, Any]] = {}
    for name, (forecast, info) in run_anchors(data, n_draws, seed).items():
        forecasts[name], details[name] = forecast, info
    for name, forecaster in forecasters.items():
        start = time.perf_counter()
        forecast = forecaster(data)
        if forecast is None:  # not in this unit
            continue
        forecasts[name] = forecast
        details[name] = {"forecast_seconds": time.perf_counter() - start}
    reports = {name: holdout_report(data, forecast) for name, forecast in forecasts.items()}
    return {
        "unit": unit,
        "label": UNIT_LABELS[unit],
        "n_customers": data.n_customers,
        "calibration_repeats": float(data.frequency.sum()),
        "holdout_repeats": float(data.holdout.sum()),
        "n_calibration_weeks": data.n_calibration_weeks,
        "weekly_actual": data.weekly_repeats.tolist(),
        "reports": {name: report.as_dict() for name, report in reports.items()},
        "weekly_forecast": {
            name: None if f.weekly is None else np.asarray(f.weekly).tolist()
            for name, f in forecasts.items()
        },
        "details": details,
        "_reports": reports,
    }


def _percent(value: float | None, digits: int = 1) -> str:
    return "" if value is None or not np.isfinite(value) else f"{100 * value:.{digits}f} %"


def _conditional_mape(report: HoldoutReport, details: dict[str, Any]) -> str:
    """Tracking MAPE of the curve conditional on the calibration, if the contender has one."""
    if "tracking_mape_conditional" in details:
        return f"{details['tracking_mape_conditional']:.1f} %"
    if report.tracking_mape is not None and report.weekly_kind == "conditional":
        return f"{report.tracking_mape:.1f} %"
    return ""


def format_table(result: dict[str, Any]) -> str:
    """The issue's table for one unit, plus conditional expectations by frequency."""
    reports: dict[str, HoldoutReport] = result["_reports"]
    names = list(reports)
    first = reports[names[0]]
    width = max(14, *(len(n) + 2 for n in names))
    rows: list[tuple[str, list[str]]] = [
        (
            "holdout repeat transactions (weeks 40-78)",
            [f"{first.actual_total:,.0f}"]
            + [
                f"{r.forecast_total:,.0f} ({100 * r.relative_error:+.1f} %)"
                for r in reports.values()
            ],
        ),
        (
            "tracking MAPE, holdout weeks (curve kind)",
            [""]
            + [
                "" if r.tracking_mape is None else f"{r.tracking_mape:.1f} % ({r.weekly_kind[:6]}.)"
                for r in reports.values()
            ],
        ),
        (
            "tracking MAPE, curve conditional on calib.",
            [""] + [_conditional_mape(r, result["details"][n]) for n, r in reports.items()],
        ),
        (
            "cond. expectation MAE, x = 0..7+",
            [""] + [f"{r.conditional_mae:.3f}" for r in reports.values()],
        ),
        ("per-customer correlation", [""] + [f"{r.correlation:.3f}" for r in reports.values()]),
    ]
    for k, label in enumerate(("0", "1", "2", "3+")):
        rows.append(
            (
                f"share of customers with {label} in holdout",
                [_percent(first.actual_shares[k])]
                + [
                    "" if r.forecast_shares is None else _percent(r.forecast_shares[k])
                    for r in reports.values()
                ],
            )
        )
    head = f"{'':44}" + f"{'actual':>{width}}" + "".join(f"{n:>{width}}" for n in names)
    title = (
        f"CDNOW holdout, {result['label']} ({result['n_customers']:,} customers; calibration "
        f"weeks 1-{result['n_calibration_weeks']} to {CALIBRATION_END}, holdout to {HOLDOUT_END})"
    )
    lines = [title, head]
    lines += [f"{label:44}" + "".join(f"{c:>{width}}" for c in cells) for label, cells in rows]
    lines.append("mean holdout transactions per customer by calibration frequency x:")
    lines.append(f"{'x':>6}{'n':>8}{'actual':>9}" + "".join(f"{n:>{width}}" for n in names))
    for b, label in enumerate(first.frequency_bins):
        lines.append(
            f"{label:>6}{first.bin_customers[b]:>8.0f}{first.conditional_actual[b]:>9.3f}"
            + "".join(f"{r.conditional_forecast[b]:>{width}.3f}" for r in reports.values())
        )
    return "\n".join(lines)


def plot_tracking(results: Sequence[dict[str, Any]], path: Path) -> None:
    """Cumulative and weekly repeat transactions, actual and forecast, one column per unit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(6.5 * len(results), 8), squeeze=False)
    for column, result in enumerate(results):
        actual = np.asarray(result["weekly_actual"])
        weeks = np.arange(1, actual.shape[0] + 1)
        cumulative, weekly = axes[0, column], axes[1, column]
        cumulative.plot(weeks, np.cumsum(actual), color="black", lw=2, label="actual")
        weekly.plot(weeks, actual, color="black", lw=2, label="actual")
        for name, curve in result["weekly_forecast"].items():
            if curve is None:
                continue
            kind = result["reports"][name]["weekly_kind"]
            style = "--" if kind == "conditional" else "-"
            label = f"{name} ({kind})"
            cumulative.plot(weeks, np.cumsum(curve), style, label=label)
            weekly.plot(weeks, curve, style, label=label)
        for axis in (cumulative, weekly):
            axis.axvline(result["n_calibration_weeks"] + 0.5, color="grey", ls=":", lw=1)
            axis.set_xlabel("calendar week since 1997-01-01 (calibration 1-39, holdout 40-78)")
            axis.legend(fontsize=8)
        cumulative.set_ylabel(f"cumulative repeat {result['label']}")
        weekly.set_ylabel(f"repeat {result['label']} per week")
        cumulative.set_title(f"CDNOW cohort of {result['n_customers']:,}: {result['label']}")
    fig.suptitle("CDNOW calibration/holdout tracking: actual vs forecast")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _load_forecaster(spec: str) -> tuple[str, Forecaster]:
    """``NAME=module:function`` to ``(NAME, function)``."""
    name, _, target = spec.partition("=")
    module, _, function = target.partition(":")
    if not (name and module and function):
        raise SystemExit(f"--forecaster wants NAME=module:function, got {spec!r}")
    return name, getattr(importlib.import_module(module), function)


def main(
    argv: Sequence[str] | None = None, forecasters: dict[str, Forecaster] | None = None
) -> dict[str, Any]:
    """Run the benchmark; ``forecasters`` replaces :data:`FORECASTERS` if given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--unit", choices=("weeks", "days", "both"), default="both")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--png", type=Path, help="write the tracking plot here")
    parser.add_argument(
        "--forecaster",
        action="append",
        default=[],
        help="add a contender NAME=module:function (a Forecaster); repeatable",
    )
    parser.add_argument("--draws", type=int, default=400, help="posterior draws per customer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data",
        choices=("cohort", "sample"),
        default="cohort",
        help="the full cohort (shipped), or lifetimes' 1/10 sample of the published fits",
    )
    parser.add_argument(
        "--no-twins", action="store_true", help="leave out the twins' simulation (about 40 s)"
    )
    args = parser.parse_args(argv)
    contenders = dict(FORECASTERS if forecasters is None else forecasters)
    contenders.update(_load_forecaster(spec) for spec in args.forecaster)
    units = ("weeks", "days") if args.unit == "both" else (args.unit,)
    start = time.perf_counter()
    log = load_cdnow() if args.data == "cohort" else textbook_sample()
    if args.data == "cohort" and not args.no_twins:
        contenders["recenv twins in the simulator"] = twins_forecaster(log, args.seed)
    results = [evaluate_unit(log, unit, contenders, args.draws, args.seed) for unit in units]
    seconds = time.perf_counter() - start
    for result in results:
        print(format_table(result), end="\n\n")
    versions = ", ".join(results[0]["details"]["BG/NBD"]["versions"])
    print(f"run time {seconds:.1f} s; anchors: {versions}")
    for result in results:
        for name in ANCHORS.values():
            info = result["details"][name]
            params = ", ".join(f"{k} = {v:.4g}" for k, v in info["params"].items())
            print(f"{result['unit']:5} {name:10} {params}; LL {info['log_likelihood']:.1f}")
    output = {
        "command": " ".join(["python", "benchmarks/cdnow_holdout.py", *(argv or sys.argv[1:])]),
        "calibration_end": CALIBRATION_END,
        "holdout_end": HOLDOUT_END,
        "seconds": seconds,
        "units": {r["unit"]: {k: v for k, v in r.items() if k != "_reports"} for r in results},
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(output, indent=1) + "\n")
    if args.png:
        plot_tracking(results, args.png)
    return output


if __name__ == "__main__":
    main()
