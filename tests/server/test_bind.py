"""`lockgate server` listens on loopback unless told otherwise twice: --allow-remote and a token.

A non-loopback --host (or `[server] host`) needs both an explicit
`--allow-remote` (or `[server] allow_remote = true`) and at least one live
API token; without either the server exits 2 naming the host, what is
missing and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from listeners import Listener
from lockgate.cli.main import cli
from lockgate.service import tokens
from lockgate.service.compose import Workspace
from lockgate.service.project import parse
from server.conftest import write_project


@pytest.fixture
def project(tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project's root; LOCKGATE_CONFIG points at it."""
    root = tmp_path / "proj"
    config = write_project(root)
    monkeypatch.setenv("LOCKGATE_CONFIG", str(config))
    monkeypatch.chdir(root)
    yield root


def make_token(root: Path) -> None:
    workspace = Workspace(project=parse(root / "lockgate.toml"))
    tokens.create_token(workspace, "ops", "read")
    workspace.close()


def serve(*args: str) -> object:
    return CliRunner().invoke(cli, ["server", "--port", "1", *args])


def test_a_public_bind_without_allow_remote_is_refused_even_with_a_token(project):
    make_token(project)
    result = serve("--host", "0.0.0.0")
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert (
        "--allow-remote" in result.stderr and "API token" not in result.stderr.split("missing")[1]
    )


def test_a_public_bind_without_a_token_is_refused_even_with_allow_remote(project):
    result = serve("--host", "0.0.0.0", "--allow-remote")
    assert result.exit_code == 2
    message = result.stderr
    assert "refusing to listen on 0.0.0.0" in message and "lockgate token create" in message
    assert "the --allow-remote flag" not in message


def test_the_config_file_counts_as_both_host_and_allow_remote(project):
    config = project / "lockgate.toml"
    config.write_text(config.read_text() + 'host = "0.0.0.0"\nallow_remote = true\n')
    refused = serve()  # allowed, but still no token
    assert refused.exit_code == 2 and "lockgate token create" in refused.stderr
    assert "the --allow-remote flag" not in refused.stderr
    config.write_text(config.read_text().replace("allow_remote = true\n", ""))
    make_token(project)
    assert "the --allow-remote flag (or allow_remote = true" in serve().stderr


def test_a_public_bind_with_allow_remote_and_a_token_listens_on_every_address(project):
    make_token(project)
    server = Listener(
        project,
        "server",
        "--host",
        "0.0.0.0",
        "--allow-remote",
        "--drain-timeout",
        "1",
        env={},
    )
    try:
        server.wait_ready()
        assert server.listening() == {"0.0.0.0"}
        assert server.healthz() == 200
    finally:
        server.stop()
    assert server.process.returncode == 0, server.output()


def test_the_default_bind_is_loopback_only(project):
    server = Listener(project, "server", "--drain-timeout", "1", env={})
    try:
        server.wait_ready()
        assert server.listening() == {"127.0.0.1"}
    finally:
        server.stop()
