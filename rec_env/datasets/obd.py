r"""The Open Bandit Dataset (small sample): item recommendations logged with positions.

ZOZO, Inc.'s *Open Bandit Dataset* records which of 80 fashion items ZOZOTOWN showed in each of
3 positions of a recommendation widget (campaign "all"), whether it was clicked, and with what
probability the logging policy chose it. Two policies logged it: a uniformly random one
(propensity 1/80 per item and position) and Bernoulli Thompson sampling (BTS). The package ships
the small sample that Open Bandit Pipeline (OBP) ships, 10,000 rows per log, unchanged
(``rec_env/datasets/obd/``, 432 KB): ``random_all.csv.gz``, ``bts_all.csv.gz`` and each log's
``*_item_context.csv``. Licence: CC BY 4.0. Attribution: Y. Saito, S. Aihara, M. Matsutani and
Y. Narita. Open Bandit Dataset and Pipeline: towards realistic and reproducible off-policy
evaluation. NeurIPS Datasets and Benchmarks 2021.

:func:`load_obd` returns one row per (impression, position), as OBP does:

* ``contexts``: the four hashed categorical user features, one-hot over the levels seen in
  either log (so that both logs share one encoding), named ``user_feature_<j>=<hash[:8]>``;
  optionally followed by the 80 user-item affinity columns.
* ``actions``: the item id (0–79); ``positions``: the position, 0–2 (the files count 1–3);
  ``n_positions`` = 3. Target policies give an ``(n, 80, 3)`` distribution and every
  estimator reads it at each row's position, so a 2-D slice (the mistake of reading
  position 0 for every row) is an error, not a silent wrong number.
* ``propensities``: the logged ``propensity_score``; ``rewards``: the click (0/1).
* ``action_context``: per item, ``item_feature_0`` (numeric) and one-hot item features 1–3.
* ``logging_distribution``: the random log's uniform 1/80 per item and position (None for BTS,
  whose full distribution is not in the data).

Rows are in time order (the files are sorted by timestamp), so a split by row index is a
time-ordered split. The mean click of the BTS log, :func:`on_policy_value`, is BTS's on-policy
value: the ground truth of OBP's benchmark of estimating BTS from the random log.
"""

from __future__ import annotations

import csv
import gzip
from functools import lru_cache
from importlib import resources

import numpy as np

from rec_env.datasets.logged import LoggedBanditData

__all__ = [
    "OBD_BEHAVIOR_POLICIES",
    "OBD_N_ACTIONS",
    "OBD_N_POSITIONS",
    "load_obd",
    "obd_action_context_names",
    "on_policy_value",
]

OBD_BEHAVIOR_POLICIES: tuple[str, ...] = ("random", "bts")
"""The logging policies of the sample: uniformly random and Bernoulli Thompson sampling."""

OBD_N_ACTIONS = 80
"""Items of campaign "all"."""

OBD_N_POSITIONS = 3
"""Positions of the recommendation widget."""

_USER_FEATURES = tuple(f"user_feature_{j}" for j in range(4))
_ITEM_CATEGORICALS = tuple(f"item_feature_{j}" for j in range(1, 4))
_LOG_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score", *_USER_FEATURES)
_AFFINITY = tuple(f"user-item_affinity_{a}" for a in range(OBD_N_ACTIONS))


def _read_text(name: str) -> str:
    """Text of the shipped file ``obd/<name>``."""
    source = resources.files("rec_env.datasets").joinpath("obd", name)
    with source.open("rb") as raw:
        data = gzip.decompress(raw.read()) if name.endswith(".gz") else raw.read()
    return data.decode("utf-8")


@lru_cache(maxsize=2)
def _read_log(policy: str) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """The first ten columns of ``<policy>_all.csv.gz`` by name, and each row's affinity text.

    The fields hold hashes and numbers only (no quoting), so splitting on commas is exact;
    leaving the 80 affinity columns unparsed until asked for makes loading ~10x faster.

    Raises:
        ValueError: If the file does not have the Open Bandit Dataset's columns.
    """
    lines = _read_text(f"{policy}_all.csv.gz").splitlines()
    header = lines[0].split(",")
    if header[1:10] != list(_LOG_COLUMNS) or header[10:] != list(_AFFINITY):
        raise ValueError(f"{policy}_all.csv.gz does not have the Open Bandit Dataset's columns")
    fields = list(zip(*(line.split(",", 10) for line in lines[1:]), strict=True))
    return dict(zip(header[:10], fields[:10], strict=True)), fields[10]


def _one_hot(
    columns: dict[str, tuple[str, ...]], names: tuple[str, ...], levels: dict[str, list[str]]
) -> tuple[np.ndarray, list[str]]:
    """One-hot block of the categorical ``names`` over ``levels``, with column names."""
    blocks, labels = [], []
    for name in names:
        lookup = {level: k for k, level in enumerate(levels[name])}
        codes = np.fromiter((lookup[v] for v in columns[name]), np.intp, len(columns[name]))
        block = np.zeros((codes.size, len(lookup)))
        block[np.arange(codes.size), codes] = 1.0
        blocks.append(block)
        labels.extend(f"{name}={level[:8]}" for level in levels[name])
    return np.hstack(blocks), labels


@lru_cache(maxsize=1)
def _user_levels() -> dict[str, list[str]]:
    """Sorted levels of each user feature over both logs: one encoding for both."""
    logs = [_read_log(policy)[0] for policy in OBD_BEHAVIOR_POLICIES]
    return {name: sorted({v for log in logs for v in log[name]}) for name in _USER_FEATURES}


def _item_context(policy: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(80, d_a)`` item features of ``policy``'s log and their names."""
    rows = list(csv.reader(_read_text(f"{policy}_item_context.csv").splitlines()))
    columns = dict(zip(rows[0], zip(*rows[1:], strict=True), strict=True))
    ids = np.array(columns["item_id"], dtype=np.intp)
    if not np.array_equal(ids, np.arange(OBD_N_ACTIONS)):
        raise ValueError(f"{policy}_item_context.csv must list items 0 to 79 in order")
    levels = {name: sorted(set(columns[name])) for name in _ITEM_CATEGORICALS}
    one_hot, labels = _one_hot(columns, _ITEM_CATEGORICALS, levels)
    numeric = np.array(columns["item_feature_0"], dtype=np.float64)[:, None]
    return np.hstack([numeric, one_hot]), ("item_feature_0", *labels)


def load_obd(policy: str = "random", *, with_affinity: bool = False) -> LoggedBanditData:
    """One log of the Open Bandit Dataset sample (campaign "all") as logged bandit data.

    Works offline: it reads the copy shipped inside the package.

    Args:
        policy: ``"random"`` (uniform logging) or ``"bts"`` (Bernoulli Thompson sampling).
        with_affinity: Append the 80 ``user-item_affinity_<a>`` columns to the contexts.

    Returns:
        10,000 rows with ``positions`` (0–2), ``n_positions`` = 3, ``action_context``
        ``(80, d_a)`` and, for the random log, its uniform ``logging_distribution``.

    Raises:
        ValueError: If ``policy`` is not one of :data:`OBD_BEHAVIOR_POLICIES`.

    Example:
        >>> data = load_obd("random")
        >>> data.n, data.n_actions, data.n_positions
        (10000, 80, 3)
    """
    if policy not in OBD_BEHAVIOR_POLICIES:
        raise ValueError(
            f"unknown OBD logging policy {policy!r}; choose one of: "
            f"{', '.join(OBD_BEHAVIOR_POLICIES)}"
        )
    columns, affinity_text = _read_log(policy)
    contexts, names = _one_hot(columns, _USER_FEATURES, _user_levels())
    if with_affinity:
        affinity = np.array([row.split(",") for row in affinity_text], dtype=np.float64)
        contexts = np.hstack([contexts, affinity])
        names += list(_AFFINITY)
    n = contexts.shape[0]
    action_context = _item_context(policy)[0]
    # The random policy shows every item at every position with probability 1/80. The
    # broadcast view costs no memory.
    uniform = (
        np.broadcast_to(1.0 / OBD_N_ACTIONS, (n, OBD_N_ACTIONS, OBD_N_POSITIONS))
        if policy == "random"
        else None
    )
    data = LoggedBanditData(
        contexts=contexts,
        actions=np.array(columns["item_id"], dtype=np.intp),
        propensities=np.array(columns["propensity_score"], dtype=np.float64),
        rewards=np.array(columns["click"], dtype=np.float64),
        n_actions=OBD_N_ACTIONS,
        action_names=tuple(f"item_{a}" for a in range(OBD_N_ACTIONS)),
        feature_names=tuple(names),
        # The files count positions from 1; every array here counts from 0.
        positions=np.array(columns["position"], dtype=np.intp) - 1,
        n_positions=OBD_N_POSITIONS,
        action_context=action_context,
        logging_distribution=uniform,
    )
    return data


def obd_action_context_names(policy: str = "random") -> tuple[str, ...]:
    """Names of the ``action_context`` columns of :func:`load_obd` ``(policy)``."""
    return _item_context(policy)[1]


def on_policy_value(policy: str = "bts") -> float:
    """The mean click of ``policy``'s own log: its on-policy value (OBP's ground truth)."""
    return float(load_obd(policy).rewards.mean())
