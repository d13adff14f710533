"""Assertions shared by the CLI tests."""

from __future__ import annotations

from typing import Any


def assert_bad_input(result: Any, *fragments: str) -> None:
    """A ``CliRunner`` result failed with exit code 2 and one ``error:`` line holding fragments."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
