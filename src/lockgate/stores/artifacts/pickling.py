"""Guarded pickling: cloudpickle minus the things that must never be stored.

cloudpickle silently pickles open file handles (observed, RELIABILITY B4)
and fails on generators or locks with messages that name neither the task
nor the fix. `pickle_guarded` refuses file objects, sockets, locks,
generators and coroutines anywhere in a value, and turns every other
pickling failure into `UnserializableOutputError` with the type name.

Invariants:
- cloudpickle is imported on first use only.
- Nothing here unpickles; decoding lives in `serializers.decode`, behind
  the trust check.
"""

from __future__ import annotations

import functools
import io
import pickle
import threading
import types
from typing import Any

from lockgate.errors import UnserializableOutputError

__all__ = ["pickle_guarded", "type_name_of"]


def type_name_of(value: Any) -> str:
    """Return `module.qualname` of the value's type, e.g. `numpy.ndarray`."""
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def _refusal(obj: Any) -> tuple[str, str] | None:
    """Say why `obj` must not be pickled, and what to do instead; None if it may."""
    name = type_name_of(obj)
    if isinstance(obj, io.IOBase):
        return f"an open file object ({name})", "return its contents or its path instead"
    if isinstance(obj, types.GeneratorType):
        return "a generator", "return a list instead"
    if isinstance(obj, types.AsyncGeneratorType):
        return "an async generator", "collect its items into a list and return that"
    if isinstance(obj, types.CoroutineType):
        return "a coroutine", "await it inside the task and return its result"
    if isinstance(obj, _LOCK_TYPES):
        return f"a lock ({name})", "create locks inside the task and return only data"
    # Matched by name so that storing a value never imports the socket module.
    if any(
        base.__name__ == "socket" and base.__module__ in ("socket", "_socket")
        for base in type(obj).__mro__
    ):
        return f"a socket ({name})", "read what you need inside the task and return that"
    return None


@functools.cache
def _pickler_class() -> type:
    """Build the guarded pickler on first use, so cloudpickle loads only when needed."""
    import cloudpickle

    class GuardedPickler(cloudpickle.CloudPickler):  # type: ignore[misc]
        """cloudpickle, minus the OS resources it would silently capture.

        cloudpickle happily pickles an open file (observed), and the error
        for a generator or lock names neither the task nor the fix; refusing
        them here gives one message that does both.
        """

        def __init__(self, file: io.BytesIO, *, root: Any, what: str) -> None:
            super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
            self._root = root
            self._what = what

        def reducer_override(self, obj: Any) -> Any:
            refusal = _refusal(obj)
            if refusal is not None:
                description, fix = refusal
                root = self._root
                where = "is" if obj is root else f"({type_name_of(root)}) contains"
                raise UnserializableOutputError(
                    f"{self._what} {where} {description}, which lockgate cannot store: {fix}"
                )
            return super().reducer_override(obj)

    return GuardedPickler


def pickle_guarded(value: Any, what: str) -> bytes:
    """Pickle `value` with cloudpickle, refusing what must not be stored.

    Args:
        value: what a task returned.
        what: describes it in messages ("output of node 'train' (run r-1)").

    Returns:
        The pickle.

    Raises:
        UnserializableOutputError: the value is or holds a file object,
            socket, lock, generator or coroutine, or does not pickle; the
            message names `what`, the type and the fix.
    """
    buffer = io.BytesIO()
    try:
        _pickler_class()(buffer, root=value, what=what).dump(value)
    except UnserializableOutputError:
        raise
    except Exception as exc:
        raise UnserializableOutputError(
            f"{what} (type {type_name_of(value)}) cannot be serialized: "
            f"{type(exc).__name__}: {exc}; return plain data (dicts, lists, numbers, strings, "
            "numpy arrays, DataFrames) or make the type picklable"
        ) from exc
    return buffer.getvalue()
