"""``recenv examples``: the example files shipped inside the package, listed and copied out.

Every path in the tutorials (``users/bargain_hunter.json``, ``rules.yaml`` ...) is one of these
files, so a reader who installed recenv with pip, and has no clone of the repository, gets them
with ``recenv examples copy DIR``. They are read with :mod:`importlib.resources` from
``rec_env.profiles``, never from the working directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

import typer

from rec_env.cli._errors import fail
from rec_env.cli._outputs import (
    FORCE_HELP,
    check_output_directory,
    staged_directory,
    staged_file,
)

__all__ = ["EXAMPLE_GROUPS", "ExampleFile", "example_files", "examples_app"]

PACKAGE = "rec_env.profiles"

EXAMPLE_GROUPS: tuple[tuple[str, str, str], ...] = (
    # (folder inside rec_env.profiles, folder in the copy, what its files are)
    ("", "populations", "customer populations (recenv simulate --profile FILE)"),
    ("users", "users", "example customers (recenv explain, POST /v1/recommend)"),
    ("histories", "histories", "a customer's raw history (recenv explain, POST /v1/recommend)"),
    ("examples", "", "business rules and their suppression list (--rules rules.yaml)"),
    ("fitting", "fitting", "defaults for what a purchase log cannot identify (--defaults)"),
)
"""Groups of example files: where they are in the package, where a copy puts them, what they are."""

_SUFFIXES = (".yaml", ".yml", ".json", ".csv")


@dataclass(frozen=True)
class ExampleFile:
    """One shipped example file.

    Attributes:
        resource: Its path inside ``rec_env.profiles`` (``users/loyal_vip.json``).
        target: Its path in a copy (``users/loyal_vip.json``; the rules go to the top level).
        description: What the file's group is for.
    """

    resource: str
    target: str
    description: str

    def read_bytes(self) -> bytes:
        """The file's content, read from the installed package."""
        return _resource(self.resource).read_bytes()


def _resource(relative: str) -> Traversable:
    """The package resource at ``relative`` (``/``-separated) inside ``rec_env.profiles``."""
    node = files(PACKAGE)
    for part in relative.split("/"):
        if part:
            node = node / part
    return node


def example_files() -> list[ExampleFile]:
    """Every shipped example file, group by group, sorted by name within a group."""
    found = []
    for folder, target_folder, description in EXAMPLE_GROUPS:
        entries = sorted(
            (e for e in _resource(folder).iterdir() if e.is_file() and e.name.endswith(_SUFFIXES)),
            key=lambda e: e.name,
        )
        for entry in entries:
            resource = f"{folder}/{entry.name}" if folder else entry.name
            target = f"{target_folder}/{entry.name}" if target_folder else entry.name
            found.append(ExampleFile(resource, target, description))
    return found


examples_app = typer.Typer(
    help=(
        "The example files shipped with recenv (populations, customers, a history, business "
        "rules): list them, or copy them into a directory to start from."
    ),
    no_args_is_help=True,
)


@examples_app.command("list")
def list_command() -> None:
    """List the example files, as `recenv examples copy` lays them out, with what each is for."""
    description = None
    for example in example_files():
        if example.description != description:
            description = example.description
            typer.echo(f"# {description}")
        typer.echo(f"{example.target}")


@examples_app.command("copy")
def copy_command(
    directory: Annotated[
        Path, typer.Argument(help="Where to copy them (created; must be new or empty).")
    ],
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
) -> None:
    """Copy every example file into DIRECTORY, keeping the layout `recenv examples list` shows."""
    check_output_directory(directory, force=force, option="DIRECTORY", create_parents=True)
    examples = example_files()
    if not examples:
        fail(f"no example files found in the installed package {PACKAGE}")
    if directory.is_dir() and any(directory.iterdir()):  # --force: replace same-named files
        for example in examples:
            path = directory / example.target
            path.parent.mkdir(parents=True, exist_ok=True)
            with staged_file(path) as staged_path:
                staged_path.write_bytes(example.read_bytes())
    else:
        with staged_directory(directory) as staged:
            for example in examples:
                path = staged / example.target
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(example.read_bytes())
    typer.echo(f"copied {len(examples)} example files to {directory}")
