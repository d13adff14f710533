"""Online learning of a served bandit: in the order of the logged rewards, replayable, snapshotted.

The decision log is the source of truth of what the bandit has learned. Every reward is logged
with a monotonic sequence number (*seq*) before it is learned, and the service holds
:attr:`OnlineLearner.lock` around "log the reward, then learn it", so the live bandit learns the
rewards in seq order. At startup the newest intact snapshot (:mod:`rec_env.serve.state`) is
restored and every logged reward after its watermark is replayed, in seq order, by
:meth:`OnlineLearner.replay`: the restarted bandit equals one that learned every logged reward
exactly once, whatever the crash lost. Snapshots only make restarts fast.

Locks, always taken in this order: the save lock (one snapshot at a time),
:attr:`OnlineLearner.lock` (one reward at a time; held while a snapshot copies the policy) and
the policy lock shared with decisions, held only while the policy learns or its generator is
copied. A snapshot writes and fsyncs its files holding the save lock alone: decisions never
wait for the disk; the reward that makes a snapshot due writes it after it is learned, and
rewards that find a snapshot under way skip theirs.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterable

import numpy as np

from rec_env.agents.base import OnlinePolicy
from rec_env.serve.decision_log import LoggedDecision, RewardReceipt
from rec_env.serve.state import PolicyStateStore

__all__ = ["OnlineLearner"]

logger = logging.getLogger(__name__)


class OnlineLearner:
    """Learn from rewards in seq order and snapshot the policy every so many updates.

    Args:
        policy: The online policy (restored from a snapshot, or the run's).
        policy_lock: The lock decisions hold while they read the policy.
        state_store: Where snapshots go, or None to keep updates in memory (and in the log).
        save_every: Snapshot after this many new updates.
        n_updates: Rewards the policy has learned from.
        reward_seq: Seq of the last reward it learned (0: none).
    """

    def __init__(
        self,
        policy: OnlinePolicy,
        policy_lock: threading.Lock,
        state_store: PolicyStateStore | None = None,
        save_every: int = 1,
        n_updates: int = 0,
        reward_seq: int = 0,
    ) -> None:
        self.policy = policy
        self.state_store = state_store
        self.save_every = save_every
        self.n_updates = n_updates
        self.reward_seq = reward_seq
        self.lock = threading.Lock()
        """Held around logging a reward and learning it, so updates follow the seqs."""
        self._policy_lock = policy_lock
        self._save_lock = threading.Lock()
        self._saved_updates = n_updates

    def record_and_learn(
        self, record: Callable[[], RewardReceipt], model_version: str
    ) -> tuple[RewardReceipt, bool, int]:
        """Log a reward with ``record`` and learn it under :attr:`lock`, then snapshot if due.

        Args:
            record: Logs the reward (``DecisionLog.record_reward``) and returns its receipt.
            model_version: The served model's version: a reward of another version's decision,
                or a duplicate, is not learned.

        Returns:
            The receipt, whether the policy learned the reward, and its number of updates.
        """
        with self.lock:
            receipt = record()
            decision = receipt.decision
            learned = (
                not receipt.duplicate
                and not receipt.pending  # a part is learned when its window closes
                and decision.model_version == model_version
                and self.learn(decision, receipt.reward, receipt.seq)
            )
            n_updates = self.n_updates
        if learned:
            self.snapshot_if_due()
        return receipt, learned, n_updates

    def learn(self, decision: LoggedDecision, reward: float, seq: int) -> bool:
        """Learn one logged reward (the caller holds :attr:`lock`).

        Returns:
            True if the policy learned it; False if it refused it (its state is then unchanged;
            replay refuses it the same way).
        """
        with self._policy_lock:
            try:
                self.policy.update(
                    decision.features[None, :],
                    np.array([decision.action]),
                    np.array([reward], dtype=np.float64),
                )
            except ValueError as exc:
                logger.warning("reward %d (event %s) not learned: %s", seq, decision.event_id, exc)
                learned = False
            else:
                self.n_updates += 1
                learned = True
            self.reward_seq = seq
        return learned

    def replay(
        self,
        rewards: Iterable[tuple[int, LoggedDecision, float]],
        accept: Callable[[float], bool],
    ) -> int:
        """Learn logged rewards ``(seq, decision, reward)`` in seq order, one at a time as live.

        Args:
            rewards: The log's rewards after :attr:`reward_seq` for this model version.
            accept: Whether a reward is acceptable now (in range); others are skipped.

        Returns:
            The number of rewards learned.
        """
        learned = skipped = 0
        with self.lock:
            for seq, decision, reward in rewards:
                if accept(reward) and self.learn(decision, reward, seq):
                    learned += 1
                else:
                    skipped += 1
                    self.reward_seq = seq
        if learned or skipped:
            logger.info(
                "replayed %d logged rewards (%d skipped) up to seq %d",
                learned,
                skipped,
                self.reward_seq,
            )
        return learned

    def snapshot_if_due(self) -> None:
        """Snapshot if :attr:`save_every` updates are unsaved and no snapshot is being written.

        A failed snapshot is logged and retried later: the log still holds every reward.
        """
        if self.state_store is None or self.n_updates - self._saved_updates < self.save_every:
            return
        if not self._save_lock.acquire(blocking=False):
            return  # another thread is writing one; the next reward will catch up
        try:
            self._save()
        except OSError as exc:
            logger.warning("cannot save the online state (%s); the decision log keeps it", exc)
        finally:
            self._save_lock.release()

    def save(self) -> None:
        """Snapshot now if anything is unsaved (at shutdown)."""
        if self.state_store is None:
            return
        with self._save_lock:
            self._save()

    def _save(self) -> None:
        """Copy the policy and snapshot the copy (the caller holds the save lock)."""
        assert self.state_store is not None
        with self.lock:  # no update while copying; decisions only read the learned arrays
            if self.n_updates == self._saved_updates:
                return
            policy = copy.deepcopy(self.policy)
            n_updates, reward_seq = self.n_updates, self.reward_seq
            with self._policy_lock:  # decisions of randomised bandits draw from this generator
                policy.random_.bit_generator.state = self.policy.random_.bit_generator.state
        self.state_store.save(policy, n_updates, reward_seq)
        self._saved_updates = n_updates
