"""Configuration of the decision service, from arguments or ``RECENV_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rec_env.customer import parse_channels

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_REWARD_MAX",
    "DEFAULT_REWARD_MIN",
    "DEFAULT_WAL_MAX_BYTES",
    "MAX_BACKGROUND",
    "MAX_BATCH",
    "ExplorationKind",
    "ServeSettings",
]

MAX_BATCH = 10_000
"""Largest number of customers one ``/v1/recommend/batch`` call may carry."""


MAX_BACKGROUND = 1024
"""Most background customers of a SHAP explanation (the server's and ``recenv explain``'s)."""

DEFAULT_REWARD_MIN = -1_000.0
"""Lowest reward accepted by default: a week's profit on one customer, in USD."""

DEFAULT_REWARD_MAX = 1_000.0
"""Highest reward accepted by default (USD). Far above any week's profit on one customer in the
simulated populations (the largest seen is a few hundred dollars); a value beyond it is more
likely a unit error (cents) or an attack than a sale, and one such value would dominate what an
online bandit has learned."""

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body (8 MiB): a 10,000-customer batch of full rows is about 4 MB."""

DEFAULT_WAL_MAX_BYTES = 64 * 1024 * 1024
"""Bound on the decision log's write-ahead log file (64 MiB)."""

ExplorationKind = Literal["epsilon", "temperature", "none"]


class ServeSettings(BaseSettings):
    """Settings of ``recenv serve`` and :func:`rec_env.serve.create_app`.

    Every field can be set as a keyword argument or through an environment variable named
    ``RECENV_<FIELD>`` (for example ``RECENV_MODEL_DIR``, ``RECENV_API_KEY``,
    ``RECENV_EPSILON``). The model is only ever loaded from ``model_dir``: no endpoint accepts a
    model file or path.

    A customer's consent that a request leaves out is unknown, and unknown consent is no consent
    unless ``assume_consent`` names the channel (``RECENV_ASSUME_CONSENT=email,push``).

    Exploration defaults to ε-mixing with ε = 0.05: every allowed action keeps a propensity of at
    least 0.05 / (number of allowed actions), enough for off-policy evaluation of other policies
    from the decision log, at a cost of about 5 % of decisions.
    """

    model_config = SettingsConfigDict(env_prefix="RECENV_", extra="forbid")

    model_dir: Path = Field(
        description="Run directory written by `recenv train` (run.json + model file)."
    )
    db: Path | str = Field(
        Path("decisions.db"),
        description="Decision log: a SQLite file (WAL mode; one server), or a postgresql:// URL "
        "shared by several replicas.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="If set, the X-API-Key header must carry it for rewards, /v1/model, /metrics. "
        "Pass it as RECENV_API_KEY rather than on the command line, where `ps` shows it.",
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
        description="Where an online learner (bandit) keeps snapshots of its state. The decision "
        "log is the source of truth: at startup the learner replays every logged reward after "
        "the newest snapshot (with no state directory: after the run's initial state), so "
        "snapshots only make restarts fast.",
    )
    state_save_every: int = Field(
        100,
        ge=1,
        description="Snapshot an online learner's state every this many rewards (at most this "
        "many are replayed from the decision log at a restart).",
    )
    explain: bool = Field(
        True, description="Explain decisions (the SHAP explainer is built on the first request)."
    )
    n_background: int = Field(
        16, ge=1, le=MAX_BACKGROUND, description="Background customers of SHAP explanations."
    )
    explain_seed: int = Field(0, ge=0, description="Seed of the explanation background sample.")
    max_batch: int = Field(
        MAX_BATCH, ge=1, le=MAX_BATCH, description="Most customers in one batch call."
    )
    reward_min: float = Field(
        DEFAULT_REWARD_MIN,
        ge=-1e9,
        le=1e9,
        description="Lowest accepted reward (USD profit of one decision); below it: 422, "
        "neither logged nor learned.",
    )
    reward_max: float = Field(
        DEFAULT_REWARD_MAX,
        ge=-1e9,
        le=1e9,
        description="Highest accepted reward (USD); above it: 422, neither logged nor learned.",
    )
    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        le=1024**3,
        description="Largest request body in bytes; a larger one gets 413 before it is parsed.",
    )
    wal_max_bytes: int = Field(
        DEFAULT_WAL_MAX_BYTES,
        ge=1024 * 1024,
        le=64 * 1024**3,
        description="Bound on the decision log's write-ahead log file, in bytes.",
    )
    rules: Path | None = Field(
        None,
        description="Business rules (YAML; strategy runs): their caps, eligibility and "
        "suppression mask every decision, as in training and batch scoring.",
    )
    holdout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Share of customers held out (no message), chosen by a keyed hash of "
        "their customer_id, as recenv score chooses them: the same customers week after week. "
        "A request without a customer_id is never held out.",
    )
    holdout_seed: int = Field(0, description="Key of the holdout's customer-id hash.")
    apprentice: bool = Field(
        False,
        description="Apprentice mode: every /v1/recommend request must give baseline_action "
        "(batches: baseline_actions), the caller's own choice, which is served and logged; the "
        "model's choice and probabilities are logged beside it for recenv ope.",
    )
    reward_window_days: float | None = Field(
        None,
        gt=0.0,
        le=36_500.0,
        description="Attribution window in days, from a decision's activation (else from the "
        "decision): rewards posted inside it add up (in parts), and when it closes the sum, or "
        "default_reward if none came, is the decision's reward, the one learned from. None: a "
        "posted reward is final at once (a request may still give its own window).",
    )
    default_reward: float = Field(
        0.0,
        ge=-1e9,
        le=1e9,
        description="The reward of a decision whose window closes without any reward (the "
        "customer did not buy).",
    )
    require_activation: bool = Field(
        False,
        description="Learn from and evaluate activated decisions only "
        "(POST /v1/events/{event_id}/activate): a reward for a decision never activated is "
        "refused (409) and its window never closes.",
    )
    window_close_interval: float = Field(
        60.0,
        ge=0.0,
        le=86_400.0,
        description="Seconds between two closes of the reward windows that are over, in a "
        "background thread (0: only on POST /v1/rewards/close).",
    )
    refresh_seconds: float = Field(
        1.0,
        ge=0.0,
        le=86_400.0,
        description="PostgreSQL log: seconds between two catch-ups of an online policy with the "
        "final rewards other replicas recorded, in seq order (0: only when this replica records "
        "a reward).",
    )
    assume_consent: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Channels on which a customer's unknown consent (left out of the request) "
        "counts as given, e.g. 'email,push' or 'all'. By default unknown consent is no consent: "
        "nothing is sent on that channel.",
    )

    @field_validator("db", mode="before")
    @classmethod
    def _log_location(cls, value: Any) -> Any:
        """A PostgreSQL URL stays a string (a path would fold its ``//``); anything else a path."""
        from rec_env.datasets.decision_log_backend import postgres_url

        if isinstance(value, str | Path):
            url = postgres_url(value)
            return Path(value) if url is None else url
        return value

    @field_validator("api_key")
    @classmethod
    def _non_empty_key(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty key would start a server that refuses every key: refuse it instead."""
        if value is not None and not value.get_secret_value().strip():
            raise PydanticCustomError(
                "empty_api_key",
                "is empty (is RECENV_API_KEY set?); give a key or leave the option out",
            )
        return value

    @model_validator(mode="after")
    def _reward_range(self) -> ServeSettings:
        if not self.reward_min < self.reward_max:
            raise PydanticCustomError(
                "reward_range",
                "reward_min ({low}) must be below reward_max ({high})",
                {"low": self.reward_min, "high": self.reward_max},
            )
        if not self.reward_min <= self.default_reward <= self.reward_max:
            raise PydanticCustomError(
                "default_reward_range",
                "default_reward ({value}) must lie within reward_min and reward_max",
                {"value": self.default_reward},
            )
        return self

    @field_validator("assume_consent", mode="before")
    @classmethod
    def _channels(cls, value: Any) -> tuple[str, ...]:
        """``"email,push"``, ``"all"``, ``"none"`` or a list of channels."""
        try:
            if not isinstance(value, str | list | tuple):
                raise ValueError("expected a comma-separated list of channels")
            return parse_channels(value)
        except ValueError as exc:  # the message without pydantic's "Value error, " prefix
            raise PydanticCustomError("channels", "{reason}", {"reason": str(exc)}) from None
