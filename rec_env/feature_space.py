r"""Feature spaces: the names, bounds and scaling of the columns of a context matrix.

A :class:`FeatureSpace` travels with contexts, so that the policies, bandits and estimators that
read them can check what they are given and find the columns they need (the consent flags, for
example). The env's 16 observed features are one instance (:meth:`FeatureSpace.env`); a foreign
data set brings its own (:meth:`FeatureSpace.standardised` for features with no natural bounds).

Scaling is affine and column-wise:

.. math::

    \mathrm{scaled}(x)_j = (x_j - c_j) / w_j,

with centre :math:`c` and width :math:`w`. By default :math:`c = \mathrm{low}` and
:math:`w = \mathrm{high} - \mathrm{low}`, which maps bounded features to [0, 1]; unbounded
features are left as they are (:math:`c = 0`, :math:`w = 1`).

This module imports numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rec_env.features import FEATURE_NAMES, OBS_HIGH, OBS_LOW, consent_columns

__all__ = ["FeatureSpace"]

_ENV_SPACE: FeatureSpace | None = None


def _vector(name: str, values: Any, d: int, default: float) -> np.ndarray:
    """``values`` as a read-only float64 ``(d,)`` array (``None`` entries become ``default``)."""
    if values is None:
        array = np.full(d, default)
    else:
        array = np.array(
            [default if v is None else v for v in np.asarray(values, dtype=object).ravel()],
            dtype=np.float64,
        )
    if array.shape != (d,):
        raise ValueError(f"{name} must have one value per feature ({d}), got shape {array.shape}")
    array.setflags(write=False)
    return array


def _json_floats(values: np.ndarray) -> list[float | None]:
    """Floats for JSON, with ``None`` for infinite values (JSON has no infinity)."""
    return [float(v) if np.isfinite(v) else None for v in values]


class FeatureSpace:
    """Names, bounds and scaling of the ``d`` columns of a context matrix.

    Args:
        names: Column names, unique.
        low: Smallest value of each feature (``None`` or ``-inf``: unbounded).
        high: Largest value of each feature (``None`` or ``inf``: unbounded).
        center: What :meth:`scaled` subtracts (default: ``low`` where finite, else 0).
        width: What :meth:`scaled` divides by (default: ``high - low`` where finite and
            positive, else 1).

    Attributes:
        names: Column names.
        d: Number of features.
        low, high, center, width, inverse_width: ``(d,)`` read-only float64 arrays.
        consent_columns: Columns of ``consent_email``, ``consent_sms`` and ``consent_push``
            (:func:`rec_env.features.consent_columns`), or ``None`` if the space lacks one.

    Raises:
        ValueError: If the names are not unique, a shape differs, ``low > high``, or a width is
            not finite and positive.
    """

    def __init__(
        self,
        names: Sequence[str],
        low: Any = None,
        high: Any = None,
        center: Any = None,
        width: Any = None,
    ) -> None:
        self.names: tuple[str, ...] = tuple(str(name) for name in names)
        self.d = d = len(self.names)
        if len(set(self.names)) != d:
            duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"feature names must be unique; repeated: {', '.join(duplicates)}")
        self.low = _vector("low", low, d, -np.inf)
        self.high = _vector("high", high, d, np.inf)
        if (self.low > self.high).any():
            j = int(np.flatnonzero(self.low > self.high)[0])
            raise ValueError(f"feature {self.names[j]!r}: low {self.low[j]} > high {self.high[j]}")
        span = self.high - self.low
        bounded = np.isfinite(span) & (span > 0)
        if center is None:
            center = np.where(np.isfinite(self.low), self.low, 0.0)
        if width is None:
            width = np.where(bounded, span, 1.0)
        self.center = _vector("center", center, d, 0.0)
        self.width = _vector("width", width, d, 1.0)
        if not (np.isfinite(self.center).all() and np.isfinite(self.width).all()):
            raise ValueError("center and width must be finite")
        if (self.width <= 0).any():
            raise ValueError("width must be positive for every feature")
        self.inverse_width = 1.0 / self.width
        self.inverse_width.setflags(write=False)
        self.consent_columns: list[int] | None = consent_columns(self.names)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def env(cls) -> FeatureSpace:
        """The env's 16 features (:data:`rec_env.features.FEATURES`), scaled by x / high."""
        global _ENV_SPACE
        if _ENV_SPACE is None:  # built once: spaces are immutable
            _ENV_SPACE = cls(FEATURE_NAMES, OBS_LOW.astype(np.float64), OBS_HIGH.astype(np.float64))
        return _ENV_SPACE

    @classmethod
    def named(cls, names: Sequence[str]) -> FeatureSpace:
        """Unbounded features, left unscaled."""
        return cls(names)

    @classmethod
    def standardised(cls, names: Sequence[str], contexts: np.ndarray) -> FeatureSpace:
        """Features scaled by the mean and standard deviation of ``contexts`` ``(n, d)``.

        The bounds are the observed minimum and maximum; constant columns keep width 1.
        """
        contexts = np.atleast_2d(np.asarray(contexts, dtype=np.float64))
        spread = contexts.std(axis=0)
        return cls(
            names,
            contexts.min(axis=0),
            contexts.max(axis=0),
            contexts.mean(axis=0),
            np.where(spread > 0, spread, 1.0),
        )

    @classmethod
    def coerce(cls, value: FeatureSpace | Mapping[str, Any] | Sequence[str] | None) -> FeatureSpace:
        """A feature space from itself, :meth:`to_dict` output, names, or ``None`` (the env's)."""
        if value is None:
            return cls.env()
        if isinstance(value, FeatureSpace):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        if isinstance(value, str):
            raise TypeError("give a sequence of feature names, not one string")
        return cls.named(value)

    # ------------------------------------------------------------------ reading contexts
    def index(self, name: str) -> int:
        """Column of the feature ``name``.

        Raises:
            ValueError: If there is no such feature.
        """
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"the feature space has no feature {name!r}") from None

    def check(self, contexts: np.ndarray) -> np.ndarray:
        """``contexts`` as a 2-D array of ``d`` columns (one row may be 1-D).

        Raises:
            ValueError: If the number of columns is not ``d``.
        """
        contexts = np.asarray(contexts)
        if contexts.ndim == 2 and contexts.shape[1] == self.d:  # the usual case, first
            return contexts
        if contexts.ndim == 1:
            contexts = contexts[None, :]
        if contexts.ndim != 2 or contexts.shape[1] != self.d:
            raise ValueError(
                f"contexts must have shape (n, {self.d}) for this feature space, "
                f"got {contexts.shape}"
            )
        return contexts

    def scaled(self, contexts: np.ndarray) -> np.ndarray:
        """``(n, d)`` float64 ``(x - center) / width``."""
        return (self.check(contexts).astype(np.float64) - self.center) * self.inverse_width

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields (infinite bounds as ``None``)."""
        return {
            "names": list(self.names),
            "low": _json_floats(self.low),
            "high": _json_floats(self.high),
            "center": self.center.tolist(),
            "width": self.width.tolist(),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> FeatureSpace:
        """The feature space written by :meth:`to_dict`.

        Raises:
            ValueError: If ``names`` is missing or a field is malformed.
        """
        if "names" not in payload:
            raise ValueError("a feature space needs 'names'")
        unknown = set(payload) - {"names", "low", "high", "center", "width"}
        if unknown:
            raise ValueError(f"unknown feature space fields: {', '.join(sorted(unknown))}")
        return cls(
            payload["names"],
            payload.get("low"),
            payload.get("high"),
            payload.get("center"),
            payload.get("width"),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureSpace):
            return NotImplemented
        return self.names == other.names and all(
            np.array_equal(getattr(self, key), getattr(other, key))
            for key in ("low", "high", "center", "width")
        )

    def __hash__(self) -> int:
        return hash(self.names)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__:
            raise AttributeError(f"FeatureSpace is immutable: cannot set {name!r}")
        super().__setattr__(name, value)

    def __repr__(self) -> str:
        shown = ", ".join(self.names[:4]) + (", ..." if self.d > 4 else "")
        return f"FeatureSpace(d={self.d}: {shown})"
