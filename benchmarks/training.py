"""How fast PPO learns on the recommendation env: wall time and steps to 90 % of its final value.

Trains PPO with the defaults of ``agents/sb3/hyperparams/ppo.yaml`` (``train_sb3("ppo", {})``) and
evaluates the deterministic policy every ``--eval-every`` customer-steps on a fixed cohort. It
reports the learning curve, the customer-steps and training seconds until the curve first reaches
90 % of its final evaluation, and the final policy against the myopic oracle on a large cohort
(the README's headline comparison: 50,000 customers, seed 12345, 52 cycles).

Training wall time excludes the periodic evaluations. The machine is shared, so wall times move
from run to run; the step counts do not (training is deterministic given the seed).

Run from the repository root::

    python benchmarks/training.py            # the full default budget (~4 min of training)
    python benchmarks/training.py --quick    # smoke run, ~20 s
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from rec_env.agents.baselines import MyopicOracle
from rec_env.agents.evaluation.evaluate import KPI, evaluate
from rec_env.agents.sb3 import load_hyperparams, train_sb3

FRACTION = 0.9
FINAL_SEED = 12_345


def first_reaching(curve: list[dict[str, float]], fraction: float) -> dict[str, float] | None:
    """The first row whose profit reaches ``fraction`` of the last row's (``None`` if none)."""
    target = fraction * curve[-1]["profit_per_customer"]
    return next((row for row in curve if row["profit_per_customer"] >= target), None)


def curve_table(curve: list[dict[str, float]]) -> str:
    """The learning curve as a Markdown table."""
    final = curve[-1]["profit_per_customer"]
    lines = [
        "| customer-steps | training s | profit/customer (95% CI) | % of final |",
        "|---:|---:|---:|---:|",
    ]
    for row in curve:
        share = row["profit_per_customer"] / final if final else float("nan")
        lines.append(
            f"| {row['timesteps']:,.0f} | {row['wall_time_s']:.1f} | "
            f"{row['profit_per_customer']:.3f} ± {row['profit_ci95']:.2f} | {share:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget: a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=None, help="default: budget / 16")
    parser.add_argument("--eval-customers", type=int, default=10_000)
    parser.add_argument("--final-customers", type=int, default=50_000)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    overrides: dict[str, Any] = {}
    if args.quick:
        overrides = {"n_timesteps": 100_000, "n_envs": 256, "batch_size": 1024}
        args.eval_customers, args.final_customers = 1_000, 5_000
    params = load_hyperparams("ppo", overrides=overrides)
    budget = int(params["n_timesteps"])
    eval_every = args.eval_every or budget // 16
    print(
        f"PPO, {budget:,} customer-steps, {params['n_envs']} envs, seed {args.seed}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
    )
    started = time.perf_counter()
    policy, curve = train_sb3(
        "ppo",
        {},
        seed=args.seed,
        hyperparams=overrides,
        eval_every=eval_every,
        eval_customers=args.eval_customers,
    )
    total_seconds = time.perf_counter() - started
    final_ppo = evaluate(policy, {}, args.final_customers, FINAL_SEED, compare_to_oracle=False)
    oracle = MyopicOracle(policy.n_actions, policy.action_names)
    final_oracle = evaluate(oracle, {}, args.final_customers, FINAL_SEED, compare_to_oracle=False)

    reached = first_reaching(curve, FRACTION)
    ppo_kpi: KPI = final_ppo.kpis["profit_per_customer"]
    oracle_kpi: KPI = final_oracle.kpis["profit_per_customer"]
    print()
    print(f"Learning curve (evaluation cohort: {args.eval_customers:,} customers, 52 cycles)")
    print(curve_table(curve))
    print()
    print(f"training time (evaluations excluded): {curve[-1]['wall_time_s']:.1f} s")
    print(f"train_sb3 wall time (with {len(curve)} evaluations): {total_seconds:.1f} s")
    if reached is not None:
        print(
            f"first ≥ {FRACTION:.0%} of final ({FRACTION * curve[-1]['profit_per_customer']:.3f}): "
            f"{reached['timesteps']:,.0f} customer-steps, {reached['wall_time_s']:.1f} s"
        )
    print(
        f"final, {args.final_customers:,} customers, seed {FINAL_SEED}: "
        f"PPO {ppo_kpi} vs myopic oracle {oracle_kpi} $/customer "
        f"({'CIs do not overlap' if ppo_kpi.low > oracle_kpi.high else 'CIs overlap'})"
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "hyperparameters": params,
                    "seed": args.seed,
                    "curve": curve,
                    "train_sb3_seconds": total_seconds,
                    "reached_90_percent": reached,
                    "ppo": {"mean": ppo_kpi.mean, "ci95": ppo_kpi.ci},
                    "oracle": {"mean": oracle_kpi.mean, "ci95": oracle_kpi.ci},
                },
                indent=2,
            ),
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
