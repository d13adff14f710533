"""Turning bad input into one ``error: ...`` line on stderr and exit code 2, never a traceback.

Every command reports a problem with its input through :func:`fail`, directly or through
:func:`reporting_bad_input`, and the root group (:class:`ReportingGroup`) turns Ctrl-C into one
line and exit code 130, the code a shell gives a process stopped by SIGINT.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
import typer
from typer.core import TyperGroup

from rec_env.errors import ConfigError

__all__ = [
    "BAD_INPUT_EXIT_CODE",
    "INTERRUPTED_EXIT_CODE",
    "MAX_CUSTOMERS",
    "ReportingGroup",
    "check_count",
    "fail",
    "reporting_bad_input",
]

BAD_INPUT_EXIT_CODE = 2
"""Exit code for invalid arguments or configuration files (the Click usage-error code)."""

INTERRUPTED_EXIT_CODE = 130
"""Exit code after Ctrl-C: 128 + SIGINT, what shells and Python itself report."""

MAX_CUSTOMERS = 1_000_000
"""Most customers one simulated cohort may hold (each holds about 1 KB of memory)."""


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


def check_count(option: str, value: int, low: int = 1, high: int | None = None) -> None:
    """Reject an integer option outside ``[low, high]`` with :func:`fail`.

    Args:
        option: The option as the user types it, e.g. ``"--customers"``.
        value: Its value.
        low: Smallest valid value.
        high: Largest valid value, or ``None`` for no limit. :data:`MAX_CUSTOMERS` gets an
            explanation of the limit and of how to go beyond it.
    """
    if value < low:
        fail(f"{option} must be at least {low:,}, got {value:,}")
    if high is not None and value > high:
        why = ""
        if high == MAX_CUSTOMERS:
            why = (
                " (a cohort is held in memory, about 1 KB per customer); for a larger sample, "
                "run several seeds and pool the results"
            )
        fail(f"{option} must be at most {high:,}, got {value:,}{why}")


def _message(exc: BaseException) -> str:
    """The text of an exception; a ``KeyError``'s message without the quotes ``str`` adds."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


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
        fail(_message(exc))


class ReportingGroup(TyperGroup):
    """The root command group: Ctrl-C in any command ends with one line and exit code 130.

    Outputs are staged (:mod:`rec_env.cli._outputs`), so an interrupted command leaves nothing
    behind; the line says so instead of Click's bare ``Aborted!``.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; report ``KeyboardInterrupt`` as ``error: interrupted``."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            typer.echo("error: interrupted (Ctrl-C); no partial output was kept", err=True)
            raise typer.Exit(code=INTERRUPTED_EXIT_CODE) from None
