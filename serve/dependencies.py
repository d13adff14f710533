"""FastAPI dependencies: the service, the settings, the body validators and the API key check.

They read what the lifespan put on ``app.state``; tests replace any of them with
``app.dependency_overrides[get_service] = ...``. They are coroutines so that FastAPI calls
them on the event loop instead of a worker thread.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader
from starlette.datastructures import State

from rec_env.serve.service import DecisionService
from rec_env.serve.settings import ServeSettings
from rec_env.serve.validation import RequestValidators

__all__ = [
    "API_KEY_HEADER",
    "ServiceDep",
    "SettingsDep",
    "get_service",
    "get_settings",
    "loaded_service",
    "request_validators",
    "require_api_key",
    "service_of",
    "validators_of",
]

API_KEY_HEADER = "X-API-Key"

_api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Required by rewards, /v1/model and /metrics when the server has an API key.",
)


async def get_settings(request: Request) -> ServeSettings:
    """The settings the app was created with."""
    return request.app.state.settings


async def get_service(request: Request) -> DecisionService:
    """The decision service loaded by the lifespan.

    Raises:
        HTTPException: 503 if the service is not loaded (outside the lifespan).
    """
    return loaded_service(request)


def loaded_service(request: Request) -> DecisionService:
    """:func:`get_service` as a plain function, for the routes that skip dependency injection.

    Raises:
        HTTPException: 503 if the service is not loaded (outside the lifespan).
    """
    return service_of(request.app.state)


def service_of(state: State) -> DecisionService:
    """The service an app's ``state`` holds (:func:`loaded_service` without a request).

    Raises:
        HTTPException: 503 if the service is not loaded (outside the lifespan).
    """
    service = getattr(state, "service", None)
    if service is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the model is not loaded")
    return service


def request_validators(request: Request) -> RequestValidators:
    """The body validators built for the loaded service (its catalog, the settings' limits).

    A plain function that routes call, not a dependency: on ``/v1/recommend`` one more
    dependency would cost FastAPI about as much as parsing the body.

    Raises:
        HTTPException: 503 if the service is not loaded.
    """
    return validators_of(request.app.state)


def validators_of(state: State) -> RequestValidators:
    """The validators an app's ``state`` holds (:func:`request_validators` without a request).

    Raises:
        HTTPException: 503 if the service is not loaded.
    """
    validators = getattr(state, "validators", None)
    if validators is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the model is not loaded")
    return validators


SettingsDep = Annotated[ServeSettings, Depends(get_settings)]
ServiceDep = Annotated[DecisionService, Depends(get_service)]


async def require_api_key(
    settings: SettingsDep, api_key: Annotated[str | None, Security(_api_key_scheme)] = None
) -> None:
    """Check the ``X-API-Key`` header if the server has an API key.

    Raises:
        HTTPException: 401 if the key is missing or wrong.
    """
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    if api_key is None or not secrets.compare_digest(api_key.encode(), expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing or invalid API key (header {API_KEY_HEADER})",
            headers={"WWW-Authenticate": "APIKey"},
        )
