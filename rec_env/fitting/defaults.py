"""Values of everything a purchase log cannot identify, for :func:`rec_env.fitting.fit_population`.

A purchase log identifies each segment's purchase rate, churn rate and order value
(:data:`FITTED_PARAMETERS`). Responsiveness to each channel, discount and shipping elasticities,
fatigue, unsubscribes, consents and visits take the values of a defaults file, by default the
shipped ``profiles/fitting/defaults.yaml`` (averages of the Hillstrom-calibrated ``default``
population; its comments explain each choice).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rec_env.config import load_model
from rec_env.distributions import Distribution, ParameterSpec
from rec_env.parameters import HIDDEN_PARAMETERS, SAMPLED_FEATURES

__all__ = ["DEFAULTS_RESOURCE", "FITTED_PARAMETERS", "FitDefaults", "load_fit_defaults"]

FITTED_PARAMETERS: tuple[str, ...] = ("purchase_rate", "order_value", "churn_rate")
"""Hidden parameters estimated from the log; every other one takes a default."""

DEFAULTS_RESOURCE = "fitting/defaults.yaml"
"""The shipped defaults, relative to the ``rec_env.profiles`` package."""


class FitDefaults(BaseModel):
    """Values of everything a purchase log cannot identify, shared by every fitted segment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contact_tolerance: float = Field(2.0, ge=0)
    history_strength: float = Field(20.0, gt=0)
    observed: dict[str, Distribution]
    hidden: dict[str, ParameterSpec]

    @model_validator(mode="after")
    def _check_keys(self) -> FitDefaults:
        unfitted = tuple(p for p in HIDDEN_PARAMETERS if p not in FITTED_PARAMETERS)
        for section, given, expected in (
            ("observed", self.observed, SAMPLED_FEATURES),
            ("hidden", self.hidden, unfitted),
        ):
            missing = [k for k in expected if k not in given]
            unknown = [k for k in given if k not in expected]
            if missing or unknown:
                raise ValueError(
                    f"{section} must list exactly {', '.join(expected)}"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; unknown or fitted {', '.join(unknown)}" if unknown else "")
                )
        return self


def load_fit_defaults(path: str | Path | None = None) -> FitDefaults:
    """Load fit defaults from a YAML file, or the shipped ones.

    Raises:
        ConfigError: If the file is missing or invalid (the message names file and field).
    """
    if path is None:
        path = Path(str(resources.files("rec_env.profiles") / DEFAULTS_RESOURCE))
    return load_model(Path(path), FitDefaults)
