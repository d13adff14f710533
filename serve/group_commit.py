"""Group commit: the writes of concurrent callers share one transaction of the decision log.

A commit costs more than the inserts of one decision (``BEGIN IMMEDIATE``, the commit's
write-ahead log frames, the WAL bound's check), so callers that are already waiting share
one. Nothing waits for company: a caller alone commits at once, and a group is only what was
queued while the previous transaction ran (threads) or before the event loop got to the
commit (coroutines). "Acknowledged means durable" holds for every caller: each returns only
after the transaction holding its rows committed, and if that transaction fails, every
caller in it gets the error and none of their rows exists.

Two ways in, for the two kinds of callers of :class:`GroupCommit`:

* :meth:`GroupCommit.commit`, from threads (batch requests in the worker pool): the first
  caller to find no transaction running leads. It commits everything queued, its own write
  included, then wakes the others; whoever queued meanwhile leads the next one.
* :meth:`GroupCommit.enqueue`, from the event loop: the write is queued and the commit is
  scheduled with ``call_soon``, so it runs once the loop has run the request handlers that
  are already ready. It runs on the loop thread, as a single request's transaction did.

A request handler reaches the second through :func:`committed`: the decision log writes of
the call it wraps are queued (:func:`deferred_commits`) instead of committed in place, and
it returns once they are all committed. :func:`deferring` queues them the same way for a
caller that waits for the commits itself (:mod:`rec_env.serve.decision_batch`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Generic, TypeVar

__all__ = ["GroupCommit", "committed", "deferred_commits", "deferring", "ignore_outcome"]

W = TypeVar("W")
T = TypeVar("T")

_DEFERRED: ContextVar[list[asyncio.Future[None]] | None] = ContextVar(
    "recenv_deferred_commits", default=None
)


def deferred_commits() -> list[asyncio.Future[None]] | None:
    """The commits the current :func:`committed` call waits for, or None outside one."""
    return _DEFERRED.get()


@contextmanager
def deferring(commits: list[asyncio.Future[None]]) -> Iterator[None]:
    """Queue the decision log writes made in the block for a commit on the event loop.

    Each write appends to ``commits`` the future of the transaction that will hold it; the
    caller waits for them (and retrieves their errors).
    """
    token = _DEFERRED.set(commits)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


async def committed(call: Callable[[], T]) -> T:
    """Run ``call`` on the event loop, then wait until the log writes it made are committed.

    Inside ``call``, :meth:`DecisionLog.log_decisions` and :meth:`DecisionLog.log_columnar`
    queue their transaction (:meth:`GroupCommit.enqueue`) and return at once, so that the
    handlers of other requests ready on the loop can join the same commit.

    Args:
        call: A synchronous call that logs decisions (for example ``service.decide``).

    Returns:
        What ``call`` returned, once its decisions are durable.

    Raises:
        Exception: What ``call`` raised, or the error of the transaction that was to commit
            its decisions (none of them is then logged).
    """
    futures: list[asyncio.Future[None]] = []
    try:
        with deferring(futures):
            result = call()
    except BaseException:
        for future in futures:  # nobody awaits them now: their outcome is not an error of its own
            future.add_done_callback(ignore_outcome)
        raise
    if len(futures) == 1:  # the usual case: one decide, one write
        await futures[0]
    elif futures:
        await asyncio.gather(*futures)
    return result


def ignore_outcome(future: asyncio.Future[None]) -> None:
    """Mark the outcome of a commit nobody waits for as seen."""
    if not future.cancelled():
        future.exception()


class _Ticket(Generic[W]):
    """One thread's write and, once its transaction ended, the outcome."""

    __slots__ = ("done", "error", "write")

    def __init__(self, write: W) -> None:
        self.write = write
        self.done = False
        self.error: BaseException | None = None


class GroupCommit(Generic[W]):
    """Commit the writes of concurrent callers in shared transactions.

    Args:
        transact: Runs a group of writes in one transaction, in order, and commits it (or
            rolls it back and raises). It must be safe to call from any thread; calls from
            threads and from the event loop may overlap (the decision log's lock orders them).
    """

    def __init__(self, transact: Callable[[list[W]], None]) -> None:
        self._transact = transact
        self._mutex = threading.Lock()
        self._changed = threading.Condition(self._mutex)
        self._queue: list[_Ticket[W]] = []
        self._leading = False
        self._waiting: dict[asyncio.AbstractEventLoop, list[tuple[W, asyncio.Future[None]]]] = {}
        self.transactions = 0
        """Transactions committed or attempted (for tests and benchmarks)."""

    def commit(self, write: W) -> None:
        """Commit ``write``, in a transaction shared with the writes queued meanwhile.

        Raises:
            Exception: The error of the transaction that held ``write`` (rolled back).
        """
        ticket = _Ticket(write)
        with self._changed:
            self._queue.append(ticket)
            while self._leading and not ticket.done:
                self._changed.wait()
            if ticket.done:  # a leader committed it
                if ticket.error is not None:
                    raise ticket.error
                return
            self._leading = True
            group, self._queue = self._queue, []
        error = self._run([t.write for t in group])
        with self._changed:
            for member in group:
                member.done, member.error = True, error
            self._leading = False
            self._changed.notify_all()
        if error is not None:
            raise error

    def enqueue(self, write: W) -> asyncio.Future[None]:
        """Queue ``write`` for a commit on the running event loop; the future ends with it.

        The commit runs on the loop after the callbacks ready now (other requests' handlers),
        with every write they queued too.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._mutex:
            waiting = self._waiting.get(loop)
            if waiting is None:
                waiting = self._waiting[loop] = []
                loop.call_soon(self._flush, loop)
            waiting.append((write, future))
        return future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit every write queued on ``loop`` (a callback on the loop)."""
        with self._mutex:
            group = self._waiting.pop(loop, [])
        error = self._run([write for write, _ in group])
        for _, future in group:
            if future.cancelled():  # its caller is gone; the write stands (or not) all the same
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _run(self, writes: list[W]) -> BaseException | None:
        """Run one transaction of ``writes``; its error, or None once committed."""
        self.transactions += 1
        try:
            self._transact(writes)
        except BaseException as error:  # every caller of the group gets it
            return error
        return None
