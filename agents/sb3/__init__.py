"""Stable-Baselines3 agents: policy wrappers, hyperparameters as data, and training.

* :mod:`~rec_env.agents.sb3.policy`: :class:`SB3Policy` and its PPO, A2C, DQN and MaskablePPO
  subclasses (inference: what serving needs);
* :mod:`~rec_env.agents.sb3.slate`: :class:`SlatePPOPolicy`, a PPO actor of the slate world
  whose scoring vectors :class:`SlateDecoder` turns into slates;
* :mod:`~rec_env.agents.sb3.schemas`: the pydantic schemas of ``hyperparams/<algorithm>.yaml``
  (one section per env id: strategy, item and slate worlds);
* :mod:`~rec_env.agents.sb3.training`: :func:`train_sb3` on the batched vector env of any world.
* :mod:`~rec_env.agents.sb3.network` and :mod:`~rec_env.agents.sb3.network_policy`: the numpy
  copy of a policy network, and the torch-free policy a serving process loads from it.

Example::

    from rec_env.agents.sb3 import SB3Policy, train_sb3

    policy, curve = train_sb3("ppo", {}, seed=0, eval_every=500_000)
    policy.save("runs/ppo")
    policy = SB3Policy.load("runs/ppo")
    item_policy, _ = train_sb3("maskable_ppo", {"world": "item"}, seed=0)

Importing this package imports nothing heavy: each name below loads its module, and with it
torch, Stable-Baselines3 and sb3-contrib, on first access (:pep:`562`), so that the numpy
modules of the package serve without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.agents.sb3.policy import (
        MODEL_FILE,
        POLICY_CLASSES,
        A2CPolicy,
        DQNPolicy,
        MaskablePPOPolicy,
        PPOPolicy,
        SB3Policy,
        ScaledFeatures,
    )
    from rec_env.agents.sb3.schemas import (
        HYPERPARAMETER_SCHEMAS,
        A2CHyperparams,
        DQNHyperparams,
        Hyperparams,
        PolicyKwargs,
        PPOHyperparams,
        hyperparams_file,
        load_hyperparams,
        resolve_hyperparams,
    )
    from rec_env.agents.sb3.slate import SLATE_POLICY_CLASSES, SlateDecoder, SlatePPOPolicy
    from rec_env.agents.sb3.training import (
        ExpectedRewards,
        LearningCurveCallback,
        check_world,
        policy_arguments,
        train_sb3,
    )

__all__ = [
    "HYPERPARAMETER_SCHEMAS",
    "MODEL_FILE",
    "POLICY_CLASSES",
    "SLATE_POLICY_CLASSES",
    "A2CHyperparams",
    "A2CPolicy",
    "DQNHyperparams",
    "DQNPolicy",
    "ExpectedRewards",
    "Hyperparams",
    "LearningCurveCallback",
    "MaskablePPOPolicy",
    "PPOHyperparams",
    "PPOPolicy",
    "PolicyKwargs",
    "SB3Policy",
    "ScaledFeatures",
    "SlateDecoder",
    "SlatePPOPolicy",
    "check_world",
    "hyperparams_file",
    "load_hyperparams",
    "policy_arguments",
    "resolve_hyperparams",
    "train_sb3",
]

_MODULES = {
    **dict.fromkeys(("MODEL_FILE", "POLICY_CLASSES", "ScaledFeatures"), "policy"),
    **dict.fromkeys(("A2CPolicy", "DQNPolicy", "MaskablePPOPolicy", "PPOPolicy"), "policy"),
    "SB3Policy": "policy",
    **dict.fromkeys(("HYPERPARAMETER_SCHEMAS", "A2CHyperparams", "DQNHyperparams"), "schemas"),
    **dict.fromkeys(("Hyperparams", "PolicyKwargs", "PPOHyperparams"), "schemas"),
    **dict.fromkeys(("hyperparams_file", "load_hyperparams", "resolve_hyperparams"), "schemas"),
    **dict.fromkeys(("SLATE_POLICY_CLASSES", "SlateDecoder", "SlatePPOPolicy"), "slate"),
    **dict.fromkeys(("ExpectedRewards", "LearningCurveCallback", "check_world"), "training"),
    **dict.fromkeys(("policy_arguments", "train_sb3"), "training"),
}
"""Public name -> the submodule defining it (loaded on first access)."""


def __getattr__(name: str) -> Any:
    """Load the submodule of ``name`` (and torch) when the name is first used."""
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
