"""Our multi-seed statistics against ``rliable`` itself, on the same scores.

``rliable`` (with ``arch`` and ``pandas``) is not a dependency of recenv: this script installs it
in a throwaway virtualenv of its own (``--venv``, default ``/tmp/venv_rliable``), as the other
benchmarks do with peer libraries whose pins clash with ours, and runs it there in a
subprocess. ``arch`` 7.2 fails to import with ``pandas`` 3 (``deprecate_kwarg``), hence
``pandas<3`` in that virtualenv.

For each case (seeded synthetic scores, and optionally the per-seed profits of a
``benchmarks/multiseed.py --json`` file) it compares:

1. the point estimates, which must be EQUAL: the IQM (``rliable.metrics.aggregate_iqm``) and
   the probability of improvement (``rliable.metrics.probability_of_improvement``);
2. the statistics on the bootstrap resamples, which must be EQUAL: our batched IQM and
   ``P(X > Y)`` of each of our resamples against ``rliable``'s functions on the same resample;
3. the 95 % intervals of both libraries' own bootstraps (``rliable.library
   .get_interval_estimates``, percentile method): different random draws, so they agree only
   up to Monte Carlo error, reported as the largest difference of an interval end.

Run from the repository root::

    python benchmarks/multiseed_reference.py
    python benchmarks/multiseed_reference.py --scores /tmp/multiseed_strategy.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.agents.evaluation.multiseed import (
    aggregate_iqm,
    as_score_matrix,
    improvement_probability,
    interquartile_mean,
    probability_of_improvement,
    stratified_bootstrap,
)

REQUIREMENTS = ("rliable", "pandas<3")
CHECKED_RESAMPLES = 200  # resamples whose statistics are compared one by one

# Runs inside the rliable virtualenv: JSON cases on stdin, rliable's estimates on stdout.
_RLIABLE_SCRIPT = r"""
import json, sys
import numpy as np
from rliable import library, metrics

request = json.load(sys.stdin)
out = []
for case in request["cases"]:
    scores = {k: np.array(v, dtype=float) for k, v in case["scores"].items()}
    rs = np.random.RandomState(request["seed"])
    np.random.seed(request["seed"])  # rliable's strata draw from the global generator
    iqm = lambda x: np.array([metrics.aggregate_iqm(x)])
    points, intervals = library.get_interval_estimates(
        scores, iqm, reps=request["reps"], random_state=rs)
    pairs = {f"{x}|{y}": (scores[x], scores[y]) for x, y in case["pairs"]}
    pair_points, pair_intervals = library.get_interval_estimates(
        pairs, metrics.probability_of_improvement, reps=request["reps"], random_state=rs)
    checks = {
        "iqm": {k: [float(metrics.aggregate_iqm(np.array(r))) for r in v]
                for k, v in case["resamples"].items()},
        "poi": {k: [float(metrics.probability_of_improvement(np.array(a), np.array(b)))
                    for a, b in zip(*v)] for k, v in case["pair_resamples"].items()},
    }
    out.append({
        "iqm": {k: [float(np.ravel(points[k])[0]), *map(float, np.ravel(intervals[k]))]
                for k in scores},
        "poi": {k: [float(pair_points[k]), *map(float, np.ravel(pair_intervals[k]))]
                for k in pairs},
        "checks": checks,
    })
json.dump(out, sys.stdout)
"""


def ensure_venv(path: Path) -> Path:
    """The virtualenv's python, with ``rliable`` installed (created on first use)."""
    python = path / "bin" / "python"
    if not python.exists():
        venv.create(path, with_pip=True)
    probe = subprocess.run([python, "-c", "import rliable.library"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", *REQUIREMENTS],
            check=True,
        )
    return python


def synthetic_cases(seed: int = 0) -> list[dict[str, Any]]:
    """Seeded score sets: one task of 5 seeds (our case), several tasks, ties, unequal runs."""
    rng = np.random.default_rng(seed)
    ppo = 9.0 + 0.3 * rng.standard_normal(5)
    cases = [
        {
            "name": "5 seeds x 1 task",
            "scores": {"ppo": ppo, "bandit": 7.2 + 0.3 * rng.standard_normal(5), "oracle": [8.07]},
            "pairs": [("ppo", "bandit"), ("ppo", "oracle")],
        },
        {
            "name": "10 runs x 3 tasks",
            "scores": {
                "a": rng.normal(1.0, 1.0, (10, 3)),
                "b": rng.normal(0.5, 1.0, (10, 3)),
                "c": rng.normal(0.5, 1.0, (7, 3)),
            },
            "pairs": [("a", "b"), ("a", "c"), ("b", "c")],
        },
        {
            "name": "ties, 8 runs x 2 tasks",
            "scores": {
                "x": rng.integers(0, 4, (8, 2)).astype(float),
                "y": rng.integers(0, 4, (8, 2)).astype(float),
            },
            "pairs": [("x", "y"), ("y", "x")],
        },
    ]
    return [_with_matrices(case) for case in cases]


def _with_matrices(case: dict[str, Any]) -> dict[str, Any]:
    case["scores"] = {k: as_score_matrix(v, k) for k, v in case["scores"].items()}
    return case


def cases_from_json(path: Path) -> list[dict[str, Any]]:
    """The per-seed profits of a ``benchmarks/multiseed.py --json`` file as one case."""
    analysis = json.loads(path.read_text(encoding="utf-8"))
    scores: dict[str, list[float]] = {}
    for run in analysis["runs"]:
        scores.setdefault(run["agent"], []).append(run["profit"])
    pairs = [(imp["x"], imp["y"]) for imp in analysis["improvements"]]
    return [_with_matrices({"name": f"{path.name}", "scores": scores, "pairs": pairs})]


def ours(case: dict[str, Any], reps: int, seed: int) -> dict[str, Any]:
    """Our estimates and the resamples whose statistics rliable recomputes."""
    scores = case["scores"]
    estimates = aggregate_iqm(scores, n_resamples=reps, seed=seed)
    result: dict[str, Any] = {
        "iqm": {k: [e.iqm, e.low, e.high] for k, e in estimates.items()},
        "poi": {},
        "resamples": {},
        "pair_resamples": {},
        "iqm_of_resamples": {},
        "poi_of_resamples": {},
    }
    for name, matrix in scores.items():
        resamples = stratified_bootstrap(matrix, CHECKED_RESAMPLES, seed)
        result["resamples"][name] = resamples.tolist()
        result["iqm_of_resamples"][name] = [interquartile_mean(r) for r in resamples]
    for x, y in case["pairs"]:
        found = probability_of_improvement(scores, x, y, n_resamples=reps, seed=seed)
        key = f"{x}|{y}"
        result["poi"][key] = [found.probability, found.low, found.high]
        rx = stratified_bootstrap(scores[x], CHECKED_RESAMPLES, seed)
        ry = stratified_bootstrap(scores[y], CHECKED_RESAMPLES, seed + 1)
        result["pair_resamples"][key] = [rx.tolist(), ry.tolist()]
        result["poi_of_resamples"][key] = [
            improvement_probability(a, b) for a, b in zip(rx, ry, strict=True)
        ]
    return result


def compare(cases: list[dict[str, Any]], python: Path, reps: int, seed: int) -> bool:
    """Print our estimates next to rliable's; return whether every exact check passed."""
    mine = [ours(case, reps, seed) for case in cases]
    request = {
        "reps": reps,
        "seed": seed,
        "cases": [
            {
                "scores": {k: v.tolist() for k, v in case["scores"].items()},
                "pairs": case["pairs"],
                "resamples": m["resamples"],
                "pair_resamples": m["pair_resamples"],
            }
            for case, m in zip(cases, mine, strict=True)
        ],
    }
    reply = subprocess.run(
        [python, "-c", _RLIABLE_SCRIPT],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(reply.stdout)
    print(f"{reps:,} resamples, percentile 95 % intervals; point estimates must be equal\n")
    print("| case | statistic | ours: point [95% CI] | rliable: point [95% CI] | max Δ end |")
    print("|---|---|---:|---:|---:|")
    exact = True
    for case, m, t in zip(cases, mine, theirs, strict=True):
        for kind in ("iqm", "poi"):
            for key, (point, low, high) in m[kind].items():
                r_point, r_low, r_high = t[kind][key]
                exact &= bool(np.isclose(point, r_point, rtol=0, atol=1e-12))
                label = "IQM " + key if kind == "iqm" else "P(" + key.replace("|", " > ") + ")"
                print(
                    f"| {case['name']} | {label} | {point:.4f} [{low:.4f}, {high:.4f}] "
                    f"| {r_point:.4f} [{r_low:.4f}, {r_high:.4f}] "
                    f"| {max(abs(low - r_low), abs(high - r_high)):.4f} |"
                )
        for kind, ours_key in (("iqm", "iqm_of_resamples"), ("poi", "poi_of_resamples")):
            for key, values in m[ours_key].items():
                exact &= bool(np.allclose(values, t["checks"][kind][key], rtol=0, atol=1e-12))
    verdict = "EQUAL" if exact else "DIFFERENT"
    print(f"\npoint estimates and statistics of {CHECKED_RESAMPLES} resamples each: {verdict}")
    return exact


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; exit status 1 if an exact check fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/venv_rliable"))
    parser.add_argument("--reps", type=int, default=2_000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scores", type=Path, help="a benchmarks/multiseed.py --json file")
    args = parser.parse_args(argv)
    python = ensure_venv(args.venv)
    cases = synthetic_cases(args.seed)
    if args.scores:
        cases += cases_from_json(args.scores)
    return 0 if compare(cases, python, args.reps, args.seed) else 1


if __name__ == "__main__":
    sys.exit(main())
