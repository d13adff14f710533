"""Agents behind one policy interface: SB3 models, bandits and baselines.

Every agent implements :class:`Policy`: ``predict(obs, action_masks, deterministic)``,
``action_probabilities(obs, action_masks)``, ``save(directory)`` and ``load(directory)``; online
learners (bandits) add ``update(obs, actions, rewards)``. Importing this package does not import
torch: SB3 wrappers load with :mod:`rec_env.agents.sb3`.
"""

from __future__ import annotations

from rec_env.agents.base import OnlinePolicy, Policy
from rec_env.agents.baselines import (
    ContactCooldown,
    FixedActionPolicy,
    FlagTargetedPolicy,
    MyopicOracle,
    RandomPolicy,
    RuleBasedPolicy,
)
from rec_env.agents.evaluation.evaluate import KPI, Evaluation, evaluate
from rec_env.agents.registry import ALGORITHMS, BANDIT_ALGORITHMS, BASELINES, SB3_ALGORITHMS
from rec_env.agents.runs import load_policy, load_run

__all__ = [
    "ALGORITHMS",
    "BANDIT_ALGORITHMS",
    "BASELINES",
    "KPI",
    "SB3_ALGORITHMS",
    "ContactCooldown",
    "Evaluation",
    "FixedActionPolicy",
    "FlagTargetedPolicy",
    "MyopicOracle",
    "OnlinePolicy",
    "Policy",
    "RandomPolicy",
    "RuleBasedPolicy",
    "evaluate",
    "load_policy",
    "load_run",
]
