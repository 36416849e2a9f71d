"""Tasks: a Python function plus the policy lockgate runs it under.

Inside a pipeline body, calling a task records a node and returns a
placeholder. Outside one, it is the plain function (handy in unit tests).
A task's code version defaults to a hash of its source, decorators excluded,
so editing the body gives a new version while changing a retry count does not.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import marshal
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from lockgate.errors import InvalidPolicyError, TracingError
from lockgate.model.hooks import NO_HOOKS, Hook, Hooks, make_hooks
from lockgate.model.policy import (
    CachePolicy,
    Resources,
    RetryPolicy,
    make_cache_policy,
    make_resources,
    make_retry_policy,
    make_timeout,
)
from lockgate.model.refs import NodeRef, ParamRef
from lockgate.model.tracing import active_builder, contains_placeholder

F = TypeVar("F", bound=Callable[..., Any])

_RESERVED = ("after",)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """Everything about a task except its function."""

    name: str
    version: str
    retry: RetryPolicy
    timeout: float | None
    cache: CachePolicy | None
    pool: str | None
    resources: Resources
    system: str | None = None  # gate, register, promote, approval: run by the coordinator


class Task:
    """A function lockgate can schedule. Create one with `@lg.task`."""

    def __init__(self, fn: Callable[..., Any], spec: TaskSpec, hooks: Hooks = NO_HOOKS) -> None:
        self.fn = fn
        self.spec = spec
        # Not part of the spec: hooks watch, they never change what a task computes.
        self.hooks = hooks
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without hooks: they run in the coordinator, and a hook that closes
        over a connection or a lock must not stop the task reaching a worker."""
        state = dict(self.__dict__)
        state["hooks"] = NO_HOOKS
        return state

    @property
    def name(self) -> str:
        """The task's name (node ids derive from it)."""
        return self.spec.name

    @property
    def version(self) -> str:
        """The code version: `version=` if given, else a hash of the source."""
        return self.spec.version

    @property
    def target(self) -> str:
        """`module:qualname`, how a worker process can import the function."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def __repr__(self) -> str:
        return f"<lockgate task {self.name!r} version {self.version[:12]}>"

    def __call__(self, *args: Any, after: Any = (), **kwargs: Any) -> Any:
        """Record a node (in a pipeline body) or call the function (outside one)."""
        builder = active_builder()
        if builder is not None:
            return builder.add_call(self, args, kwargs, after=after)
        if contains_placeholder(args) or contains_placeholder(kwargs.values()):
            raise TracingError(
                f"task {self.name!r} was called with a placeholder outside a pipeline body. "
                "Placeholders only have values while their pipeline runs: call the task "
                "inside the @lg.pipeline function that produced the placeholder."
            )
        if after:
            raise TracingError(f"task {self.name!r}: after= only applies inside a pipeline body")
        return self.fn(*args, **kwargs)

    def map(self, items: Any, /, *, after: Any = (), **const: Any) -> Any:
        """Call the task once per item of `items`; the output is the list of results.

        Args:
            items: a task output, a pipeline parameter or a literal list; its length
                is known only at run time. Each item becomes the first argument.
            after: nodes that must finish first, without passing data.
            **const: keyword arguments given unchanged to every call.
        """
        builder = active_builder()
        if builder is None:
            if contains_placeholder([items]) or contains_placeholder(const.values()):
                raise TracingError(
                    f"task {self.name!r}: .map() with placeholders only works inside a "
                    "pipeline body"
                )
            return [self.fn(item, **const) for item in items]
        return builder.add_call(self, (items,), const, mapped=True, after=after)

    def check_call(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], *, where: str, mapped: bool
    ) -> None:
        """Raise TracingError if the recorded call does not fit the signature."""
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TracingError(
                f"{where}: the call to task {self.name!r} does not match its signature "
                f"{self.name}{self.signature}: {exc}"
            ) from None
        if mapped and not isinstance(args[0], NodeRef | ParamRef | list | tuple):
            raise TracingError(
                f"{where}: {self.name}.map() needs a list, a task output or a parameter to "
                f"iterate, got {type(args[0]).__name__}"
            )


@overload
def task(fn: F, /) -> Task: ...


@overload
def task(
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: float | str = 1.0,
    backoff: float = 2.0,
    max_retry_delay: float | str = 300.0,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    timeout: float | str | None = None,
    cache: bool | CachePolicy | None = None,
    version: str | None = None,
    pool: str | None = None,
    resources: Mapping[str, Any] | None = None,
    on_success: Hook | list[Hook] | None = None,
    on_failure: Hook | list[Hook] | None = None,
    on_retry: Hook | list[Hook] | None = None,
    on_gate_failed: Hook | list[Hook] | None = None,
) -> Callable[[F], Task]: ...


def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: float | str = 1.0,
    backoff: float = 2.0,
    max_retry_delay: float | str = 300.0,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    timeout: float | str | None = None,
    cache: bool | CachePolicy | None = None,
    version: str | None = None,
    pool: str | None = None,
    resources: Mapping[str, Any] | None = None,
    on_success: Hook | list[Hook] | None = None,
    on_failure: Hook | list[Hook] | None = None,
    on_retry: Hook | list[Hook] | None = None,
    on_gate_failed: Hook | list[Hook] | None = None,
) -> Task | Callable[[F], Task]:
    """Turn a function into a task, with `@lg.task` or `@lg.task(...)`.

    Args:
        name: the task name (default: the function's name).
        retries: extra attempts after a failure.
        retry_delay: seconds (or "5s") before the first retry.
        backoff: each further retry waits this many times longer.
        max_retry_delay: upper bound on the wait between attempts.
        retry_on: exception classes that are retried; others fail at once.
        timeout: seconds (or "30s") an attempt may run.
        cache: reuse a previous result when code, inputs and parameters match.
        version: the code version; by default a hash of the function's source.
        pool: name of a pool whose slots limit how many of these run at once.
        resources: what one call needs: {"cpu": 2, "gpu": 1, "memory": "4GiB"}.
        on_success: hook(s) called in the coordinator when a task run of this task
            commits a result (succeeded or cached); see docs/observability.md.
        on_failure: hook(s) called when a task run fails for good.
        on_retry: hook(s) called when an attempt failed and another is scheduled.
        on_gate_failed: hook(s) called when a gate downstream of this task fails.

    Raises:
        InvalidPolicyError: an option has an invalid value (names task and field).
    """

    def wrap(func: Callable[..., Any]) -> Task:
        if not callable(func) or isinstance(func, Task):
            raise InvalidPolicyError(f"@lg.task needs a function, got {func!r}")
        task_name = name if name is not None else func.__name__
        owner = f"task {task_name!r}"
        if not isinstance(task_name, str) or not task_name.isidentifier():
            raise InvalidPolicyError.for_field(owner, "name", task_name, "a Python identifier")
        for param in inspect.signature(func).parameters:
            if param in _RESERVED:
                raise InvalidPolicyError(
                    f"{owner}: parameter {param!r} is reserved for ordering edges "
                    "(task(x, after=[other])); rename the parameter."
                )
        if pool is not None and (not isinstance(pool, str) or not pool):
            raise InvalidPolicyError.for_field(owner, "pool", pool, "a non-empty string")
        if version is not None and (not isinstance(version, str) or not version):
            raise InvalidPolicyError.for_field(owner, "version", version, "a non-empty string")
        spec = TaskSpec(
            name=task_name,
            version=version if version is not None else source_version(func),
            retry=make_retry_policy(
                owner,
                retries=retries,
                retry_delay=retry_delay,
                backoff=backoff,
                max_retry_delay=max_retry_delay,
                retry_on=retry_on,
            ),
            timeout=make_timeout(owner, timeout),
            cache=make_cache_policy(owner, cache),
            pool=pool,
            resources=make_resources(owner, resources),
        )
        hooks = make_hooks(
            owner,
            on_success=on_success,
            on_failure=on_failure,
            on_retry=on_retry,
            on_gate_failed=on_gate_failed,
        )
        return Task(func, spec, hooks)

    if fn is not None:
        return wrap(fn)
    return wrap


def source_version(fn: Callable[..., Any]) -> str:
    """A stable hash of a function's source, decorators excluded, and its closure.

    Falls back to the marshalled code object when the source is not available
    (functions defined in a REPL or by exec). Values captured from an enclosing
    function (a task factory's arguments) are part of the version when they are
    JSON-like; other captured objects count by type only, so give such tasks an
    explicit `version=`.
    """
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
        first = tree.body[0]
        lines = source.splitlines()[first.lineno - 1 :]
        payload = "\n".join(line.rstrip() for line in lines).encode()
    except (OSError, TypeError, SyntaxError, IndexError):
        payload = marshal.dumps(fn.__code__)
    digest = hashlib.sha256(payload)
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell: the variable was never assigned
            continue
        digest.update(f"\0{name}=".encode() + _closure_token(value).encode())
    return digest.hexdigest()


def _closure_token(value: Any) -> str:
    if isinstance(value, Task):
        return f"task:{value.version}"
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return f"<{type(value).__module__}.{type(value).__qualname__}>"
