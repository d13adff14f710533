"""``recenv explain``: why does the policy recommend this action to this customer?"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rec_env.cli._errors import check_count, fail, reporting_bad_input
from rec_env.cli._outputs import FORCE_HELP, check_output_file, staged_file
from rec_env.features import FEATURE_NAMES, FEATURES

if TYPE_CHECKING:
    from rec_env.agents.explain.explainer import PolicyExplainer
    from rec_env.agents.explain.items import Grouping
    from rec_env.agents.explain.shapley import ShapleyValues
    from rec_env.customer import FilledFeature
    from rec_env.settings import EnvSettings

__all__ = ["explain_command", "format_value", "plain_words", "print_filled_in", "save_waterfall"]

_UNITS = {f.name: f for f in FEATURES}
_OUTPUT_WORDS = {
    "probability": "probability",
    "q_value": "Q-value (expected discounted profit, USD)",
    "estimated_reward": "estimated reward (USD)",
}


def format_value(name: str, value: float) -> str:
    """A feature's value as printed: whole numbers and flags plainly, others to 3 digits."""
    feature = _UNITS.get(name)  # None: an item world's feature (counts and days)
    if (feature is not None and feature.binary) or float(value).is_integer():
        return f"{value:g}"
    return f"{value:.3g}"


def plain_words(feature: str, value: float, contribution: float, output: str) -> str:
    """One contribution as a sentence, e.g. ``discount_sensitive = 1 raises P(x) by 0.21``."""
    verb = "raises" if contribution >= 0 else "lowers"
    return f"{feature} = {format_value(feature, value)} {verb} {output} by {abs(contribution):.3g}"


def _action_label(explainer: PolicyExplainer, action: int) -> str:
    table = explainer.table
    offer, channel = table.offers[action], table.channel_names[action]
    words = {
        "none": "do nothing",
        "discount": f"{table.discount[action]:.0%} discount by {channel}",
        "free_shipping": f"free shipping by {channel}",
        "recommendation": f"product recommendation by {channel}",
    }
    return f"{table.names[action]} ({words.get(offer, f'{offer} by {channel}')})"


def _load_policy(model: Path, background: int, seed: int) -> PolicyExplainer:
    from rec_env.agents.explain.explainer import PolicyExplainer
    from rec_env.agents.runs import load_run

    policy, info = load_run(model)
    catalog = info.settings.catalog
    return PolicyExplainer(
        policy,
        n_background=background,
        population=info.settings.profile,
        catalog=catalog,
        seed=seed,
    )


def explain_command(
    customer: Annotated[
        Path,
        typer.Argument(
            help="A customer JSON file (like profiles/users/*.json, nested or flat, any subset "
            "of the 16 features; the others are filled in and listed), or one with a "
            '"history" of orders, contacts, visits, consents and tags (and an optional '
            '"as_of"; like profiles/histories/example.json) whose features are built first, '
            "or a CSV file with one column per feature (as recenv features writes) for "
            "--summary."
        ),
    ],
    model: Annotated[
        Path, typer.Option("--model", "--run", help="Run directory written by recenv train.")
    ],
    summary: Annotated[
        bool,
        typer.Option(help="Explain every customer of a CSV file: SHAP values CSV + beeswarm."),
    ] = False,
    action: Annotated[
        str | None,
        typer.Option(help="Explain this action instead of the recommended one."),
    ] = None,
    top: Annotated[int, typer.Option(help="Contributions to print.")] = 5,
    background: Annotated[
        int,
        typer.Option(
            help="Background customers drawn from the run's population (at most as many as "
            "`recenv serve` allows)."
        ),
    ] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the background draw.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Waterfall PNG [default: <customer>_waterfall.png]; with --summary the SHAP CSV "
            "[default: <customers>_shap.csv], next to a <name>_beeswarm.png."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
    assume_consent: Annotated[
        str,
        typer.Option(
            help="Channels whose consent counts as given when the customer file leaves it out: "
            "a comma-separated list of email, sms, push, or all, or none (as `recenv serve` "
            "treats unknown consent by default)."
        ),
    ] = "all",
    grouping: Annotated[
        str,
        typer.Option(
            help="Item and slate runs: the players. auto takes the first that costs at most 2^22 "
            "network outputs per background customer: one per feature, else one per "
            "category's history, else one per item feature kind (all categories' purchases, "
            "...); feature, category or kind ask for one, without the limit."
        ),
    ] = "auto",
) -> None:
    """Explain a trained policy's decision with exact Shapley values over its features.

    For PPO, A2C and MaskablePPO the explained value is the probability of the recommended
    action; for DQN its Q-value; for LinUCB and linear Thompson sampling its estimated reward.
    For runs of the item and slate envs the answer names the product, its channel and the
    runner-up, and explains the log-odds (DQN: the Q-value advantage; slates: the score margin
    over the best product left out) over the 16 features and the item history features;
    item features the customer file leaves out mean no history in that category.
    Contributions are measured against a background of customers drawn from the run's population
    (same seed, same background). The model file's SHA-256 is checked before it is loaded.

    A customer file may give the customer's history instead of features (``"history"``, and
    optionally ``"as_of"``, default the latest event's day): the features are built from it by
    the simulator's definitions (rec_env.fitting.builder) and the ones no event determines are
    listed as filled in.

    Features the customer file leaves out are filled in with documented defaults (no contact or
    discount history; see rec_env.customer.FEATURE_DEFAULTS) and listed in the output. Unknown
    consent is assumed given for the explanation unless --assume-consent says otherwise.
    """
    from rec_env.serve.settings import MAX_BACKGROUND

    check_count("--top", top, low=0)
    check_count("--background", background, high=MAX_BACKGROUND)
    suffix = customer.suffix.lower()
    if summary and suffix != ".csv":
        fail(f"{customer}: --summary reads a CSV file with one column per feature")
    if not summary and suffix == ".csv":
        fail(f"{customer}: a CSV file holds many customers; add --summary")
    if suffix not in (".json", ".csv"):
        fail(f"{customer}: expected a .json customer or a .csv file of customers")
    from rec_env.customer import parse_channels

    try:
        assumed = parse_channels(assume_consent)
    except ValueError as exc:
        fail(f"--assume-consent: {exc}")
    from rec_env.agents.runs import read_run_info

    with reporting_bad_input():
        info = read_run_info(model)
    if grouping not in ("auto", "feature", "category", "kind"):
        fail(f"--grouping: expected auto, feature, category or kind, got {grouping!r}")
    if info.settings.world != "strategy":
        if not summary and _history_of(customer) is not None:
            fail(f"{customer}: a customer history explains runs of the strategy env")
        if summary:
            fail("--summary explains runs of the strategy env; explain item customers one by one")
        level = None if grouping == "auto" else grouping
        _explain_item_run(
            customer, model, action, top, background, seed, out, force, assumed, level
        )
        return
    if grouping != "auto":
        fail("--grouping applies to runs of the item and slate envs (strategy runs: 16 features)")
    with reporting_bad_input():
        ids, obs, filled_in = _read_customers(customer, summary, assumed, info.settings)
        explainer = _load_policy(model, background, seed)
        actions = None
        if action is not None:
            actions = np.full(obs.shape[0], explainer.table.index(action))
    outputs = _output_paths(customer, summary, out, force)  # before the explaining starts
    with reporting_bad_input():
        explanation = explainer.explain(obs, actions=actions)
    if summary:
        _write_summary(explainer, explanation, ids, *outputs)
    else:
        _print_one(explainer, explanation, ids[0], top, outputs[0], filled_in)


def _explain_item_run(
    customer: Path,
    run: Path,
    action: str | None,
    top: int,
    background: int,
    seed: int,
    out: Path | None,
    force: bool,
    assumed: tuple[str, ...],
    grouping: Grouping | None,
) -> None:
    """``recenv explain`` of a run of the item or slate env (:mod:`rec_env.cli._item_explain`)."""
    from rec_env.agents.explain.background import operating_background
    from rec_env.agents.runs import load_run
    from rec_env.cli._item_explain import explain_item_customer, read_item_customer

    with reporting_bad_input():
        policy, info = load_run(run)
        world = info.settings.replace(world="item").build_model()  # products, item actions
        read = read_item_customer(customer, world, assumed)
    path = _output_paths(customer, False, out, force)[0]  # before the explaining starts
    with reporting_bad_input():
        rows = operating_background(background, seed=seed, model=world)
        explain_item_customer(policy, world, read, action, top, rows, path, grouping)


def _history_of(path: Path) -> dict | None:
    """The customer file's content if it gives a ``history`` (None otherwise or unreadable)."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None  # load_customer reports it
    return data if isinstance(data, dict) and "history" in data else None


def _read_customers(
    path: Path, summary: bool, assume_consent: tuple[str, ...], settings: EnvSettings | None = None
) -> tuple[list[str], np.ndarray, tuple[FilledFeature, ...]]:
    """Ids, ``(n, 16)`` float32 observations and the filled-in features of the customer file.

    A customer file with a ``history`` is turned into features first, with the cycle and the
    population of the run's ``settings`` (default settings if None), and reported.

    Raises:
        ConfigError: Naming the file, the field and the problem.
    """
    from rec_env.customer import fill_in_rows, load_customer, load_customers_csv

    if summary:
        ids, obs = load_customers_csv(path)
        return ids, obs, ()
    data = _history_of(path)
    if data is not None:
        if settings is None:
            from rec_env.settings import EnvSettings

            settings = EnvSettings()
        return _read_history(path, data, assume_consent, settings)
    profile = load_customer(path)
    filled = fill_in_rows([profile.features], assume_consent)
    customer_id = profile.customer_id or path.stem
    return [customer_id], filled.observations.astype(np.float32), filled.filled_in


def _read_history(
    path: Path, data: dict, assume_consent: tuple[str, ...], settings: EnvSettings
) -> tuple[list[str], np.ndarray, tuple[FilledFeature, ...]]:
    """:func:`_read_customers` of a customer given by a history; prints what was built."""
    from rec_env.errors import ConfigError
    from rec_env.fitting.history import fill_in_history, load_history_customer, run_options

    customer = load_history_customer(data, str(path))
    try:
        filled = fill_in_history(
            customer.history, customer.as_of, assume_consent, **run_options(settings)
        )
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    history = customer.history
    counts = ", ".join(
        f"{len(events)} {name}"
        for name, events in (
            ("orders", history.orders),
            ("contacts", history.contacts),
            ("visits", history.visits),
            ("consent events", history.consents),
        )
    )
    typer.echo(f"Features built from the history as of {filled.as_of} ({counts}).")
    customer_id = customer.customer_id or path.stem
    return [customer_id], filled.observations.astype(np.float32), filled.defaulted


def print_filled_in(
    console: Console,
    filled_in: Sequence[FilledFeature],
    n_features: int = len(FEATURE_NAMES),
    others: tuple[int, str] | None = None,
) -> None:
    """The features the file left out, their values and why; assumed consent spelled out.

    Args:
        console: Where to print.
        filled_in: The strategy features left out.
        n_features: Features of the run's observation.
        others: ``(count, reason)`` of further features left out, summarised in one line
            (the item history features).
    """
    extra = others[0] if others else 0
    if not filled_in and not extra:
        return
    console.print(f"Filled in ({len(filled_in) + extra} of {n_features} features not given):")
    for item in filled_in:
        value = format_value(item.feature, item.value)
        console.print(escape(f"  {item.feature} = {value}: {item.reason}"))
    if others and extra:
        console.print(escape(f"  {extra} item history features: {others[1]}"))
    assumed = [
        item.feature.removeprefix("consent_")
        for item in filled_in
        if item.feature.startswith("consent_") and item.value == 1.0
    ]
    if assumed:
        console.print(
            escape(
                f"Consent on {', '.join(assumed)} is assumed for this explanation; "
                "`recenv serve` sends nothing on a channel of unknown consent unless started "
                "with --assume-consent."
            )
        )


def save_waterfall(
    values: ShapleyValues,
    x: np.ndarray | None,
    names: list[str],
    title: str,
    path: Path,
    axis_label: str = "explained value",
) -> None:
    """Save the waterfall plot of one customer's Shapley values to ``path`` (staged).

    ``x`` holds the players' values; None when they are groups (``names`` say it all).
    """
    from rec_env.agents.evaluation.style import save_png
    from rec_env.agents.explain.plots import waterfall_figure

    fig = waterfall_figure(
        values.values, values.base_value, names, x, axis_label=axis_label, title=title
    )
    with staged_file(path) as staged:
        save_png(fig, staged)


def _output_paths(customer: Path, summary: bool, out: Path | None, force: bool) -> list[Path]:
    """The files explain will write, checked before any work: the waterfall, or CSV + beeswarm.

    The waterfall's format follows its suffix, so the suffix must be one matplotlib writes.
    """
    if not summary:
        from matplotlib.backend_bases import FigureCanvasBase

        formats = {f".{kind}" for kind in FigureCanvasBase.get_supported_filetypes()}
        path = out or Path(f"{customer.stem}_waterfall.png")
        check_output_file(path, force=force, suffixes=formats)
        return [path]
    path = out or Path(f"{customer.stem}_shap.csv")
    check_output_file(path, force=force, suffixes={".csv"})
    beeswarm = path.with_name(f"{path.stem.removesuffix('_shap')}_beeswarm.png")
    check_output_file(beeswarm, force=force, option="the beeswarm plot of --out")
    return [path, beeswarm]


def _print_one(
    explainer: PolicyExplainer,
    explanation: object,
    customer_id: str,
    top: int,
    path: Path,
    filled_in: Sequence[FilledFeature] = (),
) -> None:
    data = explainer.as_dict(explanation, 0, top=top)
    obs = np.asarray(explanation.data[0], dtype=np.float32)[None, :]
    masks = explainer.table.consent_masks(obs)
    probabilities = explainer.policy.action_probabilities(obs, masks)[0]
    action = data["action"]
    recommended = int(np.argmax(probabilities))
    console = Console(soft_wrap=True, highlight=False)
    console.print(
        f"Customer [bold]{escape(customer_id)}[/]: recommend "
        f"[bold]{escape(_action_label(explainer, recommended))}[/] with probability "
        f"{probabilities[recommended]:.2f}"
    )
    print_filled_in(console, filled_in)
    if action != recommended:
        console.print(
            f"Explaining [bold]{escape(_action_label(explainer, action))}[/] instead "
            f"(probability {probabilities[action]:.2f})"
        )
    output = data["explained_output"]
    console.print(
        escape(
            f"{output} = {data['model_output']:.3g}, the {_OUTPUT_WORDS[data['kind']]}; "
            f"{data['base_value']:.3g} on average over {explainer.background.shape[0]} "
            "background customers"
        )
    )
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("Top contributions")
    for item in data["contributions"]:
        table.add_row(
            escape(plain_words(item["feature"], item["value"], item["contribution"], output))
        )
    console.print(table)
    from rec_env.agents.evaluation.style import save_png
    from rec_env.agents.explain.plots import output_axis, waterfall_figure

    name = explainer.action_names[action]
    axis_label, _, scale, value_format = output_axis(data["kind"], name)
    fig = waterfall_figure(
        explanation.values[0],
        explanation.base_values[0],
        list(explainer.feature_names),
        explanation.data[0],
        axis_label=axis_label,
        scale=scale,
        value_format=value_format,
        title=f"Why customer {customer_id} gets {name}",
    )
    with staged_file(path) as staged:
        save_png(fig, staged)
    console.print(f"Waterfall plot: {path}")


def _write_summary(
    explainer: PolicyExplainer,
    explanation: object,
    ids: list[str],
    path: Path,
    beeswarm: Path,
) -> None:
    import csv

    from rec_env.agents.evaluation.style import save_png
    from rec_env.agents.explain.plots import action_summary_figure

    with staged_file(path) as staged, staged.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["customer_id", "action", "explained_output", "base_value", "model_output"]
            + [f"shap_{name}" for name in FEATURE_NAMES]
        )
        for i, customer_id in enumerate(ids):
            action = int(explanation.actions[i])
            writer.writerow(
                [
                    customer_id,
                    explainer.table.names[action],
                    explainer.output_label(action),
                    f"{explanation.base_values[i]:.9g}",
                    f"{explanation.model_outputs[i]:.9g}",
                    *(f"{v:.9g}" for v in explanation.values[i]),
                ]
            )
    fig = action_summary_figure(
        explanation.values,
        explanation.data,
        explanation.actions,
        explainer.action_names,
        explainer.feature_names,
        kind=explainer.kind,
        title=f"Why the policy chooses each action: {len(ids):,} customers, one panel per action",
    )
    with staged_file(beeswarm) as staged:
        save_png(fig, staged)
    mean_abs = np.abs(np.asarray(explanation.values)).mean(axis=0)
    order = np.argsort(-mean_abs)[:5]
    typer.echo(f"Explained {len(ids):,} customers.")
    typer.echo(
        "Most influential features (mean |SHAP|): "
        + ", ".join(f"{FEATURE_NAMES[j]} {mean_abs[j]:.3g}" for j in order)
    )
    typer.echo(f"SHAP values: {path}")
    typer.echo(f"Beeswarm plot: {beeswarm}")
