"""The reward endpoints: one decision's, a batch's, and the default when windows close.

``/v1/events/{event_id}/reward`` closes the loop of one logged decision, ``/v1/rewards/batch``
of up to 10,000 at once, and ``/v1/rewards/close`` closes the reward windows of old decisions
with a default reward (:mod:`rec_env.serve.rewards`).
"""

from __future__ import annotations

import functools
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, RootModel

from rec_env.serve.decision_log import RewardBatchError, RewardConflictError, UnknownEventError
from rec_env.serve.dependencies import ServiceDep, request_validators, require_api_key
from rec_env.serve.limits import ValueBudget
from rec_env.serve.rewards import service_close_windows, service_record_rewards
from rec_env.serve.routes.inputs import invalid
from rec_env.serve.routes.responses import INVALID_BODY, UNAUTHORIZED, raw_json_body
from rec_env.serve.schemas import ErrorResponse, RewardRequest, RewardResponse
from rec_env.serve.service import RewardOutOfRangeError
from rec_env.serve.settings import ServeSettings
from rec_env.serve.validation import BodyValidator

__all__ = ["router"]

router = APIRouter(tags=["decisions"])

MAX_REWARD_BATCH = 10_000
"""Most rewards in one ``/v1/rewards/batch`` call."""

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class RewardItem(BaseModel):
    """The reward of one decision, in a batch."""

    model_config = _STRICT

    event_id: uuid.UUID = Field(description="The decision's event id.")
    reward: float = Field(description="Its reward: a finite number within the server's range.")


class RewardBatchRequest(
    RootModel[Annotated[list[RewardItem], Field(max_length=MAX_REWARD_BATCH)]]
):
    """The rewards of up to 10,000 decisions: a JSON list of ``{"event_id", "reward"}``."""


class RewardBatchResponse(BaseModel):
    """What happened to a batch of rewards."""

    recorded: int = Field(description="Rewards recorded now.")
    duplicates: int = Field(description="Items whose same reward was already recorded.")
    late: list[int] = Field(
        description="Indices of the items whose event's reward window had closed: its default "
        "reward stands and the item was not recorded."
    )
    learned: int = Field(description="Rewards the online policy learned from now.")
    n_updates: int = Field(description="Rewards the online policy has learned from.")


class CloseRequest(BaseModel):
    """Close the reward windows of the decisions older than the window."""

    model_config = _STRICT

    window_days: float = Field(gt=0, le=36_500, description="The attribution window, in days.")
    default_reward: float = Field(
        0.0, description="The reward recorded for a decision without one (within range)."
    )
    as_of: float | None = Field(
        None, ge=0, le=1e11, description="Unix seconds to close the windows at (default: now)."
    )


class CloseResponse(BaseModel):
    """The default rewards recorded."""

    closed: int = Field(description="Decisions that got the default reward now.")
    learned: int = Field(description="Of them, rewards the online policy learned from now.")
    n_updates: int = Field(description="Rewards the online policy has learned from.")


@functools.cache
def _validators(reward_min: float, reward_max: float) -> tuple[BodyValidator, BodyValidator]:
    """The validators of a batch of rewards and of a close, for one server's reward range."""
    reward = Annotated[
        float,
        Field(
            ge=reward_min,
            le=reward_max,
            description="A finite number within the server's range (--reward-min, --reward-max).",
        ),
    ]
    item = type(
        "RewardItem",
        (RewardItem,),
        {"__annotations__": {"reward": reward}, "__module__": __name__},
    )
    batch = type(
        "RewardBatchRequest",
        (RootModel[Annotated[list[item], Field(max_length=MAX_REWARD_BATCH)]],),  # type: ignore[valid-type]
        {"__module__": __name__, "__doc__": RewardBatchRequest.__doc__},
    )
    # an item is 1 brace and 2 commas: a body of more items is refused before it is parsed
    budget = ValueBudget(
        tokens=3 * MAX_REWARD_BATCH + 16,
        opens=MAX_REWARD_BATCH + 2,
        reason=f"a batch holds at most {MAX_REWARD_BATCH:,} rewards",
    )
    close = type(
        "CloseRequest",
        (CloseRequest,),
        {
            "__annotations__": {"default_reward": reward},
            "default_reward": 0.0,
            "__module__": __name__,
        },
    )
    return BodyValidator(batch, budget), BodyValidator(
        close, ValueBudget(tokens=16, opens=4, reason="a close is three numbers")
    )


@router.post(
    "/v1/events/{event_id}/reward",
    response_model=RewardResponse,
    summary="Post the reward of a decision",
    dependencies=[Depends(require_api_key)],
    openapi_extra=raw_json_body("#/components/schemas/RewardRequest"),
    responses={
        **UNAUTHORIZED,
        404: {"model": ErrorResponse, "description": "No decision has this event id."},
        409: {
            "model": ErrorResponse,
            "description": "The event has a different reward, or its window closed.",
        },
        **INVALID_BODY,
    },
)
async def reward(event_id: uuid.UUID, request: Request, service: ServiceDep) -> dict[str, Any]:
    """Record the reward of a decision; an online policy (bandit) learns from it.

    The reward must be a finite number within the server's range (``--reward-min``,
    ``--reward-max``: the schema's minimum and maximum); any other is a 422 and is neither
    logged nor learned. Idempotent: posting the same reward again changes nothing and answers
    ``duplicate: true``; a different reward for the same event is a 409 conflict, and so is a
    reward for an event whose reward window has closed (``/v1/rewards/close``: its default
    reward stands). The log and the policy update run in a worker thread.
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


@router.post(
    "/v1/rewards/batch",
    response_model=RewardBatchResponse,
    summary="Post the rewards of up to 10,000 decisions",
    dependencies=[Depends(require_api_key)],
    openapi_extra=raw_json_body("#/components/schemas/RewardBatchRequest"),
    responses={
        **UNAUTHORIZED,
        404: {"model": ErrorResponse, "description": "An item names no decision (its index)."},
        409: {"model": ErrorResponse, "description": "An item's event has a different reward."},
        **INVALID_BODY,
    },
)
async def reward_batch(request: Request, service: ServiceDep) -> dict[str, Any]:
    """Record the rewards of a JSON list of ``{"event_id", "reward"}``, all or none.

    Each item is held to the single endpoint's rules, and the batch is one transaction: an
    invalid item is a 422 whose ``loc`` names its index and field, an unknown event a 404 and a
    different reward than the one recorded (or given earlier in the batch) a 409, both naming
    the item; then nothing is recorded. The same reward again is a duplicate, so posting a batch
    twice changes nothing. An item whose event's reward window has closed
    (``/v1/rewards/close``) is *late*: not recorded, listed in ``late``, and the default reward
    stands. An online policy learns every new reward, in the order they were recorded.
    """
    batch_validator, _ = _validators(service.settings.reward_min, service.settings.reward_max)
    items = (await batch_validator.parse_async(await request.body())).root
    event_ids = [str(item.event_id) for item in items]
    rewards = [item.reward for item in items]
    try:
        outcome = await run_in_threadpool(service_record_rewards, service, event_ids, rewards)
    except RewardBatchError as exc:
        code = status.HTTP_404_NOT_FOUND if exc.kind == "unknown" else status.HTTP_409_CONFLICT
        raise HTTPException(code, str(exc)) from None
    batch = outcome.batch
    return {
        "recorded": batch.recorded,
        "duplicates": batch.duplicates,
        "late": batch.late,
        "learned": outcome.learned,
        "n_updates": outcome.n_updates,
    }


@router.post(
    "/v1/rewards/close",
    response_model=CloseResponse,
    summary="Close the reward windows of old decisions with a default reward",
    dependencies=[Depends(require_api_key)],
    openapi_extra=raw_json_body("#/components/schemas/CloseRequest"),
    responses={**UNAUTHORIZED, **INVALID_BODY},
)
async def close_windows(request: Request, service: ServiceDep) -> dict[str, Any]:
    """Record ``default_reward`` for every decision older than ``window_days`` without a reward.

    Most customers do not buy and nobody posts their zero; without it a policy learns, and an
    evaluation averages, the buyers alone. The defaults are marked as such in the log; a reward
    posted for such an event later is late: refused (409) and never recorded. An online policy
    learns the defaults. ``recenv rewards close`` does the same on a stopped server's log.
    """
    _, close_validator = _validators(service.settings.reward_min, service.settings.reward_max)
    body = await close_validator.parse_async(await request.body())
    outcome = await run_in_threadpool(
        service_close_windows, service, body.window_days, body.default_reward, body.as_of
    )
    return {
        "closed": outcome.batch.recorded,
        "learned": outcome.learned,
        "n_updates": outcome.n_updates,
    }


def body_models(settings: ServeSettings) -> tuple[type[BaseModel], ...]:
    """The batch and close endpoints' request models, for the OpenAPI components.

    Narrowed to the server's reward range, as its validation is.
    """
    batch, close = _validators(settings.reward_min, settings.reward_max)
    return batch.model, close.model
