r"""The Hillstrom e-mail campaign: a real, uniformly randomised test with three actions.

Kevin Hillstrom's *MineThatData E-Mail Analytics and Data Mining Challenge* (2008): 64,000
customers who had bought in the last twelve months were assigned at random, with probability
1/3 each, to a Mens e-mail, a Womens e-mail or no e-mail, and their visits, conversions and spend
were tracked for the two weeks after. Because the assignment is random with known propensities,
the campaign is a logged bandit data set on which off-policy estimates are unbiased.

The package ships the original file, ``hillstrom.csv.gz`` (440 KB, SHA-256
``720b13c7…c0d``), unchanged. :func:`load_hillstrom` encodes it:

=============================  ============================================================
context column                 meaning
=============================  ============================================================
``recency``                    months since the last purchase (1–12)
``history``                    dollars spent in the past year
``mens``, ``womens``           1 if the customer bought Mens / Womens merchandise last year
``zip_urban``, ``zip_suburban``, one-hot zip code class (``Surburban`` in the source)
``zip_rural``
``newbie``                     1 if the customer is new in the last twelve months
``channel_phone``,             one-hot purchase channels last year
``channel_web``,
``channel_multichannel``
=============================  ============================================================

Actions, in this order: ``mens_email``, ``womens_email``, ``no_email``; every propensity is 1/3.

Rewards (two weeks after the e-mail): ``visit`` (0/1), ``conversion`` (0/1), ``spend``
(dollars) and ``profit`` = ``spend`` × :data:`PROFIT_MARGIN` − :data:`EMAIL_COST` for customers
who got an e-mail. The margin and the cost are assumptions of this package, not part of the
data: 30 % is a typical gross margin of a catalogue retailer and $0.10 an all-in cost of one
targeted e-mail (creative, list and deliverability); pass your own to :func:`load_hillstrom`.
"""

from __future__ import annotations

import csv
import gzip
from functools import lru_cache
from importlib import resources

import numpy as np

from rec_env.datasets.logged import LoggedBanditData

__all__ = [
    "EMAIL_COST",
    "HILLSTROM_ACTIONS",
    "HILLSTROM_FEATURES",
    "HILLSTROM_REWARDS",
    "PROFIT_MARGIN",
    "load_hillstrom",
]

HILLSTROM_ACTIONS: tuple[str, ...] = ("mens_email", "womens_email", "no_email")
"""Action names, in index order."""

HILLSTROM_FEATURES: tuple[str, ...] = (
    "recency",
    "history",
    "mens",
    "womens",
    "zip_urban",
    "zip_suburban",
    "zip_rural",
    "newbie",
    "channel_phone",
    "channel_web",
    "channel_multichannel",
)
"""Names of the encoded context columns, in column order."""

HILLSTROM_REWARDS: tuple[str, ...] = ("visit", "conversion", "spend", "profit")
"""Outcomes :func:`load_hillstrom` can use as the reward."""

PROFIT_MARGIN = 0.30
"""Assumed gross margin on spend for the ``profit`` reward."""

EMAIL_COST = 0.10
"""Assumed cost in dollars of one e-mail for the ``profit`` reward."""

_FILE = "hillstrom.csv.gz"
_SEGMENTS = ("Mens E-Mail", "Womens E-Mail", "No E-Mail")
_ZIP_CODES = ("Urban", "Surburban", "Rural")
_CHANNELS = ("Phone", "Web", "Multichannel")


def _codes(name: str, values: tuple[str, ...], levels: tuple[str, ...]) -> np.ndarray:
    """Index of each value in ``levels``.

    Raises:
        ValueError: Naming the column and the first row with an unknown value.
    """
    lookup = {level: i for i, level in enumerate(levels)}
    codes = np.fromiter((lookup.get(value, -1) for value in values), np.intp, len(values))
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise ValueError(f"{_FILE}: row {row + 1} has an unknown {name} {values[row]!r}")
    return codes


@lru_cache(maxsize=1)
def _read_columns() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(contexts, actions, outcomes)`` of the shipped file; outcomes are visit, conv., spend.

    Raises:
        ValueError: If a row holds an unknown action, zip code or channel.
    """
    source = resources.files("rec_env.datasets").joinpath(_FILE)
    with source.open("rb") as raw, gzip.open(raw, "rt", newline="") as text:
        reader = csv.reader(text)
        header = next(reader)
        columns = dict(zip(header, zip(*reader, strict=True), strict=True))

    def numbers(name: str) -> np.ndarray:
        return np.array(columns[name], dtype=np.float64)

    n = len(columns["segment"])
    rows = np.arange(n)
    contexts = np.zeros((n, len(HILLSTROM_FEATURES)))
    for j, name in enumerate(("recency", "history", "mens", "womens")):
        contexts[:, j] = numbers(name)
    contexts[:, HILLSTROM_FEATURES.index("newbie")] = numbers("newbie")
    zip0 = HILLSTROM_FEATURES.index("zip_urban")
    contexts[rows, zip0 + _codes("zip_code", columns["zip_code"], _ZIP_CODES)] = 1.0
    channel0 = HILLSTROM_FEATURES.index("channel_phone")
    contexts[rows, channel0 + _codes("channel", columns["channel"], _CHANNELS)] = 1.0
    actions = _codes("segment", columns["segment"], _SEGMENTS)
    outcomes = np.column_stack([numbers(name) for name in ("visit", "conversion", "spend")])
    for array in (contexts, actions, outcomes):
        array.setflags(write=False)
    return contexts, actions, outcomes


def load_hillstrom(
    reward: str = "visit",
    profit_margin: float = PROFIT_MARGIN,
    email_cost: float = EMAIL_COST,
) -> LoggedBanditData:
    """The Hillstrom campaign as logged bandit data (64,000 decisions, propensity 1/3 each).

    Works offline: it reads the copy shipped inside the package.

    Args:
        reward: ``"visit"``, ``"conversion"``, ``"spend"`` or ``"profit"``.
        profit_margin: Gross margin on spend, for ``"profit"``.
        email_cost: Cost of one e-mail in dollars, for ``"profit"``.

    Returns:
        Contexts ``(64000, 11)`` named by :data:`HILLSTROM_FEATURES`, actions named by
        :data:`HILLSTROM_ACTIONS`, propensities 1/3 and the chosen reward.

    Raises:
        ValueError: If ``reward`` is not one of :data:`HILLSTROM_REWARDS`.

    Example:
        >>> data = load_hillstrom("conversion")
        >>> data.n, data.n_actions
        (64000, 3)
    """
    if reward not in HILLSTROM_REWARDS:
        raise ValueError(
            f"unknown Hillstrom reward {reward!r}; choose one of: {', '.join(HILLSTROM_REWARDS)}"
        )
    contexts, actions, outcomes = _read_columns()
    if reward == "profit":
        emailed = actions != HILLSTROM_ACTIONS.index("no_email")
        rewards = outcomes[:, 2] * profit_margin - email_cost * emailed
    else:
        rewards = outcomes[:, HILLSTROM_REWARDS.index(reward)]
    return LoggedBanditData(
        contexts=contexts.copy(),
        actions=actions.copy(),
        propensities=np.full(actions.shape[0], 1.0 / 3.0),
        rewards=rewards.copy(),
        n_actions=len(HILLSTROM_ACTIONS),
        action_names=HILLSTROM_ACTIONS,
        feature_names=HILLSTROM_FEATURES,
    )
