"""Hillstrom response calibration: fit on half the customers, simulate the other half's twins.

Fits the response side of a population (``rec_env.fitting.responses``) on a seeded half of the
Hillstrom campaign (stratified by arm), simulates one e-mail on the held-out half's twins and
prints, per arm and customer group, the held-out real uplift in visits, conversions and spend
with its 95 % CI, the simulated uplift, whether it is inside, and the uplift with default
responses. With ``--seeds`` it also reports the share of rows inside over several splits.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/response_calibration.py [--seed 0] [--replicas 10]
"""

from __future__ import annotations

import argparse

from rec_env.fitting.campaign_log import CampaignLog, read_campaign_log
from rec_env.fitting.response_check import OUTCOMES, check_responses, split_campaign


def fit_half_uplift(log: CampaignLog, seed: int) -> dict[str, list[float]]:
    """The fitting half's own real uplift per arm (what an unbiased fit reproduces)."""
    half = log.subset(split_campaign(log, seed)[0])
    control = half.arm == half.control
    return {
        arm: [
            float(half.outcome(o)[half.treated(arm)].mean() - half.outcome(o)[control].mean())
            for o in OUTCOMES
        ]
        for arm in (*half.treated_arms, "any_email")
    }


def main() -> None:
    """Print the validation table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="Seed of the split and simulation.")
    parser.add_argument("--replicas", type=int, default=10, help="Draws of each held-out twin.")
    parser.add_argument("--seeds", type=int, default=1, help="Also summarise this many splits.")
    args = parser.parse_args()
    log = read_campaign_log("hillstrom")
    result = check_responses(log, seed=args.seed, replicas=args.replicas)
    print(
        f"Hillstrom, seed {args.seed}: fitted on {result.n_fit:,} customers, "
        f"{result.n_held_out:,} held out, {args.replicas} simulated draws of each twin"
    )
    print(result.to_markdown())
    for arm in result.fit.arms:
        print(
            f"{arm}: inside {result.inside_share(arm):.0%} of rows, "
            f"all customers {result.inside_share(arm, 'all'):.0%}"
        )
    for arm, values in fit_half_uplift(log, args.seed).items():
        simulated = [result.row(arm, "all", o).simulated for o in OUTCOMES]
        held = [result.row(arm, "all", o).real for o in OUTCOMES]
        print(
            f"{arm}, all customers, visit / conversion / spend uplift: fitting half "
            + " / ".join(f"{v:+.4f}" for v in values)
            + "; simulated "
            + " / ".join(f"{v:+.4f}" for v in simulated)
            + "; held-out half "
            + " / ".join(f"{v:+.4f}" for v in held)
        )
    baseline = sum(r.baseline_inside for r in result.rows) / len(result.rows)
    print(f"inside overall: fitted {result.inside_share():.0%}, default responses {baseline:.0%}")
    for seed in range(args.seed + 1, args.seed + args.seeds):
        other = check_responses(log, seed=seed, replicas=args.replicas)
        base = sum(r.baseline_inside for r in other.rows) / len(other.rows)
        arms = ", ".join(f"{a} {other.inside_share(a, 'all'):.0%}" for a in other.fit.arms)
        print(
            f"seed {seed}: inside {other.inside_share():.0%} (defaults {base:.0%}); "
            f"all customers: {arms}"
        )


if __name__ == "__main__":
    main()
