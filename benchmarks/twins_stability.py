"""How much CDNOW's holdout forecast moves with the row order and the seed (issue 13: < 1 %).

Fits :func:`rec_env.fitting.twins.fit_twins` on CDNOW up to 1997-09-30, once as shipped and
once with the log's rows shuffled, and simulates the twins 39 weeks forward with five seeds.
Prints the model's total and its largest per-customer change under shuffling, and the twins'
totals by seed with their range. About 2 minutes::

    OMP_NUM_THREADS=1 python benchmarks/twins_stability.py
"""

from __future__ import annotations

import numpy as np

from rec_env.datasets.cdnow import load_cdnow
from rec_env.fitting.purchase_log import PurchaseLog
from rec_env.fitting.twins import fit_twins, simulate_twins

AS_OF, WEEKS, DRAWS = "1997-09-30", 39, 10


def main() -> None:
    log = load_cdnow()
    twins = fit_twins(log, AS_OF, population="cdnow")
    order = np.random.default_rng(7).permutation(log.customer.size)
    shuffled_log = PurchaseLog("shuffled", log.customer[order], log.day[order], log.amount[order])
    shuffled = fit_twins(shuffled_log, AS_OF, population="cdnow")
    a = twins.lifetime.expected_purchases(WEEKS)
    b = shuffled.lifetime.expected_purchases(WEEKS)
    change = b.sum() / a.sum() - 1
    print(f"model total {a.sum():,.2f}; rows shuffled {b.sum():,.2f} ({change:+.1e}); "
          f"largest change for a customer {np.abs(a - b).max():.1e}")  # fmt: skip
    totals = [simulate_twins(twins, WEEKS, seed=s, draws=DRAWS).sum() / DRAWS for s in range(5)]
    spread = (max(totals) - min(totals)) / np.mean(totals)
    print(f"twins totals, seeds 0-4: {', '.join(f'{t:,.0f}' for t in totals)} "
          f"(range {spread:.2%})")  # fmt: skip
    moved = simulate_twins(shuffled, WEEKS, seed=0, draws=DRAWS).sum() / DRAWS / totals[0] - 1
    print(f"twins total, rows shuffled, seed 0: {moved:+.2%}")


if __name__ == "__main__":
    main()
