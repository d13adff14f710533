"""Read the decision log of ``recenv serve`` as logged bandit data for a target policy.

The log is read in the flat layout of ``recenv log export`` (one row per decision, see
:mod:`~.decision_log_tables`), from any of its three forms: the SQLite log itself (``.sqlite``,
``.sqlite3``, ``.db``; or a ``postgresql://`` URL of a log shared by replicas; read through
:func:`~.iter_decision_tables`), or an
export (``.parquet``, ``.csv``). The columns used are:

==========================  ===============================================================
column                      use
==========================  ===============================================================
``world``                   the model's world, which must be the target's (older exports
                            have none; their features and actions are still checked)
the target's features       contexts, in the target's order: the 16
                            :data:`~rec_env.features.FEATURE_NAMES`, and in the item worlds
                            the item features of its product table's categories
``action``                  name of the served action, matched to the target's catalog (item
                            actions are named ``<product id>:<channel>[:<pct>off]``, so a
                            log of another product table does not match)
``propensity``              probability the served action (a slate: the whole message) was
                            drawn with
``allowed_<action>``        action masks, one column per action of the target's catalog
``slate_<k>``,              slate logs: the product at position ``k`` and its probability
``slate_probability_<k>``   given the positions above it
``reward``                  reward; rows without one (not received yet, or a window still
                            open) are skipped
``requires_activation``,    decisions that needed an activation and never got one were
``activated_at``            never sent: they are left out (and counted)
``holdout``                 held-out customers' decisions are the holdout's, not a policy's:
                            they are left out of the logged data, their rewards kept apart
``window_seconds``          a decision logged with a window gets its final reward from the
                            log when the window closes, never ``default_reward`` here
==========================  ===============================================================

The last four come with schema 5 of the log; older logs and exports have none of them. In
apprentice mode (``policy_action``) the served ``action`` and ``propensity`` are the caller's
baseline: the logged data are the baseline's, and the model is evaluated from them like any
target policy.

:func:`read_decision_log` reads single decisions (strategy and single-product item worlds) as
:class:`~rec_env.datasets.logged.LoggedBanditData`; :func:`read_slate_decision_log` reads slate
messages as :class:`~rec_env.datasets.logged.LoggedSlateData`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from rec_env.datasets.logged import LoggedBanditData, LoggedSlateData
from rec_env.features import CHANNELS, FEATURE_NAMES

__all__ = [
    "LOG_FORMATS",
    "LoadedDecisionLog",
    "LoadedSlateLog",
    "RewardDefault",
    "parse_window",
    "read_decision_log",
    "read_slate_decision_log",
]

LOG_FORMATS: dict[str, str] = {
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
    ".db": "sqlite",
    ".parquet": "parquet",
    ".csv": "csv",
}
"""File extensions :func:`read_decision_log` understands, and their formats."""


LoggedData = TypeVar("LoggedData", LoggedBanditData, LoggedSlateData)


@dataclass(frozen=True)
class LoadedDecisionLog(Generic[LoggedData]):
    """A decision log as logged data: single decisions, or slate messages.

    Attributes:
        data: The decisions that have a reward (given, or the default).
        n_decisions: Decisions in the log, with or without a reward.
        n_without_reward: Decisions skipped because their reward has not arrived (and, with a
            default reward, their window has not passed).
        n_default_reward: Decisions without a reward whose window has passed, given the
            default reward (:class:`RewardDefault`).
        n_not_activated: Decisions left out because they needed an activation and have none.
        holdout_rewards: Rewards of the held-out customers' decisions (left out of ``data``).
        logged_probabilities: ``(n, A)`` the probabilities the serving model logged for each
            decision of ``data`` (``prob_<action>``; in apprentice mode the model's, not the
            served baseline's), NaN where none were logged; None for slate logs.
    """

    data: LoggedData
    n_decisions: int
    n_without_reward: int
    n_default_reward: int = 0
    n_not_activated: int = 0
    holdout_rewards: np.ndarray = field(default_factory=lambda: np.empty(0))
    logged_probabilities: np.ndarray | None = None


@dataclass(frozen=True)
class RewardDefault:
    """The reward of a decision whose reward never came: marketing logs reward only buyers.

    A decision without a reward gets ``value`` once ``window_seconds`` have passed between it
    and the log's latest decision (its attribution window is over: the customer did not buy);
    a younger one is still pending and is skipped (and counted). ``window_seconds=None``: every
    decision without a reward gets ``value``.

    Attributes:
        value: The default reward, e.g. 0 for "no purchase".
        window_seconds: The attribution window, in seconds.
    """

    value: float
    window_seconds: float | None = None

    def __post_init__(self) -> None:
        if not np.isfinite(self.value):
            raise ValueError(f"the default reward must be finite, got {self.value}")
        if self.window_seconds is not None and not self.window_seconds >= 0:
            raise ValueError(f"the window must be 0 or more seconds, got {self.window_seconds}")


_WINDOW_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_window(text: str) -> float:
    """Seconds in a window such as ``7d``, ``36h``, ``90m``, ``2w`` or ``3600s``.

    Raises:
        ValueError: If the text is not a non-negative number followed by one of s, m, h, d, w.
    """
    value = text.strip().lower()
    unit = _WINDOW_UNITS.get(value[-1:]) if value else None
    try:
        amount = float(value[:-1]) if unit is not None else float("nan")
    except ValueError:
        amount = float("nan")
    if unit is None or not np.isfinite(amount) or amount < 0:
        raise ValueError(
            f"{text!r} is not a window: give a number and a unit, e.g. 7d, 36h, 90m, 2w or 3600s"
        )
    return amount * unit


LoadedSlateLog = LoadedDecisionLog[LoggedSlateData]
"""A decision log of slate messages."""


def _read_table(path: Path) -> Any:
    """The whole log as one ``pyarrow.Table`` in the export layout.

    Raises:
        ValueError: If the extension is unknown or the file cannot be read.
    """
    import pyarrow as pa

    from rec_env.datasets.decision_log_backend import postgres_url

    url = postgres_url(path)
    kind = LOG_FORMATS.get(path.suffix.lower()) if url is None else "sqlite"
    if kind is None:
        raise ValueError(
            f"{path}: unknown decision log format {path.suffix or '(no extension)'!r}; "
            f"use one of: {', '.join(LOG_FORMATS)}"
        )
    if url is None and not path.is_file():
        raise ValueError(f"{path}: no such decision log")
    try:
        if kind == "sqlite":  # the log itself, in a SQLite file or PostgreSQL
            from rec_env.datasets.decision_log_tables import iter_decision_tables

            tables = list(iter_decision_tables(path if url is None else url))
            return pa.concat_tables(tables) if tables else pa.table({})
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pa_csv

        return pa_csv.read_csv(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: cannot read it as {kind} ({exc})") from None


class _SlateActions(Protocol):
    """What the slate reader needs of :class:`~rec_env.item_actions.ItemActionTable`."""

    names: tuple[str, ...]
    channel: np.ndarray
    offers: tuple[float, ...]


def _column(table: Any, name: str, path: Path, hint: str = "") -> np.ndarray:
    """One column as a numpy array (nulls become NaN or None).

    Raises:
        ValueError: If the column is missing (``hint`` says what that means).
    """
    if name not in table.column_names:
        raise ValueError(f"{path}: the decision log has no column {name!r}{hint}")
    return table.column(name).to_numpy(zero_copy_only=False)


def _floats(values: np.ndarray) -> np.ndarray:
    """A column of numbers with nulls as NaN."""
    if values.dtype.kind in "fiub":  # Arrow gives NaN for the nulls of a numeric column
        return values.astype(np.float64, copy=False)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _seconds(table: Any, path: Path) -> np.ndarray:
    """``created_at`` of every decision as seconds since the epoch.

    Raises:
        ValueError: If the column is missing, empty somewhere, or not a timestamp.
    """
    import pyarrow as pa

    if "created_at" not in table.column_names:
        raise ValueError(f"{path}: the decision log has no column 'created_at' for --window")
    column = table.column("created_at")
    try:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = column.cast(pa.timestamp("us", tz="UTC"))
        micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    except (pa.ArrowException, ValueError):
        raise ValueError(f"{path}: column 'created_at' does not hold timestamps") from None
    if micros.null_count:
        raise ValueError(f"{path}: column 'created_at' is empty in {micros.null_count} rows")
    return micros.to_numpy(zero_copy_only=False).astype(np.float64) / 1e6


def _flags(table: Any, name: str) -> np.ndarray:
    """A boolean column as a numpy array (False where null or absent)."""
    if name not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    values = table.column(name).to_numpy(zero_copy_only=False)
    return np.array([bool(v) if v is not None else False for v in values], dtype=bool)


def _given(table: Any, name: str) -> np.ndarray:
    """True where the column holds a value (False where null, or everywhere if absent)."""
    if name not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    import pyarrow.compute as pc

    return pc.is_valid(table.column(name)).to_numpy(zero_copy_only=False).astype(bool)


def _rewarded(path: Path, world: str, default: RewardDefault | None = None) -> tuple[Any, ...]:
    """The log's decisions that have a reward, checked to be of ``world``.

    Decisions that needed an activation and have none are left out, and so are held-out
    customers' (their rewards are returned apart). With ``default``, decisions logged without
    a window and without a reward whose window has passed get its value.

    Returns:
        The rewarded rows, the number of decisions, the number skipped without a reward, the
        number given the default reward, the number left out for want of activation, and the
        holdout's rewards.

    Raises:
        ValueError: If the log is empty, no decision has a reward, or rewarded decisions were
            logged by a model of another world.
    """
    import pyarrow as pa

    table = _read_table(path)
    n_decisions = table.num_rows
    if n_decisions == 0:
        raise ValueError(f"{path}: the decision log holds no decisions")
    inactive = _flags(table, "requires_activation") & ~_given(table, "activated_at")
    if inactive.any():  # never sent: not a decision of any policy
        table = table.filter(~inactive)
    rewards = _floats(_column(table, "reward", path))
    missing = np.isnan(rewards)
    defaulted = np.zeros(table.num_rows, dtype=bool)
    if default is not None and missing.any():
        defaulted = missing & ~_given(table, "window_seconds")  # the log closes those
        if default.window_seconds is not None:
            created = _seconds(table, path)
            defaulted &= created <= created.max() - default.window_seconds
        rewards = np.where(defaulted, default.value, rewards)
        column = table.column_names.index("reward")
        table = table.set_column(column, "reward", pa.array(rewards, mask=np.isnan(rewards)))
    rewarded = ~np.isnan(rewards)
    n_without = int((~rewarded).sum())
    held = _flags(table, "holdout")
    holdout_rewards = rewards[rewarded & held]
    rewarded &= ~held
    if not rewarded.any():
        raise ValueError(f"{path}: none of the {n_decisions} decisions has a reward yet")
    table = table.filter(rewarded)
    if "world" in table.column_names:  # exports older than the world column have none
        worlds = np.array(_column(table, "world", path), dtype=object)
        other = worlds != world
        if other.any():
            found = ", ".join(sorted({str(w) for w in worlds[other]}))
            raise ValueError(
                f"{path}: {int(other.sum()):,} of the {table.num_rows:,} rewarded decisions were "
                f"served by a model of the {found} world, but the target policy is a run of the "
                f"{world} world; off-policy evaluation needs decisions of the target's world "
                "(filter the export on its world column)"
            )
    return (
        table,
        n_decisions,
        n_without,
        int(defaulted.sum()),
        int(inactive.sum()),
        holdout_rewards,
    )


def _contexts(table: Any, feature_names: Sequence[str], path: Path, world: str) -> np.ndarray:
    """``(n, F)`` the target's features, in its order.

    Raises:
        ValueError: If a feature is missing, or empty in some rows (another world's model).
    """
    hint = (
        ": the log's decisions were not served with the target's item features (a strategy "
        "log, or a product table with other categories)"
        if world != "strategy"
        else ""
    )
    contexts = np.column_stack(
        [_floats(_column(table, name, path, hint)) for name in feature_names]
    )
    empty = np.isnan(contexts)
    if empty.any() and world != "strategy":
        rows, columns = np.nonzero(empty)
        raise ValueError(
            f"{path}: {np.unique(rows).size:,} decisions have no value for the target's feature "
            f"{feature_names[columns[0]]!r} (first: row {rows[0]}); they were served by a model "
            "of another world or product table"
        )
    return contexts


def _served_actions(table: Any, action_names: Sequence[str], path: Path, world: str) -> np.ndarray:
    """``(n,)`` index of each served action in the target's catalog.

    Raises:
        ValueError: If a served action is not in the catalog.
    """
    lookup = {name: i for i, name in enumerate(action_names)}
    served = _column(table, "action", path)
    unknown = sorted({str(name) for name in served if name not in lookup})
    if unknown and world == "strategy":
        raise ValueError(
            f"{path}: served actions outside the policy's catalog: {', '.join(unknown)} "
            f"(the policy knows: {', '.join(action_names)})"
        )
    if unknown:
        raise ValueError(
            f"{path}: {len(unknown):,} served actions are outside the target's action table "
            f"of {len(action_names):,} actions (e.g. {', '.join(unknown[:3])}; the target's "
            f"look like {action_names[-1]!r}): the log's products are not those of the "
            "target's product table"
        )
    return np.array([lookup[name] for name in served], dtype=np.intp)


def _masks(table: Any, action_names: Sequence[str], path: Path, world: str) -> np.ndarray:
    """``(n, A)`` bool, the allowed actions of the target's catalog."""
    hint = (
        ": the target's product table has products the log's model did not have"
        if world != "strategy"
        else ""
    )
    return np.column_stack(
        [_column(table, f"allowed_{name}", path, hint) for name in action_names]
    ).astype(bool)


def read_decision_log(
    path: str | Path,
    action_names: Sequence[str],
    *,
    feature_names: Sequence[str] = FEATURE_NAMES,
    world: str = "strategy",
    default_reward: RewardDefault | None = None,
) -> LoadedDecisionLog[LoggedBanditData]:
    """Read a decision log for a target policy whose catalog is ``action_names``.

    Args:
        path: The SQLite log of ``recenv serve`` or its Parquet/CSV export.
        action_names: The target policy's actions, in its index order (in the item world, its
            :class:`~rec_env.item_actions.ItemActionTable`'s names).
        feature_names: The target's features, in its observation order (in the item world, the
            model's ``feature_names``).
        world: The target's world, ``strategy`` or ``item`` (slate logs:
            :func:`read_slate_decision_log`).
        default_reward: The reward of decisions whose reward never came (:class:`RewardDefault`);
            None: they are skipped and counted.

    Returns:
        The rewarded decisions as :class:`LoggedBanditData` (contexts are the target's
        features, masks from ``allowed_<action>``) and the count of decisions skipped for lack
        of reward.

    Raises:
        ValueError: If the file is missing or unreadable, a column is missing, a decision was
            served by a model of another world or with other features, a served action is not
            in ``action_names``, no decision has a reward, or the data are invalid (e.g. zero
            or missing propensities; rows are then counted among the decisions that have a
            reward).
    """
    if world == "slate":
        raise ValueError("slate logs are read with read_slate_decision_log")
    path = Path(path)
    table, n_decisions, n_without_reward, *counts = _rewarded(path, world, default_reward)
    data = LoggedBanditData(
        contexts=_contexts(table, feature_names, path, world),
        actions=_served_actions(table, action_names, path, world),
        propensities=_floats(_column(table, "propensity", path)),
        rewards=_floats(_column(table, "reward", path)),
        n_actions=len(action_names),
        action_masks=_masks(table, action_names, path, world),
        action_names=tuple(action_names),
        feature_names=tuple(feature_names),
    )
    logged = np.column_stack(
        [
            _floats(table.column(f"prob_{name}").to_numpy(zero_copy_only=False))
            if f"prob_{name}" in table.column_names
            else np.full(table.num_rows, np.nan)
            for name in action_names
        ]
    )
    return LoadedDecisionLog(data, n_decisions, n_without_reward, *counts, logged)


def _slates(
    table: Any, product_ids: Sequence[str], slate_size: int, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """``(n, K)`` product indices (-1: empty) and position probabilities of the logged slates.

    Raises:
        ValueError: If the log has no slate columns, longer slates, or unknown products.
    """
    lookup = {pid: j for j, pid in enumerate(product_ids)}
    longer = f"slate_{slate_size + 1}"
    if longer in table.column_names and any(v is not None for v in _column(table, longer, path)):
        raise ValueError(
            f"{path}: the log holds slates of more than {slate_size} products, the target's size"
        )
    slates = np.full((table.num_rows, slate_size), -1, dtype=np.intp)
    positions = np.full((table.num_rows, slate_size), np.nan)
    hint = ": it is not a log of slate messages"
    for k in range(slate_size):
        ids = _column(table, f"slate_{k + 1}", path, hint)
        unknown = sorted({str(p) for p in ids if p is not None and p not in lookup})
        if unknown:
            raise ValueError(
                f"{path}: logged slates show products outside the target's product table "
                f"(e.g. {', '.join(unknown[:3])}): the log's products are not the target's"
            )
        slates[:, k] = [-1 if p is None else lookup[p] for p in ids]
        positions[:, k] = _floats(_column(table, f"slate_probability_{k + 1}", path, hint))
    return slates, positions


def read_slate_decision_log(
    path: str | Path,
    actions: _SlateActions,
    product_ids: Sequence[str],
    feature_names: Sequence[str],
    slate_size: int,
    default_reward: RewardDefault | None = None,
) -> LoadedSlateLog:
    """Read a decision log of slate messages for a target slate policy.

    A message's channel and offer are those of its ``action`` (its first product on its
    channel; ``no_action``: nothing sent), its products those of ``slate_<k>``, its
    propensity the probability of the whole message and ``slate_probability_<k>`` that of each
    position. A product is allowed where any of its actions was.

    Args:
        path: The SQLite log of ``recenv serve`` or its Parquet/CSV export.
        actions: The target's item action table.
        product_ids: The target's product ids, in index order.
        feature_names: The target's features, in its observation order.
        slate_size: Products per message of the target.
        default_reward: The reward of messages whose reward never came (as in
            :func:`read_decision_log`).

    Returns:
        The rewarded messages as :class:`LoggedSlateData` and the count skipped for lack of
        reward.

    Raises:
        ValueError: As :func:`read_decision_log`, and if a logged slate shows a product outside
            the target's product table or is longer than ``slate_size``.
    """
    path = Path(path)
    table, n_decisions, n_without_reward, *counts = _rewarded(path, "slate", default_reward)
    served = _served_actions(table, actions.names, path, "slate")
    masks = _masks(table, actions.names, path, "slate")
    n, n_offers = table.num_rows, len(actions.offers)
    grid = masks[:, 1:].reshape(n, len(product_ids), len(CHANNELS), n_offers)
    slates, positions = _slates(table, product_ids, slate_size, path)
    data = LoggedSlateData(
        contexts=_contexts(table, feature_names, path, "slate"),
        slates=slates,
        channels=np.asarray(actions.channel)[served],
        offers=np.where(served > 0, (served - 1) % n_offers, 0),
        propensities=_floats(_column(table, "propensity", path)),
        position_propensities=positions,
        rewards=_floats(_column(table, "reward", path)),
        allowed_products=grid.any(axis=(2, 3)),
        n_channels=len(CHANNELS),
        product_ids=tuple(product_ids),
        feature_names=tuple(feature_names),
    )
    return LoadedSlateLog(data, n_decisions, n_without_reward, *counts)
