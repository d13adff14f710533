"""Issue 14: how fast ``recenv score`` turns a customer base into a campaign list.

Trains a small PPO (the network size is the default's: 16-64-64-16), draws ``N`` customers of
the default population and measures, in one process:

* **in process, with rules:** :meth:`rec_env.serve.scoring.Scorer.score` on the ``(N, 16)``
  array with caps, eligibility, a budget, a no-action share and a 5 % holdout, next to two
  floors: the policy's probabilities alone in numpy (what the service computes per request), and
  the compiled network's logits alone (:mod:`rec_env.agents.sb3.mlp_kernel`, which the scorer
  uses);
* **end to end, Parquet to Parquet:** reading the customers file, scoring and writing the list
  (what ``recenv score --no-log`` does after start-up), next to its floor, reading and writing
  the same file with pyarrow;
* **the decision log:** adding the ``N`` decisions to a SQLite decision log.

Start-up (imports, loading the run) is reported apart: it does not grow with ``N``. About a
minute::

    OMP_NUM_THREADS=2 python benchmarks/score.py [--customers 1000000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RULES = """
caps: [{max_messages: 2}, {min_days_between: 14}]
eligibility:
  - name: no_discount_after_purchase
    offers: [discount]
    when: [{feature: last_purchase_days, op: "<", value: 7}]
budgets: [{name: discounts, offers: [discount], max_messages: 50000}]
min_no_action_share: 0.1
"""


def best_of_each(repeats: int, *functions) -> list[float]:
    """The fastest of ``repeats`` timed calls of each function, taken in turns (seconds).

    Taking turns exposes every function to the same load on a shared machine, so that their
    ratios hold even when the machine's speed drifts.
    """
    best = [float("inf")] * len(functions)
    for _ in range(repeats):
        for i, function in enumerate(functions):
            started = time.perf_counter()
            function()
            best[i] = min(best[i], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.customers

    started = time.perf_counter()
    from rec_env.agents.explain import population_background
    from rec_env.agents.runs import load_run
    from rec_env.agents.training import train
    from rec_env.cli.score import _log, read_customers, write_scored
    from rec_env.features import FEATURE_NAMES
    from rec_env.rules import load_rules
    from rec_env.serve.scoring import Scorer

    imports = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        train("ppo", steps=4_096, out=root / "run", eval_customers=100, final_customers=100,
              progress=False)  # fmt: skip
        started = time.perf_counter()
        policy, info = load_run(root / "run")
        (root / "rules.yaml").write_text(RULES)
        rules = load_rules(root / "rules.yaml")
        scorer = Scorer.for_run(policy, info, rules=rules, holdout=0.05)
        loading = time.perf_counter() - started

        base = population_background(min(n, 100_000), "default", "strategy", seed=0)
        features = np.tile(base.astype(np.float64), (int(np.ceil(n / base.shape[0])), 1))[:n]
        ids = np.array([f"c{i:08d}" for i in range(n)], dtype=object)
        path = root / "customers.parquet"
        columns = {"customer_id": pa.array(ids, type=pa.string())}
        columns.update({name: features[:, j] for j, name in enumerate(FEATURE_NAMES)})
        pq.write_table(pa.table(columns), path)

        masks = np.ones((n, scorer.table.n_actions), dtype=bool)
        network, layers = scorer._compiled or (None, None)
        scoring, floor, compiled = best_of_each(
            args.repeats,
            lambda: scorer.score(features, ids),
            lambda: scorer.probability_fn(features, masks),
            (lambda: layers(network.scaling(features))) if layers is not None else lambda: None,
        )
        compiled = compiled if layers is not None else float("nan")

        def end_to_end() -> None:
            read_ids, read_features = read_customers(path)
            scored = scorer.score(read_features, read_ids, checked=True)
            write_scored(scored, root / "decisions.parquet", ".parquet")

        def io_floor() -> None:
            pq.write_table(pq.read_table(path), root / "copy.parquet")

        e2e, io = best_of_each(args.repeats, end_to_end, io_floor)
        scored = scorer.score(features, ids)
        started = time.perf_counter()
        _log(root / "decisions.db", info, features, scorer, scored)
        logging = time.perf_counter() - started

    print(f"{n:,} customers; start-up: imports {imports:.1f} s, run and rules {loading:.1f} s")
    print(f"in process, rules and 5 % holdout: {n / scoring:>12,.0f} customers/s "
          f"({scoring:.2f} s)")  # fmt: skip
    print(f"  floor, the policy's probabilities alone (numpy): {n / floor:>12,.0f}/s; "
          f"ratio {floor / scoring:.2f}x")  # fmt: skip
    print(f"  floor, the compiled network's logits alone:    {n / compiled:>12,.0f}/s; "
          f"ratio {compiled / scoring:.2f}x")  # fmt: skip
    print(f"  load average {os.getloadavg()[0]:.2f}")
    print(f"end to end, Parquet to Parquet:     {n / e2e:>12,.0f} customers/s ({e2e:.2f} s)")
    print(f"  floor, pyarrow read and write:    {n / io:>12,.0f}/s; ratio {io / e2e:.2f}x")
    print(f"decision log (SQLite):              {n / logging:>12,.0f} decisions/s "
          f"({logging:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
