"""``recenv explain`` for runs of the item and slate envs: which product, by which channel, why.

A customer file of the item worlds holds the 16 strategy features (any subset, filled in as
for the strategy env) plus any of the item features of the run's product table
(``purchases_<category>``, ``recommended_<category>``, ``days_since_<category>``); those left
out mean no history in the category: 0 purchases, 0 products shown, 365 days.

What is explained, and how, is :mod:`rec_env.agents.explain.items` (the decision service's
``/v1/explain`` serves the same explanations); this module reads the customer file and prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rec_env.agents.explain.items import MAX_PLAYERS, FeatureGroups, Grouping, ItemExplainer
from rec_env.customer import CustomerProfile, FilledFeature
from rec_env.errors import ConfigError
from rec_env.features import FEATURE_NAMES

__all__ = ["ItemCustomer", "explain_item_customer", "read_item_customer"]


@dataclass(frozen=True)
class ItemCustomer:
    """A customer of the item worlds, read from a file.

    Attributes:
        customer_id: The file's id, else its name.
        obs: ``(1, 16 + 3C)`` float32 observation.
        filled_in: The strategy features left out and their values.
        history_left_out: How many item features were left out (no history).
    """

    customer_id: str
    obs: np.ndarray
    filled_in: tuple[FilledFeature, ...]
    history_left_out: int


def read_item_customer(path: Path, model: Any, assume_consent: tuple[str, ...]) -> ItemCustomer:
    """Read, validate and fill in an item customer file (module docstring).

    The file is a customer of ``profiles/users`` (nested or flat) whose features may include the
    item features of ``model``'s product table. Validation and filling in are the decision
    service's (:func:`rec_env.serve.item_schemas.item_features_type`,
    :class:`rec_env.serve.customers.CustomerFiller`): the same ranges, the same defaults.

    Raises:
        ConfigError: Naming the file, the field and the problem.
    """
    from pydantic import create_model

    from rec_env.config import load_model
    from rec_env.serve.customers import CustomerFiller
    from rec_env.serve.item_schemas import item_features_type

    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    features = item_features_type(model.features)
    schema = create_model(
        "ItemCustomerProfile",
        __base__=CustomerProfile,
        features=(features, Field(default_factory=dict)),
    )
    profile = load_model(path, schema)
    filled = CustomerFiller(model.features).fill_rows([dict(profile.features)], assume_consent)
    strategy = tuple(item for item in filled.filled_in if item.feature in FEATURE_NAMES)
    return ItemCustomer(
        profile.customer_id or path.stem,
        np.asarray(filled.observations, dtype=np.float32),
        strategy,
        len(filled.filled_in) - len(strategy),
    )


def explain_item_customer(
    policy: Any,
    model: Any,
    customer: ItemCustomer,
    action: str | None,
    top: int,
    background: np.ndarray,
    waterfall: Path,
    grouping: Grouping | None = None,
) -> None:
    """Print why ``policy`` recommends what it does to one customer, and save a waterfall.

    Args:
        policy: The run's SB3 policy (item or slate world).
        model: The run's world (its products and actions).
        customer: What :func:`read_item_customer` returned.
        action: An action name or product id to explain instead of the policy's choice.
        top: Contributions to print.
        background: ``(n, 16 + 3C)`` background customers.
        waterfall: Where to save the waterfall plot.
        grouping: The players; None: the first whose cost fits
            :data:`~rec_env.agents.explain.items.MAX_PLAYERS` (an explicit one has no limit).
    """
    from rec_env.cli.explain import plain_words, print_filled_in, save_waterfall
    from rec_env.serve.customers import NO_HISTORY_REASON

    customer_id, obs = customer.customer_id, customer.obs
    explainer = ItemExplainer(policy, model, background, MAX_PLAYERS if grouping is None else None)
    explained = explainer.explain(obs, action, grouping=grouping)
    contrast, values, groups = explained.contrast, explained.values, explained.groups
    names = list(model.feature_names)
    console = Console(soft_wrap=True, highlight=False)
    console.print(f"Customer [bold]{escape(customer_id)}[/]: {escape(contrast.lines[0])}")
    for line in contrast.lines[1:]:
        console.print(escape(line))
    others = (customer.history_left_out, NO_HISTORY_REASON.removeprefix("not given: "))
    print_filled_in(console, customer.filled_in, len(names), others)
    console.print(
        escape(
            f"{contrast.label} = {values.output:.3g}, the {contrast.words}; "
            f"{values.base_value:.3g} on average over {background.shape[0]} background customers"
        )
    )
    if groups.level != "feature":
        console.print(
            escape(
                f"Players: the 16 strategy features and the item history grouped by "
                f"{groups.level} (one player per feature would cost more than 2^{MAX_PLAYERS} "
                "network outputs per background customer)"
            )
        )
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("Top contributions")
    for g in explained.top_features(top):
        members, contribution = groups.members[g], float(values.values[g])
        if len(members) == 1:
            line = plain_words(names[members[0]], float(obs[0, members[0]]), contribution,
                               contrast.label)  # fmt: skip
        else:
            line = group_words(groups.names[g], members, names, obs[0], contribution,
                               contrast.label)  # fmt: skip
        table.add_row(escape(line))
    console.print(table)
    single = groups.level == "feature"
    labels = (
        names
        if single
        else [_player_label(groups, g, names, obs[0]) for g in range(len(groups.names))]
    )
    save_waterfall(values, obs[0] if single else None, labels,
                   f"{customer_id}: {contrast.label}", waterfall)  # fmt: skip
    console.print(f"Waterfall plot: {waterfall}")


def group_words(
    group: str,
    members: tuple[int, ...],
    names: list[str],
    x: np.ndarray,
    contribution: float,
    output: str,
    shown: int = 4,
) -> str:
    """A group's contribution as a sentence, with the customer's values of its features.

    E.g. ``history_footwear (purchases_footwear = 2, ...) raises P(x) by 0.21``; features with
    no history (0 purchases or recommendations, 365 days) are left out of long groups.
    """
    from rec_env.cli.explain import format_value

    listed = [j for j in members if len(members) <= shown or x[j] not in (0.0, 365.0)]
    words = [f"{names[j]} = {format_value(names[j], float(x[j]))}" for j in listed[:shown]]
    if len(listed) > shown:
        words.append(f"{len(listed) - shown} more")
    if len(listed) < len(members):
        words.append(f"{len(members) - len(listed)} with no history")
    verb = "raises" if contribution >= 0 else "lowers"
    return f"{group} ({', '.join(words)}) {verb} {output} by {abs(contribution):.3g}"


def _player_label(groups: FeatureGroups, g: int, names: list[str], x: np.ndarray) -> str:
    """A waterfall label: ``feature = value`` for a feature, the group's name for a group."""
    members = groups.members[g]
    if len(members) == 1:
        return f"{names[members[0]]} = {x[members[0]]:.3g}"
    return f"{groups.names[g]} ({len(members)} features)"
