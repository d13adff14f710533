"""``/v1/events/{event_id}/reward``: close the loop of a logged decision."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status

from rec_env.serve.decision_log import RewardConflictError, UnknownEventError
from rec_env.serve.dependencies import ServiceDep, require_api_key
from rec_env.serve.routes.responses import UNAUTHORIZED
from rec_env.serve.schemas import ErrorResponse, RewardRequest, RewardResponse

__all__ = ["router"]

router = APIRouter(tags=["decisions"])


@router.post(
    "/v1/events/{event_id}/reward",
    response_model=RewardResponse,
    summary="Post the reward of a decision",
    dependencies=[Depends(require_api_key)],
    responses={
        **UNAUTHORIZED,
        404: {"model": ErrorResponse, "description": "No decision has this event id."},
        409: {"model": ErrorResponse, "description": "The event has a different reward."},
    },
)
def reward(event_id: uuid.UUID, body: RewardRequest, service: ServiceDep) -> dict[str, Any]:
    """Record the reward of a decision; an online policy (bandit) learns from it.

    Idempotent: posting the same reward again changes nothing and answers ``duplicate: true``;
    a different reward for the same event is a 409 conflict. Runs in a worker thread.
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
