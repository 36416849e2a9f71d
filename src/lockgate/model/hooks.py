"""Monitoring hooks: callables a task or pipeline asks the coordinator to call.

`on_success`, `on_failure`, `on_retry` and `on_gate_failed` each take one
callable or a list of them, checked when the task or pipeline is defined.
Hooks run in the coordinator's process (never in a worker), only after the
change they report is committed, and with keyword-only arguments: a hook
must accept `**future_kwargs` (or `**_`), so lockgate can pass more context
later without breaking it. What a hook does never changes a run's outcome.

Hooks are not part of any version: the pipeline version hashes the graph
and each task's code, and a hook only watches. A `Task` travelling to a
process worker leaves its hooks behind (see `Task.__getstate__`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lockgate.errors import InvalidPolicyError

Hook = Callable[..., Any]

#: The hook options, in the order they are documented.
HOOK_NAMES = ("on_success", "on_failure", "on_retry", "on_gate_failed")


@dataclass(frozen=True, slots=True)
class Hooks:
    """The hooks of one task or pipeline (empty tuples: none)."""

    on_success: tuple[Hook, ...] = ()
    on_failure: tuple[Hook, ...] = ()
    on_retry: tuple[Hook, ...] = ()
    on_gate_failed: tuple[Hook, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.on_success or self.on_failure or self.on_retry or self.on_gate_failed)

    def of(self, which: str) -> tuple[Hook, ...]:
        """The callables registered for `which` (one of `HOOK_NAMES`)."""
        hooks: tuple[Hook, ...] = getattr(self, which)
        return hooks


NO_HOOKS = Hooks()


def make_hooks(owner: str, **given: Hook | Iterable[Hook] | None) -> Hooks:
    """Validate hook options of `owner` ("task 'train'", "pipeline 'nightly'").

    Args:
        owner: names the task or pipeline in error messages.
        **given: `on_success=`, `on_failure=`, `on_retry=`, `on_gate_failed=`:
            None, one callable, or a list or tuple of callables.

    Raises:
        InvalidPolicyError: a value is not callable, or a callable cannot take
            keyword arguments it does not name (it lacks `**kwargs`).
    """
    found: dict[str, tuple[Hook, ...]] = {}
    for which, value in given.items():
        if which not in HOOK_NAMES:  # a programming error in lockgate itself
            raise TypeError(f"unknown hook option {which!r}")
        if value is None:
            continue
        items = (value,) if callable(value) else value
        if isinstance(items, str | bytes) or not isinstance(items, list | tuple):
            raise InvalidPolicyError.for_field(
                owner, which, value, "a callable or a list of callables"
            )
        for item in items:
            _check_hook(owner, which, item)
        found[which] = tuple(items)
    return Hooks(**found) if found else NO_HOOKS


def _check_hook(owner: str, which: str, hook: object) -> None:
    if not callable(hook):
        raise InvalidPolicyError.for_field(owner, which, hook, "a callable or a list of callables")
    try:
        parameters = inspect.signature(hook).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        raise InvalidPolicyError(
            f"{owner}: {which} hook {hook_name(hook)} must accept keyword arguments it does "
            "not name, so lockgate can pass more context later: add `**future_kwargs` to its "
            "parameters (for example `def notify(*, run_id, status, **future_kwargs)`)."
        )
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and p.default is inspect.Parameter.empty
        and p.name not in HOOK_KWARGS
    ]
    if positional:
        raise InvalidPolicyError(
            f"{owner}: {which} hook {hook_name(hook)} requires argument(s) "
            f"{', '.join(p.name for p in positional)} that lockgate never passes; hooks get "
            f"keyword arguments only ({', '.join(HOOK_KWARGS)})."
        )


#: The keyword arguments every hook call carries (docs/observability.md).
HOOK_KWARGS = (
    "hook",
    "run_id",
    "pipeline",
    "status",
    "params",
    "node_id",
    "task",
    "map_index",
    "attempt",
    "error",
    "gate",
    "at",
)


def hook_name(hook: object) -> str:
    """`module.qualname` of a hook, for messages and events."""
    module = getattr(hook, "__module__", None) or "?"
    name = getattr(hook, "__qualname__", None) or type(hook).__qualname__
    return f"{module}.{name}"
