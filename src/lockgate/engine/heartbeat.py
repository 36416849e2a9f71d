"""The run heartbeat: a thread that stamps `runs.heartbeat_at` while a coordinator lives.

A thread, not the coordinator loop, writes it: the inline executor runs user
code in the loop's thread, and a long task must not make a live run look
orphaned. A heartbeat older than the configured timeout marks the run as
stale (`lockgate runs`), and `lockgate resume`/`recover` may take it over.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from lockgate.errors import LockgateError
from lockgate.ports.clock import Clock
from lockgate.ports.metadata import MetadataStore

log = logging.getLogger(__name__)


class Heartbeat:
    """Context manager: beat every `interval` seconds until the block exits."""

    def __init__(self, store: MetadataStore, run_id: str, clock: Clock, interval: float) -> None:
        """Prepare a heartbeat for `run_id`; it starts when the block is entered."""
        self.store = store
        self.run_id = run_id
        self.clock = clock
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"lockgate-heartbeat-{run_id}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.store.heartbeat(self.run_id, self.clock.now())
            except LockgateError as exc:
                # A busy or briefly unreachable database must not kill the run;
                # a missed beat only makes the run look stale sooner.
                log.warning("heartbeat for run %s failed: %s", self.run_id, exc)
