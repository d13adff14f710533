r"""Replay evaluation of a (learning) policy on uniformly logged data (Li et al. 2011).

The logged rounds are shown to the policy one at a time, in order. When the policy's choice
equals the logged action the round is *kept*: the policy observes its reward and (if it learns)
updates; otherwise the round is discarded and the policy learns nothing. When the logging policy
chose uniformly at random, the kept rounds are distributed exactly as if the policy had run
live, so the mean reward of the first :math:`T` kept rounds is an unbiased estimate of the
policy's average reward over :math:`T` live rounds, learning included. About :math:`1/A` of the
rounds are kept.

Reference:
    L. Li, W. Chu, J. Langford and X. Wang. Unbiased offline evaluation of contextual-bandit-
    based news article recommendation algorithms. WSDM 2011, algorithm 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rec_env.agents.base import Policy
from rec_env.datasets.logged import LoggedBanditData

__all__ = ["ReplayResult", "replay"]


@dataclass(frozen=True)
class ReplayResult:
    """The kept rounds of a replay.

    Attributes:
        policy: Name of the policy.
        rows: ``(T,)`` logged row of each kept round, in order.
        rewards: ``(T,)`` reward of each kept round.
        n_logged: Logged rounds replayed (kept or not).
    """

    policy: str
    rows: np.ndarray
    rewards: np.ndarray
    n_logged: int

    @property
    def n_kept(self) -> int:
        """Number of kept rounds :math:`T`."""
        return int(self.rewards.shape[0])

    @property
    def cumulative_reward(self) -> np.ndarray:
        """``(T,)`` reward summed over the first ``t`` kept rounds, ``t = 1 … T``."""
        return np.cumsum(self.rewards)

    @property
    def mean_reward(self) -> float:
        """Mean reward per kept round (NaN if none was kept)."""
        return float(self.rewards.mean()) if self.n_kept else float("nan")


def _check_uniform(data: LoggedBanditData) -> None:
    """Raise ``ValueError`` unless every propensity is ``1 / n_actions`` and nothing is masked."""
    uniform = 1.0 / data.n_actions
    if not np.allclose(data.propensities, uniform, rtol=1e-6):
        raise ValueError(
            f"replay needs uniformly random logging (every propensity 1/{data.n_actions}); "
            "use an importance-weighted estimator (IPS, SNIPS, DR) for other logs"
        )
    if data.action_masks is not None and not data.action_masks.all():
        raise ValueError("replay needs every action to be allowed in every logged round")


def replay(
    policy: Policy,
    data: LoggedBanditData,
    learn: bool = True,
    deterministic: bool = False,
    name: str | None = None,
) -> ReplayResult:
    """Replay the log through ``policy``, one round at a time (Li et al. 2011).

    Args:
        policy: Any policy over the data's contexts; online policies (with ``update``) learn
            from each kept round when ``learn`` is true.
        data: Logged decisions from uniformly random logging, in the order to replay.
        learn: Update online policies on the kept rounds.
        deterministic: Passed to ``predict`` (False: Thompson sampling samples, as live).
        name: Name of the policy in the result (default: its ``algorithm``).

    Returns:
        The kept rounds and their rewards.

    Raises:
        ValueError: If the logging was not uniform over all actions.
    """
    _check_uniform(data)
    update = getattr(policy, "update", None) if learn else None
    if not callable(update):  # a frozen policy: its choices do not depend on the order
        choices = policy.predict(data.contexts, None, deterministic)
        rows = np.flatnonzero(choices == data.actions)
        return ReplayResult(name or policy.algorithm, rows, data.rewards[rows], data.n)
    kept_rows: list[int] = []
    for i in range(data.n):
        row = slice(i, i + 1)
        action = int(policy.predict(data.contexts[row], None, deterministic)[0])
        if action != data.actions[i]:
            continue
        kept_rows.append(i)
        update(data.contexts[row], data.actions[row], data.rewards[row])
    rows = np.array(kept_rows, dtype=np.intp)
    return ReplayResult(name or policy.algorithm, rows, data.rewards[rows], data.n)
