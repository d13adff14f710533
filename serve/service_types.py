"""What the decision service returns and raises (re-exported by :mod:`rec_env.serve.service`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rec_env.serve.decision_log import RewardReceipt

__all__ = [
    "ActionNotAllowedError",
    "BaselineNotAllowedError",
    "ColumnarResult",
    "DecisionRequest",
    "Decisions",
    "RewardOutOfRangeError",
    "RewardOutcome",
]


class ActionNotAllowedError(ValueError):
    """An action name is unknown, or may not be excluded or explained here."""


class BaselineNotAllowedError(ValueError):
    """An apprentice request's baseline action is not allowed for its customer.

    Args:
        row: The customer's position in the request.
        message: What is wrong.
    """

    def __init__(self, row: int, message: str) -> None:
        super().__init__(message)
        self.row = row


class RewardOutOfRangeError(ValueError):
    """A reward is not finite or outside the operator's range; it is neither logged nor learned.

    Attributes:
        reward: The rejected reward.
        low: Lowest accepted reward.
        high: Highest accepted reward.
    """

    def __init__(self, reward: float, low: float, high: float) -> None:
        super().__init__(f"reward {reward!r} is outside the accepted range [{low!r}, {high!r}]")
        self.reward = reward
        self.low = low
        self.high = high


@dataclass(frozen=True)
class DecisionRequest:
    """One request's customers and terms, for :meth:`DecisionService.decide_requests`.

    Attributes:
        obs: ``(n, F)`` features.
        excluded: ``(A,)`` or ``(n, A)`` bool, the actions the caller excluded (None: none).
        customer_ids: The customers' ids (for the holdout and the suppression list), or None.
        reward_window_days: The request's own attribution window (None: the service's).
        baseline: ``(n,)`` apprentice mode: the caller's own action indices, or None.
        baseline_propensities: Their propensities (None: 1 each).
    """

    obs: np.ndarray
    excluded: np.ndarray | None = None
    customer_ids: Sequence[str | None] | None = None
    reward_window_days: float | None = None
    baseline: np.ndarray | None = None
    baseline_propensities: Sequence[float | None] | np.ndarray | None = None


@dataclass(frozen=True)
class Decisions:
    """The decisions of one request.

    Attributes:
        event_ids: ``n`` event ids, as logged.
        actions: ``(n,)`` served action indices.
        propensities: ``(n,)`` probability of each served action.
        probabilities: ``(n, A)`` probabilities the actions were drawn from.
        holdout: ``(n,)`` bool, the customers in the holdout (their action is no_action).
        policy_actions: ``(n,)`` apprentice mode: the model's own actions, while ``actions``
            are the caller's baselines; None otherwise.
    """

    event_ids: list[str]
    actions: np.ndarray
    propensities: np.ndarray
    probabilities: np.ndarray
    holdout: np.ndarray
    policy_actions: np.ndarray | None = None


@dataclass(frozen=True)
class ColumnarResult:
    """The logged decisions of an item or slate request.

    Attributes:
        event_ids: ``n`` event ids, as logged.
        outcome: The decisions and what the response shows.
    """

    event_ids: list[str]
    outcome: Any


@dataclass(frozen=True)
class RewardOutcome:
    """What happened to a posted reward.

    Attributes:
        receipt: The decision log's receipt.
        learned: True if the online policy learned from the reward now.
        n_updates: Rewards the online policy has learned from.
    """

    receipt: RewardReceipt
    learned: bool
    n_updates: int
