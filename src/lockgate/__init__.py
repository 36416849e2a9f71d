"""lockgate: dependency-aware, retry-safe, observable ML pipelines.

    import lockgate as lg

    @lg.task(retries=2)
    def ingest(day: str) -> list[dict]: ...

    @lg.pipeline
    def nightly(day: str = "2026-11-25"):
        return ingest(day)

    result = lg.run(nightly, params={"day": "2026-11-24"})

This module is the public surface (pinned by a test). Everything else is
internal and may change; import from `lockgate`, `lockgate.errors` and
`lockgate.testing` only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lockgate import errors
from lockgate.model.context import TaskContext, current
from lockgate.model.graph import Graph, Node
from lockgate.model.pipeline import Pipeline, pipeline
from lockgate.model.policy import CachePolicy, RetryPolicy
from lockgate.model.schedules import on_message, on_new_version
from lockgate.model.secrets import Secret
from lockgate.model.states import AttemptState, RunState, TaskState
from lockgate.model.system import approval, canary, gate, promote, register
from lockgate.model.task import Task, task
from lockgate.model.versions import Dataset, Model, Prompt, VersionRef
from lockgate.ports.artifacts import ArtifactRef

if TYPE_CHECKING:
    from lockgate.client import Client
    from lockgate.evals import evaluate
    from lockgate.service.compose import Workspace
    from lockgate.service.config import Settings
    from lockgate.service.lifecycle import cancel, resume
    from lockgate.service.record import record
    from lockgate.service.runs import NodeResult, RunResult, run
    from lockgate.service.stats import stats

# Defining tasks and pipelines needs only the pure layers; running them loads
# the engine and the services on first use, which keeps `import lockgate` fast.
_LAZY = {
    "Client": "lockgate.client",
    "evaluate": "lockgate.evals",
    "record": "lockgate.service.record",
    "Workspace": "lockgate.service.compose",
    "Settings": "lockgate.service.config",
    "cancel": "lockgate.service.lifecycle",
    "resume": "lockgate.service.lifecycle",
    "NodeResult": "lockgate.service.runs",
    "RunResult": "lockgate.service.runs",
    "run": "lockgate.service.runs",
    "stats": "lockgate.service.stats",
}


def __getattr__(name: str) -> Any:
    """Load the running side of the public API on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lockgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = [
    "ArtifactRef",
    "AttemptState",
    "CachePolicy",
    "Client",
    "Dataset",
    "Graph",
    "Model",
    "Node",
    "NodeResult",
    "Pipeline",
    "Prompt",
    "RetryPolicy",
    "RunResult",
    "RunState",
    "Secret",
    "Settings",
    "Task",
    "TaskContext",
    "TaskState",
    "VersionRef",
    "Workspace",
    "__version__",
    "approval",
    "canary",
    "cancel",
    "current",
    "errors",
    "evaluate",
    "gate",
    "on_message",
    "on_new_version",
    "pipeline",
    "promote",
    "record",
    "register",
    "resume",
    "run",
    "stats",
    "task",
]
