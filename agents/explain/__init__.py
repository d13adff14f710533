"""Exact Shapley explanations of any policy's decisions, on any feature space.

* :mod:`~rec_env.agents.explain.explainer`: :class:`PolicyExplainer`, the API;
* :mod:`~rec_env.agents.explain.outputs`: what is explained for each kind of policy;
* :mod:`~rec_env.agents.explain.background`: the background samples;
* :mod:`~rec_env.agents.explain.masking`: the allowed actions of every coalition;
* :mod:`~rec_env.agents.explain.shapley`: the model-agnostic exact engine;
* :mod:`~rec_env.agents.explain.network_shapley`: the exact engine for SB3 networks;
* :mod:`~rec_env.agents.explain.threads`: one intra-op thread while explaining.
"""

from __future__ import annotations

from rec_env.agents.explain.background import (
    DEFAULT_BACKGROUND_SIZE,
    operating_background,
    population_background,
)
from rec_env.agents.explain.explainer import PolicyExplainer
from rec_env.agents.explain.shapley import ShapleyValues

__all__ = [
    "DEFAULT_BACKGROUND_SIZE",
    "PolicyExplainer",
    "ShapleyValues",
    "operating_background",
    "population_background",
]
