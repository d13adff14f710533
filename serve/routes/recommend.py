"""``/v1/recommend`` and ``/v1/recommend/batch``: decide, log, and say what was filled in.

The single-customer path runs on the event loop (a policy call and one small insert take well
under a millisecond) and answers once its decision is committed: requests that reach the loop
together are decided in one policy call and share one commit
(:meth:`~rec_env.serve.service.DecisionService.decide_soon`). The app serves it on its own
ASGI lane (:class:`~rec_env.serve.routes.RecommendLane`), by :func:`recommend_raw`; the FastAPI
route documents it. Batches run in a worker thread.
Runs of the item and slate worlds answer with products
(:mod:`rec_env.serve.routes.item_recommend`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import State

from rec_env.agents.threads import pinned_threads
from rec_env.customer import fill_in_columns, fill_in_rows
from rec_env.serve.dependencies import (
    ServiceDep,
    SettingsDep,
    request_validators,
    service_of,
    validators_of,
)
from rec_env.serve.group_commit import committed
from rec_env.serve.routes.explain import explanation
from rec_env.serve.routes.inputs import (
    excluded_actions,
    history_customer,
    invalid,
    require_explainer,
)
from rec_env.serve.routes.item_recommend import decide_item_batch, recommend_item
from rec_env.serve.routes.responses import EXPLANATIONS_DISABLED, INVALID_BODY, raw_json_body
from rec_env.serve.schemas import (
    BatchRecommendRequest,
    BatchRecommendResponse,
    RecommendRequest,
    RecommendResponse,
)
from rec_env.serve.service import DecisionService
from rec_env.serve.service_types import BaselineNotAllowedError, DecisionRequest
from rec_env.serve.validation import BodyValidator

__all__ = ["json_content", "recommend_raw", "router"]

router = APIRouter(tags=["decisions"])


@router.post(
    "/v1/recommend",
    response_model=RecommendResponse,
    summary="Decide the action for one customer",
    openapi_extra=raw_json_body("#/components/schemas/RecommendRequest"),
    responses={**INVALID_BODY, **EXPLANATIONS_DISABLED},
)
async def recommend(request: Request) -> Response:
    """Sample the action for one customer from the policy's probabilities with exploration.

    Only actions on channels the customer consented to (and not in ``excluded_actions``) can be
    served. Any subset of the features may be given, nested under ``features`` or flat; the
    others are filled in and listed in ``filled_in``. Consent left out is no consent, unless
    the service assumes consent on that channel (``--assume-consent``). Instead of features,
    strategy runs take the customer's ``history`` (and optionally ``as_of``): the features are
    built from it by the simulator's definitions, and ``filled_in`` lists every one of them.
    The decision is logged under ``event_id`` with its propensity and every action's
    probability; post the observed reward to ``/v1/events/{event_id}/reward``.

    The body is validated by pydantic straight from its bytes and the response is serialised
    once, by orjson: this is the hot path of the service. ``explain`` takes only
    ``true`` or ``false``; ``excluded_actions`` only names of the served catalog.
    """
    return _json(await recommend_raw(request.app.state, await request.body()))


async def recommend_raw(state: State, raw: bytes) -> dict[str, Any]:
    """The response of :func:`recommend` to the body ``raw``, for the app whose state it is.

    Raises:
        RequestValidationError: 422 for an invalid body or a baseline action not allowed.
        HTTPException: 503 before the model is loaded, 400 if explanations are off.
    """
    service = service_of(state)
    validator = validators_of(state).recommend
    body: RecommendRequest = await validator.parse_async(raw)
    if body.explain:  # item and slate runs accept false only (their /v1/explain explains)
        require_explainer(service)
    if service.world.kind != "strategy":
        customer = service.world.customers.fill_rows([body.features], service.assume_consent)
        return await committed(lambda: recommend_item(service, body, customer))
    if body.history is not None or body.as_of is not None:  # features built from a history
        customer = await history_customer(service, body)
    else:
        customer = fill_in_rows([body.features], service.assume_consent)
    obs = customer.observations
    excluded = None  # most requests exclude nothing: no mask to build and stack
    if body.excluded_actions:
        excluded = excluded_actions(service, body.excluded_actions, ("body", "excluded_actions"))
    baseline = baseline_indices(
        service,
        None if body.baseline_action is None else [body.baseline_action],
        1,
        "baseline_action",
    )
    decision_request = DecisionRequest(
        obs,
        excluded,
        [body.customer_id],
        body.reward_window_days,
        baseline,
        None if baseline is None else [body.baseline_propensity],
    )
    try:  # decided with the requests ready now, in one policy call and one commit
        decisions = await service.decide_soon(decision_request)
    except BaselineNotAllowedError as exc:
        raise invalid(("body", "baseline_action"), str(exc), "action_not_allowed") from None
    action = int(decisions.actions[0])
    response: dict[str, Any] = {
        "event_id": decisions.event_ids[0],
        "model_version": service.model_version,
        "action": service.describe_action(action),
        "propensity": float(decisions.propensities[0]),
        "probabilities": dict(
            zip(service.actions.names, decisions.probabilities[0].tolist(), strict=True)
        ),
        "filled_in": [filled.as_dict() for filled in customer.filled_in],
        "explanation": None,
        "holdout": bool(decisions.holdout[0]),
        "policy_action": (
            None
            if decisions.policy_actions is None
            else service.describe_action(int(decisions.policy_actions[0]))
        ),
    }
    if body.explain:
        none = np.zeros(service.actions.n_actions, dtype=bool)
        response["explanation"] = await run_in_threadpool(
            explanation, service, obs, action, (none if excluded is None else excluded)[None], None
        )
    return response


def _json(response: dict[str, Any]) -> Response:
    """``response`` as a JSON response (:func:`json_content`)."""
    return Response(json_content(response), media_type="application/json")


def json_content(response: dict[str, Any]) -> bytes:
    """``response`` serialised by orjson (a tenth of ``json.dumps``' time on its floats)."""
    return orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)


def baseline_indices(
    service: DecisionService, names: Sequence[str] | None, n: int, field: str
) -> np.ndarray | None:
    """``(n,)`` indices of an apprentice request's baseline actions, or None without them.

    Raises:
        RequestValidationError: 422 if the server requires baselines (``--apprentice``) and
            there are none, or a batch gives another number of them than customers.
    """
    if names is None:
        if service.settings.apprentice:
            raise invalid(
                ("body", field),
                f"this server runs in apprentice mode (--apprentice): give {field}, the action "
                "your existing rule chose",
                "missing",
            )
        return None
    if len(names) != n:
        message = f"{field} has {len(names)} entries for {n} customers"
        raise invalid(("body", field), message, "unequal_lengths")
    return np.array([service.action_index(name) for name in names], dtype=np.intp)


def _decide_batch(
    service: DecisionService, validator: BodyValidator, max_batch: int, raw: bytes
) -> dict[str, Any]:
    """Parse, fill in, decide and log a batch (runs in a worker thread, BLAS on one thread)."""
    with pinned_threads():  # see decide_item_batch
        return _batch_response(service, validator, max_batch, raw)


def _batch_response(
    service: DecisionService, validator: BodyValidator, max_batch: int, raw: bytes
) -> dict[str, Any]:
    """The response of :func:`_decide_batch`."""
    body: BatchRecommendRequest = validator.parse(raw)
    if body.n_customers > max_batch:
        layout = "customers" if body.customers is not None else "columns"
        raise invalid(("body", layout), f"at most {max_batch} customers per call")
    if body.customers is not None:
        customers = fill_in_rows(body.customers, service.assume_consent)
    else:
        customers = fill_in_columns(body.columns, body.n_customers, service.assume_consent)
    obs = customers.observations
    n = obs.shape[0]
    excluded = excluded_actions(service, body.excluded_actions, ("body", "excluded_actions"))
    baseline = baseline_indices(service, body.baseline_actions, n, "baseline_actions")
    propensities = body.baseline_propensities
    if propensities is not None and (baseline is None or len(propensities) != n):
        raise invalid(
            ("body", "baseline_propensities"),
            f"baseline_propensities needs baseline_actions and one entry per customer ({n})",
            "unequal_lengths",
        )
    try:
        decisions = service.decide(
            obs,
            service.allowed_actions(obs, excluded, body.customer_ids),
            body.customer_ids,
            reward_window_days=body.reward_window_days,
            baseline=baseline,
            baseline_propensities=propensities,
        )
    except BaselineNotAllowedError as exc:
        raise invalid(
            ("body", "baseline_actions", exc.row), str(exc), "action_not_allowed"
        ) from None
    names = np.array(service.actions.names, dtype=object)
    return {
        "model_version": service.model_version,
        "n": len(decisions.event_ids),
        "event_ids": decisions.event_ids,
        "actions": names[decisions.actions].tolist(),
        "action_indices": decisions.actions.tolist(),
        "propensities": decisions.propensities.tolist(),
        "action_names": list(service.actions.names),
        "probabilities": (decisions.probabilities.tolist() if body.include_probabilities else None),
        "filled_in": [filled.as_dict(counts=True) for filled in customers.filled_in],
        "holdout": decisions.holdout.tolist(),
        "policy_actions": (
            None if decisions.policy_actions is None else names[decisions.policy_actions].tolist()
        ),
    }


@router.post(
    "/v1/recommend/batch",
    response_model=BatchRecommendResponse,
    summary="Decide for up to 10,000 customers",
    openapi_extra=raw_json_body("#/components/schemas/BatchRecommendRequest"),
    responses=INVALID_BODY,
)
async def recommend_batch(
    request: Request, service: ServiceDep, settings: SettingsDep
) -> dict[str, Any]:
    """Decide for many customers in one call: one policy call and one log transaction.

    Send the customers as ``customers`` (a list of feature objects) or, faster, as ``columns``
    (one list per feature). Rows may leave features out and columns may be missing: those
    features are filled in as for ``/v1/recommend`` and counted in ``filled_in``.
    ``excluded_actions`` applies to every customer. The decisions come back column by column,
    in the order of the request. The number of customers is checked before any row is
    parsed: a longer list gets 422 at once.
    """
    raw = await request.body()
    validator = request_validators(request).batch
    if service.world.kind == "strategy":
        return await run_in_threadpool(_decide_batch, service, validator, settings.max_batch, raw)
    # serialised once, by json.dumps (the documented model is the world's: see the app's schema)
    response = await run_in_threadpool(
        decide_item_batch, service, validator, settings.max_batch, raw
    )
    return Response(response, media_type="application/json")  # type: ignore[return-value]
