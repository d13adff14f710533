"""Figures of comparisons: KPIs with 95 % CI bars, and learning curves (house style).

Each figure has a builder that returns a matplotlib :class:`~matplotlib.figure.Figure`
(:func:`kpi_figure`, :func:`learning_curve_figure`), used by ``recenv report`` as inline SVG,
and a writer of the CLI's PNG (:func:`plot_kpis`, :func:`plot_learning_curves`). Colours, fonts
and units come from :mod:`~rec_env.agents.evaluation.style`.

Units, as :mod:`~rec_env.agents.evaluation.evaluate` computes them over one customer lifetime
(the horizon, 52 weekly cycles by default): profit and messages per customer over the horizon;
conversion as purchases per 100 customer-cycles while the customer is active (not churned);
unsubscribes and churn as the share of customers who unsubscribed from at least one channel, or
were lost, within the horizon.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rec_env.agents.evaluation.evaluate import Evaluation
from rec_env.agents.evaluation.style import (
    FAMILY_WORDS,
    HIGHLIGHT,
    Period,
    figure,
    policy_colors,
    policy_family,
    run_group,
    save_png,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "KPI_PANELS",
    "kpi_figure",
    "learning_curve_figure",
    "plot_kpis",
    "plot_learning_curves",
    "ranked",
    "smooth",
    "winner",
]

KPI_PANELS: tuple[tuple[str, str, float], ...] = (
    ("profit_per_customer", "profit\n(USD per customer {per_lifetime})", 1.0),
    ("conversion_rate", "purchases per {cycle}\n(per 100 active customers)", 100.0),
    ("contacts_per_customer", "messages sent\n(per customer {per_lifetime})", 1.0),
    ("unsubscribe_rate", "unsubscribed\n(% of customers {per_lifetime})", 100.0),
    ("churn_rate", "customers lost\n(% {per_lifetime})", 100.0),
)
"""(KPI, axis label with its unit, scale) of each panel of :func:`kpi_figure`."""


def ranked(results: Sequence[Evaluation]) -> list[Evaluation]:
    """The results by profit per customer, best first (ties keep their order)."""
    return sorted(results, key=lambda r: -r.kpis["profit_per_customer"].mean)


def winner(results: Sequence[Evaluation]) -> Evaluation | None:
    """The most profitable policy that is not the oracle (a reference that sees the truth)."""
    contenders = [r for r in ranked(results) if policy_family(r.policy) != "oracle"]
    return contenders[0] if contenders else None


def _family_legend(fig: Figure, labels: Sequence[str], colors: Mapping[str, str]) -> None:
    """One legend entry per policy family present, below the panels."""
    from matplotlib.patches import Patch

    families = dict.fromkeys(policy_family(label) for label in labels)
    first = {policy_family(label): colors[label] for label in reversed(labels)}
    handles = [Patch(color=first[f], label=FAMILY_WORDS[f]) for f in families]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), bbox_to_anchor=(0.5, -0.02))


def kpi_figure(results: Sequence[Evaluation], colors: Mapping[str, str] | None = None) -> Figure:
    """Horizontal bars with 95 % CI error bars, one panel per KPI, best policy on top.

    Policies are sorted by profit per customer in every panel; the winner (:func:`winner`) has
    a dark edge and a bold name. Colours follow the policy family.

    Args:
        results: Evaluations on one cohort.
        colors: Label → colour (default: :func:`~.style.policy_colors` of the labels).
    """
    order = ranked(results)
    labels = [r.policy for r in order]
    colors = dict(colors or policy_colors(labels))
    best = winner(order)
    period = Period.of(order[0].settings)
    with figure(
        nrows=1,
        ncols=len(KPI_PANELS),
        figsize=(2.6 * len(KPI_PANELS) + 1.2, 0.38 * len(labels) + 1.9),
        sharey=True,
    ) as fig:
        rows = np.arange(len(labels))
        for ax, (key, title, scale) in zip(fig.axes, KPI_PANELS, strict=True):
            means = [r.kpis[key].mean * scale for r in order]
            cis = [r.kpis[key].ci * scale for r in order]
            edges = [HIGHLIGHT if r is best else "none" for r in order]
            ax.barh(
                rows,
                means,
                xerr=cis,
                color=[colors[label] for label in labels],
                edgecolor=edges,
                linewidth=[1.8 if r is best else 0.0 for r in order],
                error_kw={"ecolor": "#333333", "capsize": 2.5, "elinewidth": 0.9},
            )
            ax.set_xlabel(title.format(per_lifetime=period.per_lifetime, cycle=period.cycle))
            ax.grid(axis="y", visible=False)
            ax.axvline(0.0, color="#999999", lw=0.8)
        first = fig.axes[0]
        first.set_yticks(rows, labels)
        first.invert_yaxis()
        for tick, result in zip(first.get_yticklabels(), order, strict=True):
            if result is best:
                tick.set_fontweight("bold")
        if best is not None:
            profit = best.kpis["profit_per_customer"]
            first.annotate(
                "best",
                xy=(profit.mean + profit.ci, order.index(best)),  # past the CI bar
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
                fontweight="bold",
            )
        fig.suptitle(
            f"What each policy achieves over a customer's {period.lifetime} "
            f"({order[0].n_customers:,} simulated customers, 95 % CI)",
            x=0.01,
            ha="left",
        )
        _family_legend(fig, labels, colors)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_kpis(results: list[Evaluation], path: str | Path) -> Path:
    """Write :func:`kpi_figure` as a PNG."""
    return save_png(kpi_figure(results), path)


# ----------------------------------------------------------------------------- learning curves
def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` points (shorter at the ends; same length)."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or values.size < 3:
        return values
    half = window // 2
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(values.size)
    low, high = np.maximum(index - half, 0), np.minimum(index + half + 1, values.size)
    return (cumulative[high] - cumulative[low]) / (high - low)


def _seed_band(curves: Sequence[Sequence[Mapping[str, float]]]) -> tuple[np.ndarray, ...]:
    """``(x, mean, low, high)`` of curves of several seeds on the union of their steps.

    One seed: the band is its evaluation's 95 % CI; several: the range over seeds, each seed
    interpolated on the common steps.
    """
    x = np.unique(np.concatenate([[row["timesteps"] for row in c] for c in curves]))
    x = x[x > 0]  # log axis: the untrained start is at 0 steps
    ys = []
    for curve in curves:
        steps = np.array([row["timesteps"] for row in curve], dtype=np.float64)
        ys.append(np.interp(x, steps, [row["profit_per_customer"] for row in curve]))
    values = np.array(ys)
    mean = values.mean(axis=0)
    if len(curves) == 1:
        curve = curves[0]
        steps = np.array([row["timesteps"] for row in curve], dtype=np.float64)
        ci = np.interp(x, steps, [row.get("profit_ci95", 0.0) for row in curve])
        return x, mean, mean - ci, mean + ci
    return x, mean, values.min(axis=0), values.max(axis=0)


def _training_panel(
    ax: Axes,
    groups: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
    colors: Mapping[str, str],
    period: Period,
) -> None:
    ends = []
    for group, curves in groups.items():
        x, mean, low, high = _seed_band(curves)
        if x.size == 0:
            continue
        window = 3 if x.size >= 6 else 1
        color = colors.get(group, "#555555")
        seeds = f", {len(curves)} seeds" if len(curves) > 1 else ""
        ax.plot(x, smooth(mean, window), color=color, lw=1.8, label=f"{group}{seeds}")
        ax.fill_between(x, smooth(low, window), smooth(high, window), color=color, alpha=0.18)
        ends.append(float(x[-1]))
    from matplotlib.ticker import EngFormatter

    if ends and max(ends) / max(min(ends), 1.0) > 20:
        ax.set_xscale("log")  # bandits learn in thousands of steps, PPO in millions
        ax.set_xlabel(f"customer-{period.cycle}s simulated in training (log scale)")
    else:
        ax.set_xlabel(f"customer-{period.cycle}s simulated in training")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_ylabel(f"profit (USD per customer {period.per_lifetime})")
    ax.set_title("Learning during training")
    bands = "band: range over seeds, or the 95 % CI of one seed's evaluation"
    ax.text(0.0, -0.22, bands, transform=ax.transAxes, fontsize=7, color="#555555")
    ax.legend(loc="lower right")


def _weekly_panel(
    ax: Axes, results: Sequence[Evaluation], colors: Mapping[str, str], period: Period
) -> None:
    online = [r for r in results if r.policy.endswith("(online)")]
    frozen = [r for r in ranked(results) if r not in online]
    references = [r for r in frozen if policy_family(r.policy) == "no_action"][:1]
    references += [
        r for r in frozen if r not in references and policy_family(r.policy) != "oracle"
    ][: 1 if online else 6]
    for result in [*online, *references]:
        weekly = np.asarray(result.reward_per_cycle, dtype=np.float64)
        if weekly.size == 0:
            continue
        style = "-" if result in online or not online else "--"
        ax.plot(
            np.arange(1, weekly.size + 1),
            smooth(weekly, 5),
            style,
            color=colors[result.policy],
            lw=1.6,
            label=result.policy,
        )
    mode = getattr(results[0].settings, "reward_mode", "profit")
    unit = "USD" if mode == "profit" else mode
    ax.set_xlabel(f"{period.cycle} of the customer's {period.lifetime}")
    ax.set_ylabel(f"reward per customer in the {period.cycle} ({unit})")
    ax.set_title("Online learners on the evaluation customers" if online else "Week by week")
    ax.text(
        0.0,
        -0.22,
        f"smoothed over 5 {period.cycle}s; churned customers count as 0",
        transform=ax.transAxes,
        fontsize=7,
        color="#555555",
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right")


def learning_curve_figure(
    results: Sequence[Evaluation],
    training: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """Training curves (left, if any) and rewards week by week on the evaluation cohort.

    Args:
        results: Evaluations on one cohort; online learners (labels ending ``(online)``) are
            drawn with the best frozen policy and doing nothing as dashed references, or, with
            no online learner, the six most profitable policies.
        training: Group label → the learning curves (``learning_curve.csv`` rows) of its seeds;
            drawn smoothed, with a band over the seeds, on a log axis when the budgets differ
            by more than 20 times (bandits and deep RL).
        colors: Label → colour; groups take their own (default: :func:`~.style.policy_colors`).
    """
    labels = [*(r.policy for r in ranked(results)), *training]  # as kpi_figure's colours
    colors = dict(colors or {})
    colors.update({k: v for k, v in policy_colors(labels).items() if k not in colors})
    period = Period.of(results[0].settings) if results else Period()
    panels = (1 if training else 0) + (1 if results else 0)
    with figure(nrows=1, ncols=max(panels, 1), figsize=(5.6 * max(panels, 1), 4.2)) as fig:
        axes = list(fig.axes)
        if training:
            _training_panel(axes.pop(0), training, colors, period)
        if results:
            _weekly_panel(axes.pop(0), results, colors, period)
        if not panels:
            fig.axes[0].text(0.5, 0.5, "no learning curves", ha="center", va="center")
            fig.axes[0].set_axis_off()
        fig.tight_layout()
    return fig


def plot_learning_curves(
    results: list[Evaluation], contenders: list[Any], path: str | Path
) -> Path:
    """Write :func:`learning_curve_figure` of a comparison as a PNG.

    Contenders with a training curve (run directories) are grouped by their label without the
    seed (``ppo-seed0`` and ``ppo-seed1`` make one curve with a band).
    """
    training: dict[str, list[list[dict[str, float]]]] = {}
    for contender in contenders:
        if contender.curve:
            training.setdefault(run_group(contender.label), []).append(contender.curve)
    return save_png(learning_curve_figure(results, training), path)
