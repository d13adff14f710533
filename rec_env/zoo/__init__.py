r"""rl-baselines3-zoo hyperparameters for recenv's env ids.

One YAML file per algorithm (``ppo.yml``, ``a2c.yml``, ``dqn.yml``) in the zoo's own format,
keyed by env id, with the observation scaling and the expected-reward signal as ``env_wrapper``
(:mod:`rec_env.wrappers`). Pass the module of an algorithm to the zoo::

    python -m rl_zoo3.train --algo ppo --env rec_env/Recommendation-v0 \
        --gym-packages rec_env --conf-file rec_env.zoo.ppo

or the YAML file itself (:func:`config_path`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ZOO_ALGORITHMS", "config_path", "load_hyperparams"]

ZOO_ALGORITHMS: tuple[str, ...] = ("a2c", "dqn", "ppo")
"""Algorithms with a zoo hyperparameter file."""


def config_path(algo: str) -> Path:
    """Path of the zoo YAML file of ``algo`` (for ``--conf-file``).

    Raises:
        ValueError: For an algorithm without a file.
    """
    if algo not in ZOO_ALGORITHMS:
        raise ValueError(f"no zoo hyperparameters for {algo!r}; known: {', '.join(ZOO_ALGORITHMS)}")
    return Path(str(files(__name__) / f"{algo}.yml"))


def load_hyperparams(algo: str) -> dict[str, Any]:
    """The zoo hyperparameters of ``algo``: ``{env_id: {name: value}}``."""
    return yaml.safe_load(config_path(algo).read_text(encoding="utf-8"))
