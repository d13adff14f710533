"""The reward contract's endpoints: activations, rewards, and closing the reward windows.

``/v1/events/{event_id}/activate`` marks one decision as delivered and ``/v1/events/activate``
up to 10,000; ``/v1/events/{event_id}/reward`` closes the loop of one logged decision,
``/v1/rewards/batch`` of up to 10,000 at once, and ``/v1/rewards/close`` closes the reward
windows that are over (:mod:`rec_env.serve.rewards`).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator
from pydantic_core import PydanticCustomError

from rec_env.serve.decision_log import (
    EventBatchError,
    RewardBatchError,
    RewardConflictError,
    UnknownEventError,
)
from rec_env.serve.dependencies import ServiceDep, request_validators, require_api_key
from rec_env.serve.limits import ValueBudget
from rec_env.serve.rewards import (
    UnmatchedDecisionError,
    event_ids_by_customer,
    service_activate,
    service_close_windows,
    service_record_rewards,
)
from rec_env.serve.routes.inputs import invalid
from rec_env.serve.routes.responses import INVALID_BODY, UNAUTHORIZED, raw_json_body
from rec_env.serve.schemas import ErrorResponse, RewardRequest, RewardResponse, absent_means_none
from rec_env.serve.service import DecisionService, RewardOutOfRangeError
from rec_env.serve.settings import ServeSettings
from rec_env.serve.validation import BodyValidator

__all__ = ["router"]

router = APIRouter(tags=["decisions"])

MAX_REWARD_BATCH = 10_000
"""Most rewards in one ``/v1/rewards/batch`` call."""
MAX_ACTIVATION_BATCH = 10_000
"""Most activations in one ``/v1/events/activate`` call."""
_MAX_PART_ID = 256

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
_ACTIVATED_AT = Field(
    None, ge=0, le=1e11, description="Unix seconds the message was delivered (default: now)."
)


def _present_means_given(schema: dict[str, Any]) -> None:
    """Schema of a field that may be left out but, if present, is not ``null``."""
    absent_means_none(schema)
    choices = [c for c in schema.pop("anyOf", []) if c.get("type") != "null"]
    if len(choices) == 1:
        schema.update(choices[0])
    elif choices:
        schema["anyOf"] = choices


class EventKey(BaseModel):
    """Which decision an item of a batch is about: its event id, or its customer and time."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={  # event_id alone, or customer_id and decided_at
            "oneOf": [
                {
                    "required": ["event_id"],
                    "not": {"anyOf": [{"required": ["customer_id"]}, {"required": ["decided_at"]}]},
                },
                {"required": ["customer_id", "decided_at"], "not": {"required": ["event_id"]}},
            ]
        },
    )

    event_id: uuid.UUID | None = Field(
        None,
        description="The decision's event id (or give customer_id and decided_at).",
        json_schema_extra=_present_means_given,
    )
    customer_id: str | None = Field(
        None,
        min_length=1,
        max_length=_MAX_PART_ID,
        description="Instead of event_id: the customer whose latest decision at or before "
        "decided_at is meant (decisions logged with a customer_id).",
        json_schema_extra=_present_means_given,
    )
    decided_at: float | None = Field(
        None,
        ge=0,
        le=1e11,
        description="With customer_id: Unix seconds at or after the decision (e.g. the send).",
        json_schema_extra=_present_means_given,
    )

    @model_validator(mode="after")
    def _one_key(self) -> EventKey:
        for name in ("event_id", "customer_id", "decided_at"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise PydanticCustomError(
                    "null", "{name} may be left out, not null", {"name": name}
                )
        by_event = self.event_id is not None
        by_customer = self.customer_id is not None or self.decided_at is not None
        if by_event == by_customer or (
            by_customer and (self.customer_id is None or self.decided_at is None)
        ):
            raise PydanticCustomError(
                "one_key", "give event_id, or customer_id and decided_at (not both)"
            )
        return self


class RewardItem(EventKey):
    """The reward of one decision, in a batch: by its event id, or by customer and time."""

    reward: float = Field(description="Its reward: a finite number within the server's range.")
    part_id: str | None = Field(
        None,
        min_length=1,
        max_length=_MAX_PART_ID,
        description="Id of this part of the reward (inside a window, parts add up; the same "
        "part again changes nothing).",
    )


class ActivateRequest(BaseModel):
    """When a decision's message was delivered (the body is optional)."""

    model_config = _STRICT

    activated_at: float | None = _ACTIVATED_AT


class ActivateResponse(BaseModel):
    """The decision's activation."""

    event_id: str
    activated_at: float = Field(description="Unix seconds of its (first) activation.")
    duplicate: bool = Field(description="True if it was already activated (that time stands).")


class ActivationItem(EventKey):
    """One decision to activate, in a batch: by its event id, or by customer and time."""

    activated_at: float | None = _ACTIVATED_AT


class ActivationBatchRequest(
    RootModel[Annotated[list[ActivationItem], Field(max_length=MAX_ACTIVATION_BATCH)]]
):
    """Up to 10,000 decisions to activate: a JSON list of ``{"event_id", "activated_at"?}``."""


class ActivationBatchResponse(BaseModel):
    """What happened to a batch of activations."""

    activated: int = Field(description="Decisions activated now.")
    duplicates: int = Field(description="Items whose decision was already activated.")


class RewardBatchRequest(
    RootModel[Annotated[list[RewardItem], Field(max_length=MAX_REWARD_BATCH)]]
):
    """The rewards of up to 10,000 decisions: a JSON list of ``{"event_id", "reward"}``."""


class RewardBatchResponse(BaseModel):
    """What happened to a batch of rewards."""

    recorded: int = Field(description="Rewards recorded now.")
    duplicates: int = Field(description="Items whose same reward was already recorded.")
    late: list[int] = Field(
        description="Indices of the items whose event's reward window was over: its final "
        "reward stands; the item is logged as late and never learned from."
    )
    pending: int = Field(
        description="Of the recorded items, parts of windows still open: learned when their "
        "window closes."
    )
    learned: int = Field(description="Rewards the online policy learned from now.")
    n_updates: int = Field(description="Rewards the online policy has learned from.")


class CloseRequest(BaseModel):
    """Close the reward windows that are over."""

    model_config = _STRICT

    window_days: float | None = Field(
        None,
        gt=0,
        le=36_500,
        description="The attribution window of decisions logged without one, in days (left "
        "out: only decisions logged with a window close, each by its own).",
    )
    default_reward: float | None = Field(
        None,
        description="The reward recorded for a decision without one (within range; default: "
        "the server's --default-reward).",
    )
    as_of: float | None = Field(
        None, ge=0, le=1e11, description="Unix seconds to close the windows at (default: now)."
    )


class CloseResponse(BaseModel):
    """The default rewards recorded."""

    closed: int = Field(
        description="Decisions that got their final reward now (the sum of their parts, or the "
        "default)."
    )
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
    # an item is 1 brace and 3 commas: a body of more items is refused before it is parsed
    budget = ValueBudget(
        tokens=4 * MAX_REWARD_BATCH + 16,
        opens=MAX_REWARD_BATCH + 2,
        reason=f"a batch holds at most {MAX_REWARD_BATCH:,} rewards",
    )
    close = type(
        "CloseRequest",
        (CloseRequest,),
        {
            "__annotations__": {"default_reward": reward | None},
            "default_reward": None,
            "__module__": __name__,
        },
    )
    return BodyValidator(batch, budget), BodyValidator(
        close, ValueBudget(tokens=16, opens=4, reason="a close is three numbers")
    )


_ACTIVATE = BodyValidator(
    ActivateRequest, ValueBudget(tokens=8, opens=2, reason="an activation is one number")
)
_ACTIVATE_BATCH = BodyValidator(
    ActivationBatchRequest,
    ValueBudget(  # an item is 1 brace and 2 commas
        tokens=3 * MAX_ACTIVATION_BATCH + 16,
        opens=MAX_ACTIVATION_BATCH + 2,
        reason=f"a batch holds at most {MAX_ACTIVATION_BATCH:,} activations",
    ),
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
            "description": "The event (part) has a different reward, its window is over, or it "
            "needs an activation (require_activation).",
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
    reward for an event whose reward window is over (it is logged as late, never learned; the
    final reward stands) or, with ``--require-activation``, one never activated. A decision
    logged with a window (``--reward-window-days`` or the request's ``reward_window_days``)
    takes rewards as parts (``part_id``) that add up: ``pending: true``, learned when the window
    closes. The log and the policy update run in a worker thread.
    """
    validator = request_validators(request).reward
    body: RewardRequest = await validator.parse_async(await request.body())
    key = str(event_id)
    try:
        outcome = await run_in_threadpool(service.reward, key, body.reward, body.part_id)
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
        "pending": outcome.receipt.pending,
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
    """Record the rewards of a JSON list of ``{"event_id", "reward", "part_id"?}``, all or none.

    Instead of ``event_id`` an item may give ``customer_id`` and ``decided_at`` (Unix
    seconds): the reward of that customer's latest decision at or before that time (a 404
    names an item that matches none). Event ids are the fast path: a join by customer reads
    the log's decisions.

    Each item is held to the single endpoint's rules, and the batch is one transaction: an
    invalid item is a 422 whose ``loc`` names its index and field, an unknown event a 404, and
    a different reward than the one recorded (or given earlier in the batch), or an event that
    needs an activation, a 409, each naming the item; then nothing is recorded. The same reward
    (part) again is a duplicate, so posting a batch twice changes nothing. An item whose event's
    reward window is over is *late*: logged as late, listed in ``late``, never learned; the
    final reward stands. Parts of windows still open are counted in ``pending``. An online
    policy learns every new final reward, in the order they were recorded.
    """
    batch_validator, _ = _validators(service.settings.reward_min, service.settings.reward_max)
    items = (await batch_validator.parse_async(await request.body())).root
    event_ids = await _event_ids(service, items)
    rewards = [item.reward for item in items]
    parts = [item.part_id for item in items]
    part_ids = parts if any(part is not None for part in parts) else None
    try:
        outcome = await run_in_threadpool(
            service_record_rewards, service, event_ids, rewards, part_ids
        )
    except RewardBatchError as exc:
        code = status.HTTP_404_NOT_FOUND if exc.kind == "unknown" else status.HTTP_409_CONFLICT
        raise HTTPException(code, str(exc)) from None
    batch = outcome.batch
    return {
        "recorded": batch.recorded,
        "duplicates": batch.duplicates,
        "late": batch.late,
        "pending": batch.pending,
        "learned": outcome.learned,
        "n_updates": outcome.n_updates,
    }


@router.post(
    "/v1/rewards/close",
    response_model=CloseResponse,
    summary="Close the reward windows that are over: the sum of the parts, or the default",
    dependencies=[Depends(require_api_key)],
    openapi_extra=raw_json_body("#/components/schemas/CloseRequest"),
    responses={**UNAUTHORIZED, **INVALID_BODY},
)
async def close_windows(request: Request, service: ServiceDep) -> dict[str, Any]:
    """Give every decision whose reward window is over its final reward.

    A decision logged with a window closes by its own: the sum of its parts, or
    ``default_reward`` if none came. With ``window_days``, every decision logged without a
    window and older than it (from its activation, if any) with no reward gets
    ``default_reward``. Most customers do not buy and nobody posts their zero; without it a
    policy learns, and an evaluation averages, the buyers alone. The defaults are marked as
    such in the log; a reward posted for such an event later is late: refused (409), logged,
    never learned. An online policy learns the final rewards. The service also closes the
    windows that are over every ``--window-close-interval`` seconds. ``recenv rewards close``
    does the same on a stopped server's log.
    """
    _, close_validator = _validators(service.settings.reward_min, service.settings.reward_max)
    body = await close_validator.parse_async(await request.body())
    default = body.default_reward
    if default is None:
        default = service.settings.default_reward
    outcome = await run_in_threadpool(
        service_close_windows, service, body.window_days, default, body.as_of
    )
    return {
        "closed": outcome.batch.recorded,
        "learned": outcome.learned,
        "n_updates": outcome.n_updates,
    }


@router.post(
    "/v1/events/{event_id}/activate",
    response_model=ActivateResponse,
    summary="Mark a decision as delivered",
    dependencies=[Depends(require_api_key)],
    openapi_extra=raw_json_body("#/components/schemas/ActivateRequest", required=False),
    responses={
        **UNAUTHORIZED,
        404: {"model": ErrorResponse, "description": "No decision has this event id."},
        **INVALID_BODY,
    },
)
async def activate(event_id: uuid.UUID, request: Request, service: ServiceDep) -> dict[str, Any]:
    """Activate a decision: its message was sent. The body ``{"activated_at": …}`` is optional.

    The decision's reward window starts at its activation (never before the decision). With
    ``--require-activation`` only activated decisions take rewards, get a default when their
    window closes, and are learned from. Idempotent: the first activation's time stands and a
    repeat answers ``duplicate: true``.
    """
    raw = await request.body()
    body = _ACTIVATE.parse(raw) if raw.strip() else ActivateRequest()
    key = str(event_id)
    try:
        batch = await run_in_threadpool(service_activate, service, [key], body.activated_at)
    except EventBatchError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no decision with event id {key}") from None
    activated_at = await run_in_threadpool(service.log.activation, key)
    return {"event_id": key, "activated_at": activated_at, "duplicate": batch.duplicates > 0}


@router.post(
    "/v1/events/activate",
    response_model=ActivationBatchResponse,
    summary="Mark up to 10,000 decisions as delivered",
    dependencies=[Depends(require_api_key)],
    openapi_extra=raw_json_body("#/components/schemas/ActivationBatchRequest"),
    responses={
        **UNAUTHORIZED,
        404: {"model": ErrorResponse, "description": "An item names no decision (its index)."},
        **INVALID_BODY,
    },
)
async def activate_batch(request: Request, service: ServiceDep) -> dict[str, Any]:
    """Activate a JSON list of ``{"event_id", "activated_at"?}``, all or none.

    Instead of ``event_id`` an item may give ``customer_id`` and ``decided_at``, as in
    ``/v1/rewards/batch``.

    An invalid item is a 422 whose ``loc`` names its index and field, an unknown event a 404
    naming the item; then nothing is recorded. A decision already activated keeps its first
    time and counts as a duplicate, so posting a batch twice changes nothing.
    """
    items = (await _ACTIVATE_BATCH.parse_async(await request.body())).root
    event_ids = await _event_ids(service, items)
    times = [item.activated_at for item in items]
    try:
        batch = await run_in_threadpool(service_activate, service, event_ids, times)
    except EventBatchError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return {"activated": batch.activated, "duplicates": batch.duplicates}


async def _event_ids(service: DecisionService, items: Sequence[EventKey]) -> list[str]:
    """The event id of each item: given, or its customer's latest decision at ``decided_at``.

    Raises:
        HTTPException: 404 naming the first item whose customer has no such decision.
    """
    event_ids = [str(item.event_id) for item in items]
    by_customer = [i for i, item in enumerate(items) if item.event_id is None]
    if by_customer:
        try:
            found = await run_in_threadpool(
                event_ids_by_customer,
                service.log,
                [items[i].customer_id for i in by_customer],
                [items[i].decided_at for i in by_customer],
            )
        except UnmatchedDecisionError as exc:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"item {by_customer[exc.index]}, customer_id: {exc}"
            ) from None
        for i, event_id in zip(by_customer, found, strict=True):
            event_ids[i] = event_id
    return event_ids


def body_models(settings: ServeSettings) -> tuple[type[BaseModel], ...]:
    """The request models of the batch, close and activation endpoints, for OpenAPI.

    Narrowed to the server's reward range, as its validation is.
    """
    batch, close = _validators(settings.reward_min, settings.reward_max)
    return batch.model, close.model, ActivateRequest, ActivationBatchRequest
