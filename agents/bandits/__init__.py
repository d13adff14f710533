"""Hand-written bandits behind the :class:`~rec_env.agents.base.OnlinePolicy` interface.

Context-free (one value per action): :class:`EpsilonGreedy`, :class:`UCB1` and
:class:`ThompsonSampling` (Gaussian, Normal–Inverse-Gamma). Linear contextual (one ridge
regression per action on :func:`linear_contexts`): :class:`LinUCB` and
:class:`LinearThompsonSampling`, on any :class:`~rec_env.feature_space.FeatureSpace` (the env's
16 features by default) and any number of actions. Hybrid (shared customer × action-feature
parameters plus per-action ones, so they generalise across products): :class:`HybridLinUCB` and
:class:`HybridLinearThompsonSampling`.

Each is a dataclass of hyperparameters in the style of Open Bandit Pipeline, batch-first, seeded
by ``random_state`` and saved as ``policy.json`` + ``state.npz``. :data:`BANDITS` maps each
``algorithm`` name to its class, e.g. to rebuild a saved bandit::

    policy = BANDITS[read_policy_file(path)["algorithm"]].load(path)
"""

from __future__ import annotations

from rec_env.agents.bandits.base import STATE_FILE, BanditPolicy
from rec_env.agents.bandits.contextfree import UCB1, EpsilonGreedy, ThompsonSampling
from rec_env.agents.bandits.hybrid import HybridLinearThompsonSampling, HybridLinUCB
from rec_env.agents.bandits.linear import LinearThompsonSampling, LinUCB, linear_contexts

__all__ = [
    "BANDITS",
    "STATE_FILE",
    "UCB1",
    "BanditPolicy",
    "EpsilonGreedy",
    "HybridLinUCB",
    "HybridLinearThompsonSampling",
    "LinUCB",
    "LinearThompsonSampling",
    "ThompsonSampling",
    "linear_contexts",
]

BANDITS: dict[str, type[BanditPolicy]] = {
    cls.algorithm: cls
    for cls in (
        EpsilonGreedy,
        UCB1,
        ThompsonSampling,
        LinUCB,
        LinearThompsonSampling,
        HybridLinUCB,
        HybridLinearThompsonSampling,
    )
}
"""``algorithm`` → class: ``egreedy``, ``ucb1``, ``thompson``, ``linucb``, ``lin_ts``,
``hybrid_linucb``, ``hybrid_lin_ts``."""
