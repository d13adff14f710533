"""One evaluation protocol for every next-item recommender: full and sampled ranking.

For each user the model scores every item given the user's history (:mod:`.split`), items in
the history are removed, and the top ``k`` of the rest are compared with the held-out item:

* **full ranking** ranks every item the user has not seen (1,682 − history on MovieLens 100K);
* **sampled ranking** ranks the held-out item among ``n_negatives`` (100) items the user never
  rated, drawn uniformly without replacement from a seeded generator, as in SASRec (Kang and
  McAuley 2018) and most published tables. It is kinder (a random ranker has HR@10 ≈ 10/101)
  and can reorder models (Krichene and Rendle 2020, "On sampled metrics for item
  recommendation"); it is reported only so that published figures can be placed next to ours.

Metrics come from :mod:`rec_env.agents.evaluation.item_metrics` with one relevant item per
user (binary gain, IDCG over ``min(|relevant|, k) = 1`` item): NDCG@k = ``1 / log2(rank + 1)``
if the held-out item is in the top ``k`` (rank 1-based), else 0; HR@k = 1 if it is there;
precision@k = HR@k / k, so at most 0.2 for k = 5. Ties in the scores go to the lower item index
(a stable sort), so every result is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rec_env.agents.evaluation.item_metrics import hit_rate_at_k, ndcg_at_k, precision_at_k
from rec_env.agents.recsys.base import Recommender
from rec_env.agents.recsys.split import LeaveLastOutSplit, Stage

__all__ = ["METRICS", "Protocol", "RankingResult", "evaluate_ranking", "sampled_candidates"]

Protocol = Literal["full", "sampled"]

METRICS: tuple[str, ...] = ("NDCG@10", "HR@10", "P@5", "NDCG@5")
"""The reported metrics, in table order."""


@dataclass(frozen=True)
class RankingResult:
    """Mean metrics of one model, stage and protocol.

    Attributes:
        metrics: Metric name (:data:`METRICS`) → mean over users.
        per_user: Metric name → ``(n_users,)`` values (for intervals or paired tests).
    """

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]


def sampled_candidates(
    split: LeaveLastOutSplit, targets: np.ndarray, n_negatives: int, seed: int
) -> np.ndarray:
    """``(n_users, n_items)`` True for each user's target and its sampled negatives.

    Negatives are drawn uniformly without replacement from the items the user never rated
    (training, validation or test), user by user from one generator seeded by ``seed``.

    Raises:
        ValueError: If a user has fewer than ``n_negatives`` unrated items.
    """
    rng = np.random.default_rng(seed)
    unrated = ~split.interacted_mask()
    candidates = np.zeros_like(unrated)
    for user in range(split.n_users):
        pool = np.flatnonzero(unrated[user])
        if pool.size < n_negatives:
            raise ValueError(f"user {user} has only {pool.size} unrated items")
        candidates[user, rng.choice(pool, n_negatives, replace=False)] = True
    candidates[np.arange(split.n_users), targets] = True
    return candidates


def evaluate_ranking(
    model: Recommender,
    split: LeaveLastOutSplit,
    *,
    stage: Stage = "test",
    protocol: Protocol = "full",
    n_negatives: int = 100,
    seed: int = 0,
    users: Sequence[int] | np.ndarray | None = None,
) -> RankingResult:
    """NDCG@10, HR@10, precision@5 and NDCG@5 of a fitted model.

    Args:
        model: A fitted recommender.
        split: The split it was fitted on.
        stage: ``"test"`` (last items) or ``"validation"`` (second last).
        protocol: ``"full"`` or ``"sampled"`` ranking (module docstring).
        n_negatives: Negatives per user of the sampled protocol.
        seed: Seed of the negatives (the same for every model).
        users: Users to evaluate (default: all).

    Returns:
        The means and per-user values.

    Raises:
        ValueError: On an unknown protocol.
    """
    if protocol not in ("full", "sampled"):
        raise ValueError(f"protocol must be 'full' or 'sampled', got {protocol!r}")
    targets = split.targets(stage)
    histories = split.histories(stage)
    if protocol == "full":
        allowed = ~split.seen_mask(stage)
    else:
        allowed = sampled_candidates(split, targets, n_negatives, seed)
    rows = np.arange(split.n_users) if users is None else np.asarray(users, dtype=np.int64)
    recommended = model.rank(rows, [histories[user] for user in rows], allowed[rows], 10)
    relevant = np.zeros((rows.size, split.n_items), dtype=bool)
    relevant[np.arange(rows.size), targets[rows]] = True
    per_user = {
        "NDCG@10": ndcg_at_k(recommended, relevant, 10),
        "HR@10": hit_rate_at_k(recommended, relevant, 10),
        "P@5": precision_at_k(recommended, relevant, 5),
        "NDCG@5": ndcg_at_k(recommended, relevant, 5),
    }
    return RankingResult({name: float(np.mean(per_user[name])) for name in METRICS}, per_user)
