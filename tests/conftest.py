"""Shared fixtures: a workspace on a real SQLite file and artifact dir in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate.service.compose import Workspace
from lockgate.service.config import Settings


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A fresh installation under tmp_path (SQLite WAL + local artifacts)."""
    ws = Workspace(Settings.from_env({}, home=tmp_path / "home"))
    yield ws
    ws.close()


@pytest.fixture
def home_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LOCKGATE_HOME pointed at a temp dir, for CLI and lg.run() defaults."""
    home = tmp_path / "home"
    monkeypatch.setenv("LOCKGATE_HOME", str(home))
    monkeypatch.delenv("LOCKGATE_DB_URL", raising=False)
    monkeypatch.delenv("LOCKGATE_ARTIFACT_ROOT", raising=False)
    return home


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options of the whole suite (declared here so they work from any directory)."""
    parser.addoption(
        "--screenshots",
        action="store_true",
        default=False,
        help="browser tests (tests/ui) save one PNG per UI page under docs/img/",
    )


# The chaos table (`chaos` fixture, the `scenario` marker, the summary at the end).
from chaos_report import chaos, pytest_configure, pytest_terminal_summary  # noqa: E402, F401

# PostgreSQL fixtures (`pg_server`, `pg_url`) for any test; tests/ is on sys.path for conftest.
from postgres import pg_server, pg_url  # noqa: E402, F401

# A local Ray cluster (`ray_address`) on loopback, started once per session.
from ray_fixture import ray_address  # noqa: E402, F401

# S3 fixtures (`s3_server`, `s3_root`, `s3_auth`): moto's S3 server on loopback.
from s3_fixture import s3_auth, s3_root, s3_server  # noqa: E402, F401
