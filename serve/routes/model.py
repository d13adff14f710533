"""``/v1/model``: what is served, and how."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends

from rec_env.serve.dependencies import ServiceDep, require_api_key
from rec_env.serve.routes.responses import UNAUTHORIZED
from rec_env.serve.schemas import ModelInfo

__all__ = ["router"]

router = APIRouter(tags=["admin"])


@router.get(
    "/v1/model",
    response_model=ModelInfo,
    summary="The served model",
    dependencies=[Depends(require_api_key)],
    responses=UNAUTHORIZED,
)
async def model_info(service: ServiceDep) -> dict[str, Any]:
    """Algorithm, version, SHA-256, world, actions, features, exploration, consent, updates."""
    info = service.info
    return {
        "algorithm": info.algorithm,
        "world": service.world.kind,
        "env_id": info.env_id,
        "slate_size": service.world.slate_size,
        "model_version": service.model_version,
        "sha256": info.model_sha256,
        "population": info.settings.profile,
        "trained_timesteps": info.timesteps,
        "actions": [service.describe_action(i) for i in range(service.actions.n_actions)],
        "features": [asdict(f) for f in service.world.features],
        "exploration": {**service.exploration.as_dict(), "seed": service.seed},
        "online": service.online,
        "n_updates": service.n_updates,
        "assume_consent": list(service.assume_consent),
        "state_persisted": service.state_store is not None,
    }
