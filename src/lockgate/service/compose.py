"""The composition root: the one place that picks concrete stores and executors.

Heavy modules (SQLAlchemy, fsspec, multiprocessing machinery) are imported
here, inside functions, so `import lockgate` stays fast.
"""

from __future__ import annotations

import functools
from functools import cached_property

from lockgate.errors import UsageError
from lockgate.ports.artifacts import ArtifactStore
from lockgate.ports.executor import Executor
from lockgate.ports.metadata import MetadataStore
from lockgate.service.config import Settings
from lockgate.service.project import Project
from lockgate.service.project import load as load_project

EXECUTORS = ("process", "inline")
DEFAULT_EXECUTOR = "process"


class Workspace:
    """One installation's stores, opened on first use."""

    def __init__(self, settings: Settings | None = None, project: Project | None = None) -> None:
        """Use `settings` (default: the environment, then lockgate.toml).

        Args:
            settings: where state lives.
            project: the parsed lockgate.toml (default: found from the cwd).
        """
        if project is not None:
            self.__dict__["project"] = project
        self.settings = settings or Settings.from_env(project=self.project)

    @cached_property
    def project(self) -> Project:
        """The project's lockgate.toml (pools, server, OpenLineage), read on first use."""
        return load_project()

    @cached_property
    def metadata(self) -> MetadataStore:
        """The metadata store (migrated if new)."""
        from lockgate.stores.metadata.sql import SqlMetadataStore

        return SqlMetadataStore(self.settings.db_url)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        """The content-addressed artifact store."""
        from lockgate.stores.artifacts import open_artifact_store

        return open_artifact_store(self.settings.artifact_root)

    def executor(self, name: str = DEFAULT_EXECUTOR, *, workers: int | None = None) -> Executor:
        """A new executor of kind `name`.

        Args:
            name: "process" (a pool of worker processes) or "inline" (this thread).
            workers: pool size for the process executor (default: CPU count).

        Raises:
            UsageError: unknown executor name or a bad worker count.
        """
        if workers is not None and workers < 1:
            raise UsageError(f"--workers must be at least 1, got {workers}")
        if name == "inline":
            from lockgate.executors.inline import InlineExecutor

            return InlineExecutor(self.artifacts, logs_root=self.settings.logs_root)
        if name == "process":
            from lockgate.executors.process import ProcessExecutor
            from lockgate.stores.artifacts import open_artifact_store

            return ProcessExecutor(
                functools.partial(open_artifact_store, self.settings.artifact_root),
                logs_root=self.settings.logs_root,
                workers=workers,
            )
        raise UsageError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")

    def close(self) -> None:
        """Release database connections."""
        if "metadata" in self.__dict__:
            self.metadata.close()
