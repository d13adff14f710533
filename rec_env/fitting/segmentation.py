"""RFM segments by k-means on scaled recency, frequency and value: the starting segments of a fit.

Each customer is described by ``log1p`` of their recency, their frequency and their mean value
per purchase occasion (all occasions, the acquisition included, so that customers without a
repeat purchase have one), each standardised to mean 0 and standard deviation 1. k-means
(k-means++ starts, the best of ``n_init``) groups them into ``k`` segments, numbered from the
most to the least frequent buyers. :mod:`rec_env.fitting.latent_classes` refines these hard segments
into a mixture.
"""

from __future__ import annotations

import numpy as np

from rec_env.fitting.rfm import RFM, PurchaseHistory

__all__ = ["kmeans_segments", "rfm_features"]


def rfm_features(history: PurchaseHistory, scores: RFM) -> np.ndarray:
    """``(n, 3)`` standardised ``log1p`` recency, frequency and mean value per occasion."""
    n = history.n_customers
    total = np.bincount(history.occasion_customer, weights=history.occasion_value, minlength=n)
    occasions = np.bincount(history.occasion_customer, minlength=n)
    value = total / np.maximum(occasions, 1)
    raw = np.log1p(np.column_stack([scores.recency, scores.frequency, value]))
    spread = raw.std(axis=0)
    return (raw - raw.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def kmeans_segments(features: np.ndarray, k: int, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """k-means segments of customers, numbered by decreasing mean frequency.

    Args:
        features: ``(n, 3)`` standardised features (:func:`rfm_features`).
        k: Number of segments.
        seed: Seed of the k-means++ starts.
        n_init: Restarts; the one with the smallest inertia is kept.

    Returns:
        ``(n,)`` segment of each customer, ``0..k-1``, 0 for the most frequent buyers.

    Raises:
        ValueError: If ``k`` is not a positive integer or exceeds the number of distinct
            customers.
    """
    from sklearn.cluster import KMeans

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"the number of segments must be a positive integer, got {k!r}")
    distinct = np.unique(features, axis=0).shape[0]
    if k > distinct:
        raise ValueError(f"{k} segments but only {distinct} customers with distinct RFM")
    labels = KMeans(k, n_init=n_init, random_state=seed).fit_predict(features)
    means = np.array([features[labels == s].mean(axis=0) for s in range(k)])
    order = np.lexsort((means[:, 0], -means[:, 2], -means[:, 1]))
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[labels]
