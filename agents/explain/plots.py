"""Figures of explanations in plain words: one customer's waterfall, and a summary per action.

* :func:`waterfall_figure`: from the average customer's value to this customer's, one bar per
  feature, labelled with the feature and its value in words ("messages in the last 30 days =
  3"), on an axis in the explained value's own unit (a probability in %, or USD);
* :func:`action_summary_figure`: for each action the policy chooses, which features push its
  explained value up or down across customers (one panel per action: each dot is a customer
  for whom the policy chose that action, so values of different actions are never mixed).

Labels come from :mod:`rec_env.agents.evaluation.style` (:func:`~.style.feature_with_value`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from rec_env.agents.evaluation.style import feature_label, feature_with_value, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "LOWERS",
    "OUTPUT_AXES",
    "RAISES",
    "action_summary_figure",
    "output_axis",
    "waterfall_figure",
]

RAISES = "#d9534f"
"""Colour of a contribution that raises the explained value."""
LOWERS = "#3b7dd8"
"""Colour of a contribution that lowers it."""

OUTPUT_AXES: dict[str, tuple[str, str, float, str]] = {
    "probability": (
        "probability that the policy chooses {action} (%)",
        "change in the probability of choosing it (percentage points)",
        100.0,
        "{:.0f} %",
    ),
    "q_value": (
        "expected profit of {action} over the coming weeks (USD)",
        "change in its expected profit (USD)",
        1.0,
        "${:.2f}",
    ),
    "estimated_reward": (
        "estimated reward of {action} (USD)",
        "change in its estimated reward (USD)",
        1.0,
        "${:.2f}",
    ),
}
"""Explained-output kind → (axis label, effect label, scale, value format)."""


def output_axis(kind: str, action: str) -> tuple[str, str, float, str]:
    """The axis label, effect label, scale and value format of an explained output."""
    label, effect, scale, template = OUTPUT_AXES.get(
        kind, ("explained value of {action}", "change in the explained value", 1.0, "{:.3g}")
    )
    return label.format(action=action), effect, scale, template


def _order(values: np.ndarray, shown: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``shown`` largest contributions (by size) and the indices of the rest."""
    order = np.argsort(-np.abs(values), kind="stable")
    return order[:shown], order[shown:]


def waterfall_figure(
    values: Sequence[float],
    base_value: float,
    names: Sequence[str],
    data: Sequence[float] | None = None,
    *,
    axis_label: str = "explained value",
    scale: float = 1.0,
    value_format: str = "{:.3g}",
    title: str = "",
    max_display: int = 10,
) -> Figure:
    """One customer's explanation as a waterfall, largest contribution on top.

    Bars start at the average customer's value (the background's mean) and end at this
    customer's; the smallest contributions are pooled into one bar.

    Args:
        values: ``(d,)`` Shapley values (they sum to this customer's value minus the base).
        base_value: The average customer's value.
        names: Feature names (labelled in words) or already readable player labels.
        data: The customer's feature values, shown next to the names; None for groups.
        axis_label: The explained value with its unit.
        scale: Multiplies every value on the axis (100 for a probability in %).
        value_format: Format of the base and final values.
        title: Figure title.
        max_display: Bars at most, the pooled rest included.
    """
    values = np.asarray(values, dtype=np.float64) * scale
    base = float(base_value) * scale
    shown, rest = _order(values, max_display - 1 if values.size > max_display else max_display)
    labels = [
        feature_with_value(names[j], float(data[j]))
        if data is not None
        else feature_label(names[j])
        for j in shown
    ]
    steps = list(values[shown])
    if rest.size:
        labels.append(f"{rest.size} other features")
        steps.append(float(values[rest].sum()))
    starts = base + np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    final = base + float(np.sum(values))
    with figure(figsize=(7.5, 0.42 * len(steps) + 1.9)) as fig:
        ax = fig.axes[0]
        rows = np.arange(len(steps))
        colors = [RAISES if s >= 0 else LOWERS for s in steps]
        ax.barh(rows, steps, left=starts, color=colors, height=0.65)
        span = max(abs(final - base), float(np.abs(steps).max(initial=0.0)), 1e-12)
        digits = 1 if scale == 100.0 else 2
        for row, start, step in zip(rows, starts, steps, strict=True):
            shown_step = round(step, digits) if abs(step) >= 1e-6 * span else 0.0
            sign = "+" if shown_step > 0 else "−" if shown_step < 0 else "±"
            ax.text(
                max(start, start + step) + 0.01 * span,
                row,
                f"{sign}{abs(shown_step):.{digits}f}",
                va="center",
                fontsize=7,
                color="#333333",
            )
        ax.margins(x=0.08)
        ax.set_yticks(rows, labels)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.axvline(base, color="#777777", ls="--", lw=1.0)
        ax.axvline(final, color="#111111", ls="-", lw=1.0)
        ax.set_xlabel(axis_label)
        transform = ax.get_xaxis_transform()
        ax.text(base, 1.01, f"average customer\n{value_format.format(base)}", transform=transform,
                ha="center", va="bottom", fontsize=7, color="#555555")  # fmt: skip
        ax.text(final, 1.01, f"this customer\n{value_format.format(final)}", transform=transform,
                ha="center", va="bottom", fontsize=7, fontweight="bold")  # fmt: skip
        from matplotlib.patches import Patch

        fig.legend(
            handles=[
                Patch(color=RAISES, label="raises it"),
                Patch(color=LOWERS, label="lowers it"),
            ],
            loc="lower right",
            ncol=2,
        )
        if title:
            fig.suptitle(title, x=0.01, ha="left")
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def action_summary_figure(
    values: np.ndarray,
    data: np.ndarray,
    actions: Sequence[int],
    action_names: Sequence[str],
    feature_names: Sequence[str],
    *,
    kind: str = "probability",
    max_actions: int = 6,
    max_features: int = 8,
    seed: int = 0,
    title: str = "",
) -> Figure:
    """One beeswarm panel per action the policy chose, the most frequent actions first.

    In the panel of action ``a`` each dot is a customer for whom the policy chose ``a``: how
    much a feature moved that action's explained value (x), coloured by the customer's value of
    the feature (low blue, high red). Features are ranked within the panel by mean absolute
    contribution.

    Args:
        values: ``(n, d)`` Shapley values, row ``i`` of the explained value of ``actions[i]``.
        data: ``(n, d)`` the customers' features.
        actions: ``(n,)`` the explained action of each customer.
        action_names: Names of all actions.
        feature_names: Names of the ``d`` features.
        kind: The explained output (:data:`OUTPUT_AXES`), for the axis unit.
        max_actions: Panels at most (the most frequent actions).
        max_features: Features per panel.
        seed: Seed of the vertical jitter of the dots.
        title: Figure title.
    """
    values, data = np.asarray(values, dtype=np.float64), np.asarray(data, dtype=np.float64)
    actions = np.asarray(actions, dtype=np.intp)
    chosen, counts = np.unique(actions, return_counts=True)
    chosen = chosen[np.argsort(-counts, kind="stable")][:max_actions]
    rng = np.random.default_rng(seed)
    _, effect, scale, _ = output_axis(kind, "")
    low, high = data.min(axis=0), data.max(axis=0)
    colour_value = (data - low) / np.where(high > low, high - low, 1.0)
    columns = min(len(chosen), 3)
    rows_of_panels = int(np.ceil(len(chosen) / columns))
    with figure(
        nrows=rows_of_panels,
        ncols=columns,
        figsize=(4.6 * columns, (0.33 * max_features + 1.4) * rows_of_panels + 0.6),
        squeeze=False,
        layout="constrained",
    ) as fig:
        import matplotlib as mpl

        cmap = mpl.colormaps["coolwarm"]
        for ax, action in zip(fig.axes, chosen, strict=False):
            rows = np.flatnonzero(actions == action)
            share = np.abs(values[rows]).mean(axis=0)
            top = np.argsort(-share, kind="stable")[:max_features]
            for position, j in enumerate(top):
                jitter = rng.uniform(-0.28, 0.28, rows.size)
                ax.scatter(
                    values[rows, j] * scale,
                    position + jitter,
                    c=cmap(colour_value[rows, j]),
                    s=9,
                    linewidths=0,
                    rasterized=True,  # hundreds of dots: one small image instead of SVG paths
                )
            ax.set_yticks(np.arange(top.size), [feature_label(feature_names[j]) for j in top])
            ax.invert_yaxis()
            ax.axvline(0.0, color="#777777", lw=0.8)
            ax.grid(axis="y", visible=False)
            name = action_names[action]
            ax.set_title(f"{name} ({rows.size} customers)", fontsize=9)
            ax.set_xlabel(effect, fontsize=7)
        for ax in fig.axes[len(chosen) :]:
            ax.set_axis_off()
        colorbar = fig.colorbar(
            mpl.cm.ScalarMappable(cmap=cmap), ax=fig.axes, shrink=0.5, pad=0.02, ticks=[0, 1]
        )
        colorbar.ax.set_yticklabels(["low", "high"])
        colorbar.set_label("the customer's value of the feature")
        fig.suptitle(
            title
            or "Why the policy chooses each action (one panel per action, a dot per customer)",
            x=0.01,
            ha="left",
        )
    return fig
