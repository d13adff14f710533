"""The picture of one customer's year: what the single-customer envs' ``render()`` draws.

Drawn with matplotlib's Agg canvas into a fixed ``(450, 800, 3)`` uint8 array (no window, no
pyplot state). Imported only when an env renders, so ``import rec_env`` stays numpy + gymnasium.

Layout:

* header: the segment, the week, the profit so far, and this week's message and what it did;
* left, **the customer as the retailer sees them** (the observed features, in their units):
  recency, frequency and average order (RFM); engagement and fatigue (messages in the last 30
  days); the observed response of each channel; the discount habit (discounts in the last 90
  days, the discount-sensitive and free-shipping flags); and a chip per channel, green with
  consent (subscribed), red without. Bars are scaled like the policies' inputs
  (:func:`rec_env.wrappers.scale_features`);
* right top, **the last 13 weeks**: one row per channel, a cell per message coloured by its
  offer (faded when not opened, hatched when not delivered for lack of consent, a red cross
  where it made the customer unsubscribe), and a row of outcomes: purchases with their revenue,
  and churn;
* right bottom, **profit so far** over the whole episode (USD), with purchases marked and the
  13 weeks above shaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from rec_env.features import CHANNELS, FEATURE_INDEX, FEATURE_NAMES
from rec_env.render.timeline import CustomerTimeline, CycleRecord
from rec_env.wrappers import scale_features

__all__ = ["FRAME_SHAPE", "WINDOW_WEEKS", "draw_customer"]

FRAME_SHAPE: tuple[int, int, int] = (450, 800, 3)
"""Shape of every frame: height, width, RGB."""

WINDOW_WEEKS = 13
"""Cycles shown in the campaign calendar (a quarter of weekly cycles)."""

_DPI = 100
_CHANNEL_LABELS = {"email": "e-mail", "sms": "SMS", "push": "push"}
_OFFER_COLOURS = {
    "discount": "#e6862e",
    "free_shipping": "#3b7dd8",
    "recommendation": "#8e5cc4",
    "product": "#2a9d8f",
}
_OFFER_NAMES = {
    "discount": "discount",
    "free_shipping": "free shipping",
    "recommendation": "recommendation",
    "product": "product",
}
_GOOD, _BAD, _INK, _MUTED, _TRACK = "#2f9e44", "#d64545", "#222222", "#777777", "#e9e9ee"
_GROUP_COLOURS = {
    "RFM": "#4c72b0",
    "engagement and fatigue": "#dd8452",
    "channel response": "#2a9d8f",
    "discount habit": "#8e5cc4",
}

# (group, label, feature, format of the value)
_CARD_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("RFM", "days since last purchase", "last_purchase_days", "{:.0f} d"),
    ("RFM", "purchases per year", "frequency", "{:.1f}"),
    ("RFM", "average order", "monetary_value", r"\${:.0f}"),
    ("engagement and fatigue", "engagement score", "engagement_score", "{:.2f}"),
    ("engagement and fatigue", "days since last activity", "recency", "{:.0f} d"),
    ("engagement and fatigue", "messages, last 30 days", "contacts_last_30d", "{:.0f}"),
    ("engagement and fatigue", "days since last message", "days_since_contact", "{:.0f} d"),
    ("channel response", "e-mail open rate", "email_opens", "{:.0%}"),
    ("channel response", "SMS click rate", "sms_response", "{:.0%}"),
    ("channel response", "push open rate", "push_response", "{:.0%}"),
    ("discount habit", "discounts, last 90 days", "discounts_last_90d", "{:.0f}"),
)


def draw_customer(
    features: np.ndarray,
    timeline: CustomerTimeline,
    *,
    segment: str,
    cycle: int,
    title: str = "",
    offer_kinds: Sequence[str] = ("discount", "free_shipping", "recommendation"),
) -> np.ndarray:
    """The picture of one customer (layout in the module docstring).

    Args:
        features: The 16 strategy features (:data:`rec_env.features.FEATURE_NAMES`) in the env's
            units; the item worlds pass their first 16.
        timeline: The customer's cycles so far.
        segment: Name of the customer's segment.
        cycle: Cycles done (0 right after ``reset``).
        title: Text before the segment in the header, e.g. the policy's name.
        offer_kinds: Kinds of offer in the legend (:attr:`ActionGlyph.kind`), in order.

    Returns:
        ``FRAME_SHAPE`` uint8 array; the same inputs give the same pixels.
    """
    features = np.asarray(features, dtype=np.float64)[: len(FEATURE_NAMES)]
    with mpl.rc_context(_STYLE):
        figure = Figure(figsize=(FRAME_SHAPE[1] / _DPI, FRAME_SHAPE[0] / _DPI), dpi=_DPI)
        canvas = FigureCanvasAgg(figure)
        _draw_header(figure, timeline, segment, cycle, title)
        _draw_card(figure, features)
        # Text and patches rather than ticks and a legend where the layout is fixed: a frame
        # then costs a few tens of milliseconds, not a few hundred (RecordVideo draws every step).
        calendar = figure.add_axes(_CALENDAR_BOX, xticks=[], yticks=[])
        _draw_calendar(figure, calendar, features, timeline, cycle)
        _draw_legend(figure, offer_kinds)
        _draw_profit(figure, figure.add_axes(_PROFIT_BOX), timeline, cycle)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()


_STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.edgecolor": "#bbbbbb",
    "axes.linewidth": 0.6,
    "xtick.color": _MUTED,
    "ytick.color": _MUTED,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "xtick.major.size": 2,
    "ytick.major.size": 2,
}
_CALENDAR_BOX = (0.455, 0.43, 0.53, 0.315)  # left, bottom, width, height (figure fractions)
_PROFIT_BOX = (0.455, 0.065, 0.53, 0.16)
_CARD_LEFT, _CARD_BAR, _CARD_RIGHT = 0.015, 0.205, 0.355
_NAME_CHARS = 40  # longer action names (a slate's products) end in "…"
_CARD_TOP, _CARD_ROW = 0.835, 0.04  # figure fractions: the card's title, one row's height


def _money(value: float) -> str:
    # "\$": two dollar signs in one text would make matplotlib typeset what lies between as maths
    return rf"-\${-value:,.2f}" if value < 0 else rf"\${value:,.2f}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _draw_header(
    figure: Figure, timeline: CustomerTimeline, segment: str, cycle: int, title: str
) -> None:
    who = f"{title} · " if title else ""
    figure.text(0.015, 0.955, f"{who}customer from '{segment}'", fontsize=11, weight="bold")
    figure.text(0.015, 0.905, _year_text(timeline, cycle), fontsize=8.5, color=_MUTED)
    profit = float(timeline.cumulative_profit()[-1])
    figure.text(0.985, 0.955, "profit so far", fontsize=8, color=_MUTED, ha="right")
    colour = _GOOD if profit >= 0 else _BAD
    figure.text(0.985, 0.885, _money(profit), fontsize=15, weight="bold", ha="right", color=colour)
    sent, outcome = _last_cycle_text(timeline)
    figure.text(0.455, 0.865, sent, fontsize=8.5, color=_INK, weight="bold")
    figure.text(0.455, 0.825, outcome, fontsize=8.5, color=_INK)


def _year_text(timeline: CustomerTimeline, cycle: int) -> str:
    cycles = timeline.cycles
    sent = sum(c.delivered for c in cycles)
    bought = [c.revenue for c in cycles if c.purchased]
    unsubscribed = sum(c.unsubscribed for c in cycles)
    text = f"week {cycle} of {timeline.horizon}  ·  {_count(sent, 'message')}"
    text += f"  ·  {_count(len(bought), 'purchase')}"
    text += f" ({_money(sum(bought))})" if bought else ""
    return text + (f"  ·  {_count(unsubscribed, 'unsubscribe')}" if unsubscribed else "")


def _last_cycle_text(timeline: CustomerTimeline) -> tuple[str, str]:
    """What was sent in the last cycle, and what came of it."""
    if not timeline.cycles:
        return "No message yet", ""
    last = timeline.cycles[-1]
    if last.glyph.channel == "none":
        sent = "This week: no message"
    else:
        name = last.action if len(last.action) <= _NAME_CHARS else last.action[:_NAME_CHARS] + "…"
        sent = f"This week: {name}"
        sent += "" if last.delivered else " (no consent: not sent)"
    events = []
    if last.delivered:
        events.append("opened" if last.opened else "not opened")
    events.append(f"bought {_money(last.revenue)}" if last.purchased else "no purchase")
    if last.unsubscribed:
        events.append(f"unsubscribed ({_CHANNEL_LABELS[last.glyph.channel]})")
    if last.churned:
        events.append("churned")
    return sent, f"→ {', '.join(events)}; profit {_money(last.profit)}"


def _draw_card(figure: Figure, features: np.ndarray) -> None:
    """The observed features, in rows from the top (``y`` counts rows of ``_CARD_ROW``)."""

    def text(y: float, value: str, x: float = _CARD_LEFT, **kwargs: Any) -> None:
        figure.text(x, _CARD_TOP - y * _CARD_ROW, value, va="center", **kwargs)

    text(0.0, "What the retailer sees", fontsize=9, weight="bold")
    scaled = scale_features(features)
    width = _CARD_RIGHT - 0.002 - 0.045 - _CARD_BAR  # room for the value on the right
    y, group = 0.0, ""
    for row_group, label, name, fmt in _CARD_ROWS:
        if row_group != group:
            group = row_group
            y += 1.2
            text(y, group, fontsize=7, color=_GROUP_COLOURS[group], weight="bold")
        y += 0.95
        i = FEATURE_INDEX[name]
        text(y, label, fontsize=7.5, color=_INK)
        bottom = _CARD_TOP - (y + 0.3) * _CARD_ROW
        filled = width * float(np.clip(scaled[i], 0.0, 1.0))
        for length, colour in ((width, _TRACK), (filled, _GROUP_COLOURS[group])):
            figure.add_artist(
                Rectangle((_CARD_BAR, bottom), length, 0.6 * _CARD_ROW, color=colour, lw=0)
            )
        text(y, fmt.format(features[i]), x=_CARD_RIGHT, fontsize=7.5, ha="right")
    for label, name in (
        ("discount-sensitive", "discount_sensitive"),
        ("prefers free shipping", "free_shipping_preferred"),
    ):
        y += 0.95
        text(y, label, fontsize=7.5, color=_INK)
        flag = "yes" if features[FEATURE_INDEX[name]] > 0.5 else "no"
        text(y, flag, x=_CARD_RIGHT, fontsize=7.5, ha="right")
    y += 1.2
    text(y, "subscribed to", fontsize=7, color=_MUTED, weight="bold")
    y += 1.1
    for k, channel in enumerate(CHANNELS):
        consent = features[FEATURE_INDEX[f"consent_{channel}"]] > 0.5
        label = f"{'✓' if consent else '✗'} {_CHANNEL_LABELS[channel]}"
        box = {"boxstyle": "round,pad=0.35", "facecolor": _GOOD if consent else _BAD, "lw": 0}
        text(y, label, x=_CARD_LEFT + 0.005 + k * 0.1, color="white", weight="bold", bbox=box)


def _window_start(cycle: int) -> int:
    """First week (1-based) of the calendar: the last ``WINDOW_WEEKS`` weeks up to ``cycle``."""
    return max(1, cycle - WINDOW_WEEKS + 1)


def _draw_calendar(
    figure: Figure, axes: Axes, features: np.ndarray, timeline: CustomerTimeline, cycle: int
) -> None:
    first = _window_start(cycle)
    weeks = range(first, first + WINDOW_WEEKS)
    n_rows = len(CHANNELS) + 1  # a row per channel, then the outcomes
    axes.set_xlim(first - 0.5, first + WINDOW_WEEKS - 0.5)
    axes.set_ylim(n_rows - 0.5, -0.5)
    left, bottom, _, height = _CALENDAR_BOX
    figure.text(
        left,
        bottom + height + 0.015,
        f"Last {WINDOW_WEEKS} weeks: messages and what they did",
        fontsize=9,
        weight="bold",
    )
    for week in weeks:
        axes.text(
            week,
            n_rows - 0.2,
            str(week),
            ha="center",
            va="top",
            fontsize=7,
            color=_MUTED,
            clip_on=False,
        )
    labels = [_CHANNEL_LABELS[c] for c in CHANNELS] + ["outcome"]
    for row, label in enumerate(labels):
        # an unsubscribed channel's label turns red
        off = row < len(CHANNELS) and features[FEATURE_INDEX[f"consent_{CHANNELS[row]}"]] < 0.5
        axes.text(
            first - 0.7,
            row,
            label,
            ha="right",
            va="center",
            fontsize=7.5,
            color=_BAD if off else _MUTED,
            clip_on=False,
        )
        axes.axhline(row + 0.5, color="#eeeeee" if row < n_rows - 1 else "none", lw=0.6)
    axes.axhline(len(CHANNELS) - 0.5, color="#bbbbbb", lw=0.8)
    for week in weeks:
        if week <= len(timeline):
            _draw_week(axes, week, timeline.cycles[week - 1])
    if cycle < first + WINDOW_WEEKS - 1:  # the weeks to come
        axes.axvspan(cycle + 0.5, first + WINDOW_WEEKS - 0.5, color="#f6f6f8", lw=0)


def _draw_week(axes: Axes, week: int, record: CycleRecord) -> None:
    glyph = record.glyph
    if glyph.channel != "none":
        y = CHANNELS.index(glyph.channel)
        colour = _OFFER_COLOURS[glyph.kind]
        alpha = 1.0 if record.opened else 0.45
        hatch = None if record.delivered else "////"
        face = colour if record.delivered else "none"
        axes.add_artist(
            Rectangle(
                (week - 0.45, y - 0.38),
                0.9,
                0.76,
                facecolor=face,
                edgecolor=colour,
                hatch=hatch,
                alpha=alpha,
                lw=0.8,
            )
        )
        axes.text(week, y, glyph.label, ha="center", va="center", fontsize=6, color=_INK)
        if record.unsubscribed:
            axes.plot(week, y, marker="x", color=_BAD, markersize=11, mew=2.2)
    outcome_row = len(CHANNELS)
    if record.purchased:
        axes.plot(week, outcome_row - 0.12, "o", color=_GOOD, markersize=7)
        revenue = rf"\${record.revenue:.0f}"
        axes.text(week, outcome_row + 0.3, revenue, ha="center", va="center", fontsize=6)
    if record.churned:
        axes.text(
            week,
            outcome_row,
            "churned",
            ha="center",
            va="center",
            fontsize=6.5,
            color="white",
            weight="bold",
            bbox={"boxstyle": "round,pad=0.2", "facecolor": _BAD, "edgecolor": "none"},
        )


def _draw_legend(figure: Figure, kinds: Sequence[str]) -> None:
    """Two rows of keys under the calendar, in columns of a fixed width."""
    keys: list[tuple[str, dict[str, Any]]] = [
        (_OFFER_NAMES[kind], {"facecolor": _OFFER_COLOURS[kind]}) for kind in kinds
    ]
    keys += [
        ("not opened", {"facecolor": "#999999", "alpha": 0.45}),
        ("no consent", {"facecolor": "none", "edgecolor": "#999999", "hatch": "////"}),
    ]
    marks = [("unsubscribed", "x", _BAD), ("purchase", "o", _GOOD)]
    left, bottom, width, _ = _CALENDAR_BOX
    n_columns = (len(keys) + len(marks) + 1) // 2
    column = width / n_columns
    for k in range(len(keys) + len(marks)):
        x, y = left + (k % n_columns) * column, bottom - 0.075 - (k // n_columns) * 0.04
        if k < len(keys):
            label, style = keys[k]
            figure.add_artist(Rectangle((x, y - 0.012), 0.016, 0.026, lw=0.8, **style))
        else:
            label, marker, colour = marks[k - len(keys)]
            figure.add_artist(
                Line2D(
                    [x + 0.008],
                    [y],
                    marker=marker,
                    color=colour,
                    mew=2,
                    markersize=6,
                    transform=figure.transFigure,
                )
            )
        figure.text(x + 0.022, y, label, fontsize=7, va="center", color=_INK)


def _draw_profit(figure: Figure, axes: Axes, timeline: CustomerTimeline, cycle: int) -> None:
    cumulative = timeline.cumulative_profit()
    weeks = np.arange(cumulative.size)
    axes.set_xlim(0, timeline.horizon)
    low, high = float(cumulative.min()), float(cumulative.max())
    span = max(high - low, 5.0)
    axes.set_ylim(low - 0.1 * span, high + 0.15 * span)
    axes.axhline(0.0, color="#bbbbbb", lw=0.8)
    axes.step(weeks, cumulative, where="post", color=_INK, lw=1.4)
    bought = [k + 1 for k, c in enumerate(timeline.cycles) if c.purchased]
    axes.plot(bought, cumulative[bought], "o", color=_GOOD, markersize=4, zorder=3)
    first = _window_start(cycle)
    axes.axvspan(first - 1, first + WINDOW_WEEKS - 1, color="#eef2fb", lw=0, zorder=0)
    left, bottom, _, height = _PROFIT_BOX
    figure.text(left, bottom + height + 0.025, "Profit so far (USD)", fontsize=9, weight="bold")
    axes.set_xlabel("week", fontsize=7, color=_MUTED, labelpad=1)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
