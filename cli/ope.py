"""``recenv ope``: estimate a trained policy's value from the decision log of ``recenv serve``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from rec_env.cli._errors import fail, reporting_bad_input

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.agents.ope import OPEResult

__all__ = ["ope_command", "ope_table"]


def ope_table(results: list[OPEResult], title: str = "") -> Table:
    """One row per estimate: value, 95% CI and the importance-weight diagnostics.

    Args:
        results: The estimates.
        title: Table title.
    """
    table = Table(
        title=title or None,
        title_justify="left",
        caption="CI: bootstrap over decisions; ESS: effective sample size of the weights",
    )
    for header in ("estimator", "value", "95% CI", "ESS", "max weight", "mean weight"):
        table.add_column(header, justify="left" if header == "estimator" else "right")
    for r in results:
        table.add_row(
            r.estimator.upper(),
            f"{r.value:.4g}",
            f"[{r.ci_low:.4g}, {r.ci_high:.4g}]",
            f"{r.effective_sample_size:,.0f}",
            f"{r.max_weight:.3g}",
            f"{r.mean_weight:.3g}",
        )
    return table


def ope_command(
    log: Annotated[
        Path,
        typer.Option(
            help="The decision log of recenv serve (.sqlite, .sqlite3 or .db file) or its "
            "export by recenv log export (.parquet or .csv file)."
        ),
    ],
    policy: Annotated[
        Path, typer.Option(help="Run directory of the target policy (written by recenv train).")
    ],
    n_bootstrap: Annotated[
        int, typer.Option(help="Bootstrap replicates of the confidence intervals.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and the cross-fitting.")] = 0,
    max_weight: Annotated[
        float | None, typer.Option(help="Also report IPS with weights clipped at this value.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Estimate what a trained policy would have earned on the logged decisions.

    Prints IPS, SNIPS, the direct method and doubly robust estimates of the policy's mean
    reward per decision, with 95% bootstrap confidence intervals and the importance-weight
    diagnostics. Decisions whose reward has not arrived are skipped (and counted). The policy's
    SHA-256 is checked against run.json before it is loaded.
    """
    from rec_env.agents.ope import (
        DirectMethod,
        DoublyRobust,
        InverseProbabilityWeighting,
        SelfNormalizedIPS,
        evaluate_policy,
    )
    from rec_env.agents.runs import load_run
    from rec_env.datasets.decision_log import read_decision_log

    if n_bootstrap < 2:
        fail(f"--n-bootstrap must be at least 2, got {n_bootstrap}")
    if max_weight is not None and not max_weight > 0:
        fail(f"--max-weight must be positive, got {max_weight}")
    with reporting_bad_input():
        target, info = load_run(policy)
        loaded = read_decision_log(log, info.action_names)
        data = loaded.data
        probabilities = target.action_probabilities(data.contexts, data.action_masks)
        settings = {"n_bootstrap": n_bootstrap, "random_state": seed}
        estimators = [InverseProbabilityWeighting(**settings)]
        if max_weight is not None:
            estimators.append(InverseProbabilityWeighting(max_weight=max_weight, **settings))
        estimators += [SelfNormalizedIPS(**settings), DirectMethod(**settings)]
        estimators.append(DoublyRobust(**settings))
        results = evaluate_policy(data, probabilities, estimators)
    if as_json:
        payload = {
            "policy": str(policy),
            "algorithm": info.algorithm,
            "log": str(log),
            "decisions": loaded.n_decisions,
            "with_reward": data.n,
            "skipped_without_reward": loaded.n_without_reward,
            "estimates": [r.as_dict() for r in results],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(
        f"{data.n:,} decisions with a reward; {loaded.n_without_reward:,} skipped "
        f"(no reward yet) of {loaded.n_decisions:,} in {log}"
    )
    Console().print(ope_table(results, f"{info.algorithm} ({policy}): mean reward per decision"))
