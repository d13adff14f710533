"""Decide the single-customer requests ready on the event loop together.

A policy call, exploration, the draw and the consent and rule masks cost about as much for
four customers as for one, so ``/v1/recommend`` requests that are ready on the event loop at
the same time are decided in one call of :meth:`DecisionService.decide_requests`. Nothing
waits for company: the batch is what was queued before the loop got to the callback that
decides it (:meth:`asyncio.AbstractEventLoop.call_soon`), as for the group commit that logs
it (:mod:`rec_env.serve.group_commit`).

Each request keeps its own row in the decision log (its own request key, window and
customer ids) and its own outcome: a request whose baseline is refused gets its error, the
others are decided. Decisions are drawn in the order the requests were queued, one uniform
number per customer, as if they had been decided one at a time in that order. A request
returns once the transaction holding its decision committed; if it fails, every request of
the batch gets the error and none of their decisions exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from rec_env.serve.group_commit import deferring, ignore_outcome

__all__ = ["RequestBatcher"]

R = TypeVar("R")
T = TypeVar("T")


class RequestBatcher:
    """Queue requests on the running event loop and decide each loop turn's in one call.

    Args:
        decide: Decides a batch of requests in order and logs them (inside a
            :func:`~rec_env.serve.group_commit.deferring` block, so their writes share one
            commit). It returns one outcome per request: its result, or the exception that
            request alone gets. An exception it raises goes to every request of the batch.
    """

    def __init__(self, decide: Callable[[Sequence[R]], list[T | BaseException]]) -> None:
        self._decide = decide
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[R, asyncio.Future[T]]]] = {}
        self.batches = 0
        """Batches decided (for tests and benchmarks)."""

    async def submit(self, request: R) -> T:
        """Decide ``request`` with the others ready now; return once its decision is durable.

        Raises:
            Exception: This request's own error, the batch's, or its commit's.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._flush, loop)
        pending.append((request, future))
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Decide the requests queued on ``loop`` (a callback on the loop)."""
        queued = self._pending.pop(loop, [])
        live = [(request, future) for request, future in queued if not future.cancelled()]
        if not live:  # every caller went away before its decision was made: nothing to log
            return
        self.batches += 1
        commits: list[asyncio.Future[None]] = []
        try:
            with deferring(commits):
                outcomes = self._decide([request for request, _ in live])
        except BaseException as error:  # every caller of the batch gets it
            for commit in commits:
                commit.add_done_callback(ignore_outcome)
            for _, future in live:
                _settle(future, error)
            return
        futures = [future for _, future in live]
        if not commits:
            _resolve(futures, outcomes, None)
            return
        done = commits[0] if len(commits) == 1 else asyncio.gather(*commits)
        done.add_done_callback(lambda finished: _resolve(futures, outcomes, _error_of(finished)))


def _error_of(future: asyncio.Future[object]) -> BaseException | None:
    """The exception ``future`` ended with (cancellation included), or None."""
    if future.cancelled():
        return asyncio.CancelledError()
    return future.exception()


def _resolve(
    futures: list[asyncio.Future[T]],
    outcomes: list[T | BaseException],
    commit_error: BaseException | None,
) -> None:
    """Give each caller its outcome, or the commit's error if it had a decision in it."""
    for future, outcome in zip(futures, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            _settle(future, outcome)
        elif commit_error is not None:
            _settle(future, commit_error)
        elif not future.done():
            future.set_result(outcome)


def _settle(future: asyncio.Future[object], error: BaseException) -> None:
    """End ``future`` with ``error`` unless its caller went away."""
    if not future.done():
        future.set_exception(error)
