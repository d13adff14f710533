"""Explanation speed and accuracy: recenv's exact explainer against shap's Exact and Kernel.

Same policy, same background, same explained value (the probability of the chosen action after
the consent mask). Reports:

* recenv: median and 90th percentile time per customer over customers drawn from the
  population (goal: median ≤ 50 ms), and for the example users of ``profiles/users``;
* ``shap.ExactExplainer`` (``Independent`` masker over the same background): time per customer,
  the speed ratio (goal: recenv ≥ 5× faster) and the largest difference from recenv's values
  (both are exact, so it should be float rounding);
* ``shap.KernelExplainer`` at its defaults: time and error against the exact values, next to
  recenv's own error (goal: recenv more accurate);
* how the time grows with the background size.

Usage::

    python benchmarks/explain.py                   # trains a small PPO in a temp dir
    python benchmarks/explain.py --model runs/ppo  # a trained run
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from rec_env.agents.explain.explainer import (
    DEFAULT_BACKGROUND_SIZE,
    PolicyExplainer,
    population_background,
)
from rec_env.agents.runs import load_run
from rec_env.agents.training import train
from rec_env.features import FEATURE_NAMES

USERS = Path(__file__).parents[1] / "profiles" / "users"


def example_users() -> np.ndarray:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run directory (default: train a small PPO)")
    parser.add_argument("--background", type=int, default=DEFAULT_BACKGROUND_SIZE)
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--shap-customers", type=int, default=4)
    args = parser.parse_args()

    if args.model is None:
        directory = Path(tempfile.mkdtemp(prefix="recenv-explain-"))
        print(f"training a small PPO (same 64x64 network as the default) into {directory}")
        train("ppo", steps=200_000, out=directory, eval_customers=500, final_customers=500)
        args.model = directory
    policy, info = load_run(args.model)
    print(f"model: {args.model} ({info.algorithm}), background: {args.background} customers\n")

    explainer = PolicyExplainer(policy, n_background=args.background, seed=0)
    customers = population_background(args.customers, seed=2026)
    users = example_users()
    explainer.explain(customers[:2])  # warm-up

    times = np.array([timed(explainer.explain, x)[0] for x in customers])
    user_times = np.array([timed(explainer.explain, x)[0] for x in users])
    median = float(np.median(times))
    print(
        f"recenv exact: median {median * 1e3:.1f} ms, p90 {np.percentile(times, 90) * 1e3:.1f} ms "
        f"over {len(times)} population customers; example users median "
        f"{np.median(user_times) * 1e3:.1f} ms (max {user_times.max() * 1e3:.1f} ms)"
    )

    import shap

    sample = customers[: args.shap_customers]
    ours = explainer.explain(sample)
    background = explainer.background

    exact_errors, kernel_errors, our_errors = [], [], []
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
        our_errors.append(exact_errors[-1])

    speedup = np.median(shap_times) / np.median(our_times)
    print(
        f"shap ExactExplainer: median {np.median(shap_times) * 1e3:.0f} ms per customer "
        f"-> recenv is {speedup:.1f}x faster on the same customers "
        f"(recenv {np.median(our_times) * 1e3:.1f} ms)"
    )
    print(
        f"shap KernelExplainer (defaults): median {np.median(kernel_times) * 1e3:.0f} ms, "
        f"max |error| vs exact {max(kernel_errors):.2e}; recenv max |error| {max(our_errors):.2e}"
    )
    print("\nbackground size -> median ms per population customer")
    for size in (8, 16, 32):
        scaled = PolicyExplainer(policy, n_background=size, seed=0)
        scaled.explain(customers[:1])
        seconds = [timed(scaled.explain, x)[0] for x in customers[:20]]
        print(f"  {size:3d}: {np.median(seconds) * 1e3:6.1f} ms")

    print()
    goals = [
        ("median time per customer <= 50 ms", median <= 0.050),
        (">= 5x faster than shap ExactExplainer", speedup >= 5.0),
        ("more accurate than shap KernelExplainer", max(our_errors) < max(kernel_errors)),
    ]
    for label, ok in goals:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")


if __name__ == "__main__":
    main()
