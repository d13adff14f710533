"""``/health``: liveness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from rec_env.serve.dependencies import ServiceDep
from rec_env.serve.schemas import Health

__all__ = ["router"]

router = APIRouter(tags=["admin"])


@router.get("/health", response_model=Health, summary="Liveness")
async def health(service: ServiceDep) -> dict[str, Any]:
    """``ok`` once the model is loaded."""
    return {"status": "ok", "model_version": service.model_version}
