"""Item-level metrics of recommended slates: ranking quality, diversity, novelty and exposure.

All functions are batched over customers and use numpy only. Per-customer metrics return an
array of shape ``(n,)`` (ready for a mean with a confidence interval); catalog-level metrics
return a float.

Inputs:

* ``recommended``: integer array ``(n, K)`` of product indices in ``[0, P)``, best first. A
  ``-1`` marks an empty position (padding), so slates of different lengths share one array.
  Positions keep their index: an item in column ``j`` has rank ``j + 1`` even when an earlier
  column is padding. Padding contributes nothing to any metric.
* ``relevance``: either the true utility ``(n, P)`` of every product for every customer (float,
  which the simulator knows) or an explicit boolean relevance matrix ``(n, P)``.

Conventions (those of Microsoft ``recommenders``' ``python_evaluation``):

* **Relevant set.** From utilities, a customer's relevant products are their top ``m`` products
  by true utility, ``m = n_relevant`` (default ``min(k, P)``). Ties are broken by the lower
  product index: of products with equal utility at the cut, those with the smaller index are
  taken first, so the set always has exactly ``m`` products and is deterministic.
* **Gain.** Binary by default: 1 for a relevant product, 0 otherwise. With ``gain="graded"``
  the gain of a relevant product is its utility (which must then be ≥ 0), of others 0.
* **Discount.** ``1 / log2(rank + 1)``, rank 1-based (the log base cancels in NDCG).
* **NDCG@k** = DCG@k / IDCG@k, the ideal DCG taken over the ``min(|relevant|, k)`` best gains.
  A customer with no relevant product (or zero ideal gain) has an undefined NDCG, returned as
  ``NaN``: average with :func:`numpy.nanmean`, which excludes them as ``recommenders`` does.
* **HR@k** = 1 if any of the first ``k`` positions holds a relevant product, else 0.
* **Precision@k** = hits / ``k``, also when the slate has fewer than ``k`` items (``k > K`` or
  padding): missing positions count as misses.
* Ranking metrics reject a product repeated within the first ``k`` positions (DCG could
  otherwise exceed the ideal).

Beyond accuracy:

* **Intra-list diversity** = 1 − mean pairwise cosine similarity of the slate's topic vectors,
  over the ``L (L − 1) / 2`` pairs of its ``L`` non-padding items (repeats count as identical
  items). Undefined (``NaN``) for ``L < 2``. In ``[0, 1]`` for non-negative topic vectors.
* **Novelty** = mean ``−log2 p(i)`` over the slate's non-padding items, ``p`` the popularity
  renormalised to sum to 1 (counts are accepted). Zero popularity is clipped to
  ``min_popularity`` (default ``1e-6``, at most ~19.9 bits) so that the score stays finite.
  ``NaN`` for an empty slate.
* **Catalog coverage** = fraction of the ``P`` products recommended at least once.
* **Exposure Gini** = Gini coefficient of the exposure counts of all ``P`` products, zero-exposure
  products included: ``G = Σ_i (2i − P − 1) c_(i) / (P Σ_i c_i)`` with ``c_(1) ≤ … ≤ c_(P)``.
  0 when every product is shown equally often, ``(P − 1) / P`` when one product gets it all.

References:
    Järvelin and Kekäläinen (2002), "Cumulated gain-based evaluation of IR techniques";
    Ziegler et al. (2005), "Improving recommendation lists through topic diversification";
    Microsoft ``recommenders``, ``recommenders/evaluation/python_evaluation.py``.
"""

from __future__ import annotations

import operator
from typing import Literal

import numpy as np

__all__ = [
    "catalog_coverage",
    "exposure_gini",
    "hit_rate_at_k",
    "intra_list_diversity",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "top_m_relevant",
]

PADDING = -1
"""Marker of an empty slate position in ``recommended``."""

Gain = Literal["binary", "graded"]


# --- validation -------------------------------------------------------------------------------


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {number}")
    return number


def _check_recommended(recommended: np.ndarray, n_products: int) -> np.ndarray:
    """Validate an ``(n, K)`` slate array of indices in ``[-1, n_products)``."""
    recommended = np.asarray(recommended)
    if recommended.ndim != 2:
        raise ValueError(
            f"recommended must be 2-D (n_customers, slate_size), got shape {recommended.shape}"
        )
    if recommended.size and not np.issubdtype(recommended.dtype, np.integer):
        raise ValueError(f"recommended must hold integer product indices, got {recommended.dtype}")
    recommended = recommended.astype(np.int64, copy=False)
    if recommended.size:
        low, high = int(recommended.min()), int(recommended.max())
        if low < PADDING or high >= n_products:
            raise ValueError(
                f"recommended holds indices in [{low}, {high}]; expected product indices in "
                f"[0, {n_products}) or {PADDING} for padding"
            )
    return recommended


def _check_matrix(values: np.ndarray, name: str, rows: int | None = None) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {values.shape}")
    if rows is not None and values.shape[0] != rows:
        raise ValueError(f"{name} has {values.shape[0]} rows but recommended has {rows} customers")
    if values.dtype != np.bool_ and not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return values


def _gather(table: np.ndarray, recommended: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-position values ``table[c, recommended[c, j]]`` (0 at padding) and the valid mask."""
    valid = recommended != PADDING
    safe = np.where(valid, recommended, 0)
    return np.take_along_axis(table, safe, axis=1) * valid, valid


# --- ranking metrics --------------------------------------------------------------------------


def top_m_relevant(utility: np.ndarray, n_relevant: int) -> np.ndarray:
    """Each customer's ``n_relevant`` products of highest true utility, as a boolean mask.

    Ties at the cut are broken by the lower product index, so every row has exactly
    ``n_relevant`` products marked and the result is deterministic. Runs in ``O(n P)``.

    Args:
        utility: True utilities, shape ``(n, P)``.
        n_relevant: ``m``, the number of relevant products per customer, ``1 ≤ m ≤ P``.

    Returns:
        Boolean array ``(n, P)``, True for the relevant products.

    Raises:
        ValueError: If ``utility`` is not a finite 2-D array or ``n_relevant`` is out of range.
    """
    utility = _check_matrix(utility, "utility").astype(np.float64, copy=False)
    n_products = utility.shape[1]
    m = _check_positive_int(n_relevant, "n_relevant")
    if m > n_products:
        raise ValueError(f"n_relevant={m} exceeds the number of products {n_products}")
    if m == n_products:
        return np.ones(utility.shape, dtype=bool)
    # the m-th largest utility of each row is the cut
    cut = -np.partition(-utility, m - 1, axis=1)[:, m - 1 : m]
    above = utility > cut
    at_cut = utility == cut
    still_needed = m - above.sum(axis=1, keepdims=True)
    return above | (at_cut & (np.cumsum(at_cut, axis=1) <= still_needed))


def _ranking_inputs(
    recommended: np.ndarray,
    relevance: np.ndarray,
    k: int,
    n_relevant: int | None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate and return the first ``k`` columns of ``recommended``, the relevant mask and k."""
    k = _check_positive_int(k, "k")
    relevance = np.asarray(relevance)
    if relevance.ndim != 2:
        raise ValueError(f"relevance must be 2-D (n_customers, n_products), got {relevance.shape}")
    recommended = _check_recommended(recommended, relevance.shape[1])
    relevance = _check_matrix(relevance, "relevance", rows=recommended.shape[0])
    if relevance.dtype == np.bool_:
        if n_relevant is not None:
            raise ValueError("n_relevant applies to utilities; relevance is already boolean")
        relevant = relevance
    else:
        m = min(k, relevance.shape[1]) if n_relevant is None else n_relevant
        relevant = top_m_relevant(relevance, m)
    head = recommended[:, :k]
    ordered = np.sort(head, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != PADDING)
    if repeated.any():
        row = int(np.flatnonzero(repeated.any(axis=1))[0])
        raise ValueError(f"recommended repeats a product within the first k={k} (customer {row})")
    return head, relevant, k


def _discounts(length: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks ``1..length``."""
    return 1.0 / np.log2(np.arange(2, length + 2, dtype=np.float64))


def ndcg_at_k(
    recommended: np.ndarray,
    relevance: np.ndarray,
    k: int,
    *,
    n_relevant: int | None = None,
    gain: Gain = "binary",
) -> np.ndarray:
    """Normalised discounted cumulative gain at ``k`` of each customer's slate.

    ``DCG@k = Σ_{r ≤ k} g(item_r) / log2(r + 1)``; ``NDCG@k = DCG@k / IDCG@k`` with the ideal
    DCG over the ``min(|relevant|, k)`` largest gains (see the module conventions).

    Args:
        recommended: Product indices ``(n, K)``, best first, ``-1`` for padding.
        relevance: True utilities ``(n, P)`` (float) or a boolean relevance matrix ``(n, P)``.
        k: Cut-off; positions beyond ``K`` count as empty.
        n_relevant: Size ``m`` of the relevant set taken from utilities (default
            ``min(k, P)``). Not allowed with a boolean ``relevance``.
        gain: ``"binary"`` (1 per relevant product) or ``"graded"`` (its utility, ≥ 0).

    Returns:
        NDCG@k per customer, shape ``(n,)``, in ``[0, 1]``; ``NaN`` where the ideal DCG is 0.

    Raises:
        ValueError: On bad shapes, indices, ``k``, ``n_relevant`` or ``gain``, repeated products,
            or negative graded gains.
    """
    if gain not in ("binary", "graded"):
        raise ValueError(f"gain must be 'binary' or 'graded', got {gain!r}")
    head, relevant, k = _ranking_inputs(recommended, relevance, k, n_relevant)
    if gain == "binary":
        gains = relevant.astype(np.float64)
    else:
        if np.asarray(relevance).dtype == np.bool_:
            raise ValueError("graded gain needs utilities, but relevance is boolean")
        gains = np.where(relevant, np.asarray(relevance, dtype=np.float64), 0.0)
        if (gains < 0).any():
            raise ValueError("graded gain needs non-negative utilities for the relevant products")
    slate_gains, _ = _gather(gains, head)
    dcg = slate_gains @ _discounts(head.shape[1])
    ideal_length = min(k, gains.shape[1])
    ideal_gains = -np.sort(-gains, axis=1)[:, :ideal_length]
    idcg = ideal_gains @ _discounts(ideal_length)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)


def _hits(
    recommended: np.ndarray, relevance: np.ndarray, k: int, n_relevant: int | None
) -> tuple[np.ndarray, int]:
    head, relevant, k = _ranking_inputs(recommended, relevance, k, n_relevant)
    slate_hits, _ = _gather(relevant, head)
    return slate_hits.sum(axis=1), k


def hit_rate_at_k(
    recommended: np.ndarray,
    relevance: np.ndarray,
    k: int,
    *,
    n_relevant: int | None = None,
) -> np.ndarray:
    """Whether any of the first ``k`` recommended products is relevant (HR@k), per customer.

    Args:
        recommended: Product indices ``(n, K)``, best first, ``-1`` for padding.
        relevance: True utilities ``(n, P)`` (float) or a boolean relevance matrix ``(n, P)``.
        k: Cut-off.
        n_relevant: Size of the relevant set taken from utilities (default ``min(k, P)``).

    Returns:
        1.0 or 0.0 per customer, shape ``(n,)``.

    Raises:
        ValueError: On bad shapes, indices, ``k`` or ``n_relevant``, or repeated products.
    """
    hits, _ = _hits(recommended, relevance, k, n_relevant)
    return (hits > 0).astype(np.float64)


def precision_at_k(
    recommended: np.ndarray,
    relevance: np.ndarray,
    k: int,
    *,
    n_relevant: int | None = None,
) -> np.ndarray:
    """Relevant products among the first ``k`` positions divided by ``k``, per customer.

    Args:
        recommended: Product indices ``(n, K)``, best first, ``-1`` for padding.
        relevance: True utilities ``(n, P)`` (float) or a boolean relevance matrix ``(n, P)``.
        k: Cut-off; the divisor even when the slate is shorter.
        n_relevant: Size of the relevant set taken from utilities (default ``min(k, P)``).

    Returns:
        Precision@k per customer, shape ``(n,)``, in ``[0, 1]``.

    Raises:
        ValueError: On bad shapes, indices, ``k`` or ``n_relevant``, or repeated products.
    """
    hits, k = _hits(recommended, relevance, k, n_relevant)
    return hits / k


# --- beyond accuracy --------------------------------------------------------------------------


def intra_list_diversity(slates: np.ndarray, topics: np.ndarray) -> np.ndarray:
    """One minus the mean pairwise cosine similarity of each slate's topic vectors.

    With unit topic vectors ``u_j`` of the ``L`` non-padding items and ``s = Σ_j u_j``, the sum
    of pairwise similarities is ``(‖s‖² − L) / 2``, so the mean over the ``L (L − 1) / 2`` pairs
    is ``(‖s‖² − L) / (L (L − 1))``; this costs ``O(n K T)``.

    Args:
        slates: Product indices ``(n, K)``, ``-1`` for padding.
        topics: Topic vectors ``(P, T)``, each with a non-zero norm.

    Returns:
        Diversity per customer, shape ``(n,)``; ``NaN`` for slates with fewer than 2 items.

    Raises:
        ValueError: On bad shapes or indices, or a non-finite or zero topic vector.
    """
    topics = _check_matrix(topics, "topics").astype(np.float64, copy=False)
    slates = _check_recommended(slates, topics.shape[0])
    norms = np.linalg.norm(topics, axis=1)
    if (norms == 0).any():
        raise ValueError(f"topics has zero vectors (products {np.flatnonzero(norms == 0)[:5]})")
    unit = topics / norms[:, None]
    valid = slates != PADDING
    vectors = unit[np.where(valid, slates, 0)] * valid[:, :, None]
    total = vectors.sum(axis=1)
    length = valid.sum(axis=1).astype(np.float64)
    pairs = length * (length - 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_similarity = (np.einsum("nt,nt->n", total, total) - length) / pairs
    return np.where(length >= 2, 1.0 - mean_similarity, np.nan)


def novelty(
    recommended: np.ndarray, popularity: np.ndarray, *, min_popularity: float = 1e-6
) -> np.ndarray:
    """Mean self-information ``−log2 p(i)`` of each slate's items, in bits.

    Args:
        recommended: Product indices ``(n, K)``, ``-1`` for padding.
        popularity: Non-negative popularity ``(P,)``, renormalised to sum to 1.
        min_popularity: Floor applied to the normalised popularity so that products never seen
            (popularity 0) get a finite novelty, ``−log2(min_popularity)``.

    Returns:
        Novelty per customer, shape ``(n,)``; ``NaN`` for an empty slate.

    Raises:
        ValueError: On bad shapes or indices, negative or non-finite popularity, an all-zero
            popularity, or ``min_popularity`` outside ``(0, 1]``.
    """
    popularity = np.asarray(popularity, dtype=np.float64)
    if popularity.ndim != 1:
        raise ValueError(f"popularity must be 1-D (n_products,), got shape {popularity.shape}")
    if not np.all(np.isfinite(popularity)) or (popularity < 0).any():
        raise ValueError("popularity must be finite and non-negative")
    if popularity.sum() <= 0:
        raise ValueError("popularity must have a positive sum")
    if not 0.0 < min_popularity <= 1.0:
        raise ValueError(f"min_popularity must be in (0, 1], got {min_popularity}")
    recommended = _check_recommended(recommended, popularity.shape[0])
    information = -np.log2(np.maximum(popularity / popularity.sum(), min_popularity))
    valid = recommended != PADDING
    values = np.where(valid, information[np.where(valid, recommended, 0)], 0.0)
    length = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(length > 0, values.sum(axis=1) / length, np.nan)


def _exposure_counts(recommended: np.ndarray, n_products: int) -> np.ndarray:
    n_products = _check_positive_int(n_products, "n_products")
    recommended = _check_recommended(recommended, n_products)
    shown = recommended[recommended != PADDING]
    return np.bincount(shown, minlength=n_products)


def catalog_coverage(recommended: np.ndarray, n_products: int) -> float:
    """Fraction of the catalog recommended at least once, over all customers and positions.

    Args:
        recommended: Product indices ``(n, K)``, ``-1`` for padding.
        n_products: Catalog size ``P``.

    Returns:
        Coverage in ``[0, 1]``.

    Raises:
        ValueError: On bad shapes or indices, or a non-positive ``n_products``.
    """
    counts = _exposure_counts(recommended, n_products)
    return float(np.count_nonzero(counts) / counts.size)


def exposure_gini(recommended: np.ndarray, n_products: int) -> float:
    """Gini coefficient of the exposure counts of all products, unexposed ones included.

    ``G = Σ_i (2i − P − 1) c_(i) / (P Σ_i c_i)`` over the counts sorted ascending.

    Args:
        recommended: Product indices ``(n, K)``, ``-1`` for padding.
        n_products: Catalog size ``P``.

    Returns:
        Gini in ``[0, (P − 1) / P]``: 0 for equal exposure, ``(P − 1) / P`` when one product
        gets every exposure; ``NaN`` when nothing was shown.

    Raises:
        ValueError: On bad shapes or indices, or a non-positive ``n_products``.
    """
    counts = np.sort(_exposure_counts(recommended, n_products)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    size = counts.size
    weights = 2.0 * np.arange(1, size + 1) - size - 1.0
    return float(weights @ counts / (size * total))
