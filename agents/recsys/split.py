"""The time-ordered leave-last-out split of next-item recommendation.

Each user's ratings are put in time order (timestamp, then item index: users rate in bursts,
so many timestamps tie and the item index makes the order deterministic). The **last** item of
each user is the test target, the **second last** the validation target, and everything before
is training data. Every rating counts as an interaction (implicit feedback: a rating says the
user watched the movie, whatever the stars).

Evaluating at the validation stage, a model sees the training history; at the test stage it
sees the training history plus the validation item (the models themselves are fitted on the
training part only), which is the SASRec / BERT4Rec convention.

No item of a user's future reaches that user's history. Other users' ratings are split per user
too, so the training part holds some ratings made after a given user's test time (the usual
leave-last-out trade-off; a global cut-off time would avoid it but leave many users without a
test item).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from rec_env.datasets.movielens import MovieLensData

__all__ = ["LeaveLastOutSplit", "Stage", "leave_last_out"]

Stage = Literal["validation", "test"]


@dataclass(frozen=True, eq=False)
class LeaveLastOutSplit:
    """Training interactions and one held-out target per user and stage.

    Attributes:
        n_users: Number of users.
        n_items: Number of items.
        train_users: ``(m,)`` user of each training interaction, in global time order.
        train_items: ``(m,)`` item of each training interaction.
        train_times: ``(m,)`` timestamp of each training interaction.
        train_sequences: Per user, the training items in the user's time order.
        validation_items: ``(n_users,)`` each user's second-last item.
        test_items: ``(n_users,)`` each user's last item.
        test_times: ``(n_users,)`` timestamp of each user's last item.
        item_features: ``(n_items, k)`` float item features (the genres).
    """

    n_users: int
    n_items: int
    train_users: np.ndarray
    train_items: np.ndarray
    train_times: np.ndarray
    train_sequences: tuple[np.ndarray, ...]
    validation_items: np.ndarray
    test_items: np.ndarray
    test_times: np.ndarray
    item_features: np.ndarray

    def targets(self, stage: Stage) -> np.ndarray:
        """``(n_users,)`` held-out item of each user at ``stage``."""
        return self.test_items if _check_stage(stage) == "test" else self.validation_items

    def histories(self, stage: Stage) -> tuple[np.ndarray, ...]:
        """What each user is known to have watched before the ``stage`` target, in order."""
        if _check_stage(stage) == "validation":
            return self.train_sequences
        return tuple(
            np.append(sequence, item)
            for sequence, item in zip(self.train_sequences, self.validation_items, strict=True)
        )

    def seen_mask(self, stage: Stage) -> np.ndarray:
        """``(n_users, n_items)`` True for the items of each user's ``stage`` history."""
        return _history_mask(self.histories(stage), self.n_items)

    def interacted_mask(self) -> np.ndarray:
        """``(n_users, n_items)`` True for every item a user rated (training and held out)."""
        mask = self.seen_mask("test")
        mask[np.arange(self.n_users), self.test_items] = True
        return mask


def _check_stage(stage: str) -> str:
    if stage not in ("validation", "test"):
        raise ValueError(f"stage must be 'validation' or 'test', got {stage!r}")
    return stage


def _history_mask(histories: tuple[np.ndarray, ...], n_items: int) -> np.ndarray:
    mask = np.zeros((len(histories), n_items), dtype=bool)
    lengths = np.array([len(history) for history in histories])
    rows = np.repeat(np.arange(len(histories)), lengths)
    mask[rows, np.concatenate(histories) if histories else np.empty(0, np.intp)] = True
    return mask


def leave_last_out(data: MovieLensData) -> LeaveLastOutSplit:
    """Hold out each user's last item (test) and second last (validation).

    Args:
        data: The ratings; every user needs at least 3.

    Returns:
        The split; training interactions are in global time order (for replay).

    Raises:
        ValueError: If a user has fewer than 3 ratings.
    """
    order = data.time_order()
    users, items, times = data.users[order], data.items[order], data.timestamps[order]
    counts = np.bincount(users, minlength=data.n_users)
    if counts.min() < 3:
        raise ValueError(
            f"every user needs at least 3 ratings; user index {int(counts.argmin())} has "
            f"{int(counts.min())}"
        )
    ends = np.cumsum(counts)  # one past each user's last row
    last, second_last = ends - 1, ends - 2
    train = np.ones(users.size, dtype=bool)
    train[last] = train[second_last] = False
    starts = ends - counts
    sequences = tuple(items[start : end - 2] for start, end in zip(starts, ends, strict=True))
    global_order = np.flatnonzero(train)[np.argsort(times[train], kind="stable")]
    return LeaveLastOutSplit(
        n_users=data.n_users,
        n_items=data.n_items,
        train_users=users[global_order],
        train_items=items[global_order],
        train_times=times[global_order],
        train_sequences=sequences,
        validation_items=items[second_last],
        test_items=items[last],
        test_times=times[last],
        item_features=data.genres.astype(np.float64),
    )
