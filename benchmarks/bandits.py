"""Decisions per second of our LinUCB, single-stream and batched, against plain reference loops.

One *decision* is one customer scored against every action (a predict) and then learned from
(an update). Every run replays the same synthetic stream: contexts of ``d - 1`` features drawn
uniformly within their bounds (plus the bias), 16 actions, and a fixed table of rewards (a
random linear model plus Gaussian noise), so a run's total reward only depends on its decisions.
Two context sizes are measured, each against its own references in the same process:

* d = 17: the env's 16 features (:meth:`~rec_env.feature_space.FeatureSpace.env`), the goal
  sizes of the speed targets;
* d = 64: 63 named features of another data set (any feature space works the same way).

1. ``LinUCB`` single-stream: a batch of one, ``predict`` then ``update``, customer by customer.
2. ``LinUCB`` batched: batches of 10,000, ``predict`` for the batch then ``update`` with it.
3. Plain references, one sample at a time with a Python loop over the actions, as in
   ``tests/test_bandits.py``: (a) ``np.linalg.inv(A_a)`` at every step, (b) ``A_a^{-1}`` kept
   by Sherman–Morrison in plain numpy.
4. At d = 17 also ``LinUCB`` single-stream *consent-safe*: it knows the catalog's channels and
   masks every action whose channel the context's consent flags refuse (its decisions differ).

The single-stream run and both references take exactly the same decisions (same algorithm, same
order of updates), so their total rewards must be EQUAL; the benchmark checks it. The batched
run decides a whole batch with the parameters of the previous batches, so its reward differs.
Numba is warmed up before any timing; each LinUCB run starts from a fresh policy and the best of
three rounds is kept (the references are slow and are timed once).

Run from the repository root::

    python benchmarks/bandits.py                 # about a minute
    python benchmarks/bandits.py --quick         # smoke run
    python benchmarks/bandits.py --json bandits.json

The hybrid bandits (item features) are measured at item scale, 601 actions, against disjoint
LinUCB on the same stream, by ``benchmarks/hybrid_bandits.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.agents.bandits import LinUCB, linear_contexts
from rec_env.catalog import ActionTable, load_catalog
from rec_env.feature_space import FeatureSpace

N_ACTIONS = 16
ALPHA = 1.0
REGULARIZATION = 1.0
BATCH = 10_000
ROUNDS = 3
SINGLE_STREAM_GOAL = 50_000
BATCHED_GOAL = 1_000_000


@dataclass(frozen=True)
class Stream:
    """The synthetic stream every run replays.

    Attributes:
        obs: ``(T, d - 1)`` float32 observations within their feature bounds.
        rewards: ``(T, 16)`` reward of every action for every customer.
        features: Their feature space.
    """

    obs: np.ndarray
    rewards: np.ndarray
    features: FeatureSpace

    def __len__(self) -> int:
        return self.obs.shape[0]

    @property
    def d(self) -> int:
        """Context size: the features and the bias."""
        return self.features.d + 1


@dataclass(frozen=True)
class Measurement:
    """One timed run over the first ``decisions`` customers of the stream.

    Attributes:
        name: What was run.
        decisions: Customers decided and learned from.
        seconds: Wall-clock duration (best round).
        total_reward: Sum of the rewards of the chosen actions.
    """

    name: str
    decisions: int
    seconds: float
    total_reward: float

    @property
    def decisions_per_second(self) -> float:
        """Decisions (predict + update) per second."""
        return self.decisions / self.seconds

    def to_dict(self) -> dict[str, Any]:
        """The fields and the rate, for JSON."""
        return {**asdict(self), "decisions_per_second": self.decisions_per_second}


def feature_space(d: int) -> FeatureSpace:
    """The env's 16 features for d = 17, else ``d - 1`` named features within [0, 100]."""
    if d == FeatureSpace.env().d + 1:
        return FeatureSpace.env()
    return FeatureSpace(
        [f"feature_{j}" for j in range(d - 1)], np.zeros(d - 1), np.full(d - 1, 100)
    )


def make_stream(n_decisions: int, d: int = 17, seed: int = 0) -> Stream:
    """Observations and the reward table of a random linear problem with Gaussian noise."""
    features = feature_space(d)
    rng = np.random.default_rng(seed)
    obs = (rng.random((n_decisions, features.d)) * features.high).astype(np.float32)
    true_theta = rng.normal(size=(N_ACTIONS, d))
    expected = linear_contexts(obs, features) @ true_theta.T
    return Stream(obs, expected + rng.normal(size=expected.shape), features)


# ---------------------------------------------------------------------------- runs
def fresh_policy(stream: Stream, channels: tuple[str, ...] | None = None) -> LinUCB:
    """A LinUCB of the benchmark's settings on the stream's features."""
    return LinUCB(
        N_ACTIONS,
        alpha=ALPHA,
        regularization=REGULARIZATION,
        features=stream.features,
        action_channels=channels,
    )


def run_single_stream(
    stream: Stream, n: int, channels: tuple[str, ...] | None = None
) -> np.ndarray:
    """Our LinUCB, one customer at a time; returns the chosen actions."""
    policy = fresh_policy(stream, channels)
    actions = np.empty(n, dtype=np.intp)
    obs, rewards = stream.obs, stream.rewards
    for t in range(n):
        customer = obs[t : t + 1]
        action = policy.predict(customer)
        actions[t] = chosen = action[0]
        policy.update(customer, action, rewards[t : t + 1, chosen])
    return actions


def run_batched(stream: Stream, n: int, batch: int = BATCH) -> np.ndarray:
    """Our LinUCB, ``batch`` customers per predict and per update; returns the actions."""
    policy = fresh_policy(stream)
    actions = np.empty(n, dtype=np.intp)
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        customers = stream.obs[start:stop]
        actions[start:stop] = chosen = policy.predict(customers)
        policy.update(customers, chosen, stream.rewards[np.arange(start, stop), chosen])
    return actions


def run_reference_inverse(stream: Stream, n: int) -> np.ndarray:
    """Li et al. (2010), algorithm 1, as in the tests: ``np.linalg.inv`` per action and step."""
    contexts = linear_contexts(stream.obs[:n], stream.features)
    d = contexts.shape[1]
    gram = [REGULARIZATION * np.eye(d) for _ in range(N_ACTIONS)]
    response = [np.zeros(d) for _ in range(N_ACTIONS)]
    actions = np.empty(n, dtype=np.intp)
    for t in range(n):
        x = contexts[t]
        scores = []
        for a in range(N_ACTIONS):
            inverse = np.linalg.inv(gram[a])
            scores.append((inverse @ response[a]) @ x + ALPHA * np.sqrt(x @ inverse @ x))
        action = int(np.argmax(scores))
        gram[action] += np.outer(x, x)
        response[action] += stream.rewards[t, action] * x
        actions[t] = action
    return actions


def run_reference_sherman_morrison(stream: Stream, n: int) -> np.ndarray:
    """The same algorithm with ``A_a^{-1}`` kept by Sherman–Morrison, in plain numpy."""
    contexts = linear_contexts(stream.obs[:n], stream.features)
    d = contexts.shape[1]
    inverse = [np.eye(d) / REGULARIZATION for _ in range(N_ACTIONS)]
    response = [np.zeros(d) for _ in range(N_ACTIONS)]
    actions = np.empty(n, dtype=np.intp)
    for t in range(n):
        x = contexts[t]
        scores = [
            (inverse[a] @ response[a]) @ x + ALPHA * np.sqrt(x @ inverse[a] @ x)
            for a in range(N_ACTIONS)
        ]
        action = int(np.argmax(scores))
        u = inverse[action] @ x
        inverse[action] -= np.outer(u, u) / (1.0 + x @ u)
        response[action] += stream.rewards[t, action] * x
        actions[t] = action
    return actions


def measure(
    name: str, run: Callable[[Stream, int], np.ndarray], stream: Stream, n: int, rounds: int
) -> tuple[Measurement, np.ndarray]:
    """Best of ``rounds`` timed runs, and the actions of the last one."""
    best = float("inf")
    actions = np.empty(0, dtype=np.intp)
    for _ in range(rounds):
        start = time.perf_counter()
        actions = run(stream, n)
        best = min(best, time.perf_counter() - start)
    total = float(stream.rewards[np.arange(n), actions].sum())
    return Measurement(name, n, best, total), actions


def run_consent_safe(stream: Stream, n: int) -> np.ndarray:
    """Single-stream LinUCB that knows the catalog's channels (consent masks from the obs)."""
    return run_single_stream(stream, n, ActionTable.from_catalog(load_catalog()).channel_names)


def warm_up(stream: Stream) -> None:
    """Compile (or load) every numba kernel the timed runs use."""
    run_single_stream(stream, 4)
    run_batched(stream, 2 * 3 + 1, batch=3)
    if stream.features.consent_columns is not None:
        run_consent_safe(stream, 4)


@dataclass(frozen=True)
class Sizes:
    """Decisions of each run at one context size."""

    single: int
    reference: int
    batched: int


def benchmark(d: int, sizes: Sizes) -> tuple[list[Measurement], dict[str, bool]]:
    """Every run at context size ``d``, and whether the references decided identically."""
    stream = make_stream(max(sizes.single, sizes.reference, sizes.batched), d)
    warm_up(stream)
    single, single_actions = measure(
        "LinUCB single-stream", run_single_stream, stream, sizes.single, ROUNDS
    )
    batched, _ = measure(f"LinUCB batched ({BATCH:,})", run_batched, stream, sizes.batched, ROUNDS)
    inverse, inverse_actions = measure(
        "reference, np.linalg.inv", run_reference_inverse, stream, sizes.reference, 1
    )
    sherman, sherman_actions = measure(
        "reference, Sherman–Morrison numpy",
        run_reference_sherman_morrison,
        stream,
        sizes.reference,
        1,
    )
    measurements = [single, batched, inverse, sherman]
    if stream.features.consent_columns is not None:
        safe, _ = measure(
            "LinUCB single-stream, consent-safe", run_consent_safe, stream, sizes.single, ROUNDS
        )
        measurements.append(safe)
    same = {
        ref.name: bool(np.array_equal(single_actions[: ref.decisions], actions))
        and measure_prefix(stream, single_actions, ref.decisions) == ref.total_reward
        for ref, actions in ((inverse, inverse_actions), (sherman, sherman_actions))
    }
    return measurements, same


def measure_prefix(stream: Stream, actions: np.ndarray, n: int) -> float:
    """Total reward of the first ``n`` decisions."""
    return float(stream.rewards[np.arange(n), actions[:n]].sum())


def report(d: int, measurements: list[Measurement], same: dict[str, bool]) -> None:
    """Print the table, the speed-ups against the references and the equality check."""
    print(f"\nstream: d={d}, {N_ACTIONS} actions, alpha={ALPHA}, lambda={REGULARIZATION}")
    print(f"{'run':<38} {'decisions':>10} {'decisions/s':>13} {'total reward':>16}")
    for m in measurements:
        rate, total = m.decisions_per_second, m.total_reward
        print(f"{m.name:<38} {m.decisions:>10,} {rate:>13,.0f} {total:>16.6f}")
    single, batched, inverse, sherman = measurements[:4]
    print("speed-ups")
    for mine in (single, batched):
        for reference in (inverse, sherman):
            ratio = mine.decisions_per_second / reference.decisions_per_second
            print(f"  {mine.name} / {reference.name}: {ratio:,.1f}x")
    ratio = batched.decisions_per_second / single.decisions_per_second
    print(f"  {batched.name} / {single.name}: {ratio:,.1f}x")
    for extra in measurements[4:]:
        ratio = extra.decisions_per_second / single.decisions_per_second
        print(f"  {extra.name} / {single.name}: {ratio:,.2f}x")
    print("single-stream and references take identical decisions, so equal total rewards:")
    for name, equal in same.items():
        print(f"  {single.name} vs {name}: {'EQUAL' if equal else 'DIFFERENT'}")


# ---------------------------------------------------------------------------- reporting
def machine_info() -> dict[str, Any]:
    """Interpreter, library versions, CPU count and load average."""
    import numba

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15min": [round(load, 2) for load in os.getloadavg()],
        "platform": platform.platform(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short streams (smoke run)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the report and optionally write it as JSON; 1 if decisions differ."""
    args = parse_args(argv)
    plans = (
        {17: Sizes(2_000, 2_000, 100_000), 64: Sizes(1_000, 500, 20_000)}
        if args.quick
        else {17: Sizes(20_000, 20_000, 1_000_000), 64: Sizes(5_000, 2_000, 200_000)}
    )
    info = machine_info()
    print("machine: " + ", ".join(f"{key}={value}" for key, value in info.items()))
    results = {d: benchmark(d, sizes) for d, sizes in plans.items()}
    for d, (measurements, same) in results.items():
        report(d, measurements, same)

    single, batched = results[17][0][:2]
    goals = [
        ("d=17 single-stream decisions/s", single.decisions_per_second, SINGLE_STREAM_GOAL),
        (f"d=17 batched ({BATCH:,}) decisions/s", batched.decisions_per_second, BATCHED_GOAL),
    ]
    print(f"\n{'goal':<40} {'measured':>12} {'target':>14}")
    for name, value, target in goals:
        verdict = "PASS" if value >= target else "MISS"
        print(f"{name:<40} {value:>12,.0f} {'>= ' + format(target, ','):>14}  {verdict}")
    print(f"load average after the runs: {[round(x, 2) for x in os.getloadavg()]}")

    identical = {
        f"d={d}: {name}": equal for d, (_, same) in results.items() for name, equal in same.items()
    }
    if args.json is not None:
        report_json = {
            "machine": info,
            "measurements": {
                f"d={d}": [m.to_dict() for m in measurements]
                for d, (measurements, _) in results.items()
            },
            "identical_decisions": identical,
            "goals": [{"name": n, "value": v, "target": t, "met": v >= t} for n, v, t in goals],
        }
        args.json.write_text(json.dumps(report_json, indent=2) + "\n")
    return 0 if all(identical.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
