"""The FastAPI application: factory, lifespan, error handlers and OpenAPI schema.

``create_app(settings)`` builds the app; its lifespan loads the model from ``settings.model_dir``
(checking the SHA-256 recorded in ``run.json``), opens the decision log and, for online
policies, restores their state, and on shutdown saves that state and closes the log.
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

import rec_env
from rec_env.serve.metrics import Metrics, MetricsMiddleware
from rec_env.serve.routes import BATCH_REQUEST_SCHEMA_REF, RECOMMEND_REQUEST_SCHEMA_REF, router
from rec_env.serve.schemas import BatchRecommendRequest, RecommendRequest
from rec_env.serve.service import DecisionService
from rec_env.serve.settings import ServeSettings

__all__ = ["create_app"]

logger = logging.getLogger("rec_env.serve")

_DESCRIPTION = """
Decide which marketing action (an offer on a channel) each customer gets, log every decision
with its propensity, and learn from rewards.

* `POST /v1/recommend` and `POST /v1/recommend/batch` sample actions from the policy's
  probabilities with exploration, among the actions the customer consented to.
* `POST /v1/events/{event_id}/reward` records the outcome; online policies (bandits) learn.
* `POST /v1/explain` gives SHAP contributions of the features.
* A customer may leave features out (any subset of the 16, nested under `features` or flat):
  they are filled in with documented defaults and listed in `filled_in`. Unknown consent is
  no consent unless the operator assumes it (`--assume-consent`).
* `GET /v1/model`, `GET /metrics` (API key if configured) and `GET /health`.
"""


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
    """The OpenAPI schema, with the request models whose bodies are parsed from raw bytes."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model, ref in (
        (BatchRecommendRequest, BATCH_REQUEST_SCHEMA_REF),
        (RecommendRequest, RECOMMEND_REQUEST_SCHEMA_REF),
    ):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in body.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components[ref.rsplit("/", 1)[-1]] = body
    app.openapi_schema = schema
    return schema


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
        The FastAPI app. Its ``state`` holds ``settings``, ``metrics`` and, while running,
        ``service``.
    """
    settings = settings if settings is not None else ServeSettings()  # type: ignore[call-arg]
    metrics = service.metrics if service is not None else Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = service
        if loaded is None:
            loaded = await run_in_threadpool(DecisionService.from_settings, settings, metrics)
        app.state.service = loaded
        try:
            yield
        finally:
            app.state.service = None
            await run_in_threadpool(loaded.close)

    app = FastAPI(
        title="recenv decision service",
        version=rec_env.__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
