"""Keep the decision log's write-ahead log (WAL) under a bound, off the request path.

SQLite's own checkpoints run inside the commit that crosses ``wal_autocheckpoint`` pages, so
the decision log turns them off and checkpoints in a background thread. A PASSIVE checkpoint
never blocks writers, but it cannot shorten the WAL file: SQLite only starts the WAL over when
a write begins after a checkpoint has copied *every* frame, and under sustained writes new
frames always arrive first (the file reached 904 MB in 60 s at 4 client threads). So:

1. Every ``checkpoint_interval`` seconds the thread runs a PASSIVE checkpoint (as before).
2. It polls the WAL file's size every :data:`POLL_INTERVAL` seconds. Past half the bound it
   runs a PASSIVE checkpoint (copying most frames without blocking anyone), then, holding the
   log's writer lock, a RESTART checkpoint that copies the few frames written since, so that
   the next write starts the WAL over from its beginning. Writers wait for that lock only for
   that moment.
3. Should the thread fall behind, the writer that finds the WAL past three quarters of the
   bound restarts it itself before writing. The file therefore never exceeds
   ``3/4 · bound`` plus one transaction (a 10,000-customer batch writes about 4 MB).

``PRAGMA journal_size_limit`` (a quarter of the bound) cuts the file back to a quarter of the
bound whenever the WAL starts over. RESTART rather than TRUNCATE: overwriting a file that
exists is cheaper than growing one from zero bytes again, which cost about 8 ms per
10,000-customer batch. A reader that holds one snapshot for long (an ``sqlite3`` shell
inside ``BEGIN``) keeps any checkpoint from resetting the WAL; a restart that finds one
gives up after :data:`BUSY_MS` and is retried :data:`RETRY_AFTER` seconds later, so writers
never stall longer. ``recenv log export`` reads in short transactions and does not get in the
way.

A PostgreSQL log has no such file: its bound and checkpointer do nothing (the server runs its
own checkpoints).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rec_env.datasets.decision_log_backend import postgres_url

__all__ = ["BUSY_MS", "POLL_INTERVAL", "RETRY_AFTER", "WalBound", "WalCheckpointer"]

POLL_INTERVAL = 0.1
"""Seconds between two looks at the WAL file's size."""

BUSY_MS = 200
"""Milliseconds a restarting checkpoint waits for readers before giving up."""

RETRY_AFTER = 1.0
"""Seconds before a restart that found a reader in the way is tried again."""


class WalBound:
    """Thresholds and checkpoints that keep ``<database>-wal`` under ``max_bytes``.

    Args:
        database: The SQLite file (a PostgreSQL URL: every method does nothing).
        max_bytes: Bound on the WAL file.
        busy_timeout: The writer connection's busy timeout (seconds), restored after each
            restart.

    Raises:
        ValueError: If ``max_bytes`` is not positive.
    """

    def __init__(self, database: str | Path, max_bytes: int, busy_timeout: float) -> None:
        if max_bytes < 1:
            raise ValueError(f"wal_max_bytes must be positive, got {max_bytes}")
        self.enabled = postgres_url(database) is None
        """False on PostgreSQL, which has no write-ahead log file to bound."""
        self.wal_path = Path(f"{database}-wal")
        self.max_bytes = max_bytes
        self.background_threshold = max_bytes // 2
        self.writer_threshold = max_bytes * 3 // 4
        self._busy_timeout_ms = round(busy_timeout * 1000)
        # one checkpoint at a time: SQLite answers BUSY at once, without waiting, to a
        # checkpoint that starts while another one runs
        self.checkpoint_lock = threading.Lock()
        self._retry_at = 0.0

    def configure(self, connection: Any) -> None:
        """Turn SQLite's in-commit checkpoints off and cap the file after a WAL reset."""
        if not self.enabled:
            return
        connection.execute("PRAGMA wal_autocheckpoint=0")
        connection.execute(f"PRAGMA journal_size_limit={self.max_bytes // 4}")

    def wal_bytes(self) -> int:
        """Size of the WAL file (0 if there is none)."""
        if not self.enabled:
            return 0
        try:
            return os.stat(self.wal_path).st_size
        except FileNotFoundError:
            return 0

    def passive(self, connection: Any) -> None:
        """Copy WAL frames into the database without blocking anyone."""
        with self.checkpoint_lock, contextlib.suppress(sqlite3.OperationalError):
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def restart(self, connection: Any) -> bool:
        """Checkpoint every frame, so that the next write starts the WAL over.

        The caller holds the decision log's writer lock, so no writer of this process runs
        meanwhile. Waits at most :data:`BUSY_MS` for readers; after a failure, calls within
        :data:`RETRY_AFTER` seconds do nothing.

        Returns:
            True if every frame was checkpointed (the next write restarts the WAL).
        """
        if not self.enabled or time.monotonic() < self._retry_at:
            return False
        with self.checkpoint_lock:
            connection.execute(f"PRAGMA busy_timeout={BUSY_MS}")
            try:
                busy = connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()[0][0]
            except sqlite3.OperationalError:
                busy = 1
            finally:
                connection.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        if busy:
            self._retry_at = time.monotonic() + RETRY_AFTER
        return not busy

    def before_write(self, connection: Any) -> None:
        """Restart the WAL if the background thread fell behind (the caller holds the lock)."""
        if self.wal_bytes() >= self.writer_threshold:
            self.restart(connection)


class WalCheckpointer(threading.Thread):
    """The background thread of :class:`WalBound`, with its own connection for PASSIVE work.

    Args:
        database: The SQLite file.
        interval: Seconds between periodic PASSIVE checkpoints.
        bound: The thresholds and checkpoints.
        restart: Runs :meth:`WalBound.restart` on the writer connection, holding its lock.
    """

    def __init__(
        self,
        database: str | Path,
        interval: float,
        bound: WalBound,
        restart: Callable[[], object],
    ) -> None:
        super().__init__(name="decision-log-checkpointer", daemon=True)
        self.database = database
        self.interval = interval
        self.bound = bound
        self._restart = restart
        self._stop_requested = threading.Event()

    def start(self) -> None:
        """Start checkpointing (nothing to do on PostgreSQL)."""
        if self.bound.enabled:
            super().start()

    def run(self) -> None:
        """Checkpoint until :meth:`stop`."""
        connection = sqlite3.connect(self.database, timeout=5.0, check_same_thread=False)
        next_passive = time.monotonic() + self.interval
        try:
            while not self._stop_requested.wait(min(self.interval, POLL_INTERVAL)):
                over = self.bound.wal_bytes() >= self.bound.background_threshold
                # an I/O error must not end the thread; writers still restart past 3/4
                with contextlib.suppress(sqlite3.Error):
                    if over or time.monotonic() >= next_passive:
                        self.bound.passive(connection)
                        next_passive = time.monotonic() + self.interval
                    if over:
                        self._restart()
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop after the current checkpoint."""
        self._stop_requested.set()
        if self.is_alive():
            self.join()
