"""The executor port: run one task invocation somewhere, report what happened.

The coordinator submits invocations and polls for events. An executor emits
`Started` when user code is about to run and `Finished` with an `Outcome`
when it is done. Workers load inputs and write outputs through the artifact
store themselves, so only refs cross this boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lockgate.ports.artifacts import ArtifactRef

if TYPE_CHECKING:
    from lockgate.model.task import Task


@dataclass(frozen=True, slots=True)
class Load:
    """An input the worker loads from the artifact store.

    Attributes:
        ref: the artifact.
        index: take this item of the loaded list (a map node's item), or None.
        what: describes the input in error messages.
    """

    ref: ArtifactRef
    index: int | None = None
    what: str = "input"


@dataclass(frozen=True, slots=True)
class Invocation:
    """One attempt of one task run, ready to execute.

    `args` and `kwargs` are templates whose `Load` leaves the worker replaces
    by loaded values; every other leaf is passed as is.
    """

    run_id: str
    pipeline: str
    node_id: str
    map_index: int | None
    task_run_id: int
    attempt: int
    task: Task
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None

    @property
    def key(self) -> str:
        """Unique per attempt: `<task_run_id>:<attempt>`."""
        return f"{self.task_run_id}:{self.attempt}"

    @property
    def label(self) -> str:
        """The node (and map item) for messages: `train` or `featurize[3]`."""
        return self.node_id + (f"[{self.map_index}]" if self.map_index is not None else "")


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why an attempt failed.

    Attributes:
        type: qualified name of the exception class.
        message: its message (or a description of the framework failure).
        traceback: the formatted traceback from where it was raised.
        retryable: whether the task's policy allows another attempt for it.
        user: True when user code raised; False when lockgate itself failed.
    """

    type: str
    message: str
    traceback: str = ""
    retryable: bool = True
    user: bool = True

    def summary(self) -> str:
        """`Type: message` on one line."""
        short = self.type.rsplit(".", 1)[-1]
        return f"{short}: {self.message}" if self.message else short


@dataclass(frozen=True, slots=True)
class LogSpan:
    """Where an attempt's captured output is: bytes [start, end) of a log file.

    Process workers append every attempt they run to one file of their own, so
    capturing output costs no file creation per attempt; `end` is None while the
    attempt runs (its output is then everything from `start` on).
    """

    path: str
    start: int
    end: int | None = None


@dataclass(frozen=True, slots=True)
class NamedOutput:
    """The output is a new version of a named dataset, model or prompt."""

    kind: str
    name: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt produced."""

    key: str
    started_at: float
    finished_at: float
    output: ArtifactRef | None = None
    error: ErrorInfo | None = None
    timed_out: bool = False
    log: LogSpan | None = None
    named: NamedOutput | None = None

    @property
    def ok(self) -> bool:
        """True when the attempt returned a stored output."""
        return self.error is None and not self.timed_out


@dataclass(frozen=True, slots=True)
class Started:
    """User code for invocation `key` starts now; its output goes to `log`, if captured."""

    key: str
    at: float
    log: LogSpan | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """Invocation `outcome.key` is done."""

    outcome: Outcome


ExecutorEvent = Started | Finished


class Executor(Protocol):
    """Runs invocations; concurrency, isolation and placement are its business."""

    name: str

    def submit(self, invocation: Invocation) -> None:
        """Queue an invocation. Events for it arrive through `poll`."""
        ...

    def poll(self, timeout: float) -> list[ExecutorEvent]:
        """Wait up to `timeout` seconds for events and return those that arrived."""
        ...

    def cancel(self, key: str) -> None:
        """Stop an invocation if it can; a `Finished` event still follows."""
        ...

    def close(self) -> None:
        """Release workers; invocations still running are abandoned."""
        ...
