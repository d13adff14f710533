"""Every agent by name: SB3 algorithms, bandits and baselines, for each world.

Names are what ``recenv train``, ``recenv compare`` and ``run.json`` use. SB3 and bandit modules
are imported only when their agents are built, so listing names stays light. Baselines depend on
the world (:data:`BASELINES_BY_WORLD`): the strategy world's ``rule`` sends the strategy
catalog's discounts, the item world's ``popular`` sends products; :func:`make_baseline` refuses
a baseline outside its world with a ``ValueError``.
"""

from __future__ import annotations

from typing import Any

from rec_env.agents.base import Policy
from rec_env.catalog import ActionTable
from rec_env.dynamics import CustomerModel
from rec_env.settings import DEFAULT_HORIZON

__all__ = [
    "ALGORITHMS",
    "ALL_ALGORITHMS",
    "ALL_BASELINES",
    "BANDIT_ALGORITHMS",
    "BASELINES",
    "BASELINES_BY_WORLD",
    "HYBRID_BANDITS",
    "ITEM_BASELINES",
    "SB3_ALGORITHMS",
    "SLATE_BASELINES",
    "TRAINABLE",
    "action_kwargs",
    "check_algorithm",
    "make_bandit",
    "make_baseline",
    "policy_kwargs",
    "world_of",
]

SB3_ALGORITHMS: tuple[str, ...] = ("ppo", "a2c", "dqn", "maskable_ppo")
HYBRID_BANDITS: tuple[str, ...] = ("hybrid_linucb", "hybrid_lin_ts")
"""Bandits with action features (a product's topics, price …): they generalise over products."""
BANDIT_ALGORITHMS: tuple[str, ...] = (
    "linucb",
    "lin_ts",
    "thompson",
    "ucb1",
    "egreedy",
    *HYBRID_BANDITS,
)
BASELINES: tuple[str, ...] = ("no_action", "random", "best_fixed", "rule", "oracle", "cooldown")
"""The strategy world's baselines."""
ITEM_BASELINES: tuple[str, ...] = (
    "no_action",
    "random",
    "popular",
    "popular_category",
    "item_similarity",
    "oracle",
    "diverse_oracle",
    "cooldown",
)
"""The single-product item world's baselines (:mod:`rec_env.agents.item_baselines`)."""
SLATE_BASELINES: tuple[str, ...] = ITEM_BASELINES[:-1]
"""The slate world's: the item world's as slates, without ``cooldown``."""
BASELINES_BY_WORLD: dict[str, tuple[str, ...]] = {
    "strategy": BASELINES,
    "item": ITEM_BASELINES,
    "slate": SLATE_BASELINES,
}
ALL_BASELINES: tuple[str, ...] = tuple(dict.fromkeys(BASELINES + ITEM_BASELINES))
TRAINABLE: tuple[str, ...] = SB3_ALGORITHMS + BANDIT_ALGORITHMS
ALGORITHMS: tuple[str, ...] = TRAINABLE + BASELINES
"""Every agent of the strategy world."""
ALL_ALGORITHMS: tuple[str, ...] = TRAINABLE + ALL_BASELINES
"""Every agent name of any world."""


def check_algorithm(name: str, allowed: tuple[str, ...] = ALGORITHMS) -> str:
    """Return ``name`` normalised, or raise ``ValueError`` listing the valid names."""
    key = name.strip().lower().replace("-", "_")
    if key not in allowed:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(allowed)}")
    return key


def world_of(model: Any) -> str:
    """``"strategy"``, ``"item"`` or ``"slate"``: the world a customer model simulates."""
    if not hasattr(model, "products"):
        return "strategy"
    return "slate" if hasattr(model, "decode") else "item"


def action_kwargs(actions: ActionTable) -> dict[str, Any]:
    """The constructor arguments every policy takes from a catalog: action names and channels.

    Knowing the channels makes the policy consent-safe on the env's observations (see
    :class:`~rec_env.agents.base.Policy`). For a model, use :func:`policy_kwargs`, which adds
    the item world's features.
    """
    return {"action_names": actions.names, "action_channels": actions.channel_names}


def policy_kwargs(model: Any) -> dict[str, Any]:
    """The constructor arguments every policy built for ``model`` takes.

    :func:`action_kwargs` of its actions and, in the item and slate worlds, ``features``: the
    model's feature space (its 16 + 3C names with their bounds, so that the policy reads consent
    from the item observation and bandits scale each feature into [0, 1]).
    """
    kwargs = action_kwargs(model.actions)
    if world_of(model) != "strategy":
        from rec_env.feature_space import FeatureSpace

        kwargs["features"] = FeatureSpace(model.feature_names, model.obs_low, model.obs_high)
    return kwargs


def make_bandit(name: str, model: CustomerModel, seed: int, **hyperparams: Any) -> Policy:
    """A fresh bandit for the model's action space, consent-safe on the env's observations.

    In the item world the hybrid bandits get the products' ``action_features``
    (:func:`rec_env.item_actions.action_features`) unless ``hyperparams`` gives them.

    Raises:
        ValueError: For an unknown name, or in the slate world (bandits pick one action).
    """
    from rec_env.agents.bandits import BANDITS

    key = check_algorithm(name, BANDIT_ALGORITHMS)
    world = world_of(model)
    if world == "slate":
        raise ValueError(
            f"{name}: bandits choose one action per customer; the slate world takes slates "
            "(use the item world, or a slate baseline or an SB3 policy)"
        )
    if key in HYBRID_BANDITS and world == "item" and "action_features" not in hyperparams:
        from rec_env.item_actions import action_features

        hyperparams["action_features"] = action_features(model.products, model.actions)  # type: ignore[attr-defined]
    return BANDITS[key](
        model.actions.n_actions,
        random_state=seed,
        **policy_kwargs(model),
        **hyperparams,
    )


def _check_baseline(name: str, world: str) -> str:
    """``name`` normalised if it is a baseline of ``world``; else a ``ValueError`` that says why."""
    allowed = BASELINES_BY_WORLD[world]
    key = name.strip().lower().replace("-", "_")
    if key in ALL_BASELINES and key not in allowed:  # a known name, of another world
        raise ValueError(
            f"baseline {name!r} makes no sense in the {world} world; "
            f"choose one of: {', '.join(allowed)}"
        )
    return check_algorithm(name, allowed)


def make_baseline(
    name: str,
    model: CustomerModel,
    seed: int = 0,
    evaluation_customers: int = 5_000,
    **options: Any,
) -> Policy:
    """A baseline policy, consent-safe; ``best_fixed`` is found by evaluating every fixed action.

    Args:
        name: One of the model's world's baselines (:data:`BASELINES_BY_WORLD`).
        model: The customer model (its catalog defines the actions).
        seed: Seed of the policy's generator and of the search cohort.
        evaluation_customers: Cohort size used to find the best fixed action.
        **options: Constructor arguments of the item world's baselines (for example
            ``boredom_threshold`` or ``min_days_between_contacts``).

    Raises:
        ValueError: For an unknown name, a baseline of another world, or options the baseline
            does not take.
    """
    world = world_of(model)
    key = _check_baseline(name, world)
    if world != "strategy":
        return _make_item_baseline(key, model, seed, world, options)
    if options:
        raise ValueError(f"{name} takes no options, got {', '.join(options)}")
    return _make_strategy_baseline(key, model, seed, evaluation_customers)


def _make_strategy_baseline(
    key: str, model: CustomerModel, seed: int, evaluation_customers: int
) -> Policy:
    from rec_env.agents.baselines import (
        ContactCooldown,
        FixedActionPolicy,
        MyopicOracle,
        RandomPolicy,
        RuleBasedPolicy,
        best_fixed_action,
    )

    table = model.actions
    n, catalog = table.n_actions, action_kwargs(table)
    if key == "no_action":  # doing nothing: the reference every comparison needs
        return FixedActionPolicy(n, table.no_action, table.no_action, **catalog)
    if key == "random":
        return RandomPolicy(n, random_state=seed, **catalog)
    if key == "rule":
        return RuleBasedPolicy.from_catalog(table)
    if key == "oracle":
        return MyopicOracle(n, **catalog)
    if key == "cooldown":
        return ContactCooldown(MyopicOracle(n, **catalog), table.no_action)
    best, _ = best_fixed_action(model, evaluation_customers, DEFAULT_HORIZON, seed)
    return FixedActionPolicy(n, best, table.no_action, **catalog)


def _make_item_baseline(
    key: str, model: Any, seed: int, world: str, options: dict[str, Any]
) -> Policy:
    from rec_env.agents import item_baselines as item
    from rec_env.agents import item_oracles
    from rec_env.agents.baselines import (
        ContactCooldown,
        FixedActionPolicy,
        MyopicOracle,
        RandomPolicy,
    )

    content = {
        "popular": item.MostPopular,
        "popular_category": item.PopularInCategory,
        "item_similarity": item.ItemSimilarity,
    }
    if key in content:
        return content[key].from_model(model, random_state=seed, **options)
    if key == "diverse_oracle":
        return item_oracles.DiverseOracle.from_model(model, **options)
    if world == "slate" and key in ("random", "oracle"):
        cls = item.RandomProducts if key == "random" else item_oracles.OracleSlates
        return cls.from_model(model, random_state=seed, **options)
    if options:
        raise ValueError(f"{key} takes no options, got {', '.join(options)}")
    table, kwargs = model.actions, policy_kwargs(model)
    n = table.n_actions
    if key == "no_action":
        return FixedActionPolicy(n, table.no_action, table.no_action, **kwargs)
    if key == "random":
        return RandomPolicy(n, random_state=seed, **kwargs)
    if key == "oracle":
        return MyopicOracle(n, **kwargs)
    return ContactCooldown(MyopicOracle(n, **kwargs), table.no_action)
