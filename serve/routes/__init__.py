"""The HTTP endpoints of the decision service, one router per resource.

* :mod:`~rec_env.serve.routes.recommend`: ``/v1/recommend`` and ``/v1/recommend/batch`` decide
  and log (rank, as in contextual-bandit services);
* :mod:`~rec_env.serve.routes.explain`: ``/v1/explain`` explains without deciding;
* :mod:`~rec_env.serve.routes.events`: ``/v1/events/{event_id}/reward`` closes the loop;
* :mod:`~rec_env.serve.routes.model`, :mod:`~rec_env.serve.routes.health` and
  :mod:`~rec_env.serve.routes.metrics`: ``/v1/model``, ``/health`` and ``/metrics``.

:data:`router` includes them all, in that order.
"""

from __future__ import annotations

from fastapi import APIRouter

from rec_env.serve.routes import events, explain, health, metrics, model, recommend
from rec_env.serve.routes.recommend import BATCH_REQUEST_SCHEMA_REF, RECOMMEND_REQUEST_SCHEMA_REF

__all__ = ["BATCH_REQUEST_SCHEMA_REF", "RECOMMEND_REQUEST_SCHEMA_REF", "router"]

router = APIRouter()
for _resource in (recommend, explain, events, model, health, metrics):
    router.include_router(_resource.router)
