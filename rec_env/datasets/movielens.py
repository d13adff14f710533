r"""MovieLens 100K: timestamped explicit ratings, loaded from a path the user gives.

MovieLens 100K (GroupLens, University of Minnesota) holds 100,000 ratings (1–5 stars, Unix
timestamps, 1997–1998) by 943 users of 1,682 movies, each movie tagged with some of 19 genres;
every user rated at least 20 movies. It is the usual public benchmark of next-item and RL
recommenders evaluated with NDCG@k, HR@k and precision@k.

**Licence.** MovieLens may be used for research and redistributed only under GroupLens' terms
(no commercial use without permission, no claim of endorsement; publications cite F. M. Harper
and J. A. Konstan (2015), "The MovieLens Datasets: History and Context", ACM TiiS 5(4)). recenv
therefore does **not** ship it: :func:`load_movielens` reads the plain-CSV copy from a
directory you give, laid out as:

====================  ==========================================================
file                  columns
====================  ==========================================================
``ratings.csv.gz``    ``user_id, item_id, rating, timestamp`` (Unix seconds)
``movies.csv.gz``     ``item_id, title, year, genres`` (``|``-separated)
``users.csv.gz``      ``user_id, age, gender, occupation, zip_code``
====================  ==========================================================

(plain ``.csv`` files are read too). Ids become 0-based indices: user ``u`` of the file is
index ``u - 1`` only if the ids are ``1..n``; in general :attr:`MovieLensData.user_ids` and
:attr:`MovieLensData.item_ids` map indices back to the file's ids. Interactions keep the file's
row order; sort them with :meth:`MovieLensData.time_order`.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MOVIELENS_FILES", "MOVIELENS_GENRES", "MovieLensData", "load_movielens"]

MOVIELENS_FILES: tuple[str, ...] = ("ratings", "movies", "users")
"""The three tables of the data set, read from ``<name>.csv.gz`` or ``<name>.csv``."""

MOVIELENS_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
"""The 19 genres of MovieLens 100K, in the order of the original ``u.genre`` file."""

_COLUMNS: dict[str, tuple[str, ...]] = {
    "ratings": ("user_id", "item_id", "rating", "timestamp"),
    "movies": ("item_id", "title", "year", "genres"),
    "users": ("user_id", "age", "gender", "occupation", "zip_code"),
}


@dataclass(frozen=True, eq=False)
class MovieLensData:
    """MovieLens interactions and side information as typed arrays.

    Attributes:
        users: ``(n,)`` int64 user index of each rating, in ``[0, n_users)``.
        items: ``(n,)`` int64 item index of each rating, in ``[0, n_items)``.
        ratings: ``(n,)`` int8 stars, 1–5.
        timestamps: ``(n,)`` int64 Unix seconds.
        user_ids: ``(n_users,)`` int64 file id of each user index.
        item_ids: ``(n_items,)`` int64 file id of each item index.
        genres: ``(n_items, 19)`` bool, the item features (:data:`MOVIELENS_GENRES`).
        titles: Title of each item.
        years: ``(n_items,)`` int32 release year, ``-1`` where the file has none.
        ages: ``(n_users,)`` int32 age in years.
        genders: ``(n_users,)`` str ``"M"`` or ``"F"``.
        occupations: ``(n_users,)`` str occupation.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    genres: np.ndarray
    titles: tuple[str, ...]
    years: np.ndarray
    ages: np.ndarray
    genders: np.ndarray
    occupations: np.ndarray

    @property
    def n_users(self) -> int:
        """Number of users."""
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        """Number of items (movies)."""
        return int(self.item_ids.shape[0])

    @property
    def n_interactions(self) -> int:
        """Number of ratings."""
        return int(self.users.shape[0])

    def time_order(self) -> np.ndarray:
        """Row order by user, then timestamp, then item index.

        Equal timestamps are common (users rate in bursts); the item index makes the order
        deterministic.

        Returns:
            ``(n,)`` int64 permutation of the rows.
        """
        return np.lexsort((self.items, self.timestamps, self.users))

    def subset_users(self, n_users: int, seed: int = 0) -> MovieLensData:
        """The ratings of ``n_users`` users drawn without replacement, reindexed ``0..``.

        Items keep their indices (the catalog is unchanged), so item features still apply.

        Args:
            n_users: Number of users to keep, ``1 ≤ n_users ≤ self.n_users``.
            seed: Seed of the draw.

        Raises:
            ValueError: If ``n_users`` is out of range.
        """
        if not 1 <= n_users <= self.n_users:
            raise ValueError(f"n_users must be in [1, {self.n_users}], got {n_users}")
        chosen = np.sort(np.random.default_rng(seed).choice(self.n_users, n_users, replace=False))
        new_index = np.full(self.n_users, -1, dtype=np.int64)
        new_index[chosen] = np.arange(n_users)
        rows = new_index[self.users] >= 0
        return MovieLensData(
            users=new_index[self.users[rows]],
            items=self.items[rows],
            ratings=self.ratings[rows],
            timestamps=self.timestamps[rows],
            user_ids=self.user_ids[chosen],
            item_ids=self.item_ids,
            genres=self.genres,
            titles=self.titles,
            years=self.years,
            ages=self.ages[chosen],
            genders=self.genders[chosen],
            occupations=self.occupations[chosen],
        )


def _table_path(directory: Path, name: str) -> Path:
    for candidate in (directory / f"{name}.csv.gz", directory / f"{name}.csv"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"MovieLens: no {name}.csv.gz (or {name}.csv) in {directory}. Pass the directory "
        "holding ratings.csv.gz, movies.csv.gz and users.csv.gz (MovieLens 100K as plain CSV; "
        "recenv does not ship it, see the rec_env.datasets.movielens docstring)"
    )


def _rows(path: Path, name: str) -> Iterator[list[str]]:
    """The rows of a CSV table after checking its header."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        header = tuple(next(reader, ()))
        if header != _COLUMNS[name]:
            raise ValueError(
                f"{path}: expected the columns {', '.join(_COLUMNS[name])}, got "
                f"{', '.join(header) or 'an empty file'}"
            )
        yield from reader


def _index_of(ids: np.ndarray, known: np.ndarray, what: str, path: Path) -> np.ndarray:
    """Indices of ``ids`` in the sorted array ``known``; every id must be known."""
    positions = np.searchsorted(known, ids).clip(0, max(known.size - 1, 0))
    missing = known[positions] != ids if known.size else np.ones(ids.shape, dtype=bool)
    if missing.any():
        raise ValueError(f"{path}: {what} id {ids[missing][0]} is not in the {what} table")
    return positions.astype(np.int64)


def load_movielens(path: str | Path) -> MovieLensData:
    """Read MovieLens 100K (or a file-compatible MovieLens) from a directory.

    Args:
        path: Directory holding ``ratings``, ``movies`` and ``users`` as ``.csv.gz`` or
            ``.csv`` (see the module docstring).

    Returns:
        The ratings with 0-based user and item indices, genres as item features.

    Raises:
        FileNotFoundError: If the directory or one of the tables is missing.
        ValueError: If a table has other columns, a value does not parse, a rating is outside
            1–5, or a rating names a user or item absent from its table.
    """
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(
            f"MovieLens directory {directory} does not exist; pass the folder holding "
            "ratings.csv.gz, movies.csv.gz and users.csv.gz"
        )
    paths = {name: _table_path(directory, name) for name in MOVIELENS_FILES}
    try:
        movies = list(_rows(paths["movies"], "movies"))
        users = list(_rows(paths["users"], "users"))
        ratings = np.array(list(_rows(paths["ratings"], "ratings")), dtype=np.int64).reshape(-1, 4)
    except ValueError as error:
        raise ValueError(f"MovieLens in {directory}: {error}") from None
    movies.sort(key=lambda row: int(row[0]))
    users.sort(key=lambda row: int(row[0]))
    item_ids = np.array([int(row[0]) for row in movies], dtype=np.int64)
    user_ids = np.array([int(row[0]) for row in users], dtype=np.int64)
    genre_column = {genre: j for j, genre in enumerate(MOVIELENS_GENRES)}
    genres = np.zeros((item_ids.size, len(MOVIELENS_GENRES)), dtype=bool)
    for i, row in enumerate(movies):
        for genre in filter(None, row[3].split("|")):
            if genre not in genre_column:
                raise ValueError(f"{paths['movies']}: unknown genre {genre!r} (item {row[0]})")
            genres[i, genre_column[genre]] = True
    stars = ratings[:, 2]
    if stars.size and (stars.min() < 1 or stars.max() > 5):
        raise ValueError(f"{paths['ratings']}: ratings must be 1–5 stars")
    return MovieLensData(
        users=_index_of(ratings[:, 0], user_ids, "user", paths["ratings"]),
        items=_index_of(ratings[:, 1], item_ids, "item", paths["ratings"]),
        ratings=stars.astype(np.int8),
        timestamps=ratings[:, 3].copy(),
        user_ids=user_ids,
        item_ids=item_ids,
        genres=genres,
        titles=tuple(row[1] for row in movies),
        years=np.array([int(row[2]) if row[2].isdigit() else -1 for row in movies], np.int32),
        ages=np.array([int(row[1]) for row in users], dtype=np.int32),
        genders=np.array([row[2] for row in users]),
        occupations=np.array([row[3] for row in users]),
    )
