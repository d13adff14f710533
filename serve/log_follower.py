"""Online learning shared by replicas: every replica learns the shared log's rewards in seq order.

Several ``recenv serve`` replicas on one PostgreSQL decision log each hold an online policy. The
log numbers final rewards (``rewards.seq``: posted rewards of decisions without a window, and
closed windows, defaults included) without gaps and makes them visible in that order
(:mod:`rec_env.datasets.decision_log_backend`), whichever replica recorded them. So each
replica's learner replays the log's rewards after its watermark, in seq order, exactly as a
restarted server replays its own log:

* when it records a reward itself (:func:`record_and_catch_up`): the rewards the other
  replicas recorded since its watermark are learned first, then its own, never skipped;
* every ``refresh_seconds`` in the background (:class:`LogFollower`), so a replica that
  receives no rewards still learns those the others recorded.

Every replica therefore learns every final reward exactly once, in the same order, and their
policies' learned values agree once they have caught up with the same seq (their decisions
still draw from their own samplers: give each replica its own ``--seed``, or none). Each replica
keeps its own ``--state-dir``: a snapshot's watermark is a seq of the shared log, valid for any
replica of the same model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from rec_env.serve.decision_log import LoggedDecision, RewardReceipt

if TYPE_CHECKING:
    from rec_env.serve.service import DecisionService

__all__ = ["LogFollower", "catch_up", "record_and_catch_up"]

logger = logging.getLogger(__name__)


def catch_up(service: DecisionService) -> int:
    """Learn the log's final rewards after the learner's watermark, in seq order.

    Returns:
        The number of rewards learned (0 for an offline policy).
    """
    learner = service.learner
    if learner is None:
        return 0

    def after_watermark() -> Iterator[tuple[int, LoggedDecision, float]]:
        # read the watermark once replay holds the learner's lock, not before: a reward
        # learned while this thread waited for the lock would be learned twice
        yield from service.log.rewards_after(learner.reward_seq, service.model_version)

    learned = learner.replay(after_watermark(), service.reward_in_range)
    if learned:
        learner.snapshot_if_due()
    return learned


def record_and_catch_up(
    service: DecisionService, record: Callable[[], RewardReceipt]
) -> tuple[RewardReceipt, bool, int]:
    """Record a reward, then learn every final reward up to it in seq order (one lock).

    Returns:
        The receipt, whether the policy learned this reward now, and its number of updates.
    """
    learner = service.learner
    assert learner is not None
    learned_it = False
    with learner.lock:
        receipt = record()
        for seq, decision, reward in service.log.rewards_after(
            learner.reward_seq, service.model_version
        ):
            learned = service.reward_in_range(reward) and learner.learn(decision, reward, seq)
            if not learned:
                learner.reward_seq = seq
            learned_it |= learned and seq == receipt.seq and not receipt.duplicate
        n_updates = learner.n_updates
    learner.snapshot_if_due()
    return receipt, learned_it, n_updates


class LogFollower:
    """Catch up with the shared log every ``interval`` seconds, in a daemon thread.

    Args:
        service: The replica's service (an online policy on a shared log).
        interval: Seconds between two catch-ups.
    """

    def __init__(self, service: DecisionService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)

    def start(self) -> None:
        """Start following."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current catch-up."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                catch_up(self.service)  # the learner logs what it replayed
            except Exception:  # a lost connection must not end the thread; retry next time
                logger.exception("cannot catch up with the shared decision log")
