"""Turning bad input into one ``error: ...`` line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

from rec_env.errors import ConfigError

__all__ = ["BAD_INPUT_EXIT_CODE", "fail", "reporting_bad_input"]

BAD_INPUT_EXIT_CODE = 2
"""Exit code for invalid arguments or configuration files (the Click usage-error code)."""


def fail(message: str) -> NoReturn:
    """Print ``error: <message>`` as a single line on stderr and exit with code 2.

    Args:
        message: What is wrong and, where it helps, what would be valid. Line breaks and runs
            of whitespace are collapsed so that the message stays on one line.

    Raises:
        typer.Exit: Always, with :data:`BAD_INPUT_EXIT_CODE`.
    """
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code=BAD_INPUT_EXIT_CODE)


@contextmanager
def reporting_bad_input() -> Iterator[None]:
    """Report configuration and value errors raised inside the block with :func:`fail`.

    Wrap only the code that turns user input into objects (loading files, building the model
    or the policy), so that genuine bugs elsewhere still surface as tracebacks.

    Raises:
        typer.Exit: If a ``ConfigError``, ``ValueError`` or ``KeyError`` is raised in the block.
    """
    try:
        yield
    except (ConfigError, ValueError, KeyError) as exc:
        fail(str(exc.args[0]) if exc.args else type(exc).__name__)
