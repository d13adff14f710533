"""PNG plots of uplift reports for a marketing audience (matplotlib, Agg).

* :func:`plot_uplift_curves`: Qini or uplift curves of several targeting models against random
  targeting, with the share of customers targeted on the x axis;
* :func:`plot_policy_value_curves`: the estimated outcome per customer of targeting the top
  share, with 95 % bands and the value of the constant campaigns as reference lines.

Every plot has a title, axis labels with units and a legend; the metrics come from
:mod:`rec_env.agents.evaluation.uplift` and :mod:`rec_env.agents.evaluation.targeting`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from rec_env.agents.evaluation.plots import _pyplot
from rec_env.agents.evaluation.targeting import PolicyValueCurve

__all__ = ["plot_policy_value_curves", "plot_uplift_curves"]

_KINDS = {
    "qini": ("Qini curve", "incremental {outcome} among the treated"),
    "uplift": ("Uplift curve", "incremental {outcome} (targeted group)"),
}


def plot_uplift_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    kind: str = "qini",
    outcome: str = "responses",
    title: str | None = None,
) -> Path:
    """Qini or uplift curves of several models, each with the random-targeting diagonal.

    Args:
        curves: Model name → ``(n_targeted, incremental_outcome)`` from
            :func:`~rec_env.agents.evaluation.uplift.qini_curve` or ``uplift_curve``.
        path: Where to write the PNG.
        kind: ``"qini"`` or ``"uplift"`` (the y-axis label).
        outcome: What the outcome counts, plural, with its unit (``"visits"``, ``"USD spent"``).
        title: Plot title (default: the curve kind and the outcome).

    Returns:
        ``path``.

    Raises:
        ValueError: On an unknown ``kind`` or no curves.
    """
    if kind not in _KINDS or not curves:
        raise ValueError(f"kind must be one of {sorted(_KINDS)} and curves non-empty")
    name, y_label = _KINDS[kind]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    end = 0.0
    for label, (n_targeted, values) in curves.items():
        share = 100.0 * np.asarray(n_targeted) / float(n_targeted[-1])
        ax.plot(share, values, lw=1.6, label=label)
        end = float(values[-1])
    ax.plot([0, 100], [0, end], ls="--", color="grey", lw=1.0, label="random targeting")
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_xlabel("customers targeted (% of the held-out list, highest predicted uplift first)")
    ax.set_ylabel(y_label.format(outcome=outcome))
    ax.set_title(title or f"{name}: {outcome} gained by targeting", fontsize=11)
    ax.set_xlim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_policy_value_curves(
    curves: Mapping[str, PolicyValueCurve],
    path: str | Path,
    *,
    value_label: str = "reward per customer",
    references: Mapping[str, float] | None = None,
    title: str | None = None,
    bands: bool | None = None,
) -> Path:
    """Estimated value per customer against the share targeted, with 95 % bands.

    Args:
        curves: Model name → its :class:`~rec_env.agents.evaluation.targeting.PolicyValueCurve`.
        path: Where to write the PNG.
        value_label: The value with its unit (``"visits per customer"``, ``"USD per customer"``).
        references: Optional name → value of a constant campaign (e.g. "e-mail everyone"),
            drawn as horizontal lines.
        title: Plot title.
        bands: Draw the 95 % bands (default: only for up to three curves, which stay legible).

    Returns:
        ``path``.

    Raises:
        ValueError: If ``curves`` is empty.
    """
    if not curves:
        raise ValueError("curves must hold at least one policy-value curve")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    estimator = ""
    draw_bands = len(curves) <= 3 if bands is None else bands
    for label, curve in curves.items():
        share = 100.0 * curve.shares
        (line,) = ax.plot(share, curve.value, lw=1.6, marker="o", ms=2.5, label=label)
        if draw_bands:
            ax.fill_between(share, curve.ci_low, curve.ci_high, color=line.get_color(), alpha=0.15)
        estimator = curve.estimator.upper()
    styles = (("black", "--"), ("dimgrey", ":"), ("grey", "-."))
    for i, (label, value) in enumerate((references or {}).items()):
        color, style = styles[i % len(styles)]
        ax.axhline(value, ls=style, color=color, lw=1.1, label=label)
    ax.set_xlabel("customers targeted (% of the held-out list, best-scored first)")
    ax.set_ylabel(f"{value_label} ({estimator} estimate)")
    ax.set_title(title or f"Expected {value_label} by share targeted (95 % bands)", fontsize=11)
    ax.set_xlim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
