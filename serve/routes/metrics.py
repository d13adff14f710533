"""``/metrics``: Prometheus text exposition."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from rec_env.serve.dependencies import ServiceDep, require_api_key
from rec_env.serve.metrics import CONTENT_TYPE
from rec_env.serve.routes.responses import UNAUTHORIZED

__all__ = ["router"]

router = APIRouter(tags=["admin"])


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    dependencies=[Depends(require_api_key)],
    responses={
        401: {  # JSON, unlike the 200 (response_class would make it text/plain)
            "description": UNAUTHORIZED[401]["description"],
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            },
        },
        200: {
            "description": "Prometheus text exposition format.",
            "content": {CONTENT_TYPE: {"example": "recenv_decisions_total 42\n"}},
        },
    },
)
async def metrics_text(service: ServiceDep) -> PlainTextResponse:
    """Request counts and latency histograms, decisions, explanations and rewards."""
    text = service.metrics.render(service.model_version, service.info.algorithm, service.n_updates)
    return PlainTextResponse(text, media_type=CONTENT_TYPE)
