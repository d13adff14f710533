"""Run directories: a trained policy, its ``run.json`` and its learning curve.

A run directory holds:

* the policy: ``policy.json`` plus ``model.zip`` (SB3) or ``state.npz`` (bandits); baselines
  have ``policy.json`` only. A PPO, A2C or MaskablePPO run also has ``network.npz``, its actor
  as plain arrays, from which a serving process decides without torch
  (:mod:`~rec_env.agents.sb3.network_policy`; written when the numpy copy matches the policy);
* ``run.json``: env id and :class:`~rec_env.settings.EnvSettings` (``env``; the id must be the
  one of the settings' ``world``, see ``rec_env.ENV_WORLDS``), feature and action names,
  algorithm, hyperparameters, seed, recenv version, the integrity fields below, and the final
  metrics;
* ``learning_curve.csv``: periodic evaluations during training (a report: never loaded).

**Integrity.** ``run.json`` records

* ``files``: ``{file name: SHA-256}`` of *every* file the policy's loaders read, e.g.
  ``{"model.zip": "…", "network.npz": "…", "policy.json": "…"}``. Names are plain names of the
  known run files (``policy.json``, ``model.zip``, ``state.npz``, ``network.npz``), never paths,
  so a run directory cannot name a file outside itself;
* ``weights_sha256``: :meth:`~rec_env.agents.base.Policy.weights_sha256`, a hash of what the
  policy decides with (configuration and learned arrays, not the file bytes, which for SB3 hold
  the training's start time). ``model_version`` (``<algorithm>-<first 12 hex digits>``) is
  built from it, so bit-identical trainings share a version.

:func:`load_run` (through :func:`rec_env.agents.integrity.load_verified_policy`) reads each
listed file once into memory (refusing symbolic links and anything but regular files), checks
its SHA-256, writes the verified bytes into a private temporary directory and loads the policy
from there: the bytes hashed are the bytes loaded, whatever happens to the run directory
meanwhile. It refuses a run whose ``files`` do not list exactly the files its algorithm loads,
a known policy file present but not listed, and a loaded policy whose weights hash differs from
``weights_sha256``. An SB3 zip unpickles code when loaded, so the check comes before any
loading; the hashes are only as trustworthy as ``run.json`` itself.

``load_run(..., lean=True)`` (the decision service's) loads a run that has ``network.npz``
without importing torch, as a :class:`~rec_env.agents.sb3.network_policy.NetworkPolicy`: every
listed file is read once and its SHA-256 checked, the policy is built from the verified bytes of
``policy.json`` and ``network.npz``, and its weights hash (of the SB3 policy's learned arrays,
which ``network.npz`` carries) must equal ``weights_sha256``. Other runs load as without
``lean``.

Run directories written before these fields existed (``model_file`` and ``model_sha256``, which
hashed one file while the loader read others) are refused with a request to retrain.

``run.json`` is read in one place, :func:`read_run_info`, which validates every field
(:class:`RunInfo`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rec_env import ENV_WORLDS
from rec_env.agents.base import POLICY_FILE, Policy
from rec_env.agents.integrity import (
    POLICY_FILES,
    RUN_FILE,
    file_sha256,
    load_policy,
    load_verified_policy,
    model_file,
    policy_class,
    policy_digests,
    read_verified_files,
    refuse_unlisted,
)
from rec_env.agents.sb3.network_policy import NETWORK_FILE, network_policy, save_network
from rec_env.settings import EnvSettings

__all__ = [
    "CURVE_FILE",
    "NETWORK_FILE",
    "POLICY_FILES",
    "RUN_FILE",
    "RunInfo",
    "default_run_dir",
    "file_sha256",
    "load_policy",
    "load_run",
    "load_verified_policy",
    "model_file",
    "policy_class",
    "policy_digests",
    "read_curve",
    "read_run_info",
    "world_env_id",
    "write_curve",
    "write_policy_files",
    "write_run_info",
]

CURVE_FILE = "learning_curve.csv"

_RUN_FILES = (*POLICY_FILES, NETWORK_FILE)
"""Every file ``files`` may list: the policy loaders' and the serving copy of the network."""

_Name = Annotated[str, Field(min_length=1)]
_Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_OLD_FORMAT = (
    "written by an older recenv, which hashed one model file (model_file, model_sha256) while "
    "the loader read others; retrain it with `recenv train` to record every file's SHA-256 "
    "(files) and the weights' (weights_sha256)"
)


class RunInfo(BaseModel):
    """The contents of ``run.json``, validated field by field when read.

    Types are strict (``"action_names": 5`` or ``"seed": "0"`` is an error, not coerced),
    ``files`` names only known policy files of the run directory itself (no paths), and the
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
    files: dict[str, _Sha256]
    weights_sha256: _Sha256
    timesteps: int = Field(0, ge=0)
    wall_time_s: float = Field(0.0, ge=0.0)
    final_metrics: dict[str, Any] = Field(default_factory=dict)

    @field_validator("env")
    @classmethod
    def _valid_env_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        return EnvSettings.from_dict(value).to_dict()  # raises ValueError naming the setting

    @model_validator(mode="after")
    def _env_id_matches_world(self) -> RunInfo:
        world = ENV_WORLDS.get(self.env_id)
        if world is not None and world != self.settings.world:
            raise ValueError(
                f"env_id {self.env_id} simulates the {world} world, env says {self.settings.world}"
            )
        return self

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

    @field_validator("files")
    @classmethod
    def _known_policy_files(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(name for name in value if name not in _RUN_FILES)
        if unknown:
            raise ValueError(
                f"{unknown[0]!r} is not a policy file of a run directory; files names only "
                f"{', '.join(_RUN_FILES)}, inside the run directory (no paths)"
            )
        if POLICY_FILE not in value:
            raise ValueError(f"must list {POLICY_FILE}")
        return dict(sorted(value.items()))

    @property
    def model_file(self) -> str:
        """The main file of the policy: ``model.zip``, ``state.npz``, else ``policy.json``."""
        return next(name for name in POLICY_FILES if name in self.files)

    @property
    def model_sha256(self) -> str:
        """SHA-256 of :attr:`model_file` (what ``sha256sum`` prints for it)."""
        return self.files[self.model_file]

    @property
    def model_version(self) -> str:
        """``<algorithm>-<12 hex digits of weights_sha256>``: equal weights, equal version."""
        return f"{self.algorithm}-{self.weights_sha256[:12]}"


def world_env_id(settings: EnvSettings) -> str:
    """The registered env id of ``settings.world`` (:data:`rec_env.ENV_WORLDS` inverted)."""
    for env_id, world in ENV_WORLDS.items():
        if world == settings.world:
            return env_id
    raise ValueError(f"no registered env simulates the {settings.world!r} world")


def default_run_dir(algorithm: str, seed: int) -> Path:
    """Where ``recenv train`` writes a run by default: ``runs/<algorithm>-seed<seed>``."""
    return Path("runs") / f"{algorithm}-seed{seed}"


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value, anything else (a path) as text, for ``json.dumps``."""
    return value.item() if hasattr(value, "item") else str(value)


def write_policy_files(directory: str | Path, policy: Policy) -> dict[str, Any]:
    """Save ``policy`` (and its network's serving copy) into a run directory.

    Policy files of another algorithm left in ``directory`` are removed first.

    Returns:
        The integrity fields of ``run.json`` (``files`` and ``weights_sha256``), to pass to
        :class:`RunInfo`.
    """
    directory = Path(directory)
    for name in set(POLICY_FILES) - set(policy.saved_files):  # another run's, left in it
        (directory / name).unlink(missing_ok=True)
    policy.save(directory)
    digests = policy_digests(directory, policy)
    if save_network(directory, policy):
        digests["files"][NETWORK_FILE] = file_sha256(directory / NETWORK_FILE)
    return digests


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


def _validation_message(error: ValidationError) -> str:
    """A pydantic error as ``field: problem; field: problem``."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '<root>'}: {item['msg']}"
        for item in error.errors()
    )


def _refuse_old_format(path: Path, text: str) -> None:
    """Refuse a ``run.json`` of the format before ``files`` (one line: retrain it).

    Raises:
        ValueError: If it has ``model_file`` or ``model_sha256`` and no ``files``.
    """
    try:
        payload = json.loads(text)
    except ValueError:
        return  # reported as malformed by the validation
    old_keys = {"model_file", "model_sha256"}
    if isinstance(payload, dict) and "files" not in payload and old_keys & payload.keys():
        raise ValueError(f"{path}: {_OLD_FORMAT}")


def read_run_info(directory: str | Path) -> RunInfo:
    """Read and validate a run directory's ``run.json``: the one reader of that file.

    Raises:
        ValueError: If the directory or its ``run.json`` is missing, or ``run.json`` is not
            valid JSON, of the format before ``files`` (retrain it), or not a valid
            :class:`RunInfo` (the message names the field).
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
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    _refuse_old_format(path, text)
    try:
        return RunInfo.model_validate_json(text)
    except ValidationError as exc:
        if any(item["type"] == "json_invalid" for item in exc.errors()):
            raise ValueError(f"{path}: malformed (not valid JSON)") from None
        raise ValueError(f"{path}: malformed ({_validation_message(exc)})") from None


def load_run(
    directory: str | Path, verify: bool = True, *, lean: bool = False
) -> tuple[Policy, RunInfo]:
    """Load a run directory's policy, verified against its ``run.json``, and ``run.json``.

    Args:
        directory: The run directory.
        verify: Check every file's SHA-256 and the weights' against ``run.json`` (``False``
            only for directories this process wrote itself).
        lean: Load a run with ``network.npz`` as a torch-free
            :class:`~rec_env.agents.sb3.network_policy.NetworkPolicy` (module docstring); what
            a process that only decides needs.

    Raises:
        ValueError: If the directory is not a run, ``run.json`` is malformed or of the old
            format, a file does not match its recorded SHA-256 or is not the loader's, the
            weights do not match, or the policy's actions are not those of ``run.json``.
    """
    directory = Path(directory)
    info = read_run_info(directory)
    if lean and NETWORK_FILE in info.files:
        policy: Policy = _load_network_policy(directory, info, verify)
    else:
        expected_weights = info.weights_sha256 if verify else None
        files = {name: sha for name, sha in info.files.items() if name != NETWORK_FILE}
        policy = load_verified_policy(
            directory, info.algorithm, files, expected_weights, check_sha256=verify
        )
        refuse_unlisted(directory, info.files, (NETWORK_FILE,))  # unread, but not ours either
    if list(policy.action_names) != info.action_names:
        raise ValueError(
            f"{directory / RUN_FILE}: action_names do not match the policy's "
            f"({len(info.action_names)} against {len(policy.action_names)} actions)"
        )
    return policy, info


def _load_network_policy(directory: Path, info: RunInfo, verify: bool) -> Policy:
    """The numpy policy of a run with ``network.npz``, from the verified bytes of every file.

    Raises:
        ValueError: If a known policy file is present but not listed, a file is missing or
            altered, ``policy.json`` or ``network.npz`` is not a valid network policy of the
            run's algorithm, or its weights do not match ``weights_sha256``.
    """
    refuse_unlisted(directory, info.files)
    contents = read_verified_files(directory, info.files, check_sha256=verify)
    where = directory / POLICY_FILE
    try:
        payload = json.loads(contents[POLICY_FILE])
    except ValueError:
        raise ValueError(f"{where}: not valid JSON") from None
    if not isinstance(payload, dict) or payload.get("algorithm") != info.algorithm:
        raise ValueError(f"{where}: not a {info.algorithm} policy, as {RUN_FILE} says")
    if not isinstance(payload.get("config"), dict):
        raise ValueError(f"{where}: expected a 'config' object")
    try:
        policy = network_policy(payload, contents[NETWORK_FILE])
    except ValueError as exc:
        raise ValueError(f"{directory}: {exc}") from None
    if verify and policy.weights_sha256() != info.weights_sha256:
        raise ValueError(
            f"{directory}: the loaded policy's weights do not match weights_sha256 in "
            f"{RUN_FILE}; refusing it"
        )
    return policy
