"""What the decision log's rows mean: each model's world, features and actions, and its requests.

The export (:mod:`~.decision_log_tables`) reads a log of any version through this module. A log
may hold models of several worlds: strategy models log *row* requests (a ``decisions`` row per
customer, an ``(n, A)`` mask and probabilities), item and slate models *columnar* requests (the
decisions are columns of the request row, the mask is one row of the request before consent, no
probabilities; see :mod:`rec_env.serve.decision_log_schema`). :class:`LogLayout` unifies the
models' feature and action names; :class:`RequestArrays` reads a range of requests into arrays
over those unions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from rec_env.datasets.decision_log_backend import LogConnection
from rec_env.features import CHANNELS, CONSENT_FEATURES, FEATURE_NAMES, consent_masks

__all__ = ["FLOAT", "INT", "LogLayout", "ModelLayout", "RequestArrays"]

FLOAT = np.dtype("<f8")
INT = np.dtype("<i4")
_VERSION_3 = ("world", "feature_names", "action_channels", "product_ids", "slate_size")
_COLUMNAR = (
    "actions",
    "propensities",
    "customer_ids",
    "slates",
    "slate_probabilities",
    "holdout",
    "policy_actions",
)


def _columns(connection: LogConnection, table: str) -> set[str]:
    return connection.columns(table)


def _union(names: list[str], new: list[str]) -> np.ndarray:
    """Append the names of ``new`` missing from ``names``; the position of each in ``names``."""
    names.extend(name for name in new if name not in names)
    return np.array([names.index(name) for name in new], dtype=np.intp)


@dataclass(frozen=True)
class ModelLayout:
    """One registered model.

    Attributes:
        world: ``strategy``, ``item`` or ``slate``.
        actions: Position of each of its actions among the log's action names.
        features: Position of each of its features among the log's feature names.
        channels: Channel index of each action (``len(CHANNELS)``: none), or None if unknown.
        consent: Columns of its consent features in its feature rows.
        product_ids: Its product table's ids (item worlds).
    """

    world: str
    actions: np.ndarray
    features: np.ndarray
    channels: np.ndarray | None
    consent: list[int]
    product_ids: tuple[str, ...]


class LogLayout:
    """The models of a log and the union of their feature and action names.

    Attributes:
        action_names: Every model's actions, in order of registration.
        feature_names: Every model's features (the 16 strategy features first).
        models: Each model's :class:`ModelLayout`, by version.
        row_actions: Positions of the actions of row models, whose probabilities are logged.
        slate_size: Largest slate of a slate model (0: none).
    """

    def __init__(self, connection: LogConnection) -> None:
        extra = [c for c in _VERSION_3 if c in _columns(connection, "models")]
        query = ", ".join(["model_version", "action_names", *extra])
        self.action_names: list[str] = []
        self.feature_names: list[str] = list(FEATURE_NAMES)
        self.models: dict[str, ModelLayout] = {}
        rows: set[int] = set()
        self.slate_size = 0
        for values in connection.execute(f"SELECT {query} FROM models ORDER BY registered_at"):
            row = dict(zip(["model_version", "action_names", *extra], values, strict=True))
            features = json.loads(row.get("feature_names") or "null") or list(FEATURE_NAMES)
            world = row.get("world") or "strategy"
            channels = json.loads(row.get("action_channels") or "null")
            actions = _union(self.action_names, json.loads(row["action_names"]))
            if world == "strategy":
                rows.update(actions.tolist())
            self.slate_size = max(self.slate_size, row.get("slate_size") or 0)
            known = (*CHANNELS, "none")
            self.models[row["model_version"]] = ModelLayout(
                world,
                actions,
                _union(self.feature_names, features),
                None if channels is None else np.array([known.index(c) for c in channels]),
                [features.index(name) for name in CONSENT_FEATURES],
                tuple(json.loads(row.get("product_ids") or "[]")),
            )
        self.row_actions = np.array(sorted(rows), dtype=np.intp)


class RequestArrays:
    """The requests ``first`` … ``last``, one stacked row per decision, over the log's unions.

    Attributes:
        offsets: First stacked row of each request id.
        created_at, model_version, policy_updates: Per stacked row.
        features: ``(rows, n_features)`` (NaN for features the row's model does not have).
        allowed: ``(rows, n_actions)`` (False for actions the row's model does not have).
        probabilities: ``(rows, n_actions)`` (NaN where not logged: other models' actions,
            and every action of a columnar request).
        action_columns: ``(rows, max actions)`` each row's model action index → union column.
        columnar: Per request id of a columnar request: ``(actions, propensities,
            customer_ids)``.
        slates: ``(rows, slate_size)`` product ids (None where empty or not a slate).
        slate_probabilities: ``(rows, slate_size)`` probability of each position (NaN).
        holdout: ``(rows,)`` held-out customers of columnar requests (schema 5; row requests
            keep theirs in ``decisions``).
        policy_actions: ``(rows,)`` the model's own action in apprentice mode, by the row
            model's action index (-1: none), of columnar requests.
    """

    def __init__(self, connection: LogConnection, first: int, last: int, layout: LogLayout) -> None:
        present = [
            c if c in _columns(connection, "requests") else f"NULL AS {c}" for c in _COLUMNAR
        ]
        requests = connection.execute(
            "SELECT request_id, created_at, model_version, policy_updates, n, features, "
            f"allowed, probabilities, {', '.join(present)} FROM requests "
            "WHERE request_id BETWEEN ? AND ? ORDER BY request_id",
            (first, last),
        ).fetchall()
        total = sum(row[4] for row in requests)
        n_actions, widest = (
            len(layout.action_names),
            max(len(m.actions) for m in layout.models.values()),
        )
        self.offsets: dict[int, int] = {}
        self.columnar: dict[int, tuple[np.ndarray, np.ndarray, list[str | None]]] = {}
        self.created_at = np.empty(total)
        self.policy_updates = np.empty(total, dtype=np.int64)
        self.model_version = np.empty(total, dtype=object)
        self.features = np.full((total, len(layout.feature_names)), np.nan)
        self.allowed = np.zeros((total, n_actions), dtype=bool)
        self.probabilities = np.full((total, n_actions), np.nan)
        self.action_columns = np.zeros((total, widest), dtype=np.intp)
        self.slates = np.full((total, max(layout.slate_size, 1)), None, dtype=object)
        self.slate_probabilities = np.full((total, max(layout.slate_size, 1)), np.nan)
        self.holdout = np.zeros(total, dtype=bool)
        self.policy_actions = np.full(total, -1, dtype=np.int64)
        start = 0
        for request in requests:
            self._read(request, start, layout)
            start += request[4]

    def _read(self, request: tuple[Any, ...], start: int, layout: LogLayout) -> None:
        """Stack one request's rows from ``start``."""
        (request_id, created, version, updates, n, features, allowed, probabilities,
         actions, propensities, customer_ids, slates, slate_probabilities, holdout,
         policy_actions) = request  # fmt: skip
        model, rows = layout.models[version], slice(start, start + n)
        self.offsets[request_id] = start
        self.created_at[rows], self.model_version[rows] = created, version
        self.policy_updates[rows] = updates
        x = np.frombuffer(features, dtype=FLOAT).reshape(n, -1)
        self.features[rows, model.features] = x
        self.action_columns[rows, : len(model.actions)] = model.actions
        if actions is None:  # a row request
            mask = np.frombuffer(allowed, dtype=np.uint8).reshape(n, -1)
            self.allowed[rows, model.actions] = mask
            values = np.frombuffer(probabilities, dtype=FLOAT).reshape(n, -1)
            self.probabilities[rows, model.actions] = values
            return
        request_mask = np.frombuffer(allowed, dtype=np.uint8).astype(bool)
        assert model.channels is not None  # columnar models record their channels
        self.allowed[rows, model.actions] = request_mask & consent_masks(
            x[:, model.consent], model.channels
        )
        ids = json.loads(customer_ids) if customer_ids is not None else [None] * n
        served = np.frombuffer(actions, dtype=INT).astype(np.int64)
        if holdout is not None:
            self.holdout[rows] = np.frombuffer(holdout, dtype=np.uint8).astype(bool)
        if policy_actions is not None:
            self.policy_actions[rows] = np.frombuffer(policy_actions, dtype=INT)
        self.columnar[request_id] = (served, np.frombuffer(propensities, dtype=FLOAT), ids)
        if slates is not None:
            size = len(slates) // (INT.itemsize * n)
            indices = np.frombuffer(slates, dtype=INT).reshape(n, size)
            products = np.array([*model.product_ids, None], dtype=object)
            self.slates[rows, :size] = products[indices]  # -1 is the trailing None
            self.slate_probabilities[rows, :size] = np.frombuffer(
                slate_probabilities, dtype=FLOAT
            ).reshape(n, size)
