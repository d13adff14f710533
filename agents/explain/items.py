"""Why this product for this customer: item and slate policies' contrasts and Shapley values.

The explained value is a *contrast*, so that the answer says why this product and not another:

* single-product SB3 policies (PPO, MaskablePPO, A2C): the log-odds ``log P(a) / P(b)`` of the
  recommended action ``a`` against the runner-up ``b`` (``kind = "log_odds"``); DQN: the
  Q-value advantage ``Q(a) - Q(b)`` (``"q_advantage"``);
* the slate world's PPO: the score margin of the slate's first product over the best product
  left out of the slate (``"score_margin"``: the policy ranks products by score).

Each is one output of the policy's network (:func:`rec_env.agents.sb3.network.output_difference`),
so the exact Shapley values over all the features come from the network engine
(:class:`~rec_env.agents.explain.network_shapley.NetworkShapley`) at the cost of one output per
coalition; the probability of one of ~600 item actions would cost a softmax over all of them
per coalition, hundreds of times more. The background is customers in operation in the item
world (:func:`~rec_env.agents.explain.background.operating_background`).

**Grouping.** Exact Shapley values cost ``2^k`` network outputs per background customer, ``k``
being the players in which the customer differs from it. Customers in operation differ from one
another in 20 to 30 of the ``16 + 3C`` features, so one player per feature is often out of reach.
The explainer then takes the first grouping, in the order of :data:`GROUPINGS`, whose cost fits
(:class:`FeatureGroups`): one player per feature; the 16 strategy features plus one player per
category (its purchases, recommendations and days since); or the 16 strategy features plus one
player per item feature kind (all categories' purchases, and so on). Each is the exact Shapley
value of the game whose players are the groups (a group moves all its features at once), so
``base_value + Σ values == output`` holds at every level; what a coarser level gives up is the
split within a group, not exactness. On customers in operation of the default item world the
three levels fit ``k ≤ 22`` for about 9 %, 57 % and 100 % of customers.

``recenv explain`` (:mod:`rec_env.cli._item_explain`) prints these explanations and the
decision service serves them (``/v1/explain``); both call :class:`ItemExplainer`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rec_env.agents.explain.shapley import ShapleyValues, differing_features
from rec_env.features import CHANNELS, FEATURE_NAMES
from rec_env.item_features import ITEM_FEATURE_KINDS

__all__ = [
    "GROUPINGS",
    "MAX_PLAYERS",
    "Contrast",
    "ContrastKind",
    "ExplanationTooCostlyError",
    "FeatureGroups",
    "Grouping",
    "ItemExplainer",
    "ItemExplanation",
    "explainable",
    "item_contrast",
    "shapley_of",
]

ContrastKind = Literal["log_odds", "q_advantage", "score_margin"]
"""What an item explanation's value is (module docstring)."""

Grouping = Literal["feature", "category", "kind"]
"""The players of an explanation (module docstring)."""

GROUPINGS: tuple[Grouping, ...] = ("feature", "category", "kind")
"""The groupings, most detailed first: the explainer takes the first that fits its limit."""

MAX_PLAYERS = 22
"""Default limit on the players in which a customer may differ from a background customer: at
22, exact Shapley values cost a few seconds and a few hundred MB."""


@dataclass(frozen=True)
class FeatureGroups:
    """The players of an explanation: a partition of the features into named groups.

    Attributes:
        level: The grouping (:data:`Grouping`).
        index: ``(F,)`` the group of every feature.
        names: The group names: a feature's own name for a group of one,
            ``history_<category>`` for a category's item features, ``<kind>_by_category`` for
            one item feature kind over the categories.
        members: The feature indices of every group.
    """

    level: Grouping
    index: np.ndarray
    names: tuple[str, ...]
    members: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, feature_names: tuple[str, ...], level: Grouping) -> FeatureGroups:
        """The grouping ``level`` of an item world's features (strategy features stay alone).

        Raises:
            ValueError: For an unknown level or an item feature of no known kind.
        """
        if level not in GROUPINGS:
            raise ValueError(f"unknown grouping {level!r}; expected one of {', '.join(GROUPINGS)}")
        keys: list[str] = []
        for name in feature_names:
            if level == "feature" or name in FEATURE_NAMES:
                keys.append(name)
                continue
            kind = next((k for k in ITEM_FEATURE_KINDS if name.startswith(f"{k}_")), None)
            if kind is None:
                raise ValueError(f"{name!r} is neither a strategy nor an item history feature")
            category = name.removeprefix(f"{kind}_")
            keys.append(f"history_{category}" if level == "category" else f"{kind}_by_category")
        names = tuple(dict.fromkeys(keys))
        position = {name: g for g, name in enumerate(names)}
        index = np.array([position[key] for key in keys], dtype=np.intp)
        members = tuple(tuple(np.flatnonzero(index == g).tolist()) for g in range(len(names)))
        return cls(level, index, names, members)

    def players(self, obs: np.ndarray, background: np.ndarray) -> int:
        """The most groups in which ``obs`` ``(F,)`` differs from a background customer."""
        return max(
            np.unique(self.index[p]).size
            for p in differing_features(np.asarray(obs, dtype=np.float32), background)
        )


@dataclass(frozen=True)
class Contrast:
    """What is explained: one network output, the decision it contrasts, and the words for it.

    Attributes:
        network: The one-output :class:`~rec_env.agents.sb3.network.NumpyNetwork`.
        kind: What the value is (:data:`ContrastKind`).
        label: The explained value, e.g. ``log P(P0042:email)/P(P0107:email)``.
        words: What the value is, in words.
        lines: The decision, to print first.
        chosen: The explained action index (item world) or product index (slate world).
        rival: The runner-up action (item world) or best product left out (slate world).
        slate: The slate's product indices in display order (slate world), else None.
        channel: The slate's channel index (``len(CHANNELS)``: none), slate world only.
        discount: The slate's offer, slate world only.
    """

    network: Any
    kind: ContrastKind
    label: str
    words: str
    lines: tuple[str, ...]
    chosen: int
    rival: int
    slate: tuple[int, ...] | None = None
    channel: int | None = None
    discount: float = 0.0


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


def _single_product(
    policy: Any, model: Any, obs: np.ndarray, action: str | None, allowed: np.ndarray | None
) -> Contrast:
    """Why action ``a`` rather than the runner-up: log-odds (actor) or advantage (Q-network)."""
    from rec_env.agents.sb3.network import numpy_network, output_difference

    network = numpy_network(policy)
    if network is None:
        raise ValueError(f"cannot explain a {policy.algorithm} run of the item world")
    probs = policy.action_probabilities(obs)[0]
    q_values = policy.q_values(obs)[0] if hasattr(policy, "q_values") else None
    ranking = np.asarray(probs if q_values is None else q_values, dtype=np.float64)
    masks = policy.allowed_actions(obs, None if allowed is None else allowed[None, :])
    allowed = np.ones(probs.size, dtype=bool) if masks is None else masks[0]
    ranking = np.where(allowed, ranking, -np.inf)
    chosen = int(np.argmax(ranking)) if action is None else model.actions.index(action)
    if not allowed[chosen]:
        raise ValueError(
            f"{action} is not allowed for this customer (no consent, no stock or excluded)"
        )
    ranking[chosen] = -np.inf
    if not np.isfinite(ranking).any():
        raise ValueError("only one action is allowed for this customer: nothing to contrast")
    runner = int(np.argmax(ranking))
    names = model.actions.names
    kind: ContrastKind
    if q_values is None:
        kind, label = "log_odds", f"log P({names[chosen]})/P({names[runner]})"
        words = "log-odds of the recommendation over the runner-up"
    else:
        kind, label = "q_advantage", f"Q({names[chosen]}) - Q({names[runner]})"
        words = "Q-value advantage over the runner-up (expected discounted profit, USD)"
    verb = "recommend" if action is None else "explaining"
    lines = (
        f"{verb} {_action_words(model, chosen)}, probability {probs[chosen]:.3g}",
        f"runner-up: {_action_words(model, runner)}, probability {probs[runner]:.3g}",
    )
    network = output_difference(network, chosen, runner)
    return Contrast(network, kind, label, words, lines, chosen, runner)


def _slate(
    policy: Any, model: Any, obs: np.ndarray, product: str | None, allowed: np.ndarray | None
) -> Contrast:
    """Why the first product of the slate (or ``product``) rather than the best one left out."""
    from rec_env.agents.sb3.network import output_difference

    available = np.asarray(policy.slate.available, dtype=bool)
    if allowed is not None:
        available = available & allowed
    slates, channels, discounts = policy.predict_slates(obs, available[None, :])
    slate = [int(j) for j in slates[0] if j >= 0]
    if not slate:
        raise ValueError("no product is allowed for this customer: the slate is empty")
    scores = policy.slate.scores(policy.scoring_vectors(obs))[0]
    scores[~available] = -np.inf
    first = slate[0] if product is None else model.products.index(product)
    if not available[first]:
        raise ValueError(f"{product} is not allowed for this customer (no stock or excluded)")
    left_out = scores.copy()
    left_out[[*slate, first]] = -np.inf
    if not np.isfinite(left_out).any():
        raise ValueError("every product is in the slate: nothing to contrast")
    rival = int(np.argmax(left_out))
    ids = model.products.ids
    channel = int(channels[0])
    words = "no message" if channel >= len(CHANNELS) else f"by {CHANNELS[channel]}"
    offer = f" at {discounts[0]:.0%} off" if discounts[0] > 0 else ""
    lines = (
        f"slate {words}{offer}:",
        *(f"  {k}. {_product(model, j)}" for k, j in enumerate(slate, start=1)),
        f"best product left out: {_product(model, rival)}",
    )
    return Contrast(
        output_difference(policy.score_network(), first, rival),
        "score_margin",
        f"score({ids[first]}) - score({ids[rival]})",
        "score margin over the best product left out (the policy ranks products by score)",
        lines,
        first,
        rival,
        tuple(slate),
        channel,
        float(discounts[0]),
    )


def _is_slate_policy(policy: Any) -> bool:
    return hasattr(policy, "predict_slates") and hasattr(policy, "score_network")


def explainable(policy: Any) -> bool:
    """True if :func:`item_contrast` can explain ``policy`` (an SB3 network, not a bandit)."""
    if _is_slate_policy(policy):
        return True
    from rec_env.agents.sb3.network import numpy_network

    return numpy_network(policy) is not None


def item_contrast(
    policy: Any,
    model: Any,
    obs: np.ndarray,
    action: str | None,
    allowed: np.ndarray | None = None,
) -> Contrast:
    """The explained contrast of ``policy``'s decision for one customer (module docstring).

    Args:
        policy: A trained SB3 policy of the item or slate world.
        model: The world's customer model (products and actions).
        obs: ``(1, F)`` observation.
        action: An item action name (item world) or product id (slate world) to explain
            instead of the policy's choice.
        allowed: What the caller allows besides consent: ``(n_actions,)`` bool in the item
            world, ``(n_products,)`` bool in the slate world (default: everything in stock).

    Raises:
        ValueError: For a policy without a plain network, an unknown or refused action, or a
            decision with nothing to contrast.
        KeyError: For an unknown action or product.
    """
    if _is_slate_policy(policy):
        return _slate(policy, model, obs, action, allowed)
    return _single_product(policy, model, obs, action, allowed)


def shapley_of(
    contrast: Contrast,
    obs: np.ndarray,
    background: np.ndarray,
    groups: FeatureGroups | None = None,
) -> ShapleyValues:
    """Exact Shapley values of the contrast at ``obs`` (network engine, one output).

    With ``groups``, one value per group (the Shapley values of the grouped game).
    """
    from rec_env.agents.explain.heads import SingleOutputHead
    from rec_env.agents.explain.network_shapley import NetworkShapley
    from rec_env.agents.explain.threads import pinned_threads

    with pinned_threads():
        engine = NetworkShapley.for_network(contrast.network, background)
        index = None if groups is None or groups.level == "feature" else groups.index
        return engine.shap_values(obs[0], SingleOutputHead(0), index)


@dataclass(frozen=True)
class ItemExplanation:
    """Why the policy recommends what it does to one customer.

    Attributes:
        contrast: The explained decision and value.
        values: Shapley values of the contrast, one per group of ``groups`` (``output`` =
            ``base_value`` + the sum of ``values``).
        groups: The players (one per feature at the ``"feature"`` level).
    """

    contrast: Contrast
    values: ShapleyValues
    groups: FeatureGroups

    def top_features(self, top: int | None = None) -> np.ndarray:
        """Indices of the ``top`` largest contributions (all by default), largest first.

        They index ``groups.names`` (the features themselves at the ``"feature"`` level).
        """
        return np.argsort(-np.abs(np.asarray(self.values.values)), kind="stable")[:top]


class ExplanationTooCostlyError(ValueError):
    """The customer differs from a background customer in more players than allowed.

    Exact Shapley values cost ``2^k`` network outputs (and memory) per background customer,
    where ``k`` is the number of features in which the customer differs from it.
    """


class ItemExplainer:
    """Explain an item or slate policy's decisions against one background sample.

    Args:
        policy: The run's SB3 policy (item or slate world).
        model: The run's world (its products and actions).
        background: ``(n, F)`` background customers, e.g. customers in operation
            (:func:`~rec_env.agents.explain.background.operating_background`).
        max_features: Most players in which a customer may differ from a background customer
            (:data:`MAX_PLAYERS`); the explainer takes the first grouping within it, and refuses
            customers beyond it at the coarsest (:class:`ExplanationTooCostlyError`). None: no
            limit, one player per feature unless a grouping is asked for.

    Raises:
        ValueError: If the policy has no network to explain (a bandit).
    """

    def __init__(
        self,
        policy: Any,
        model: Any,
        background: np.ndarray,
        max_features: int | None = MAX_PLAYERS,
    ) -> None:
        if not explainable(policy):
            raise ValueError(f"cannot explain a {policy.algorithm} run of the item world")
        self.policy = policy
        self.model = model
        self.background = np.asarray(background, dtype=np.float32)
        self.feature_names = tuple(model.feature_names)
        self.max_features = max_features

    def warm_up(self) -> None:
        """Compile the engine's kernels on a customer next to the background (cheap)."""
        from rec_env.features import consent_columns

        customer = self.background[:1].copy()
        customer[0, consent_columns(self.feature_names) or []] = 1.0  # something to contrast
        with contextlib.suppress(ValueError):
            contrast = item_contrast(self.policy, self.model, customer, None)
            shapley_of(contrast, customer, self.background[:1])

    def differing_features(self, obs: np.ndarray, level: Grouping = "feature") -> int:
        """The most players in which ``obs`` ``(1, F)`` differs from a background customer."""
        groups = FeatureGroups.of(self.feature_names, level)
        return groups.players(np.asarray(obs).reshape(-1), self.background)

    def grouping(self, obs: np.ndarray, level: Grouping | None = None) -> FeatureGroups:
        """The players of ``obs``'s explanation: ``level``, else the first that fits.

        Raises:
            ExplanationTooCostlyError: If the customer differs from a background customer in
                more than ``max_features`` players at ``level`` (at the last grouping if None).
        """
        customer = np.asarray(obs, dtype=np.float32).reshape(-1)
        levels = GROUPINGS if level is None else (level,)
        if self.max_features is None:
            return FeatureGroups.of(self.feature_names, levels[0])
        counts: list[str] = []
        for candidate in levels:
            groups = FeatureGroups.of(self.feature_names, candidate)
            k = groups.players(customer, self.background)
            if k <= self.max_features:
                return groups
            counts.append(f"{k} by {candidate}")
        raise ExplanationTooCostlyError(
            f"the customer differs from a background customer in too many players "
            f"({', '.join(counts)}); exact Shapley values cost 2^k network outputs, and up to "
            f"{self.max_features} players are explained here"
        )

    def explain(
        self,
        obs: np.ndarray,
        action: str | None = None,
        allowed: np.ndarray | None = None,
        grouping: Grouping | None = None,
    ) -> ItemExplanation:
        """Why the policy recommends what it does to the customer ``obs`` ``(1, F)``.

        Args:
            obs: ``(1, F)`` observation (filled in).
            action: An item action name (item world) or product id (slate world) to explain
                instead of the policy's choice.
            allowed: What the caller allows besides consent (:func:`item_contrast`).
            grouping: The players (:data:`Grouping`); None: the first that fits
                ``max_features`` (module docstring).

        Raises:
            ExplanationTooCostlyError: If the customer differs from a background customer in
                more than ``max_features`` players (:meth:`grouping`).
            ValueError: For an action that is refused, or a decision with nothing to contrast.
            KeyError: For an unknown action or product.
        """
        obs = np.asarray(obs, dtype=np.float32).reshape(1, -1)
        groups = self.grouping(obs, grouping)
        contrast = item_contrast(self.policy, self.model, obs, action, allowed)
        return ItemExplanation(contrast, shapley_of(contrast, obs, self.background, groups), groups)
