"""The headline over several training seeds, reported the way ``rliable`` recommends.

For one world (an :class:`~rec_env.settings.EnvSettings` plus the agents to compare):

1. train the RL agent (PPO, the shipped hyperparameters, the code path of ``recenv train ppo``)
   and every bandit (``recenv train NAME``: 500 k steps) once per training seed into
   ``OUT/WORLD/ALGO-seedS``; a seed whose run directory exists is skipped, so an interrupted
   run resumes (a run is written as ``…/.ALGO-seedS.partial`` and renamed when complete);
2. evaluate every trained seed frozen (bandits as ``trained_NAME``), every bandit also learning
   online from scratch once per seed (its ``random_state`` = the seed), and the baselines, all
   on the same evaluation cohort (the same customers and random numbers for every agent; by
   default the README headline's: 50,000 customers, seed 1). Seeded baselines (``random``,
   ``best_fixed``) run once per seed; baselines with no randomness of their own
   (``no_action``, ``rule``, ``oracle``, ``cooldown``) run once, since every seed would give
   the same score;
3. print, per agent, the interquartile mean over seeds of profit per customer with its
   stratified-bootstrap 95 % CI, each seed's mean ± 95 % CI across customers, and the
   probability that a PPO seed beats a seed of the best bandit, of the best baseline and of the
   myopic oracle (:mod:`rec_env.agents.evaluation.multiseed`).

Evaluations are cached in ``OUT/WORLD/evaluations/`` (keyed by agent, seed, cohort and, for
trained agents, the weights' hash), so a resumed run does not redo them.

Run from the repository root (the strategy world on a quiet 2-core machine: ~3 min of PPO
training per seed, ~15 s per bandit training, ~10 min of evaluation)::

    python benchmarks/multiseed.py                             # 5 seeds, 50,000 customers
    python benchmarks/multiseed.py --seeds 0 1 --customers 5000 --algorithms ppo linucb oracle
    python benchmarks/multiseed.py --json multiseed.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.agents.evaluation.multiseed import (
    aggregate_iqm,
    probability_of_improvement,
)
from rec_env.settings import EnvSettings

RL_ALGORITHMS = ("ppo",)
BANDITS = ("linucb", "lin_ts", "thompson", "ucb1", "egreedy")
NO_ACTION = "no_action"
HEADLINE_CUSTOMERS = 50_000  # the README headline table's cohort: 50,000 customers, seed 1
HEADLINE_SEED = 1
ORACLE = "oracle"
TRAINED = "trained_"


@dataclass(frozen=True)
class World:
    """A simulated world and the agents compared on it.

    Attributes:
        name: Short name (``--world``), also the sub-directory of its runs.
        settings: The world's settings.
        rl: RL algorithms trained once per seed.
        bandits: Bandits that learn online on the evaluation cohort from scratch, once per seed.
        trained_bandits: Bandits also trained once per seed (``recenv train NAME``, their
            default budget) and evaluated frozen, as in the README's headline; their agent
            name is ``trained_NAME``.
        seeded_baselines: Baselines with a seed of their own: run once per seed.
        fixed_baselines: Baselines with no randomness of their own: run once.
        customers: Default size of the evaluation cohort.
        seedless: Bandits whose decisions do not depend on their seed (LinUCB breaks ties by
            index): run once, like the fixed baselines, but still compared as bandits.
    """

    name: str
    settings: EnvSettings
    rl: tuple[str, ...]
    bandits: tuple[str, ...]
    trained_bandits: tuple[str, ...]
    seeded_baselines: tuple[str, ...]
    fixed_baselines: tuple[str, ...]
    customers: int = HEADLINE_CUSTOMERS
    seedless: tuple[str, ...] = ()

    @property
    def agents(self) -> tuple[str, ...]:
        """Every agent, in table order."""
        trained = tuple(TRAINED + name for name in self.trained_bandits)
        return self.rl + trained + self.bandits + self.seeded_baselines + self.fixed_baselines

    @property
    def all_bandits(self) -> tuple[str, ...]:
        """Every bandit agent: trained (frozen) and online."""
        return tuple(TRAINED + name for name in self.trained_bandits) + self.bandits

    def trains(self, agent: str) -> bool:
        """Whether ``agent`` is trained once per seed before it is evaluated (frozen)."""
        if agent.startswith(TRAINED):
            return agent.removeprefix(TRAINED) in self.trained_bandits
        return agent in self.rl


def strategy_world() -> World:
    """Today's world: offers × channels on the default population, 52 cycles."""
    return World(
        name="strategy",
        settings=EnvSettings(),
        rl=RL_ALGORITHMS,
        bandits=BANDITS,
        trained_bandits=BANDITS,
        seeded_baselines=("random", "best_fixed"),
        fixed_baselines=(NO_ACTION, "rule", ORACLE, "cooldown"),
    )


def item_world() -> World:
    """One product per message (``rec_env/ItemRecommendation-v0``), 200 products, 52 cycles.

    The bandits are the ones with item features (hybrid LinUCB and linear Thompson sampling),
    learning online on the cohort (52 cycles of 5,000 customers: half a ``recenv train``
    budget of customer-steps).
    """
    return World(
        name="item",
        settings=EnvSettings(world="item"),
        rl=RL_ALGORITHMS,
        bandits=("hybrid_linucb", "hybrid_lin_ts"),
        trained_bandits=(),
        seeded_baselines=("random",),
        fixed_baselines=(
            NO_ACTION,
            "popular",
            "popular_category",
            "item_similarity",
            ORACLE,
            "diverse_oracle",
            "cooldown",
        ),
        customers=5_000,
        seedless=("hybrid_linucb",),
    )


WORLDS: dict[str, Callable[[], World]] = {"strategy": strategy_world, "item": item_world}


@dataclass(frozen=True)
class RunScore:
    """One agent's result on the cohort for one seed (``seed`` is None for seedless agents)."""

    agent: str
    seed: int | None
    profit: float
    profit_ci95: float
    contacts: float
    unsubscribe_rate: float
    churn_rate: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


# --- 1. training ------------------------------------------------------------------------------


def ensure_trained(world: World, algorithm: str, seed: int, out: Path) -> Path:
    """The run directory of ``algorithm`` for ``seed``, trained now if it does not exist yet."""
    from rec_env.agents.training import train

    run_dir = out / world.name / f"{algorithm}-seed{seed}"
    if (run_dir / "run.json").is_file():
        print(f"[train] {run_dir} exists: skipped", flush=True)
        return run_dir
    partial = run_dir.parent / f".{run_dir.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # an interrupted earlier attempt
    partial.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"[train] {algorithm} seed {seed} → {run_dir}", flush=True)
    train(algorithm, world.settings, seed=seed, out=partial)
    partial.rename(run_dir)
    print(f"[train] {algorithm} seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    return run_dir


# --- 2. evaluation ----------------------------------------------------------------------------


def _build_policy(world: World, agent: str, seed: int | None, out: Path) -> tuple[Any, bool, str]:
    """The policy to evaluate, whether it learns online, and a cache key for its weights."""
    from rec_env.agents.baselines import FixedActionPolicy
    from rec_env.agents.registry import action_kwargs, make_bandit, make_baseline
    from rec_env.agents.runs import load_run

    model = world.settings.build_model()
    if world.trains(agent):
        policy, info = load_run(out / world.name / f"{agent.removeprefix(TRAINED)}-seed{seed}")
        return policy, False, info.weights_sha256
    if agent in world.bandits:
        return make_bandit(agent, model, int(seed or 0)), True, ""
    if agent == NO_ACTION and world.settings.world == "strategy":
        table = model.actions
        policy = FixedActionPolicy(
            table.n_actions, table.no_action, table.no_action, **action_kwargs(table)
        )
        return policy, False, ""
    return make_baseline(agent, model, int(seed or 0)), False, ""


def evaluate_run(
    world: World, agent: str, seed: int | None, out: Path, n_customers: int, eval_seed: int
) -> RunScore:
    """Score one agent (one seed) on the evaluation cohort, from the cache when it is there."""
    from rec_env.agents.evaluation.evaluate import evaluate

    policy, learn, weights = _build_policy(world, agent, seed, out)
    key = {
        "agent": agent,
        "seed": seed,
        "customers": n_customers,
        "eval_seed": eval_seed,
        "settings": world.settings.to_dict(),
        "weights": weights,
    }
    cache = out / world.name / "evaluations" / f"{agent}-seed{seed}-{n_customers}-{eval_seed}.json"
    if cache.is_file():
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return RunScore(**cached["score"])
    start = time.perf_counter()
    result = evaluate(
        policy, world.settings, n_customers, eval_seed, learn=learn, compare_to_oracle=False
    )
    kpis = result.kpis
    score = RunScore(
        agent=agent,
        seed=seed,
        profit=kpis["profit_per_customer"].mean,
        profit_ci95=kpis["profit_per_customer"].ci,
        contacts=kpis["contacts_per_customer"].mean,
        unsubscribe_rate=kpis["unsubscribe_rate"].mean,
        churn_rate=kpis["churn_rate"].mean,
        seconds=round(time.perf_counter() - start, 1),
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "score": score.to_dict()}), encoding="utf-8")
    return score


def run_world(
    world: World,
    agents: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    n_customers: int,
    eval_seed: int,
) -> list[RunScore]:
    """Train what is missing, then evaluate every agent on the cohort (step 1 and 2)."""
    for agent in (a for a in agents if world.trains(a)):
        for seed in seeds:
            ensure_trained(world, agent.removeprefix(TRAINED), seed, out)
    scores: list[RunScore] = []
    for agent in agents:
        once = agent in world.fixed_baselines or agent in world.seedless
        agent_seeds: Sequence[int | None] = [None] if once else seeds
        for seed in agent_seeds:
            score = evaluate_run(world, agent, seed, out, n_customers, eval_seed)
            print(
                f"[eval] {agent} seed {seed}: {score.profit:.2f} ± {score.profit_ci95:.2f} "
                f"({score.seconds:.0f} s)",
                flush=True,
            )
            scores.append(score)
    return scores


# --- 3. the analysis and its tables -----------------------------------------------------------


def scores_by_agent(scores: Sequence[RunScore]) -> dict[str, np.ndarray]:
    """Agent → its profit per customer, one per seed (in the order given)."""
    grouped: dict[str, list[float]] = {}
    for score in scores:
        grouped.setdefault(score.agent, []).append(score.profit)
    return {agent: np.array(values) for agent, values in grouped.items()}


def _best(estimates: dict[str, Any], candidates: Sequence[str]) -> str | None:
    present = [c for c in candidates if c in estimates]
    return max(present, key=lambda c: estimates[c].iqm) if present else None


def analyse(world: World, scores: Sequence[RunScore], seed: int = 0) -> dict[str, Any]:
    """IQM with stratified-bootstrap CIs per agent, and P(RL > Y) for the reference agents.

    The references are the best bandit and the best baseline by IQM, and the myopic oracle.
    """
    grouped = scores_by_agent(scores)
    estimates = aggregate_iqm(grouped, seed=seed)
    references = {
        "best bandit": _best(estimates, world.all_bandits),
        "best baseline": _best(estimates, world.seeded_baselines + world.fixed_baselines),
        "myopic oracle": ORACLE if ORACLE in estimates else None,
    }
    roles: dict[str, list[str]] = {}  # one comparison per agent, e.g. "best baseline, oracle"
    for role, other in references.items():
        if other is not None:
            roles.setdefault(other, []).append(role)
    improvements = [
        {
            "reference": ", ".join(names),
            **probability_of_improvement(grouped, rl, other, seed=seed).to_dict(),
        }
        for rl in world.rl
        if rl in grouped
        for other, names in roles.items()
    ]
    return {
        "world": world.name,
        "settings": world.settings.to_dict(),
        "estimates": {name: e.to_dict() for name, e in estimates.items()},
        "improvements": improvements,
        "runs": [s.to_dict() for s in scores],
    }


def _label(agent: str, online_bandits: Sequence[str]) -> str:
    if agent.startswith(TRAINED):
        return f"{agent.removeprefix(TRAINED)} (trained, frozen)"
    return f"{agent} (online)" if agent in online_bandits else agent


def format_tables(analysis: dict[str, Any], bandits: Sequence[str] = BANDITS) -> str:
    """Markdown tables: IQM over seeds, each seed's mean ± CI, and P(improvement)."""
    estimates = analysis["estimates"]
    order = sorted(estimates, key=lambda a: -estimates[a]["iqm"])
    per_seed: dict[str, dict[Any, dict[str, float]]] = {}
    for run in analysis["runs"]:
        per_seed.setdefault(run["agent"], {})[run["seed"]] = run
    seeds = sorted({r["seed"] for r in analysis["runs"] if r["seed"] is not None})
    head = "| policy | runs | IQM profit $ (95% CI) | " + " | ".join(f"seed {s}" for s in seeds)
    lines = [head + " |", "|---|---:|---:|" + "---:|" * len(seeds)]
    for agent in order:
        e = estimates[agent]
        runs = per_seed[agent]
        cells = []
        for s in seeds:
            run = runs.get(s, runs.get(None))
            cells.append(f"{run['profit']:.2f} ± {run['profit_ci95']:.2f}" if run else "")
        if None in runs:  # no randomness of its own: its one run is shown once
            cells = cells[:1] + ["—"] * (len(cells) - 1)
        iqm = f"{e['iqm']:.2f} [{e['low']:.2f}, {e['high']:.2f}]"
        lines.append(
            f"| {_label(agent, bandits)} | {e['n_runs']} | {iqm} | " + " | ".join(cells) + " |"
        )
    lines.append(
        "\nIQM: interquartile mean over seeds with its stratified-bootstrap 95 % CI; seed "
        "columns: mean ± 95 % CI across customers. 1 run: no randomness of its own, evaluated "
        "once."
    )
    lines += ["", "| probability of improvement | P(X > Y) | 95% CI |", "|---|---:|---:|"]
    for imp in analysis["improvements"]:
        y = _label(imp["y"], bandits)
        lines.append(
            f"| {imp['x']} over {y} ({imp['reference']}) | {imp['probability']:.2f} "
            f"| [{imp['low']:.2f}, {imp['high']:.2f}] |"
        )
    return "\n".join(lines)


# --- command line -----------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", choices=sorted(WORLDS), default="strategy")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--customers", type=int, help="evaluation cohort (default: the world's; strategy 50,000)"
    )
    parser.add_argument(
        "--eval-seed", type=int, default=HEADLINE_SEED, help="seed of the evaluation cohort"
    )
    parser.add_argument("--algorithms", nargs="+", help="agents to include (default: all)")
    parser.add_argument("--out", type=Path, default=Path("runs/multiseed"))
    parser.add_argument("--json", type=Path, help="write the analysis as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = _parse(argv)
    world = WORLDS[args.world]()
    agents = list(args.algorithms or world.agents)
    args.customers = world.customers if args.customers is None else args.customers
    unknown = sorted(set(agents) - set(world.agents))
    if unknown:
        print(f"error: unknown agent(s) {', '.join(unknown)}; known: {', '.join(world.agents)}")
        return 2
    if args.customers < 1 or not args.seeds:
        print("error: --customers must be positive and --seeds non-empty")
        return 2
    start = time.perf_counter()
    scores = run_world(world, agents, args.seeds, args.out, args.customers, args.eval_seed)
    analysis = analyse(world, scores)
    analysis.update(customers=args.customers, eval_seed=args.eval_seed, seeds=args.seeds)
    print(
        f"\n{world.name} world: profit per customer over {world.settings.horizon} cycles, "
        f"{args.customers:,} customers (cohort seed {args.eval_seed}), training seeds "
        f"{', '.join(map(str, args.seeds))}; {time.perf_counter() - start:.0f} s\n"
    )
    print(format_tables(analysis, world.bandits))
    if args.json:
        args.json.write_text(json.dumps(analysis, indent=2), encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
