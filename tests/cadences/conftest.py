"""A project on disk (lockgate.toml + pipelines.py) pointed at by LOCKGATE_CONFIG."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lockgate.service.catalog import Catalog, load_catalog
from lockgate.service.compose import Workspace
from lockgate.service.project import parse


class Project:
    """A temp project: write its files, open its workspace and catalog."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "lockgate.toml"
        self._open: list[Workspace] = []

    def write(self, pipelines: str, config: str = "", *, project: str = "") -> Project:
        """Write pipelines.py and lockgate.toml (`project`: more [project] keys)."""
        (self.root / "pipelines.py").write_text(textwrap.dedent(pipelines))
        head = '[project]\npipelines = ["pipelines.py"]\n' + textwrap.dedent(project)
        text = head + textwrap.dedent(config)
        self.config.write_text(text)
        return self

    def workspace(self) -> Workspace:
        project = parse(self.config)
        workspace = Workspace(project=project)
        self._open.append(workspace)
        return workspace

    def catalog(self, workspace: Workspace) -> Catalog:
        return load_catalog(workspace.project)

    def close(self) -> None:
        for workspace in self._open:
            workspace.close()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """An empty project dir; LOCKGATE_CONFIG points at its lockgate.toml, state inside it."""
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.setenv("LOCKGATE_CONFIG", str(root / "lockgate.toml"))
    for name in (
        "LOCKGATE_HOME",
        "LOCKGATE_DB_URL",
        "LOCKGATE_ARTIFACT_ROOT",
        "LOCKGATE_LOGS_ROOT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(root)
    made = Project(root)
    yield made
    made.close()


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """Poll `condition` until it is true or `timeout` passes (then fail with `what`)."""
    import time

    def wait(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout:g} s waiting for {what or condition}")

    return wait
