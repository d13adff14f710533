"""``/v1/explain``: SHAP contributions of the features, nothing decided or logged.

Runs of the item and slate worlds are explained by :mod:`rec_env.serve.routes.item_explain`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic_core import to_json

from rec_env.customer import fill_in_rows
from rec_env.serve.dependencies import ServiceDep, request_validators
from rec_env.serve.routes.inputs import (
    excluded_actions,
    history_customer,
    invalid,
    require_explainer,
)
from rec_env.serve.routes.item_explain import explain_item
from rec_env.serve.routes.responses import EXPLANATIONS_DISABLED, INVALID_BODY, raw_json_body
from rec_env.serve.schemas import ExplainRequest, ExplainResponse
from rec_env.serve.service import ActionNotAllowedError, DecisionService

__all__ = ["explanation", "router"]

router = APIRouter(tags=["explanations"])


def explanation(
    service: DecisionService,
    obs: np.ndarray,
    action: int | None,
    excluded: np.ndarray,
    top: int | None,
) -> dict[str, Any]:
    """The explanation dict of the API (runs in a worker thread)."""
    result = service.explain(obs, action, excluded, top)
    return {**result, "action": service.describe_action(int(result["action"]))}


@router.post(
    "/v1/explain",
    response_model=ExplainResponse,
    summary="Explain the model's output for a customer",
    openapi_extra=raw_json_body("#/components/schemas/ExplainRequest"),
    responses={**INVALID_BODY, **EXPLANATIONS_DISABLED},
)
async def explain(request: Request, service: ServiceDep) -> dict[str, Any]:
    """SHAP contributions of every feature to the model's output for one action.

    The output is the action's probability (PPO, A2C), Q-value (DQN) or estimated reward
    (linear bandits). Without ``action``, the model's most likely allowed action is explained.
    The customer is filled in (or built from a ``history``) as for ``/v1/recommend``
    (``filled_in`` says how), so the explanation is of the decision the service would make.
    Nothing is decided or logged.
    ``action`` must be allowed for the customer (consent on its channel, not excluded).

    Item and slate runs explain why this product: the log-odds (or Q-value advantage) of the
    recommended action over the runner-up, or the score margin of the slate's first product
    over the best product left out (``ItemExplainResponse``; ``action`` is an action name, or
    in slate runs a product id).
    """
    validator = request_validators(request).explain
    body: ExplainRequest = await validator.parse_async(await request.body())
    require_explainer(service)
    if service.world.kind != "strategy":  # documented by the app's schema (ItemExplainResponse)
        response = await explain_item(service, body)
        return Response(to_json(response), media_type="application/json")  # type: ignore[return-value]
    if body.history is not None or body.as_of is not None:  # features built from a history
        customer = await history_customer(service, body)
    else:
        customer = fill_in_rows([body.features], service.assume_consent)
    obs = customer.observations
    excluded = excluded_actions(service, body.excluded_actions, ("body", "excluded_actions"))
    action = None
    if body.action is not None:
        try:
            action = service.action_index(body.action)
        except ActionNotAllowedError as exc:
            raise invalid(("body", "action"), str(exc)) from None
        if not service.allowed_actions(obs, excluded)[0, action]:
            raise invalid(
                ("body", "action"),
                f"{body.action} is not allowed for this customer (no consent on its channel, "
                "unknown consent counting as none, or excluded)",
                "action_not_allowed",
            )
    result = await run_in_threadpool(explanation, service, obs, action, excluded[None, :], body.top)
    filled_in = [filled.as_dict() for filled in customer.filled_in]
    return {**result, "model_version": service.model_version, "filled_in": filled_in}
