"""The project's pipelines: what `[project] pipelines` in lockgate.toml lists.

The server schedules, senses and triggers exactly these; `lockgate
pipelines list` shows them with their schedules and next run times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lockgate.errors import ConfigError, LockgateError, PipelineNotFoundError
from lockgate.model.pipeline import Pipeline
from lockgate.model.schedules import MessageTrigger, VersionTrigger
from lockgate.service.loader import load_module, pipelines_in
from lockgate.service.project import Project


@dataclass(frozen=True, slots=True)
class Entry:
    """A pipeline of the project and where it came from (a file or a module)."""

    pipeline: Pipeline
    source: str

    @property
    def ref(self) -> str:
        """`SOURCE:NAME`, loadable again by the run launcher and by resume."""
        return f"{self.source}:{self.pipeline.name}"


class Catalog:
    """The project's pipelines by name."""

    def __init__(self, entries: dict[str, Entry], project: Project) -> None:
        """Wrap already-loaded entries (use `load_catalog`)."""
        self.entries = entries
        self.project = project

    def __iter__(self) -> Any:
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, name: str) -> Entry:
        """The pipeline called `name`.

        Raises:
            PipelineNotFoundError: the project has no such pipeline.
        """
        entry = self.entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self.entries)) or "none"
            where = self.project.path or "lockgate.toml ([project] pipelines)"
            raise PipelineNotFoundError(
                f"the project has no pipeline {name!r} (known: {known}); list the module "
                f"that defines it under [project] pipelines in {where}"
            )
        return entry

    def limits(self) -> dict[str, int]:
        """max_active_runs of each pipeline that sets one."""
        return {
            e.pipeline.name: e.pipeline.options.max_active_runs
            for e in self
            if e.pipeline.options.max_active_runs is not None
        }


def load_catalog(project: Project) -> Catalog:
    """Import every module the project lists and collect its pipelines.

    Raises:
        ConfigError: no config file, or it lists no pipelines.
        DefinitionError / PipelineNotFoundError: a listed module fails to import
            (the message names the config file and the entry).
        DuplicatePipelineError: two listed modules define pipelines with one name.
    """
    if project.path is None:
        raise ConfigError(
            "no lockgate.toml found (looked in the current directory and its parents; "
            "LOCKGATE_CONFIG names one explicitly). Create one with\n"
            '  [project]\n  pipelines = ["pipelines.py"]'
        )
    if not project.pipelines:
        raise ConfigError(
            f"{project.path}: [project] pipelines is empty or missing; list the files or "
            'modules that define your pipelines, e.g. pipelines = ["pipelines.py"]'
        )
    entries: dict[str, Entry] = {}
    for source in project.pipelines:
        try:
            module = load_module(source)
        except LockgateError as exc:
            raise type(exc)(f"{project.path}: [project] pipelines entry {source!r}: {exc}") from exc
        found = pipelines_in(module)
        if not found:
            raise PipelineNotFoundError(
                f"{project.path}: [project] pipelines entry {source!r} defines no pipeline "
                "(decorate a function with @lg.pipeline)"
            )
        for name, pipeline in found.items():
            other = entries.get(name)
            if other is not None and other.pipeline is not pipeline:
                raise ConfigError(
                    f"{project.path}: pipeline {name!r} is defined in both {other.source} "
                    f"and {source}; rename one with @lg.pipeline(name=...)"
                )
            _ = pipeline.graph  # trace now: definition errors surface at load
            entries[name] = Entry(pipeline, source)
    return Catalog(entries, project)


def describe(entry: Entry, now: datetime | None = None, count: int = 3) -> dict[str, Any]:
    """A JSON-ready summary: schedule, next fire times, triggers and limits."""
    options = entry.pipeline.options
    now = now or datetime.now(UTC)
    schedule = options.schedule
    triggers: list[str] = []
    for trigger in options.triggers:
        if isinstance(trigger, VersionTrigger):
            triggers.append(f"new version of {trigger.kind}:{trigger.name}")
        elif isinstance(trigger, MessageTrigger):
            triggers.append(f"message on {trigger.stream}")
    return {
        "name": entry.pipeline.name,
        "source": entry.source,
        "description": entry.pipeline.description,
        "params": [p.name for p in entry.pipeline.params],
        "schedule": schedule.expression if schedule else None,
        "timezone": schedule.timezone if schedule else None,
        "catchup": schedule.catchup if schedule else None,
        "next_runs": ([t.isoformat() for t in schedule.next_ticks(now, count)] if schedule else []),
        "triggers": triggers,
        "max_active_runs": options.max_active_runs,
        "max_input_age": options.max_input_age,
    }
