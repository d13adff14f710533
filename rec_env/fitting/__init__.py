"""Populations fitted from a purchase log (``recenv profiles fit``).

* :mod:`~rec_env.fitting.purchase_log`: reading and validating a transactions table;
* :mod:`~rec_env.fitting.rfm`: purchase occasions, RFM, and the simulated-versus-real check;
* :mod:`~rec_env.fitting.segmentation`: k-means starting segments;
* :mod:`~rec_env.fitting.latent_rates`, :mod:`~rec_env.fitting.latent_classes`: the EM fit;
* :mod:`~rec_env.fitting.defaults`: what a purchase log cannot identify;
* :mod:`~rec_env.fitting.results`: fitted segments and the population they make;
* :mod:`~rec_env.fitting.pipeline`: :func:`fit_population`, the steps in order;
* :mod:`~rec_env.fitting.history`: one customer's history as JSON-like data, turned into
  features by :func:`rec_env.fitting.builder.features_from_history`.

Importing this package loads numpy only; pydantic loads with the defaults file.
"""

from __future__ import annotations

from rec_env.fitting.pipeline import (
    AUTO_K,
    DEFAULTS_RESOURCE,
    FITTED_PARAMETERS,
    FitDefaults,
    PopulationFit,
    SegmentFit,
    fit_population,
    load_fit_defaults,
)

__all__ = [
    "AUTO_K",
    "DEFAULTS_RESOURCE",
    "FITTED_PARAMETERS",
    "FitDefaults",
    "PopulationFit",
    "SegmentFit",
    "fit_population",
    "load_fit_defaults",
]
