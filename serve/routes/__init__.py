"""The HTTP endpoints of the decision service (rank / reward, as in contextual-bandit services).

``/v1/recommend`` and ``/v1/recommend/batch`` decide and log; ``/v1/events/{event_id}/reward``
closes the loop; ``/v1/explain`` explains without deciding. The single-customer path runs on the
event loop (a policy call and one small transaction take well under a millisecond); batches,
explanations and rewards run in worker threads.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from operator import attrgetter
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, TypeAdapter, ValidationError

from rec_env.features import FEATURE_NAMES, FEATURES
from rec_env.serve.decision_log import RewardConflictError, UnknownEventError
from rec_env.serve.dependencies import ServiceDep, SettingsDep, require_api_key
from rec_env.serve.metrics import CONTENT_TYPE
from rec_env.serve.schemas import (
    BatchRecommendRequest,
    BatchRecommendResponse,
    ErrorResponse,
    ExplainRequest,
    ExplainResponse,
    Health,
    ModelInfo,
    RecommendRequest,
    RecommendResponse,
    RewardRequest,
    RewardResponse,
)
from rec_env.serve.service import ActionNotAllowedError, DecisionService

__all__ = ["BATCH_REQUEST_SCHEMA_REF", "RECOMMEND_REQUEST_SCHEMA_REF", "router"]

router = APIRouter()

BATCH_REQUEST_SCHEMA_REF = "#/components/schemas/BatchRecommendRequest"
"""The batch body is parsed by pydantic from the raw bytes; its schema is added to OpenAPI."""
RECOMMEND_REQUEST_SCHEMA_REF = "#/components/schemas/RecommendRequest"
"""Likewise for ``/v1/recommend``."""

_feature_values = attrgetter(*FEATURE_NAMES)
_batch_request = TypeAdapter(BatchRecommendRequest)
_recommend_request = TypeAdapter(RecommendRequest)
_ADMIN = [Depends(require_api_key)]
_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."}
}
_VALIDATION_ERROR: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Validation Error (loc names the field).",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
        },
    }
}


def _raw_json_body(schema_ref: str) -> dict[str, Any]:
    """OpenAPI of a JSON body read from raw bytes (FastAPI cannot see its model)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": schema_ref}}},
        }
    }


_EXPLANATIONS_DISABLED: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "Explanations are disabled (--no-explain)."}
}


def _require_explainer(service: DecisionService) -> None:
    """503 if the service runs without an explainer."""
    if service.explainer is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "explanations are disabled (--no-explain)"
        )


def _invalid(loc: Sequence[str | int], message: str) -> RequestValidationError:
    """A 422 error at ``loc``."""
    return RequestValidationError([{"type": "value_error", "loc": tuple(loc), "msg": message}])


def _features(rows: Sequence[BaseModel]) -> np.ndarray:
    """``(n, 16)`` float64 features of validated customer models."""
    return np.array([_feature_values(row) for row in rows], dtype=np.float64)


def _excluded(service: DecisionService, names: Sequence[str], loc: tuple[str, ...]) -> np.ndarray:
    """``(A,)`` bool of the excluded action names; 422 naming a bad entry."""
    excluded = np.zeros(service.actions.n_actions, dtype=bool)
    for position, name in enumerate(names):
        try:
            excluded[service.excludable_index(name)] = True
        except ActionNotAllowedError as exc:
            raise _invalid((*loc, position), str(exc)) from None
    return excluded


def _parse(adapter: TypeAdapter[Any], raw: bytes) -> Any:
    """Validate a raw JSON body with pydantic; errors become 422s located in ``body``."""
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


@router.post(
    "/v1/recommend",
    response_model=RecommendResponse,
    tags=["decisions"],
    summary="Decide the action for one customer",
    openapi_extra=_raw_json_body(RECOMMEND_REQUEST_SCHEMA_REF),
    responses={**_VALIDATION_ERROR, **_EXPLANATIONS_DISABLED},
)
async def recommend(request: Request, service: ServiceDep) -> Response:
    """Sample the action for one customer from the policy's probabilities with exploration.

    Only actions on channels the customer consented to (and not in ``excluded_actions``) can be
    served. The decision is logged under ``event_id`` with its propensity and every action's
    probability; post the observed reward to ``/v1/events/{event_id}/reward``.

    The body is validated by pydantic straight from its bytes and the response is serialised
    once, by ``json.dumps``: this is the hot path of the service.
    """
    body: RecommendRequest = _parse(_recommend_request, await request.body())
    if body.explain:
        _require_explainer(service)
    obs = _features([body.features])
    excluded = _excluded(service, body.excluded_actions, ("body", "excluded_actions"))
    decisions = service.decide(obs, service.allowed_actions(obs, excluded), [body.customer_id])
    action = int(decisions.actions[0])
    response: dict[str, Any] = {
        "event_id": decisions.event_ids[0],
        "model_version": service.model_version,
        "action": service.describe_action(action),
        "propensity": float(decisions.propensities[0]),
        "probabilities": dict(
            zip(service.actions.names, decisions.probabilities[0].tolist(), strict=True)
        ),
        "explanation": None,
    }
    if body.explain:
        response["explanation"] = await run_in_threadpool(
            _explanation, service, obs, action, excluded[None, :], None
        )
    return Response(json.dumps(response).encode(), media_type="application/json")


def _decide_batch(service: DecisionService, max_batch: int, raw: bytes) -> dict[str, Any]:
    """Parse, decide and log a batch (runs in a worker thread)."""
    body: BatchRecommendRequest = _parse(_batch_request, raw)
    if body.n_customers > max_batch:
        layout = "customers" if body.customers is not None else "columns"
        raise _invalid(("body", layout), f"at most {max_batch} customers per call")
    if body.customers is not None:
        obs = _features(body.customers)
    else:
        obs = np.column_stack([getattr(body.columns, f.name) for f in FEATURES]).astype(float)
    excluded = _excluded(service, body.excluded_actions, ("body", "excluded_actions"))
    decisions = service.decide(obs, service.allowed_actions(obs, excluded), body.customer_ids)
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
    }


@router.post(
    "/v1/recommend/batch",
    response_model=BatchRecommendResponse,
    tags=["decisions"],
    summary="Decide for up to 10,000 customers",
    openapi_extra=_raw_json_body(BATCH_REQUEST_SCHEMA_REF),
    responses=_VALIDATION_ERROR,
)
async def recommend_batch(
    request: Request, service: ServiceDep, settings: SettingsDep
) -> dict[str, Any]:
    """Decide for many customers in one call: one policy call and one log transaction.

    Send the customers as ``customers`` (a list of feature objects) or, faster, as ``columns``
    (one list per feature). ``excluded_actions`` applies to every customer. The decisions come
    back column by column, in the order of the request.
    """
    raw = await request.body()
    return await run_in_threadpool(_decide_batch, service, settings.max_batch, raw)


def _explanation(
    service: DecisionService,
    obs: np.ndarray,
    action: int | None,
    excluded: np.ndarray,
    top: int | None,
) -> dict[str, Any]:
    """The explanation dict of the API (runs in a worker thread)."""
    explanation = service.explain(obs, action, excluded, top)
    return {**explanation, "action": service.describe_action(int(explanation["action"]))}


@router.post(
    "/v1/explain",
    response_model=ExplainResponse,
    tags=["explanations"],
    summary="Explain the model's output for a customer",
    responses=_EXPLANATIONS_DISABLED,
)
async def explain(body: ExplainRequest, service: ServiceDep) -> dict[str, Any]:
    """SHAP contributions of every feature to the model's output for one action.

    The output is the action's probability (PPO, A2C), Q-value (DQN) or estimated reward
    (linear bandits). Without ``action``, the model's most likely allowed action is explained.
    Nothing is decided or logged.
    """
    _require_explainer(service)
    obs = _features([body.features])
    excluded = _excluded(service, body.excluded_actions, ("body", "excluded_actions"))
    action = None
    if body.action is not None:
        try:
            action = service.action_index(body.action)
        except ActionNotAllowedError as exc:
            raise _invalid(("body", "action"), str(exc)) from None
        if not service.allowed_actions(obs, excluded)[0, action]:
            raise _invalid(
                ("body", "action"),
                f"{body.action} is not allowed for this customer (no consent on its channel, "
                "or excluded)",
            )
    result = await run_in_threadpool(
        _explanation, service, obs, action, excluded[None, :], body.top
    )
    return {**result, "model_version": service.model_version}


@router.post(
    "/v1/events/{event_id}/reward",
    response_model=RewardResponse,
    tags=["decisions"],
    summary="Post the reward of a decision",
    dependencies=_ADMIN,
    responses={
        **_UNAUTHORIZED,
        404: {"model": ErrorResponse, "description": "No decision has this event id."},
        409: {"model": ErrorResponse, "description": "The event has a different reward."},
    },
)
def reward(event_id: uuid.UUID, body: RewardRequest, service: ServiceDep) -> dict[str, Any]:
    """Record the reward of a decision; an online policy (bandit) learns from it.

    Idempotent: posting the same reward again changes nothing and answers ``duplicate: true``;
    a different reward for the same event is a 409 conflict.
    """
    key = str(event_id)
    try:
        outcome = service.reward(key, body.reward)
    except UnknownEventError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no decision with event id {key}") from None
    except RewardConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return {
        "event_id": key,
        "reward": outcome.receipt.reward,
        "duplicate": outcome.receipt.duplicate,
        "learned": outcome.learned,
        "n_updates": outcome.n_updates,
    }


@router.get(
    "/v1/model",
    response_model=ModelInfo,
    tags=["admin"],
    summary="The served model",
    dependencies=_ADMIN,
    responses=_UNAUTHORIZED,
)
async def model_info(service: ServiceDep) -> dict[str, Any]:
    """Algorithm, version, SHA-256, actions, feature schema, exploration and online updates."""
    info = service.info
    return {
        "algorithm": info.algorithm,
        "model_version": service.model_version,
        "sha256": info.model_sha256,
        "population": info.population,
        "trained_timesteps": info.timesteps,
        "actions": [service.describe_action(i) for i in range(service.actions.n_actions)],
        "features": [asdict(f) for f in FEATURES],
        "exploration": {**service.exploration.as_dict(), "seed": service.seed},
        "online": service.online,
        "n_updates": service.n_updates,
        "state_persisted": service.state_store is not None,
    }


@router.get("/health", response_model=Health, tags=["admin"], summary="Liveness")
async def health(service: ServiceDep) -> dict[str, Any]:
    """``ok`` once the model is loaded."""
    return {"status": "ok", "model_version": service.model_version}


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    tags=["admin"],
    summary="Prometheus metrics",
    dependencies=_ADMIN,
    responses={
        **_UNAUTHORIZED,
        200: {
            "description": "Prometheus text exposition format.",
            "content": {CONTENT_TYPE: {"example": "recenv_decisions_total 42\n"}},
        },
    },
)
async def metrics_text(service: ServiceDep) -> PlainTextResponse:
    """Request counts and latency histograms, decisions, explanations and rewards."""
    text = service.metrics.render(service.model_version, service.info.algorithm, service.n_updates)
    return PlainTextResponse(text, media_type=CONTENT_TYPE)
