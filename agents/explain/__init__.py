"""Exact Shapley explanations of any policy's decisions, on any feature space.

* :mod:`~rec_env.agents.explain.explainer`: :class:`PolicyExplainer`, the API;
* :mod:`~rec_env.agents.explain.outputs`: what is explained for each kind of policy;
* :mod:`~rec_env.agents.explain.background`: the background samples;
* :mod:`~rec_env.agents.explain.masking`: the actions allowed to a context;
* :mod:`~rec_env.agents.explain.shapley`: the model-agnostic exact engine;
* :mod:`~rec_env.agents.explain.network_shapley`: the exact engine for SB3 networks, with its
  output heads (:mod:`~rec_env.agents.explain.heads`) and compiled folding kernel
  (:mod:`~rec_env.agents.explain._network_kernels`);
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
