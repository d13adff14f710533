"""What a retailer's own log holds: a validated description for :func:`~rec_env.datasets.read_log`.

A :class:`LogSpec` names the file and the role of its columns. It is loaded from YAML
(:meth:`LogSpec.from_yaml`), built from command-line style arguments (:meth:`LogSpec.from_args`),
or taken from a shipped preset (:func:`load_preset`). A YAML example::

    file: campaign.csv            # CSV (.csv, .csv.gz) or Parquet; relative to this file
    action: promo                 # the logged action's column
    actions: [none, promo]        # optional: the action order (default: sorted values)
    control: none                 # optional: the "do nothing" action, for `treated`
    features: [age, channel, spend_last_year]
    categorical: [channel]        # optional: text columns are found on their own
    levels: {channel: [Web, Phone, Store]}  # optional: explicit one-hot order
    reward: "10*purchase - cost[action]"    # a column, or an expression (reward_spec.py)
    costs: {promo: 0.15}
    propensity: split             # a column, uniform, split, or model
    randomised: true

Propensity options:

* a column name: the logged propensity of the logged action;
* ``uniform``: ``1 / n_actions`` for every row (a uniformly randomised log);
* ``split``: the observed share of each action (per position if there are positions), for a
  randomised log whose exact split is not recorded (see :mod:`rec_env.datasets.tabular`);
* ``model``: a fitted propensity model supplied by the caller (``read_log(...,
  propensity_model=...)``, from :mod:`rec_env.agents`), for logs that were **not** randomised.

This module imports numpy, pydantic and PyYAML (the latter two already used by the core).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rec_env.config import load_model
from rec_env.errors import ConfigError

__all__ = ["PROPENSITY_KEYWORDS", "LogSpec", "list_presets", "load_preset"]

PROPENSITY_KEYWORDS = ("uniform", "split", "model")
"""Propensity values that are methods rather than column names."""


def _split_names(value: Any) -> Any:
    """``"a,b , c"`` → ``["a", "b", "c"]`` (command-line lists); other values unchanged."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class LogSpec(BaseModel):
    """The columns of a logged campaign or recommendation file and what they mean.

    Args:
        file: The CSV (``.csv``, ``.csv.gz``, ``.tsv``) or Parquet file.
        format: ``auto`` (from the suffix), ``csv`` or ``parquet``.
        delimiter: CSV field separator.
        action: Column of the logged action (any values; each distinct value is an action).
        actions: Action order (their index); default: the sorted distinct values (numerically
            if all are numbers). A value in the file that is not listed is an error.
        control: The control ("do nothing") action, for ``treated`` in the reward.
        features: Feature columns, in order.
        categorical: Features to one-hot encode even if their values are numbers (text
            columns are one-hot encoded anyway).
        numeric: Features that must be numbers.
        levels: Explicit one-hot level order of some categorical features.
        reward: A column, or an expression of columns (see :mod:`.reward_spec`).
        costs: Cost of each action, for ``cost[action]`` in the reward.
        propensity: A column, ``uniform``, ``split`` or ``model``.
        randomised: Whether actions were assigned at random (independently of the features).
            ``False`` needs ``propensity: model`` or a column, and warns.
        positions: Optional column of the position (slot) each action was shown at.
        position_levels: Optional position order (default: sorted distinct values).
        action_features: Optional CSV / Parquet table of action features, one row per action.
        action_key: Column of that table holding the action (default: ``action``'s name).
        row_id: Optional column identifying rows (kept as ``row_ids``).
        missing: ``error`` or ``impute`` for missing feature values (see :mod:`.encoding`).
        unseen: ``error`` or ``other`` for unseen levels at prediction time.
        max_rows: Read only the first rows (for quick looks and tests).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path
    format: Literal["auto", "csv", "parquet"] = "auto"
    delimiter: str = Field(",", min_length=1, max_length=1)
    action: str = Field(min_length=1)
    actions: list[str] | None = None
    control: str | None = None
    features: list[str] = Field(min_length=1)
    categorical: list[str] = []
    numeric: list[str] = []
    levels: dict[str, list[str]] = {}
    reward: str = Field(min_length=1)
    costs: dict[str, float] = {}
    propensity: str = Field(min_length=1)
    randomised: bool = True
    positions: str | None = None
    position_levels: list[str] | None = None
    action_features: Path | None = None
    action_key: str | None = None
    row_id: str | None = None
    missing: Literal["error", "impute"] = "error"
    unseen: Literal["error", "other"] = "error"
    max_rows: int | None = Field(None, gt=0)

    @field_validator("features", "categorical", "numeric", mode="before")
    @classmethod
    def _comma_lists(cls, value: Any) -> Any:
        return _split_names(value)

    @field_validator("actions", "position_levels", mode="before")
    @classmethod
    def _value_lists(cls, value: Any) -> Any:
        value = _split_names(value)
        if isinstance(value, list):  # YAML may give numbers; values are compared as text
            return [
                str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in value
            ]
        return value

    @field_validator("levels", mode="before")
    @classmethod
    def _level_texts(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [str(v) for v in _split_names(vs)] for k, vs in value.items()}
        return value

    @field_validator("reward", "propensity", mode="before")
    @classmethod
    def _number_text(cls, value: Any) -> Any:  # YAML reads `reward: 1` as a number
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )

    @field_validator("control", mode="before")
    @classmethod
    def _control_text(cls, value: Any) -> Any:
        return None if value is None else str(value)

    @field_validator("costs", mode="before")
    @classmethod
    def _cost_keys(cls, value: Any) -> Any:
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _consistent(self) -> LogSpec:
        features = self.features
        repeated = sorted({f for f in features if features.count(f) > 1})
        if repeated:
            raise ValueError(f"features repeat {', '.join(repeated)}")
        roles = {"action": self.action, "positions": self.positions, "row_id": self.row_id}
        if self.propensity not in PROPENSITY_KEYWORDS:
            roles["propensity"] = self.propensity
        for role, column in roles.items():
            if column is not None and column in features:
                raise ValueError(
                    f"the {role} column {column!r} is also a feature: a policy must not see it"
                )
        for field in ("categorical", "numeric"):
            stray = [name for name in getattr(self, field) if name not in features]
            if stray:
                raise ValueError(f"{field} lists {', '.join(stray)}, which are not features")
        stray = [name for name in self.levels if name not in features]
        if stray:
            raise ValueError(f"levels lists {', '.join(stray)}, which are not features")
        both = set(self.numeric) & (set(self.categorical) | set(self.levels))
        if both:
            raise ValueError(f"{', '.join(sorted(both))}: declared numeric and categorical")
        if self.actions is not None:
            if len(set(self.actions)) != len(self.actions):
                raise ValueError(f"actions repeat a value: {self.actions}")
            if self.control is not None and self.control not in self.actions:
                raise ValueError(f"control {self.control!r} is not one of actions {self.actions}")
        bad_costs = [k for k, v in self.costs.items() if not math.isfinite(v)]
        if bad_costs:
            raise ValueError(f"costs of {', '.join(bad_costs)} are not finite")
        if not self.randomised and self.propensity in ("uniform", "split"):
            raise ValueError(
                f"propensity {self.propensity!r} assumes a randomised log, but randomised is "
                "false: use propensity: model (a fitted propensity model) or a logged "
                "propensity column"
            )
        if self.position_levels is not None and self.positions is None:
            raise ValueError("position_levels is given without positions")
        return self

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> LogSpec:
        """Load a spec from YAML (or JSON); relative file paths are relative to the YAML file.

        Args:
            path: The YAML file.
            **overrides: Fields to replace (e.g. ``reward="visit"``), validated again.

        Raises:
            ConfigError: Naming the file, the field and the problem.
        """
        path = Path(path)
        spec = load_model(path, cls)
        updates: dict[str, Any] = {}
        for field in ("file", "action_features"):
            value = getattr(spec, field)
            if value is not None and not value.is_absolute():
                updates[field] = Path(os.path.normpath(path.parent / value))
        try:
            return cls.model_validate({**spec.model_dump(), **updates, **overrides})
        except ValidationError as exc:
            raise ConfigError(f"{path}: {_problems(exc)}") from None

    @classmethod
    def from_args(
        cls,
        file: str | Path,
        *,
        action: str,
        reward: str,
        features: str | Sequence[str],
        propensity: str,
        **options: Any,
    ) -> LogSpec:
        """Build a spec from command-line style arguments (lists may be comma-separated).

        Example:
            >>> spec = LogSpec.from_args(
            ...     "campaign.csv", action="promo", reward="10*purchase - 0.15*treated",
            ...     features="age,channel", propensity="split", control="none")
            >>> spec.features
            ['age', 'channel']

        Raises:
            ConfigError: Naming the argument and the problem.
        """
        try:
            return cls(
                file=Path(file),
                action=action,
                reward=reward,
                features=features,  # type: ignore[arg-type]  # split by the validator
                propensity=propensity,
                **options,
            )
        except ValidationError as exc:
            raise ConfigError(f"log spec: {_problems(exc)}") from None

    def to_yaml_dict(self) -> dict[str, Any]:
        """The fields that differ from the defaults, as YAML/JSON-ready values."""
        return self.model_dump(mode="json", exclude_defaults=True)


def _problems(error: ValidationError) -> str:
    """``"field: problem; field: problem"`` from a pydantic error."""
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or '<spec>'}: {item['msg']}"
        for item in error.errors()
    )


def list_presets() -> list[str]:
    """Names of the shipped log specs (``rec_env/datasets/presets/*.yaml``)."""
    root = resources.files("rec_env.datasets") / "presets"
    return sorted(p.name.rsplit(".", 1)[0] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str, **overrides: Any) -> LogSpec:
    """A shipped log spec, e.g. ``load_preset("hillstrom", reward="conversion")``.

    Raises:
        ConfigError: If there is no such preset, or an override is invalid.
    """
    candidate = resources.files("rec_env.datasets") / "presets" / f"{name}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"no log preset {name!r} (available: {', '.join(list_presets())})")
    return LogSpec.from_yaml(Path(str(candidate)), **overrides)
