"""Run a block on one thread of BLAS and torch, whatever the process was given.

Small matrix products and factorisations gain little from a second thread even on idle cores,
and on a machine whose cores are busy they lose badly: on 2 cores with another job running, an
explanation tile (``2048 x 64`` by ``64 x 64``) took 1.1 ms on one thread and 11-30 ms on two,
and a hybrid bandit's 42 x 42 ``dpotri`` 0.03 ms against 90 ms. So the explainer and the hybrid
bandits pin BLAS (threadpoolctl) and, if it is loaded, torch to :data:`EXPLAIN_THREADS` intra-op
threads while they run, and put the previous settings back afterwards. Nested and concurrent
blocks share one pinning (the first in sets it, the last out restores it).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

__all__ = ["EXPLAIN_THREADS", "pinned_threads"]

EXPLAIN_THREADS = 1
"""Intra-op threads of BLAS and torch inside :func:`pinned_threads`."""

_lock = threading.Lock()
_depth = 0
_restore: list[Any] = []


@contextmanager
def pinned_threads(n_threads: int = EXPLAIN_THREADS) -> Iterator[None]:
    """Limit BLAS and torch (if imported) to at most ``n_threads`` within the block."""
    global _depth
    with _lock:
        if _depth == 0:
            _restore[:] = _pin(n_threads)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for undo in reversed(_restore):
                    undo()
                _restore.clear()


@lru_cache(maxsize=1)
def _controller(n_modules: int) -> Any:
    """The thread pools of the loaded libraries (finding them costs ~0.5 ms).

    Found again whenever modules were imported since (``n_modules``): a library loaded later,
    such as scikit-learn's own OpenMP runtime, has a pool of its own that must be pinned too.
    """
    import scipy.linalg  # noqa: F401 - load scipy's own BLAS first, so that it is found too
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _pin(n_threads: int) -> list[Any]:
    """Set the limits; return the callables that undo them."""
    limits = _controller(len(sys.modules)).limit(limits=n_threads)
    undo: list[Any] = [limits.restore_original_limits]
    torch = sys.modules.get("torch")  # only a policy that uses torch has imported it
    if torch is not None and torch.get_num_threads() > n_threads:
        previous = torch.get_num_threads()
        torch.set_num_threads(n_threads)
        undo.append(lambda: torch.set_num_threads(previous))
    return undo
