"""Run directories: a trained policy, its ``run.json`` and its learning curve.

A run directory holds:

* the policy: ``policy.json`` plus ``model.zip`` (SB3) or ``state.npz`` (bandits);
* ``run.json``: env id and kwargs, population, feature and action names, algorithm,
  hyperparameters, seed, recenv version, the SHA-256 of the model file, and the final metrics;
* ``learning_curve.csv``: periodic evaluations during training.

:func:`load_run` checks the model file's SHA-256 against ``run.json`` before loading it, because
an SB3 zip unpickles code: load only directories you trust.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rec_env.agents.base import Policy, read_policy_file

__all__ = [
    "CURVE_FILE",
    "RUN_FILE",
    "RunInfo",
    "file_sha256",
    "load_policy",
    "load_run",
    "model_file",
    "read_curve",
    "write_curve",
    "write_run_info",
]

RUN_FILE = "run.json"
CURVE_FILE = "learning_curve.csv"
_MODEL_FILES = ("model.zip", "state.npz", "policy.json")


@dataclass
class RunInfo:
    """The contents of ``run.json``."""

    algorithm: str
    env_id: str
    env_kwargs: dict[str, Any]
    population: str
    feature_names: list[str]
    action_names: list[str]
    hyperparameters: dict[str, Any]
    seed: int
    recenv_version: str
    model_file: str
    model_sha256: str
    timesteps: int = 0
    wall_time_s: float = 0.0
    final_metrics: dict[str, Any] = field(default_factory=dict)


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


def write_run_info(directory: str | Path, info: RunInfo) -> Path:
    """Write ``run.json``."""
    path = Path(directory) / RUN_FILE
    path.write_text(json.dumps(info.__dict__, indent=2, default=str), encoding="utf-8")
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


def load_run(directory: str | Path, verify: bool = True) -> tuple[Policy, RunInfo]:
    """Load a run directory's policy and ``run.json``.

    Args:
        directory: The run directory.
        verify: Check the model file's SHA-256 against ``run.json`` before loading.

    Raises:
        ValueError: If the directory is not a run, ``run.json`` is malformed, or the model file
            does not match its recorded SHA-256.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory}: no such run directory")
    path = directory / RUN_FILE
    try:
        info = RunInfo(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ValueError(f"{directory}: not a run directory (no {RUN_FILE})") from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path}: malformed ({exc})") from None
    model = directory / info.model_file
    if not model.is_file():
        raise ValueError(f"{directory}: model file {info.model_file} is missing")
    if verify and file_sha256(model) != info.model_sha256:
        raise ValueError(f"{model}: SHA-256 does not match {RUN_FILE}; refusing to load it")
    return load_policy(directory), info
