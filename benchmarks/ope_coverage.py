"""How often the 95 % intervals of IPS, SNIPS and DR cover the true value on the simulator.

Each repetition logs one decision for each of ``--customers`` new customers, drawn uniformly
among the allowed actions (``simulate_logged_data`` with a random logging policy), and
estimates the value of a flag-targeted e-mail policy (discount 15 % to discount-sensitive
customers, a recommendation to the others). The truth is that policy's value on 200,000
independent customers from the model's closed-form expected rewards. Reported per estimator:
coverage rate, mean interval width, mean error and the standard deviation of the estimates.

The test in ``tests/test_ope.py`` runs the default setting (conversion reward, monthly cycle,
10,000 customers, 50 repetitions). The profit reward is much heavier-tailed (about 1 % of
customers buy in a week, at lognormal order values), so its percentile intervals under-cover
at these sample sizes; run ``--reward-mode profit --cycle-days 7`` to see by how much.

Run from the repository root::

    python benchmarks/ope_coverage.py                  # the test's setting, ~10 s
    python benchmarks/ope_coverage.py --reward-mode profit --cycle-days 7 --customers 20000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rec_env import build_model
from rec_env.agents.baselines import FlagTargetedPolicy, RandomPolicy
from rec_env.agents.ope import (
    DoublyRobust,
    InverseProbabilityWeighting,
    SelfNormalizedIPS,
    evaluate_policy,
)
from rec_env.agents.ope.simulation import simulate_logged_data, true_policy_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reward-mode", default="conversion", choices=["conversion", "profit"])
    parser.add_argument("--cycle-days", type=float, default=30.0)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--repetitions", type=int, default=50)
    parser.add_argument("--n-bootstrap", type=int, default=200)
    args = parser.parse_args()

    model = build_model("default", args.reward_mode, cycle_days=args.cycle_days)
    names = model.actions.names
    target = FlagTargetedPolicy(
        model.actions.n_actions,
        "discount_sensitive",
        names.index("discount_15_email"),
        names.index("recommendation_email"),
        action_names=names,
    )
    truth, truth_error = true_policy_value(model, target, 200_000, seed=10**6)
    estimators = [
        cls(n_bootstrap=args.n_bootstrap)
        for cls in (InverseProbabilityWeighting, SelfNormalizedIPS, DoublyRobust)
    ]
    logger = RandomPolicy(model.actions.n_actions)
    start = time.perf_counter()
    values = np.empty((args.repetitions, len(estimators)))
    covered = np.empty_like(values, dtype=bool)
    widths = np.empty_like(values)
    for seed in range(args.repetitions):
        data, _ = simulate_logged_data(model, logger, args.customers, seed=seed)
        probabilities = target.action_probabilities(data.contexts, data.action_masks)
        for j, result in enumerate(evaluate_policy(data, probabilities, estimators)):
            values[seed, j] = result.value
            covered[seed, j] = result.ci_low <= truth <= result.ci_high
            widths[seed, j] = result.ci_high - result.ci_low
    elapsed = time.perf_counter() - start
    print(
        f"{args.reward_mode}, {args.cycle_days:g}-day cycle, {args.customers:,} logged customers "
        f"x {args.repetitions} repetitions ({elapsed:.1f} s); truth {truth:.5g} ± {truth_error:.2g}"
    )
    print(f"{'estimator':<10}{'coverage':>10}{'width':>12}{'mean error':>12}{'sd':>12}")
    for j, estimator in enumerate(estimators):
        print(
            f"{estimator.label:<10}{covered[:, j].mean():>10.2f}{widths[:, j].mean():>12.4g}"
            f"{values[:, j].mean() - truth:>12.3g}{values[:, j].std():>12.4g}"
        )


if __name__ == "__main__":
    main()
