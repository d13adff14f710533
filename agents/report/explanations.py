"""Explanations for the report: a summary per action and a few example customers.

:func:`explain_run` explains a policy's decisions for customers in operation (drawn with
:func:`~rec_env.agents.explain.background.operating_background`, a different seed from the
background's) with exact Shapley values (:class:`~rec_env.agents.explain.PolicyExplainer`), and
picks example customers who get different actions. Runs of the strategy world (the 16 features)
are explained; item and slate runs have ``recenv explain`` one customer at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rec_env.features import FEATURE_NAMES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from rec_env.settings import EnvSettings

__all__ = [
    "EXAMPLE_CUSTOMERS",
    "EXPLAINED_CUSTOMERS",
    "ExplainedRun",
    "example_waterfall",
    "explain_run",
    "summary_figure",
]

EXPLAINED_CUSTOMERS = 60
"""Customers explained for the summary per action."""
EXAMPLE_CUSTOMERS = 3
"""Example customers with a waterfall each."""
BACKGROUND_CUSTOMERS = 16
"""Background customers of the Shapley values (as ``recenv explain``'s default)."""


@dataclass(frozen=True)
class ExplainedRun:
    """A policy's explained decisions.

    Attributes:
        label: The policy's label.
        kind: What is explained (``probability``, ``q_value``, ``estimated_reward``).
        action_names: Names of the actions.
        feature_names: Names of the features.
        values: ``(n, d)`` Shapley values of each customer's chosen action.
        data: ``(n, d)`` the customers' features.
        actions: ``(n,)`` the chosen actions.
        base_values: ``(n,)`` the average customer's value of that action.
        examples: Rows of the example customers.
    """

    label: str
    kind: str
    action_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    values: np.ndarray
    data: np.ndarray
    actions: np.ndarray
    base_values: np.ndarray
    examples: tuple[int, ...]


def _examples(actions: np.ndarray, k: int) -> tuple[int, ...]:
    """Up to ``k`` rows with different actions, the most frequent actions first."""
    chosen, counts = np.unique(actions, return_counts=True)
    order = chosen[np.argsort(-counts, kind="stable")]
    rows = [int(np.flatnonzero(actions == a)[0]) for a in order[:k]]
    for row in range(actions.size):  # fewer distinct actions than k: more of the same
        if len(rows) >= min(k, actions.size):
            break
        if row not in rows:
            rows.append(row)
    return tuple(rows)


def explain_run(
    policy: Any,
    settings: EnvSettings,
    label: str,
    *,
    seed: int = 0,
    n_customers: int | None = None,
) -> tuple[ExplainedRun | None, str]:
    """Explain ``policy``'s choices for ``n_customers`` customers in operation.

    ``n_customers`` defaults to :data:`EXPLAINED_CUSTOMERS`.

    Returns:
        The explanations and ``""``, or ``None`` and why the policy cannot be explained here.
    """
    from rec_env.agents.explain import PolicyExplainer, operating_background

    features = getattr(getattr(policy, "features", None), "names", None)
    if settings.world != "strategy" or tuple(features or ()) != FEATURE_NAMES:
        return None, "explanations in the report cover runs of the strategy world (16 features)"
    try:
        explainer = PolicyExplainer(
            policy,
            n_background=BACKGROUND_CUSTOMERS,
            population=settings.profile,
            catalog=settings.catalog,
            seed=seed,
        )
        customers = operating_background(
            n_customers or EXPLAINED_CUSTOMERS, settings.profile, settings.catalog, seed=seed + 1
        )
        explanation = explainer.explain(customers)
    except ValueError as exc:
        return None, str(exc)
    actions = np.asarray(explanation.actions, dtype=np.intp)
    return (
        ExplainedRun(
            label=label,
            kind=explainer.kind,
            action_names=tuple(explainer.action_names),
            feature_names=tuple(explainer.feature_names),
            values=np.asarray(explanation.values, dtype=np.float64),
            data=np.asarray(explanation.data, dtype=np.float64),
            actions=actions,
            base_values=np.asarray(explanation.base_values, dtype=np.float64),
            examples=_examples(actions, EXAMPLE_CUSTOMERS),
        ),
        "",
    )


def summary_figure(run: ExplainedRun) -> Figure:
    """The summary per action (:func:`~rec_env.agents.explain.plots.action_summary_figure`)."""
    from rec_env.agents.explain.plots import action_summary_figure

    return action_summary_figure(
        run.values,
        run.data,
        run.actions,
        run.action_names,
        run.feature_names,
        kind=run.kind,
        max_actions=3,
        title=f"{run.label}: what drives each action ({run.actions.size} customers in operation)",
    )


def example_waterfall(run: ExplainedRun, row: int, name: str) -> Figure:
    """The waterfall of example customer ``row``, called ``name``."""
    from rec_env.agents.explain.plots import output_axis, waterfall_figure

    action = run.action_names[int(run.actions[row])]
    axis_label, _, scale, value_format = output_axis(run.kind, action)
    return waterfall_figure(
        run.values[row],
        float(run.base_values[row]),
        run.feature_names,
        run.data[row],
        axis_label=axis_label,
        scale=scale,
        value_format=value_format,
        title=f"{name}: why {run.label} sends {action}",
        max_display=8,
    )
