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

:func:`hot_routes` serves ``POST /v1/recommend`` by the same function as a plain Starlette
route, matched before the others: FastAPI's routing and dependency solving cost about as
much as the rest of a decision. The documented route stays in the router, for OpenAPI.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from rec_env.serve.routes import dashboard, events, explain, health, metrics, model, recommend

__all__ = ["hot_routes", "router"]

router = APIRouter()
for _resource in (recommend, explain, events, model, health, metrics, dashboard):
    router.include_router(_resource.router)


class _PlainRoute(Route):
    """A Starlette route that, like FastAPI's, names itself in the scope (for the metrics)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Match as Starlette does, and put this route in the child scope."""
        match, child_scope = super().matches(scope)
        if match != Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def hot_routes() -> list[BaseRoute]:
    """``POST /v1/recommend`` as a plain route, to be matched before the app's other routes."""
    return [
        _PlainRoute("/v1/recommend", recommend.recommend, methods=["POST"], include_in_schema=False)
    ]
