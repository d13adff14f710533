"""Results over several training seeds, reported the way ``rliable`` recommends.

A single training run says little about an RL algorithm: another seed may land elsewhere. Agarwal
et al. recommend, for a handful of runs, three things instead of a mean over seeds:

* the **interquartile mean** (IQM): the mean of the middle 50 % of all scores (every run of
  every task pooled), robust to one outlying seed yet less noisy than the median. As in
  ``rliable`` (``scipy.stats.trim_mean(scores, 0.25, axis=None)``), ``⌊0.25 N⌋`` scores are cut
  from each end of the ``N`` sorted scores and the rest averaged;
* **stratified bootstrap confidence intervals**: each resample draws, *within every task*, as
  many runs as that task has, with replacement, and recomputes the statistic; the interval is
  the ``(1 − c)/2`` and ``(1 + c)/2`` percentiles of the ``B`` resampled statistics
  (percentile method, ``B = 2,000`` by default);
* the **probability of improvement** ``P(X > Y)``: the chance that a run of algorithm ``X``
  scores above a run of ``Y`` on the same task, ties counting half (the Mann–Whitney ``U``
  statistic divided by ``n_X n_Y``), averaged over tasks::

      P(X > Y) = 1/T Σ_t 1/(n_X n_Y) Σ_i Σ_j S(x_it, y_jt),
      S(a, b) = 1 if a > b, ½ if a = b, 0 if a < b.

  Its interval comes from resampling the runs of ``X`` and of ``Y`` independently, each
  stratified by task.

Scores are given per algorithm as an array of one score per run (``(n_runs,)``: one task) or as
``(n_runs, n_tasks)``. Here a run is a training seed and the score its profit per customer on
the evaluation cohort. Every draw comes from a seeded :class:`numpy.random.Generator`: the same
seed gives the same intervals. With an integer seed every algorithm's resamples start from that
seed, so an algorithm's interval does not depend on which others are reported with it.

Reference:
    Agarwal, Schwarzer, Castro, Courville and Bellemare (2021), "Deep Reinforcement Learning at
    the Edge of the Statistical Precipice", NeurIPS; the ``rliable`` library
    (``rliable/library.py``, ``rliable/metrics.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "IQMEstimate",
    "ImprovementProbability",
    "aggregate_iqm",
    "as_score_matrix",
    "improvement_probability",
    "interquartile_mean",
    "iqm_estimate",
    "percentile_interval",
    "probability_of_improvement",
    "stratified_bootstrap",
]

DEFAULT_RESAMPLES = 2_000
"""Bootstrap resamples per interval (``rliable``'s default ``reps``)."""

DEFAULT_CONFIDENCE = 0.95
"""Coverage of the confidence intervals."""

SeedLike = int | np.random.Generator | None


@dataclass(frozen=True)
class IQMEstimate:
    """The interquartile mean of an algorithm's runs with its stratified-bootstrap interval.

    Attributes:
        algorithm: Name of the algorithm.
        iqm: Interquartile mean of all its scores.
        low: Lower end of the percentile interval.
        high: Upper end of the percentile interval.
        n_runs: Runs (seeds) per task.
        n_tasks: Tasks.
        confidence: Coverage of the interval.
        n_resamples: Bootstrap resamples behind it.
    """

    algorithm: str
    iqm: float
    low: float
    high: float
    n_runs: int
    n_tasks: int
    confidence: float
    n_resamples: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


@dataclass(frozen=True)
class ImprovementProbability:
    """``P(X > Y)`` between two algorithms with its stratified-bootstrap interval.

    Attributes:
        x: The algorithm that may improve.
        y: The algorithm it is compared with.
        probability: ``P(X > Y) + ½ P(X = Y)``, averaged over tasks.
        low: Lower end of the percentile interval.
        high: Upper end of the percentile interval.
        n_runs_x: Runs of ``x`` per task.
        n_runs_y: Runs of ``y`` per task.
        n_tasks: Tasks.
        confidence: Coverage of the interval.
        n_resamples: Bootstrap resamples behind it.
    """

    x: str
    y: str
    probability: float
    low: float
    high: float
    n_runs_x: int
    n_runs_y: int
    n_tasks: int
    confidence: float
    n_resamples: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


def as_score_matrix(scores: ArrayLike, name: str = "scores") -> np.ndarray:
    """Scores as a float ``(n_runs, n_tasks)`` matrix; a 1-D array is one task.

    Raises:
        ValueError: If the scores are not numbers, not 1-D or 2-D, empty or not finite; the
            message starts with ``name``.
    """
    try:
        matrix = np.array(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: scores must be numbers ({exc})") from None
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2:
        raise ValueError(
            f"{name}: scores must be 1-D (n_runs,) or 2-D (n_runs, n_tasks), "
            f"got shape {matrix.shape}"
        )
    if matrix.size == 0:
        raise ValueError(f"{name}: no scores (shape {matrix.shape})")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name}: scores must be finite, got NaN or infinity")
    return matrix


def _check_resamples(n_resamples: int) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer):
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}")


def _check_confidence(confidence: float) -> None:
    real = isinstance(confidence, int | float | np.floating) and not isinstance(confidence, bool)
    if not real or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _trimmed_mean(values: np.ndarray) -> np.ndarray:
    """IQM over the last axis (already flattened), batched over the leading axes."""
    n = values.shape[-1]
    cut = int(0.25 * n)  # scipy.stats.trim_mean's rule: whole scores only
    ordered = np.sort(values, axis=-1)
    return ordered[..., cut : n - cut].mean(axis=-1)


def interquartile_mean(scores: ArrayLike) -> float:
    """Mean of the middle 50 % of all scores pooled (``⌊N/4⌋`` cut from each end).

    Equal to ``scipy.stats.trim_mean(scores, 0.25, axis=None)``, as ``rliable``'s
    ``aggregate_iqm``. For ``1, …, 8``: ``(3 + 4 + 5 + 6) / 4 = 4.5``.
    """
    return float(_trimmed_mean(as_score_matrix(scores).ravel()))


def _generator(seed: SeedLike) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def stratified_bootstrap(
    scores: ArrayLike, n_resamples: int = DEFAULT_RESAMPLES, seed: SeedLike = 0
) -> np.ndarray:
    """Resampled score sets: runs drawn with replacement within each task.

    Args:
        scores: ``(n_runs,)`` or ``(n_runs, n_tasks)``.
        n_resamples: Number of resamples ``B``.
        seed: Seed or generator of the draws.

    Returns:
        ``(B, n_runs, n_tasks)``: resample ``b`` holds, for task ``t``, ``n_runs`` scores drawn
        from that task's runs.
    """
    matrix = as_score_matrix(scores)
    _check_resamples(n_resamples)
    n_runs, n_tasks = matrix.shape
    runs = _generator(seed).integers(0, n_runs, size=(n_resamples, n_runs, n_tasks))
    return matrix[runs, np.arange(n_tasks)]


def percentile_interval(
    statistics: ArrayLike, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """The ``(1 − c)/2`` and ``(1 + c)/2`` percentiles of bootstrap statistics (linear)."""
    _check_confidence(confidence)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(np.asarray(statistics, dtype=np.float64), [tail, 100.0 - tail])
    return float(low), float(high)


def iqm_estimate(
    scores: ArrayLike,
    algorithm: str = "",
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: SeedLike = 0,
) -> IQMEstimate:
    """IQM of one algorithm's scores with its stratified-bootstrap percentile interval."""
    matrix = as_score_matrix(scores, algorithm or "scores")
    _check_resamples(n_resamples)
    _check_confidence(confidence)
    resampled = stratified_bootstrap(matrix, n_resamples, seed)
    statistics = _trimmed_mean(resampled.reshape(n_resamples, -1))
    low, high = percentile_interval(statistics, confidence)
    return IQMEstimate(
        algorithm=algorithm,
        iqm=float(_trimmed_mean(matrix.ravel())),
        low=low,
        high=high,
        n_runs=matrix.shape[0],
        n_tasks=matrix.shape[1],
        confidence=confidence,
        n_resamples=n_resamples,
    )


def aggregate_iqm(
    scores: Mapping[str, ArrayLike],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: SeedLike = 0,
) -> dict[str, IQMEstimate]:
    """:func:`iqm_estimate` of every algorithm in ``scores`` (algorithm → scores).

    Raises:
        ValueError: If the mapping is empty or an algorithm's scores are invalid (named).
    """
    if not scores:
        raise ValueError("scores: no algorithms given")
    return {
        name: iqm_estimate(values, name, n_resamples=n_resamples, confidence=confidence, seed=seed)
        for name, values in scores.items()
    }


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``P(X > Y) + ½ P(X = Y)`` averaged over tasks, batched: ``(…, n_x, T)``, ``(…, n_y, T)``."""
    left, right = x[..., :, None, :], y[..., None, :, :]
    wins = (left > right).astype(np.float64) + 0.5 * (left == right)
    return wins.mean(axis=(-3, -2)).mean(axis=-1)


def _paired_matrices(
    scores_x: ArrayLike, scores_y: ArrayLike, x: str, y: str
) -> tuple[np.ndarray, np.ndarray]:
    first, second = as_score_matrix(scores_x, x), as_score_matrix(scores_y, y)
    if first.shape[1] != second.shape[1]:
        raise ValueError(
            f"{x} has {first.shape[1]} task(s) but {y} has {second.shape[1]}: "
            "the probability of improvement compares the same tasks"
        )
    return first, second


def improvement_probability(scores_x: ArrayLike, scores_y: ArrayLike) -> float:
    """``P(X > Y) + ½ P(X = Y)`` of two score sets, averaged over tasks (no interval).

    1 when every run of ``x`` beats every run of ``y``, 0 when every one loses, ½ for
    identical samples.
    """
    first, second = _paired_matrices(scores_x, scores_y, "x", "y")
    return float(_improvement(first, second))


def probability_of_improvement(
    scores: Mapping[str, ArrayLike],
    x: str,
    y: str,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: SeedLike = 0,
) -> ImprovementProbability:
    """``P(X > Y)`` of algorithm ``x`` over ``y`` with its stratified-bootstrap interval.

    The runs of ``x`` and of ``y`` are resampled independently, each within every task.

    Args:
        scores: Algorithm → scores, ``(n_runs,)`` or ``(n_runs, n_tasks)``.
        x: The algorithm that may improve.
        y: The algorithm it is compared with (the same number of tasks as ``x``).
        n_resamples: Bootstrap resamples.
        confidence: Coverage of the interval.
        seed: Seed or generator of the draws.

    Raises:
        ValueError: If ``x`` or ``y`` is missing, their scores are invalid, or their task
            counts differ; the message names the algorithm.
    """
    for name in (x, y):
        if name not in scores:
            known = ", ".join(map(str, scores)) or "none"
            raise ValueError(f"{name!r}: no scores for this algorithm; known: {known}")
    _check_resamples(n_resamples)
    _check_confidence(confidence)
    first, second = _paired_matrices(scores[x], scores[y], x, y)
    rng = _generator(seed)
    statistics = _improvement(
        stratified_bootstrap(first, n_resamples, rng),
        stratified_bootstrap(second, n_resamples, rng),
    )
    low, high = percentile_interval(statistics, confidence)
    return ImprovementProbability(
        x=x,
        y=y,
        probability=float(_improvement(first, second)),
        low=low,
        high=high,
        n_runs_x=first.shape[0],
        n_runs_y=second.shape[0],
        n_tasks=first.shape[1],
        confidence=confidence,
        n_resamples=n_resamples,
    )
