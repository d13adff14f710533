"""The ``recenv`` command line (Typer); the console script runs :data:`app`."""

from rec_env.cli.main import app

__all__ = ["app"]
