"""Exact Shapley explanations of any policy's decisions.

* :mod:`~rec_env.agents.explain.explainer`: :class:`PolicyExplainer`;
* :mod:`~rec_env.agents.explain.shapley`: the exact interventional Shapley engine.
"""

from __future__ import annotations

from rec_env.agents.explain.explainer import PolicyExplainer

__all__ = ["PolicyExplainer"]
