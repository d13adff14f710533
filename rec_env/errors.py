"""Exceptions shared across recenv (kept import-light)."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid.

    The message always names the file, and for validation problems the field and the problem,
    for example ``profiles/x.yaml: segments.0.weight: Input should be greater than 0``.
    """
