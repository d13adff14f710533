"""Issue 13: do twins drawn one at a time by the envs buy what their model expects?

The envs, cohorts and ``EnvSettings(customers=...)`` draw each new customer as the twin of a
random real one, without :func:`~rec_env.fitting.twins.simulate_twins`' per-path refinement.
This fits CDNOW's twins up to 1997-09-30 (as ``recenv profiles twins cdnow`` does), and counts
the purchases of 50,000 twins drawn by a cohort over ``WEEKS`` with no message, scaled to the
customer base, against the model's expectation: uncalibrated, and calibrated per customer
(:meth:`~rec_env.fitting.twins.Twins.calibrated`, the file ``recenv profiles twins`` writes).
About 1 minute::

    OMP_NUM_THREADS=1 python benchmarks/twins_in_env.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from rec_env.datasets.cdnow import load_cdnow
from rec_env.fitting.twins import Twins, fit_twins
from rec_env.rollout import Cohort
from rec_env.settings import EnvSettings

AS_OF, WEEKS, COHORT = "1997-09-30", 52, 50_000


def purchases(twins: Twins, directory: Path, name: str) -> float:
    """Purchases of ``COHORT`` env-drawn twins over ``WEEKS``, scaled to ``twins.n``."""
    path = twins.save(directory / f"{name}.npz")
    model = EnvSettings(profile=twins.population, customers=str(path)).build_model()
    cohort = Cohort(model, COHORT, seed=0)
    total = 0.0
    for _ in range(WEEKS):
        out = model.step(cohort.batch, np.full(COHORT, model.actions.no_action), cohort.rng)
        total += float((out.orders * cohort.alive).sum())
        cohort.alive &= ~out.terminated
    return total / COHORT * twins.n


def main() -> None:
    twins = fit_twins(load_cdnow(), AS_OF, population="cdnow")
    expected = twins.lifetime.expected_purchases(float(WEEKS)).sum()
    print(f"{twins.n:,} customers; model: {expected:,.0f} weekly occasions over {WEEKS} weeks")
    with tempfile.TemporaryDirectory() as directory:
        for name, version in (("uncalibrated", twins), ("calibrated", twins.calibrated(WEEKS))):
            got = purchases(version, Path(directory), name)
            print(f"  env twins, {name}: {got:,.0f} ({got / expected - 1:+.1%})")


if __name__ == "__main__":
    main()
