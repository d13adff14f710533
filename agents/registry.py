"""Every agent by name: SB3 algorithms, bandits and baselines.

Names are what ``recenv train``, ``recenv compare`` and ``run.json`` use. SB3 and bandit modules
are imported only when their agents are built, so listing names stays light.
"""

from __future__ import annotations

from typing import Any

from rec_env.agents.base import Policy
from rec_env.catalog import ActionTable
from rec_env.dynamics import CustomerModel
from rec_env.settings import DEFAULT_HORIZON

__all__ = [
    "ALGORITHMS",
    "BANDIT_ALGORITHMS",
    "BASELINES",
    "SB3_ALGORITHMS",
    "TRAINABLE",
    "action_kwargs",
    "check_algorithm",
    "make_bandit",
    "make_baseline",
]

SB3_ALGORITHMS: tuple[str, ...] = ("ppo", "a2c", "dqn", "maskable_ppo")
BANDIT_ALGORITHMS: tuple[str, ...] = ("linucb", "lin_ts", "thompson", "ucb1", "egreedy")
BASELINES: tuple[str, ...] = ("random", "best_fixed", "rule", "oracle", "cooldown")
TRAINABLE: tuple[str, ...] = SB3_ALGORITHMS + BANDIT_ALGORITHMS
ALGORITHMS: tuple[str, ...] = TRAINABLE + BASELINES


def check_algorithm(name: str, allowed: tuple[str, ...] = ALGORITHMS) -> str:
    """Return ``name`` normalised, or raise ``ValueError`` listing the valid names."""
    key = name.strip().lower().replace("-", "_")
    if key not in allowed:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(allowed)}")
    return key


def action_kwargs(actions: ActionTable) -> dict[str, Any]:
    """The constructor arguments every policy takes from a catalog: action names and channels.

    Knowing the channels makes the policy consent-safe on the env's observations (see
    :class:`~rec_env.agents.base.Policy`).
    """
    return {"action_names": actions.names, "action_channels": actions.channel_names}


def make_bandit(name: str, model: CustomerModel, seed: int, **hyperparams: Any) -> Policy:
    """A fresh bandit for the model's action space, consent-safe on the env's observations."""
    from rec_env.agents.bandits import BANDITS

    cls = BANDITS[check_algorithm(name, BANDIT_ALGORITHMS)]
    return cls(
        model.actions.n_actions,
        random_state=seed,
        **action_kwargs(model.actions),
        **hyperparams,
    )


def make_baseline(
    name: str, model: CustomerModel, seed: int = 0, evaluation_customers: int = 5_000
) -> Policy:
    """A baseline policy, consent-safe; ``best_fixed`` is found by evaluating every fixed action.

    Args:
        name: One of :data:`BASELINES`.
        model: The customer model (its catalog defines the actions).
        seed: Seed of the policy's generator and of the search cohort.
        evaluation_customers: Cohort size used to find the best fixed action.
    """
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
    key = check_algorithm(name, BASELINES)
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
