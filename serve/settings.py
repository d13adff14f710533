"""Configuration of the decision service, from arguments or ``RECENV_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MAX_BATCH", "ExplorationKind", "ServeSettings"]

MAX_BATCH = 10_000
"""Largest number of customers one ``/v1/recommend/batch`` call may carry."""

ExplorationKind = Literal["epsilon", "temperature", "none"]


class ServeSettings(BaseSettings):
    """Settings of ``recenv serve`` and :func:`rec_env.serve.create_app`.

    Every field can be set as a keyword argument or through an environment variable named
    ``RECENV_<FIELD>`` (for example ``RECENV_MODEL_DIR``, ``RECENV_API_KEY``,
    ``RECENV_EPSILON``). The model is only ever loaded from ``model_dir``: no endpoint accepts a
    model file or path.

    Exploration defaults to ε-mixing with ε = 0.05: every allowed action keeps a propensity of at
    least 0.05 / (number of allowed actions), enough for off-policy evaluation of other policies
    from the decision log, at a cost of about 5 % of decisions.
    """

    model_config = SettingsConfigDict(env_prefix="RECENV_", extra="forbid")

    model_dir: Path = Field(
        description="Run directory written by `recenv train` (run.json + model file)."
    )
    db: Path = Field(Path("decisions.db"), description="SQLite decision log (WAL mode).")
    api_key: SecretStr | None = Field(
        None,
        description="If set, the X-API-Key header must carry it for rewards, /v1/model, /metrics.",
    )
    exploration: ExplorationKind = Field(
        "epsilon", description="How served actions explore around the policy's probabilities."
    )
    epsilon: float = Field(0.05, ge=0.0, le=1.0, description="ε of ε-mixing exploration.")
    temperature: float = Field(
        1.0, gt=0.0, le=1e3, description="Temperature of softmax exploration."
    )
    seed: int | None = Field(
        None,
        ge=0,
        description="Seed of the generator that samples served actions "
        "(default: fresh OS entropy, reported by GET /v1/model so a session can be replayed).",
    )
    state_dir: Path | None = Field(
        None,
        description="Where an online learner (bandit) keeps its updated state across restarts "
        "(default: updates live in memory only).",
    )
    state_save_every: int = Field(
        1, ge=1, description="Persist an online learner's state every this many rewards."
    )
    explain: bool = Field(True, description="Build the SHAP explainer at startup.")
    n_background: int = Field(
        16, ge=1, le=1024, description="Background customers of SHAP explanations."
    )
    explain_seed: int = Field(0, ge=0, description="Seed of the explanation background sample.")
    max_batch: int = Field(
        MAX_BATCH, ge=1, le=MAX_BATCH, description="Most customers in one batch call."
    )
