"""The summary tables of the dashboard: their SQL, on SQLite and PostgreSQL.

Tables (in the log's own database, created on first use):

* ``summary_decisions``: key ``(hour, model_version, action, holdout, propensity_bin)``;
  ``decisions`` and ``windowed`` (of them, decisions whose request has a reward window).
  ``hour`` is ``floor(created_at / 3600)``, the decision's hour in Unix time; a propensity
  ``p`` falls in bin ``min(floor(p * PROPENSITY_BINS), PROPENSITY_BINS - 1)``.
* ``summary_rewards``: the final rewards by the decision's ``(hour, model_version, action,
  holdout, windowed)``: ``rewards``, ``positive`` (reward > 0), ``defaulted``, and the sums
  ``sum_reward``, ``sum_reward2`` (of squares), ``sum_ipw_reward`` (of ``r / p``),
  ``sum_ipw_reward2`` (of ``(r / p)^2``) and ``sum_reward2_over_p`` (of ``r^2 / p``), from which
  the inverse-propensity estimate of any fixed action and its variance follow
  (:mod:`rec_env.serve.dashboard.statistics`).
* ``summary_received``: final rewards by the ``hour`` they were recorded (key): ``rewards``,
  ``defaulted`` and ``sum_reward``.
* ``summary_watermarks``: ``name`` (``requests`` or ``rewards``) and ``value``, the last
  ``request_id`` and ``seq`` folded in.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "DECISION_COLUMNS",
    "HOUR_SECONDS",
    "LAST_BIN",
    "PROPENSITY_BINS",
    "RECEIVED_COLUMNS",
    "REWARD_COLUMNS",
    "TABLES",
    "Dialect",
    "one_if",
    "upsert_statement",
]

HOUR_SECONDS = 3600
PROPENSITY_BINS = 20
"""Bins of width 0.05 over [0, 1] of the propensity histogram."""
LAST_BIN = PROPENSITY_BINS - 1

TABLES = (
    """
CREATE TABLE IF NOT EXISTS summary_watermarks (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
)""",
    """
CREATE TABLE IF NOT EXISTS summary_decisions (
    hour INTEGER NOT NULL,
    model_version TEXT NOT NULL,
    action INTEGER NOT NULL,
    holdout INTEGER NOT NULL,
    propensity_bin INTEGER NOT NULL,
    decisions INTEGER NOT NULL,
    windowed INTEGER NOT NULL,
    PRIMARY KEY (hour, model_version, action, holdout, propensity_bin)
) WITHOUT ROWID""",
    """
CREATE TABLE IF NOT EXISTS summary_rewards (
    hour INTEGER NOT NULL,
    model_version TEXT NOT NULL,
    action INTEGER NOT NULL,
    holdout INTEGER NOT NULL,
    windowed INTEGER NOT NULL,
    rewards INTEGER NOT NULL,
    positive INTEGER NOT NULL,
    defaulted INTEGER NOT NULL,
    sum_reward REAL NOT NULL,
    sum_reward2 REAL NOT NULL,
    sum_ipw_reward REAL NOT NULL,
    sum_ipw_reward2 REAL NOT NULL,
    sum_reward2_over_p REAL NOT NULL,
    PRIMARY KEY (hour, model_version, action, holdout, windowed)
) WITHOUT ROWID""",
    """
CREATE TABLE IF NOT EXISTS summary_received (
    hour INTEGER PRIMARY KEY,
    rewards INTEGER NOT NULL,
    defaulted INTEGER NOT NULL,
    sum_reward REAL NOT NULL
)""",
)
DECISION_COLUMNS = ("decisions", "windowed")
REWARD_COLUMNS = (
    "rewards",
    "positive",
    "defaulted",
    "sum_reward",
    "sum_reward2",
    "sum_ipw_reward",
    "sum_ipw_reward2",
    "sum_reward2_over_p",
)
RECEIVED_COLUMNS = ("rewards", "defaulted", "sum_reward")


class Dialect:
    """The few expressions SQLite and PostgreSQL spell differently."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres

    def hour(self, column: str) -> str:
        """``floor(column / 3600)`` as an integer.

        CAST rounds on PostgreSQL, and floors on SQLite (the log's times are positive).
        """
        if self.postgres:
            return f"CAST(FLOOR({column} / {HOUR_SECONDS}) AS BIGINT)"
        return f"CAST({column} / {HOUR_SECONDS} AS INTEGER)"

    def propensity_bin(self, column: str) -> str:
        """The histogram bin of a propensity."""
        if self.postgres:
            return (
                f"LEAST(CAST(FLOOR({column} * {PROPENSITY_BINS}) AS BIGINT), {PROPENSITY_BINS - 1})"
            )
        return f"MIN(CAST({column} * {PROPENSITY_BINS} AS INTEGER), {PROPENSITY_BINS - 1})"


def one_if(condition: str) -> str:
    """1 where ``condition`` holds, else 0 (SQLite's booleans are numbers, PostgreSQL's not)."""
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


_KEYS = {
    "summary_decisions": ("hour", "model_version", "action", "holdout", "propensity_bin"),
    "summary_rewards": ("hour", "model_version", "action", "holdout", "windowed"),
    "summary_received": ("hour",),
}


def upsert_statement(table: str, columns: Sequence[str]) -> str:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` adding ``columns`` to an existing row."""
    keys = _KEYS[table]
    marks = ", ".join("?" * (len(keys) + len(columns)))
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)
    return (
        f"INSERT INTO {table} ({', '.join((*keys, *columns))}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )
