"""``recenv offline``: a targeting policy learned from your own log, valued on held-out data.

``learn`` reads a CSV or Parquet log (described on the command line, by a YAML spec or a
shipped preset), splits it, learns each offline learner on one part and values every policy on
the other; ``evaluate`` values a saved run's policies on another log; ``report`` prints and
re-writes a run's results. The work is done by :mod:`rec_env.agents.offline.pipeline`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from rec_env.cli._errors import check_count, fail, reporting_bad_input
from rec_env.cli._outputs import (
    FORCE_HELP,
    check_output_directory,
    check_output_file,
    staged_directory,
    staged_file,
)

__all__ = ["offline_app", "results_table"]

offline_app = typer.Typer(
    help="Learn targeting policies from your own campaign log and value them on held-out data.",
    no_args_is_help=True,
)

_TABLE_ESTIMATORS = ("dr", "ips", "snips")
_NO_SPEC_WITHOUT = "give the log file and --action, --reward and --features, or --spec/--preset"


def _number(x: float | None, digits: int) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _digits(results: dict[str, Any]) -> int:
    values = [abs(r["value"] or 0.0) for e in results["policies"] for r in e["estimates"]]
    largest = max(values, default=0.0)
    return 4 if largest < 1 else 3 if largest < 10 else 1


def results_table(results: dict[str, Any]) -> Table:
    """One row per policy, best DR value first: value and CI by estimator, uplift@30 %."""
    where = "held-out part" if results.get("split") == "file" else "log"
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=f"Value per customer ({results['reward']}) on the {where} "
        f"({results['n_test']:,} rows, seed {results['seed']}); best first",
        title_justify="left",
        caption="ranked by DR; CI: bootstrap; DM, SNDR, Switch-DR, DRos, ESS "
        "and weights in results.csv",
    )
    table.add_column("policy", overflow="fold")
    table.add_column("DR", justify="right", no_wrap=True)
    table.add_column("DR 95% CI", justify="right", no_wrap=True)
    for header in _TABLE_ESTIMATORS[1:]:
        table.add_column(header.upper(), justify="right", no_wrap=True)
    table.add_column("uplift@30%", justify="right", no_wrap=True)
    with_truth = any("true_value" in e for e in results["policies"])
    if with_truth:
        table.add_column("true", justify="right", no_wrap=True)
    digits = _digits(results)
    control = results.get("control")
    shown = _shown(results)
    for entry in shown:
        by_name = {r["estimator"]: r for r in entry["estimates"]}
        name = entry["name"]
        if control is not None and name == f"always {control}":
            name += " (do nothing)"
        dr = by_name.get("dr", entry["estimates"][0])
        uplift = entry.get("targeting", {}).get("uplift_at_30")
        table.add_row(
            name,
            _number(dr["value"], digits),
            f"[{_number(dr['ci_low'], digits)}, {_number(dr['ci_high'], digits)}]",
            *(_number(by_name.get(e, {}).get("value"), digits) for e in _TABLE_ESTIMATORS[1:]),
            "-" if uplift is None else _number(uplift, digits),
            *([_number(entry.get("true_value"), digits)] if with_truth else []),
        )
    left_out = len(results["policies"]) - len(shown)
    if left_out:
        table.caption += f"; {left_out} other constant policies in results.csv"
    return table


SHOWN_CONSTANTS = 3
"""With many actions, the table shows only this many constant policies (the best by DR)."""


def _shown(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows, in the results' order.

    Every policy; or, with many actions, the learned ones, random, doing nothing and the best
    :data:`SHOWN_CONSTANTS` constants.
    """
    policies = results["policies"]
    constants = [e for e in policies if e["kind"] == "constant"]
    if len(constants) <= SHOWN_CONSTANTS + 2:
        return policies
    control = results.get("control")
    best = {e["name"] for e in constants[:SHOWN_CONSTANTS]}  # ranked best first
    return [
        e
        for e in policies
        if e["kind"] != "constant" or e["name"] in best or e["name"] == f"always {control}"
    ]


def _print_results(results: dict[str, Any]) -> None:
    Console().print(results_table(results))
    typer.echo(f"best policy (DR): {results['best']}")
    for line in gain_lines(results):
        typer.echo(line)
    for line in uplift_lines(results):
        typer.echo(line)
    for name, why in results.get("failed", {}).items():
        typer.echo(f"not learned: {name}: {why}")
    for name, why in results.get("unsaved", {}).items():
        typer.echo(f"learned but not saved: {name}: {why}")


def uplift_lines(results: dict[str, Any]) -> list[str]:
    """Each learned policy's uplift@30 % with its bootstrap interval."""
    digits = _digits(results)
    parts = []
    for entry in results["policies"]:
        targeting = entry.get("targeting") or {}
        value, interval = targeting.get("uplift_at_30"), targeting.get("uplift_at_30_ci")
        if value is None or interval is None:
            continue
        parts.append(
            f"  {entry['name']}: {value:.{digits}f} [{_number(interval[0], digits)}, "
            f"{_number(interval[1], digits)}]"
        )
    if not parts:
        return []
    control = results.get("control")
    return [f"uplift@30% (the best-scored 30 %, recommended action vs {control}), 95% CI:", *parts]


def gain_lines(results: dict[str, Any]) -> list[str]:
    """Each learned policy's paired DR gain over the best constant, and what it means."""
    gains = [(e["name"], e["gain"]) for e in results["policies"] if e.get("gain")]
    if not gains:
        return []
    digits = _digits(results)
    baseline = gains[0][1]["baseline"]
    lines = [
        f"gain over {baseline} (the best constant policy on these rows, which favours it), "
        "paired DR, 95% CI:"
    ]
    for name, gain in gains:
        verdict = "better" if gain["ci_low"] > 0 else "worse" if gain["ci_high"] < 0 else "tied"
        lines.append(
            f"  {name}: {gain['value']:+.{digits}f} [{_number(gain['ci_low'], digits)}, "
            f"{_number(gain['ci_high'], digits)}] ({verdict})"
        )
    if not any(gain["ci_low"] > 0 for _, gain in gains):
        lines.append(f"no learned policy is significantly better than {baseline}")
    return lines


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[str], None] | None]:
    """A transient progress bar on stderr advanced once per message, or ``None``."""
    if not enabled:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("reading", total=total)

        def step(message: str) -> None:
            progress.update(task, description=message, advance=1)

        yield step


@contextmanager
def _loud_warnings() -> Iterator[None]:
    """Print each warning raised in the block as one ``warning:`` line on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    seen = set()
    for item in caught:
        text = " ".join(str(item.message).split())
        if text not in seen and issubclass(item.category, UserWarning):
            seen.add(text)
            typer.secho(f"warning: {text}", err=True, fg="yellow", bold=True)


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _spec(
    log: Path | None,
    spec_file: Path | None,
    preset: str | None,
    overrides: dict[str, Any],
) -> Any:
    """The :class:`~rec_env.datasets.LogSpec` from the arguments (raises ConfigError)."""
    from rec_env.datasets import LogSpec, load_preset

    given = {k: v for k, v in overrides.items() if v is not None}
    if log is not None:
        given["file"] = log
    if spec_file is not None and preset is not None:
        fail("give --spec or --preset, not both")
    if spec_file is not None:
        return LogSpec.from_yaml(spec_file, **given)
    if preset is not None:
        return load_preset(preset, **given)
    missing = [f"--{k}" for k in ("action", "reward", "features") if k not in given]
    if log is None or missing:
        fail(f"{_NO_SPEC_WITHOUT} (missing: {', '.join(missing) or 'the log file'})")
    file = given.pop("file")
    return LogSpec.from_args(
        file,
        action=given.pop("action"),
        reward=given.pop("reward"),
        features=given.pop("features"),
        propensity=given.pop("propensity", "split"),
        **given,
    )


_Out = Annotated[Path, typer.Option(help="Directory to write (staged; complete or nothing).")]
_Seed = Annotated[
    int, typer.Option(help="Seed of the split, the learners, the cross-fitting and bootstrap.")
]
_Boot = Annotated[int, typer.Option(help="Bootstrap replicates of the confidence intervals.")]
_Force = Annotated[bool, typer.Option("--force", help=FORCE_HELP)]
_Estimators = Annotated[
    str | None,
    typer.Option(
        help="Estimators, comma-separated (default: ips,snips,dm,dr,sndr,switch_dr,dros; DM, "
        "Switch-DR and DRos refit their reward model in every bootstrap replicate)."
    ),
]
_ProgressOpt = Annotated[bool, typer.Option(help="Show a progress bar on stderr.")]


@offline_app.command("learn")
def learn_command(
    log: Annotated[
        Path | None,
        typer.Argument(
            help="The log: CSV (.csv, .csv.gz, .tsv) or Parquet. Optional with a "
            "--preset or a --spec that names it."
        ),
    ] = None,
    out: _Out = Path("runs/offline"),
    action: Annotated[str | None, typer.Option(help="Column of the logged action.")] = None,
    reward: Annotated[
        str | None,
        typer.Option(
            help="Reward column or expression, e.g. `10*purchase - 0.15*treated` (treated: an "
            "action other than --control)."
        ),
    ] = None,
    features: Annotated[str | None, typer.Option(help="Feature columns, comma-separated.")] = None,
    categorical: Annotated[
        str | None, typer.Option(help="Features to one-hot encode even if numeric.")
    ] = None,
    control: Annotated[
        str | None, typer.Option(help="The do-nothing action (needed by uplift learners).")
    ] = None,
    actions: Annotated[
        str | None, typer.Option(help="Action order, comma-separated (default: sorted).")
    ] = None,
    propensity: Annotated[
        str | None,
        typer.Option(
            help="A propensity column, 'uniform', 'split' (the observed share of each action; "
            "default) or 'model' (a logistic regression, for logs not randomised)."
        ),
    ] = None,
    randomised: Annotated[
        bool | None,
        typer.Option("--randomised/--not-randomised", help="Whether actions were randomised."),
    ] = None,
    spec: Annotated[Path | None, typer.Option(help="YAML log spec (see LogSpec).")] = None,
    preset: Annotated[str | None, typer.Option(help="A shipped log spec, e.g. hillstrom.")] = None,
    learners: Annotated[
        str | None,
        typer.Option(
            help="Learners, comma-separated (default: reward_model,t_learner,"
            "dr_learner,ipw,linucb_replay)."
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help="The learners' regressor: ridge, or boosting (gradient-boosted trees: slower, "
            "non-linear; saved as arrays and servable)."
        ),
    ] = "ridge",
    test_share: Annotated[
        float, typer.Option(help="Share of each action's rows held out (stratified split).")
    ] = 0.5,
    test: Annotated[
        Path | None, typer.Option(help="A held-out log file instead of splitting.")
    ] = None,
    rows: Annotated[
        int | None, typer.Option(help="Read only the first ROWS rows (quick looks).")
    ] = None,
    seed: _Seed = 0,
    n_bootstrap: _Boot = 200,
    estimators: _Estimators = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="True expected rewards of the log's rows (expected_<action> columns, as "
            "written by recenv offline synthetic): reports each policy's true held-out value "
            "next to its estimates."
        ),
    ] = None,
    force: _Force = False,
    progress: _ProgressOpt = True,
) -> None:
    """Learn targeting policies on part of a log and value them, with CIs, on the rest.

    Values every learned policy next to each constant policy (every action to everyone,
    doing nothing included) and uniform random with IPS, SNIPS, DM, DR, SNDR, Switch-DR and
    DRos; with a control action, also uplift@30 %, the policy-value curve and, for two actions,
    the Qini curve. Writes into --out the spec, the encoder, the split, each saveable policy
    (policies/NAME), results.json, results.csv and the plots.
    """
    from rec_env.agents.offline.pipeline import (
        DEFAULT_ESTIMATORS,
        DEFAULT_LEARNERS,
        SPEC_FILE,
        planned_steps,
        read_run_log,
        run_offline,
        write_run,
    )

    check_count("--n-bootstrap", n_bootstrap, low=2)
    if model not in ("ridge", "boosting"):
        fail(f"--model: expected ridge or boosting, got {model!r}")
    if rows is not None:
        check_count("--rows", rows, low=10)
    if test is not None and not test.is_file():
        fail(f"--test {test}: no such file")
    check_output_directory(out, force=force, marker=SPEC_FILE, create_parents=True)
    names = _names(learners) or list(DEFAULT_LEARNERS)
    overrides = {
        "action": action,
        "reward": reward,
        "features": features,
        "categorical": categorical,
        "control": control,
        "actions": actions,
        "propensity": propensity,
        "randomised": randomised,
        "max_rows": rows,
    }
    with reporting_bad_input(), _loud_warnings():
        log_spec = _spec(log, spec, preset, overrides)
        train = read_run_log(log_spec)
        test_log = None
        if test is not None:
            test_spec = train.spec.model_copy(update={"file": test, "max_rows": None})
            test_log = read_run_log(test_spec, train.encoder)
        true_rewards = None
        if truth is not None:
            from rec_env.agents.offline.synthetic import read_truth

            evaluated = train if test_log is None else test_log
            true_rewards = read_truth(
                truth, tuple(evaluated.action_names), None if test_log else rows
            )
    total = planned_steps(len(names), len(train.action_names))
    with reporting_bad_input(), _progress(progress, total) as step:
        run = run_offline(
            train,
            learners=names,
            test_log=test_log,
            test_share=test_share,
            seed=seed,
            n_bootstrap=n_bootstrap,
            estimators=_names(estimators) or DEFAULT_ESTIMATORS,
            progress=step,
            truth=true_rewards,
            model=model,
        )
    with staged_directory(out, replace_whole=True) as staged:
        write_run(run, staged)
    _print_results(run.results)
    typer.echo(f"wrote {out}")


@offline_app.command("synthetic")
def synthetic_command(
    out: Annotated[Path, typer.Option(help="The log to write (CSV).")] = Path("campaign.csv"),
    customers: Annotated[
        int, typer.Option(help="Simulated customers drawn (about 90 % consent to e-mail).")
    ] = 40_000,
    seed: _Seed = 0,
    reward: Annotated[
        str, typer.Option(help="The simulator's reward: conversion (0/1) or profit (USD).")
    ] = "conversion",
    force: _Force = False,
) -> None:
    """Write a randomised campaign on simulated customers, with the truth of every action.

    Logs no_action, discount_10_email, free_shipping_email and recommendation_email with
    probabilities 0.4, 0.2, 0.2 and 0.2 for the customers who consent to e-mail (the 16
    features, the action, its propensity p and the reward), and next to it <out>.truth.csv with
    each row's true expected reward of every action. Learn on it with the command it prints:
    the report then shows each policy's true held-out value next to its estimates.
    """
    from rec_env.agents.offline.synthetic import synthetic_campaign
    from rec_env.features import FEATURE_NAMES

    check_count("--customers", customers, low=10)
    if reward not in ("conversion", "profit"):
        fail(f"--reward: expected conversion or profit, got {reward!r}")
    truth = out.with_name(f"{out.stem}.truth.csv")
    for path in (out, truth):
        check_output_file(path, force=force)
    with reporting_bad_input():
        campaign = synthetic_campaign(customers, seed=seed, reward_mode=reward)
    with staged_file(out) as staged:
        campaign.write_csv(staged)
    with staged_file(truth) as staged:
        campaign.write_truth_csv(staged)
    typer.echo(f"wrote {out} ({campaign.n:,} customers) and {truth}")
    typer.echo(
        f"recenv offline learn {out} --action action --reward reward --propensity p "
        f"--control no_action --features {','.join(FEATURE_NAMES)} --truth {truth} "
        f"--out runs/{out.stem}"
    )


@offline_app.command("evaluate")
def evaluate_command(
    log: Annotated[Path, typer.Argument(help="Another log with the run's columns.")],
    run: Annotated[Path, typer.Option(help="Run directory of recenv offline learn.")],
    out: _Out,
    learner: Annotated[
        str | None, typer.Option(help="Saved learners to value, comma-separated (default all).")
    ] = None,
    seed: _Seed = 0,
    n_bootstrap: _Boot = 200,
    estimators: _Estimators = None,
    force: _Force = False,
    progress: _ProgressOpt = True,
) -> None:
    """Value a saved run's policies on another log, read with the run's spec and encoding."""
    from rec_env.agents.offline.pipeline import (
        DEFAULT_ESTIMATORS,
        RESULTS_FILE,
        evaluate_saved_run,
        write_report,
    )

    check_count("--n-bootstrap", n_bootstrap, low=2)
    if not log.is_file():
        fail(f"{log}: no such file")
    if not run.is_dir():
        fail(f"--run {run}: no such directory")
    check_output_directory(out, force=force, marker=RESULTS_FILE, create_parents=True)
    with reporting_bad_input(), _loud_warnings(), _progress(progress, 20) as step:
        results = evaluate_saved_run(
            run,
            log,
            learners=_names(learner),
            seed=seed,
            n_bootstrap=n_bootstrap,
            estimators=_names(estimators) or DEFAULT_ESTIMATORS,
            progress=step,
        )
    with staged_directory(out, replace_whole=True) as staged:
        write_report(results, staged)
    _print_results(results)
    typer.echo(f"wrote {out}")


@offline_app.command("report")
def report_command(
    run: Annotated[Path, typer.Argument(help="A run (or evaluate output) directory.")],
    out: Annotated[
        Path | None, typer.Option(help="Also write results.json, results.csv and plots here.")
    ] = None,
    force: _Force = False,
) -> None:
    """Print a run's table; with --out, write its CSV/JSON and plots there."""
    import json

    from rec_env.agents.offline.pipeline import RESULTS_FILE, write_report

    path = run / RESULTS_FILE if run.is_dir() else run
    if not path.is_file():
        fail(f"{run}: no {RESULTS_FILE}; give a directory written by recenv offline learn")
    if out is not None:
        check_output_directory(out, force=force, create_parents=True)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(results["policies"][0]["estimates"], list):  # the shape the table reads
            raise TypeError("estimates is not a list")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        fail(f"{path}: not a results file of recenv offline ({exc})")
    if out is not None:
        with staged_directory(out) as staged:
            write_report(results, staged)
    _print_results(results)
    if out is not None:
        typer.echo(f"wrote {out}")
