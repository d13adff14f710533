"""Every offline learner by name: ``learn(name, data, **options) -> Policy``.

The names are what ``recenv offline learn`` takes; each maps to one ``fit_*`` function whose
keyword arguments are the learner's options. Unknown names and options raise ``ValueError``
listing the valid ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from rec_env.agents.base import Policy
from rec_env.datasets.logged import LoggedBanditData

__all__ = ["LEARNERS", "learn", "learner_options", "offline_policy_classes"]


def _registry() -> dict[str, Callable[..., Policy]]:
    from rec_env.agents.offline.bandits import fit_lin_ts_replay, fit_linucb_replay
    from rec_env.agents.offline.ipw import fit_ipw_learner
    from rec_env.agents.offline.reward_model import fit_reward_model
    from rec_env.agents.offline.uplift import fit_dr_learner, fit_t_learner, fit_x_learner

    return {
        "reward_model": fit_reward_model,
        "t_learner": fit_t_learner,
        "x_learner": fit_x_learner,
        "dr_learner": fit_dr_learner,
        "ipw": fit_ipw_learner,
        "linucb_replay": fit_linucb_replay,
        "lin_ts_replay": fit_lin_ts_replay,
    }


LEARNERS: tuple[str, ...] = (
    "reward_model",
    "t_learner",
    "x_learner",
    "dr_learner",
    "ipw",
    "linucb_replay",
    "lin_ts_replay",
)
"""The learners' names, in the order of the issue."""


def _key(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    if key not in LEARNERS:
        raise ValueError(f"unknown offline learner {name!r}; choose one of: {', '.join(LEARNERS)}")
    return key


def learner_options(name: str) -> dict[str, Any]:
    """The options of learner ``name`` and their defaults (``inspect.Parameter.empty``: none).

    Raises:
        ValueError: For an unknown name.
    """
    function = _registry()[_key(name)]
    parameters = list(inspect.signature(function).parameters.values())[1:]  # after data
    return {p.name: p.default for p in parameters}


def learn(name: str, data: LoggedBanditData, **options: Any) -> Policy:
    """Learn policy ``name`` from the log ``data``.

    Args:
        name: One of :data:`LEARNERS` (``-`` and case are ignored).
        data: The logged decisions.
        **options: The learner's keyword arguments (see :func:`learner_options`), e.g.
            ``estimator``, ``outcome``, ``reward``, ``control``, ``objective``, ``alpha``.

    Returns:
        The learned policy.

    Raises:
        ValueError: For an unknown name or option, or what the learner refuses.
    """
    key = _key(name)
    allowed = learner_options(key)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"{key} has no option {', '.join(map(repr, unknown))}; its options: "
            f"{', '.join(allowed)}"
        )
    return _registry()[key](data, **options)


def offline_policy_classes() -> dict[str, type[Policy]]:
    """The policy classes of the offline learners by ``algorithm`` (for loading saved runs)."""
    from rec_env.agents.offline.catalog import CatalogPolicy
    from rec_env.agents.offline.ipw import IPWLearnerPolicy
    from rec_env.agents.offline.reward_model import RewardModelPolicy
    from rec_env.agents.offline.uplift import DRLearnerPolicy, TLearnerPolicy, XLearnerPolicy

    classes = (
        RewardModelPolicy,
        TLearnerPolicy,
        XLearnerPolicy,
        DRLearnerPolicy,
        IPWLearnerPolicy,
        CatalogPolicy,
    )
    return {cls.algorithm: cls for cls in classes}
