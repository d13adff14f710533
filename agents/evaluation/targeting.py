r"""The value of targeting the top share of customers, from a randomised or logged campaign.

For any number of actions, :func:`policy_value_curve` values the policy "the top share
:math:`q` of customers by score get their recommended action, the rest the control action"
for every :math:`q`:

.. math::

    \hat V(q) = \frac{1}{n} \sum_{i=1}^n \big(1[\mathrm{rank}_i \le qn]\, \Gamma_i(b_i)
    + 1[\mathrm{rank}_i > qn]\, \Gamma_i(c)\big),

with :math:`b_i` the recommended action, :math:`c` the control, and :math:`\Gamma_i(b)` the
IPS term :math:`1[a_i = b]\, r_i / \mu_i` or, given a reward model :math:`\hat q`, the DR term
:math:`\hat q(x_i, b) + 1[a_i = b](r_i - \hat q(x_i, a_i)) / \mu_i` (Dudík, Langford and Li
2011). Both are unbiased when the logging propensities :math:`\mu_i` are right (so the curve
needs no 50/50 split); the 95 % interval is the normal one of a mean of per-row terms.
Customers are ranked as in :mod:`rec_env.agents.evaluation.uplift` (scikit-uplift's order).

:func:`targeting_summary` gives, for the targeted group only, its response rate if treated and
if not, the incremental response rate and the net incremental revenue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rec_env.agents.evaluation.uplift import ranking

__all__ = ["PolicyValueCurve", "TargetingSummary", "policy_value_curve", "targeting_summary"]

_Z95 = 1.959963984540054


@dataclass(frozen=True)
class PolicyValueCurve:
    """Estimated value of targeting the top share of customers, at each share.

    Attributes:
        shares: ``(m,)`` share of customers targeted, in [0, 1].
        n_targeted: ``(m,)`` customers targeted (``int(share * n)``).
        value: ``(m,)`` estimated mean reward per customer of the whole population.
        ci_low: ``(m,)`` lower end of the 95 % normal interval.
        ci_high: ``(m,)`` upper end.
        estimator: ``"ips"`` or ``"dr"``.
        n: Customers in the held-out log.
    """

    shares: np.ndarray
    n_targeted: np.ndarray
    value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    estimator: str
    n: int


@dataclass(frozen=True)
class TargetingSummary:
    """What targeting the top share brings, estimated on the targeted customers only.

    Attributes:
        share: Share of customers targeted.
        n_targeted: Customers targeted.
        rate_targeted: Mean outcome of the targeted group if treated as recommended.
        rate_control: Their mean outcome had they got the control action.
        incremental_rate: ``rate_targeted - rate_control`` (the incremental response rate).
        incremental_ci: 95 % normal interval of ``incremental_rate``.
        incremental_total: ``incremental_rate * n_targeted``.
        net_incremental_revenue: ``incremental_total * value_per_unit - cost_per_contact *
            n_targeted`` (currency of ``value_per_unit``).
        estimator: ``"ips"`` or ``"dr"``.
    """

    share: float
    n_targeted: int
    rate_targeted: float
    rate_control: float
    incremental_rate: float
    incremental_ci: tuple[float, float]
    incremental_total: float
    net_incremental_revenue: float
    estimator: str


def _arm_terms(
    rewards: np.ndarray,
    actions: np.ndarray,
    propensities: np.ndarray,
    recommended: np.ndarray | int,
    control_action: int,
    estimated_rewards: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-row unbiased terms of the outcome under the recommended and the control action.

    IPS: :math:`1[a_i = b] r_i / \mu_i`; DR: :math:`\hat q(x_i, b) + 1[a_i = b](r_i -
    \hat q(x_i, a_i)) / \mu_i`, for :math:`b` the recommended or the control action.
    """
    r = np.asarray(rewards, dtype=np.float64)
    a = np.asarray(actions)
    p = np.asarray(propensities, dtype=np.float64)
    if r.ndim != 1 or a.shape != r.shape or p.shape != r.shape:
        raise ValueError("rewards, actions and propensities must be 1-D of one length")
    if not ((p > 0) & (p <= 1)).all():
        raise ValueError("propensities must lie in (0, 1]")
    b = np.broadcast_to(np.asarray(recommended), r.shape)
    rows = np.arange(r.size)
    if estimated_rewards is None:
        return (a == b) * r / p, (a == control_action) * r / p
    q = np.asarray(estimated_rewards, dtype=np.float64)
    if q.ndim != 2 or q.shape[0] != r.size:
        raise ValueError("estimated_rewards must have shape (n, n_actions)")
    residual = (r - q[rows, a]) / p
    return (
        q[rows, b] + (a == b) * residual,
        q[:, control_action] + (a == control_action) * residual,
    )


def policy_value_curve(
    rewards: np.ndarray,
    actions: np.ndarray,
    propensities: np.ndarray,
    scores: np.ndarray,
    recommended: np.ndarray | int,
    control_action: int,
    estimated_rewards: np.ndarray | None = None,
    shares: np.ndarray | None = None,
) -> PolicyValueCurve:
    """Value of "top share by score get their recommended action, the rest the control".

    Args:
        rewards: ``(n,)`` logged rewards.
        actions: ``(n,)`` logged actions.
        propensities: ``(n,)`` logging probability of each logged action.
        scores: ``(n,)`` targeting score (predicted gain of the recommended action).
        recommended: ``(n,)`` action for each customer if targeted, or one action for all.
        control_action: Action of the customers not targeted.
        estimated_rewards: Optional ``(n, n_actions)`` reward model (cross-fitted on the
            held-out log) for DR; IPS without it.
        shares: Shares to evaluate (default 0, 5 %, …, 100 %).

    Returns:
        The curve, with a 95 % normal interval per point (the value is a mean of per-row terms).
    """
    treat, control = _arm_terms(
        rewards, actions, propensities, recommended, control_action, estimated_rewards
    )
    grid = np.linspace(0.0, 1.0, 21) if shares is None else np.asarray(shares, dtype=np.float64)
    if grid.ndim != 1 or ((grid < 0) | (grid > 1)).any():
        raise ValueError("shares must be a 1-D array of values in [0, 1]")
    n = treat.size
    order = ranking(np.asarray(scores, dtype=np.float64))
    treat, control = treat[order], control[order]
    k = np.minimum((grid * n).astype(np.int64), n)
    # Sums of the per-row terms (and their squares) for every cut-off, from prefix sums.
    first = np.r_[0.0, np.cumsum(treat)][k] + control.sum() - np.r_[0.0, np.cumsum(control)][k]
    second = (
        np.r_[0.0, np.cumsum(treat**2)][k]
        + np.sum(control**2)
        - np.r_[0.0, np.cumsum(control**2)][k]
    )
    value = first / n
    variance = np.maximum(second / n - value**2, 0.0) * n / max(n - 1, 1)
    half = _Z95 * np.sqrt(variance / n)
    return PolicyValueCurve(
        grid, k, value, value - half, value + half, "ips" if estimated_rewards is None else "dr", n
    )


def targeting_summary(
    rewards: np.ndarray,
    actions: np.ndarray,
    propensities: np.ndarray,
    scores: np.ndarray,
    recommended: np.ndarray | int,
    control_action: int,
    share: float,
    value_per_unit: float = 1.0,
    cost_per_contact: float = 0.0,
    estimated_rewards: np.ndarray | None = None,
) -> TargetingSummary:
    """Incremental response rate and net incremental revenue of the top ``share`` by score.

    Args as :func:`policy_value_curve`, plus:
        share: Share of customers targeted, in (0, 1].
        value_per_unit: Money per unit of the reward (e.g. margin per visit; 1 for dollars).
        cost_per_contact: Cost of one contact (e-mail) in the same currency.

    Returns:
        The summary; totals are over the targeted customers of this log.

    Raises:
        ValueError: If ``share`` is not in (0, 1] or targets nobody.
    """
    treat, control = _arm_terms(
        rewards, actions, propensities, recommended, control_action, estimated_rewards
    )
    n_targeted = int(share * treat.size) if 0 < share <= 1 else 0
    if n_targeted == 0:
        raise ValueError(f"share={share} targets nobody: give a share in (0, 1]")
    top = ranking(np.asarray(scores, dtype=np.float64))[:n_targeted]
    gain = treat[top] - control[top]
    rate = float(gain.mean())
    half = _Z95 * float(gain.std(ddof=1)) / np.sqrt(n_targeted) if n_targeted > 1 else np.inf
    total = rate * n_targeted
    return TargetingSummary(
        share=float(share),
        n_targeted=n_targeted,
        rate_targeted=float(treat[top].mean()),
        rate_control=float(control[top].mean()),
        incremental_rate=rate,
        incremental_ci=(rate - half, rate + half),
        incremental_total=total,
        net_incremental_revenue=total * value_per_unit - cost_per_contact * n_targeted,
        estimator="ips" if estimated_rewards is None else "dr",
    )
