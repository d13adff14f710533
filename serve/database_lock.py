"""One writer per decision log: an exclusive OS lock on a sidecar ``<db>.lock`` file.

SQLite lets several processes write one database, but a server keeps state beside it (an online
policy, its snapshots, the sampler's stream) that only makes sense with one writer. The lock is
an advisory ``flock`` on ``<db>.lock`` (``msvcrt.locking`` on Windows), taken without waiting:
the kernel releases it when its process ends in any way, ``kill -9`` included, so a crash never
leaves a stale lock behind. The file holds the holder's process id, for the error message; it
is never deleted (deleting a lock file lets two processes lock two different files). Readers
such as ``recenv log export`` do not take the lock.

A PostgreSQL log (``postgresql://`` URL) takes no OS lock: it is made to be shared by several
``recenv serve`` replicas, whose writers take turns on the database's own advisory lock
(:mod:`rec_env.datasets.decision_log_backend`).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from rec_env.datasets.decision_log_backend import postgres_url

__all__ = ["DatabaseLock"]

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

_HELD_ELSEWHERE = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES}


def _try_lock(fd: int) -> None:
    """Lock ``fd`` exclusively without waiting; ``OSError`` if that is not possible."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _holder(fd: int) -> str:
    """The process id written by the holder, or ``"unknown"``."""
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
        if text.isdigit():
            return text
    return "unknown"


class DatabaseLock:
    """An exclusive, non-blocking lock on ``<database>.lock``, held until :meth:`release`.

    Args:
        database: The SQLite file (symbolic links are resolved, so every path to one file
            takes the same lock); a PostgreSQL URL takes no lock.

    Raises:
        ValueError: If another process (or another open decision log of this one) holds the
            lock, or the lock file cannot be created.
    """

    def __init__(self, database: str | Path) -> None:
        self._fd: int | None = None
        if postgres_url(database) is not None:
            return  # shared by design: replicas take turns on the database's advisory lock
        self.database = Path(database)
        self.path = Path(f"{self.database.resolve()}.lock")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ValueError(
                f"{self.database}: cannot open the decision log ({exc.strerror or exc})"
            ) from None
        try:
            _try_lock(fd)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno in _HELD_ELSEWHERE:
                raise ValueError(
                    f"{self.database}: already in use by another recenv serve (pid {holder}); "
                    "stop it or use another --db"
                ) from None
            raise ValueError(
                f"{self.path}: cannot lock the decision log ({exc.strerror or exc})"
            ) from None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        """Release the lock (closing the file releases it; idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
