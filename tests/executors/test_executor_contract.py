"""The executor contract on the inline executor and on the process executor."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from lockgate.executors.inline import InlineExecutor
from lockgate.executors.process import ProcessExecutor
from lockgate.ports.artifacts import ArtifactStore
from lockgate.stores.artifacts import open_artifact_store
from lockgate.testing.executor_contract import ExecutorContract


class TestInlineExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, store: ArtifactStore) -> Iterator[InlineExecutor]:
        executor = InlineExecutor(store)
        yield executor
        executor.close()


class TestProcessExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, artifact_root: str) -> Iterator[ProcessExecutor]:
        executor = ProcessExecutor(
            functools.partial(open_artifact_store, artifact_root), workers=1, kill_grace=0.5
        )
        yield executor
        executor.close()
