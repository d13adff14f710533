"""``recenv explain`` for runs of the item and slate envs: which product, by which channel, why.

A customer file of the item worlds holds the 16 strategy features (any subset, filled in as
for the strategy env) plus any of the item features of the run's product table
(``purchases_<category>``, ``recommended_<category>``, ``days_since_<category>``); those left
out mean no history in the category: 0 purchases, 0 products shown, 365 days.

The explained value is a *contrast*, so that the answer says why this product and not another:

* single-product SB3 policies (PPO, MaskablePPO, A2C): the log-odds ``log P(a) / P(b)`` of the
  recommended action ``a`` against the runner-up ``b``; DQN: the Q-value advantage
  ``Q(a) - Q(b)``;
* the slate world's PPO: the score margin of the slate's first product over the best product
  left out of the slate (the policy ranks products by score).

Each is one output of the policy's network (:func:`rec_env.agents.sb3.network.output_difference`),
so the exact Shapley values over all the features come from the network engine
(:class:`~rec_env.agents.explain.network_shapley.NetworkShapley`) at the cost of one output per
coalition; the probability of one of ~600 item actions would cost a softmax over all of them
per coalition, hundreds of times more. The background is customers in operation in the item
world (:func:`~rec_env.agents.explain.background.operating_background`).
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

from rec_env.customer import CustomerProfile, FilledFeature
from rec_env.errors import ConfigError
from rec_env.features import CHANNELS, FEATURE_NAMES

__all__ = [
    "Contrast",
    "ItemCustomer",
    "explain_item_customer",
    "item_contrast",
    "read_item_customer",
    "shapley_of",
]


@dataclass(frozen=True)
class Contrast:
    """What is explained: one network output and the words for it.

    Attributes:
        network: The one-output :class:`~rec_env.agents.sb3.network.NumpyNetwork`.
        label: The explained value, e.g. ``log P(P0042:email)/P(P0107:email)``.
        words: What the value is.
        lines: The decision, to print first.
    """

    network: Any
    label: str
    words: str
    lines: tuple[str, ...]


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


def _product(model: Any, j: int) -> str:
    products = model.products
    category = products.category_names[products.category[j]]
    return f"{products.ids[j]} {products.names[j]!r} ({category}, ${products.price[j]:.2f})"


def _action_words(model: Any, action: int) -> str:
    table = model.actions
    if table.product[action] < 0:
        return "no message"
    offer = f" at {table.discount[action]:.0%} off" if table.discount[action] > 0 else ""
    channel = table.channel_names[action]
    return f"{_product(model, int(table.product[action]))} by {channel}{offer}"


def _single_product(policy: Any, model: Any, obs: np.ndarray, action: str | None) -> Contrast:
    """Why action ``a`` rather than the runner-up: log-odds (actor) or advantage (Q-network)."""
    from rec_env.agents.sb3.network import numpy_network, output_difference

    network = numpy_network(policy)
    if network is None:
        raise ValueError(f"cannot explain a {policy.algorithm} run of the item world")
    probs = policy.action_probabilities(obs)[0]
    q_values = policy.q_values(obs)[0] if hasattr(policy, "q_values") else None
    ranking = np.asarray(probs if q_values is None else q_values, dtype=np.float64)
    masks = policy.allowed_actions(obs)
    allowed = np.ones(probs.size, dtype=bool) if masks is None else masks[0]
    ranking = np.where(allowed, ranking, -np.inf)
    chosen = int(np.argmax(ranking)) if action is None else model.actions.index(action)
    if not allowed[chosen]:
        raise ValueError(f"{action} is not allowed for this customer (no consent or no stock)")
    ranking[chosen] = -np.inf
    if not np.isfinite(ranking).any():
        raise ValueError("only one action is allowed for this customer: nothing to contrast")
    runner = int(np.argmax(ranking))
    names = model.actions.names
    if q_values is None:
        label = f"log P({names[chosen]})/P({names[runner]})"
        words = "log-odds of the recommendation over the runner-up"
    else:
        label = f"Q({names[chosen]}) - Q({names[runner]})"
        words = "Q-value advantage over the runner-up (expected discounted profit, USD)"
    verb = "recommend" if action is None else "explaining"
    lines = (
        f"{verb} {_action_words(model, chosen)}, probability {probs[chosen]:.3g}",
        f"runner-up: {_action_words(model, runner)}, probability {probs[runner]:.3g}",
    )
    return Contrast(output_difference(network, chosen, runner), label, words, lines)


def _slate(policy: Any, model: Any, obs: np.ndarray, action: str | None) -> Contrast:
    """Why the first product of the slate (or ``action``) rather than the best one left out."""
    from rec_env.agents.sb3.network import output_difference

    slates, channels, discounts = policy.predict_slates(obs)
    slate = [int(j) for j in slates[0] if j >= 0]
    if not slate:
        raise ValueError("no product is allowed for this customer: the slate is empty")
    scores = policy.slate.scores(policy.scoring_vectors(obs))[0]
    scores[~policy.slate.available] = -np.inf
    first = slate[0] if action is None else model.products.index(action)
    left_out = scores.copy()
    left_out[[*slate, first]] = -np.inf
    if not np.isfinite(left_out).any():
        raise ValueError("every product is in the slate: nothing to contrast")
    rival = int(np.argmax(left_out))
    ids = model.products.ids
    channel = "no message" if channels[0] >= len(CHANNELS) else f"by {CHANNELS[channels[0]]}"
    offer = f" at {discounts[0]:.0%} off" if discounts[0] > 0 else ""
    lines = (
        f"slate {channel}{offer}:",
        *(f"  {k}. {_product(model, j)}" for k, j in enumerate(slate, start=1)),
        f"best product left out: {_product(model, rival)}",
    )
    return Contrast(
        output_difference(policy.score_network(), first, rival),
        f"score({ids[first]}) - score({ids[rival]})",
        "score margin over the best product left out (the policy ranks products by score)",
        lines,
    )


def item_contrast(policy: Any, model: Any, obs: np.ndarray, action: str | None) -> Contrast:
    """The explained contrast of ``policy``'s decision for one customer (module docstring).

    Args:
        policy: A trained SB3 policy of the item or slate world.
        model: The world's customer model (products and actions).
        obs: ``(1, 16 + 3C)`` observation.
        action: An item action name (item world) or product id (slate world) to explain
            instead of the policy's choice.

    Raises:
        ValueError: For a policy without a plain network, an unknown or refused action, or a
            decision with nothing to contrast.
        KeyError: For an unknown action or product.
    """
    if hasattr(policy, "predict_slates") and hasattr(policy, "score_network"):
        return _slate(policy, model, obs, action)
    return _single_product(policy, model, obs, action)


def shapley_of(contrast: Contrast, obs: np.ndarray, background: np.ndarray) -> Any:
    """Exact Shapley values of the contrast at ``obs`` (network engine, one output)."""
    from rec_env.agents.explain.heads import SingleOutputHead
    from rec_env.agents.explain.network_shapley import NetworkShapley
    from rec_env.agents.explain.threads import pinned_threads

    with pinned_threads():
        engine = NetworkShapley.for_network(contrast.network, background)
        return engine.shap_values(obs[0], SingleOutputHead(0))


def explain_item_customer(
    policy: Any,
    model: Any,
    customer: ItemCustomer,
    action: str | None,
    top: int,
    background: np.ndarray,
    waterfall: Path,
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
    """
    from rec_env.cli.explain import plain_words, print_filled_in, save_waterfall
    from rec_env.serve.customers import NO_HISTORY_REASON

    customer_id, obs = customer.customer_id, customer.obs
    contrast = item_contrast(policy, model, obs, action)
    values = shapley_of(contrast, obs, background)
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
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("Top contributions")
    for j in np.argsort(-np.abs(values.values), kind="stable")[:top]:
        value, contribution = float(obs[0, j]), float(values.values[j])
        table.add_row(escape(plain_words(names[j], value, contribution, contrast.label)))
    console.print(table)
    save_waterfall(values, obs[0], names, f"{customer_id}: {contrast.label}", waterfall)
    console.print(f"Waterfall plot: {waterfall}")
