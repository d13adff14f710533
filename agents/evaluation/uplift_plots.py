"""Figures of uplift reports for a marketing audience (house style, PNG or inline SVG).

* :func:`uplift_figure` (PNG: :func:`plot_uplift_curves`): Qini or uplift curves of several
  targeting models against random targeting, with the share of customers targeted on the x axis;
* :func:`policy_value_figure` (PNG: :func:`plot_policy_value_curves`): the estimated outcome per
  customer of targeting the top share, with 95 % bands and the value of the constant campaigns
  as reference lines.

Every plot has a title, axis labels with units and a legend, and each model its family's colour
(:mod:`~rec_env.agents.evaluation.style`); the metrics come from
:mod:`rec_env.agents.evaluation.uplift` and :mod:`rec_env.agents.evaluation.targeting`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rec_env.agents.evaluation.style import figure, policy_colors, save_png
from rec_env.agents.evaluation.targeting import PolicyValueCurve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "plot_policy_value_curves",
    "plot_uplift_curves",
    "policy_value_figure",
    "uplift_figure",
]

_KINDS = {
    "qini": ("Qini curve", "incremental {outcome} among the treated"),
    "uplift": ("Uplift curve", "incremental {outcome} (targeted group)"),
}


def uplift_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    kind: str = "qini",
    outcome: str = "responses",
    title: str | None = None,
) -> Figure:
    """Qini or uplift curves of several models, each with the random-targeting diagonal.

    Args:
        curves: Model name → ``(n_targeted, incremental_outcome)`` from
            :func:`~rec_env.agents.evaluation.uplift.qini_curve` or ``uplift_curve``.
        kind: ``"qini"`` or ``"uplift"`` (the y-axis label).
        outcome: What the outcome counts, plural, with its unit (``"visits"``, ``"USD spent"``).
        title: Plot title (default: the curve kind and the outcome).

    Raises:
        ValueError: On an unknown ``kind`` or no curves.
    """
    if kind not in _KINDS or not curves:
        raise ValueError(f"kind must be one of {sorted(_KINDS)} and curves non-empty")
    name, y_label = _KINDS[kind]
    colors = policy_colors(curves)
    with figure(figsize=(6.5, 4.5)) as fig:
        ax = fig.axes[0]
        end = 0.0
        for label, (n_targeted, values) in curves.items():
            share = 100.0 * np.asarray(n_targeted) / float(n_targeted[-1])
            ax.plot(share, values, lw=1.8, color=colors[label], label=label)
            end = float(values[-1])
        ax.plot([0, 100], [0, end], ls="--", color="grey", lw=1.0, label="random targeting")
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_xlabel("customers targeted (% of the held-out list, highest predicted uplift first)")
        ax.set_ylabel(y_label.format(outcome=outcome))
        ax.set_title(title or f"{name}: {outcome} gained by targeting")
        ax.set_xlim(0, 100)
        ax.legend(loc="best")
        fig.tight_layout()
    return fig


def plot_uplift_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    kind: str = "qini",
    outcome: str = "responses",
    title: str | None = None,
) -> Path:
    """Write :func:`uplift_figure` as a PNG to ``path`` and return ``path``.

    Raises:
        ValueError: On an unknown ``kind`` or no curves.
    """
    return save_png(uplift_figure(curves, kind=kind, outcome=outcome, title=title), path)


def policy_value_figure(
    curves: Mapping[str, PolicyValueCurve],
    *,
    value_label: str = "reward per customer",
    references: Mapping[str, float] | None = None,
    title: str | None = None,
    bands: bool | None = None,
) -> Figure:
    """Estimated value per customer against the share targeted, with 95 % bands.

    Args:
        curves: Model name → its :class:`~rec_env.agents.evaluation.targeting.PolicyValueCurve`.
        value_label: The value with its unit (``"visits per customer"``, ``"USD per customer"``).
        references: Optional name → value of a constant campaign (e.g. "e-mail everyone"),
            drawn as horizontal lines.
        title: Plot title.
        bands: Draw the 95 % bands (default: only for up to three curves, which stay legible).

    Raises:
        ValueError: If ``curves`` is empty.
    """
    if not curves:
        raise ValueError("curves must hold at least one policy-value curve")
    colors = policy_colors(curves)
    draw_bands = len(curves) <= 3 if bands is None else bands
    with figure(figsize=(6.5, 4.5)) as fig:
        ax = fig.axes[0]
        estimator = ""
        for label, curve in curves.items():
            share = 100.0 * curve.shares
            color = colors[label]
            ax.plot(share, curve.value, lw=1.8, marker="o", ms=2.5, color=color, label=label)
            if draw_bands:
                ax.fill_between(share, curve.ci_low, curve.ci_high, color=color, alpha=0.15)
            estimator = curve.estimator.upper()
        styles = (("black", "--"), ("dimgrey", ":"), ("grey", "-."))
        for i, (label, value) in enumerate((references or {}).items()):
            color, style = styles[i % len(styles)]
            ax.axhline(value, ls=style, color=color, lw=1.1, label=label)
        ax.set_xlabel("customers targeted (% of the held-out list, best-scored first)")
        ax.set_ylabel(f"{value_label} ({estimator} estimate)")
        ax.set_title(title or f"Expected {value_label} by share targeted (95 % bands)")
        ax.set_xlim(0, 100)
        ax.legend(loc="best")
        fig.tight_layout()
    return fig


def plot_policy_value_curves(
    curves: Mapping[str, PolicyValueCurve],
    path: str | Path,
    *,
    value_label: str = "reward per customer",
    references: Mapping[str, float] | None = None,
    title: str | None = None,
    bands: bool | None = None,
) -> Path:
    """Write :func:`policy_value_figure` as a PNG to ``path`` and return ``path``.

    Raises:
        ValueError: If ``curves`` is empty.
    """
    fig = policy_value_figure(
        curves, value_label=value_label, references=references, title=title, bands=bands
    )
    return save_png(fig, path)
