r"""A randomised campaign log, its customers' twins in the simulator, and their segments.

:func:`read_campaign_log` reads the shipped Hillstrom campaign or a CSV with its columns (the
arm column, arm order, control and channel levels come from the offline log preset
``hillstrom``). :func:`twin_features` and :func:`campaign_segments` map each customer into the
simulator for :mod:`rec_env.fitting.responses`.

**Twins.** A Hillstrom customer becomes 16 observed features (:func:`twin_features`):

=============================  ===============================================================
``last_purchase_days``         ``recency`` months × 30.44 − 15.2 (mid-month), at most 730
``recency``                    = ``last_purchase_days`` (later visits are not logged)
``frequency``                  orders last year, ``history`` / the log's mean order value (at
                               least 1, they all bought), times 1 − 1/e, the builder's mean
                               one-year decay of an order within the year
``monetary_value``             ``history`` / orders (1 to 2,000)
``engagement_score``           0.65 · exp(−``last_purchase_days`` / 90): the simulator's
                               engagement right after a purchase (0.5 → 0.65), decayed like a
                               quiet customer's
``consent_email``              1 (all were e-mailable); ``consent_sms``, ``consent_push`` 0
``discount_sensitive``,        0: not tagged (the log has no CRM tags)
``free_shipping_preferred``
``email_opens`` …, contact     the documented defaults (:data:`~rec_env.customer.FEATURE_DEFAULTS`):
state                          no contact history is logged, so no fatigue
=============================  ===============================================================

``mens``, ``womens``, ``newbie`` and ``channel`` have no simulator feature: they define the
**segments**, buyer (mens only / womens only / both) × newbie × channel, 18 for Hillstrom (a
customer who bought neither counts with both). ``zip_code`` and ``history_segment`` are not used.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rec_env.features import FEATURE_HIGH, FEATURE_INDEX, FEATURE_NAMES

__all__ = [
    "ANY_EMAIL",
    "CAMPAIGN_COLUMNS",
    "CampaignLog",
    "CampaignLogError",
    "campaign_segments",
    "mean_order_value",
    "read_campaign_log",
    "require_arms",
    "twin_features",
]

CAMPAIGN_COLUMNS: tuple[str, ...] = (
    "recency",
    "history",
    "mens",
    "womens",
    "newbie",
    "channel",
    "visit",
    "conversion",
    "spend",
)
"""Columns a campaign log needs besides the arm (the preset's ``action`` column)."""

ANY_EMAIL = "any_email"
"""The pseudo-arm of all e-mail arms pooled."""

_BUYERS = ("mens", "womens", "both")
_DAYS_PER_MONTH = 365.25 / 12
_ENGAGEMENT_AT_PURCHASE = 0.65
_ENGAGEMENT_DECAY_DAYS = 90.0
_YEAR_DECAY = 1.0 - math.exp(-1.0)


class CampaignLogError(ValueError):
    """A campaign log is missing, malformed or unusable; the message names file, line, column."""


# ---------------------------------------------------------------------------- the log
@dataclass(frozen=True)
class CampaignLog:
    """A randomised campaign, one row per customer.

    Attributes:
        source: The file name, for messages and provenance.
        arm: ``(n,)`` index of each customer's arm in ``arm_names``.
        arm_names: Snake-case arm names (``mens_email``, ``womens_email``, ``no_email``).
        control: Index of the control (no e-mail) arm.
        recency: Months since the last purchase.
        history: Dollars spent in the past year.
        mens: 1 if the customer bought mens merchandise in the past year.
        womens: 1 if they bought womens merchandise.
        newbie: 1 if new in the past year.
        channel: Index of the purchase channel in ``channel_names``.
        channel_names: Snake-case channel names.
        visit: 0/1 visit in the window.
        conversion: 0/1 purchase in the window.
        spend: Dollars spent in the window.
        window_days: Length of the outcome window in days.
    """

    source: str
    arm: np.ndarray
    arm_names: tuple[str, ...]
    control: int
    recency: np.ndarray
    history: np.ndarray
    mens: np.ndarray
    womens: np.ndarray
    newbie: np.ndarray
    channel: np.ndarray
    channel_names: tuple[str, ...]
    visit: np.ndarray
    conversion: np.ndarray
    spend: np.ndarray
    window_days: float = 14.0

    @property
    def n(self) -> int:
        """Number of customers."""
        return int(self.arm.shape[0])

    @property
    def treated_arms(self) -> tuple[str, ...]:
        """The e-mail arms, in log order."""
        return tuple(a for k, a in enumerate(self.arm_names) if k != self.control)

    def outcome(self, name: str) -> np.ndarray:
        """``visit``, ``conversion`` or ``spend`` per customer."""
        return {"visit": self.visit, "conversion": self.conversion, "spend": self.spend}[name]

    def treated(self, arm: str) -> np.ndarray:
        """Bool mask of the customers in ``arm`` (``any_email``: every e-mail arm)."""
        if arm == ANY_EMAIL:
            return self.arm != self.control
        return self.arm == self.arm_names.index(arm)

    def subset(self, rows: np.ndarray) -> CampaignLog:
        """The customers at ``rows``."""
        arrays = {name: getattr(self, name)[rows] for name in ("arm", *CAMPAIGN_COLUMNS)}
        return CampaignLog(
            source=self.source,
            arm_names=self.arm_names,
            control=self.control,
            channel_names=self.channel_names,
            window_days=self.window_days,
            **arrays,
        )


def _snake(text: str) -> str:
    """``"Mens E-Mail"`` → ``"mens_email"``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower().replace("-", "")).strip("_") or "arm"


def read_campaign_log(source: str | Path = "hillstrom", window_days: float = 14.0) -> CampaignLog:
    """Read a campaign log: the shipped Hillstrom campaign, a CSV like it, or a log spec.

    A CSV is read with the offline log preset ``hillstrom``
    (``rec_env/datasets/presets/hillstrom.yaml``): its ``action`` column, arm order, ``control``
    arm and ``channel`` levels. A log spec YAML (:class:`~rec_env.datasets.LogSpec`, as for
    ``recenv offline``) names its own file, action column, arms, control and channel levels
    (default: the sorted values). Either way the file needs the columns of
    :data:`CAMPAIGN_COLUMNS` besides the arm.

    Args:
        source: ``"hillstrom"``, a CSV (or gzip CSV) file, or a log spec (``.yaml``/``.yml``).
        window_days: Length of the outcome window (Hillstrom: two weeks).

    Raises:
        CampaignLogError: Naming the file, and the line and column of the first bad value.
        ConfigError: If a log spec is invalid (naming the file and field).
    """
    import pandas as pd

    from rec_env.datasets.log_spec import load_preset

    if Path(source).suffix in (".yaml", ".yml"):
        from rec_env.datasets.log_spec import LogSpec

        spec = LogSpec.from_yaml(source)
        path = spec.file
    else:
        spec = load_preset("hillstrom")
        shipped = str(source) == "hillstrom" and not Path(source).exists()
        path = spec.file if shipped else Path(source)
    name = path.name
    if not path.is_file():
        raise CampaignLogError(f"{path}: file not found")
    if not 1.0 <= window_days <= 90.0:
        raise CampaignLogError(f"window_days must be between 1 and 90, got {window_days:g}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CampaignLogError(f"{name}: cannot read CSV ({exc})") from None
    needed = (*CAMPAIGN_COLUMNS, spec.action)
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise CampaignLogError(
            f"{name}: missing columns {', '.join(repr(c) for c in missing)} "
            f"(the file has: {', '.join(table.columns)})"
        )
    if table.empty:
        raise CampaignLogError(f"{name}: no customers (the file has only a header)")

    def numbers(column: str, binary: bool = False) -> np.ndarray:
        values = pd.to_numeric(table[column].str.strip(), errors="coerce").to_numpy(float)
        bad = ~np.isfinite(values) | (values < 0)
        if binary:
            bad |= (values != 0) & (values != 1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            expected = "0 or 1" if binary else "a number >= 0"
            raise CampaignLogError(
                f"{name}, line {row + 2}: column {column!r} must be {expected}, "
                f"got {table[column].iloc[row]!r}"
            )
        return values

    def codes(column: str, levels: list[str]) -> np.ndarray:
        lookup = {level: k for k, level in enumerate(levels)}
        values = table[column].str.strip()
        index = values.map(lookup)
        if index.isna().any():
            row = int(np.flatnonzero(index.isna().to_numpy())[0])
            raise CampaignLogError(
                f"{name}, line {row + 2}: column {column!r} has unknown value "
                f"{values.iloc[row]!r} (expected one of: {', '.join(levels)})"
            )
        return index.to_numpy(np.intp)

    if spec.control is None:
        raise CampaignLogError(f"{name}: the log spec names no control arm (field 'control')")
    actions = list(spec.actions or sorted(set(table[spec.action].str.strip())))
    channels = list(spec.levels.get("channel") or sorted(set(table["channel"].str.strip())))
    arm = codes(spec.action, actions)
    control = actions.index(spec.control)
    log = CampaignLog(
        source=name,
        arm=arm,
        arm_names=tuple(_snake(a) for a in actions),
        control=control,
        recency=numbers("recency"),
        history=numbers("history"),
        mens=numbers("mens", binary=True),
        womens=numbers("womens", binary=True),
        newbie=numbers("newbie", binary=True),
        channel=codes("channel", channels),
        channel_names=tuple(_snake(c) for c in channels),
        visit=numbers("visit", binary=True),
        conversion=numbers("conversion", binary=True),
        spend=numbers("spend"),
        window_days=float(window_days),
    )
    require_arms(log)
    return log


def require_arms(log: CampaignLog) -> None:
    """Check that the control and at least one e-mail arm have customers.

    Raises:
        CampaignLogError: Naming the empty arms.
    """
    counts = np.bincount(log.arm, minlength=len(log.arm_names))
    empty = [a for a, c in zip(log.arm_names, counts, strict=True) if c == 0]
    if empty or len(log.arm_names) < 2:
        raise CampaignLogError(
            f"{log.source}: column 'segment' needs customers in the control arm and at least one "
            f"e-mail arm; none in {', '.join(empty) or 'the e-mail arms'}"
        )


# ---------------------------------------------------------------------------- twins
def campaign_segments(log: CampaignLog) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """Each customer's segment: buyer (mens / womens / both) × newbie × channel.

    Returns:
        ``(codes, names, levels)``: ``(n,)`` segment index, the segment names
        (``mens_new_web`` …) and ``(n_segments, 3)`` the buyer, newbie and channel level of each.
    """
    buyer = np.where(
        (log.mens > 0.5) & (log.womens < 0.5),
        0,
        np.where((log.womens > 0.5) & (log.mens < 0.5), 1, 2),
    )
    n_channels = len(log.channel_names)
    codes = (buyer * 2 + (log.newbie > 0.5)) * n_channels + log.channel
    names, levels = [], []
    for b, buyer_name in enumerate(_BUYERS):
        for newbie, newbie_name in enumerate(("returning", "new")):
            for c, channel in enumerate(log.channel_names):
                names.append(f"{buyer_name}_{newbie_name}_{channel}")
                levels.append((b, newbie, c))
    return codes.astype(np.intp), tuple(names), np.array(levels, dtype=np.intp)


def mean_order_value(log: CampaignLog) -> float:
    """The log's mean spend per conversion (all arms); 100 if nobody bought."""
    bought = log.conversion > 0.5
    return float(log.spend[bought].mean()) if bought.any() else 100.0


def twin_features(log: CampaignLog, order_value: float | None = None) -> np.ndarray:
    """The 16 observed features of each customer's twin (see the module docstring).

    Args:
        log: The campaign.
        order_value: Dollars per order, to turn last year's spend into orders; the log's mean
            spend per conversion if omitted.

    Returns:
        ``(n, 16)`` float64 in :data:`rec_env.features.FEATURE_NAMES` order.
    """
    from rec_env.customer import FEATURE_DEFAULTS

    order_value = order_value or mean_order_value(log)
    obs = np.tile([FEATURE_DEFAULTS[name].value for name in FEATURE_NAMES], (log.n, 1))
    col = FEATURE_INDEX
    days = np.clip(
        log.recency * _DAYS_PER_MONTH - _DAYS_PER_MONTH / 2, 0.0, FEATURE_HIGH["last_purchase_days"]
    )
    orders = np.maximum(log.history / order_value, 1.0)
    obs[:, col["last_purchase_days"]] = days
    obs[:, col["recency"]] = days
    obs[:, col["frequency"]] = np.minimum(orders * _YEAR_DECAY, FEATURE_HIGH["frequency"])
    obs[:, col["monetary_value"]] = np.clip(
        log.history / orders, 1.0, FEATURE_HIGH["monetary_value"]
    )
    obs[:, col["engagement_score"]] = _ENGAGEMENT_AT_PURCHASE * np.exp(
        -days / _ENGAGEMENT_DECAY_DAYS
    )
    for flag in ("discount_sensitive", "free_shipping_preferred", "consent_sms", "consent_push"):
        obs[:, col[flag]] = 0.0
    obs[:, col["consent_email"]] = 1.0
    return obs
