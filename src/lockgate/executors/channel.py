"""One worker process as the process executor sees it: start, messages, kill, reap.

`WorkerChannel.start` launches `python -P -c` running
`lockgate.executors.worker.main` in a new session (its own process group),
with one end of a socket pair and the coordinator's sys.path. The process's
sentinel (a pidfd on Linux, else a pipe the worker holds) becomes readable
when it exits, whatever state its socket is in.

The coordinator sends `Job`s (refs and small inline values, never loaded
data) and `STOP`; a worker answers with `("ready", pid)`,
`("init_failed", text)`, `("started", key, at)` and `("finished", outcome)`.
Every message is one pickle over a `multiprocessing` connection.

A task's function reaches a worker as cloudpickle bytes, pickled once per
`Task` object in the coordinator (`TaskShipper`) and named by a digest of
those bytes; each worker receives the bytes the first time it needs them and
keeps the unpickled task. User code outside installed libraries (`__main__`,
a pipeline file loaded by path, a project directory) is pickled *by value*,
so the worker runs exactly the code the coordinator hashed, without
importing or re-executing the user's module.

Invariants:
- The coordinator never unpickles task code or task data; it only pickles.
- A digest always names the same bytes, so a worker's cache cannot go stale.
- A process group is signalled only while its leader is unreaped, so a
  recycled pid is never hit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import marshal
import os
import pickle
import signal
import site
import subprocess
import sys
import sysconfig
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from multiprocessing.connection import Pipe
from types import ModuleType
from typing import TYPE_CHECKING, Any

from lockgate.ports.executor import Invocation

if TYPE_CHECKING:
    from lockgate.model.task import Task

STOP = "stop"

_REGISTRY_LOCK = threading.Lock()

#: Tasks a worker keeps unpickled; the coordinator evicts the least recently used.
WORKER_TASK_CACHE = 128


@dataclasses.dataclass(frozen=True, slots=True)
class Init:
    """The first message to a new worker.

    Attributes:
        store_factory: pickled zero-argument callable that opens the artifact store.
        logs_root: capture stdout/stderr into a log file of this worker's own under
            `<logs_root>/workers/`; None leaves them alone.
    """

    store_factory: bytes
    logs_root: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One invocation, as sent to a worker: the `Invocation` minus its `Task`.

    Attributes:
        task_id: digest of the pickled task; the worker looks the task up by it.
        task_bytes: the pickled task, when this worker has not received it yet.
        drop: task ids the worker may forget (the coordinator's LRU evicted them).
        sys_path: the coordinator's sys.path when it changed since the last job.
        memory: address-space budget for this invocation in bytes, or None.
    """

    run_id: str
    pipeline: str
    node_id: str
    map_index: int | None
    task_run_id: int
    attempt: int
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    timeout: float | None
    task_name: str
    task_id: str
    task_bytes: bytes | None = None
    drop: tuple[str, ...] = ()
    sys_path: tuple[str, ...] | None = None
    memory: int | None = None

    @property
    def key(self) -> str:
        """The invocation key, `<task_run_id>:<attempt>`."""
        return f"{self.task_run_id}:{self.attempt}"

    @classmethod
    def of(cls, invocation: Invocation, task_id: str, **extra: Any) -> Job:
        """The job for `invocation`, its task named by `task_id`; `extra` sets other fields."""
        return cls(
            run_id=invocation.run_id,
            pipeline=invocation.pipeline,
            node_id=invocation.node_id,
            map_index=invocation.map_index,
            task_run_id=invocation.task_run_id,
            attempt=invocation.attempt,
            args=invocation.args,
            kwargs=dict(invocation.kwargs),
            timeout=invocation.timeout,
            task_name=invocation.task.name,
            task_id=task_id,
            **extra,
        )

    def invocation(self, task: Task) -> Invocation:
        """The invocation again, on the worker side, with its unpickled `task`."""
        return Invocation(
            run_id=self.run_id,
            pipeline=self.pipeline,
            node_id=self.node_id,
            map_index=self.map_index,
            task_run_id=self.task_run_id,
            attempt=self.attempt,
            task=task,
            args=self.args,
            kwargs=self.kwargs,
            timeout=self.timeout,
        )


def dumps(message: object) -> bytes:
    """Pickle one message for the pipe."""
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Any:
    """Unpickle one message (or a task) from the other end of a private socket pair.

    Both ends are this installation: the coordinator and the workers it
    started; nothing from outside reaches these pipes.
    """
    return pickle.loads(data)  # noqa: S301 - our own process on a private socket pair


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    roots = {paths[name] for name in names if name in paths}
    roots.update(site.getsitepackages())
    roots.add(site.getusersitepackages())
    return tuple(os.path.realpath(root) + os.sep for root in roots)


def by_value_module(module_name: str) -> ModuleType | None:
    """The module to pickle by value for a function defined in `module_name`, if any.

    User code outside installed libraries is pickled by value: a pipeline
    file loaded by path may not be importable under its name in a worker
    (the loader may have renamed it), and importing it there would run the
    module again and could pick up an edited file. Installed libraries,
    lockgate itself and `__main__` (which cloudpickle always pickles by
    value) return None.
    """
    if module_name == "__main__" or module_name.partition(".")[0] == "lockgate":
        return None
    module = sys.modules.get(module_name)
    filename = getattr(module, "__file__", None)
    if module is None or not filename:
        return None
    path = os.path.realpath(filename)
    if path.startswith(_library_roots()):
        return None
    return module


@functools.cache
def _pickler_class() -> type:
    """cloudpickle's pickler, keeping each code object's file name.

    cloudpickle replaces `co_filename` with "<dynamic-code>" in what it
    pickles by value, so a task's traceback would lose its file and source
    lines. Code objects travel as marshal data instead, which keeps them
    whole; the worker runs the same interpreter, so marshal's format matches.
    """
    import cloudpickle

    class TaskPickler(cloudpickle.CloudPickler):  # type: ignore[misc]
        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, types.CodeType):
                return marshal.loads, (marshal.dumps(obj),)
            return super().reducer_override(obj)

    return TaskPickler


def pickle_task(task: Task) -> bytes:
    """cloudpickle `task`, by value when its module is user code (see `by_value_module`)."""
    import cloudpickle

    def dump() -> bytes:
        buffer = io.BytesIO()
        _pickler_class()(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(task)
        return buffer.getvalue()

    module = by_value_module(getattr(task.fn, "__module__", None) or "__main__")
    if module is None:
        return dump()
    # Registration is process-wide: hold it only while pickling, so the
    # coordinator's other pickling (the inline executor's outputs, read back
    # later where the module imports normally) keeps pickling by reference.
    with _REGISTRY_LOCK:
        registered = module.__name__ in cloudpickle.list_registry_pickle_by_value()
        if not registered:
            cloudpickle.register_pickle_by_value(module)
        try:
            return dump()
        finally:
            if not registered:
                cloudpickle.unregister_pickle_by_value(module)


class TaskShipper:
    """Pickles each `Task` once and remembers the bytes while the task lives.

    Keyed by the `Task` object rather than by `(target, version)`: two tasks
    may wrap the same function with different policies (`retry_on` is
    evaluated in the worker) or close over different values, and must not
    share a payload.
    """

    def __init__(self) -> None:
        self._payloads: weakref.WeakKeyDictionary[Task, tuple[str, bytes]] = (
            weakref.WeakKeyDictionary()
        )

    def payload(self, task: Task) -> tuple[str, bytes]:
        """`(task_id, pickled bytes)` for `task`.

        Raises:
            Exception: whatever cloudpickle raises for a function it cannot pickle.
        """
        found = self._payloads.get(task)
        if found is None:
            data = pickle_task(task)
            found = (hashlib.sha256(data).hexdigest()[:32], data)
            self._payloads[task] = found
        return found


# The worker's command line: the coordinator's sys.path first, so pipeline
# modules and their sibling imports resolve as they did here.
_BOOTSTRAP = (
    "import sys; sys.path[:0] = sys.argv[3:]; "
    "from lockgate.executors.worker import main; main(int(sys.argv[1]), int(sys.argv[2]))"
)


@functools.cache
def _pidfd_supported() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


def exit_message(returncode: int, memory: int | None) -> str:
    """`worker exited with code 3`, `... with signal 9 (SIGKILL)`, plus `(likely OOM)`.

    Args:
        returncode: as `subprocess.Popen` reports it (negative: killed by that signal).
        memory: the memory limit of the job that was running, if any.
    """
    if returncode >= 0:
        return f"worker exited with code {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = "unknown signal"
    message = f"worker exited with signal {number} ({name})"
    if memory is not None and number == signal.SIGKILL:
        message += " (likely OOM)"
    return message


class WorkerChannel:
    """A started worker process: its pipe, its sentinel and what it already holds.

    Attributes:
        ready: the worker opened its store and waits for jobs.
        open: the pipe has not hit end-of-file.
        broken: the worker sent something that is not a message; it cannot be trusted.
        init_error: the traceback a worker sent when it could not start.
    """

    def __init__(self, popen: subprocess.Popen[bytes], conn: Any, sentinel: int) -> None:
        self.popen = popen
        self.conn = conn
        self.sentinel = sentinel
        self.ready = False
        self.open = True
        self.broken = False
        self.init_error: str | None = None
        self._known: OrderedDict[str, None] = OrderedDict()
        self._path_sent: tuple[str, ...] = ()

    @classmethod
    def start(cls, init: Init) -> WorkerChannel:
        """Launch a worker and send it `init`; it reports `ready` when it can take jobs."""
        parent_end, child_end = Pipe(duplex=True)
        pass_fds = [child_end.fileno()]
        pipe_sentinel: tuple[int, int] | None = None
        if not _pidfd_supported():
            pipe_sentinel = os.pipe()  # EOF on the read end once the worker exits
            pass_fds.append(pipe_sentinel[1])
        command = [
            sys.executable,
            "-P",
            "-c",
            _BOOTSTRAP,
            str(child_end.fileno()),
            str(os.getpid()),
            *sys.path,
        ]
        try:
            popen = subprocess.Popen(
                command, pass_fds=pass_fds, start_new_session=True, stdin=subprocess.DEVNULL
            )
        except BaseException:
            parent_end.close()
            if pipe_sentinel is not None:
                os.close(pipe_sentinel[0])
            raise
        finally:
            child_end.close()
            if pipe_sentinel is not None:
                os.close(pipe_sentinel[1])
        sentinel = os.pidfd_open(popen.pid) if pipe_sentinel is None else pipe_sentinel[0]
        channel = cls(popen, parent_end, sentinel)
        with contextlib.suppress(OSError):  # a worker that died at once is seen by its sentinel
            parent_end.send_bytes(dumps(init))
        return channel

    @property
    def pid(self) -> int:
        """The worker's pid, which is also its process group id."""
        return self.popen.pid

    def job_message(self, job: Job, task_bytes: bytes) -> bytes:
        """Pickle `job` for this worker: task bytes only if it lacks them, sys.path if changed.

        Raises:
            Exception: the job's arguments cannot be pickled; nothing was recorded.
        """
        drop: list[str] = []
        known = job.task_id in self._known
        if not known:
            drop = list(self._known)[: max(0, len(self._known) + 1 - WORKER_TASK_CACHE)]
        path = tuple(sys.path)
        data = dumps(
            dataclasses.replace(
                job,
                task_bytes=None if known else task_bytes,
                drop=tuple(drop),
                sys_path=path if path != self._path_sent else None,
            )
        )
        for task_id in drop:
            del self._known[task_id]
        self._known[job.task_id] = None
        self._known.move_to_end(job.task_id)
        self._path_sent = path
        return data

    def send(self, data: bytes) -> None:
        """Write one pickled message. Raises OSError if the worker is gone."""
        self.conn.send_bytes(data)

    def receive(self) -> list[tuple[Any, ...]]:
        """Every message waiting on the pipe.

        Sets `open` to False at end-of-file, and also `broken` when the pipe
        carried something that is not a worker message (the messages before
        it are returned).
        """
        messages = []
        while self.open and self.conn.poll():
            try:
                message = loads(self.conn.recv_bytes())
            except (EOFError, OSError):
                self.open = False
                break
            except Exception:
                message = None
            if not isinstance(message, tuple) or not message:
                self.open = False
                self.broken = True
                break
            messages.append(message)
        return messages

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the worker and everything in its process group."""
        # Only called before `reap`, so the group id cannot have been recycled.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def stop(self) -> None:
        """Ask an idle worker to exit; kill it if it cannot hear."""
        try:
            self.send(dumps(STOP))
        except OSError:
            self.signal_group(signal.SIGKILL)

    def reap(self) -> int:
        """Kill what is left of the group, wait for the worker, close the pipe; its exit code."""
        self.signal_group(signal.SIGKILL)
        returncode = self.popen.wait()
        self.conn.close()
        with contextlib.suppress(OSError):
            os.close(self.sentinel)
        return returncode
