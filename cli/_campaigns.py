"""``recenv profiles fit ... --campaigns``: a population's responses from a randomised campaign."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from rec_env.cli._errors import fail, reporting_bad_input

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.fitting import FitDefaults, PopulationFit
    from rec_env.fitting.campaign_log import CampaignLog

__all__ = ["fit_campaign_population", "read_campaigns"]


def read_campaigns(campaigns: str, arm: str) -> CampaignLog:
    """Read and check the campaign log and the arm before the purchase-log fit.

    Raises:
        typer.Exit: On bad input (one line naming the file, line and column).
    """
    from rec_env.fitting.campaign_log import ANY_EMAIL, read_campaign_log

    with reporting_bad_input():
        log = read_campaign_log(campaigns)
    arms = (*log.treated_arms, ANY_EMAIL)
    if arm not in arms:
        fail(f"unknown --campaign-arm {arm!r}; choose one of {', '.join(arms)}")
    return log


def fit_campaign_population(
    log: CampaignLog,
    arm: str,
    purchase_fit: PopulationFit,
    defaults: FitDefaults,
    seed: int,
    check: bool,
) -> Callable[[Path], Path]:
    """Fit the campaign's responses, print a summary (and the check), return the YAML writer.

    Args:
        log: The campaign (:func:`read_campaigns`).
        arm: The arm whose e-mail the population's e-mail is (``any_email``: all pooled).
        purchase_fit: The purchase-log fit, for the churn rate.
        defaults: Values of what neither log identifies.
        seed: Seed of the half split of ``check``.
        check: Fit on half the customers and print the held-out uplift table.

    Raises:
        typer.Exit: On bad input (one line naming the file, line and column).
    """
    from rec_env.fitting.response_check import check_responses, split_campaign
    from rec_env.fitting.responses import churn_from_purchase_fit, fit_campaign_responses

    churn, churn_source = churn_from_purchase_fit(purchase_fit)
    with reporting_bad_input():
        fitted = log.subset(split_campaign(log, seed)[0]) if check else log
        response = fit_campaign_responses(fitted, defaults, churn, churn_source)
        population = response.population(arm)  # validates the arm and the values
    typer.echo(
        f"campaign {log.source}: {response.n_customers:,} customers fitted, "
        f"{len(population.segments)} segments, {arm}'s e-mail as recommendation_email"
    )
    for name, source in (population.fitted_from or {}).items():
        typer.echo(f"  {name}: {source}")
    if check:
        result = check_responses(log, seed=seed, defaults=defaults)
        typer.echo(result.to_markdown())
        typer.echo(
            f"simulated uplift inside the held-out 95 % CI: {result.inside_share():.0%} of rows "
            f"({result.n_held_out:,} held-out customers, {result.replicas} draws each)"
        )

    def write(path: Path) -> Path:
        return response.write(path, arm)

    return write
