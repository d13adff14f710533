"""Real logged data sets, shipped inside the package so that they work offline.

* :func:`load_hillstrom`: Kevin Hillstrom's MineThatData e-mail campaign (2008), 64,000
  customers randomised to three actions with propensity 1/3.
* :func:`load_cdnow`: the CDNOW purchase log (Fader & Hardie): 69,659 purchases by 23,570
  customers, the input of ``recenv profiles fit cdnow``.
* :func:`load_obd`: the Open Bandit Dataset sample (ZOZO, Inc., CC BY 4.0): 10,000 rounds of
  80 fashion items in 3 positions, logged by a uniform policy and by Bernoulli TS.
* :func:`load_movielens`: MovieLens 100K from a path the user gives (its licence forbids
  shipping it): 100,000 timestamped ratings by 943 users of 1,682 movies with genres.
* :func:`read_log`: any campaign or recommendation log (CSV or Parquet) described by a
  :class:`LogSpec` (YAML, arguments, or a preset such as ``load_preset("hillstrom")``), with
  its features encoded (:class:`TabularEncoder`) and its reward parsed (:class:`RewardSpec`).

Each loader returns a :class:`LoggedBanditData` (contexts, actions, propensities, rewards), the
input of the off-policy estimators in :mod:`rec_env.agents.ope`. Importing this package loads
numpy only; data files are read on the first call.
"""

from __future__ import annotations

from rec_env.datasets.cdnow import load_cdnow
from rec_env.datasets.encoding import TabularEncoder
from rec_env.datasets.hillstrom import (
    EMAIL_COST,
    HILLSTROM_ACTIONS,
    HILLSTROM_FEATURES,
    HILLSTROM_REWARDS,
    PROFIT_MARGIN,
    load_hillstrom,
)
from rec_env.datasets.log_spec import LogSpec, list_presets, load_preset
from rec_env.datasets.logged import LoggedBanditData
from rec_env.datasets.movielens import MOVIELENS_GENRES, MovieLensData, load_movielens
from rec_env.datasets.obd import load_obd
from rec_env.datasets.reward_spec import RewardSpec
from rec_env.datasets.tabular import (
    NonRandomisedLogWarning,
    PropensityEstimate,
    TabularLog,
    read_log,
)

__all__ = [
    "EMAIL_COST",
    "HILLSTROM_ACTIONS",
    "HILLSTROM_FEATURES",
    "HILLSTROM_REWARDS",
    "MOVIELENS_GENRES",
    "PROFIT_MARGIN",
    "LogSpec",
    "LoggedBanditData",
    "MovieLensData",
    "NonRandomisedLogWarning",
    "PropensityEstimate",
    "RewardSpec",
    "TabularEncoder",
    "TabularLog",
    "list_presets",
    "load_cdnow",
    "load_hillstrom",
    "load_movielens",
    "load_obd",
    "load_preset",
    "read_log",
]
