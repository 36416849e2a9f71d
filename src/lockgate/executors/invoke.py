"""Worker side of every executor: load inputs, call the task, store the output.

This is the only place user code runs. Inputs are loaded by hash from the
artifact store (verified; trusted because this installation produced them),
the output goes back to the store, and only a ref is returned.

Secret parameters (`lg.Secret`) are revealed here once before the call, so
an `env:VAR` that is unset in this process fails the attempt with a message
naming the parameter and the variable; their values are replaced by
`<redacted>` in the error a failed attempt reports, and a task may not
return a `Secret` (its value would be stored with the output).
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from lockgate import failpoints
from lockgate.errors import (
    ArtifactError,
    SecretNotSetError,
    SecretUnavailableError,
    UnserializableOutputError,
)
from lockgate.model.context import TaskContext, enter, idempotency_key, leave
from lockgate.model.secrets import redact, revealed_values, secrets_in
from lockgate.model.versions import Named
from lockgate.ports.artifacts import ArtifactStore
from lockgate.ports.executor import ErrorInfo, Invocation, Load, NamedOutput, Outcome


def _qualname(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _materialize(value: Any, store: ArtifactStore) -> Any:
    if isinstance(value, Load):
        loaded = store.get(value.ref, trusted=True, what=value.what)
        return loaded if value.index is None else loaded[value.index]
    if isinstance(value, list):
        return [_materialize(item, store) for item in value]
    if isinstance(value, tuple):
        return tuple(_materialize(item, store) for item in value)
    if isinstance(value, dict):
        return {key: _materialize(item, store) for key, item in value.items()}
    return value


def execute(invocation: Invocation, store: ArtifactStore) -> Outcome:
    """Run one invocation to an `Outcome`; never raises for task or store failures."""
    started = time.time()
    where = f"node {invocation.label!r} (run {invocation.run_id})"

    def failed(error: ErrorInfo) -> Outcome:
        return Outcome(invocation.key, started, time.time(), error=error)

    try:
        args = _materialize(invocation.args, store)
        kwargs = _materialize(dict(invocation.kwargs), store)
    except ArtifactError as exc:
        return failed(
            ErrorInfo(
                _qualname(exc),
                f"cannot load input of {where}: {exc}",
                traceback.format_exc(),
                retryable=False,
                user=False,
            )
        )

    secrets = tuple(secrets_in((invocation.args, dict(invocation.kwargs))))
    scrub: tuple[str, ...] = ()
    if secrets:
        try:
            for secret in secrets:
                secret.reveal()
        except (SecretNotSetError, SecretUnavailableError) as exc:
            # Retrying in the same environment cannot help: not retryable.
            return failed(
                ErrorInfo(_qualname(exc), f"cannot run {where}: {exc}", "", retryable=False)
            )
        scrub = revealed_values(secrets)

    failpoints.hit("task.before_start", invocation.label)
    token = enter(
        TaskContext(
            run_id=invocation.run_id,
            pipeline=invocation.pipeline,
            node_id=invocation.node_id,
            map_index=invocation.map_index,
            attempt=invocation.attempt,
            idempotency_key=idempotency_key(
                invocation.run_id, invocation.node_id, invocation.map_index
            ),
        )
    )
    try:
        value = invocation.task.fn(*args, **kwargs)
    except (Exception, SystemExit) as exc:
        retryable = isinstance(exc, invocation.task.spec.retry.retry_on)
        message, trace = redact(str(exc), scrub), redact(traceback.format_exc(), scrub)
        return failed(ErrorInfo(_qualname(exc), message, trace, retryable))
    finally:
        leave(token)

    named = None
    if isinstance(value, Named):
        named = NamedOutput(value.kind, value.name, dict(value.metadata))
        value = value.value
    if secrets and any(True for _ in secrets_in(value)):
        return failed(
            ErrorInfo(
                "lockgate.errors.UnserializableOutputError",
                f"{where} returned a lg.Secret: lockgate never stores a secret's value; "
                "return what the task computed with it instead",
                "",
                retryable=False,
            )
        )
    try:
        ref = store.put(value, what=f"output of {where}")
    except UnserializableOutputError as exc:
        return failed(ErrorInfo(_qualname(exc), str(exc), "", retryable=False, user=True))
    except ArtifactError as exc:
        return failed(
            ErrorInfo(_qualname(exc), str(exc), traceback.format_exc(), retryable=True, user=False)
        )
    finished = time.time()
    timed_out = invocation.timeout is not None and finished - started > invocation.timeout
    return Outcome(invocation.key, started, finished, output=ref, timed_out=timed_out, named=named)
