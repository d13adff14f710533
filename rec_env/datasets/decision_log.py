"""Read the decision log of ``recenv serve`` as logged bandit data for a target policy.

The log is read in the flat layout of ``recenv log export`` (one row per decision, see
:mod:`~.decision_log_tables`), from any of its three forms: the SQLite log itself (``.sqlite``,
``.sqlite3``, ``.db``; read through :func:`~.iter_decision_tables`), or an
export (``.parquet``, ``.csv``). The columns used are:

==========================  ===============================================================
column                      use
==========================  ===============================================================
the 16 feature names        contexts, in :data:`~rec_env.features.FEATURE_NAMES` order
``action``                  name of the served action, matched to the target's catalog
``propensity``              probability the served action was drawn with
``allowed_<action>``        action masks, one column per action of the target's catalog
``reward``                  reward; rows without one (not received yet) are skipped
==========================  ===============================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.datasets.logged import LoggedBanditData
from rec_env.features import FEATURE_NAMES

__all__ = ["LOG_FORMATS", "LoadedDecisionLog", "read_decision_log"]

LOG_FORMATS: dict[str, str] = {
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
    ".db": "sqlite",
    ".parquet": "parquet",
    ".csv": "csv",
}
"""File extensions :func:`read_decision_log` understands, and their formats."""


@dataclass(frozen=True)
class LoadedDecisionLog:
    """A decision log as logged bandit data.

    Attributes:
        data: The decisions that have a reward.
        n_decisions: Decisions in the log, with or without a reward.
        n_without_reward: Decisions skipped because their reward has not arrived.
    """

    data: LoggedBanditData
    n_decisions: int
    n_without_reward: int


def _read_table(path: Path) -> Any:
    """The whole log as one ``pyarrow.Table`` in the export layout.

    Raises:
        ValueError: If the extension is unknown or the file cannot be read.
    """
    import pyarrow as pa

    kind = LOG_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(
            f"{path}: unknown decision log format {path.suffix or '(no extension)'!r}; "
            f"use one of: {', '.join(LOG_FORMATS)}"
        )
    if not path.is_file():
        raise ValueError(f"{path}: no such decision log")
    try:
        if kind == "sqlite":
            from rec_env.datasets.decision_log_tables import iter_decision_tables

            tables = list(iter_decision_tables(path))
            return pa.concat_tables(tables) if tables else pa.table({})
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pa_csv

        return pa_csv.read_csv(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: cannot read it as {kind} ({exc})") from None


def _column(table: Any, name: str, path: Path) -> np.ndarray:
    """One column as a numpy array (nulls become NaN or None).

    Raises:
        ValueError: If the column is missing.
    """
    if name not in table.column_names:
        raise ValueError(f"{path}: the decision log has no column {name!r}")
    return table.column(name).to_numpy(zero_copy_only=False)


def read_decision_log(path: str | Path, action_names: Sequence[str]) -> LoadedDecisionLog:
    """Read a decision log for a target policy whose catalog is ``action_names``.

    Args:
        path: The SQLite log of ``recenv serve`` or its Parquet/CSV export.
        action_names: The target policy's actions, in its index order.

    Returns:
        The rewarded decisions as :class:`LoggedBanditData` (contexts are the 16 features,
        masks from ``allowed_<action>``) and the count of decisions skipped for lack of reward.

    Raises:
        ValueError: If the file is missing or unreadable, a column is missing, a served action
            is not in ``action_names``, no decision has a reward, or the data are invalid
            (e.g. zero or missing propensities; rows are then counted among the decisions
            that have a reward).
    """
    path = Path(path)
    table = _read_table(path)
    n_decisions = table.num_rows
    if n_decisions == 0:
        raise ValueError(f"{path}: the decision log holds no decisions")
    rewards = np.array(
        [np.nan if r is None else r for r in _column(table, "reward", path)], dtype=np.float64
    )
    rewarded = ~np.isnan(rewards)
    if not rewarded.any():
        raise ValueError(f"{path}: none of the {n_decisions} decisions has a reward yet")
    table = table.filter(rewarded)
    lookup = {name: i for i, name in enumerate(action_names)}
    served = _column(table, "action", path)
    unknown = sorted({str(name) for name in served if name not in lookup})
    if unknown:
        raise ValueError(
            f"{path}: served actions outside the policy's catalog: {', '.join(unknown)} "
            f"(the policy knows: {', '.join(action_names)})"
        )
    contexts = np.column_stack([_column(table, name, path) for name in FEATURE_NAMES])
    masks = np.column_stack([_column(table, f"allowed_{name}", path) for name in action_names])
    propensities = np.array(
        [np.nan if p is None else p for p in _column(table, "propensity", path)], np.float64
    )
    data = LoggedBanditData(
        contexts=contexts.astype(np.float64),
        actions=np.array([lookup[name] for name in served], dtype=np.intp),
        propensities=propensities,
        rewards=rewards[rewarded],
        n_actions=len(action_names),
        action_masks=masks.astype(bool),
        action_names=tuple(action_names),
        feature_names=FEATURE_NAMES,
    )
    return LoadedDecisionLog(data, n_decisions, int(n_decisions - rewarded.sum()))
