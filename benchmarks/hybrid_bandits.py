"""Seconds per cycle of the hybrid bandits at item scale, against disjoint LinUCB on the same data.

One *cycle* is what the evaluator does every simulated week: decide 1,024 customers over every
action (``predict``), then learn from their rewards (``update``). The item env's sizes: 601
actions (200 products × 3 channels + no action), contexts of d = 53 (52 features + bias), k = 20
action features (12 topic weights, scaled log price, margin, new flag, 3 channel flags, a bias
and a no-action flag). Every run replays the same synthetic stream: uniform features, and a
reward that is bilinear in customer and action features (plus a small per-action part and
noise), the world where item features pay.

Per cycle, for each bandit (a fresh policy per round, numba warmed up, best of ``--rounds``):

* ``update``: ``update(obs, actions, rewards)`` of the 1,024 samples;
* ``refresh``: the hybrids rebuild their posterior at the first decision after an update
  (:meth:`~rec_env.agents.bandits.hybrid.HybridLinUCB.posterior`), timed apart;
* ``decide``: ``predict`` of the 1,024 customers (sampled for Thompson sampling).

Wall-clock seconds per step, and the CPU seconds of the whole cycle (this process): on a loaded
machine the CPU time is the steadier figure (every step runs on one thread). The ratios are
against disjoint LinUCB's cycle in the same run; the reward column is the mean expected reward
per decision over the cycles (the oracle's is printed too). With ``--large``,
the shared-only hybrids also run with 10,000 actions (3,333 products × 3 channels + no action).

Run from the repository root::

    python benchmarks/hybrid_bandits.py              # about a minute
    python benchmarks/hybrid_bandits.py --quick      # smoke run
    python benchmarks/hybrid_bandits.py --large --json hybrid.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.agents.bandits import (
    BanditPolicy,
    HybridLinearThompsonSampling,
    HybridLinUCB,
    LinearThompsonSampling,
    LinUCB,
    linear_contexts,
)
from rec_env.feature_space import FeatureSpace

N_CUSTOMERS = 1_024
D = 53
K = 20
DECIDE_GOAL_S = 1.0
UPDATE_GOAL_S = 1.0


@dataclass(frozen=True)
class World:
    """Action features and the bilinear reward model of one synthetic catalog."""

    features: FeatureSpace
    action_features: np.ndarray
    weights: np.ndarray
    own: np.ndarray

    @property
    def n_actions(self) -> int:
        """Number of actions."""
        return self.action_features.shape[0]

    def expected(self, obs: np.ndarray) -> np.ndarray:
        """``(n, A)`` expected rewards ``x^T W f_a + x^T theta_a``."""
        contexts = linear_contexts(obs, self.features)
        return contexts @ self.weights @ self.action_features.T + contexts @ self.own.T


def make_world(n_products: int, seed: int = 0) -> World:
    """A catalog of ``n_products`` products on 3 channels plus no action (row 0)."""
    rng = np.random.default_rng(seed)
    topics = rng.dirichlet(np.full(12, 0.3), size=n_products)
    product = np.column_stack(
        [topics, rng.normal(size=n_products) / 2, rng.random(n_products) / 2,
         rng.random(n_products) < 0.1]
    )  # fmt: skip
    rows = [np.zeros(K)]
    rows[0][-1] = 1.0  # the no-action flag
    for channel in range(3):
        flags = np.zeros((n_products, 3))
        flags[:, channel] = 1.0
        rows.extend(np.column_stack([product, flags, np.ones(n_products), np.zeros(n_products)]))
    action_features = np.array(rows)
    features = FeatureSpace([f"f{j}" for j in range(D - 1)], np.zeros(D - 1), np.ones(D - 1))
    weights = rng.normal(size=(D, K)) / np.sqrt(D)
    own = 0.1 * rng.normal(size=(action_features.shape[0], D)) / np.sqrt(D)
    return World(features, action_features, weights, own)


@dataclass(frozen=True)
class Measurement:
    """Seconds per cycle of one bandit (median over the cycles of its best round)."""

    name: str
    n_actions: int
    update_s: float
    refresh_s: float
    decide_s: float
    cycle_cpu_s: float
    mean_reward: float

    @property
    def cycle_s(self) -> float:
        """Wall-clock seconds of a whole cycle."""
        return self.update_s + self.refresh_s + self.decide_s


def timed(step: Callable[[], Any]) -> tuple[Any, float, float]:
    """``step()``, its wall-clock seconds and its CPU seconds (this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run(make: Callable[[World], BanditPolicy], world: World, cycles: int, seed: int) -> dict:
    """Seconds of each step per cycle (medians over cycles) and the mean expected reward."""
    rng = np.random.default_rng(seed)
    policy = make(world)
    warm = rng.random((4, D - 1))  # compile or load every kernel before timing
    policy.update(warm, [0, 1, 2, 3], [0.0, 0.0, 0.0, 0.0])
    policy.predict(warm, deterministic=False)
    refresh = getattr(policy, "posterior", lambda: None)
    times: dict[str, list[float]] = {"update_s": [], "refresh_s": [], "decide_s": []}
    cpu, rewards = [], []
    for _ in range(cycles):
        obs = rng.random((N_CUSTOMERS, D - 1))
        _, wall_refresh, cpu_refresh = timed(refresh)
        actions, wall_decide, cpu_decide = timed(partial(policy.predict, obs, deterministic=False))
        expected = world.expected(obs)[np.arange(N_CUSTOMERS), actions]
        rewards.append(expected.mean())
        noisy = expected + rng.normal(size=N_CUSTOMERS)
        _, wall_update, cpu_update = timed(partial(policy.update, obs, actions, noisy))
        times["refresh_s"].append(wall_refresh)
        times["decide_s"].append(wall_decide)
        times["update_s"].append(wall_update)
        cpu.append(cpu_refresh + cpu_decide + cpu_update)
    medians = {key: float(np.median(values)) for key, values in times.items()}
    return {**medians, "cycle_cpu_s": float(np.median(cpu)), "mean_reward": np.mean(rewards)}


BANDITS: dict[str, Callable[[World], BanditPolicy]] = {
    "LinUCB (disjoint, reference)": lambda w: LinUCB(w.n_actions, features=w.features),
    "HybridLinUCB": lambda w: HybridLinUCB(
        w.n_actions, features=w.features, action_features=w.action_features
    ),
    "HybridLinUCB per_action=False": lambda w: HybridLinUCB(
        w.n_actions, features=w.features, action_features=w.action_features, per_action=False
    ),
    "LinearThompsonSampling": lambda w: LinearThompsonSampling(
        w.n_actions, random_state=0, features=w.features
    ),
    "HybridLinearThompsonSampling": lambda w: HybridLinearThompsonSampling(
        w.n_actions, random_state=0, features=w.features, action_features=w.action_features
    ),
    "HybridLinearThompsonSampling per_action=False": lambda w: HybridLinearThompsonSampling(
        w.n_actions,
        random_state=0,
        features=w.features,
        action_features=w.action_features,
        per_action=False,
    ),
}


def measure(world: World, names: list[str], cycles: int, rounds: int) -> list[Measurement]:
    """Best round (by CPU seconds per cycle) of each bandit, every round on the same stream.

    Rounds go round-robin over the bandits, so a change of machine load hits them all alike.
    """
    best: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for name in names:
            timing = run(BANDITS[name], world, cycles, seed=1)
            if name not in best or timing["cycle_cpu_s"] < best[name]["cycle_cpu_s"]:
                best[name] = timing
    return [Measurement(name, world.n_actions, **best[name]) for name in names]


def report(world: World, results: list[Measurement], cycles: int) -> None:
    """Print the table and the ratios against the reference's cycle."""
    rng = np.random.default_rng(1)
    oracle = np.mean([world.expected(rng.random((N_CUSTOMERS, D - 1))).max(axis=1).mean()])
    print(f"\n{world.n_actions} actions, d={D}, k={K}, {N_CUSTOMERS} customers, {cycles} cycles")
    print(
        f"{'bandit':<46} {'update':>7} {'refresh':>7} {'decide':>7} {'cycle':>7} {'/ ref':>6}"
        f" {'cpu':>7} {'/ ref':>6} {'reward':>7}"
    )
    wall, cpu = results[0].cycle_s, results[0].cycle_cpu_s
    for m in results:
        steps = f"{m.update_s:>7.3f} {m.refresh_s:>7.3f} {m.decide_s:>7.3f} {m.cycle_s:>7.3f}"
        ratios = f"{m.cycle_s / wall:>5.2f}x {m.cycle_cpu_s:>7.3f} {m.cycle_cpu_s / cpu:>5.2f}x"
        print(f"{m.name:<46} {steps} {ratios} {m.mean_reward:>7.3f}")
    print(f"{'myopic oracle (expected reward)':<102} {oracle:>7.3f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 cycles, one round (smoke run)")
    parser.add_argument("--large", action="store_true", help="also 10,000 actions (shared-only)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure, print, optionally write JSON; 1 if a hybrid misses a per-cycle goal."""
    args = parse_args(argv)
    cycles, rounds = (3, 1) if args.quick else (10, 2)
    print(f"cpu_count={os.cpu_count()}, load average={[round(x, 2) for x in os.getloadavg()]}")
    plans = [(make_world(200), list(BANDITS))]
    if args.large:
        shared_only = ["LinUCB (disjoint, reference)", *(n for n in BANDITS if "False" in n)]
        plans.append((make_world(3_333), shared_only))
    results = []
    for world, names in plans:
        measured = measure(world, names, cycles, rounds)
        report(world, measured, cycles)
        results.extend(measured)
    goals = [
        (f"{m.name}, {m.n_actions} actions: {step}", value, target)
        for m in results
        if m.n_actions == 601 and "Hybrid" in m.name
        for step, value, target in (
            ("decide", m.decide_s, DECIDE_GOAL_S),
            ("update + refresh", m.update_s + m.refresh_s, UPDATE_GOAL_S),
        )
    ]
    print(f"\n{'goal (seconds per cycle)':<72} {'measured':>9} {'target':>7}")
    for name, value, target in goals:
        verdict = "PASS" if value <= target else "MISS"
        print(f"{name:<72} {value:>9.3f} {'<= ' + str(target):>7}  {verdict}")
    print(f"load average after the runs: {[round(x, 2) for x in os.getloadavg()]}")
    if args.json is not None:
        rows = [{**asdict(m), "cycle_s": m.cycle_s} for m in results]  # mean_reward: np.float64
        args.json.write_text(json.dumps({"measurements": rows}, indent=2, default=float) + "\n")
    return 0 if all(value <= target for _, value, target in goals) else 1


if __name__ == "__main__":
    raise SystemExit(main())
