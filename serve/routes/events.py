"""``/v1/events/{event_id}/reward``: close the loop of a logged decision."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from rec_env.serve.decision_log import RewardConflictError, UnknownEventError
from rec_env.serve.dependencies import ServiceDep, request_validators, require_api_key
from rec_env.serve.routes.inputs import invalid
from rec_env.serve.routes.responses import INVALID_BODY, UNAUTHORIZED, raw_json_body
from rec_env.serve.schemas import ErrorResponse, RewardRequest, RewardResponse
from rec_env.serve.service import RewardOutOfRangeError

__all__ = ["router"]

router = APIRouter(tags=["decisions"])


@router.post(
    "/v1/events/{event_id}/reward",
    response_model=RewardResponse,
    summary="Post the reward of a decision",
    dependencies=[Depends(require_api_key)],
    openapi_extra=raw_json_body("#/components/schemas/RewardRequest"),
    responses={
        **UNAUTHORIZED,
        404: {"model": ErrorResponse, "description": "No decision has this event id."},
        409: {"model": ErrorResponse, "description": "The event has a different reward."},
        **INVALID_BODY,
    },
)
async def reward(event_id: uuid.UUID, request: Request, service: ServiceDep) -> dict[str, Any]:
    """Record the reward of a decision; an online policy (bandit) learns from it.

    The reward must be a finite number within the server's range (``--reward-min``,
    ``--reward-max``: the schema's minimum and maximum); any other is a 422 and is neither
    logged nor learned. Idempotent: posting the same reward again changes nothing and answers
    ``duplicate: true``; a different reward for the same event is a 409 conflict. The log and
    the policy update run in a worker thread.
    """
    validator = request_validators(request).reward
    body: RewardRequest = await validator.parse_async(await request.body())
    key = str(event_id)
    try:
        outcome = await run_in_threadpool(service.reward, key, body.reward)
    except RewardOutOfRangeError as exc:  # the service's own check, should the model's drift
        raise invalid(("body", "reward"), str(exc)) from None
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
