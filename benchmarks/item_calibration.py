"""The item world against the Hillstrom e-mail campaign: two weeks after one product e-mail.

Hillstrom's randomised campaign (64,000 customers, ``../shared/data/hillstrom.csv.gz``) sent
one merchandise e-mail (women's or men's) or none and measured conversion and spend over the
next two weeks. This script does the same in the item world: 200,000 simulated customers of
the default population, one e-mail on cycle 0 carrying (a) no product (no message), (b) a random
product, (c) the customer's best product by true utility (an oracle's targeting), then two
cycles. The reference run is the no-message arm on the same customers and random numbers.

Run from the repository root::

    python benchmarks/item_calibration.py [--customers 200000] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

from rec_env.features import CHANNELS
from rec_env.settings import EnvSettings

HILLSTROM = {
    "no e-mail": (0.0057, 0.65),
    "e-mail (womens)": (0.0088, 1.08),
    "e-mail (mens)": (0.0125, 1.42),
}
"""Hillstrom's two-week conversion and spend per customer (USD), from the data set."""


def two_weeks(arm: str, customers: int, seed: int) -> tuple[float, float, float]:
    """Conversion, spend per customer and clicks per customer two cycles after one message."""
    model = EnvSettings(world="item").build_model()
    rng = np.random.default_rng(seed)
    batch = model.new_batch(customers)
    model.draw_customers(batch, np.arange(customers), rng)
    if arm == "none":
        actions = np.zeros(customers, dtype=np.intp)
    else:
        if arm == "random":
            products = np.random.default_rng(seed + 1).integers(
                0, model.products.n_products, customers
            )
        else:
            products = model.utilities(batch).argmax(axis=1)
        n_channels = len(CHANNELS)
        actions = (1 + products * n_channels + CHANNELS.index("email")).astype(np.intp)
    bought, spend, clicks = np.zeros(customers), np.zeros(customers), np.zeros(customers)
    for cycle in range(2):
        outcome = model.step(batch, actions if cycle == 0 else np.zeros_like(actions), rng)
        bought = np.maximum(bought, outcome.purchased)
        spend += outcome.revenue
        clicks += outcome.clicked
    return float(bought.mean()), float(spend.mean()), float(clicks.mean())


def main() -> None:
    """Print the calibration table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| two weeks | conversion | spend per customer | clicks per customer |")
    print("|---|---:|---:|---:|")
    for name, (conversion, spend) in HILLSTROM.items():
        print(f"| Hillstrom, {name} | {conversion:.2%} | ${spend:.2f} | |")
    base = None
    for arm, label in (
        ("none", "no message"),
        ("random", "e-mail, random product"),
        ("best", "e-mail, best product"),
    ):
        conversion, spend, clicks = two_weeks(arm, args.customers, args.seed)
        base = base or (conversion, spend)
        lift = f" (+{100 * (conversion - base[0]):.2f} pp)" if arm != "none" else ""
        print(
            f"| recenv item world, {label} | {conversion:.2%}{lift} | ${spend:.2f} | {clicks:.4f} |"
        )


if __name__ == "__main__":
    main()
