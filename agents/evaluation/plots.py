"""PNG plots of comparisons: KPIs with 95 % CI bars, and learning curves (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rec_env.agents.evaluation.evaluate import Evaluation

__all__ = ["plot_kpis", "plot_learning_curves"]

_PANELS = (
    ("profit_per_customer", "profit per customer (USD, per customer lifetime)", 1.0),
    ("conversion_rate", "conversion rate (% of customer-cycles)", 100.0),
    ("contacts_per_customer", "messages per customer", 1.0),
    ("churn_rate", "churn rate (%)", 100.0),
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_kpis(results: list[Evaluation], path: str | Path) -> Path:
    """Horizontal bars per agent with 95 % confidence-interval error bars, one panel per KPI."""
    plt = _pyplot()
    labels = [r.policy for r in results]
    fig, axes = plt.subplots(
        1, len(_PANELS), figsize=(4.2 * len(_PANELS), 0.45 * len(labels) + 1.6)
    )
    for ax, (key, title, scale) in zip(axes, _PANELS, strict=True):
        means = [r.kpis[key].mean * scale for r in results]
        cis = [r.kpis[key].ci * scale for r in results]
        ax.barh(range(len(labels)), means, xerr=cis, color="#4C72B0", ecolor="black", capsize=3)
        ax.set_yticks(range(len(labels)), labels if ax is axes[0] else [""] * len(labels))
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_learning_curves(
    results: list[Evaluation], contenders: list[Any], path: str | Path
) -> Path:
    """Left: evaluation profit during training (run directories). Right: online reward per cycle."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for contender in contenders:
        if contender.curve:
            x = [row["timesteps"] for row in contender.curve]
            y = [row["profit_per_customer"] for row in contender.curve]
            ci = [row.get("profit_ci95", 0.0) for row in contender.curve]
            left.plot(x, y, marker="o", ms=3, label=contender.label)
            left.fill_between(
                x,
                [a - b for a, b in zip(y, ci, strict=True)],
                [a + b for a, b in zip(y, ci, strict=True)],
                alpha=0.15,
            )
    left.set_xlabel("environment steps")
    left.set_ylabel("evaluation profit per customer (USD)")
    left.set_title("training runs", fontsize=10)
    for result in results:
        right.plot(
            range(1, len(result.reward_per_cycle) + 1),
            result.reward_per_cycle,
            label=result.policy,
            lw=1.2,
        )
    right.set_xlabel("cycle (week)")
    right.set_ylabel("reward per customer in the cycle")
    right.set_title("on the evaluation cohort", fontsize=10)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
