"""Group fsync for SQLite: per-task commits share one fsync of the WAL.

A commit in WAL mode appends its pages to `<db>-wal`; with `synchronous=FULL`
it then fsyncs that file, which costs more than everything else on a short
task's path (about 0.25 ms of the ~0.3 ms a commit takes here). The run
driver's task transitions (attempt started, attempt finished, node queued)
are committed with `synchronous=NORMAL` instead: the commit is complete and
visible at once and survives a kill -9 of any process (the pages are in the
OS), and this module fsyncs the WAL from a background thread at most
`interval` seconds later. Every other write, including a run's end, a
registration and an alias move, stays `synchronous=FULL`, and its fsync also
covers every commit before it (fsync is per file). So only the newest task
transitions of a running run, at most `interval` old, can be lost to an OS
crash or power loss; those tasks run again (at-least-once, see
docs/failures.md). PostgreSQL's `synchronous_commit = off` makes the same
trade with a server-side bound.

The same thread also runs a passive checkpoint (copying the WAL back into
the database) once the WAL passes a quarter of SQLite's automatic checkpoint
threshold, so the automatic checkpoint that a commit runs every 1,000 pages
finds little left to copy on the task's path.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

#: WAL size past which the syncer checkpoints: a quarter of SQLite's automatic
#: checkpoint threshold (1,000 pages of 4 KiB, plus frame headers).
CHECKPOINT_BYTES = 250 * (4096 + 24)


class WalSyncer:
    """Fsyncs one SQLite WAL file at most `interval` seconds after a commit that skipped it."""

    def __init__(self, db_path: str, interval: float) -> None:
        """Watch the WAL of the SQLite database file at `db_path` (an absolute path)."""
        self.db_path = db_path
        self.wal_path = f"{db_path}-wal"
        self.interval = interval
        self._cond = threading.Condition()
        self._due: float | None = None
        self._owner_pid = 0  # the process whose thread runs _loop (a fork has none)
        self._closed = False

    def deferred(self) -> None:
        """Note a commit that did not fsync; the WAL is synced within `interval`."""
        with self._cond:
            if self._due is not None:
                return
            self._due = time.monotonic() + self.interval
            if self._owner_pid != os.getpid():
                self._owner_pid = os.getpid()
                threading.Thread(target=self._loop, name="lockgate-wal-sync", daemon=True).start()
            self._cond.notify()

    def sync(self) -> None:
        """Fsync the WAL now if a deferred commit is waiting for it."""
        with self._cond:
            pending, self._due = self._due is not None, None
        if pending:
            self._fsync()

    def close(self) -> None:
        """Sync what is pending and stop the thread."""
        self.sync()
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._due is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                assert self._due is not None
                wait = self._due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue  # re-check: sync() may have done it meanwhile
                self._due = None
            # Outside the lock: commits deferred during this fsync set a new due time.
            self._fsync()
            self._checkpoint_if_large()

    def _fsync(self) -> None:
        try:
            fd = os.open(self.wal_path, os.O_RDONLY)
        except FileNotFoundError:
            return  # the last connection closed: SQLite checkpointed, synced and removed it
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _checkpoint_if_large(self) -> None:
        try:
            if Path(self.wal_path).stat().st_size < CHECKPOINT_BYTES:
                return
        except FileNotFoundError:
            return
        # PASSIVE never waits for readers or writers; what it cannot copy now is
        # copied by a later pass (or by any FULL commit's automatic checkpoint).
        try:
            conn = sqlite3.connect(self.db_path, timeout=0, isolation_level=None)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                conn.close()
        except sqlite3.Error:
            pass  # busy with another checkpoint: the next pass tries again
