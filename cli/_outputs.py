"""``--out`` paths: checked before any work starts, written under a temporary name, never clobbered.

The rules every command with an output follows (``docs/reference/cli.md``):

* the directory that will hold the output must exist and be writable; this is tested by
  creating and removing a file there before the command starts its (possibly long) work;
* an output that already exists is an error unless ``--force`` is given (an existing empty
  directory counts as new);
* the output is written next to its target under a hidden temporary name and renamed into place
  only once complete, so an error or Ctrl-C midway leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rec_env.cli._errors import fail

__all__ = [
    "FORCE_HELP",
    "FORCE_INTO_HELP",
    "check_output_directory",
    "check_output_file",
    "staged_directory",
    "staged_file",
]

FORCE_HELP = "Replace an existing output instead of stopping with an error."

FORCE_INTO_HELP = (
    "Write into an existing, non-empty --out directory, replacing files of the same name."
)


def _nearest_existing(directory: Path) -> Path:
    """``directory`` or its closest ancestor that exists."""
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            return candidate
    return Path(".")  # pragma: no cover - a relative path's ancestors end in "."


def _check_parent(path: Path, option: str, create: bool) -> None:
    """The directory that will hold ``path`` exists (or may be created) and takes new files."""
    parent = path.parent
    if create:
        parent = _nearest_existing(parent)
    if not parent.is_dir():
        if parent.exists():
            fail(f"{option} {path}: {parent} is not a directory")
        fail(f"{option} {path}: no such directory; {parent} does not exist")
    try:
        handle, probe = tempfile.mkstemp(prefix=".recenv-write-test-", dir=parent)
    except OSError as exc:
        fail(f"{option} {path}: cannot write in {parent} ({exc.strerror or exc})")
    os.close(handle)
    os.unlink(probe)


def check_output_file(
    path: Path,
    *,
    force: bool,
    suffixes: Collection[str] | None = None,
    option: str = "--out",
) -> None:
    """Check an output file before any work: format, directory, existence.

    Args:
        path: The file to write.
        force: Whether an existing file may be replaced.
        suffixes: Accepted suffixes (lower case, with the dot), or ``None`` for any.
        option: The option that named the path, for the message.

    Raises:
        typer.Exit: Through :func:`fail` if the file cannot or must not be written.
    """
    if suffixes is not None and path.suffix.lower() not in suffixes:
        fail(
            f"{option} {path}: unsupported file type {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(sorted(suffixes))}"
        )
    if path.is_dir():
        fail(f"{option} {path}: is a directory; give a file name")
    if path.exists() and not force:
        fail(f"{option} {path}: already exists; pass --force to replace it")
    _check_parent(path, option, create=False)


def check_output_directory(
    path: Path,
    *,
    force: bool,
    marker: str | None = None,
    create_parents: bool = False,
    option: str = "--out",
) -> None:
    """Check an output directory before any work.

    Args:
        path: The directory to write.
        force: Whether an existing, non-empty directory may be written to.
        marker: If given, the directory is one artifact recognised by this file (a run
            directory by ``run.json``); ``--force`` replaces it whole, and refuses to replace a
            directory without the marker. Otherwise ``--force`` writes the command's files into
            the directory, replacing files of the same name and keeping the others.
        create_parents: Create missing parent directories (for a default path such as
            ``runs/...``); otherwise the parent must exist.
        option: The option that named the path, for the message.

    Raises:
        typer.Exit: Through :func:`fail` if the directory cannot or must not be written.
    """
    if path.exists() and not path.is_dir():
        fail(f"{option} {path}: is a file; give a directory")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            fail(f"{option} {path}: already exists and is not empty; pass --force to replace it")
        if marker is not None and not (path / marker).is_file():
            fail(
                f"{option} {path}: has no {marker}; "
                "refusing to replace a directory that recenv did not write"
            )
    _check_parent(path, option, create=create_parents)


@contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """A temporary file next to ``path`` (same suffix), renamed to ``path`` if the block succeeds.

    Raises:
        typer.Exit: Through :func:`fail` if the file cannot be created or renamed.
    """
    try:
        handle, name = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent
        )
    except OSError as exc:
        fail(f"cannot write {path} ({exc.strerror or exc})")
    os.close(handle)
    staged = Path(name)
    try:
        yield staged
        try:
            os.replace(staged, path)
        except OSError as exc:
            fail(f"cannot write {path} ({exc.strerror or exc})")
    finally:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()


def _make_parents(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing ancestors; return those created, deepest first."""
    created = [d for d in (directory, *directory.parents) if not d.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    return created


def _commit_directory(staged: Path, path: Path, replace_whole: bool) -> None:
    """Move a finished staged directory to ``path``."""
    if not path.exists() or not any(path.iterdir()):
        os.replace(staged, path)  # also replaces an empty directory
    elif replace_whole:
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.replace(path, old / path.name)
        os.replace(staged, path)
        shutil.rmtree(old)
    else:
        for item in staged.iterdir():
            os.replace(item, path / item.name)
        staged.rmdir()


@contextmanager
def staged_directory(path: Path, *, replace_whole: bool = False) -> Iterator[Path]:
    """A temporary directory next to ``path``, moved to ``path`` if the block succeeds.

    Args:
        path: The output directory (checked by :func:`check_output_directory`).
        replace_whole: Replace an existing ``path`` as a whole; otherwise move the staged files
            into it, replacing files of the same name.

    Yields:
        The staged directory to write into. Paths under it map to ``path / relative``.

    Raises:
        typer.Exit: Through :func:`fail` if the directory cannot be created or moved.
    """
    try:
        created = _make_parents(path.parent)
        staged = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    except OSError as exc:
        fail(f"cannot write {path} ({exc.strerror or exc})")
    try:
        yield staged
        try:
            _commit_directory(staged, path, replace_whole)
        except OSError as exc:
            fail(f"cannot write {path} ({exc.strerror or exc})")
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        for directory in created:  # only the ones this call made, and only if still empty
            with contextlib.suppress(OSError):
                directory.rmdir()


def write_columns(columns: dict[str, Any], path: Path, suffix: str) -> None:
    """Write equally long columns as CSV (``repr`` floats: an exact round trip) or Parquet."""
    if suffix == ".csv":
        import csv

        names = list(columns)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(names)
            for row in zip(*(columns[k].tolist() for k in names), strict=True):
                writer.writerow([repr(v) if isinstance(v, float) else v for v in row])
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({k: pa.array(v.tolist()) for k, v in columns.items()}), path)
