r"""Simulated A/B tests: two policies on randomised customers, lifts with 95 % CIs, power plans.

Design. ``n_customers`` simulated customers are split at random between arm A (the first
``ceil(n / 2)``) and arm B, and each arm is run under its policy for ``cycles`` cycles (or until
the customer churns), every arm with its own seeded random stream. Customers are independent
draws from the population, so drawing each arm's customers from its own stream *is* a
completely randomised assignment. An A/A test (the same policy on both arms) therefore compares
two independent samples of one distribution, and its false-positive rate is the test's α.

Statistics, per arm and for the lift of B over A, come from
:mod:`~rec_env.agents.evaluation.ab_stats`, which the analysis of real tests
(:mod:`~rec_env.agents.evaluation.ab_analysis`) shares:

* **Profit per customer**: mean per-customer profit over the test, the difference tested with
  Welch's unequal-variance t-test (:func:`~rec_env.agents.evaluation.ab_stats.welch_lift`).
* **Conversion**: the share of customers who bought at least once during the test (one
  independent 0/1 outcome per customer), the difference tested with the pooled two-proportion
  z-test and given a Wald 95 % CI
  (:func:`~rec_env.agents.evaluation.ab_stats.proportion_lift`).
* **Planning**: :func:`~rec_env.agents.evaluation.ab_stats.sample_size_two_proportions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.agents.evaluation.ab_stats import (
    Lift,
    proportion_ci,
    proportion_lift,
    welch_lift,
)
from rec_env.agents.evaluation.evaluate import KPI
from rec_env.dynamics import CustomerModel
from rec_env.rollout import CohortResult, PolicyLike, run_cohort
from rec_env.settings import EnvSettings

__all__ = [
    "ABTestResult",
    "Arm",
    "ArmResult",
    "resolve_arm",
    "run_ab_test",
]


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
    n = result.purchases.size
    ordered = {
        "profit_per_customer": kpis["profit_per_customer"],
        "conversion": proportion_ci(int((result.purchases > 0).sum()), n),
        "revenue_per_customer": kpis["revenue_per_customer"],
        "purchases_per_customer": kpis["purchases_per_customer"],
        "contacts_per_customer": kpis["contacts_per_customer"],
        "discount_cost_per_customer": kpis["discount_cost_per_customer"],
        "unsubscribe_rate": kpis["unsubscribe_rate"],
        "churn_rate": kpis["churn_rate"],
    }
    return ArmResult(label, n, ordered)
