"""Capturing an attempt's output into its log file, inside the current process.

Used by the inline executor, which shares its process with the coordinator:
it redirects Python's `sys.stdout`/`sys.stderr` and adds a logging handler
for the duration of one attempt. Output written by C extensions or child
processes straight to file descriptors is not captured here; the process
executor redirects the descriptors themselves.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from lockgate.ports.executor import Invocation
from lockgate.ports.logs import log_relpath

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_path(logs_root: str, invocation: Invocation) -> Path:
    """The log file of `invocation`'s attempt under `logs_root`."""
    relative = log_relpath(
        invocation.run_id, invocation.node_id, invocation.map_index, invocation.attempt
    )
    return Path(logs_root, relative)


class LazyLog(io.TextIOBase):
    """A text stream that creates its file on the first write.

    Most tasks print nothing; not creating a file (and its directory) for each
    of them keeps the per-task cost down.
    """

    def __init__(self, path: Path) -> None:
        """Write to `path`, creating it and its parent directories when first needed."""
        super().__init__()
        self.path = path
        self._file: TextIO | None = None

    def _open(self) -> TextIO:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
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


@contextlib.contextmanager
def captured(logs_root: str | None, invocation: Invocation) -> Iterator[None]:
    """Send print(), sys.stderr and log records of this attempt to its log file."""
    if logs_root is None:
        yield
        return
    task_logger = logging.getLogger("lockgate.task")
    previous_level = task_logger.level
    if task_logger.level == logging.NOTSET:
        task_logger.setLevel(logging.INFO)
    with LazyLog(log_path(logs_root, invocation)) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        finally:
            root.removeHandler(handler)
            task_logger.setLevel(previous_level)
