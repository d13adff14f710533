"""``recenv profiles forecast``: each customer's purchases ahead, by their model and their twins.

Fits :func:`rec_env.fitting.twins.fit_twins` on a purchase log up to ``--as-of`` (Pareto/NBD
with the first purchase's value, gamma-gamma order values), writes every customer's P(alive),
expected purchases over ``--weeks`` and their twins' simulated mean, and, when the log goes on
past ``--as-of``, scores both against what the customers actually did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from rec_env.cli._errors import check_count, fail, reporting_bad_input
from rec_env.cli._outputs import FORCE_HELP, check_output_file, staged_file, write_columns

__all__ = ["forecast_command"]

_SHIPPED = ("cdnow",)


def forecast_command(
    log: Annotated[
        str, typer.Argument(help="Purchase log (CSV: customer_id,date,amount), or `cdnow`.")
    ],
    as_of: Annotated[str, typer.Option(help="Last day of the history (YYYY-MM-DD).")],
    out: Annotated[Path, typer.Option(help="Per-customer forecast (CSV).")] = Path("forecast.csv"),
    weeks: Annotated[int, typer.Option(help="Weeks to forecast.")] = 39,
    unit: Annotated[
        str, typer.Option(help="weeks (weekly purchase occasions) or days (purchase days).")
    ] = "weeks",
    population: Annotated[
        str, typer.Option(help="Population for what a purchase log cannot identify.")
    ] = "cdnow",
    draws: Annotated[int, typer.Option(help="Twins simulated per customer (0: none).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the twins' simulation.")] = 0,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
) -> None:
    """Forecast each customer's purchases with their fitted model and their simulated twins.

    Prints the totals and, where the log continues after --as-of, the actual total, the
    per-customer correlation and the share with no purchase; writes one row per customer.
    """
    from rec_env.fitting.builder import parse_day
    from rec_env.fitting.purchase_log import read_purchase_log
    from rec_env.fitting.twins import fit_twins, simulate_twins

    check_count("--weeks", weeks, low=1, high=520)
    check_count("--draws", draws, low=0, high=1000)
    if unit not in ("weeks", "days"):
        fail(f"--unit: expected weeks or days, got {unit!r}")
    check_output_file(out, force=force, suffixes={".csv"})
    with reporting_bad_input():
        day = parse_day(as_of)
        if log in _SHIPPED and not Path(log).exists():
            from rec_env.datasets.cdnow import load_cdnow

            purchases = load_cdnow()
        else:
            purchases = read_purchase_log(log)
        twins = fit_twins(purchases, day, population=population, unit=unit)
    expected = twins.lifetime.expected_purchases(float(weeks))
    simulated = None
    if draws:
        bought = simulate_twins(twins, weeks, seed=seed, draws=draws)
        simulated = bought.sum(axis=2).mean(axis=0)
    actual = _actual(purchases, twins.customer_ids, day, weeks, unit)
    columns: dict[str, np.ndarray] = {
        "customer_id": twins.customer_ids,
        "p_alive": twins.p_alive(),
        "expected_purchases": expected,
        "order_value": twins.order_value,
    }
    if simulated is not None:
        columns["twins_purchases"] = simulated
    if actual is not None:
        columns["actual_purchases"] = actual
    with staged_file(out) as staged:
        write_columns(columns, staged, ".csv")
    what = "weekly purchase occasions" if unit == "weeks" else "purchase days"
    typer.echo(f"{twins.n:,} customers as of {as_of}; {what} over the next {weeks} weeks:")
    typer.echo(f"  model (Pareto/NBD + first value): {expected.sum():,.0f}")
    if simulated is not None:
        typer.echo(f"  twins in the simulator ({draws} each): {simulated.sum():,.0f}")
    if actual is not None:
        typer.echo(
            f"  actual: {actual.sum():,.0f}; correlation with the model "
            f"{np.corrcoef(expected, actual)[0, 1]:.3f}; no purchase: {np.mean(actual == 0):.1%}"
        )
    typer.echo(f"wrote {out}")


def _actual(
    purchases: object, ids: np.ndarray, day: int, weeks: int, unit: str
) -> np.ndarray | None:
    """Each customer's repeat purchases in the forecast weeks (None if the log ends by ``day``).

    Counted as the CDNOW benchmark counts them (:func:`~rec_env.fitting.holdout.
    calibration_holdout`).
    """
    from rec_env.fitting.holdout import calibration_holdout

    if int(np.max(purchases.day)) <= day:  # type: ignore[attr-defined]
        return None
    summary = calibration_holdout(purchases, day, day + 7 * weeks, unit=unit)  # type: ignore[arg-type]
    if not np.array_equal(summary.customer_ids, ids):
        return None
    return np.asarray(summary.holdout, dtype=np.float64)
