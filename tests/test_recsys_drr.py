"""The DRR-style actor-critic recommender on toy logs: learns, is seeded, follows the interface."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rec_env.agents.recsys import (
    LeaveLastOutSplit,
    PopularityRecommender,
    evaluate_ranking,
    leave_last_out,
)
from rec_env.agents.recsys.drr import DRRRecommender
from rec_env.datasets.movielens import MOVIELENS_GENRES, MovieLensData

N_ITEMS = 40
SMALL = {
    "embedding_size": 8,
    "history_length": 4,
    "hidden_size": 32,
    "slate_size": 5,
    "reward_window": 3,
    "chunk_size": 16,
    "batch_size": 32,
    "actor_learning_rate": 1e-3,
}


def _cyclic_log(n_users: int, length: int, seed: int) -> MovieLensData:
    """Each user watches ``length`` consecutive items of a cycle from a random start, in order.

    The next item is always the one after the last, which a sequence-aware model can learn
    and a popularity ranking cannot (starts are uniform, so every item is about as popular).
    """
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, N_ITEMS, n_users)
    users = np.repeat(np.arange(n_users), length)
    return MovieLensData(
        users=users,
        items=(starts[:, None] + np.arange(length)).ravel() % N_ITEMS,
        ratings=np.full(users.size, 4, dtype=np.int8),
        timestamps=np.tile(np.arange(length), n_users),
        user_ids=np.arange(1, n_users + 1),
        item_ids=np.arange(1, N_ITEMS + 1),
        genres=np.zeros((N_ITEMS, len(MOVIELENS_GENRES)), dtype=bool),
        titles=tuple(f"movie {i}" for i in range(N_ITEMS)),
        years=np.full(N_ITEMS, 1995, dtype=np.int32),
        ages=np.full(n_users, 30, dtype=np.int32),
        genders=np.array(["F"] * n_users),
        occupations=np.array(["other"] * n_users),
    )


@pytest.fixture(scope="module")
def split() -> LeaveLastOutSplit:
    return leave_last_out(_cyclic_log(n_users=60, length=12, seed=0))


@pytest.fixture(scope="module")
def trained(split: LeaveLastOutSplit) -> DRRRecommender:
    return DRRRecommender(epochs=10, seed=1, **SMALL).fit(split)


@pytest.fixture(scope="module")
def briefly_trained(split: LeaveLastOutSplit) -> DRRRecommender:
    return DRRRecommender(epochs=2, seed=3, **SMALL).fit(split)


def test_drr_learns_the_next_item_of_a_sequence_pattern(split, trained) -> None:
    hit_rate = evaluate_ranking(trained, split).metrics["P@5"] * 5
    popularity = evaluate_ranking(PopularityRecommender().fit(split), split).metrics["P@5"] * 5
    chance = 5 / (N_ITEMS - 11)  # 11 items seen before the test item
    assert hit_rate > 0.7 > 2 * max(chance, popularity)
    assert trained.rewards_[-1] > 2 * trained.rewards_[0]  # DDPG raised the slate's reward


def test_drr_same_seed_same_scores_other_seed_other_scores(split, briefly_trained) -> None:
    users = np.arange(split.n_users)
    histories = split.histories("test")
    first = briefly_trained.score(users, histories)
    second, other = (
        DRRRecommender(epochs=2, seed=seed, **SMALL).fit(split).score(users, histories)
        for seed in (3, 4)
    )
    assert first.shape == (split.n_users, split.n_items)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_drr_never_reads_held_out_items(split, briefly_trained) -> None:
    # the same training part with other validation and test items trains the same model
    shifted = dataclasses.replace(
        split,
        validation_items=(split.validation_items + 7) % N_ITEMS,
        test_items=(split.test_items + 13) % N_ITEMS,
    )
    refit = DRRRecommender(epochs=2, seed=3, **SMALL).fit(shifted)
    users = np.arange(split.n_users)
    histories = split.histories("test")
    assert refit.rewards_ == briefly_trained.rewards_
    np.testing.assert_array_equal(
        refit.score(users, histories), briefly_trained.score(users, histories)
    )


def test_drr_ranks_only_allowed_items_and_scores_any_history(split, trained) -> None:
    users = np.arange(split.n_users)
    histories = split.histories("test")
    allowed = ~split.seen_mask("test")
    slates = trained.rank(users, histories, allowed, 10)
    assert slates.shape == (split.n_users, 10)
    assert np.all(allowed[users[:, None], slates])
    assert all(len(set(row)) == 10 for row in slates.tolist())
    # an empty or a long history (longer than history_length) is scored too
    scores = trained.score(np.array([0, 1]), [np.array([], dtype=np.int64), np.arange(30)])
    assert scores.shape == (2, N_ITEMS) and np.isfinite(scores).all()


def test_drr_is_exported_lazily_and_validates_its_options() -> None:
    import rec_env.agents.recsys as recsys

    assert recsys.DRRRecommender is DRRRecommender and "DRRRecommender" in recsys.__all__
    with pytest.raises(ValueError, match="epochs"):
        DRRRecommender(epochs=0)
    with pytest.raises(ValueError, match="gamma"):
        DRRRecommender(gamma=1.0)
    with pytest.raises(ValueError, match="at least 2 training items"):
        DRRRecommender().fit(leave_last_out(_cyclic_log(n_users=3, length=3, seed=0)))
