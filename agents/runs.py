"""Run directories: a trained policy, its ``run.json`` and its learning curve.

A run directory holds:

* the policy: ``policy.json`` plus ``model.zip`` (SB3) or ``state.npz`` (bandits);
* ``run.json``: env id and :class:`~rec_env.settings.EnvSettings` (``env``), feature and action
  names, algorithm, hyperparameters, seed, recenv version, the SHA-256 of the model file, and
  the final metrics;
* ``learning_curve.csv``: periodic evaluations during training.

``run.json`` is read in one place, :func:`read_run_info`, which validates every field
(:class:`RunInfo`). :func:`load_run` also checks the model file's SHA-256 against it before
loading the model, because an SB3 zip unpickles code: load only directories you trust.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rec_env.agents.base import Policy, read_policy_file
from rec_env.settings import EnvSettings

__all__ = [
    "CURVE_FILE",
    "RUN_FILE",
    "RunInfo",
    "default_run_dir",
    "file_sha256",
    "load_policy",
    "load_run",
    "model_file",
    "read_curve",
    "read_run_info",
    "write_curve",
    "write_run_info",
]

RUN_FILE = "run.json"
CURVE_FILE = "learning_curve.csv"
_MODEL_FILES = ("model.zip", "state.npz", "policy.json")

_Name = Annotated[str, Field(min_length=1)]


class RunInfo(BaseModel):
    """The contents of ``run.json``, validated field by field when read.

    Types are strict (``"action_names": 5`` or ``"seed": "0"`` is an error, not coerced), the
    model file must be one of the known model file names in the run directory itself, and the
    environment settings must be valid :class:`~rec_env.settings.EnvSettings`.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    algorithm: _Name
    env_id: _Name
    env: dict[str, Any]
    feature_names: list[_Name]
    action_names: list[_Name] = Field(min_length=1)
    hyperparameters: dict[str, Any]
    seed: int = Field(ge=0)
    recenv_version: str
    model_file: str
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    timesteps: int = Field(0, ge=0)
    wall_time_s: float = Field(0.0, ge=0.0)
    final_metrics: dict[str, Any] = Field(default_factory=dict)

    @field_validator("env")
    @classmethod
    def _valid_env_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        return EnvSettings.from_dict(value).to_dict()  # raises ValueError naming the setting

    @property
    def settings(self) -> EnvSettings:
        """The simulated world the policy was trained and evaluated in."""
        return EnvSettings.from_dict(self.env)

    @field_validator("feature_names", "action_names")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate names {', '.join(duplicates)}")
        return value

    @field_validator("model_file")
    @classmethod
    def _known_model_file(cls, value: str) -> str:
        if value not in _MODEL_FILES:
            raise ValueError(f"must be one of {', '.join(_MODEL_FILES)}, got {value!r}")
        return value


def default_run_dir(algorithm: str, seed: int) -> Path:
    """Where ``recenv train`` writes a run by default: ``runs/<algorithm>-seed<seed>``."""
    return Path("runs") / f"{algorithm}-seed{seed}"


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_file(directory: str | Path) -> Path:
    """The file holding the learned model of a saved policy (what the SHA-256 covers)."""
    directory = Path(directory)
    for name in _MODEL_FILES:
        if (directory / name).is_file():
            return directory / name
    raise ValueError(f"{directory}: no model file ({', '.join(_MODEL_FILES)})")


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value, anything else (a path) as text, for ``json.dumps``."""
    return value.item() if hasattr(value, "item") else str(value)


def write_run_info(directory: str | Path, info: RunInfo) -> Path:
    """Write ``run.json``."""
    path = Path(directory) / RUN_FILE
    path.write_text(json.dumps(info.model_dump(), indent=2, default=_plain), encoding="utf-8")
    return path


def write_curve(directory: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write the learning curve as CSV (columns from the first row)."""
    path = Path(directory) / CURVE_FILE
    columns = list(rows[0]) if rows else ["timesteps", "profit_per_customer", "profit_ci95"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_curve(directory: str | Path) -> list[dict[str, float]]:
    """The learning curve of a run (empty if it has none)."""
    path = Path(directory) / CURVE_FILE
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def load_policy(directory: str | Path) -> Policy:
    """Load any saved policy (SB3, bandit or baseline) by the algorithm in ``policy.json``."""
    from rec_env.agents import baselines
    from rec_env.agents.registry import BANDIT_ALGORITHMS, SB3_ALGORITHMS

    algorithm = read_policy_file(directory)["algorithm"]
    if algorithm in SB3_ALGORITHMS:
        from rec_env.agents.sb3 import SB3Policy

        return SB3Policy.load(directory)
    if algorithm in BANDIT_ALGORITHMS:
        from rec_env.agents.bandits import BANDITS

        return BANDITS[algorithm].load(directory)
    stateless = {
        cls.algorithm: cls
        for cls in (
            baselines.RandomPolicy,
            baselines.FixedActionPolicy,
            baselines.FlagTargetedPolicy,
        )
    }
    if algorithm in stateless:
        return stateless[algorithm].load(directory)
    raise ValueError(f"{directory}: unknown algorithm {algorithm!r} in policy.json")


def _validation_message(error: ValidationError) -> str:
    """A pydantic error as ``field: problem; field: problem``."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '<root>'}: {item['msg']}"
        for item in error.errors()
    )


def read_run_info(directory: str | Path) -> RunInfo:
    """Read and validate a run directory's ``run.json``: the one reader of that file.

    Raises:
        ValueError: If the directory or its ``run.json`` is missing, or ``run.json`` is not
            valid JSON or not a valid :class:`RunInfo` (the message names the field).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory}: no such run directory")
    path = directory / RUN_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{directory}: not a run directory (no {RUN_FILE})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: malformed (not UTF-8 text)") from None
    try:
        return RunInfo.model_validate_json(text)
    except ValidationError as exc:
        if any(item["type"] == "json_invalid" for item in exc.errors()):
            raise ValueError(f"{path}: malformed (not valid JSON)") from None
        raise ValueError(f"{path}: malformed ({_validation_message(exc)})") from None


def load_run(directory: str | Path, verify: bool = True) -> tuple[Policy, RunInfo]:
    """Load a run directory's policy and ``run.json``.

    Args:
        directory: The run directory.
        verify: Check the model file's SHA-256 against ``run.json`` before loading.

    Raises:
        ValueError: If the directory is not a run, ``run.json`` is malformed, the model file
            does not match its recorded SHA-256, or the policy's actions are not those of
            ``run.json``.
    """
    directory = Path(directory)
    info = read_run_info(directory)
    model = directory / info.model_file
    if not model.is_file():
        raise ValueError(f"{directory}: model file {info.model_file} is missing")
    if verify and file_sha256(model) != info.model_sha256:
        raise ValueError(f"{model}: SHA-256 does not match {RUN_FILE}; refusing to load it")
    policy = load_policy(directory)
    if list(policy.action_names) != info.action_names:
        raise ValueError(
            f"{directory / RUN_FILE}: action_names do not match the policy's "
            f"({len(info.action_names)} against {len(policy.action_names)} actions)"
        )
    return policy, info
