r"""Uplift reporting: Qini and uplift curves, AUUC, uplift@k and the policy-value curve.

Two-action metrics (treat / control) follow scikit-uplift 0.5 (``sklift.metrics``) to the
letter, so that numbers can be compared with published ones:

* customers are ranked by predicted uplift, highest first; ties keep scikit-uplift's order
  (``np.argsort(uplift, kind="mergesort")[::-1]``) and the curves take one point per distinct
  score, starting at ``(0, 0)``;
* :func:`uplift_curve` at the top :math:`k` customers is
  :math:`(\bar y_T(k) - \bar y_C(k)) \cdot k`, and :func:`qini_curve` is
  :math:`(\bar y_T(k) - \bar y_C(k)) \cdot N_T(k)` (= :math:`Y_T(k) - Y_C(k) N_T(k)/N_C(k)`),
  where :math:`\bar y_T(k)` is the mean outcome of the treated among them and :math:`N_T(k)`
  their number; a group with nobody yet counts as mean 0;
* :func:`uplift_auc_score` (AUUC) and :func:`qini_auc_score` (Qini coefficient) are the
  trapezoid area between the curve and the random-targeting diagonal, divided by the same area
  of the perfect curve: 1 is a perfect ranking, 0 a random one;
* :func:`uplift_at_k` is :math:`\bar y_T - \bar y_C` among the top ``k`` (strategy
  ``"overall"``) or among the top ``k`` of each group ranked separately (``"by_group"``); a
  float ``k`` is a share, truncated to whole customers as scikit-uplift does.

Two extensions, which reduce to scikit-uplift when left out: outcomes may be continuous (spend)
for the curves and uplift@k (the normalised scores need a 0/1 outcome, as their perfect curve
does), and ``propensities`` (the probability with which each row's own arm was logged) turn
every group mean into an inverse-propensity weighted (Hájek) mean, for logs that were not split
with one constant probability.

For any number of actions, :func:`matched_two_action` reduces a multi-action log to the
treat / control view of the Qini curve (Zhao, Fang and Simchi-Levi 2017), and
:mod:`rec_env.agents.evaluation.targeting` values targeting the top share of customers by IPS
or DR (the policy-value curve, incremental response and net incremental revenue).

References:
    N. J. Radcliffe. Using control groups to target on predicted lift. Direct Marketing
    Analytics Journal, 2007. F. Devriendt, T. Guns and W. Verbeke. Learning to rank for uplift
    modeling. arXiv:2002.05897, 2020. Y. Zhao, X. Fang and D. Simchi-Levi. Uplift modeling
    with multiple treatments and general response types. SDM 2017.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "matched_two_action",
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "qini_auc_score",
    "qini_curve",
    "ranking",
    "uplift_at_k",
    "uplift_auc_score",
    "uplift_curve",
]


def _check_inputs(
    y_true: np.ndarray,
    treatment: np.ndarray,
    scores: np.ndarray | None = None,
    propensities: np.ndarray | None = None,
    binary_outcome: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(y, treatment, scores, weights)``; weights are ``1 / propensities`` or 1.

    Raises:
        ValueError: On mismatched lengths, a treatment (or outcome, when ``binary_outcome``)
            that is not 0/1, non-finite values or propensities outside ``(0, 1]``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    t = np.asarray(treatment)
    s = np.zeros(y.shape) if scores is None else np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or t.shape != y.shape or s.shape != y.shape:
        raise ValueError(
            f"y_true, uplift and treatment must be 1-D of one length, got shapes "
            f"{y.shape}, {s.shape}, {t.shape}"
        )
    if y.size == 0:
        raise ValueError("no customers: the arrays are empty")
    if not np.isin(t, (0, 1)).all():
        raise ValueError("treatment must hold 0 (control) and 1 (treated) only")
    if binary_outcome and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("this score needs a 0/1 outcome (its perfect curve is defined for one)")
    if not (np.isfinite(y).all() and np.isfinite(s).all()):
        raise ValueError("y_true and uplift must be finite")
    if propensities is None:
        weights = np.ones(y.shape)
    else:
        p = np.broadcast_to(np.asarray(propensities, dtype=np.float64), y.shape)
        if not ((p > 0) & (p <= 1)).all():
            raise ValueError("propensities must lie in (0, 1]: the probability of each row's arm")
        weights = 1.0 / p
    return y, t.astype(np.int64), s, weights


def ranking(scores: np.ndarray) -> np.ndarray:
    """Row order by descending score, ties in scikit-uplift's order (later rows first)."""
    return np.argsort(scores, kind="mergesort")[::-1]


def _group_means(
    y: np.ndarray, t: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative ``(mean_T, mean_C, N_T, N_C)`` after each row (mean 0 for an empty group)."""
    n_treated = np.cumsum(t, dtype=np.float64)
    n_control = np.arange(1, y.size + 1) - n_treated
    weight_t, weight_c = np.cumsum(w * t), np.cumsum(w * (1 - t))
    sum_t, sum_c = np.cumsum(w * y * t), np.cumsum(w * y * (1 - t))
    mean_t = np.divide(sum_t, weight_t, out=np.zeros_like(sum_t), where=weight_t != 0)
    mean_c = np.divide(sum_c, weight_c, out=np.zeros_like(sum_c), where=weight_c != 0)
    return mean_t, mean_c, n_treated, n_control


def _curve(
    y_true: np.ndarray,
    uplift: np.ndarray,
    treatment: np.ndarray,
    propensities: np.ndarray | None,
    qini: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The uplift (``qini=False``) or Qini curve at each distinct score, from ``(0, 0)``."""
    y, t, s, w = _check_inputs(y_true, treatment, uplift, propensities)
    order = ranking(s)
    y, t, s, w = y[order], t[order], s[order], w[order]
    thresholds = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    mean_t, mean_c, n_treated, _ = _group_means(y, t, w)
    n_top = thresholds + 1
    scale = n_treated[thresholds] if qini else n_top
    values = (mean_t[thresholds] - mean_c[thresholds]) * scale
    return np.r_[0, n_top], np.r_[0.0, values]


def uplift_curve(
    y_true: np.ndarray,
    uplift: np.ndarray,
    treatment: np.ndarray,
    propensities: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Uplift curve: customers targeted → incremental outcome, :math:`(\bar y_T-\bar y_C)k`.

    Args:
        y_true: ``(n,)`` outcome (0/1 response or an amount).
        uplift: ``(n,)`` predicted uplift; the higher, the earlier targeted.
        treatment: ``(n,)`` 1 for treated, 0 for control.
        propensities: Optional ``(n,)`` probability with which each row's own arm was logged.

    Returns:
        ``(n_targeted, incremental_outcome)``, one point per distinct score, from ``(0, 0)``.
    """
    return _curve(y_true, uplift, treatment, propensities, qini=False)


def qini_curve(
    y_true: np.ndarray,
    uplift: np.ndarray,
    treatment: np.ndarray,
    propensities: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Qini curve: customers targeted → :math:`(\bar y_T - \bar y_C) N_T` (Radcliffe 2007).

    Args and returns as :func:`uplift_curve`.
    """
    return _curve(y_true, uplift, treatment, propensities, qini=True)


def perfect_uplift_curve(
    y_true: np.ndarray, treatment: np.ndarray, propensities: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The uplift curve of the best possible ranking of a 0/1 outcome (scikit-uplift's)."""
    y, t, _, _ = _check_inputs(y_true, treatment, binary_outcome=True)
    control_responders = np.sum((y == 1) & (t == 0))
    treated_non_responders = np.sum((y == 0) & (t == 1))
    summand = y if control_responders > treated_non_responders else t
    perfect = 2 * (y == t) + summand
    return uplift_curve(y, perfect, t, propensities)


def perfect_qini_curve(
    y_true: np.ndarray,
    treatment: np.ndarray,
    negative_effect: bool = True,
    propensities: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The Qini curve of the best possible ranking of a 0/1 outcome (scikit-uplift's).

    With ``negative_effect=False`` the perfect curve rises straight to the total incremental
    response and stays there (it ignores customers whom the treatment puts off).
    """
    y, t, _, w = _check_inputs(y_true, treatment, propensities=propensities, binary_outcome=True)
    if negative_effect:
        return qini_curve(y, y * t - y * (1 - t), t, propensities)
    mean_t, mean_c, n_treated, _ = _group_means(y, t, w)
    gain = (mean_t[-1] - mean_c[-1]) * n_treated[-1]
    return np.array([0.0, gain, y.size]), np.array([0.0, gain, gain])


def _area_above_diagonal(x: np.ndarray, y: np.ndarray, end: tuple[float, float]) -> float:
    """Trapezoid area under ``(x, y)`` minus that under the line from 0 to ``end``."""
    area = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))
    return area - end[0] * end[1] / 2.0


def _normalised_area(
    actual: tuple[np.ndarray, np.ndarray], perfect: tuple[np.ndarray, np.ndarray]
) -> float:
    end = (float(perfect[0][-1]), float(perfect[1][-1]))
    return _area_above_diagonal(*actual, end) / _area_above_diagonal(*perfect, end)


def uplift_auc_score(
    y_true: np.ndarray,
    uplift: np.ndarray,
    treatment: np.ndarray,
    propensities: np.ndarray | None = None,
) -> float:
    """AUUC: area between the uplift curve and the diagonal over that of the perfect curve.

    Raises:
        ValueError: If the outcome is not 0/1.
    """
    _check_inputs(y_true, treatment, uplift, propensities, binary_outcome=True)
    return _normalised_area(
        uplift_curve(y_true, uplift, treatment, propensities),
        perfect_uplift_curve(y_true, treatment, propensities),
    )


def qini_auc_score(
    y_true: np.ndarray,
    uplift: np.ndarray,
    treatment: np.ndarray,
    negative_effect: bool = True,
    propensities: np.ndarray | None = None,
) -> float:
    """Qini coefficient: area between the Qini curve and the diagonal over the perfect one's.

    Raises:
        ValueError: If the outcome is not 0/1.
    """
    _check_inputs(y_true, treatment, uplift, propensities, binary_outcome=True)
    return _normalised_area(
        qini_curve(y_true, uplift, treatment, propensities),
        perfect_qini_curve(y_true, treatment, negative_effect, propensities),
    )


def _top_count(k: float | int, n: int) -> int:
    """Customers in the top ``k`` (a share in (0, 1) or a count in [1, n))."""
    if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
        if not 0 < k < n:
            raise ValueError(f"k={k} must be a count between 1 and {n - 1} or a share in (0, 1)")
        return int(k)
    if not 0 < float(k) < 1:
        raise ValueError(f"k={k} must be a share in (0, 1) or a whole count")
    return int(n * float(k))


def _weighted_mean(y: np.ndarray, w: np.ndarray, group: str) -> float:
    if y.size == 0:
        raise ValueError(f"the top k holds no {group} customer: raise k")
    return float(np.sum(w * y) / np.sum(w))


def uplift_at_k(
    y_true: np.ndarray,
    uplift: np.ndarray,
    treatment: np.ndarray,
    strategy: str = "overall",
    k: float | int = 0.3,
    propensities: np.ndarray | None = None,
) -> float:
    r"""Uplift among the top ``k`` customers: :math:`\bar y_T - \bar y_C` (scikit-uplift's).

    Args:
        y_true: ``(n,)`` outcome.
        uplift: ``(n,)`` predicted uplift.
        treatment: ``(n,)`` 1 for treated, 0 for control.
        strategy: ``"overall"`` ranks everyone and takes the top ``k``; ``"by_group"`` takes the
            top ``k`` of the treated and of the control group separately.
        k: Share of customers in (0, 1) (truncated to whole customers) or a count.
        propensities: Optional ``(n,)`` probability of each row's own arm (Hájek means).

    Returns:
        The difference of the mean outcomes of the treated and the control customers.

    Raises:
        ValueError: On an unknown strategy, ``k`` out of range or a group absent from the top.
    """
    if strategy not in ("overall", "by_group"):
        raise ValueError(f"strategy must be 'overall' or 'by_group', got {strategy!r}")
    y, t, s, w = _check_inputs(y_true, treatment, uplift, propensities)
    order = ranking(s)
    y, t, w = y[order], t[order], w[order]
    treated, control = t == 1, t == 0
    n_top = _top_count(k, y.size)
    is_share = not isinstance(k, (int, np.integer))
    if strategy == "overall":
        top = np.arange(y.size) < n_top
        treated, control = treated & top, control & top
        return _weighted_mean(y[treated], w[treated], "treated") - _weighted_mean(
            y[control], w[control], "control"
        )
    if not is_share and k > min(treated.sum(), control.sum()):
        raise ValueError(f"k={k} is larger than the treated or the control group")
    n_t, n_c = (int(k * treated.sum()), int(k * control.sum())) if is_share else (k, k)
    y_t, w_t = y[treated][:n_t], w[treated][:n_t]
    y_c, w_c = y[control][:n_c], w[control][:n_c]
    return _weighted_mean(y_t, w_t, "treated") - _weighted_mean(y_c, w_c, "control")


def matched_two_action(
    actions: np.ndarray, recommended: np.ndarray, control_action: int
) -> tuple[np.ndarray, np.ndarray]:
    """Treat / control view of a multi-action log for the Qini curve of a targeting model.

    A row counts as treated if its logged action is the one the model recommends for it, as
    control if it got the control action, and is left out otherwise (Zhao et al. 2017).

    Args:
        actions: ``(n,)`` logged actions.
        recommended: ``(n,)`` the model's treatment for each customer (never the control).
        control_action: Index of the control action (no contact).

    Returns:
        ``(rows, treatment)``: indices of the rows kept and their 0/1 treatment.

    Raises:
        ValueError: If a recommendation is the control action or the shapes differ.
    """
    actions, recommended = np.asarray(actions), np.asarray(recommended)
    if actions.shape != recommended.shape:
        raise ValueError("actions and recommended must have one value per customer")
    if (recommended == control_action).any():
        raise ValueError("recommended must hold a treatment for every customer, not the control")
    treated = actions == recommended
    rows = np.flatnonzero(treated | (actions == control_action))
    return rows, treated[rows].astype(np.int64)
