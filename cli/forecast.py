"""``recenv profiles forecast`` and ``recenv profiles twins``: a retailer's own customers.

Both fit :func:`rec_env.fitting.twins.fit_twins` on a purchase log up to ``--as-of``
(Pareto/NBD with the first purchase's value, gamma-gamma order values). ``forecast`` writes
every customer's P(alive), expected purchases over ``--weeks`` and their twins' simulated mean,
and, when the log goes on past ``--as-of``, scores both against what the customers actually
did. ``twins`` saves the calibrated twins for ``recenv train --customers`` and ``recenv eval
--customers``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from rec_env.cli._errors import check_count, fail, reporting_bad_input
from rec_env.cli._outputs import FORCE_HELP, check_output_file, staged_file, write_columns

__all__ = ["forecast_command", "twins_command"]

_SHIPPED = ("cdnow",)

LogArgument = Annotated[
    str, typer.Argument(help="Purchase log (CSV: customer_id,date,amount), or `cdnow`.")
]
AsOfOption = Annotated[str, typer.Option(help="Last day of the history (YYYY-MM-DD).")]
UnitOption = Annotated[
    str, typer.Option(help="weeks (weekly purchase occasions) or days (purchase days).")
]
PopulationOption = Annotated[
    str, typer.Option(help="Population for what a purchase log cannot identify.")
]


def _fit(log: str, as_of: str, unit: str, population: str) -> tuple[Any, Any, int]:
    """The purchase log, its twins as of ``as_of`` and that day (errors: one line, exit 2)."""
    from rec_env.fitting.builder import parse_day
    from rec_env.fitting.purchase_log import read_purchase_log
    from rec_env.fitting.twins import fit_twins

    if unit not in ("weeks", "days"):
        fail(f"--unit: expected weeks or days, got {unit!r}")
    if Path(population).is_file():  # twins files keep it: where it is, whatever the cwd later
        population = str(Path(population).resolve())
    with reporting_bad_input():
        day = parse_day(as_of)
        if log in _SHIPPED and not Path(log).exists():
            from rec_env.datasets.cdnow import load_cdnow

            purchases = load_cdnow()
        else:
            purchases = read_purchase_log(log)
        return purchases, fit_twins(purchases, day, population=population, unit=unit), day


def forecast_command(
    log: LogArgument,
    as_of: AsOfOption,
    out: Annotated[Path, typer.Option(help="Per-customer forecast (CSV).")] = Path("forecast.csv"),
    weeks: Annotated[int, typer.Option(help="Weeks to forecast.")] = 39,
    unit: UnitOption = "weeks",
    population: PopulationOption = "cdnow",
    draws: Annotated[int, typer.Option(help="Twins simulated per customer (0: none).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the twins' simulation.")] = 0,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
) -> None:
    """Forecast each customer's purchases with their fitted model and their simulated twins.

    Prints the totals and, where the log continues after --as-of, the actual total, the
    per-customer correlation and the share with no purchase; writes one row per customer.
    """
    from rec_env.fitting.twins import simulate_twins

    check_count("--weeks", weeks, low=1, high=520)
    check_count("--draws", draws, low=0, high=1000)
    check_output_file(out, force=force, suffixes={".csv"})
    purchases, twins, day = _fit(log, as_of, unit, population)
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


def twins_command(
    log: LogArgument,
    as_of: AsOfOption,
    out: Annotated[Path, typer.Option(help="Twins file to write (.npz).")] = Path("twins.npz"),
    unit: UnitOption = "weeks",
    population: PopulationOption = "cdnow",
    weeks: Annotated[
        int, typer.Option(help="Horizon the twins' rates are calibrated over, in weeks.")
    ] = 52,
    seed: Annotated[int, typer.Option(help="Seed of the calibration.")] = 0,
    consent: Annotated[
        list[str] | None,
        typer.Option(
            help="Assume every customer consented to this channel (repeatable). A purchase "
            "log has no consents, and by default twins may not be messaged."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
) -> None:
    """Fit and save every customer's twin, to train and evaluate policies on your customers.

    Then: recenv train ppo --profile POPULATION --customers twins.npz, and recenv eval
    --customers twins.npz (with --purchase-days for --unit days). The calibration simulates 16
    twins per customer for --weeks with no message, so that twins drawn later buy at about
    their model's rate.
    """
    check_count("--weeks", weeks, low=1, high=520)
    check_output_file(out, force=force, suffixes={".npz"})
    _, twins, _ = _fit(log, as_of, unit, population)
    with reporting_bad_input():
        twins = twins.with_consent(consent or []).calibrated(weeks, seed=seed)
    with staged_file(out) as staged:
        twins.save(staged)
    expected = twins.lifetime.expected_purchases(float(weeks)).sum()
    what = "weekly purchase occasions" if unit == "weeks" else "purchase days"
    typer.echo(
        f"{twins.n:,} customers as of {as_of} (population {population}); mean P(alive) "
        f"{twins.p_alive().mean():.2f}; {expected:,.0f} {what} expected over {weeks} weeks"
    )
    if not consent:
        typer.echo("  no consent assumed: no twin can be messaged (see --consent)")
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
