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
from lockgate.service.project import DEFAULT_EXECUTOR, EXECUTORS, Project
from lockgate.service.project import load as load_project

__all__ = ["DEFAULT_EXECUTOR", "EXECUTORS", "Workspace"]


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

        return SqlMetadataStore(
            self.settings.db_url,
            busy_timeout=self.settings.db_busy_timeout,
            sync_interval=self.settings.db_sync_interval,
        )

    @cached_property
    def artifacts(self) -> ArtifactStore:
        """The content-addressed artifact store."""
        from lockgate.stores.artifacts import open_artifact_store

        return open_artifact_store(self.settings.artifact_root)

    def executor(
        self, name: str | None = None, *, workers: int | None = None, pipeline: str | None = None
    ) -> Executor:
        """A new executor of kind `name`.

        Args:
            name: "process" (a pool of worker processes), "inline" (this thread)
                or "ray" (a Ray cluster); None: what lockgate.toml's [executor]
                says for `pipeline`, else "process".
            workers: pool size for the process executor (default: CPU count);
                CPUs of a Ray instance started for the run.
            pipeline: the pipeline the executor is for (per-pipeline defaults).

        Raises:
            UsageError: unknown executor name or a bad worker count.
            ExecutorError: Ray is missing or its cluster unreachable.
            SharedStoreRequiredError: the Ray cluster cannot reach the artifact store.
        """
        if workers is not None and workers < 1:
            raise UsageError(f"--workers must be at least 1, got {workers}")
        name = name or self.project.executor.for_pipeline(pipeline)
        if name == "inline":
            from lockgate.executors.inline import InlineExecutor

            return InlineExecutor(self.artifacts, logs_root=self.settings.logs_root)
        if name not in ("process", "ray"):
            raise UsageError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
        from lockgate.stores.artifacts import open_artifact_store

        factory = functools.partial(open_artifact_store, self.settings.artifact_root)
        if name == "ray":
            from lockgate.executors.ray import RayExecutor

            return RayExecutor(
                factory,
                artifact_root=self.settings.artifact_root,
                address=self.settings.ray_address,
                logs_root=self.settings.logs_root,
                num_cpus=workers,
            )
        from lockgate.executors.process import ProcessExecutor

        return ProcessExecutor(factory, logs_root=self.settings.logs_root, workers=workers)

    def close(self) -> None:
        """Release database connections."""
        if "metadata" in self.__dict__:
            self.metadata.close()
