"""Run explanations on one thread of BLAS and torch, whatever the process was given.

The network engine multiplies tiles of about ``2048 x 64`` by ``64 x 64``: a millisecond of work
per tile. Split over threads it gains little even on idle cores, and on a machine whose cores
are busy it loses badly: on 2 cores with another job running, one tile took 1.1 ms on one
thread and 11-30 ms on two, which is why explanation times swung between 60 and 240 ms. So the
explainer pins BLAS (threadpoolctl) and, if it is loaded, torch to :data:`EXPLAIN_THREADS`
intra-op threads while it runs, and puts the previous settings back afterwards. Nested and
concurrent explanations share one pinning (the first in sets it, the last out restores it).
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
"""Intra-op threads of BLAS and torch during an explanation."""

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
def _controller() -> Any:
    """The thread pools of the loaded libraries, found once (finding them costs ~0.5 ms)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _pin(n_threads: int) -> list[Any]:
    """Set the limits; return the callables that undo them."""
    limits = _controller().limit(limits=n_threads)
    undo: list[Any] = [limits.restore_original_limits]
    torch = sys.modules.get("torch")  # only a policy that uses torch has imported it
    if torch is not None and torch.get_num_threads() > n_threads:
        previous = torch.get_num_threads()
        torch.set_num_threads(n_threads)
        undo.append(lambda: torch.set_num_threads(previous))
    return undo
