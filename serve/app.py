"""The FastAPI application: factory, lifespan, limits, error handlers and OpenAPI schema.

``create_app(settings)`` builds the app; its lifespan loads the model from ``settings.model_dir``
(checking the SHA-256 recorded in ``run.json``), opens the decision log and, for online
policies, restores their state, and on shutdown saves that state and closes the log. Once the
service is loaded, the request models are narrowed to its catalog and the settings' limits
(:func:`rec_env.serve.validation.build_validators`); the OpenAPI schema is generated from
those same models. Bodies over ``max_body_bytes`` get 413 before they are read
(:class:`rec_env.serve.limits.BodyLimitMiddleware`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

import rec_env
from rec_env.serve.dashboard import close_summary_store
from rec_env.serve.limits import BodyLimitMiddleware
from rec_env.serve.metrics import Metrics, MetricsMiddleware
from rec_env.serve.routes import RecommendLane, router
from rec_env.serve.routes.docs import add_offline_docs
from rec_env.serve.routes.events import body_models as reward_body_models
from rec_env.serve.schemas import (
    BatchRecommendRequest,
    ExplainRequest,
    RecommendRequest,
    RewardRequest,
)
from rec_env.serve.service import DecisionService
from rec_env.serve.settings import ServeSettings
from rec_env.serve.validation import (
    RequestValidators,
    build_item_validators,
    build_validators,
)

__all__ = ["DecisionApp", "create_app"]

logger = logging.getLogger("rec_env.serve")

_DESCRIPTION = """
Decide which marketing action each customer gets (an offer on a channel; for runs of the item
worlds a product, or a slate of products, on a channel), log every decision with its
propensity, and learn from rewards.

* `POST /v1/recommend` and `POST /v1/recommend/batch` sample actions from the policy's
  probabilities with exploration, among the actions the customer consented to. An item run
  answers with the product (id, name, category, price), channel, offer, propensity and most
  probable actions; a slate run with its products in display order and the probability of the
  whole slate and of each position.
* `POST /v1/events/{{event_id}}/reward` records the outcome; online policies (bandits) learn.
  Rewards must lie in [{reward_min:g}, {reward_max:g}] (`--reward-min`, `--reward-max`);
  others get 422 and are neither logged nor learned.
* `POST /v1/explain` gives SHAP contributions of the features: to the action's output (strategy
  runs), or to why this product rather than the runner-up (item and slate runs).
* A customer may leave features out (any subset of the 16, and in the item worlds of the
  three per product category, nested under `features` or flat): they are filled in with
  documented defaults (item features: no history) and listed in `filled_in`. Unknown consent
  is no consent unless the operator assumes it (`--assume-consent`).
* `GET /v1/model`, `GET /metrics` (API key if configured) and `GET /health`.

Validation is the schema below, strictly: numbers are JSON numbers, finite and in range;
booleans (`true`, `false`) are not numbers, not even for the 0/1 flags, and only booleans are
booleans; unknown keys are refused; action names and product ids are those of the served
catalog. Any invalid body, including one that is not JSON at all, gets 422 with the location of
each problem, on every endpoint. A body over {max_body_bytes:,} bytes (`--max-body-bytes`) gets
413 unread.
"""


def _description(settings: ServeSettings) -> str:
    """The API description, with the operator's limits."""
    return _DESCRIPTION.format(
        reward_min=settings.reward_min,
        reward_max=settings.reward_max,
        max_body_bytes=settings.max_body_bytes,
    )


def _json_safe_errors(errors: Any) -> list[dict[str, Any]]:
    """``loc``, ``msg`` and ``type`` of validation errors, without the (maybe non-JSON) input."""
    return [
        {
            "loc": [part if isinstance(part, int) else str(part) for part in error["loc"]],
            "msg": str(error["msg"]),
            "type": str(error["type"]),
        }
        for error in errors
    ]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with the location of every problem; inputs are left out (NaN is not JSON)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        {"detail": _json_safe_errors(exc.errors())},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """500 without a traceback (the server log has it)."""
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI schema, with the request models the app validates bodies with.

    Bodies are parsed from raw bytes, so their models are added here: the app's narrowed
    models once the service is loaded (the schema is then cached), the generic ones before.
    """
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    validators: RequestValidators | None = app.state.validators
    models = (
        validators.models()
        if validators is not None
        else [RecommendRequest, BatchRecommendRequest, ExplainRequest, RewardRequest]
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (*models, *reward_body_models(app.state.settings)):
        _add_component(components, model, "validation")
    if validators is not None and validators.responses is not None:
        # an item or slate run answers with its own models: document those
        for path, model in zip(_ITEM_PATHS, validators.responses, strict=True):
            _add_component(components, model, "serialization")
            response = schema["paths"][path]["post"]["responses"]["200"]
            response["content"]["application/json"]["schema"] = {
                "$ref": f"#/components/schemas/{model.__name__}"
            }
    if validators is not None:
        app.openapi_schema = schema
    return schema


_ITEM_PATHS = ("/v1/recommend", "/v1/recommend/batch", "/v1/explain")


def _add_component(components: dict[str, Any], model: type[BaseModel], mode: str) -> None:
    """Put ``model``'s JSON schema (and its definitions) among the OpenAPI components."""
    body = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)  # type: ignore[arg-type]
    for name, definition in body.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = body


def _validators(service: DecisionService, settings: ServeSettings) -> RequestValidators:
    """The body validators of ``service``'s world and catalog and the settings' limits."""
    if service.world.kind != "strategy":
        return build_item_validators(
            service.world, settings.max_batch, settings.reward_min, settings.reward_max
        )
    names = service.actions.names
    return build_validators(
        names,
        names[service.actions.no_action],
        settings.max_batch,
        settings.reward_min,
        settings.reward_max,
    )


class DecisionApp(FastAPI):
    """The service's FastAPI app: ``POST /v1/recommend`` goes straight to its lane.

    Every other request, and a recommend request to an app mounted under a prefix, goes
    through FastAPI as usual (:class:`~rec_env.serve.routes.RecommendLane`).
    """

    lane: RecommendLane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the lane's requests on it, the others as FastAPI does."""
        lane = self.lane
        if lane is not None and lane.matches(scope):
            scope["app"] = self
            await lane(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: ServeSettings | None = None, service: DecisionService | None = None
) -> FastAPI:
    """Build the decision service app.

    Args:
        settings: Service settings (default: from ``RECENV_*`` environment variables).
        service: An already loaded service to serve (``recenv serve`` loads it before starting
            the server, to report a bad run directory as one error line); by default the
            lifespan loads it from ``settings``. The app closes it on shutdown.

    Returns:
        The app (a :class:`DecisionApp`). Its ``state`` holds ``settings``, ``metrics`` and,
        while running, ``service`` and ``validators``.
    """
    settings = settings if settings is not None else ServeSettings()  # type: ignore[call-arg]
    metrics = service.metrics if service is not None else Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = service
        if loaded is None:
            loaded = await run_in_threadpool(DecisionService.from_settings, settings, metrics)
        app.state.validators = _validators(loaded, settings)
        app.state.service = loaded
        try:
            yield
        finally:
            app.state.service = None
            close_summary_store(app.state)
            await run_in_threadpool(loaded.close)

    app = DecisionApp(
        title="recenv decision service",
        version=rec_env.__version__,
        description=_description(settings),
        lifespan=lifespan,
        docs_url=None,  # served from local assets by add_offline_docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    app.state.validators = None if service is None else _validators(service, settings)
    # Outermost last: metrics count the 413s of the body limit too.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(router)
    app.lane = RecommendLane(app.exception_handlers, metrics, settings.max_body_bytes)
    add_offline_docs(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
