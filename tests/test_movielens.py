"""MovieLens 100K: loader, leave-last-out split, ranking protocol and next-item recommenders."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from rec_env.agents.recsys import (
    BanditRecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    RandomRecommender,
    Recommender,
    evaluate_ranking,
    leave_last_out,
    sampled_candidates,
    top_k,
)
from rec_env.agents.recsys.bandit_replay import _replay_contexts, user_contexts
from rec_env.datasets.movielens import MOVIELENS_GENRES, MovieLensData, load_movielens


def _shared_data() -> Path:
    shared = os.environ.get("RECENV_SHARED_DATA")
    return Path(shared) if shared else Path(__file__).resolve().parents[1].parent / "shared/data"


ML_100K = _shared_data() / "ml-100k"
needs_data = pytest.mark.skipif(
    not (ML_100K / "ratings.csv.gz").is_file(),
    reason=f"MovieLens 100K not found at {ML_100K} (set RECENV_SHARED_DATA); it is not shipped",
)


@pytest.fixture(scope="module")
def movielens() -> MovieLensData:
    if not (ML_100K / "ratings.csv.gz").is_file():
        pytest.skip(f"MovieLens 100K not found at {ML_100K} (set RECENV_SHARED_DATA)")
    return load_movielens(ML_100K)


@pytest.fixture(scope="module")
def small(movielens: MovieLensData) -> MovieLensData:
    return movielens.subset_users(300, seed=1)


def _toy(users: list[int], items: list[int], times: list[int], n_items: int) -> MovieLensData:
    n_users = max(users) + 1
    return MovieLensData(
        users=np.array(users),
        items=np.array(items),
        ratings=np.full(len(users), 4, dtype=np.int8),
        timestamps=np.array(times),
        user_ids=np.arange(1, n_users + 1),
        item_ids=np.arange(1, n_items + 1),
        genres=np.eye(n_items, len(MOVIELENS_GENRES), dtype=bool),
        titles=tuple(f"movie {i}" for i in range(n_items)),
        years=np.full(n_items, 1995, dtype=np.int32),
        ages=np.full(n_users, 30, dtype=np.int32),
        genders=np.array(["F"] * n_users),
        occupations=np.array(["other"] * n_users),
    )


class FixedScores(Recommender):
    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def fit(self, split):  # type: ignore[no-untyped-def]
        return self

    def score(self, users, histories):  # type: ignore[no-untyped-def]
        return self.scores[users]


# ------------------------------------------------------------------ loader
@needs_data
def test_loader_reads_the_real_data_as_typed_arrays(movielens: MovieLensData) -> None:
    assert (movielens.n_users, movielens.n_items, movielens.n_interactions) == (943, 1682, 100_000)
    assert movielens.users.dtype == np.int64 and movielens.ratings.dtype == np.int8
    assert set(np.unique(movielens.ratings)) == {1, 2, 3, 4, 5}
    assert movielens.genres.shape == (1682, 19) and movielens.genres.any(axis=1).all()
    toy_story = int(np.flatnonzero(movielens.item_ids == 1)[0])
    assert movielens.titles[toy_story] == "Toy Story" and movielens.years[toy_story] == 1995
    genres = {MOVIELENS_GENRES[j] for j in np.flatnonzero(movielens.genres[toy_story])}
    assert genres == {"Animation", "Children's", "Comedy"}
    assert np.bincount(movielens.users).min() >= 20  # every user rated at least 20 movies
    assert movielens.years.min() == -1  # one movie has no year


def test_loader_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_movielens(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"ratings\.csv\.gz"):
        load_movielens(tmp_path)
    (tmp_path / "ratings.csv").write_text("user,item,stars,time\n1,1,5,100\n")
    with gzip.open(tmp_path / "movies.csv.gz", "wt") as file:
        file.write("item_id,title,year,genres\n1,A,1995,Drama\n")
    (tmp_path / "users.csv").write_text("user_id,age,gender,occupation,zip_code\n1,20,F,x,1\n")
    with pytest.raises(ValueError, match="expected the columns user_id, item_id"):
        load_movielens(tmp_path)
    (tmp_path / "ratings.csv").write_text("user_id,item_id,rating,timestamp\n1,2,5,100\n")
    with pytest.raises(ValueError, match="item id 2 is not in the item table"):
        load_movielens(tmp_path)
    (tmp_path / "ratings.csv").write_text("user_id,item_id,rating,timestamp\n1,1,5,100\n")
    assert load_movielens(tmp_path).genres[0, MOVIELENS_GENRES.index("Drama")]


# ------------------------------------------------------------------ split
@needs_data
def test_split_holds_out_each_users_latest_items_without_leakage(movielens) -> None:
    split = leave_last_out(movielens)
    assert split.train_items.size + 2 * split.n_users == movielens.n_interactions
    assert np.all(np.diff(split.train_times) >= 0)  # replay order is time order
    last_time = np.zeros(split.n_users, dtype=np.int64)
    np.maximum.at(last_time, split.train_users, split.train_times)
    # the test item is each user's latest rating, no training rating is later
    latest = np.zeros(split.n_users, dtype=np.int64)
    np.maximum.at(latest, movielens.users, movielens.timestamps)
    assert np.array_equal(split.test_times, latest)
    assert np.all(last_time <= split.test_times)
    seen = split.seen_mask("validation")
    users = np.arange(split.n_users)
    assert not seen[users, split.test_items].any() and not seen[users, split.validation_items].any()
    assert split.seen_mask("test")[users, split.validation_items].all()
    assert np.any(split.test_items != split.validation_items)


def test_split_breaks_timestamp_ties_by_item_and_needs_three_ratings() -> None:
    data = _toy([0, 0, 0, 0], [3, 1, 2, 0], [5, 9, 9, 1], n_items=4)
    split = leave_last_out(data)
    assert split.train_sequences[0].tolist() == [0, 3]
    assert (split.validation_items[0], split.test_items[0]) == (1, 2)
    with pytest.raises(ValueError, match="at least 3 ratings"):
        leave_last_out(_toy([0, 0], [0, 1], [1, 2], n_items=2))


# ------------------------------------------------------------------ protocol and metrics
def test_full_ranking_metrics_on_hand_cases() -> None:
    # user 0: train [0, 1], validation 2, test 3; user 1: train [4, 5], validation 6, test 7
    data = _toy([0] * 4 + [1] * 4, [0, 1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4] * 2, n_items=12)
    split = leave_last_out(data)
    scores = np.zeros((2, 12))
    scores[0, [0, 1, 2]] = scores[1, [4, 5, 6]] = 100.0  # seen: highest, but must be skipped
    scores[0, [8, 9, 3]] = [3.0, 2.0, 1.0]  # user 0: unseen ranking 8, 9, 3 -> test at rank 3
    scores[1, [0, 1, 8, 9, 10, 7]] = [9, 8, 6, 5, 4, 2]  # user 1: test item 7 at rank 6
    result = evaluate_ranking(FixedScores(scores), split, stage="test")
    ndcg10 = result.per_user["NDCG@10"]
    np.testing.assert_allclose(ndcg10, [1 / np.log2(4), 1 / np.log2(7)])
    np.testing.assert_allclose(result.per_user["NDCG@5"], [0.5, 0.0])
    np.testing.assert_allclose(result.per_user["HR@10"], [1.0, 1.0])
    np.testing.assert_allclose(result.per_user["P@5"], [0.2, 0.0])
    assert result.metrics["NDCG@5"] == pytest.approx(0.25)
    # validation stage: user 0's target is 2, seen items are only [0, 1]
    validation = evaluate_ranking(FixedScores(scores), split, stage="validation")
    np.testing.assert_allclose(validation.per_user["NDCG@10"], [1.0, 1.0])


def test_top_k_breaks_ties_by_lower_index_and_pads() -> None:
    scores = np.array([[1.0, 2.0, 2.0, 0.0]])
    allowed = np.array([[True, True, True, False]])
    assert top_k(scores, allowed, 4).tolist() == [[1, 2, 0, -1]]


@needs_data
def test_sampled_candidates_are_unrated_seeded_and_hold_the_target(small) -> None:
    split = leave_last_out(small)
    candidates = sampled_candidates(split, split.test_items, 100, seed=3)
    assert np.all(candidates.sum(axis=1) == 101)
    assert candidates[np.arange(split.n_users), split.test_items].all()
    rated = split.interacted_mask()
    rated[np.arange(split.n_users), split.test_items] = False
    assert not (candidates & rated).any()
    assert np.array_equal(candidates, sampled_candidates(split, split.test_items, 100, seed=3))
    assert not np.array_equal(candidates, sampled_candidates(split, split.test_items, 100, 4))


# ------------------------------------------------------------------ recommenders
@needs_data
def test_popularity_and_item_knn_beat_random(small) -> None:
    split = leave_last_out(small)
    hit_rates = {}
    for model in (RandomRecommender(0), PopularityRecommender(), ItemKNNRecommender(50)):
        result = evaluate_ranking(model.fit(split), split, protocol="sampled", seed=0)
        hit_rates[model.name] = result.metrics["HR@10"]
    assert hit_rates["random"] == pytest.approx(10 / 101, abs=0.05)
    assert hit_rates["popularity"] > hit_rates["random"] + 0.1
    assert hit_rates["item-kNN"] > hit_rates["random"] + 0.1


@needs_data
def test_replay_contexts_use_only_earlier_items(small) -> None:
    split = leave_last_out(small)
    contexts = _replay_contexts(split)
    genres = split.item_features
    for row in (0, 17, split.train_items.size - 1):
        user = split.train_users[row]
        position = int(np.sum(split.train_users[:row] == user))
        earlier = split.train_sequences[user][:position]
        assert split.train_sequences[user][position] == split.train_items[row]
        expected = user_contexts(genres[earlier].sum(axis=0)[None, :], np.array([position]))
        np.testing.assert_allclose(contexts[row], expected[0])


@needs_data
def test_bandit_recommenders_rank_allowed_items_and_are_seeded(small) -> None:
    split = leave_last_out(small.subset_users(60, seed=2))
    histories = split.histories("test")
    users = np.arange(split.n_users)
    allowed = ~split.seen_mask("test")
    for algorithm, options in (("hybrid_linucb", {"alpha": 0.1}), ("hybrid_lin_ts", {"v": 0.1})):
        slates = [
            BanditRecommender(algorithm, seed=5, **options)
            .fit(split)
            .rank(users, histories, allowed, 10)
            for _ in range(2)
        ]
        assert np.array_equal(slates[0], slates[1])
        assert np.all(allowed[users[:, None], slates[0]])
        assert all(len(set(row)) == 10 for row in slates[0].tolist())


@needs_data
def test_gru4rec_smoke_learns_and_is_deterministic(small) -> None:
    from rec_env.agents.recsys.sequential import GRU4Rec

    split = leave_last_out(small.subset_users(80, seed=0))
    options = {"embedding_size": 8, "hidden_size": 16, "max_length": 20, "batch_size": 16}
    first = GRU4Rec(epochs=2, seed=7, **options).fit(split)
    second = GRU4Rec(epochs=2, seed=7, **options).fit(split)
    other = GRU4Rec(epochs=2, seed=8, **options).fit(split)
    assert first.losses_[-1] < first.losses_[0]
    users = np.arange(split.n_users)
    histories = split.histories("test")
    scores = first.score(users, histories)
    assert scores.shape == (split.n_users, split.n_items)
    assert np.array_equal(scores, second.score(users, histories))
    assert not np.array_equal(scores, other.score(users, histories))
    with pytest.raises(ValueError, match="epochs"):
        GRU4Rec(epochs=0)
