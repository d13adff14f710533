"""``recenv train ALGO``: train an agent and write its run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from rec_env import ENV_ID
from rec_env.agents.evaluation.evaluate import KPI, Evaluation
from rec_env.agents.registry import TRAINABLE, check_algorithm
from rec_env.agents.runs import RUN_FILE, RunInfo, default_run_dir, read_run_info
from rec_env.cli._env_option import (
    EnvOption,
    ProductsOption,
    ProfileOption,
    RulesOption,
    TwinsOption,
    env_settings,
    rules_fields,
    twin_fields,
)
from rec_env.cli._errors import MAX_CUSTOMERS, check_count, fail, reporting_bad_input
from rec_env.cli._outputs import FORCE_HELP, check_output_directory, staged_directory
from rec_env.cli.reporting import evaluation_table
from rec_env.dynamics import REWARD_MODES

__all__ = ["parse_overrides", "train_command"]


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["learning_rate=1e-3", "n_envs=64"]`` → ``{"learning_rate": 0.001, "n_envs": 64}``.

    Values are parsed as JSON when they can be (numbers, booleans, lists), else kept as strings.
    """
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            overrides[key.strip()] = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            overrides[key.strip()] = raw
    return overrides


def train_command(
    algorithm: Annotated[str, typer.Argument(help=f"One of: {', '.join(TRAINABLE)}.")],
    steps: Annotated[
        int | None,
        typer.Option(help="Environment steps (customer-cycles); default from the YAML."),
    ] = None,
    env: EnvOption = ENV_ID,
    products: ProductsOption = None,
    profile: ProfileOption = None,
    twins: TwinsOption = None,
    rules: RulesOption = None,
    reward_mode: Annotated[str, typer.Option(help="profit, conversion or rule.")] = "profit",
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(help="Run directory to create [default: runs/ALGO-seedSEED]."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help=f"{FORCE_HELP} (a run directory)")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a hyperparameter, e.g. --set learning_rate=1e-3."),
    ] = None,
    eval_customers: Annotated[
        int, typer.Option(help="Customers per learning-curve evaluation.")
    ] = 2_000,
    final_customers: Annotated[
        int, typer.Option(help="Customers in the final evaluation.")
    ] = 10_000,
    tensorboard: Annotated[
        Path | None, typer.Option(help="TensorBoard log directory (SB3 agents).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train an agent (SB3 or bandit) and save it with run.json and its learning curve.

    --env picks the world: strategy actions (the default), one product per message
    (rec_env/ItemRecommendation-v0) or slates of products (rec_env/SlateRecommendation-v0, PPO).
    --twins trains on twins of your own customers (recenv profiles twins) instead of a
    population's draws; run.json records the twins file.
    Hyperparameters come from the algorithm's YAML (agents/sb3/hyperparams), the section of
    the env id; --steps and --set override them. The run directory holds the model, run.json
    (with the model's SHA-256, the env id and settings, and the final metrics) and
    learning_curve.csv. It is written under a temporary name and appears only when complete;
    an existing run directory is replaced only with --force.
    """
    from rec_env.agents.training import check_hyperparameters, train

    with reporting_bad_input():
        name = check_algorithm(algorithm, TRAINABLE)
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"--reward-mode must be one of {', '.join(REWARD_MODES)}")
    if steps is not None:
        check_count("--steps", steps)
    check_count("--eval-customers", eval_customers, high=MAX_CUSTOMERS)
    check_count("--final-customers", final_customers, high=MAX_CUSTOMERS)
    settings = env_settings(
        env, products, reward_mode=reward_mode, **twin_fields(twins, profile), **rules_fields(rules)
    )
    with reporting_bad_input():
        settings.build_model()  # fail fast on a bad population or product table
        overrides = parse_overrides(set_ or [])
        check_hyperparameters(name, settings, overrides, steps)
    run_dir = out if out is not None else default_run_dir(name, seed)
    check_output_directory(run_dir, force=force, marker=RUN_FILE, create_parents=out is None)
    with reporting_bad_input(), staged_directory(run_dir, replace_whole=True) as staged:
        train(
            name,
            settings,
            steps=steps,
            seed=seed,
            out=staged,
            hyperparams=overrides,
            eval_customers=eval_customers,
            final_customers=final_customers,
            progress=progress,
            tensorboard_log=str(tensorboard) if tensorboard else None,
        )
    with reporting_bad_input():
        info = read_run_info(run_dir)
    _print_summary(info, run_dir)


def _print_summary(info: RunInfo, run_dir: Path) -> None:
    """Training time and the final evaluation recorded in ``run.json``."""
    metrics = info.final_metrics
    result = Evaluation(
        policy=info.algorithm,
        n_customers=metrics["n_customers"],
        seed=metrics["seed"],
        settings=info.settings,
        kpis={k: KPI(v["mean"], v["ci95"]) for k, v in metrics["kpis"].items()},
        action_distribution=metrics["action_distribution"],
        action_entropy=metrics["action_entropy"],
        oracle_share=metrics["oracle_share"],
    )
    console = Console()
    console.print(
        f"trained {info.algorithm} for {info.timesteps:,} steps in {info.wall_time_s:.0f} s"
    )
    console.print(
        evaluation_table([result], f"final evaluation ({result.n_customers:,} customers)")
    )
    console.print(f"run directory: {run_dir}")
