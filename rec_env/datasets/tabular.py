r"""Reading a retailer's own log (CSV or Parquet) into logged bandit data.

:func:`read_log` takes a :class:`~rec_env.datasets.log_spec.LogSpec` and returns a
:class:`TabularLog`: the :class:`~rec_env.datasets.logged.LoggedBanditData` that off-policy
estimators and offline learners read, plus what is needed to use the result later on other
files: the fitted feature encoder, the reward specification, the raw outcome columns, the
action names and row ids.

Propensities (a column, ``uniform``, ``split`` or a fitted ``model``) are described in
:mod:`rec_env.datasets.propensity`.

Errors name the file, the row (1-based data row, and its line for CSV) and the column.
Importing this module loads numpy and pydantic only; pyarrow loads for Parquet files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rec_env.datasets.encoding import (
    Location,
    TabularEncoder,
    as_numbers,
    as_strings,
    as_texts,
    codes_of,
    shown,
)
from rec_env.datasets.log_spec import PROPENSITY_KEYWORDS, LogSpec
from rec_env.datasets.logged import LoggedBanditData
from rec_env.datasets.propensity import (
    NonRandomisedLogWarning,
    PropensityEstimate,
    PropensityModel,
    logging_propensities,
    warn_non_randomised,
)
from rec_env.datasets.reward_spec import RewardSpec
from rec_env.datasets.table_io import check_columns, read_columns, read_header
from rec_env.errors import ConfigError
from rec_env.feature_space import FeatureSpace

__all__ = [
    "NonRandomisedLogWarning",
    "PropensityEstimate",
    "PropensityModel",
    "TabularLog",
    "read_log",
]


@dataclass(frozen=True)
class TabularLog:
    """A log read by :func:`read_log`: the bandit data and what is needed to reuse it.

    Attributes:
        data: Contexts (encoded features), actions, propensities, rewards and, when given,
            positions and action features.
        encoder: The fitted feature encoding (save it with the run; pass it to
            :func:`read_log` for later files).
        reward: The parsed reward specification (linear form).
        outcomes: The raw outcome columns the reward reads (numbers, or text for columns
            compared with strings).
        term_values: ``(n, n_terms)`` value of each reward term (what a model of the outcome
            is trained on).
        action_names: Action names in index order (the action column's values).
        control: Index of the control action, or ``None``.
        row_ids: ``(n,)`` the ``row_id`` column, or the 0-based data row index.
        propensity: How the propensities were obtained and the observed split.
        spec: The spec, resolved: ``actions`` (and ``position_levels``) filled in, so that
            reading another file with it gives the same action indices.
        action_feature_encoder: The encoding of the action feature table, if any.
    """

    data: LoggedBanditData
    encoder: TabularEncoder
    reward: RewardSpec
    outcomes: dict[str, np.ndarray]
    term_values: np.ndarray
    action_names: tuple[str, ...]
    control: int | None
    row_ids: np.ndarray
    propensity: PropensityEstimate
    spec: LogSpec
    action_feature_encoder: TabularEncoder | None = None

    @property
    def feature_space(self) -> FeatureSpace:
        """The feature space of the contexts (names like ``channel=Web``)."""
        return self.encoder.feature_space

    @property
    def control_name(self) -> str | None:
        """Name of the control action, or ``None``."""
        return None if self.control is None else self.action_names[self.control]

    def __len__(self) -> int:
        return self.data.n


def _sorted_values(texts: np.ndarray) -> list[str]:
    """Distinct values, numerically sorted if all are numbers, else as text."""
    distinct = np.unique(texts).tolist()
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return distinct


def _codes(
    values: np.ndarray, column: str, order: list[str] | None, where: Location
) -> tuple[np.ndarray, list[str]]:
    """Index of each value in ``order`` (default: the sorted distinct values), and the order.

    Raises:
        ConfigError: Naming file, row and column of a missing value or one not in ``order``.
    """
    texts, missing = as_texts(values)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise ConfigError(f"{where.cell(i, column)}: the value is missing")
    order = _sorted_values(texts) if order is None else order
    codes = codes_of(texts, missing, order)
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        raise ConfigError(
            f"{where.cell(i, column)}: {shown(texts[i])} is not one of the listed values "
            f"({', '.join(order)})"
        )
    return codes, order


def _outcomes(
    raw: Mapping[str, np.ndarray], reward: RewardSpec, where: Location
) -> dict[str, np.ndarray]:
    """The reward's columns: text if compared with strings, else numbers; none missing."""
    text = reward.text_columns()
    outcomes = {}
    for column in reward.columns:
        if column in text:
            values, missing = as_texts(raw[column])
        else:
            values = as_numbers(raw[column], column, where)
            missing = np.isnan(values)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise ConfigError(f"{where.cell(i, column)}: the outcome is missing")
        outcomes[column] = values
    return outcomes


def _action_context(
    spec: LogSpec, action_names: list[str]
) -> tuple[np.ndarray | None, TabularEncoder | None]:
    """``(n_actions, d_a)`` encoded action features in action order, and their encoder."""
    if spec.action_features is None:
        return None, None
    path = spec.action_features
    key = spec.action_key or spec.action
    header = read_header(path)
    check_columns(path, header, [key], "action key")
    feature_columns = [name for name in header if name != key]
    if not feature_columns:
        raise ConfigError(f"{path}: the action feature table has no columns besides {key!r}")
    raw, where = read_columns(path, [key, *feature_columns])
    keys = as_strings(raw[key])
    found: dict[str, int] = {}
    for i, value in enumerate(keys.tolist()):
        if value in found:
            raise ConfigError(f"{where.cell(i, key)}: action {value!r} is listed twice")
        found[str(value)] = i
    absent = [name for name in action_names if name not in found]
    if absent:
        raise ConfigError(f"{path}: no row for action(s) {', '.join(absent)} in column {key!r}")
    encoder = TabularEncoder.fit(raw, feature_columns, where=where)
    rows = np.array([found[name] for name in action_names])
    return encoder.transform(raw, where)[rows], encoder


def read_log(
    spec: LogSpec,
    *,
    encoder: TabularEncoder | None = None,
    propensity_model: PropensityModel | None = None,
) -> TabularLog:
    """Read a campaign or recommendation log described by ``spec``.

    Only the columns the spec names are read. Nothing is random: the same file and spec give
    the same result.

    Args:
        spec: What the file holds (:class:`~rec_env.datasets.log_spec.LogSpec`).
        encoder: A fitted feature encoding to apply (e.g. the training log's, when reading a
            test file); ``None`` fits one on this file.
        propensity_model: The fitted model for ``propensity: model``.

    Returns:
        The :class:`TabularLog`.

    Raises:
        ConfigError: Naming the file, row and column of anything unreadable, missing or
            invalid (and the expression and token of a bad reward).

    Warns:
        NonRandomisedLogWarning: If the log is declared non-randomised or uses a propensity
            model.
        UserWarning: If ``propensity: uniform`` contradicts the observed split.
    """
    reward, raw, where = _read_raw(spec)
    actions, action_names = _codes(raw[spec.action], spec.action, spec.actions, where)
    if spec.control is not None and spec.control not in action_names:
        raise ConfigError(
            f"{spec.file}: control action {spec.control!r} is not one of the actions "
            f"({', '.join(action_names)})"
        )
    if encoder is None:
        encoder, contexts = TabularEncoder.fit_transform(
            raw,
            spec.features,
            categorical=spec.categorical,
            numeric=spec.numeric,
            levels=spec.levels,
            unseen=spec.unseen,
            missing=spec.missing,
            where=where,
        )
    else:
        contexts = encoder.transform(raw, where)
    outcomes = _outcomes(raw, reward, where)
    try:
        rewards = reward.evaluate(outcomes, actions, action_names, spec.control)
    except ConfigError as exc:
        raise ConfigError(f"{spec.file}: {exc}") from None
    positions, position_levels = None, spec.position_levels
    if spec.positions is not None:
        positions, position_levels = _codes(
            raw[spec.positions], spec.positions, spec.position_levels, where
        )
    if not spec.randomised or spec.propensity == "model":
        warn_non_randomised(str(spec.file))
    method = spec.propensity if spec.propensity in PROPENSITY_KEYWORDS else "column"
    propensities, distribution, estimate = logging_propensities(
        method,  # type: ignore[arg-type]
        actions,
        len(action_names),
        column=_propensity_column(spec.propensity, raw, where) if method == "column" else None,
        positions=positions,
        n_positions=None if positions is None else len(position_levels or ()),
        contexts=contexts,
        model=propensity_model,
        source=str(spec.file),
    )
    action_context, action_encoder = _action_context(spec, action_names)
    data = LoggedBanditData(
        contexts=contexts,
        actions=actions,
        propensities=propensities,
        rewards=rewards,
        n_actions=len(action_names),
        action_names=tuple(action_names),
        feature_names=encoder.names,
        positions=positions,
        n_positions=None if positions is None else len(position_levels or ()),
        action_context=action_context,
        logging_distribution=distribution,
    )
    return TabularLog(
        data=data,
        encoder=encoder,
        reward=reward,
        outcomes=outcomes,
        term_values=reward.term_values(outcomes, data.n),
        action_names=tuple(action_names),
        control=None if spec.control is None else action_names.index(spec.control),
        row_ids=np.arange(data.n) if spec.row_id is None else as_strings(raw[spec.row_id]),
        propensity=estimate,
        spec=spec.model_copy(
            update={"actions": list(action_names), "position_levels": position_levels}
        ),
        action_feature_encoder=action_encoder,
    )


def _read_raw(spec: LogSpec) -> tuple[RewardSpec, dict[str, np.ndarray], Location]:
    """The parsed reward and the raw columns the spec needs (and only those)."""
    path = spec.file
    header = read_header(path, spec.format, spec.delimiter)
    try:
        reward = RewardSpec.parse(spec.reward, spec.costs, columns=header)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    extra = [spec.positions, spec.row_id]
    if spec.propensity not in PROPENSITY_KEYWORDS:
        extra.append(spec.propensity)
    needed = [spec.action, *spec.features, *reward.columns, *(c for c in extra if c)]
    check_columns(path, header, needed, "column named in the log spec")
    raw, where = read_columns(
        path, needed, format=spec.format, delimiter=spec.delimiter, max_rows=spec.max_rows
    )
    return reward, raw, where


def _propensity_column(column: str, raw: Mapping[str, np.ndarray], where: Location) -> np.ndarray:
    """The logged propensities, each in (0, 1].

    Raises:
        ConfigError: Naming file, row and column of a missing or out-of-range propensity.
    """
    values = as_numbers(raw[column], column, where)
    bad = np.isnan(values) | (values <= 0) | (values > 1.0 + 1e-9)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ConfigError(
            f"{where.cell(i, column)}: propensity {shown(raw[column][i])} is not in (0, 1]: "
            "off-policy estimates need the logged action's probability"
        )
    return values
