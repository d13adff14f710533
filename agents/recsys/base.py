"""The interface every next-item recommender implements: fit on a split, score every item."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from rec_env.agents.recsys.split import LeaveLastOutSplit

__all__ = ["Recommender", "top_k"]


class Recommender(ABC):
    """Scores every item for users given what they watched before.

    Subclasses learn from ``split``'s training part only (:meth:`fit`) and score with
    :meth:`score`; a higher score ranks an item earlier. :meth:`rank` turns scores into the
    top ``k`` of the allowed items (the evaluation protocol decides which are allowed); a
    stochastic policy such as Thompson sampling overrides it to rank by its own draws.
    """

    name: str = "recommender"

    @abstractmethod
    def fit(self, split: LeaveLastOutSplit) -> Recommender:
        """Learn from the training interactions of ``split``; returns ``self``."""

    @abstractmethod
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """``(len(users), n_items)`` scores of every item.

        Args:
            users: ``(n,)`` user indices.
            histories: Each user's items in time order, before the item to predict.
        """

    def rank(
        self, users: np.ndarray, histories: Sequence[np.ndarray], allowed: np.ndarray, k: int
    ) -> np.ndarray:
        """``(n, k)`` best allowed items by :meth:`score`, ties to the lower index.

        Args:
            users: ``(n,)`` user indices.
            histories: Each user's items in time order, before the item to predict.
            allowed: ``(n, n_items)`` items that may be recommended.
            k: Slate length; rows with fewer allowed items are padded with ``-1``.
        """
        return top_k(self.score(users, histories), allowed, k)


def top_k(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """``(n, k)`` indices of the best allowed items per row, ties to the lower index.

    Rows with fewer than ``k`` allowed items are padded with ``-1``.
    """
    masked = np.where(allowed, np.asarray(scores, dtype=np.float64), -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    return np.where(np.take_along_axis(allowed, order, axis=1), order, -1)
