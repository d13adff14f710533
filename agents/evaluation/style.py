"""The house style of recenv's figures: one palette, one type scale, units and plain labels.

Every figure recenv draws (``kpis.png``, ``learning_curves.png``, the explanation waterfalls and
summaries, the uplift and replay curves, and ``recenv report``) comes through this module, so a
policy has the same colour everywhere and a feature the same words.

**Why matplotlib, and SVG inlined in the report.** matplotlib is already a dependency (the CLI's
PNGs), draws the same figure for a PNG and for the report, and writes SVG: vector images a few
tens of kilobytes each that are text inside the HTML file, need no JavaScript, scale on any
screen, print cleanly and survive being e-mailed as one file. An interactive library such as
Plotly would inline about 3.5 MB of JavaScript into every report for hover tooltips that a
marketing manager reading a weekly report does not need. Text stays text in the SVG
(``svg.fonttype: none``), drawn in the reader's own sans-serif fonts, so nothing is fetched.

**Colours.** Each policy *family* has a hue and its members distinct shades of it
(:data:`FAMILY_SHADES`): reinforcement learning blue, bandits green, rules and heuristics
orange, learners from logs red, the oracle (a reference that sees the true expected rewards)
purple, and doing nothing grey. :func:`policy_colors` assigns the shades once per figure set.

**Labels.** Features are named in words from one table (:data:`FEATURE_WORDS`), with their
units from the feature definitions (:data:`rec_env.features.FEATURES`), e.g.
``feature_with_value("contacts_last_30d", 3)`` is ``"messages in the last 30 days = 3"``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rec_env.features import FEATURES
from rec_env.item_features import ITEM_FEATURE_KINDS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "FAMILY_SHADES",
    "FEATURE_WORDS",
    "HIGHLIGHT",
    "RC_PARAMS",
    "Period",
    "feature_label",
    "feature_value_text",
    "feature_with_value",
    "figure",
    "policy_colors",
    "policy_family",
    "pyplot",
    "run_group",
    "save_png",
    "svg_text",
]

DPI = 150
"""Resolution of the PNG files."""

FONT_SIZES = {"title": 11, "label": 9, "tick": 8, "legend": 8, "note": 7}
"""The type scale: titles, axis labels, tick labels, legends and footnotes (points)."""

RC_PARAMS: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial", "Liberation Sans", "sans-serif"],
    "font.size": FONT_SIZES["label"],
    "axes.titlesize": FONT_SIZES["title"],
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": FONT_SIZES["label"],
    "axes.labelcolor": "#333333",
    "axes.edgecolor": "#999999",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.8,
    "xtick.labelsize": FONT_SIZES["tick"],
    "ytick.labelsize": FONT_SIZES["tick"],
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "legend.fontsize": FONT_SIZES["legend"],
    "legend.frameon": False,
    "figure.titlesize": FONT_SIZES["title"] + 1,
    "figure.titleweight": "bold",
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "svg.fonttype": "none",
    "svg.hashsalt": "recenv",  # stable element ids: the same figure gives the same SVG
}

HIGHLIGHT = "#111111"
"""Edge colour and weight mark of the winner."""

FAMILY_SHADES: dict[str, tuple[str, ...]] = {
    "rl": ("#1f5fae", "#5b9bd5", "#0b3a75", "#9cc3ea", "#3d7cc9"),
    "bandit": ("#2e8b57", "#76c18f", "#155d36", "#a9dbb6", "#4fa872"),
    "rule": ("#d9741c", "#f2a65a", "#9c4a0b", "#f7c99a", "#e88d3a"),
    "learned": ("#c0392b", "#e07b6f", "#8e1f16", "#f0aaa1", "#d4584b"),
    "oracle": ("#7b52ab", "#b39ad6"),
    "no_action": ("#8c8c8c",),
    "other": ("#8c6d31", "#bd9e39", "#e7ba52"),
}
"""Shades of each policy family, the first the strongest."""

FAMILY_WORDS: dict[str, str] = {
    "rl": "reinforcement learning",
    "bandit": "bandit",
    "rule": "rule",
    "learned": "learned from logs",
    "oracle": "oracle (sees the true expected rewards)",
    "no_action": "no messages",
    "other": "other",
}
"""Each family in words, for legends."""

_FAMILY_NAMES: dict[str, tuple[str, ...]] = {
    "rl": ("ppo", "a2c", "dqn", "maskable_ppo", "maskableppo", "drr", "sac"),
    "bandit": (
        "linucb",
        "lin_ts",
        "lints",
        "thompson",
        "ucb",
        "ucb1",
        "egreedy",
        "epsilon_greedy",
        "hybrid_linucb",
        "hybrid_lin_ts",
        "linucb_replay",
    ),
    "oracle": ("oracle", "diverse_oracle", "myopic_oracle"),
    "no_action": ("no_action", "never", "no_email", "nothing", "holdout", "control"),
    "rule": (
        "random",
        "best_fixed",
        "rule",
        "cooldown",
        "popular",
        "popular_category",
        "item_similarity",
        "fixed",
        "always",
        "always_mens",
        "always_womens",
        "constant",
        "baseline",
    ),
    "learned": (
        "reward_model",
        "t_learner",
        "x_learner",
        "dr_learner",
        "ipw",
        "offline",
        "tree",
        "boosting",
    ),
}
"""Names (tokens of a label) that place a policy in a family; the first match wins."""

_TOKEN = re.compile(r"[a-z0-9_]+")


def policy_family(label: str) -> str:
    """The family of a policy from its label (an algorithm, baseline or run-directory name).

    ``"ppo-seed0"`` is ``"rl"``, ``"linucb (online)"`` ``"bandit"``, ``"best_fixed"``
    ``"rule"``, ``"always no_action"`` ``"no_action"``, an unknown name ``"other"``.
    """
    tokens = _TOKEN.findall(label.lower())
    if not tokens:
        return "other"
    if any(t in _FAMILY_NAMES["no_action"] for t in tokens):
        return "no_action"
    for family, names in _FAMILY_NAMES.items():
        if tokens[0] in names or any(tokens[0].startswith(f"{n}_") for n in names):
            return family
    for family, names in _FAMILY_NAMES.items():
        if any(t in names for t in tokens):
            return family
    return "other"


_SEED = re.compile(r"[-_ ]?seed[-_ ]?\d+$")


def run_group(label: str) -> str:
    """The label without its seed suffix (``ppo-seed3`` → ``ppo``): runs of one algorithm."""
    return _SEED.sub("", label) or label


def policy_colors(labels: Iterable[str]) -> dict[str, str]:
    """A colour per label: its family's hue, a distinct shade per member in label order.

    Labels that differ only by their seed (:func:`run_group`) share a colour. Members of a
    family beyond its shades reuse them in turn (a family rarely has more). Pass every label
    of a report at once so that a policy keeps its colour in every figure.
    """
    used: dict[str, int] = {}
    groups: dict[str, str] = {}
    colors: dict[str, str] = {}
    for label in dict.fromkeys(labels):
        group = run_group(label)
        if group not in groups:
            family = policy_family(group)
            shades = FAMILY_SHADES[family]
            groups[group] = shades[used.get(family, 0) % len(shades)]
            used[family] = used.get(family, 0) + 1
        colors[label] = groups[group]
    return colors


# ----------------------------------------------------------------------------- time units
@dataclass(frozen=True)
class Period:
    """The simulated time: the cycle (a decision every ``cycle_days``) and the horizon.

    Attributes:
        horizon: Cycles per customer lifetime.
        cycle_days: Days per cycle.
    """

    horizon: int = 52
    cycle_days: float = 7.0

    @classmethod
    def of(cls, settings: Any) -> Period:
        """The period of :class:`~rec_env.settings.EnvSettings` or of its dict form."""
        if isinstance(settings, dict):
            return cls(int(settings.get("horizon", 52)), float(settings.get("cycle_days", 7.0)))
        return cls(int(settings.horizon), float(settings.cycle_days))

    @property
    def cycle(self) -> str:
        """One cycle in words: ``week``, ``day`` or ``10-day cycle``."""
        return {7.0: "week", 1.0: "day", 14.0: "fortnight"}.get(
            self.cycle_days, f"{self.cycle_days:g}-day cycle"
        )

    @property
    def lifetime(self) -> str:
        """The horizon in words: ``year`` for 52 weeks, else e.g. ``26 weeks``."""
        days = self.horizon * self.cycle_days
        if 360 <= days <= 366:
            return "year"
        return f"{self.horizon} {self.cycle}s"

    @property
    def per_lifetime(self) -> str:
        """``a year`` or ``over 26 weeks``."""
        return "a year" if self.lifetime == "year" else f"over {self.lifetime}"


# ----------------------------------------------------------------------------- features
FEATURE_WORDS: dict[str, str] = {
    "recency": "days since last interaction",
    "frequency": "purchases in the last year",
    "monetary_value": "average order",
    "engagement_score": "engagement score",
    "discount_sensitive": "uses discount coupons",
    "free_shipping_preferred": "prefers free shipping",
    "email_opens": "e-mail open rate",
    "sms_response": "SMS click rate",
    "push_response": "push open rate",
    "last_purchase_days": "days since last purchase",
    "days_since_contact": "days since last message",
    "contacts_last_30d": "messages in the last 30 days",
    "discounts_last_90d": "discount offers in the last 90 days",
    "consent_email": "accepts e-mail",
    "consent_sms": "accepts SMS",
    "consent_push": "accepts push",
}
"""Each observed feature in words; its unit comes from :data:`rec_env.features.FEATURES`."""

_ITEM_KIND_WORDS = {
    "purchases": "recent purchases in {category}",
    "recommended": "{category} products shown recently",
    "days_since": "days since a {category} purchase",
}
_UNITS = {f.name: f.unit for f in FEATURES}


def feature_label(name: str) -> str:
    """A feature in words.

    The env's from :data:`FEATURE_WORDS`, an item feature's from its kind and category, any
    other with its underscores as spaces.
    """
    if name in FEATURE_WORDS:
        return FEATURE_WORDS[name]
    for kind in ITEM_FEATURE_KINDS:
        if name.startswith(f"{kind}_"):
            category = name.removeprefix(f"{kind}_").replace("_", " ")
            return _ITEM_KIND_WORDS[kind].format(category=category)
    return name.replace("_", " ")


def feature_value_text(name: str, value: float) -> str:
    """A feature's value in its unit: ``yes``/``no`` for flags, ``%`` for rates, ``$`` for USD."""
    unit = _UNITS.get(name)
    value = float(value)
    if unit == "flag":
        return "yes" if value > 0.5 else "no"
    if unit == "rate":
        return f"{100 * value:.0f} %"
    if unit == "USD":
        return f"${value:,.0f}"
    if unit == "score":
        return f"{value:.2f}"
    if unit == "days":
        return f"{value:,.0f}"
    if value.is_integer():
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def feature_with_value(name: str, value: float) -> str:
    """``"messages in the last 30 days = 3"``: a feature and its value in words."""
    return f"{feature_label(name)} = {feature_value_text(name, value)}"


# ----------------------------------------------------------------------------- figures
def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def figure(**kwargs: Any) -> Iterator[Figure]:
    """A new figure (``plt.subplots`` arguments) drawn in the house style.

    Yields:
        The figure; the caller saves it or returns it before the block ends.
    """
    plt = pyplot()
    with plt.rc_context(RC_PARAMS):
        fig, _ = plt.subplots(**kwargs)
        yield fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (its format follows the suffix) and close it."""
    plt = pyplot()
    with plt.rc_context(RC_PARAMS):
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def svg_text(fig: Figure) -> str:
    """``fig`` as an ``<svg>`` element to inline in HTML, and close it.

    No XML prolog, document type or metadata (creator, date), so the text has no external
    reference and the same figure gives the same SVG.
    """
    plt = pyplot()
    buffer = io.StringIO()
    with plt.rc_context(RC_PARAMS):
        fig.savefig(
            buffer,
            format="svg",
            dpi=DPI,  # of the rasterised parts
            bbox_inches="tight",
            metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
        )
    plt.close(fig)
    text = buffer.getvalue()
    return _COORDINATES.sub(_rounded, text[text.index("<svg") :])


_COORDINATES = re.compile(r'(\s(?:d|x|y|points|transform)=")([^"]*)"')
_DECIMALS = re.compile(r"(\d+\.\d)\d+")


def _rounded(match: re.Match[str]) -> str:
    """Coordinates to 0.1 pt: a third smaller SVG, no visible change."""
    return match.group(1) + _DECIMALS.sub(r"\1", match.group(2)) + '"'
