"""The HTTP endpoints of the decision service, one router per resource.

* :mod:`~rec_env.serve.routes.recommend`: ``/v1/recommend`` and ``/v1/recommend/batch`` decide
  and log (rank, as in contextual-bandit services);
* :mod:`~rec_env.serve.routes.explain`: ``/v1/explain`` explains without deciding;
* :mod:`~rec_env.serve.routes.events`: ``/v1/events/{event_id}/reward`` closes the loop;
* :mod:`~rec_env.serve.routes.model`, :mod:`~rec_env.serve.routes.health` and
  :mod:`~rec_env.serve.routes.metrics`: ``/v1/model``, ``/health`` and ``/metrics``;
* :mod:`~rec_env.serve.routes.dashboard`: ``/dashboard`` (``/`` redirects to it) and its data
  API ``/v1/dashboard/...``;
* :mod:`~rec_env.serve.routes.docs`: ``/docs`` and ``/redoc`` from local assets.

:data:`router` includes all but the last, in that order. Every JSON body is read as bytes and
validated by the app's :class:`~rec_env.serve.validation.RequestValidators`; its schema is
referenced from OpenAPI by component name (``#/components/schemas/<Model>``).

:class:`RecommendLane` serves ``POST /v1/recommend`` ahead of FastAPI's middleware and routing,
by the same function as the documented route: they cost about as much as the rest of a
decision. The documented route stays in the router, for OpenAPI and for an app mounted under a
prefix (whose requests the lane does not recognise).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rec_env.serve.limits import BodyLimitMiddleware
from rec_env.serve.metrics import Metrics, MetricsMiddleware
from rec_env.serve.routes import dashboard, events, explain, health, metrics, model, recommend

__all__ = ["RecommendLane", "router"]

router = APIRouter()
for _resource in (recommend, explain, events, model, health, metrics, dashboard):
    router.include_router(_resource.router)

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class _Template:
    """What the metrics read from ``scope["route"]``: the route's template."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


class RecommendLane:
    """Pure ASGI: ``POST /v1/recommend`` with the app's limits, metrics and error handlers.

    The request passes the same :class:`~rec_env.serve.metrics.MetricsMiddleware` and
    :class:`~rec_env.serve.limits.BodyLimitMiddleware` as the app's other requests, and an
    exception raised by the route gets the response of the app's handler for its class (422
    for validation errors, the status of an ``HTTPException``, 500 for anything else), as
    Starlette's exception middlewares would give it.

    Args:
        handlers: The app's exception handlers by class (``FastAPI.exception_handlers``),
            looked up when an exception is raised (so handlers added later count).
        metrics: Where requests are counted.
        max_body_bytes: Largest accepted body.
    """

    path = "/v1/recommend"

    def __init__(
        self, handlers: dict[object, ExceptionHandler], metrics: Metrics, max_body_bytes: int
    ) -> None:
        self._handlers = handlers
        self._route = _Template(self.path)
        self._app: ASGIApp = MetricsMiddleware(
            BodyLimitMiddleware(self._respond, max_body_bytes=max_body_bytes), metrics=metrics
        )

    def matches(self, scope: Scope) -> bool:
        """Whether this lane serves ``scope``: an HTTP ``POST`` to exactly :attr:`path`."""
        return scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a request :meth:`matches` accepted (``scope["app"]`` set to the app)."""
        scope["route"] = self._route
        await self._app(scope, receive, send)

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the route on the body; an exception gets its handler's response."""
        raw = await _body(receive)  # past the limit this raises to BodyLimitMiddleware: 413
        try:
            payload = await recommend.recommend_raw(scope["app"].state, raw)
            content = recommend.json_content(payload)
        except Exception as exc:
            request = Request(scope, receive, send)
            response = await self._handler(exc)(request, exc)
            await response(scope, receive, send)
            return
        length = b"%d" % len(content)
        headers = [(b"content-type", b"application/json"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _handler(self, exc: Exception) -> ExceptionHandler:
        """The app's handler for the closest class of ``exc`` (``Exception``'s at worst)."""
        for cls in type(exc).__mro__:
            handler = self._handlers.get(cls)
            if handler is not None:
                return handler
        raise exc  # no handler at all: the server answers 500


async def _body(receive: Receive) -> bytes:
    """The whole request body (what ``Request.body`` reads, without building a request).

    Raises:
        ClientDisconnect: If the client went away before sending all of it.
    """
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
