"""Throughput of the recommendation env, against CartPole, in customer-steps per second.

One *customer-step* is one customer advanced by one campaign cycle (for CartPole: one cart
step). Measured in one process, so that the noise of a shared machine hits every row alike:

1. ``gym.make("rec_env/Recommendation-v0")``: the single env's step loop, through the standard
   ``gym.make`` wrappers (passive env checker, order enforcing, time limit).
2. ``gym.make("CartPole-v1")``: the same loop, as the reference.
3. SB3 ``DummyVecEnv`` of 64 single envs: a Python loop over the envs each step, so its
   customer-steps/s are 64 × its steps/s.
4. ``rec_env.make_vec_env(64, seed=0)`` and ``rec_env.make_vec_env(1024, seed=0)``: the SB3
   ``VecEnv`` on the batched core, one call to the kernels per step.

5. The item world (issue 11): ``rec_env.make_vec_env(1024, world="item")`` (one product per
   message, ``Discrete(1 + 3 · n_products)``) and ``world="slate"`` (slates of K = 4 chosen by a
   scoring vector), each with the shipped 200-product table and a 10,000-product
   ``synthetic_products`` table. The item env's step must not grow with the catalog (only its
   action table does); the slate env's decoding scores every product, linear by design.

Every loop replays random valid actions drawn before timing (action sampling is not counted):
uniform over ``Discrete(n)`` (so, as for a policy that ignores the masks, some messages go to
channels without consent and are not delivered) or uniform in the slate env's ``Box``.
The single-env loops call ``reset()`` on termination or truncation inside the timing, as a real
loop would; the vector envs reset themselves. Every benchmark is built and warmed up before any
timing, so the numba compilation of the first model build is not counted. Then the benchmarks
are timed round-robin with ``time.perf_counter`` for a fixed wall-clock budget each, three
rounds, and the best round of each is kept (the least disturbed by other processes).

Run from the repository root::

    python benchmarks/env_throughput.py                 # ~3 s per measurement, ~1 min
    python benchmarks/env_throughput.py --quick         # 0.5 s per measurement, smoke run
    python benchmarks/env_throughput.py --seconds 5 --json throughput.json
    python benchmarks/env_throughput.py --quick --no-items   # today's env only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import rec_env
from rec_env.products import load_products, save_products, synthetic_products

ROUNDS = 3
SINGLE_ENV_BLOCK = 2048
VEC_ENV_BLOCK = 32
DUMMY_VEC_ENVS = 64
VEC_ENV_SIZES = (64, 1024)
ITEM_VEC_ENVS = 1024
LARGE_CATALOG = 10_000
ITEM_BLOCKS = {"item": VEC_ENV_BLOCK, "slate": 4}  # a 10,000-product slate step is slow
DEFAULT_PRODUCTS = load_products("default").n_products  # 200
ITEM_GOAL = 0.5  # the item env's customer-steps/s, as a fraction of today's VecEnv's
CATALOG_GOAL = 2.0  # item env step time at 10,000 / 200 products (linear would be ~50x)

StepBlock = Callable[[], int]


@dataclass(frozen=True)
class Measurement:
    """The best timed round of one benchmark.

    Attributes:
        name: What was stepped.
        n_envs: Customers advanced per step call.
        calls: Step calls in the round.
        seconds: Wall-clock duration of the round.
    """

    name: str
    n_envs: int
    calls: int
    seconds: float

    @property
    def calls_per_second(self) -> float:
        """Step calls per second."""
        return self.calls / self.seconds

    @property
    def customer_steps_per_second(self) -> float:
        """Customers advanced by one step per second: ``n_envs`` × calls per second."""
        return self.n_envs * self.calls_per_second

    @property
    def us_per_call(self) -> float:
        """Microseconds per step call (for a vector env, one step of all its envs)."""
        return 1e6 / self.calls_per_second

    @property
    def us_per_customer_step(self) -> float:
        """Microseconds per customer-step."""
        return 1e6 / self.customer_steps_per_second

    def to_dict(self) -> dict[str, Any]:
        """The fields and the derived rates, for JSON."""
        return {
            **asdict(self),
            "customer_steps_per_second": self.customer_steps_per_second,
            "us_per_call": self.us_per_call,
            "us_per_customer_step": self.us_per_customer_step,
        }


@dataclass(frozen=True)
class Goal:
    """A performance goal and the value measured for it.

    Attributes:
        name: What is compared.
        value: The measured value.
        target: The bound to meet.
        at_most: True if ``value`` must be at most ``target``, False if at least.
        unit: Suffix used when printing ``value`` and ``target``.
    """

    name: str
    value: float
    target: float
    at_most: bool
    unit: str = ""

    @property
    def met(self) -> bool:
        """Whether the measured value meets the target."""
        return self.value <= self.target if self.at_most else self.value >= self.target

    def to_dict(self) -> dict[str, Any]:
        """The fields and the verdict, for JSON."""
        return {**asdict(self), "met": self.met}


# ---------------------------------------------------------------------------- step loops
def single_env_block(env: gym.Env, actions: list[int]) -> StepBlock:
    """A function that steps ``env`` through ``actions``, resetting when an episode ends."""
    env.reset(seed=0)

    def run_block() -> int:
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        return len(actions)

    return run_block


def vec_env_block(venv: VecEnv, actions: np.ndarray) -> StepBlock:
    """A function that steps ``venv`` once per row of ``actions`` (it resets itself)."""
    venv.seed(0)
    venv.reset()

    def run_block() -> int:
        for row in actions:
            venv.step(row)
        return len(actions)

    return run_block


def time_block(run_block: StepBlock, seconds: float) -> tuple[int, float]:
    """Run ``run_block`` until ``seconds`` have passed; return the step calls and the time."""
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        calls += run_block()
        now = time.perf_counter()
        if now >= deadline:
            return calls, now - start


# ---------------------------------------------------------------------------- benchmarks
def random_actions(
    space: gym.Space, steps: int, n_envs: int, rng: np.random.Generator
) -> np.ndarray:
    """``(steps, n_envs, ...)`` actions drawn uniformly from a single env's action space."""
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(space.n, size=(steps, n_envs))
    shape = (steps, n_envs, *space.shape)
    return rng.uniform(space.low, space.high, size=shape).astype(space.dtype)


def item_world_name(world: str, n_products: int) -> str:
    """Name of the item-world benchmark of ``world`` with a catalog of ``n_products``."""
    return f"make_vec_env({ITEM_VEC_ENVS}, {world}, {n_products:,} products)"


def build_item_benchmarks(rng: np.random.Generator) -> list[tuple[str, int, StepBlock]]:
    """The item and slate VecEnvs, with the shipped table and a 10,000-product one."""
    benchmarks = []
    with tempfile.TemporaryDirectory() as tmp:  # the model is built from it, then not read
        large = save_products(synthetic_products(LARGE_CATALOG, seed=0), Path(tmp) / "p.csv")
        for world, block in ITEM_BLOCKS.items():
            for products in ("default", str(large)):
                venv = rec_env.make_vec_env(ITEM_VEC_ENVS, seed=0, world=world, products=products)
                actions = random_actions(venv.action_space, block, venv.num_envs, rng)
                name = item_world_name(world, venv.model.products.n_products)
                benchmarks.append((name, venv.num_envs, vec_env_block(venv, actions)))
    return benchmarks


def build_benchmarks(seed: int = 0, items: bool = True) -> list[tuple[str, int, StepBlock]]:
    """Build every env and its step loop: ``(name, n_envs, run_block)`` per benchmark."""
    rng = np.random.default_rng(seed)

    def single(env_id: str) -> StepBlock:
        env = gym.make(env_id)
        actions = rng.integers(env.action_space.n, size=SINGLE_ENV_BLOCK).tolist()
        return single_env_block(env, actions)

    def vec(venv: VecEnv) -> StepBlock:
        actions = random_actions(venv.action_space, VEC_ENV_BLOCK, venv.num_envs, rng)
        return vec_env_block(venv, actions)

    def gym_vector(vector: gym.vector.VectorEnv) -> StepBlock:
        shape = (VEC_ENV_BLOCK, vector.num_envs)
        return gym_vector_block(vector, rng.integers(vector.single_action_space.n, size=shape))

    dummy = DummyVecEnv([lambda: gym.make(rec_env.ENV_ID)] * DUMMY_VEC_ENVS)
    benchmarks = [
        ("CartPole-v1 (gym.make)", 1, single("CartPole-v1")),
        (f"{rec_env.ENV_ID} (gym.make)", 1, single(rec_env.ENV_ID)),
        (f"DummyVecEnv({DUMMY_VEC_ENVS} x gym.make)", DUMMY_VEC_ENVS, vec(dummy)),
    ]
    for n_envs in VEC_ENV_SIZES:
        venv = rec_env.make_vec_env(n_envs, seed=0)
        benchmarks.append((f"rec_env.make_vec_env({n_envs})", n_envs, vec(venv)))
    if getattr(gym.spec(rec_env.ENV_ID), "vector_entry_point", None):  # absent before issue 9
        for n_envs in VEC_ENV_SIZES:
            vector = gym.make_vec(
                rec_env.ENV_ID, num_envs=n_envs, vectorization_mode="vector_entry_point"
            )
            benchmarks.append(
                (f"gym.make_vec({n_envs}, vector_entry_point)", n_envs, gym_vector(vector))
            )
    if items:
        benchmarks += build_item_benchmarks(rng)
    return benchmarks


def gym_vector_block(vector: gym.vector.VectorEnv, actions: np.ndarray) -> StepBlock:
    """A function that steps a Gymnasium ``VectorEnv`` once per row of ``actions``."""
    vector.reset(seed=0)

    def run_block() -> int:
        for row in actions:
            vector.step(row)
        return len(actions)

    return run_block


def run_benchmarks(
    seconds: float, warmup: float, rounds: int = ROUNDS, items: bool = True
) -> list[Measurement]:
    """Warm up every benchmark, then time them round-robin and keep each one's best round."""
    benchmarks = build_benchmarks(items=items)
    for _, _, run_block in benchmarks:
        time_block(run_block, warmup)
    best: dict[str, Measurement] = {}
    for _ in range(rounds):
        for name, n_envs, run_block in benchmarks:
            measurement = Measurement(name, n_envs, *time_block(run_block, seconds))
            previous = best.get(name)
            if previous is None or measurement.calls_per_second > previous.calls_per_second:
                best[name] = measurement
    return list(best.values())


def evaluate_goals(measurements: list[Measurement]) -> list[Goal]:
    """Compare the measurements with the throughput goals."""
    by_name = {m.name: m for m in measurements}
    cartpole = by_name["CartPole-v1 (gym.make)"]
    single = by_name[f"{rec_env.ENV_ID} (gym.make)"]
    dummy = by_name[f"DummyVecEnv({DUMMY_VEC_ENVS} x gym.make)"]
    batched = by_name[f"rec_env.make_vec_env({VEC_ENV_SIZES[-1]})"]
    goals = [
        Goal(
            "single env step time / CartPole step time",
            single.us_per_call / cartpole.us_per_call,
            2.0,
            at_most=True,
            unit="x",
        ),
        Goal(
            f"VecEnv({batched.n_envs}) customer-steps/s",
            batched.customer_steps_per_second,
            2_000_000,
            at_most=False,
        ),
        Goal(
            f"VecEnv({batched.n_envs}) / DummyVecEnv({dummy.n_envs}) customer-steps/s",
            batched.customer_steps_per_second / dummy.customer_steps_per_second,
            40.0,
            at_most=False,
            unit="x",
        ),
    ]
    return goals + item_goals(by_name, batched)


def item_goals(by_name: dict[str, Measurement], batched: Measurement) -> list[Goal]:
    """The item world's goals (issue 11), if its benchmarks ran."""
    small = by_name.get(item_world_name("item", DEFAULT_PRODUCTS))
    large = by_name.get(item_world_name("item", LARGE_CATALOG))
    if small is None or large is None:
        return []
    return [
        Goal(
            f"item VecEnv({small.n_envs}, {DEFAULT_PRODUCTS} products) / VecEnv({batched.n_envs})",
            small.customer_steps_per_second / batched.customer_steps_per_second,
            ITEM_GOAL,
            at_most=False,
            unit="x",
        ),
        Goal(
            f"item VecEnv step time, {LARGE_CATALOG:,} / {DEFAULT_PRODUCTS} products",
            large.us_per_call / small.us_per_call,
            CATALOG_GOAL,
            at_most=True,
            unit="x",
        ),
    ]


def catalog_scaling(measurements: list[Measurement]) -> dict[str, float]:
    """Step time with 10,000 products over step time with the shipped table, per world."""
    by_name = {m.name: m for m in measurements}
    ratios = {}
    for world in ITEM_BLOCKS:
        small = by_name.get(item_world_name(world, DEFAULT_PRODUCTS))
        large = by_name.get(item_world_name(world, LARGE_CATALOG))
        if small is not None and large is not None:
            ratios[world] = large.us_per_call / small.us_per_call
    return ratios


# ---------------------------------------------------------------------------- reporting
def machine_info() -> dict[str, Any]:
    """Interpreter, library versions, CPU count and load average."""
    import numba

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "gymnasium": gym.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15min": [round(load, 2) for load in os.getloadavg()],
        "platform": platform.platform(),
    }


def format_value(value: float, unit: str) -> str:
    """``1.73x`` for a ratio (a value with a unit), ``2,345,678`` for a rate."""
    return f"{value:.2f}{unit}" if unit else f"{value:,.0f}"


def print_report(
    info: dict[str, Any], measurements: list[Measurement], goals: list[Goal], seconds: float
) -> None:
    """Print the machine, the throughput table and the goals."""
    print("machine: " + ", ".join(f"{key}={value}" for key, value in info.items()))
    print(f"timing: best of {ROUNDS} rounds of {seconds:g} s each (round-robin, after warm-up)\n")
    print(
        f"{'benchmark':<44} {'envs':>5} {'customer-steps/s':>17} {'µs/step call':>13} "
        f"{'µs/customer-step':>17}"
    )
    for m in measurements:
        print(
            f"{m.name:<44} {m.n_envs:>5} {m.customer_steps_per_second:>17,.0f} "
            f"{m.us_per_call:>13.2f} {m.us_per_customer_step:>17.3f}"
        )
    print(f"\n{'goal':<56} {'measured':>12} {'target':>14}")
    for goal in goals:
        bound = ("<= " if goal.at_most else ">= ") + format_value(goal.target, goal.unit)
        verdict = "PASS" if goal.met else "MISS"
        print(f"{goal.name:<56} {format_value(goal.value, goal.unit):>12} {bound:>14}  {verdict}")
    scaling = catalog_scaling(measurements)
    if scaling:
        print(f"\nstep time, {LARGE_CATALOG:,} / {DEFAULT_PRODUCTS} products (50x the catalog):")
        for world, ratio in scaling.items():
            why = "scores every product: linear by design" if world == "slate" else ""
            print(f"  {world:<6} {ratio:6.2f}x  {why}".rstrip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed budget per round")
    parser.add_argument("--quick", action="store_true", help="0.5 s per round (smoke run)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--no-items", action="store_true", help="skip the item and slate worlds (issue 11)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Measure, print the report and optionally write it as JSON."""
    args = parse_args(argv)
    seconds = 0.5 if args.quick else args.seconds
    info = machine_info()
    measurements = run_benchmarks(seconds, warmup=min(1.0, seconds), items=not args.no_items)
    goals = evaluate_goals(measurements)
    print_report(info, measurements, goals, seconds)
    if args.json is not None:
        report = {
            "machine": info,
            "timing": {"seconds_per_round": seconds, "rounds": ROUNDS, "statistic": "best"},
            "measurements": [m.to_dict() for m in measurements],
            "goals": [goal.to_dict() for goal in goals],
            "catalog_scaling": catalog_scaling(measurements),
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
