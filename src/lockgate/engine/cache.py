"""Cache keys: what a task run's result depends on, hashed, and how two differ.

The key covers the task's code version, every input artifact's hash (and
item index, for a map item) and every literal or parameter argument (a
secret parameter by its stored form: `env:VAR` or `<secret>`). The
inputs are kept as canonical JSON next to the key, so `lockgate explain` can
say which part changed when a key did not match.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from lockgate.model.secrets import Secret
from lockgate.model.task import Task
from lockgate.ports.executor import Load


def _component(value: Any) -> Any:
    if isinstance(value, Load):
        part: dict[str, Any] = {"$artifact": value.ref.sha256}
        if value.index is not None:
            part["$item"] = value.index
        return part
    if isinstance(value, Secret):
        # The stored form, never the value: cache inputs are recorded. So a
        # different literal of one secret parameter still hits the cache: a
        # secret is treated as a credential, not as data a result depends on.
        return {"$secret": value.stored}
    if isinstance(value, list | tuple):
        return [_component(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _component(item) for key, item in value.items()}
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def cache_inputs(task: Task, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What a result of `task` called with these invocation arguments depends on."""
    return {
        "task": task.name,
        "version": task.version,
        "args": [_component(arg) for arg in args],
        "kwargs": {name: _component(value) for name, value in kwargs.items()},
    }


def cache_key(inputs: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of `inputs`."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def differences(current: Mapping[str, Any], previous: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two cache inputs, most important first."""
    found: list[str] = []
    if current.get("version") != previous.get("version"):
        found.append(
            f"code version changed: {str(previous.get('version'))[:12]} -> "
            f"{str(current.get('version'))[:12]} (the task's source was edited)"
        )
    now_args, old_args = current.get("args", []), previous.get("args", [])
    for index in range(max(len(now_args), len(old_args))):
        a = now_args[index] if index < len(now_args) else "<missing>"
        b = old_args[index] if index < len(old_args) else "<missing>"
        if a != b:
            found.append(f"argument {index}: {_describe(b)} -> {_describe(a)}")
    now_kw, old_kw = current.get("kwargs", {}), previous.get("kwargs", {})
    for name in sorted(set(now_kw) | set(old_kw)):
        a, b = now_kw.get(name, "<missing>"), old_kw.get(name, "<missing>")
        if a != b:
            found.append(f"argument {name!r}: {_describe(b)} -> {_describe(a)}")
    return found


def _describe(component: Any) -> str:
    if isinstance(component, dict) and "$artifact" in component:
        item = f" item {component['$item']}" if "$item" in component else ""
        return f"input artifact sha256:{component['$artifact'][:12]}{item}"
    text = json.dumps(component, default=str)
    return f"value {text if len(text) <= 60 else text[:57] + '...'}"
