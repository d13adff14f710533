"""Evidence that recenv is a sequential problem, measured on paired customer cohorts.

Four comparisons on the same customers and the same random numbers (common random numbers), each
reported as the mean per-customer difference in 52-cycle profit with a 95 % confidence interval:

1. **Heterogeneity**: the myopic oracle against the best fixed action (no single action is best
   for everyone).
2. **Over-contact**: an SMS every fourth cycle against an SMS every cycle.
3. **Discounts**: targeted discounts (discount-sensitive customers only) against discounts to
   everyone; discounting everyone raises conversion but lowers profit.
4. **Restraint**: the myopic oracle with a 14-day cool-down and at most 2 messages per 30 days
   against the plain myopic oracle. This is the room RL has over bandits.

Run ``python -m rec_env.agents.evaluation.sequential --customers 50000`` to print the table.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from rec_env.agents.baselines import (
    ContactCooldown,
    FixedActionPolicy,
    FlagTargetedPolicy,
    MyopicOracle,
    best_fixed_action,
)
from rec_env.env import build_model
from rec_env.rollout import CohortResult, PolicyLike, run_cohort
from rec_env.settings import DEFAULT_HORIZON

__all__ = ["Comparison", "paired_comparison", "sequential_evidence"]


@dataclass(frozen=True)
class Comparison:
    """Policy ``a`` against policy ``b`` on the same cohort.

    Attributes:
        name: What the comparison shows.
        a: Label of the policy expected to win.
        b: Label of the other policy.
        profit_a: Mean 52-cycle profit per customer under ``a``.
        profit_b: Mean 52-cycle profit per customer under ``b``.
        gap: Mean paired difference ``a - b`` in profit per customer.
        ci: Half-width of the 95 % confidence interval of ``gap``.
        conversion_a: Conversion rate (purchases per customer-cycle) under ``a``.
        conversion_b: Conversion rate under ``b``.
    """

    name: str
    a: str
    b: str
    profit_a: float
    profit_b: float
    gap: float
    ci: float
    conversion_a: float
    conversion_b: float

    @property
    def relative_gap(self) -> float:
        """``gap / profit_b``."""
        return self.gap / abs(self.profit_b)


def paired_comparison(
    name: str, a: str, b: str, result_a: CohortResult, result_b: CohortResult
) -> Comparison:
    """Summarise two cohort runs on the same customers."""
    diff = result_a.profit - result_b.profit
    return Comparison(
        name=name,
        a=a,
        b=b,
        profit_a=float(result_a.profit.mean()),
        profit_b=float(result_b.profit.mean()),
        gap=float(diff.mean()),
        ci=float(1.96 * diff.std(ddof=1) / np.sqrt(diff.size)),
        conversion_a=result_a.kpis()["conversion_rate"],
        conversion_b=result_b.kpis()["conversion_rate"],
    )


def sequential_evidence(
    n_customers: int = 20_000,
    seed: int = 0,
    horizon: int = DEFAULT_HORIZON,
    profile: str = "default",
) -> list[Comparison]:
    """Run the four comparisons of the module docstring."""
    model = build_model(profile, "profit")
    table = model.actions
    n, none = table.n_actions, table.no_action

    def run(policy: PolicyLike) -> CohortResult:
        return run_cohort(model, policy, n_customers, horizon, seed)

    oracle = run(MyopicOracle(n))
    fixed, fixed_run = best_fixed_action(model, n_customers, horizon, seed)
    sms = FixedActionPolicy(n, table.index("recommendation_sms"), none)
    discount = table.index("discount_15_email")
    cooldown = ContactCooldown(MyopicOracle(n), none, 14.0, 2.0)
    return [
        paired_comparison(
            "heterogeneity",
            "myopic oracle",
            f"best fixed ({table.names[fixed]})",
            oracle,
            fixed_run,
        ),
        paired_comparison(
            "over-contact",
            "SMS every 4th cycle",
            "SMS every cycle",
            run(ContactCooldown(sms, none, 28.0, np.inf)),
            run(sms),
        ),
        paired_comparison(
            "discounts",
            "targeted discounts",
            "discount to everyone",
            run(FlagTargetedPolicy(n, "discount_sensitive", discount, none, none)),
            run(FixedActionPolicy(n, discount, none)),
        ),
        paired_comparison(
            "restraint", "oracle + cool-down", "myopic oracle", run(cooldown), oracle
        ),
    ]


def format_table(comparisons: list[Comparison]) -> str:
    """A Markdown table of the comparisons."""
    lines = [
        "| comparison | A | B | profit A | profit B | A − B (95% CI) | conv. A | conv. B |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c.name} | {c.a} | {c.b} | {c.profit_a:.2f} | {c.profit_b:.2f} | "
            f"{c.gap:+.2f} ± {c.ci:.2f} ({c.relative_gap:+.0%}) | "
            f"{c.conversion_a:.3%} | {c.conversion_b:.3%} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Print the comparisons as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="default")
    args = parser.parse_args()
    print(format_table(sequential_evidence(args.customers, args.seed, profile=args.profile)))


if __name__ == "__main__":
    main()
