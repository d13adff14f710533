"""Seconds to load a product table of 10,000 products from CSV, Parquet and YAML.

The table is :func:`rec_env.products.synthetic_products` (10,000 products, 40 categories,
16 topics, seed 1), written once with :func:`rec_env.products.save_products`. Each load is the
whole path a user takes: read the file, validate every row with pydantic, check the rows against
each other and compile the arrays. Imports are warmed up first (one load of each format), and
the best of ``--rounds`` loads is kept. The shipped 200-product default table is timed too.

Run from the repository root::

    python benchmarks/products_load.py
    python benchmarks/products_load.py --n-products 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rec_env.products import load_products, save_products, synthetic_products

FORMATS = ("csv", "parquet", "yaml")


def best_load_seconds(path: Path | str, rounds: int) -> float:
    """Best wall time of ``rounds`` calls of :func:`load_products` on ``path``."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        load_products(path)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-products", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    table = synthetic_products(args.n_products, n_categories=40, n_topics=16, seed=1)
    with tempfile.TemporaryDirectory() as directory:
        for suffix in FORMATS:
            path = save_products(table, Path(directory) / f"products.{suffix}")
            load_products(path)  # warm-up: imports and caches
            seconds = best_load_seconds(path, args.rounds)
            size = path.stat().st_size / 1e6
            print(
                f"{suffix:8s} {args.n_products:6d} products  {size:6.2f} MB  "
                f"{seconds * 1e3:8.1f} ms  {args.n_products / seconds:10,.0f} products/s"
            )
    seconds = best_load_seconds("default", args.rounds)
    print(f"default  {load_products('default').n_products:6d} products  {seconds * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
