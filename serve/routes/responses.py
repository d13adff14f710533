"""OpenAPI descriptions shared by the routers: error responses and raw JSON bodies."""

from __future__ import annotations

from typing import Any

from rec_env.serve.schemas import ErrorResponse

__all__ = ["EXPLANATIONS_DISABLED", "UNAUTHORIZED", "VALIDATION_ERROR", "raw_json_body"]

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."}
}
VALIDATION_ERROR: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Validation Error (loc names the field).",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
        },
    }
}
EXPLANATIONS_DISABLED: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "Explanations are disabled (--no-explain)."}
}


def raw_json_body(schema_ref: str) -> dict[str, Any]:
    """OpenAPI of a JSON body read from raw bytes (FastAPI cannot see its model)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": schema_ref}}},
        }
    }
