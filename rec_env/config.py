"""Loading YAML / JSON configuration files into pydantic models with readable errors."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from rec_env.errors import ConfigError

__all__ = ["ConfigError", "load_model", "resolve_data_file"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def resolve_data_file(name_or_path: str | Path, package: str, suffixes: tuple[str, ...]) -> Path:
    """Find a configuration file given either a path or the name of a shipped file.

    Args:
        name_or_path: A filesystem path, or the stem of a file shipped in ``package``.
        package: Package holding the shipped files, e.g. ``"rec_env.profiles"``.
        suffixes: Accepted file suffixes, e.g. ``(".yaml", ".yml")``.

    Returns:
        The path of an existing file.

    Raises:
        ConfigError: If neither a file at that path nor a shipped file of that name exists.
    """
    path = Path(name_or_path)
    if path.suffix in suffixes or path.exists() or len(path.parts) > 1:
        if not path.is_file():
            raise ConfigError(f"{path}: file not found")
        return path
    root = resources.files(package)
    for suffix in suffixes:
        candidate = root / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return Path(str(candidate))
    available = sorted(
        p.name.rsplit(".", 1)[0] for p in root.iterdir() if p.name.endswith(suffixes)
    )
    raise ConfigError(
        f"{name_or_path}: no such file, and no shipped one of that name "
        f"(available: {', '.join(available)})"
    )


def _format_validation_error(path: Path, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<root>"
        problems.append(f"{field}: {item['msg']}")
    return f"{path}: " + "; ".join(problems)


def load_model(path: Path, model: type[ModelT]) -> ModelT:
    """Parse a YAML or JSON file and validate it against a pydantic model.

    Args:
        path: File to read. ``.json`` files are parsed as JSON, everything else as YAML.
        model: The pydantic model class to validate against.

    Returns:
        The validated model instance.

    Raises:
        ConfigError: If the file cannot be read, is not valid YAML/JSON, or fails validation.
            The message names the file, the field and the problem.
    """
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            f"expected a {kind} file"
        ) from None
    try:
        data = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from None
    except RecursionError:
        # Both parsers recurse once per nesting level; no configuration nests this deep.
        raise ConfigError(f"{path}: not valid {kind}: nested too deeply") from None
    if data is None:
        raise ConfigError(f"{path}: file is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
