r"""The one definition of input scaling: raw features to [0, 1] for neural networks.

Every feature is mapped to [0, 1] by

.. math::

    s(x) = \min\bigl(1,\ a \cdot x^+ + b \cdot \log(1 + x^+)\bigr), \qquad x^+ = \max(x, 0),

with ``a = 1 / high, b = 0`` for linearly scaled features and ``a = 0, b = 1 / log1p(high)``
for logarithmically scaled ones (:class:`InputScaling`). Logarithmic scaling keeps 7 against 14
days since the last message, or 1 against 2 messages in 30 days, far apart (``x / 365`` squeezes
them to a few hundredths). :func:`scale_observations` is written once for numpy arrays and torch
tensors alike: the env wrapper (:class:`rec_env.wrappers.ScaleObservation`), SB3's feature
extractor and the numpy copy of a network all call it. Bounds come from
:data:`rec_env.features.FEATURES`. Importing this module imports numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from rec_env.features import FEATURES

__all__ = ["InputScaling", "Scaling", "scale_observations"]

Scaling = Literal["linear", "log"]
"""How :class:`InputScaling` maps a non-binary feature with an upper bound above 1."""

ArrayT = TypeVar("ArrayT")


def scale_observations(
    obs: ArrayT, linear: ArrayT, logarithmic: ArrayT, log1p: Callable[[Any], Any] = np.log1p
) -> ArrayT:
    """``min(1, linear * x + logarithmic * log1p(x))`` with ``x = max(obs, 0)``, per feature.

    The one implementation of the input scaling, for numpy arrays (the default ``log1p``) and
    torch tensors (pass ``torch.log1p``); both support ``clip`` and the arithmetic operators.

    Args:
        obs: ``(n, d)`` raw features.
        linear: ``(d,)`` factors ``a`` (:attr:`InputScaling.linear`).
        logarithmic: ``(d,)`` factors ``b`` (:attr:`InputScaling.logarithmic`).
        log1p: ``log(1 + x)`` of the array library.
    """
    positive = obs.clip(min=0.0)  # type: ignore[attr-defined]
    return (positive * linear + log1p(positive) * logarithmic).clip(max=1.0)  # type: ignore[operator]


@dataclass(frozen=True)
class InputScaling:
    """The per-feature factors of the input scaling (module docstring), float32.

    Attributes:
        high: ``(d,)`` upper bounds.
        log_mask: ``(d,)`` True for the logarithmically scaled features.
        linear: ``(d,)`` ``1 / high`` where linear, else 0.
        logarithmic: ``(d,)`` ``1 / log1p(high)`` where logarithmic, else 0.
    """

    high: np.ndarray
    log_mask: np.ndarray
    linear: np.ndarray
    logarithmic: np.ndarray

    @classmethod
    def from_mask(cls, high: np.ndarray, log_mask: np.ndarray) -> InputScaling:
        """The factors for upper bounds ``high`` and the log-scaled columns ``log_mask``."""
        high = np.asarray(high, dtype=np.float32).reshape(-1)
        log_mask = np.asarray(log_mask, dtype=bool).reshape(-1)
        with np.errstate(divide="ignore"):
            linear = np.where(log_mask, 0.0, 1.0 / high).astype(np.float32)
            logarithmic = np.where(log_mask, 1.0 / np.log1p(high), 0.0).astype(np.float32)
        return cls(high, log_mask, linear, logarithmic)

    @classmethod
    def from_bounds(cls, high: np.ndarray, scaling: Scaling = "log") -> InputScaling:
        """The scaling of features with upper bounds ``high``.

        ``"log"`` scales the non-binary features whose upper bound exceeds 1 (days, counts, USD)
        logarithmically. Which features are binary is known for the env's own features
        (:data:`~rec_env.features.FEATURES`, when ``high`` has their count); for any other
        feature space no feature is taken as binary.

        Raises:
            ValueError: If ``scaling`` is not ``"linear"`` or ``"log"``.
        """
        if scaling not in ("linear", "log"):
            raise ValueError(f"scaling must be 'linear' or 'log', got {scaling!r}")
        high = np.asarray(high, dtype=np.float32).reshape(-1)
        binary = np.array([f.binary for f in FEATURES], dtype=bool)
        if binary.size != high.size:
            binary = np.zeros(high.size, dtype=bool)
        log_mask = (~binary) & (high > 1.0) if scaling == "log" else np.zeros(high.size, bool)
        return cls.from_mask(high, log_mask)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """``(n, d)`` float32 scaled features."""
        obs = np.asarray(obs, dtype=np.float32)
        return scale_observations(obs, self.linear, self.logarithmic)
