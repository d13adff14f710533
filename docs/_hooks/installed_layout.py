"""MkDocs hook: let mkdocstrings find ``rec_env.agents``, ``rec_env.cli`` … where pip puts them.

``pyproject.toml``'s ``package-dir`` installs the top-level folders ``agents/``, ``cli/``,
``serve/`` and ``profiles/`` under ``rec_env``. Griffe reads sources from disk and knows only
the folder ``rec_env/``, so this hook builds the installed layout as symbolic links in a
temporary directory (``rec_env/`` with ``agents`` → ``../agents`` and so on, read from
``package-dir`` so it stays the one definition) and gives it to the Python handler as its
search path. Nothing is written to the repository.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[2]


def installed_layout(root: Path, target: Path) -> Path:
    """Link the installed layout of ``root``'s packages under ``target``; return ``target``."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    for name, folder in sorted(package_dir.items(), key=lambda item: item[0].count(".")):
        link = target.joinpath(*name.split("."))
        if name.count(".") == 0:  # the top package: a real folder, so subpackages can join it
            link.mkdir(parents=True)
            for entry in (root / folder).iterdir():
                if entry.name != "__pycache__" and not (link / entry.name).exists():
                    (link / entry.name).symlink_to(entry)
        else:
            link.symlink_to(root / folder, target_is_directory=True)
    return target


@event_priority(100)  # before mkdocstrings reads its handlers' configuration
def on_config(config: Any) -> Any:
    """Point the mkdocstrings Python handler at the installed layout."""
    target = Path(tempfile.mkdtemp(prefix="recenv-docs-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    installed_layout(ROOT, target)
    handlers = config["plugins"]["mkdocstrings"].config["handlers"]
    handlers.setdefault("python", {})["paths"] = [str(target)]
    return config
