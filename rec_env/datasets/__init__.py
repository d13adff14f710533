"""Real logged data sets, shipped inside the package so that they work offline.

* :func:`load_hillstrom`: Kevin Hillstrom's MineThatData e-mail campaign (2008), 64,000
  customers randomised to three actions with propensity 1/3.
* :func:`load_cdnow`: the CDNOW purchase log (Fader & Hardie): 69,659 purchases by 23,570
  customers, the input of ``recenv profiles fit cdnow``.

Each loader returns a :class:`LoggedBanditData` (contexts, actions, propensities, rewards), the
input of the off-policy estimators in :mod:`rec_env.agents.ope`. Importing this package loads
numpy only; data files are read on the first call.
"""

from __future__ import annotations

from rec_env.datasets.cdnow import load_cdnow
from rec_env.datasets.hillstrom import (
    EMAIL_COST,
    HILLSTROM_ACTIONS,
    HILLSTROM_FEATURES,
    HILLSTROM_REWARDS,
    PROFIT_MARGIN,
    load_hillstrom,
)
from rec_env.datasets.logged import LoggedBanditData

__all__ = [
    "EMAIL_COST",
    "HILLSTROM_ACTIONS",
    "HILLSTROM_FEATURES",
    "HILLSTROM_REWARDS",
    "PROFIT_MARGIN",
    "LoggedBanditData",
    "load_cdnow",
    "load_hillstrom",
]
