"""The reward contract: batches of rewards, activations, and closing attribution windows.

Most customers who get a message do not buy, and nobody posts a zero for them. A policy that
learns, or an evaluation that averages, only the posted rewards then sees the buyers alone and
over-estimates every action. Closing the reward windows fixes that: once a decision's
attribution window is over, the decision log records its final reward, the sum of the parts
posted inside the window or the default reward (0 unless told otherwise) marked as a default
(:meth:`DecisionLog.close_windows`), and a reward that arrives later is late: logged, never
learned, and never replaces the final one.

A service with a window (``reward_window_days``, or a request's own ``reward_window_days``)
closes windows by itself: :class:`WindowCloser` runs :func:`service_close_due` every
``window_close_interval`` seconds in a background thread. The functions here run against a
:class:`~rec_env.serve.decision_log.DecisionLog` (``recenv rewards``) or through a running
:class:`~rec_env.serve.service.DecisionService` (the HTTP endpoints), whose online policy then
learns every new final reward in seq order, as it learns a single posted one.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rec_env.serve.decision_log import ActivationBatch, DecisionLog, RewardBatch

if TYPE_CHECKING:
    from rec_env.serve.service import DecisionService

__all__ = [
    "DAY_SECONDS",
    "BatchOutcome",
    "UnmatchedDecisionError",
    "WindowCloser",
    "close_windows",
    "decision_time",
    "event_ids_by_customer",
    "parse_as_of",
    "service_activate",
    "service_close_due",
    "service_close_windows",
    "service_record_rewards",
    "window_start",
]

logger = logging.getLogger(__name__)

DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to a batch of rewards (or to a window close) in a running service.

    Attributes:
        batch: The decision log's counts (for a close: ``recorded`` defaults, nothing else).
        learned: Rewards the online policy learned from now.
        n_updates: Rewards the online policy has learned from.
    """

    batch: RewardBatch
    learned: int
    n_updates: int


def parse_as_of(text: str | None) -> float:
    """Unix time of ``text``: Unix seconds or an ISO 8601 timestamp (UTC if it names no zone).

    None means now.

    Raises:
        ValueError: If ``text`` is neither.
    """
    if text is None:
        return datetime.now(UTC).timestamp()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"--as-of {text!r} is neither Unix seconds nor an ISO 8601 timestamp"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    if not math.isfinite(seconds):
        raise ValueError(f"--as-of {text!r} is not a finite time")
    return seconds


def decision_time(text: str) -> float:
    """The latest moment a ``decided_at`` value names.

    A bare date (``YYYY-MM-DD``) is its whole day (UTC); anything else is read by
    :func:`parse_as_of`.

    Raises:
        ValueError: If ``text`` is not a time.
    """
    text = text.strip()
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        return parse_as_of(text) + DAY_SECONDS - 1e-3
    return parse_as_of(text)


class UnmatchedDecisionError(ValueError):
    """No logged decision of a customer at or before the given time.

    Args:
        index: The row (0-based).
        message: What is wrong.
    """

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def _utc(seconds: float) -> str:
    """Unix seconds as an ISO 8601 UTC time, to the second."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_ids_by_customer(
    log: DecisionLog, customer_ids: Sequence[str], decided_at: Sequence[float]
) -> list[str]:
    """The event id of each customer's latest decision made at or before its ``decided_at``.

    This joins rewards to decisions when the caller kept customer ids and send dates rather
    than event ids. It covers strategy models' decisions logged with a customer id.

    Raises:
        UnmatchedDecisionError: Naming the first row without such a decision.
    """
    import bisect

    wanted = set(customer_ids)
    customers, events, times = log.customer_decisions(wanted)
    by_customer: dict[str, tuple[list[float], list[str]]] = {}
    for customer, event, moment in sorted(zip(customers, events, times, strict=True),
                                          key=lambda row: (row[0], row[2])):  # fmt: skip
        history = by_customer.setdefault(customer, ([], []))
        history[0].append(moment)
        history[1].append(event)
    found: list[str] = []
    for index, (customer, moment) in enumerate(zip(customer_ids, decided_at, strict=True)):
        moments, ids = by_customer.get(customer, ([], []))
        position = bisect.bisect_right(moments, moment)
        if position == 0:
            first = f"; their first is at {_utc(moments[0])}" if moments else ""
            raise UnmatchedDecisionError(
                index,
                f"no decision for customer {customer!r} at or before {_utc(moment)}{first} "
                "(decisions are timed when they are made)",
            )
        found.append(ids[position - 1])
    return found


def window_start(window_days: float, as_of: float) -> float:
    """Unix time before which a decision's window of ``window_days`` has closed at ``as_of``.

    Raises:
        ValueError: If the window is not a positive finite number of days.
    """
    if not (math.isfinite(window_days) and window_days > 0):
        raise ValueError(f"the window must be a positive number of days, not {window_days!r}")
    return as_of - window_days * DAY_SECONDS


def close_windows(
    log: DecisionLog,
    window_days: float | None,
    default_reward: float = 0.0,
    as_of: float | None = None,
) -> int:
    """Close every reward window that is over: the sum of the parts, or the default reward.

    Decisions logged with a window close by their own; those logged without one close by
    ``window_days`` (None: they stay open). See :meth:`DecisionLog.close_windows`.

    Args:
        log: The decision log.
        window_days: The attribution window of decisions logged without one, in days from the
            decision (or its activation).
        default_reward: The reward of a decision nobody posted a reward for (finite).
        as_of: Unix time the windows are closed at (default: now).

    Returns:
        The number of final rewards recorded.

    Raises:
        ValueError: If the window or the default reward is invalid.
    """
    if not math.isfinite(default_reward):
        raise ValueError(f"the default reward must be finite, not {default_reward!r}")
    now = parse_as_of(None) if as_of is None else as_of
    seconds = None if window_days is None else now - window_start(window_days, now)
    return log.close_windows(now, seconds, default_reward)


def service_record_rewards(
    service: DecisionService,
    event_ids: Sequence[str],
    rewards: Sequence[float],
    part_ids: Sequence[str | None] | None = None,
) -> BatchOutcome:
    """Record a batch of rewards in one transaction; an online policy learns the new ones.

    The caller has checked every reward is in the service's range. Parts of windows still open
    are recorded, not learned: they are learned when their window closes.

    Raises:
        RewardBatchError: If an item's event is unknown, needs an activation, or has a
            different reward (nothing is recorded or learned).
    """
    outcome = _record_and_learn(
        service, lambda: service.log.record_rewards(event_ids, rewards, part_ids)
    )
    metrics = service.metrics
    batch = outcome.batch
    final = batch.recorded - batch.pending
    if final:
        metrics.add_reward("recorded", batch.recorded_sum)
    for _ in range(final - 1 + batch.pending):
        metrics.add_reward("recorded")
    for _ in range(batch.duplicates):
        metrics.add_reward("duplicate")
    for _ in batch.late:
        metrics.add_reward("conflict")  # a late reward is refused as a single one would be
    return outcome


def service_close_windows(
    service: DecisionService,
    window_days: float | None,
    default_reward: float = 0.0,
    as_of: float | None = None,
) -> BatchOutcome:
    """:func:`close_windows` on the service's log; an online policy learns the final rewards."""
    return _record_and_learn(
        service,
        lambda: RewardBatch(close_windows(service.log, window_days, default_reward, as_of), 0),
    )


def service_close_due(service: DecisionService, as_of: float | None = None) -> BatchOutcome:
    """Close the windows of the service's requests that are over, with its default reward.

    Only requests logged with a window close (the service's ``reward_window_days`` or their
    own); an online policy learns their final rewards.
    """
    default = service.settings.default_reward
    return service_close_windows(service, None, default, as_of)


def service_activate(
    service: DecisionService,
    event_ids: Sequence[str],
    activated_at: float | Sequence[float | None] | None = None,
) -> ActivationBatch:
    """Activate decisions of the service's log (:meth:`DecisionLog.activate`).

    Raises:
        EventBatchError: If an item's event is unknown (nothing is recorded).
    """
    return service.log.activate(event_ids, activated_at)


class WindowCloser:
    """Close the service's reward windows in a background thread, every ``interval`` seconds.

    Args:
        service: The service whose windows close.
        interval: Seconds between two closes.
    """

    def __init__(self, service: DecisionService, interval: float) -> None:
        self._service = service
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recenv-window-closer", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (a close under way finishes first)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if self._service.log.closed:
                return
            try:
                outcome = service_close_due(self._service)
            except Exception:  # a failed close is retried at the next tick
                logger.exception("closing the reward windows failed")
                continue
            if outcome.batch.recorded:
                logger.info(
                    "closed %d reward windows (%d learned)",
                    outcome.batch.recorded,
                    outcome.learned,
                )


def _record_and_learn(service: DecisionService, write: Callable[[], RewardBatch]) -> BatchOutcome:
    """Write rewards, then learn every logged reward the policy has not, in seq order.

    Writing and learning hold the learner's lock, as a single reward does, so the policy learns
    rewards in the order of their seqs, as a replay of the log after a restart would.
    """
    learner = service.learner
    if learner is None:
        batch = write()
        return BatchOutcome(batch, 0, service.n_updates)
    learned = 0
    with learner.lock:
        batch = write()
        for seq, decision, reward in service.log.rewards_after(
            learner.reward_seq, service.model_version
        ):
            if service.reward_in_range(reward) and learner.learn(decision, reward, seq):
                learned += 1
            else:
                learner.reward_seq = seq
        n_updates = learner.n_updates
    if learned:
        learner.snapshot_if_due()
    return BatchOutcome(batch, learned, n_updates)
