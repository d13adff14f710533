"""What explaining an item run costs, and which grouping its customers in operation get.

``/v1/explain`` and ``recenv explain`` explain an item or slate decision with exact Shapley
values over the finest grouping of the features that keeps the players within
:data:`~rec_env.agents.explain.items.MAX_PLAYERS` (one per feature, per category's history, or
per item feature kind). This script draws customers in operation of the run's world (up to 52
cycles), explains each against the serving background (16 customers in operation, seed 0), and
prints how many got each grouping, the median and slowest seconds per explanation, and how many
had nothing to explain (no consent, so doing nothing is the only action).

Run from the repository root::

    python benchmarks/item_explain.py RUN_DIR [--customers 60]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from rec_env.agents.explain.background import DEFAULT_BACKGROUND_SIZE, operating_background
from rec_env.agents.explain.items import ExplanationTooCostlyError, ItemExplainer
from rec_env.agents.runs import load_run


def main() -> None:
    """Explain customers in operation one by one and print the groupings and their cost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a PPO run of the item or slate env")
    parser.add_argument("--customers", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7, help="seed of the explained customers")
    args = parser.parse_args()
    policy, info = load_run(args.run)
    world = info.settings.build_model()
    operating = info.settings.replace(world="item").build_model()
    background = operating_background(DEFAULT_BACKGROUND_SIZE, model=operating, seed=0)
    customers = operating_background(args.customers, model=operating, seed=args.seed, cycles=52)
    explainer = ItemExplainer(policy, world, background)
    explainer.warm_up()
    levels: Counter[str] = Counter()
    seconds: defaultdict[str, list[float]] = defaultdict(list)
    too_costly = nothing = 0
    for x in customers:
        start = time.perf_counter()
        try:
            explained = explainer.explain(x[None])
        except ExplanationTooCostlyError:
            too_costly += 1
            continue
        except ValueError:  # a single allowed action: nothing to contrast
            nothing += 1
            continue
        level = explained.groups.level
        levels[level] += 1
        seconds[level].append(time.perf_counter() - start)
    print(f"{args.customers} customers in operation, {background.shape[0]} background customers")
    for level in ("feature", "category", "kind"):
        if levels[level]:
            times = np.asarray(seconds[level])
            print(f"  {level:<8} {levels[level]:>4} customers, median {np.median(times):.2f} s, "
                  f"slowest {times.max():.2f} s")  # fmt: skip
    print(f"  too costly {too_costly}, nothing to explain {nothing}")


if __name__ == "__main__":
    main()
