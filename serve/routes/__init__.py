"""The HTTP endpoints of the decision service, one router per resource.

* :mod:`~rec_env.serve.routes.recommend`: ``/v1/recommend`` and ``/v1/recommend/batch`` decide
  and log (rank, as in contextual-bandit services);
* :mod:`~rec_env.serve.routes.explain`: ``/v1/explain`` explains without deciding;
* :mod:`~rec_env.serve.routes.events`: ``/v1/events/{event_id}/reward`` closes the loop;
* :mod:`~rec_env.serve.routes.model`, :mod:`~rec_env.serve.routes.health` and
  :mod:`~rec_env.serve.routes.metrics`: ``/v1/model``, ``/health`` and ``/metrics``;
* :mod:`~rec_env.serve.routes.docs`: ``/docs`` and ``/redoc`` from local assets.

:data:`router` includes the first six, in that order. Every JSON body is read as bytes and
validated by the app's :class:`~rec_env.serve.validation.RequestValidators`; its schema is
referenced from OpenAPI by component name (``#/components/schemas/<Model>``).
"""

from __future__ import annotations

from fastapi import APIRouter

from rec_env.serve.routes import events, explain, health, metrics, model, recommend

__all__ = ["router"]

router = APIRouter()
for _resource in (recommend, explain, events, model, health, metrics):
    router.include_router(_resource.router)
