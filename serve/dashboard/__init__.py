"""The live dashboard: summary tables of the decision log, their catch-up, and the numbers shown.

* :mod:`~rec_env.serve.dashboard.summaries`: the ``summary_*`` tables in the log's database and
  :class:`SummaryStore`, whose catch-up folds in the rows logged after its watermarks;
* :mod:`~rec_env.serve.dashboard.report`: the numbers of one time range, read from them;
* :mod:`~rec_env.serve.dashboard.statistics`: means and normal intervals from sums, and the
  inverse-propensity estimate of always no_action;
* :mod:`~rec_env.serve.dashboard.ranges` and :mod:`~rec_env.serve.dashboard.schemas`: the
  API's query parameters and response models.

The routes are in :mod:`rec_env.serve.routes.dashboard`; the page in ``serve/static/``. The
store is opened by the first dashboard request (:func:`summary_store`), never by the decision
path, and closed with the app (:func:`close_summary_store`).
"""

from __future__ import annotations

import threading
from typing import Any

from rec_env.serve.dashboard.summaries import CatchUp, SummaryStore

__all__ = ["CatchUp", "SummaryStore", "close_summary_store", "summary_store"]

_OPENING = threading.Lock()


def summary_store(state: Any, db: Any) -> SummaryStore:
    """The app's summary store of the log ``db``, opened on first use.

    Args:
        state: The app's ``state``; the store is kept on it as ``summary_store``.
        db: The decision log's file or URL.

    Raises:
        ValueError: If the log's database cannot be reached.
    """
    store = getattr(state, "summary_store", None)
    if store is None:
        with _OPENING:
            store = getattr(state, "summary_store", None)
            if store is None:
                store = state.summary_store = SummaryStore(db)
    return store


def close_summary_store(state: Any) -> None:
    """Close the app's summary store, if one was opened."""
    store = getattr(state, "summary_store", None)
    if store is not None:
        state.summary_store = None
        store.close()
