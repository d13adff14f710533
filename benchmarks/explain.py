"""Explanation speed and accuracy: recenv's exact explainer against shap's Exact and Kernel.

Same policy, same background, same explained value (the probability of the chosen action after
the consent mask). Reports, in one run:

* recenv's time per customer for three groups explained side by side: customers freshly drawn
  from the population, customers in operation (drawn, then served a few cycles), and the
  complete example users of ``profiles/users``; the example users' median and worst case as
  multiples of the drawn customers' median (goals: ≤ 2× and ≤ 4×), and the work done
  (coalitions, multiply-adds), which does not depend on the machine's load;
* ``shap.ExactExplainer`` (``Independent`` masker over the same background): time per customer,
  the speed ratio (goal: recenv ≥ 5× faster) and the largest difference from recenv's values
  (both are exact, so it should be float rounding);
* ``shap.KernelExplainer`` at its defaults: time and error against the exact values, next to
  recenv's own error (goal: recenv more accurate);
* the same groups against the previous background, customers freshly drawn from the
  population, which shows what the background of customers in operation changes;
* how the time grows with the background size.

Times are CPU time of the process (the explainer runs on one thread), so that other jobs on a
shared machine do not inflate them; the wall time is shown next to it. Each customer's time is
the fastest of ``--repeats`` rounds, and the rounds visit the three groups in turn, so that load
from other processes does not favour one group.

Usage::

    python benchmarks/explain.py                           # trains a small PPO in a temp dir
    python benchmarks/explain.py --model runs/ppo-seed0    # a trained run
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from rec_env.agents.explain import (
    DEFAULT_BACKGROUND_SIZE,
    PolicyExplainer,
    operating_background,
    population_background,
)
from rec_env.agents.runs import load_run
from rec_env.agents.training import train
from rec_env.features import FEATURE_NAMES

USERS = Path(__file__).parents[1] / "profiles" / "users"


def example_users() -> np.ndarray:
    """The example users of ``profiles/users`` that give all 16 features."""
    rows = []
    for path in sorted(USERS.glob("*.json")):
        features = json.loads(path.read_text())["features"]
        if set(features) == set(FEATURE_NAMES):
            rows.append([features[name] for name in FEATURE_NAMES])
    return np.array(rows, dtype=np.float32)


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def cpu_and_wall(fn, *args) -> tuple[float, float]:
    """CPU seconds of this process and wall seconds of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn(*args)
    return time.process_time() - cpu, time.perf_counter() - wall


def side_by_side(
    explainer: PolicyExplainer, groups: dict[str, np.ndarray], repeats: int
) -> dict[str, np.ndarray]:
    """``(n, 2)`` CPU and wall seconds per customer of every group.

    Each is the fastest of ``repeats`` rounds; each round visits the groups in turn.
    """
    best = {name: np.full((len(obs), 2), np.inf) for name, obs in groups.items()}
    for _ in range(repeats):
        for name, obs in groups.items():
            for i, x in enumerate(obs):
                best[name][i] = np.minimum(best[name][i], cpu_and_wall(explainer.explain, x))
    return best


def report_groups(explainer: PolicyExplainer, groups: dict[str, np.ndarray], repeats: int) -> dict:
    """Print the side-by-side table; return the drawn median and the users' ratios (CPU)."""
    times = side_by_side(explainer, groups, repeats)
    work = {name: explainer.explain(obs) for name, obs in groups.items()}
    print(
        f"{'CPU ms per customer':<28}{'n':>4}{'median':>8}{'p90':>8}{'max':>8}{'wall med':>10}"
        f"{'coalitions':>12}{'M mult-adds':>13}"
    )
    for name, seconds in times.items():
        cpu = seconds[:, 0] * 1e3
        print(
            f"{name:<28}{len(cpu):>4}{np.median(cpu):>8.1f}{np.percentile(cpu, 90):>8.1f}"
            f"{cpu.max():>8.1f}{np.median(seconds[:, 1]) * 1e3:>10.1f}"
            f"{np.median(work[name].coalitions):>12,.0f}"
            f"{np.median(work[name].multiply_adds) / 1e6:>13.1f}"
        )
    drawn = times["drawn from the population"]
    users = times["example users"]
    ratios = {
        "drawn": float(np.median(drawn[:, 0])),
        "median": float(np.median(users[:, 0]) / np.median(drawn[:, 0])),
        "max": float(users[:, 0].max() / np.median(drawn[:, 0])),
    }
    wall = users[:, 1] / np.median(drawn[:, 1])
    coalitions = work["example users"].coalitions / np.median(
        work["drawn from the population"].coalitions
    )
    print(
        f"example users / drawn customers' median: CPU time median {ratios['median']:.2f}x, "
        f"max {ratios['max']:.2f}x (wall {np.median(wall):.2f}x, {wall.max():.2f}x); "
        f"coalitions {np.median(coalitions):.2f}x, {coalitions.max():.2f}x"
    )
    return ratios


def compare_with_shap(explainer: PolicyExplainer, sample: np.ndarray) -> dict[str, float]:
    """Compare with the Exact and Kernel explainers of shap on the same customers."""
    import shap

    ours = explainer.explain(sample)
    background = explainer.background
    exact_errors, kernel_errors = [], []
    shap_times, kernel_times, our_times = [], [], []
    for i, x in enumerate(sample):
        action = int(ours.actions[i])

        def value(z: np.ndarray, action: int = action) -> np.ndarray:
            z = np.asarray(z, dtype=np.float32)
            return explainer.model_output(z, np.full(z.shape[0], action))

        masker = shap.maskers.Independent(background, max_samples=background.shape[0])
        exact = shap.ExactExplainer(value, masker)
        seconds, reference = timed(lambda e=exact, x=x: e(x[None, :]))
        shap_times.append(seconds)
        exact_values = np.asarray(reference.values[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kernel = shap.KernelExplainer(value, background)
            seconds, kernel_values = timed(
                lambda k=kernel, x=x: k.shap_values(x[None, :], silent=True)
            )
        kernel_times.append(seconds)
        seconds, mine = timed(explainer.explain, x, np.array([action]))
        our_times.append(seconds)
        exact_errors.append(np.abs(np.asarray(mine.values[0]) - exact_values).max())
        kernel_errors.append(np.abs(np.asarray(kernel_values).reshape(-1) - exact_values).max())
    speedup = float(np.median(shap_times) / np.median(our_times))
    print(
        f"shap ExactExplainer: median {np.median(shap_times) * 1e3:.0f} ms per customer "
        f"-> recenv is {speedup:.1f}x faster on the same customers "
        f"(recenv {np.median(our_times) * 1e3:.1f} ms)"
    )
    print(
        f"shap KernelExplainer (defaults): median {np.median(kernel_times) * 1e3:.0f} ms, "
        f"max |error| vs exact {max(kernel_errors):.2e}; recenv max |error| "
        f"{max(exact_errors):.2e}"
    )
    return {"speedup": speedup, "ours": max(exact_errors), "kernel": max(kernel_errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run directory (default: train a small PPO)")
    parser.add_argument("--background", type=int, default=DEFAULT_BACKGROUND_SIZE)
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shap-customers", type=int, default=4)
    args = parser.parse_args()

    if args.model is None:
        directory = Path(tempfile.mkdtemp(prefix="recenv-explain-"))
        print(f"training a small PPO (same 64x64 network as the default) into {directory}")
        train("ppo", steps=200_000, out=directory, eval_customers=500, final_customers=500)
        args.model = directory
    policy, info = load_run(args.model)
    print(
        f"model: {args.model} ({info.algorithm}), background: {args.background} customers "
        "in operation\n"
    )
    world = {"population": info.settings.profile, "catalog": info.settings.catalog}
    explainer = PolicyExplainer(policy, n_background=args.background, seed=0, **world)
    groups = {
        "drawn from the population": population_background(args.customers, seed=2026, **world),
        "in operation": operating_background(args.customers, seed=2026, **world),
        "example users": example_users(),
    }
    explainer.explain(groups["drawn from the population"][:2])  # warm-up
    found = report_groups(explainer, groups, args.repeats)
    print("\nthe same against the previous background, customers freshly drawn (one round):")
    fresh = population_background(args.background, seed=0, **world)
    report_groups(PolicyExplainer(policy, background=fresh, **world), groups, 1)
    print()
    shap_result = compare_with_shap(
        explainer, groups["drawn from the population"][: args.shap_customers]
    )

    print("\nbackground size -> median CPU ms per drawn customer")
    for size in (8, 16, 32):
        scaled = PolicyExplainer(policy, n_background=size, seed=0, **world)
        scaled.explain(groups["drawn from the population"][:1])
        seconds = [
            cpu_and_wall(scaled.explain, x)[0] for x in groups["drawn from the population"][:20]
        ]
        print(f"  {size:3d}: {np.median(seconds) * 1e3:6.1f} ms")

    print()
    goals = [
        ("median CPU time per drawn customer <= 50 ms", found["drawn"] <= 0.050),
        ("example users' median <= 2x the drawn customers' median", found["median"] <= 2.0),
        ("example users' worst case <= 4x the drawn customers' median", found["max"] <= 4.0),
        (">= 5x faster than shap ExactExplainer", shap_result["speedup"] >= 5.0),
        ("more accurate than shap KernelExplainer", shap_result["ours"] < shap_result["kernel"]),
    ]
    for label, ok in goals:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")


if __name__ == "__main__":
    main()
