"""``recenv ope``: estimate a trained policy's value from the decision log of ``recenv serve``.

The target's world (``run.json``) says how the log is read: strategy and single-product item
runs are evaluated on single decisions with IPS, SNIPS, DM and DR over their action table;
slate runs on whole slate messages with whole-slate IPS and SNIPS
(:mod:`rec_env.agents.ope.slates`). A log of another world or product table is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rec_env.cli._errors import fail, reporting_bad_input

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.agents.base import Policy
    from rec_env.agents.ope import OPEResult
    from rec_env.agents.runs import RunInfo
    from rec_env.datasets.decision_log import RewardDefault

__all__ = ["diagnostic_lines", "ope_command", "ope_table"]


def ope_table(results: list[OPEResult], title: str = "") -> Table:
    """One row per estimate: value, 95% CI and the importance-weight diagnostics.

    Args:
        results: The estimates.
        title: Table title.
    """
    table = Table(
        title=title or None,
        title_justify="left",
        caption="CI: bootstrap over decisions; ESS: effective sample size of the weights (after "
        "clipping)",
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
    estimators: Annotated[
        str,
        typer.Option(
            help="Estimators of single decisions, comma-separated: ips, snips, dm, dr, sndr, "
            "switch_dr, dros (DM, Switch-DR and DRos refit their reward model in every "
            "bootstrap replicate)."
        ),
    ] = "ips,snips,dm,dr",
    default_reward: Annotated[
        float | None,
        typer.Option(
            help="The reward of a decision whose reward never came (e.g. 0: the customer did "
            "not buy), once --window has passed; without it such decisions are skipped "
            "(and counted)."
        ),
    ] = None,
    from_log: Annotated[
        bool,
        typer.Option(
            "--from-log",
            help="Take the target's probabilities from the log (prob_<action>: what the serving "
            "model logged; in apprentice mode the model's, while the baseline was served) "
            "instead of running --policy, which then only names the catalog: for an online "
            "bandit whose state has moved on, or an apprentice log. Strategy runs.",
        ),
    ] = False,
    window: Annotated[
        str | None,
        typer.Option(
            help="Attribution window of --default-reward, e.g. 7d, 36h or 2w: decisions "
            "younger than this before the log's last decision are still pending and skipped. "
            "Default: every decision without a reward gets the default."
        ),
    ] = None,
) -> None:
    """Estimate what a trained policy would have earned on the logged decisions.

    Prints IPS, SNIPS, the direct method and doubly robust estimates of the policy's mean
    reward per decision, with 95% bootstrap confidence intervals and the importance-weight
    diagnostics, and the logged policy's own mean reward. Decisions whose reward has not
    arrived (or whose reward window is still open) are skipped and counted, unless
    --default-reward gives them a reward once their --window has passed (decisions logged with
    a window get theirs from the log when it closes). Decisions never activated under
    --require-activation are left out, and so are held-out customers', whose mean reward is
    reported on its own line. The policy's
    SHA-256 is checked against run.json before it is loaded. Strategy and item runs are
    evaluated on logged single decisions of their own world and action table; slate runs on
    logged slate messages, with whole-slate IPS and SNIPS (the probability of the whole logged
    slate; no per-position estimators, as the reward is one number per message).
    """
    from rec_env.agents.runs import load_run

    if n_bootstrap < 2:
        fail(f"--n-bootstrap must be at least 2, got {n_bootstrap}")
    if max_weight is not None and not max_weight > 0:
        fail(f"--max-weight must be positive, got {max_weight}")
    from rec_env.datasets.decision_log import RewardDefault, parse_window

    if window is not None and default_reward is None:
        fail("--window is the attribution window of --default-reward: give both")
    default = None
    if default_reward is not None:
        try:
            seconds = None if window is None else parse_window(window)
        except ValueError as exc:
            fail(f"--window: {exc}")
        try:
            default = RewardDefault(default_reward, seconds)
        except ValueError as exc:
            fail(f"--default-reward: {exc}")
    from rec_env.agents.ope import ALL_ESTIMATORS

    names = [name.strip().lower() for name in estimators.split(",") if name.strip()]
    unknown = [name for name in names if name not in ALL_ESTIMATORS]
    if unknown or not names:
        fail(
            f"--estimators: unknown {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(ALL_ESTIMATORS)}"
        )
    settings = {"n_bootstrap": n_bootstrap, "random_state": seed}
    with reporting_bad_input():
        target, info = load_run(policy)
        world = info.settings.world
        if world == "slate":
            if max_weight is not None:
                fail("--max-weight clips single decisions' weights; slate runs have none")
            if names != ["ips", "snips", "dm", "dr"]:
                fail(
                    "--estimators applies to single decisions; slate runs get whole-slate IPS "
                    "and SNIPS"
                )
            if from_log:
                fail("--from-log applies to strategy runs, whose logs hold every probability")
            loaded, results = _slate_estimates(log, target, info, settings, default)
        else:
            loaded, results = _single_estimates(
                log, target, info, settings, max_weight, default, names, from_log
            )
    data = loaded.data
    from rec_env.agents.evaluation.evaluate import mean_ci

    logged = mean_ci(data.rewards)
    holdout = mean_ci(loaded.holdout_rewards) if loaded.holdout_rewards.size else None
    if as_json:
        payload = {
            "policy": str(policy),
            "algorithm": info.algorithm,
            "world": world,
            "log": str(log),
            "decisions": loaded.n_decisions,
            "with_reward": data.n,
            "skipped_without_reward": loaded.n_without_reward,
            "default_reward": None if default is None else default.value,
            "window_seconds": None if default is None else default.window_seconds,
            "given_default_reward": loaded.n_default_reward,
            "not_activated": loaded.n_not_activated,
            "logged_policy": {"mean": logged.mean, "ci95": logged.ci},
            "holdout": None
            if holdout is None
            else {
                "decisions": int(loaded.holdout_rewards.size),
                "mean": holdout.mean,
                "ci95": holdout.ci,
            },
            "estimates": [r.as_dict() for r in results],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    given = (
        ""
        if default is None
        else f" ({loaded.n_default_reward:,} given the default reward {default.value:g}"
        + ("" if window is None else f" after the {window} window")
        + ")"
    )
    typer.echo(
        f"{data.n:,} decisions with a reward{given}; {loaded.n_without_reward:,} skipped "
        f"(no reward yet) of {loaded.n_decisions:,} in {log}"
    )
    if loaded.n_not_activated:
        typer.echo(f"{loaded.n_not_activated:,} decisions left out: never activated (not sent)")
    Console().print(ope_table(results, f"{info.algorithm} ({policy}): mean reward per decision"))
    typer.echo(
        f"logged policy (on-policy mean of the evaluated decisions; in apprentice mode the "
        f"baseline's): {logged.mean:.4g} ± {logged.ci:.3g}"
    )
    if holdout is not None:
        typer.echo(
            f"holdout ({loaded.holdout_rewards.size:,} decisions, not evaluated as the "
            f"policy's): mean reward {holdout.mean:.4g} ± {holdout.ci:.3g}"
        )
    for line in diagnostic_lines(results):
        typer.echo(line)


def diagnostic_lines(results: list[OPEResult]) -> list[str]:
    """The unsupported mass and the doubly robust estimates' correction shares, in words."""
    lines = []
    unsupported = max((getattr(r, "unsupported_mass", 0.0) or 0.0 for r in results), default=0.0)
    lines.append(
        f"unsupported mass: {unsupported:.1%} of the target's probability is on actions the "
        "logging policy (almost) never took"
        + (" - estimates there rest on the reward model alone" if unsupported > 0.01 else "")
    )
    shares = [
        f"{r.estimator.upper()} {r.correction_share:.0%}"
        for r in results
        if getattr(r, "correction_share", None) is not None
    ]
    if shares:
        lines.append(f"share of the estimate from the weighted residuals: {', '.join(shares)}")
    return lines


def _single_estimates(
    log: Path,
    target: Policy,
    info: RunInfo,
    settings: dict[str, Any],
    max_weight: float | None,
    default: RewardDefault | None = None,
    names: Sequence[str] = ("ips", "snips", "dm", "dr"),
    from_log: bool = False,
) -> tuple[Any, list[OPEResult]]:
    """The estimates ``names`` (and IPS clipped at ``max_weight``) of a strategy or item run.

    With ``from_log`` the target's probabilities are the logged ones (``prob_<action>``).

    Raises:
        ValueError: If ``from_log`` and some decisions have no logged probabilities.
    """
    import numpy as np

    from rec_env.agents.ope import ALL_ESTIMATORS, InverseProbabilityWeighting, evaluate_policy
    from rec_env.datasets.decision_log import read_decision_log
    from rec_env.features import FEATURE_NAMES

    world = info.settings.world
    features: tuple[str, ...] = FEATURE_NAMES
    if world != "strategy":  # the item features of the run's product table, by name
        features = tuple(info.feature_names) or tuple(info.settings.build_model().feature_names)
    loaded = read_decision_log(
        log, info.action_names, feature_names=features, world=world, default_reward=default
    )
    data = loaded.data
    if from_log:
        probabilities = loaded.logged_probabilities
        if probabilities is None or np.isnan(probabilities).any():
            raise ValueError(
                f"{log}: some decisions have no logged probabilities (item or slate models "
                "log the served action's only); --from-log needs a strategy log"
            )
    else:
        probabilities = target.action_probabilities(data.contexts, data.action_masks)
    estimators: list[Any] = []
    for name in names:
        estimators.append(ALL_ESTIMATORS[name](**settings))
        if name == "ips" and max_weight is not None:
            estimators.append(InverseProbabilityWeighting(max_weight=max_weight, **settings))
    if max_weight is not None and "ips" not in names:
        estimators.insert(0, InverseProbabilityWeighting(max_weight=max_weight, **settings))
    return loaded, evaluate_policy(data, probabilities, estimators)


def _slate_estimates(
    log: Path,
    target: Policy,
    info: RunInfo,
    settings: dict[str, Any],
    default: RewardDefault | None = None,
) -> tuple[Any, list[OPEResult]]:
    """Whole-slate IPS and SNIPS of a slate run on logged slate messages."""
    from rec_env.agents.ope import SlateIPS, slate_target_probabilities
    from rec_env.datasets.decision_log import read_slate_decision_log

    model = info.settings.build_model()
    loaded = read_slate_decision_log(
        log, model.actions, model.products.ids, model.feature_names, info.settings.k, default
    )
    probabilities = slate_target_probabilities(target, loaded.data, model.actions.offers)
    results = [
        SlateIPS(self_normalized=normalized, **settings).estimate(loaded.data, probabilities)
        for normalized in (False, True)
    ]
    return loaded, results
