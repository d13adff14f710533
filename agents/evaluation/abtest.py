r"""Simulated A/B tests: two policies on randomised customers, lifts with 95 % CIs, power plans.

Design. ``n_customers`` simulated customers are split at random between arm A (the first
``ceil(n / 2)``) and arm B, and each arm is run under its policy for ``cycles`` cycles (or until
the customer churns), every arm with its own seeded random stream. Customers are independent
draws from the population, so drawing each arm's customers from its own stream *is* a
completely randomised assignment. An A/A test (the same policy on both arms) therefore compares
two independent samples of one distribution, and its false-positive rate is the test's α.

Statistics, per arm and for the lift of B over A:

* **Profit per customer**: mean per-customer profit over the test. The difference
  :math:`\bar x_B - \bar x_A` is tested with Welch's unequal-variance t-test (Welch 1947):
  :math:`t = (\bar x_B - \bar x_A) / \sqrt{s_A^2 / n_A + s_B^2 / n_B}` with the
  Welch–Satterthwaite degrees of freedom; the 95 % CI is :math:`\Delta \pm t_{0.975,\nu} SE`.
* **Conversion**: the share of customers who bought at least once during the test (one
  independent 0/1 outcome per customer). The difference :math:`\hat p_B - \hat p_A` has the
  Wald 95 % CI :math:`\Delta \pm 1.96 \sqrt{\hat p_A \hat q_A / n_A + \hat p_B \hat q_B / n_B}`
  and is tested with the two-proportion z-test with the pooled proportion
  :math:`\bar p`: :math:`z = \Delta / \sqrt{\bar p \bar q (1 / n_A + 1 / n_B)}`.
* Relative lifts (:math:`\Delta / \bar x_A`) are reported as point estimates.

Planning. :func:`sample_size_two_proportions` gives the customers per arm that detect a change
of a conversion rate from :math:`p_1` to :math:`p_2` with power :math:`1 - \beta` in a two-sided
test at level α (Fleiss, Levin and Paik 2003, *Statistical Methods for Rates and Proportions*,
3rd ed., eq. 4.14):

.. math::

    n = \left\lceil \frac{\left(z_{1-\alpha/2} \sqrt{2 \bar p \bar q}
        + z_{1-\beta} \sqrt{p_1 q_1 + p_2 q_2}\right)^2}{(p_2 - p_1)^2} \right\rceil,
    \qquad \bar p = (p_1 + p_2) / 2,

optionally with Fleiss's continuity correction
:math:`n' = \frac{n}{4} \left(1 + \sqrt{1 + 4 / (n |p_2 - p_1|)}\right)^2`. Checks: 0.08 vs
0.06 at α = 0.05 and 80 % power needs 2,554 per arm (JMP's documented example), and 0.45 vs 0.25
at 90 % power 127.23 with the correction (Zar 1999, *Biostatistical Analysis*, example 24.26).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.agents.evaluation.evaluate import KPI
from rec_env.dynamics import CustomerModel
from rec_env.rollout import CohortResult, PolicyLike, run_cohort
from rec_env.settings import EnvSettings

__all__ = [
    "ABTestResult",
    "Arm",
    "ArmResult",
    "Lift",
    "proportion_lift",
    "resolve_arm",
    "run_ab_test",
    "sample_size_two_proportions",
    "welch_lift",
]

_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Arm:
    """A policy in one arm of a test.

    Attributes:
        label: Name shown in reports.
        policy: The policy.
        learn: Whether it learns online during the test (bandits given by name).
    """

    label: str
    policy: PolicyLike
    learn: bool = False


@dataclass(frozen=True)
class Lift:
    """The difference B − A of one metric, its 95 % CI and the test's p-value.

    Attributes:
        metric: Metric name.
        a: Arm A's value.
        b: Arm B's value.
        difference: ``b - a``.
        ci_low: Lower end of the 95 % CI of the difference.
        ci_high: Upper end.
        relative: ``difference / a`` (NaN if ``a`` is 0).
        p_value: Two-sided p-value of "no difference".
        test: The test used.
    """

    metric: str
    a: float
    b: float
    difference: float
    ci_low: float
    ci_high: float
    relative: float
    p_value: float
    test: str


@dataclass(frozen=True)
class ArmResult:
    """One arm's outcome.

    Attributes:
        label: The policy's label.
        n_customers: Customers in the arm.
        kpis: KPI name → mean and 95 % CI (``conversion`` is the share of customers who bought).
    """

    label: str
    n_customers: int
    kpis: dict[str, KPI]


@dataclass(frozen=True)
class ABTestResult:
    """Both arms, the lifts of B over A, and the settings.

    Attributes:
        a: Arm A.
        b: Arm B.
        profit: Lift in profit per customer (Welch t-test).
        conversion: Lift in conversion (two-proportion z-test).
        cycles: Cycles per customer.
        seed: Seed of the test.
        settings: The simulated world (its horizon is the test's ``cycles``).
    """

    a: ArmResult
    b: ArmResult
    profit: Lift
    conversion: Lift
    cycles: int
    seed: int
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        arms = {
            name: {
                "policy": arm.label,
                "customers": arm.n_customers,
                "kpis": {k: {"mean": v.mean, "ci95": v.ci} for k, v in arm.kpis.items()},
            }
            for name, arm in (("a", self.a), ("b", self.b))
        }
        return {
            **arms,
            "lift": {
                "profit_per_customer": asdict(self.profit),
                "conversion": asdict(self.conversion),
            },
            "cycles": self.cycles,
            "seed": self.seed,
            "settings": self.settings,
        }


def welch_lift(a: np.ndarray, b: np.ndarray, metric: str = "profit_per_customer") -> Lift:
    """Difference of means ``b - a`` with Welch's t-test and its 95 % CI.

    Args:
        a: Per-customer values of arm A (at least two).
        b: Per-customer values of arm B (at least two).
        metric: Name for the report.
    """
    from scipy import stats

    if a.size < 2 or b.size < 2:
        raise ValueError("each arm needs at least two customers")
    mean_a, mean_b = float(a.mean()), float(b.mean())
    var_a, var_b = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    difference = mean_b - mean_a
    se = math.sqrt(var_a + var_b)
    if se == 0.0:
        p_value = 1.0 if difference == 0.0 else 0.0
        low = high = difference
    else:
        dof = (var_a + var_b) ** 2 / (var_a**2 / (a.size - 1) + var_b**2 / (b.size - 1))
        p_value = float(2 * stats.t.sf(abs(difference) / se, dof))
        half = float(stats.t.ppf(0.5 + _CONFIDENCE / 2, dof)) * se
        low, high = difference - half, difference + half
    relative = difference / mean_a if mean_a != 0 else math.nan
    return Lift(metric, mean_a, mean_b, difference, low, high, relative, p_value, "Welch t-test")


def proportion_lift(
    successes_a: int, n_a: int, successes_b: int, n_b: int, metric: str = "conversion"
) -> Lift:
    """Difference of proportions with the pooled two-proportion z-test and a Wald 95 % CI."""
    from scipy import stats

    if n_a < 1 or n_b < 1:
        raise ValueError("each arm needs at least one customer")
    p_a, p_b = successes_a / n_a, successes_b / n_b
    difference = p_b - p_a
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z_score = difference / se_pooled if se_pooled > 0 else 0.0
    p_value = float(2 * stats.norm.sf(abs(z_score)))
    z = float(stats.norm.ppf(0.5 + _CONFIDENCE / 2))
    half = z * math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    relative = difference / p_a if p_a > 0 else math.nan
    return Lift(
        metric, p_a, p_b, difference, difference - half, difference + half, relative, p_value,
        "two-proportion z-test",
    )  # fmt: skip


def sample_size_two_proportions(
    baseline_rate: float,
    target_rate: float,
    alpha: float = 0.05,
    power: float = 0.8,
    continuity_correction: bool = False,
) -> int:
    """Customers per arm to detect ``baseline_rate`` → ``target_rate`` (see the module docstring).

    Raises:
        ValueError: If a rate is not in (0, 1), the rates are equal, or α or power is not in
            (0, 1).
    """
    from scipy import stats

    for name, value in (
        ("baseline rate", baseline_rate),
        ("target rate", target_rate),
        ("alpha", alpha),
        ("power", power),
    ):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be strictly between 0 and 1, got {value:g}")
    delta = abs(target_rate - baseline_rate)
    if delta == 0.0:
        raise ValueError("the target rate must differ from the baseline rate")
    mean = (baseline_rate + target_rate) / 2
    z_alpha = float(stats.norm.ppf(1 - alpha / 2))
    z_beta = float(stats.norm.ppf(power))
    spread = math.sqrt(baseline_rate * (1 - baseline_rate) + target_rate * (1 - target_rate))
    n = (z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * spread) ** 2 / delta**2
    if continuity_correction:
        n = n / 4 * (1 + math.sqrt(1 + 4 / (n * delta))) ** 2
    return math.ceil(n - 1e-9)


def resolve_arm(spec: str, model: CustomerModel, seed: int) -> Arm:
    """Turn a run directory or a built-in policy name into an arm.

    Built-ins: the baselines (``random``, ``best_fixed``, ``rule``, ``oracle``, ``cooldown``),
    ``fixed:ACTION`` for any action of the catalog, and bandit names (``linucb`` …), which learn
    online from scratch during the test. Run directories are used frozen.

    Raises:
        ValueError: For an unknown name or action, a missing or broken run directory, a run
            trained on other actions, or an SB3 name (those must be trained first).
    """
    from rec_env.agents.baselines import FixedActionPolicy
    from rec_env.agents.registry import (
        BANDIT_ALGORITHMS,
        SB3_ALGORITHMS,
        action_kwargs,
        check_algorithm,
        make_bandit,
        make_baseline,
    )
    from rec_env.agents.runs import load_run

    actions = model.actions
    path = Path(spec)
    if path.is_dir():
        policy, info = load_run(path)
        if tuple(info.action_names) != tuple(actions.names):
            raise ValueError(f"{spec}: the run was trained on other actions than the catalog's")
        return Arm(path.resolve().name, policy)
    if path.suffix or "/" in spec:
        raise ValueError(f"{spec}: no such run directory")
    kind, _, argument = spec.partition(":")
    if kind == "fixed":
        try:
            action = actions.index(argument)
        except KeyError as error:
            raise ValueError(str(error.args[0])) from None
        fixed = FixedActionPolicy(
            actions.n_actions, action, actions.no_action, **action_kwargs(actions)
        )
        return Arm(spec, fixed)
    name = check_algorithm(spec)
    if name in SB3_ALGORITHMS:
        raise ValueError(f"{spec}: train it first (recenv train {name}) and pass the run directory")
    if name in BANDIT_ALGORITHMS:
        return Arm(f"{name} (online)", make_bandit(name, model, seed), learn=True)
    return Arm(name, make_baseline(name, model, seed))


def run_ab_test(
    policy_a: str | Arm,
    policy_b: str | Arm,
    n_customers: int = 10_000,
    cycles: int = 8,
    seed: int = 0,
    settings: EnvSettings | Mapping[str, Any] | None = None,
    model: CustomerModel | None = None,
) -> ABTestResult:
    """Randomise ``n_customers`` between two policies and measure the lift of B over A.

    Args:
        policy_a: Arm A: a run directory, a built-in name (see :func:`resolve_arm`) or an
            :class:`Arm`. Names are resolved per arm, so the same name on both arms gives two
            independent policies (an A/A test).
        policy_b: Arm B, likewise.
        n_customers: Customers in the test, at least 4; A gets ``ceil(n / 2)``, B the rest.
        cycles: Cycles each customer is followed for (the test's duration).
        seed: Seed of every random draw (customers, dynamics, policies).
        settings: The simulated world (:class:`~rec_env.settings.EnvSettings` or a mapping);
            ``cycles`` replaces its horizon.
        model: A prebuilt customer model (skips building one from ``settings``).

    Raises:
        ValueError: For fewer than 4 customers, fewer than 1 cycle, or an invalid policy.
    """
    if n_customers < 4:
        raise ValueError(f"an A/B test needs at least 4 customers, got {n_customers}")
    if cycles < 1:
        raise ValueError(f"an A/B test needs at least 1 cycle, got {cycles}")
    settings = EnvSettings.coerce(settings).replace(horizon=cycles)
    model = model or settings.build_model()
    streams = np.random.SeedSequence(seed).spawn(4)
    cohort_seeds = [int(s.generate_state(1)[0]) for s in streams[:2]]
    policy_seeds = [int(s.generate_state(1)[0]) for s in streams[2:]]
    sizes = ((n_customers + 1) // 2, n_customers // 2)
    arms, results = [], []
    for spec, size, cohort_seed, policy_seed in zip(
        (policy_a, policy_b), sizes, cohort_seeds, policy_seeds, strict=True
    ):
        arm = spec if isinstance(spec, Arm) else resolve_arm(spec, model, policy_seed)
        result = run_cohort(
            model,
            arm.policy,
            size,
            cycles,
            cohort_seed,
            learn=arm.learn,
            deterministic=not arm.learn,
        )
        arms.append(arm)
        results.append(result)
    summaries = [_arm_result(arm.label, result) for arm, result in zip(arms, results, strict=True)]
    converted = [int((r.purchases > 0).sum()) for r in results]
    return ABTestResult(
        a=summaries[0],
        b=summaries[1],
        profit=welch_lift(results[0].profit, results[1].profit),
        conversion=proportion_lift(converted[0], sizes[0], converted[1], sizes[1]),
        cycles=cycles,
        seed=seed,
        settings=settings.to_dict(),
    )


def _arm_result(label: str, result: CohortResult) -> ArmResult:
    from rec_env.agents.evaluation.evaluate import kpis_with_ci

    kpis = kpis_with_ci(result)
    converted = (result.purchases > 0).astype(np.float64)
    n = converted.size
    share = float(converted.mean())
    half = 1.96 * math.sqrt(share * (1 - share) / n)
    ordered = {
        "profit_per_customer": kpis["profit_per_customer"],
        "conversion": KPI(share, half),
        "revenue_per_customer": kpis["revenue_per_customer"],
        "purchases_per_customer": kpis["purchases_per_customer"],
        "contacts_per_customer": kpis["contacts_per_customer"],
        "discount_cost_per_customer": kpis["discount_cost_per_customer"],
        "unsubscribe_rate": kpis["unsubscribe_rate"],
        "churn_rate": kpis["churn_rate"],
    }
    return ArmResult(label, n, ordered)
