"""Benchmarks on real logged data: the Hillstrom e-mail campaign."""

from __future__ import annotations

__all__: list[str] = []
