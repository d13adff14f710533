r"""Non-sequential baselines: random, popularity and item-based k nearest neighbours.

* :class:`RandomRecommender`: seeded uniform scores, the floor every model must beat.
* :class:`PopularityRecommender`: the number of training interactions of each item.
* :class:`ItemKNNRecommender`: cosine similarity of item columns of the binary user × item
  training matrix :math:`X`, :math:`s_{ij} = x_i^\top x_j / (\lVert x_i\rVert \lVert x_j\rVert)`,
  keeping each item's ``neighbours`` most similar items (Sarwar et al. 2001; Deshpande and
  Karypis 2004). A user's score of item :math:`j` is :math:`\sum_{i \in H} s_{ij}` over the
  history :math:`H`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rec_env.agents.recsys.base import Recommender
from rec_env.agents.recsys.split import LeaveLastOutSplit, _history_mask

__all__ = ["ItemKNNRecommender", "PopularityRecommender", "RandomRecommender"]


class RandomRecommender(Recommender):
    """Uniform random scores from a seeded generator.

    Args:
        seed: Seed of the scores.
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.n_items = 0

    def fit(self, split: LeaveLastOutSplit) -> RandomRecommender:
        """Remember the catalog size."""
        self.n_items = split.n_items
        return self

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Fresh uniform scores from the seed (the same call gives the same scores)."""
        return np.random.default_rng(self.seed).random((len(users), self.n_items))


class PopularityRecommender(Recommender):
    """Every user gets the items with the most training interactions."""

    name = "popularity"

    def fit(self, split: LeaveLastOutSplit) -> PopularityRecommender:
        """Count each item's training interactions."""
        self.counts_ = np.bincount(split.train_items, minlength=split.n_items).astype(np.float64)
        return self

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The counts, for every user."""
        return np.broadcast_to(self.counts_, (len(users), self.counts_.size)).copy()


class ItemKNNRecommender(Recommender):
    """Item-based kNN with cosine similarity on the binary user × item matrix.

    Args:
        neighbours: Similar items kept per item (the rest are set to 0); ``None`` keeps all.
    """

    name = "item-kNN"

    def __init__(self, neighbours: int | None = 100) -> None:
        if neighbours is not None and neighbours < 1:
            raise ValueError(f"neighbours must be a positive integer or None, got {neighbours}")
        self.neighbours = neighbours

    def fit(self, split: LeaveLastOutSplit) -> ItemKNNRecommender:
        """Compute the ``(n_items, n_items)`` similarity matrix from the training part."""
        matrix = _history_mask(split.train_sequences, split.n_items).astype(np.float64)
        co_counts = matrix.T @ matrix
        norms = np.sqrt(np.diag(co_counts))
        with np.errstate(invalid="ignore", divide="ignore"):
            similarity = co_counts / np.outer(norms, norms)
        similarity = np.nan_to_num(similarity, nan=0.0)
        np.fill_diagonal(similarity, 0.0)
        if self.neighbours is not None and self.neighbours < split.n_items:
            # keep each row's `neighbours` largest similarities
            cut = np.argpartition(-similarity, self.neighbours - 1, axis=1)[:, self.neighbours :]
            np.put_along_axis(similarity, cut, 0.0, axis=1)
        self.similarity_ = similarity
        return self

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Sum of the similarities to the history's items."""
        return _history_mask(tuple(histories), self.similarity_.shape[0]) @ self.similarity_
