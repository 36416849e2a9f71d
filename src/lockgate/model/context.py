"""The context of the task attempt running in this thread: `lg.current()`.

Executors set it around the user function; the function reads it to learn
its run, node and attempt, to log, and to get an idempotency key for side
effects that must not happen twice (the key is the same on every retry).
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lockgate.errors import LockgateError

if TYPE_CHECKING:
    import logging

_CURRENT: ContextVar[TaskContext | None] = ContextVar("lockgate_task_context", default=None)


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a running task can know about itself.

    Attributes:
        run_id: the run this attempt belongs to.
        pipeline: the pipeline's name.
        node_id: the node being executed.
        map_index: the item index for a map node, else None.
        attempt: 1 for the first try, 2 for the first retry, ...
        idempotency_key: stable across retries of this node in this run; use it
            to make external side effects (a POST, a payment, an upload) happen once.
    """

    run_id: str
    pipeline: str
    node_id: str
    map_index: int | None
    attempt: int
    idempotency_key: str

    @property
    def logger(self) -> logging.Logger:
        """A logger named for the node; its records are kept with the attempt."""
        import logging  # only tasks that log pay for importing it

        return logging.getLogger(f"lockgate.task.{self.pipeline}.{self.node_id}")


def current() -> TaskContext:
    """The context of the running task.

    Raises:
        LockgateError: called outside a task (for example, in a pipeline body).
    """
    context = _CURRENT.get()
    if context is None:
        raise LockgateError(
            "lg.current() was called outside a running task; call it inside a function "
            "decorated with @lg.task while lockgate runs it."
        )
    return context


def enter(context: TaskContext) -> Token[TaskContext | None]:
    """Make `context` current; pass the token to `leave` afterwards."""
    return _CURRENT.set(context)


def leave(token: Token[TaskContext | None]) -> None:
    """Restore the context that was current before `enter`."""
    _CURRENT.reset(token)


def idempotency_key(run_id: str, node_id: str, map_index: int | None) -> str:
    """The key for one node (and map item) of one run, identical on every attempt."""
    return f"{run_id}:{node_id}" + (f"[{map_index}]" if map_index is not None else "")
