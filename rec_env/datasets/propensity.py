r"""Logging propensities of a tabular log: given, uniform, from the observed split, or a model.

The options of ``propensity`` in a :class:`~rec_env.datasets.log_spec.LogSpec`:

* a column: read as is; each must be in (0, 1].
* ``uniform``: :math:`\mu(a) = 1/K` for the :math:`K` actions. If the observed split is
  implausible under uniform assignment (chi-square test, :math:`p < 10^{-3}`), a warning says so.
* ``split``: :math:`\hat\mu(a) = n_a / n`, the maximum-likelihood estimate of a randomised
  assignment that does not depend on the features (with positions: :math:`n_{a,p} / n_p` per
  position). Using the estimated rather than the designed propensities keeps IPS consistent
  and does not increase its asymptotic variance (Hirano, Imbens & Ridder 2003, *Econometrica*
  71(4)). :class:`PropensityEstimate` reports each share with a 95 % Wilson score interval and
  the chi-square test of a uniform split; a made-up 50.11 / 49.89 split is accepted as it is.
* ``model``: a fitted model of :math:`\mu(a \mid x)`, passed in by the caller
  (:data:`PropensityModel`, e.g. from :mod:`rec_env.agents`); nothing is fitted here. A log
  declared non-randomised (``randomised: false``) or read with ``model`` warns with
  :class:`NonRandomisedLogWarning`: estimates then rest on that model being right.

This module imports numpy only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rec_env.errors import ConfigError

__all__ = [
    "NonRandomisedLogWarning",
    "PropensityEstimate",
    "PropensityModel",
    "logging_propensities",
    "warn_non_randomised",
]

PropensityModel = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
"""``(contexts (n, d), actions (n,), n_actions) -> (n, n_actions)`` fitted probabilities of
every action (or ``(n,)`` of the logged action), for ``propensity: model``."""

_WILSON_Z = 1.959963984540054  # two-sided 95 %
_UNIFORM_ALERT = 1e-3


class NonRandomisedLogWarning(UserWarning):
    """The log was not randomised: every off-policy estimate depends on a propensity model."""


@dataclass(frozen=True)
class PropensityEstimate:
    """How the propensities were obtained, with the observed action split.

    Attributes:
        method: ``"column"``, ``"uniform"``, ``"split"`` or ``"model"``.
        counts: ``(n_actions,)`` rows per action.
        shares: ``(n_actions,)`` observed share of each action, :math:`n_a / n`.
        ci_low, ci_high: ``(n_actions,)`` 95 % Wilson score interval of each share.
        uniform_p_value: Chi-square test p-value of a uniform split (``nan`` for one action).
    """

    method: Literal["column", "uniform", "split", "model"]
    counts: np.ndarray
    shares: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    uniform_p_value: float

    @classmethod
    def observe(cls, method: str, actions: np.ndarray, n_actions: int) -> PropensityEstimate:
        """The split of ``actions`` with Wilson intervals and the uniformity test."""
        counts = np.bincount(actions, minlength=n_actions).astype(np.int64)
        n = counts.sum()
        shares = counts / n
        z2 = _WILSON_Z**2
        centre = (shares + z2 / (2 * n)) / (1 + z2 / n)
        half = _WILSON_Z * np.sqrt(shares * (1 - shares) / n + z2 / (4 * n * n)) / (1 + z2 / n)
        return cls(
            method,  # type: ignore[arg-type]
            counts,
            shares,
            np.clip(centre - half, 0.0, 1.0),
            np.clip(centre + half, 0.0, 1.0),
            _uniform_p_value(counts),
        )


def _uniform_p_value(counts: np.ndarray) -> float:
    r"""Pearson chi-square test of equal shares: :math:`P(\chi^2_{K-1} \ge X^2)`."""
    if counts.size < 2:
        return float("nan")
    expected = counts.sum() / counts.size
    statistic = float(((counts - expected) ** 2).sum() / expected)
    return _upper_gamma(0.5 * (counts.size - 1), 0.5 * statistic)


def _upper_gamma(a: float, x: float) -> float:
    """Regularised upper incomplete gamma :math:`Q(a, x)` (the chi-square survival function).

    Series for ``x < a + 1``, Lentz's continued fraction otherwise (Numerical Recipes, 6.2);
    written out to keep scipy (about 1.5 s to import) out of reading a file.
    """
    if x <= 0.0:
        return 1.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        denominator = a
        for _ in range(1000):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)


def logging_propensities(
    method: Literal["column", "uniform", "split", "model"],
    actions: np.ndarray,
    n_actions: int,
    *,
    column: np.ndarray | None = None,
    positions: np.ndarray | None = None,
    n_positions: int | None = None,
    contexts: np.ndarray | None = None,
    model: PropensityModel | None = None,
    source: str = "<data>",
) -> tuple[np.ndarray, np.ndarray | None, PropensityEstimate]:
    """The propensity of each logged action by ``method`` (see the module docs).

    Args:
        method: ``"column"`` (``column`` holds them, checked by the caller), ``"uniform"``,
            ``"split"`` or ``"model"``.
        actions: ``(n,)`` logged action indices.
        n_actions: Number of actions.
        column: ``(n,)`` logged propensities, for ``"column"``.
        positions: ``(n,)`` position indices, if the log has positions.
        n_positions: Number of positions.
        contexts: ``(n, d)`` encoded features, for ``"model"``.
        model: The fitted propensity model, for ``"model"``.
        source: The file, for warnings.

    Returns:
        ``(propensities (n,), logging distribution or None, estimate)``; the distribution is
        ``(n, n_actions)`` (``(n, n_actions, n_positions)`` with positions), a read-only
        broadcast view for ``uniform`` and ``split``.

    Raises:
        ConfigError: If ``"model"`` is asked for without a model.
        ValueError: If the model returns a wrong shape or propensities outside (0, 1].
    """
    estimate = PropensityEstimate.observe(method, actions, n_actions)
    n = actions.shape[0]
    shape = (n, n_actions) if positions is None else (n, n_actions, n_positions or 1)
    if method == "column":
        return np.asarray(column, dtype=np.float64), None, estimate
    if method == "uniform":
        if estimate.uniform_p_value < _UNIFORM_ALERT:
            split = ", ".join(f"{s:.4f}" for s in estimate.shares)
            warnings.warn(
                f"{source}: propensity 'uniform' assumes each action had probability "
                f"1/{n_actions}, but the observed split ({split}) is unlikely under that "
                f"(chi-square p = {estimate.uniform_p_value:.2g}); consider propensity: split",
                UserWarning,
                stacklevel=3,
            )
        distribution = np.broadcast_to(1.0 / n_actions, shape)
        return np.full(n, 1.0 / n_actions), distribution, estimate
    if method == "split":
        if positions is None:
            return estimate.shares[actions], np.broadcast_to(estimate.shares, shape), estimate
        counts = np.zeros((n_actions, n_positions or 1))
        np.add.at(counts, (actions, positions), 1.0)
        shares = counts / counts.sum(axis=0, keepdims=True)
        return shares[actions, positions], np.broadcast_to(shares, shape), estimate
    if model is None or contexts is None:
        raise ConfigError(
            "propensity 'model' needs a fitted propensity model: pass propensity_model= to "
            "read_log (rec_env.agents provides one), or give a logged propensity column"
        )
    return _model_propensities(model, contexts, actions, n_actions, positions), None, estimate


def _model_propensities(
    model: PropensityModel,
    contexts: np.ndarray,
    actions: np.ndarray,
    n_actions: int,
    positions: np.ndarray | None,
) -> np.ndarray:
    """The fitted model's probability of each logged action, checked."""
    if positions is not None:
        raise ConfigError("propensity 'model' is not supported with positions; give a column")
    fitted = np.asarray(model(contexts, actions, n_actions), dtype=np.float64)
    n = actions.shape[0]
    if fitted.shape == (n, n_actions):
        fitted = fitted[np.arange(n), actions]
    if fitted.shape != (n,):
        raise ValueError(
            f"the propensity model returned shape {fitted.shape}; expected ({n}, {n_actions}) "
            f"or ({n},)"
        )
    bad = ~np.isfinite(fitted) | (fitted <= 0) | (fitted > 1.0 + 1e-9)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"the propensity model gave {fitted[i]!r} for row {i + 1}'s logged action; "
            "propensities must be in (0, 1] (clip or smooth the model)"
        )
    return fitted


def warn_non_randomised(source: str) -> None:
    """Warn loudly (:class:`NonRandomisedLogWarning`) that ``source`` was not randomised."""
    warnings.warn(
        f"{source}: the log is declared NOT randomised. Off-policy values and learned "
        "policies from it are only as good as the fitted propensity model (no unmeasured "
        "confounders, overlap); treat them as estimates to test, not measurements.",
        NonRandomisedLogWarning,
        stacklevel=3,
    )
