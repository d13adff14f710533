"""What the decision log stores and returns: decisions, receipts and its errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FLOAT",
    "INT",
    "ColumnarDecisions",
    "LoggedDecision",
    "RewardConflictError",
    "RewardReceipt",
    "UnknownEventError",
]

FLOAT = np.dtype("<f8")
"""How floats are stored in blobs."""
INT = np.dtype("<i4")
"""How integers (actions, product indices) are stored in blobs."""


class UnknownEventError(KeyError):
    """No decision was logged under this event id."""


class RewardConflictError(ValueError):
    """The event already has a different reward.

    Attributes:
        recorded: The reward recorded first.
    """

    def __init__(self, event_id: str, recorded: float) -> None:
        super().__init__(f"event {event_id} already has a different reward ({recorded!r})")
        self.recorded = recorded


@dataclass(frozen=True)
class ColumnarDecisions:
    """The decisions of one call to an item or slate model, logged as columns of its request.

    Attributes:
        actions: ``(n,)`` served action indices (a slate's: the action of its first product
            on its channel, or no action if nothing is sent).
        propensities: ``(n,)`` probability of each served decision (a slate's: of the whole
            message).
        request_allowed: ``(A,)`` bool, the actions the request allowed before consent (in
            stock, not excluded).
        slates: ``(n, K)`` product indices of each slate in display order, -1 where empty
            (slate models only).
        slate_probabilities: ``(n, K)`` probability of each position given the positions above
            it, NaN where empty (slate models only).
        draws: Uniform numbers drawn from the sampler per customer.
    """

    actions: np.ndarray
    propensities: np.ndarray
    request_allowed: np.ndarray
    slates: np.ndarray | None = None
    slate_probabilities: np.ndarray | None = None
    draws: int = 1


@dataclass(frozen=True)
class LoggedDecision:
    """One logged decision, as needed to learn from its reward.

    Attributes:
        event_id: The decision's id.
        model_version: Version of the model that decided.
        features: ``(F,)`` features of the customer (the model's ``feature_names``).
        action: Index of the served action.
        propensity: Probability with which it was served.
    """

    event_id: str
    model_version: str
    features: np.ndarray
    action: int
    propensity: float


@dataclass(frozen=True)
class RewardReceipt:
    """The outcome of :meth:`DecisionLog.record_reward`.

    Attributes:
        decision: The decision the reward belongs to.
        reward: The recorded reward.
        duplicate: True if this exact reward had already been recorded (nothing changed).
        seq: Sequence number of the reward's row (of the existing row for a duplicate):
            rewards are numbered 1, 2, … in the order they were recorded.
    """

    decision: LoggedDecision
    reward: float
    duplicate: bool
    seq: int
