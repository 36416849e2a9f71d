"""The persisted states of runs, task runs and attempts, and the event kinds.

These strings are stored in the metadata database and are part of the public
contract (see docs/glossary.md): renaming one needs a migration.
"""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    """Where one node (or one map item) of a run stands."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CACHED = "cached"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the node will not change again in this run."""
        return self in _TERMINAL_TASK

    @property
    def done_ok(self) -> bool:
        """True when the node has a committed result downstream nodes can use."""
        return self in (TaskState.SUCCEEDED, TaskState.CACHED)


_TERMINAL_TASK = frozenset(
    {
        TaskState.SUCCEEDED,
        TaskState.FAILED,
        TaskState.CACHED,
        TaskState.SKIPPED,
        TaskState.CANCELLED,
    }
)


class RunState(StrEnum):
    """Where a whole run stands."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    GATE_FAILED = "gate_failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the run will not change again unless resumed."""
        return self not in (RunState.QUEUED, RunState.RUNNING, RunState.WAITING)


class AttemptState(StrEnum):
    """The outcome of one try of one task run."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class EventKind(StrEnum):
    """What an event row records. Task events carry the node and attempt."""

    RUN_CREATED = "run_created"
    RUN_QUEUED = "run_queued"
    RUN_STARTED = "run_started"
    RUN_SUCCEEDED = "run_succeeded"
    RUN_FAILED = "run_failed"
    RUN_GATE_FAILED = "run_gate_failed"
    RUN_CANCELLED = "run_cancelled"
    RUN_RESUMED = "run_resumed"
    RUN_CANCEL_REQUESTED = "run_cancel_requested"
    RUN_WAITING = "run_waiting"
    RUN_WARNING = "run_warning"
    TASK_QUEUED = "task_queued"
    TASK_STARTED = "task_started"
    TASK_SUCCEEDED = "task_succeeded"
    TASK_FAILED = "task_failed"
    TASK_RETRYING = "task_retrying"
    TASK_SKIPPED = "task_skipped"
    TASK_CACHED = "task_cached"
    TASK_CANCELLED = "task_cancelled"
    TASK_RESET = "task_reset"
    TASK_WAITING = "task_waiting"
    VERSION_CREATED = "version_created"
    MODEL_REGISTERED = "model_registered"
    GATE_PASSED = "gate_passed"
    GATE_FAILED = "gate_failed"
    ALIAS_MOVED = "alias_moved"
    APPROVAL_DECIDED = "approval_decided"
    MAP_EXPANDED = "map_expanded"
    HOOK_FAILED = "hook_failed"
    SLA_MISSED = "sla_missed"
    CANARY_STARTED = "canary_started"
    CANARY_DECIDED = "canary_decided"

    @classmethod
    def for_task(cls, state: TaskState) -> EventKind:
        """The event kind recorded when a task run enters `state`."""
        if state is TaskState.RUNNING:
            return cls.TASK_STARTED
        return cls(f"task_{state.value}")

    @classmethod
    def for_run(cls, state: RunState) -> EventKind:
        """The event kind recorded when a run enters `state`."""
        if state is RunState.RUNNING:
            return cls.RUN_STARTED
        return cls(f"run_{state.value}")


class Trigger(StrEnum):
    """Who or what started a run."""

    CLI = "cli"
    API = "api"
    PYTHON = "python"
    SCHEDULE = "schedule"
    SENSOR = "sensor"
    RECOVER = "recover"
    BACKFILL = "backfill"
    MESSAGE = "message"
    UI = "ui"
