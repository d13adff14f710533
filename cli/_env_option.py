"""The ``--env`` and ``--products`` options: which registered world a command simulates.

``--env`` takes a registered env id (``rec_env.ENV_WORLDS``): ``rec_env/Recommendation-v0``
(offer × channel strategy actions, the default), ``rec_env/ItemRecommendation-v0`` (one product
per message) or ``rec_env/SlateRecommendation-v0`` (a slate of products). ``--products`` names
the product table of the item worlds (a shipped name or a YAML, CSV or Parquet path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rec_env import ENV_ID, ENV_WORLDS
from rec_env.cli._errors import fail
from rec_env.settings import EnvSettings

__all__ = [
    "EnvOption",
    "ProductsOption",
    "ProfileOption",
    "RulesOption",
    "TwinsOption",
    "check_run_world",
    "env_settings",
    "rules_fields",
    "twin_fields",
]

EnvOption = Annotated[
    str,
    typer.Option(
        "--env",
        help="Environment id: rec_env/Recommendation-v0 (offer x channel), "
        "rec_env/ItemRecommendation-v0 (one product per message) or "
        "rec_env/SlateRecommendation-v0 (a slate of products per message).",
    ),
]
ProductsOption = Annotated[
    str | None,
    typer.Option(
        help="Product table of the item and slate envs: a shipped name or a YAML, CSV or "
        "Parquet file [default: the shipped 200-product table]."
    ),
]

ProfileOption = Annotated[
    str | None,
    typer.Option(
        help="Population name or YAML path [default: default, or the twins'].",
        show_default=False,
    ),
]
TwinsOption = Annotated[
    Path | None,
    typer.Option(
        "--twins",
        help="Twins of your own customers (recenv profiles twins): every simulated customer "
        "is one of them; the population and purchase unit default to the twins' own.",
    ),
]


RulesOption = Annotated[
    Path | None,
    typer.Option(
        help="Business rules (YAML): their caps, eligibility and suppression mask actions in "
        "the simulated world, as in recenv score and serve.",
    ),
]


def rules_fields(rules: Path | None) -> dict[str, Any]:
    """Settings fields for ``--rules`` (checked now: one ``error:`` line if the file is bad)."""
    if rules is None:
        return {}
    from rec_env.errors import ConfigError
    from rec_env.rules import load_rules

    try:
        load_rules(rules)
    except ConfigError as exc:
        fail(f"--rules: {exc}")
    return {"rules": str(rules.resolve())}


def twin_fields(twins: Path | None, profile: str | None) -> dict[str, Any]:
    """Settings fields for ``--twins`` and ``--profile`` (the twins' population by default).

    Raises:
        typer.Exit: One ``error:`` line if the twins file cannot be read.
    """
    if twins is None:
        return {"profile": profile or "default"}
    from rec_env.fitting.twins import load_twins

    try:
        loaded = load_twins(twins)
    except ValueError as exc:
        fail(f"--twins: {exc}")
    population = loaded.population
    if Path(population).is_file():  # a population file: where it is, whatever the cwd later
        population = str(Path(population).resolve())
    return {
        "profile": profile or population,
        "customers": str(twins.resolve()),
        "purchase_days": loaded.unit == "days",
    }


def env_settings(env: str, products: str | None = None, **fields: Any) -> EnvSettings:
    """The :class:`EnvSettings` of env id ``env``, or one ``error:`` line and exit code 2.

    Args:
        env: A registered env id (``rec_env.ENV_WORLDS``).
        products: Product table (item and slate envs only).
        **fields: Other settings (``profile``, ``reward_mode`` ...).

    Raises:
        typer.Exit: For an unknown id, ``--products`` with the strategy env, or an invalid
            setting (e.g. ``--reward-mode rule`` in an item world).
    """
    world = ENV_WORLDS.get(env)
    if world is None:
        fail(f"--env: unknown environment {env!r}; choose one of: {', '.join(ENV_WORLDS)}")
    if products is not None:
        if world == "strategy":
            fail(f"--products applies to the item and slate envs, not {ENV_ID}")
        fields["products"] = products
    try:
        return EnvSettings(world=world, **fields)
    except ValueError as exc:
        fail(f"--env {env}: {exc}")


def check_run_world(run: str, run_world: str, env: str) -> None:
    """Refuse a run directory trained in another world than ``env`` simulates.

    Raises:
        typer.Exit: Naming the run, its env id and the ``--env`` to pass.
    """
    if ENV_WORLDS.get(env) == run_world:
        return
    trained = next(env_id for env_id, world in ENV_WORLDS.items() if world == run_world)
    fail(f"{run}: trained on {trained}, not {env}; pass --env {trained}")
