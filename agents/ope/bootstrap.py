"""The percentile bootstrap shared by the estimators: resampled sums of per-row terms.

Every estimator is a ratio of sums of per-row terms, so a bootstrap replicate only needs the
column sums of those terms over ``n`` rows drawn with replacement. Replicates are drawn as
``(replicates, n)`` count matrices from one seeded generator and applied by a matrix product;
the same seed and ``n`` give the same replicates whatever the terms are, so estimates of
different policies on one log are paired.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np

__all__ = ["bootstrap_counts", "bootstrap_sums", "replicate_ratios"]

_CHUNK_CELLS = 2_000_000
"""Resampled row indices drawn at a time by the bootstrap."""

_CACHE_CELLS = 40_000_000
"""Largest ``n_bootstrap x n`` count matrix kept for reuse (uint16: 80 MB)."""


def _count_chunks(n: int, n_bootstrap: int, random_state: int | None) -> Iterator[np.ndarray]:
    """Bootstrap replicates as ``(chunk, n)`` counts of how often each row was drawn.

    Each replicate draws ``n`` rows with replacement from one generator seeded by
    ``random_state``; the chunk size depends on ``n`` only, so the replicates do too.
    """
    rng = np.random.default_rng(random_state)
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        rows = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        yield np.bincount(rows.ravel(), minlength=size * n).reshape(size, n)


@lru_cache(maxsize=1)
def _cached_counts(n: int, n_bootstrap: int, random_state: int) -> np.ndarray:
    """All the replicates' counts, kept for the next estimate on a log of the same size."""
    counts = np.concatenate(list(_count_chunks(n, n_bootstrap, random_state)))
    counts = counts.astype(np.uint16)
    counts.setflags(write=False)
    return counts


def bootstrap_counts(n: int, n_bootstrap: int, random_state: int | None) -> Iterator[np.ndarray]:
    """The replicates as ``(chunk, n)`` counts of how often each row was drawn, chunk by chunk.

    The same seed and ``n`` give the same replicates. The counts of a seeded bootstrap are
    cached (the last ``n x n_bootstrap`` matrix up to 40 million cells).
    """
    if random_state is not None and n * n_bootstrap <= _CACHE_CELLS:
        counts = _cached_counts(n, n_bootstrap, random_state)
        step = max(1, _CHUNK_CELLS // n)
        return (counts[i : i + step] for i in range(0, n_bootstrap, step))
    return _count_chunks(n, n_bootstrap, random_state)


def bootstrap_sums(columns: np.ndarray, n_bootstrap: int, random_state: int | None) -> np.ndarray:
    """``(n_bootstrap, k)`` column sums of ``columns`` ``(n, k)`` over resampled rows.

    The same seed and ``n`` give the same replicates whatever the columns are, so estimates of
    different policies on one log are paired. The counts are cached
    (:func:`bootstrap_counts`), so each further estimate costs one matrix product.
    """
    chunks = bootstrap_counts(columns.shape[0], n_bootstrap, random_state)
    return np.concatenate([chunk.astype(np.float64) @ columns for chunk in chunks])


def replicate_ratios(sums: np.ndarray, column: int) -> np.ndarray:
    """Bootstrap replicates ``sums[:, column] / sums[:, column + 1]`` (NaN where 0 / 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return sums[:, column] / sums[:, column + 1]
