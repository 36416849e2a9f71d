"""Capturing an attempt's output into its log file, inside the current process.

Used by the inline executor, which shares its process with the coordinator:
it redirects Python's `sys.stdout`/`sys.stderr` and adds a logging handler
for the duration of one attempt. Output written by C extensions or child
processes straight to file descriptors is not captured here; the process
executor redirects the descriptors themselves.

`scrub` masks the values of an attempt's secret parameters in its captured
output once the attempt returned (both executors call it).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from lockgate.model.secrets import revealed_values
from lockgate.ports.executor import Invocation
from lockgate.ports.logs import log_relpath

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_path(logs_root: str, invocation: Invocation) -> Path:
    """The log file of `invocation`'s attempt under `logs_root`."""
    relative = log_relpath(
        invocation.run_id, invocation.node_id, invocation.map_index, invocation.attempt
    )
    return Path(logs_root, relative)


def scrub(
    path: str | Path, values: tuple[str, ...], start: int = 0, end: int | None = None
) -> None:
    """Overwrite each of `values` in bytes [start, end) of the file `path` with `*`s.

    In place and of the same length, because a process worker's log holds
    every attempt it ran and the byte ranges of the others must stay valid.
    A missing file (nothing was printed) is fine.
    """
    if not values:
        return
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        stop = os.fstat(fd).st_size if end is None else end
        data = os.pread(fd, stop - start, start)
        masked = data
        for value in values:
            raw = value.encode("utf-8")
            masked = masked.replace(raw, b"*" * len(raw))
        if masked != data:
            os.pwrite(fd, masked, start)
            os.fsync(fd)
    finally:
        os.close(fd)


class LazyLog(io.TextIOBase):
    """A text stream that creates its file on the first write.

    Most tasks print nothing; not creating a file (and its directory) for each
    of them keeps the per-task cost down.
    """

    def __init__(self, path: Callable[[], Path]) -> None:
        """Write to the file `path()` names, created with its directories when first needed."""
        super().__init__()
        self._path = path
        self._file: TextIO | None = None

    def _open(self) -> TextIO:
        if self._file is None:
            path = self._path()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        return self._file

    def writable(self) -> bool:
        """Always writable."""
        return True

    def write(self, text: str) -> int:
        """Append `text` (nothing is created for empty writes)."""
        if not text:
            return 0
        return self._open().write(text)

    def flush(self) -> None:
        """Flush the file if it exists."""
        if self._file is not None:
            self._file.flush()

    def fileno(self) -> int:
        """The file's descriptor (creates the file)."""
        return self._open().fileno()

    def close(self) -> None:
        """Close the file if it was created."""
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


class Capture:
    """Routes print(), sys.stderr and log records of the current attempt to its log file.

    One root-logger handler is installed for the capture's lifetime and pointed
    at each attempt's file in turn: adding and removing a handler per attempt
    clears every logger's cache and costs more than a tiny task.
    """

    def __init__(self, logs_root: str | None) -> None:
        """Capture under `logs_root`; None disables capture."""
        self.logs_root = logs_root
        self._stream: LazyLog | None = None
        self._handler: logging.Handler | None = None

    def _install(self) -> None:
        capture = self

        class _ToCurrent(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if capture._stream is not None:
                    capture._stream.write(self.format(record) + "\n")

        self._handler = _ToCurrent()
        self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(self._handler)
        task_logger = logging.getLogger("lockgate.task")
        if task_logger.level == logging.NOTSET:
            task_logger.setLevel(logging.INFO)

    @contextlib.contextmanager
    def attempt(self, invocation: Invocation) -> Iterator[None]:
        """Capture everything printed or logged while the block runs."""
        if self.logs_root is None:
            yield
            return
        if self._handler is None:
            self._install()
        root = self.logs_root
        with LazyLog(lambda: log_path(root, invocation)) as stream:
            self._stream = stream
            saved = sys.stdout, sys.stderr
            sys.stdout = sys.stderr = stream
            try:
                yield
            finally:
                sys.stdout, sys.stderr = saved
                self._stream = None
        values = revealed_values((invocation.args, dict(invocation.kwargs)))
        if values:  # building the path costs more than a no-op task's own work
            scrub(log_path(root, invocation), values)

    def close(self) -> None:
        """Remove the handler."""
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
