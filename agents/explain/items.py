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

``recenv explain`` (:mod:`rec_env.cli._item_explain`) prints these explanations and the
decision service serves them (``/v1/explain``); both call :class:`ItemExplainer`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rec_env.agents.explain.shapley import ShapleyValues
from rec_env.features import CHANNELS

__all__ = [
    "Contrast",
    "ContrastKind",
    "ExplanationTooCostlyError",
    "ItemExplainer",
    "ItemExplanation",
    "explainable",
    "item_contrast",
    "shapley_of",
]

ContrastKind = Literal["log_odds", "q_advantage", "score_margin"]
"""What an item explanation's value is (module docstring)."""


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


def shapley_of(contrast: Contrast, obs: np.ndarray, background: np.ndarray) -> ShapleyValues:
    """Exact Shapley values of the contrast at ``obs`` (network engine, one output)."""
    from rec_env.agents.explain.heads import SingleOutputHead
    from rec_env.agents.explain.network_shapley import NetworkShapley
    from rec_env.agents.explain.threads import pinned_threads

    with pinned_threads():
        engine = NetworkShapley.for_network(contrast.network, background)
        return engine.shap_values(obs[0], SingleOutputHead(0))


@dataclass(frozen=True)
class ItemExplanation:
    """Why the policy recommends what it does to one customer.

    Attributes:
        contrast: The explained decision and value.
        values: Shapley values of the contrast over every feature (``output`` =
            ``base_value`` + the sum of ``values``).
    """

    contrast: Contrast
    values: ShapleyValues

    def top_features(self, top: int | None = None) -> np.ndarray:
        """Indices of the ``top`` largest contributions (all by default), largest first."""
        return np.argsort(-np.abs(np.asarray(self.values.values)), kind="stable")[:top]


class ExplanationTooCostlyError(ValueError):
    """The customer differs from a background customer in more features than allowed.

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
        max_features: Refuse customers that differ from a background customer in more
            features than this (:class:`ExplanationTooCostlyError`); None: no limit.

    Raises:
        ValueError: If the policy has no network to explain (a bandit).
    """

    def __init__(
        self, policy: Any, model: Any, background: np.ndarray, max_features: int | None = None
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

    def differing_features(self, obs: np.ndarray) -> int:
        """The most features in which ``obs`` ``(1, F)`` differs from a background customer."""
        from rec_env.agents.explain.shapley import differing_features

        customer = np.asarray(obs, dtype=np.float32).reshape(-1)
        return max(len(p) for p in differing_features(customer, self.background))

    def explain(
        self, obs: np.ndarray, action: str | None = None, allowed: np.ndarray | None = None
    ) -> ItemExplanation:
        """Why the policy recommends what it does to the customer ``obs`` ``(1, F)``.

        Args:
            obs: ``(1, F)`` observation (filled in).
            action: An item action name (item world) or product id (slate world) to explain
                instead of the policy's choice.
            allowed: What the caller allows besides consent (:func:`item_contrast`).

        Raises:
            ExplanationTooCostlyError: If the customer differs from a background customer in
                more than ``max_features`` features.
            ValueError: For an action that is refused, or a decision with nothing to contrast.
            KeyError: For an unknown action or product.
        """
        obs = np.asarray(obs, dtype=np.float32).reshape(1, -1)
        if self.max_features is not None:
            k = self.differing_features(obs)
            if k > self.max_features:
                raise ExplanationTooCostlyError(
                    f"the customer differs from a background customer in {k} features; exact "
                    f"Shapley values cost 2^k network outputs, and up to {self.max_features} "
                    "are explained here (recenv explain has no limit)"
                )
        contrast = item_contrast(self.policy, self.model, obs, action, allowed)
        return ItemExplanation(contrast, shapley_of(contrast, obs, self.background))
