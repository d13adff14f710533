"""The decision service: a FastAPI app that serves, logs, explains and learns.

Build it with :func:`create_app` (``recenv serve`` runs it with uvicorn). Importing this package
imports FastAPI, but not torch or shap: the model loads in the app's lifespan, the explainer on
the first request that explains.
"""

from __future__ import annotations

from rec_env.datasets.decision_log_tables import export_decisions
from rec_env.serve.app import create_app
from rec_env.serve.decision_log import DecisionLog
from rec_env.serve.exploration import Exploration
from rec_env.serve.service import DecisionService
from rec_env.serve.settings import MAX_BATCH, ServeSettings

__all__ = [
    "MAX_BATCH",
    "DecisionLog",
    "DecisionService",
    "Exploration",
    "ServeSettings",
    "create_app",
    "export_decisions",
]
