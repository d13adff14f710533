"""``/v1/explain`` for runs of the item and slate worlds: why this product for this customer.

The explanation is :class:`~rec_env.agents.explain.items.ItemExplainer`'s (``recenv explain``
prints the same): exact Shapley values of a contrast between the decision and its best
alternative, the runner-up action (item runs) or the best product left out of the slate (slate
runs). The customer is filled in as for ``/v1/recommend``, and ``excluded_products`` and
``excluded_actions`` narrow what the policy may choose, as they do there. Nothing is decided or
logged.

Exact Shapley values cost ``2^k`` network outputs and memory per background customer, ``k``
being the players in which the customer differs from it: the explainer takes the first
grouping of the features that keeps ``k`` within
:data:`~rec_env.agents.explain.items.MAX_PLAYERS` (``grouping`` in the response; one player per
feature, per category's history, or per item feature kind), and a customer beyond it even at
the coarsest gets 422 ``too_costly``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi.concurrency import run_in_threadpool

from rec_env.serve.routes.inputs import invalid
from rec_env.serve.routes.item_recommend import excluded_products, item_excluded_actions
from rec_env.serve.service import DecisionService

if TYPE_CHECKING:  # pragma: no cover - the explainer's module loads on the first explanation
    from rec_env.agents.explain.items import ItemExplanation

__all__ = ["explain_item", "group_contribution"]


async def explain_item(service: DecisionService, body: Any) -> dict[str, Any]:
    """The ``/v1/explain`` response of an item or slate run (``ItemExplainResponse``)."""
    from rec_env.agents.explain.items import ExplanationTooCostlyError

    world = service.world
    customer = world.customers.fill_rows([body.features], service.assume_consent)
    products = excluded_products(world, body.excluded_products, ("body", "excluded_products"))
    if world.kind == "slate":
        allowed = world.allowed_products(products)
    else:
        allowed = world.request_allowed(item_excluded_actions(service, body), products)
    try:
        explained = await run_in_threadpool(
            service.explain_item, customer.observations, body.action, allowed
        )
    except ExplanationTooCostlyError as exc:
        raise invalid(("body", "features"), str(exc), "too_costly") from None
    except ValueError as exc:  # a refused action, or nothing to contrast
        if body.action is not None:
            raise invalid(("body", "action"), str(exc), "action_not_allowed") from None
        raise invalid(("body",), str(exc), "not_explainable") from None
    contrast, values = explained.contrast, explained.values
    obs = customer.observations[0]
    names = world.feature_names
    single = world.kind == "item"
    return {
        "kind": contrast.kind,
        "explained_output": contrast.label,
        "description": contrast.words,
        "decision": list(contrast.lines),
        "action": world.describe_action(contrast.chosen) if single else None,
        "runner_up": world.describe_action(contrast.rival) if single else None,
        "product": None if single else world.describe_product(contrast.chosen),
        "rival": None if single else world.describe_product(contrast.rival),
        "slate": None if single else [world.describe_product(j) for j in contrast.slate or ()],
        "base_value": float(values.base_value),
        "model_output": float(values.output),
        "grouping": explained.groups.level,
        "contributions": [
            group_contribution(explained, g, names, obs)
            for g in explained.top_features(body.top).tolist()
        ],
        "model_version": service.model_version,
        "filled_in": [filled.as_dict() for filled in customer.filled_in],
    }


def group_contribution(
    explained: ItemExplanation, g: int, names: tuple[str, ...], obs: np.ndarray
) -> dict[str, Any]:
    """One player's contribution: a feature with its value, or a group with its features'."""
    members = explained.groups.members[g]
    return {
        "feature": explained.groups.names[g],
        "value": float(obs[members[0]]) if len(members) == 1 else None,
        "features": {names[j]: float(obs[j]) for j in members} if len(members) > 1 else None,
        "contribution": float(explained.values.values[g]),
    }
