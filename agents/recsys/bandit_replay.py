r"""The hybrid linear bandits of the item world as next-item recommenders, trained by replay.

A bandit's action is an item (1,682 on MovieLens 100K), its action features are the item's 19
genres (:attr:`~rec_env.agents.recsys.split.LeaveLastOutSplit.item_features`), and its context
is the user's taste before the decision (:func:`user_contexts`): the share of each genre among
the items watched so far and :math:`\log(1 + n) / \log(1 + 1000)` of their number :math:`n`.
The hybrid model :math:`x_P^\top B f_a + x^\top\theta_a` (:mod:`rec_env.agents.bandits.hybrid`)
then learns a genre-taste × genre interaction shared by every item and a per-item part (whose
bias column is the item's popularity).

**Replay.** The training interactions are replayed once, in global time order (timestamp, then
user, then item), in chunks of ``chunk_size``. For an interaction (user ``u`` watched item ``i``)
the context is ``u``'s taste from ``u``'s earlier training items only, and the bandit is updated
with reward 1 for ``i`` and reward 0 for ``n_negatives`` items drawn uniformly from those ``u``
has not rated in the training part (a seeded generator). MovieLens logged no propensities and
no refused recommendations, so this negative-sampled replay is the feedback a bandit can get
from it: it learns :math:`P(\text{watched} \mid \text{context}, \text{item})` against a uniform
background, a popularity × taste score. The bandit does not choose during training: matching
its own choices to the log (Li et al.'s replay) would keep about 1 interaction in 1,682, and
would be biased besides, since the log was not collected at random.

**Ranking.** :class:`~rec_env.agents.bandits.HybridLinUCB` ranks by its upper confidence
bounds :math:`x^\top\hat{\bar\theta}_a + \alpha\sqrt{x^\top\Sigma_a x}`;
:class:`~rec_env.agents.bandits.HybridLinearThompsonSampling` fills the ``k`` slots one by one
with its own decision rule (a fresh posterior draw per slot, the items already placed masked
out), so its slate is what it would show.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rec_env.agents.bandits import HybridLinearThompsonSampling, HybridLinUCB
from rec_env.agents.recsys.base import Recommender
from rec_env.agents.recsys.split import LeaveLastOutSplit, _history_mask
from rec_env.feature_space import FeatureSpace

__all__ = ["BanditRecommender", "user_contexts"]

_ACTIVITY_SCALE = np.log1p(1000.0)


def _context_space(n_genres: int) -> FeatureSpace:
    names = [f"genre_share_{j}" for j in range(n_genres)] + ["log_activity"]
    return FeatureSpace(names, low=np.zeros(n_genres + 1), high=np.ones(n_genres + 1))


def user_contexts(genre_totals: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(n, g + 1)`` contexts: genre shares of the history and its scaled log length.

    Args:
        genre_totals: ``(n, g)`` sum of the genre vectors of each history.
        counts: ``(n,)`` history lengths.
    """
    counts = np.asarray(counts, dtype=np.float64)
    shares = genre_totals / np.maximum(counts, 1.0)[:, None]
    activity = np.minimum(np.log1p(counts) / _ACTIVITY_SCALE, 1.0)
    return np.column_stack([shares, activity])


def _replay_contexts(split: LeaveLastOutSplit) -> np.ndarray:
    """Context of every training interaction (global order) from the user's earlier items."""
    genres = split.item_features
    # position of each interaction within its user's sequence: global order keeps user order
    order = np.argsort(split.train_users, kind="stable")
    counts = np.bincount(split.train_users, minlength=split.n_users)
    starts = np.cumsum(counts) - counts
    position = np.empty(split.train_users.size, dtype=np.int64)
    position[order] = np.arange(order.size) - np.repeat(starts, counts)
    # genre totals before each interaction: per-user exclusive prefix sums
    totals = np.cumsum(genres[split.train_items[order]], axis=0) - genres[split.train_items[order]]
    totals -= np.repeat(np.vstack([np.zeros(genres.shape[1]), totals[starts[1:]]]), counts, axis=0)
    before = np.empty_like(totals)
    before[order] = totals
    return user_contexts(before, position)


class BanditRecommender(Recommender):
    """A hybrid LinUCB or linear Thompson sampling bandit, trained by negative-sampled replay.

    Args:
        algorithm: ``"hybrid_linucb"`` or ``"hybrid_lin_ts"``.
        n_negatives: Unwatched items given reward 0 per replayed interaction.
        chunk_size: Interactions per update batch (updates are exact whatever the size).
        seed: Seed of the negatives and of the bandit's generator.
        **hyperparameters: Passed to the bandit (``alpha``, ``v``, ``regularization``, ...).
    """

    def __init__(
        self,
        algorithm: str = "hybrid_linucb",
        *,
        n_negatives: int = 4,
        chunk_size: int = 8192,
        seed: int = 0,
        **hyperparameters: float,
    ) -> None:
        classes: dict[str, type[HybridLinUCB | HybridLinearThompsonSampling]] = {
            "hybrid_linucb": HybridLinUCB,
            "hybrid_lin_ts": HybridLinearThompsonSampling,
        }
        if algorithm not in classes:
            raise ValueError(f"algorithm must be one of {sorted(classes)}, got {algorithm!r}")
        if n_negatives < 0 or chunk_size < 1:
            raise ValueError("n_negatives must be >= 0 and chunk_size >= 1")
        self.algorithm_class = classes[algorithm]
        self.name = {"hybrid_linucb": "hybrid LinUCB", "hybrid_lin_ts": "hybrid linear TS"}[
            algorithm
        ]
        self.n_negatives = n_negatives
        self.chunk_size = chunk_size
        self.seed = seed
        self.hyperparameters = hyperparameters

    def fit(self, split: LeaveLastOutSplit) -> BanditRecommender:
        """Replay the training interactions once, in time order (module docstring)."""
        self.item_features_ = split.item_features
        self.bandit_ = self.algorithm_class(
            n_actions=split.n_items,
            random_state=self.seed,
            features=_context_space(split.item_features.shape[1]),
            action_features=split.item_features,
            **self.hyperparameters,
        )
        rng = np.random.default_rng(self.seed)
        seen = _history_mask(split.train_sequences, split.n_items)
        contexts = _replay_contexts(split)
        for start in range(0, split.train_items.size, self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            users, items = split.train_users[rows], split.train_items[rows]
            negatives = rng.integers(0, split.n_items, (users.size, self.n_negatives))
            keep = ~seen[users[:, None], negatives]  # drop draws the user watched
            obs = np.vstack([contexts[rows], np.repeat(contexts[rows], keep.sum(axis=1), axis=0)])
            actions = np.concatenate([items, negatives[keep]])
            rewards = np.concatenate([np.ones(items.size), np.zeros(int(keep.sum()))])
            self.bandit_.update(obs, actions, rewards)
        return self

    def _contexts(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        totals = np.array([self.item_features_[history].sum(axis=0) for history in histories])
        return user_contexts(totals, np.array([len(history) for history in histories]))

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Upper confidence bounds (LinUCB) or posterior means (Thompson sampling)."""
        obs = self._contexts(histories)
        means, variances = self.bandit_.moments(obs)
        if isinstance(self.bandit_, HybridLinUCB):
            return means + self.bandit_.alpha * np.sqrt(variances)
        return means

    def rank(
        self, users: np.ndarray, histories: Sequence[np.ndarray], allowed: np.ndarray, k: int
    ) -> np.ndarray:
        """LinUCB: top ``k`` by :meth:`score`. Thompson sampling: one draw per slot."""
        if isinstance(self.bandit_, HybridLinUCB):
            return super().rank(users, histories, allowed, k)
        obs = self._contexts(histories)
        remaining = np.array(allowed, dtype=bool)
        slate = np.full((len(users), k), -1, dtype=np.int64)
        for slot in range(k):
            open_rows = remaining.any(axis=1)
            if not open_rows.any():
                break
            chosen = self.bandit_.predict(obs[open_rows], remaining[open_rows], deterministic=False)
            slate[open_rows, slot] = chosen
            remaining[np.flatnonzero(open_rows), chosen] = False
        return slate
