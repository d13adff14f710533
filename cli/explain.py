"""``recenv explain``: why does the policy recommend this action to this customer?"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rec_env.cli._errors import fail, reporting_bad_input
from rec_env.features import FEATURE_NAMES, FEATURES

if TYPE_CHECKING:
    from rec_env.agents.explain.explainer import PolicyExplainer

__all__ = ["explain_command", "plain_words"]

_UNITS = {f.name: f for f in FEATURES}
_OUTPUT_WORDS = {
    "probability": "probability",
    "q_value": "Q-value (expected discounted profit, USD)",
    "estimated_reward": "estimated reward (USD)",
}


def _format_value(name: str, value: float) -> str:
    feature = _UNITS[name]
    if feature.binary or float(value).is_integer():
        return f"{value:g}"
    return f"{value:.3g}"


def plain_words(feature: str, value: float, contribution: float, output: str) -> str:
    """One contribution as a sentence, e.g. ``discount_sensitive = 1 raises P(x) by 0.21``."""
    verb = "raises" if contribution >= 0 else "lowers"
    return f"{feature} = {_format_value(feature, value)} {verb} {output} by {abs(contribution):.3g}"


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
    catalog = info.env_kwargs.get("catalog", "strategy")
    return PolicyExplainer(
        policy, n_background=background, population=info.population, catalog=catalog, seed=seed
    )


def explain_command(
    customer: Annotated[
        Path,
        typer.Argument(
            help="A customer JSON file (like profiles/users/*.json, all 16 features), or a CSV "
            "file with one column per feature for --summary."
        ),
    ],
    model: Annotated[Path, typer.Option(help="Run directory written by recenv train.")],
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
        int, typer.Option(help="Background customers drawn from the run's population.")
    ] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the background draw.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Waterfall PNG [default: <customer>_waterfall.png]; with --summary the SHAP CSV "
            "[default: <customers>_shap.csv], next to a <name>_beeswarm.png."
        ),
    ] = None,
) -> None:
    """Explain a trained policy's decision with exact Shapley values over the 16 features.

    For PPO, A2C and MaskablePPO the explained value is the probability of the recommended
    action; for DQN its Q-value; for LinUCB and linear Thompson sampling its estimated reward.
    Contributions are measured against a background of customers drawn from the run's population
    (same seed, same background). The model file's SHA-256 is checked before it is loaded.
    """
    if top < 0:
        fail(f"--top must be at least 0, got {top}")
    if background < 1:
        fail(f"--background must be at least 1, got {background}")
    suffix = customer.suffix.lower()
    if summary and suffix != ".csv":
        fail(f"{customer}: --summary reads a CSV file with one column per feature")
    if not summary and suffix == ".csv":
        fail(f"{customer}: a CSV file holds many customers; add --summary")
    if suffix not in (".json", ".csv"):
        fail(f"{customer}: expected a .json customer or a .csv file of customers")
    with reporting_bad_input():
        if summary:
            from rec_env.customer import load_customers_csv

            ids, obs = load_customers_csv(customer)
        else:
            from rec_env.customer import load_customer, observation_of

            profile = load_customer(customer)
            ids, obs = [profile.customer_id], observation_of(profile, customer)[None, :]
        explainer = _load_policy(model, background, seed)
        actions = None
        if action is not None:
            actions = np.full(obs.shape[0], explainer.table.index(action))
        explanation = explainer.explain(obs, actions=actions)
    if summary:
        _write_summary(explainer, explanation, ids, customer, out)
    else:
        _print_one(explainer, explanation, ids[0], customer, top, out)


def _print_one(
    explainer: PolicyExplainer,
    explanation: object,
    customer_id: str,
    source: Path,
    top: int,
    out: Path | None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

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
    path = out or Path(f"{source.stem}_waterfall.png")
    shap.plots.waterfall(explanation[0], max_display=12, show=False)
    plt.title(f"{customer_id}: {output}")
    plt.savefig(path, dpi=120, bbox_inches="tight")
    plt.close("all")
    console.print(f"Waterfall plot: {path}")


def _write_summary(
    explainer: PolicyExplainer,
    explanation: object,
    ids: list[str],
    source: Path,
    out: Path | None,
) -> None:
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    path = out or Path(f"{source.stem}_shap.csv")
    with path.open("w", newline="", encoding="utf-8") as handle:
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
    beeswarm = path.with_name(f"{path.stem.removesuffix('_shap')}_beeswarm.png")
    shap.plots.beeswarm(explanation, max_display=16, show=False)
    plt.savefig(beeswarm, dpi=120, bbox_inches="tight")
    plt.close("all")
    mean_abs = np.abs(np.asarray(explanation.values)).mean(axis=0)
    order = np.argsort(-mean_abs)[:5]
    typer.echo(f"Explained {len(ids):,} customers.")
    typer.echo(
        "Most influential features (mean |SHAP|): "
        + ", ".join(f"{FEATURE_NAMES[j]} {mean_abs[j]:.3g}" for j in order)
    )
    typer.echo(f"SHAP values: {path}")
    typer.echo(f"Beeswarm plot: {beeswarm}")
