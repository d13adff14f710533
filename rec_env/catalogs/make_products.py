"""Generate the shipped default product table, ``products/default.csv`` (200 products).

Run ``python -m rec_env.catalogs.make_products`` to rewrite the file; a test regenerates it and
compares it byte for byte, so the CSV and this script cannot drift apart.

## What is in it
Twelve categories of a general online retailer, 14–18 products each. Every category lists a few
product kinds with a typical US list price (a round figure of the kind seen on large US retail
sites, not a survey) and a tier (``Essential`` … ``Deluxe``) that scales the price. Topics are
ten shopping themes; each category has a theme profile (:data:`CATEGORIES`), and a product's
weights are a Dirichlet draw around it, rounded to integer percentages.

## Where the margins come from
``margin`` is the gross margin as a fraction of the list price. Each category's mean is set from
published gross-margin-to-sales ratios, rounded to the nearest 5 points, then spread per
product. They are approximate, meant to make the economics plausible, not exact:

* US Census Bureau, Annual Retail Trade Survey (ARTS), "gross margin as a percent of sales" by
  kind of business: all retail about 32 % and furniture stores 36–38 % in the 1990s (Statistical
  Abstract of the United States, table 1277); clothing stores 44–45 % and furniture and home
  furnishings stores 44 % in 2000 (as quoted by Women's Wear Daily, "Margin Calls").
* Jewellers: 47–52 % (Jewelers Financial Benchmarking Study 2004, quoted by INSTORE, 2006).
* Grocery: about 29 % (a US supermarket chain's 2014 quarterly SEC filing); consumer
  electronics: low 20s % (the annual reports of the largest US electronics chain).
* Beauty, sports, toys, books and pet supplies: our assumptions between these anchors.

## How each product's values are drawn (seed 2024)
* ``price = round(typical · tier · exp(N(0, 0.12))) − 0.01`` USD (at least 0.99);
* ``margin = clip(mean + 0.06 · (tier − 1) + N(0, 0.03), low, high)``, rounded to 0.01;
* ``popularity``: a relative unit-sales index, ``1000 / rank`` over a random ranking (Zipf);
* 20 products are ``new``; 20 have a limited ``stock`` of 0–150 units, the rest unlimited.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CATEGORIES", "SEED", "TIERS", "TOPICS", "CategoryEconomics", "default_products_csv"]

SEED = 2024
TOPICS = (
    "style",
    "beauty",
    "tech",
    "home",
    "outdoors",
    "family",
    "food",
    "pets",
    "culture",
    "fitness",
)
TIERS = {
    "Essential": 0.80,
    "Lite": 0.75,
    "Everyday": 0.85,
    "Compact": 0.90,
    "Classic": 1.00,
    "Eco": 1.10,
    "Signature": 1.20,
    "Premium": 1.35,
    "Pro": 1.40,
    "Deluxe": 1.50,
}


@dataclass(frozen=True)
class CategoryEconomics:
    """One category: its size, margin band, theme profile and product kinds.

    Attributes:
        name: Category name.
        n_products: Number of products in the default table.
        margin: Mean gross margin, fraction of list price.
        margin_range: Band the per-product margins are clipped to.
        themes: Theme weights (names from :data:`TOPICS`), the centre of the topic draws.
        kinds: ``(kind, typical list price in USD)`` pairs.
    """

    name: str
    n_products: int
    margin: float
    margin_range: tuple[float, float]
    themes: dict[str, float]
    kinds: tuple[tuple[str, float], ...]


CATEGORIES = (
    CategoryEconomics(
        "apparel", 18, 0.45, (0.36, 0.56), {"style": 6, "family": 2, "outdoors": 1, "fitness": 1},
        (("T-shirt", 19), ("Hoodie", 49), ("Jeans", 59), ("Chinos", 54), ("Dress", 69),
         ("Rain jacket", 89), ("Merino sweater", 79), ("Leggings", 39), ("Polo shirt", 34)),
    ),
    CategoryEconomics(
        "footwear", 16, 0.45, (0.38, 0.52), {"style": 5, "fitness": 3, "outdoors": 2},
        (("Running shoes", 110), ("Leather sneakers", 85), ("Hiking boots", 140),
         ("Sandals", 35), ("Chelsea boots", 150), ("Slippers", 29), ("Loafers", 95)),
    ),
    CategoryEconomics(
        "jewelry_accessories", 16, 0.50, (0.42, 0.62), {"style": 8, "beauty": 2},
        (("Silver necklace", 89), ("Stud earrings", 49), ("Leather belt", 39), ("Watch", 179),
         ("Sunglasses", 59), ("Tote bag", 79), ("Wallet", 45), ("Scarf", 29)),
    ),
    CategoryEconomics(
        "beauty", 18, 0.45, (0.38, 0.55), {"beauty": 8, "style": 2},
        (("Moisturiser", 28), ("Face serum", 42), ("Shampoo", 14), ("Lipstick", 19),
         ("Eau de parfum", 79), ("Sunscreen", 16), ("Sheet mask set", 22), ("Hair dryer", 89)),
    ),
    CategoryEconomics(
        "electronics", 18, 0.20, (0.12, 0.30), {"tech": 8, "culture": 1, "home": 1},
        (("Wireless earbuds", 129), ("Bluetooth speaker", 79), ("Smartwatch", 249),
         ("4K TV", 549), ("Laptop", 899), ("Tablet", 329), ("Phone charger", 25),
         ("Headphones", 199), ("E-reader", 139)),
    ),
    CategoryEconomics(
        "home_kitchen", 18, 0.40, (0.32, 0.48), {"home": 6, "food": 4},
        (("Chef's knife", 59), ("Nonstick pan", 39), ("Coffee maker", 89), ("Blender", 69),
         ("Bath towel set", 45), ("Duvet cover", 79), ("Storage jars", 24), ("Air fryer", 99)),
    ),
    CategoryEconomics(
        "furniture", 14, 0.45, (0.38, 0.52), {"home": 9, "family": 1},
        (("Sofa", 999), ("Armchair", 449), ("Desk", 299), ("Office chair", 249),
         ("Bookshelf", 149), ("Dining table", 599), ("Bed frame", 499), ("Side table", 89)),
    ),
    CategoryEconomics(
        "sports_outdoors", 18, 0.35, (0.28, 0.42), {"outdoors": 5, "fitness": 5},
        (("Yoga mat", 35), ("Dumbbell set", 89), ("Tent", 199), ("Sleeping bag", 119),
         ("Backpack", 79), ("Bike helmet", 59), ("Water bottle", 25), ("Camping stove", 69)),
    ),
    CategoryEconomics(
        "toys_games", 16, 0.35, (0.28, 0.42), {"family": 7, "culture": 2, "tech": 1},
        (("Building set", 49), ("Board game", 34), ("Jigsaw puzzle", 19), ("Plush toy", 17),
         ("Remote-control car", 59), ("Doll house", 89), ("Card game", 12), ("Science kit", 39)),
    ),
    CategoryEconomics(
        "books_media", 16, 0.30, (0.22, 0.38), {"culture": 8, "family": 1, "food": 1},
        (("Hardcover novel", 27), ("Paperback", 16), ("Cookbook", 32), ("Picture book", 12),
         ("Vinyl record", 29), ("Graphic novel", 22), ("Travel guide", 24), ("Box set", 59)),
    ),
    CategoryEconomics(
        "grocery_gourmet", 16, 0.30, (0.20, 0.36), {"food": 9, "home": 1},
        (("Coffee beans", 16), ("Olive oil", 18), ("Tea sampler", 22), ("Dark chocolate", 6),
         ("Spice set", 29), ("Granola", 8), ("Hot sauce", 9), ("Fresh pasta", 5)),
    ),
    CategoryEconomics(
        "pet_supplies", 16, 0.30, (0.24, 0.38), {"pets": 9, "outdoors": 1},
        (("Dog food", 54), ("Cat litter", 22), ("Dog bed", 69), ("Cat tree", 89),
         ("Leash", 19), ("Chew toys", 14), ("Aquarium kit", 79), ("Pet shampoo", 12)),
    ),
)  # fmt: skip

_COLUMNS = ("id", "name", "category", "price", "margin", "new", "stock", "popularity")


def _percentages(weights: np.ndarray) -> list[int]:
    """Integer percentages summing to 100, by largest remainder."""
    raw = 100.0 * weights / weights.sum()
    floor = np.floor(raw).astype(int)
    order = np.argsort(-(raw - floor), kind="stable")
    floor[order[: 100 - floor.sum()]] += 1
    return floor.tolist()


def _category_rows(category: CategoryEconomics, rng: np.random.Generator) -> list[list[object]]:
    """The rows of one category, without id, popularity, new and stock."""
    profile = np.array([category.themes.get(topic, 0.0) for topic in TOPICS])
    tiers = list(TIERS)
    tier_order = rng.permutation(len(tiers))
    rows = []
    for k in range(category.n_products):
        kind, typical = category.kinds[k % len(category.kinds)]
        tier = tiers[tier_order[k // len(category.kinds)]]
        factor = TIERS[tier]
        price = max(round(typical * factor * np.exp(rng.normal(0.0, 0.12))) - 0.01, 0.99)
        margin = category.margin + 0.06 * (factor - 1.0) + rng.normal(0.0, 0.03)
        margin = float(np.clip(margin, *category.margin_range))
        topics = rng.dirichlet(25.0 * profile / profile.sum() + 0.15)
        name = f"{tier} {kind}"
        rows.append([name, category.name, f"{price:.2f}", f"{margin:.2f}", *_percentages(topics)])
    return rows


def default_products_csv() -> str:
    """The text of ``products/default.csv``, generated from :data:`CATEGORIES` with :data:`SEED`."""
    rng = np.random.default_rng(SEED)
    rows = [row for category in CATEGORIES for row in _category_rows(category, rng)]
    n = len(rows)
    popularity = 1000.0 / (rng.permutation(n) + 1.0)
    is_new = np.zeros(n, dtype=bool)
    is_new[rng.choice(n, size=n // 10, replace=False)] = True
    stock: list[object] = [""] * n
    for i in rng.choice(n, size=n // 10, replace=False).tolist():
        stock[i] = int(rng.integers(0, 151))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*_COLUMNS, *(f"topic_{topic}" for topic in TOPICS)])
    for i, (name, category, price, margin, *topics) in enumerate(rows):
        new = "true" if is_new[i] else "false"
        fields = [f"P{i + 1:04d}", name, category, price, margin, new, stock[i]]
        writer.writerow([*fields, f"{popularity[i]:.1f}", *topics])
    return buffer.getvalue()


def main() -> None:
    """Rewrite ``products/default.csv`` next to this file."""
    path = Path(__file__).with_name("products") / "default.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text(default_products_csv(), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
