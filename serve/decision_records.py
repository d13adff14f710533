"""What the decision log stores and returns: decisions, receipts and its errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FLOAT",
    "INT",
    "ActivationBatch",
    "ColumnarDecisions",
    "EventBatchError",
    "LateRewardError",
    "LoggedDecision",
    "NotActivatedError",
    "RewardBatchError",
    "RewardConflictError",
    "RewardReceipt",
    "RewardTerms",
    "UnknownEventError",
]

FLOAT = np.dtype("<f8")
"""How floats are stored in blobs."""
INT = np.dtype("<i4")
"""How integers (actions, product indices) are stored in blobs."""


class UnknownEventError(KeyError):
    """No decision was logged under this event id."""


class RewardConflictError(ValueError):
    """The event (or the part of its reward) already has a different reward.

    Attributes:
        recorded: The reward recorded first.
    """

    def __init__(self, event_id: str, recorded: float, part_id: str | None = None) -> None:
        part = f" part {part_id!r}" if part_id else ""
        super().__init__(f"event {event_id}{part} already has a different reward ({recorded!r})")
        self.recorded = recorded


class NotActivatedError(RewardConflictError):
    """The decision needs an activation before its reward (``require_activation``)."""

    def __init__(self, event_id: str) -> None:
        ValueError.__init__(
            self,
            f"event {event_id} is not activated: this service learns only from delivered "
            f"decisions (require_activation); activate it first (POST /v1/events/{event_id}/"
            "activate), or leave its reward out if the message was never sent",
        )
        self.recorded = float("nan")


class EventBatchError(ValueError):
    """An item of a batch (rewards or activations) is refused, so none of the batch is recorded.

    Args:
        index: The item's index in the batch.
        field: The item's field at fault (``event_id`` or ``reward``).
        kind: ``unknown`` (no such decision), ``conflict`` (a different reward is recorded) or
            ``not_activated`` (the decision needs an activation first).
        message: What is wrong.
    """

    def __init__(self, index: int, field: str, kind: str, message: str) -> None:
        super().__init__(f"item {index}, {field}: {message}")
        self.index = index
        self.field = field
        self.kind = kind
        self.reason = message


@dataclass(frozen=True)
class RewardTerms:
    """The reward contract a request is logged under.

    Attributes:
        window_seconds: Its attribution window (None: a posted reward is final at once).
        require_activation: Only its activated decisions get rewards.
    """

    window_seconds: float | None = None
    require_activation: bool = False

    def __post_init__(self) -> None:
        if self.window_seconds is not None and not (
            np.isfinite(self.window_seconds) and self.window_seconds > 0
        ):
            raise ValueError(f"the window must be a positive number, not {self.window_seconds!r}")

    @property
    def stored(self) -> bool:
        """True if the request needs a ``request_terms`` row (anything but the defaults)."""
        return self.window_seconds is not None or self.require_activation


@dataclass(frozen=True)
class ActivationBatch:
    """The outcome of :meth:`DecisionLog.activate`.

    Attributes:
        activated: Decisions activated now.
        duplicates: Items whose decision was already activated (its first time stands).
    """

    activated: int
    duplicates: int


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
            rewards are numbered 1, 2, … in the order they were recorded. 0 for a part.
        pending: True if the reward is a part of a window still open: it adds up with the
            event's other parts and is learned when the window closes, not now.
    """

    decision: LoggedDecision
    reward: float
    duplicate: bool
    seq: int
    pending: bool = False


class LateRewardError(RewardConflictError):
    """The event's reward window closed: its final reward stands, a late one is not learned.

    The late reward is kept in ``late_rewards`` for the record.

    Args:
        event_id: The event.
        recorded: The final reward recorded when its window closed (None: the window is over
            but not closed yet).
    """

    def __init__(self, event_id: str, recorded: float | None) -> None:
        final = "it is over" if recorded is None else f"its reward ({recorded!r}) stands"
        ValueError.__init__(
            self,
            f"event {event_id}: its reward window closed ({final}); a late reward is logged "
            "but never learned from",
        )
        self.event_id = event_id
        self.recorded = recorded


class RewardBatchError(EventBatchError):
    """An item of a reward batch is refused, so none of the batch is recorded.

    Args:
        index: The item's index in the batch.
        field: The item's field at fault (``event_id`` or ``reward``).
        kind: ``unknown`` (no such decision), ``conflict`` (a different reward is recorded) or
            ``not_activated`` (the decision needs an activation first).
        message: What is wrong.
    """
