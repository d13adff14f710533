"""Next-item recommendation from interaction logs, evaluated on one protocol (MovieLens 100K).

* :func:`leave_last_out` (:mod:`.split`): time-ordered split, each user's last item for test,
  second last for validation.
* :func:`evaluate_ranking` (:mod:`.protocol`): NDCG@10, HR@10, precision@5 and NDCG@5 by full
  ranking over unseen items, or by the sampled protocol (100 negatives), with the metrics of
  :mod:`rec_env.agents.evaluation.item_metrics`.
* Recommenders behind :class:`Recommender`: :class:`RandomRecommender`,
  :class:`PopularityRecommender`, :class:`ItemKNNRecommender`, :class:`BanditRecommender` (the
  hybrid LinUCB / linear TS of :mod:`rec_env.agents.bandits`, trained by replay), and in torch
  (imported on first use so that this package does not load torch) :class:`GRU4Rec` and
  :class:`DRRRecommender` (a DRR-style actor-critic).
"""

from __future__ import annotations

from typing import Any

from rec_env.agents.recsys.bandit_replay import BanditRecommender, user_contexts
from rec_env.agents.recsys.base import Recommender, top_k
from rec_env.agents.recsys.neighbourhood import (
    ItemKNNRecommender,
    PopularityRecommender,
    RandomRecommender,
)
from rec_env.agents.recsys.protocol import (
    METRICS,
    RankingResult,
    evaluate_ranking,
    sampled_candidates,
)
from rec_env.agents.recsys.split import LeaveLastOutSplit, leave_last_out

__all__ = [
    "METRICS",
    "BanditRecommender",
    "DRRRecommender",
    "GRU4Rec",
    "ItemKNNRecommender",
    "LeaveLastOutSplit",
    "PopularityRecommender",
    "RandomRecommender",
    "RankingResult",
    "Recommender",
    "evaluate_ranking",
    "leave_last_out",
    "sampled_candidates",
    "top_k",
    "user_contexts",
]


def __getattr__(name: str) -> Any:
    if name == "GRU4Rec":  # torch loads only when the sequential model is asked for
        from rec_env.agents.recsys.sequential import GRU4Rec

        return GRU4Rec
    if name == "DRRRecommender":
        from rec_env.agents.recsys.drr import DRRRecommender

        return DRRRecommender
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
