"""`lockgate gateway` listens beyond loopback only with --allow-remote and a live token.

The same rule as the server's (tests/server/test_bind.py), and `[gateway]
open = true` is ignored off loopback: there, predict, feedback and /metrics
need a token all the same.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from listeners import Listener
from lockgate.cli.main import cli
from lockgate.errors import ConfigError
from lockgate.server.gateway.runner import Gateway
from lockgate.service import tokens
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
from lockgate.service.project import parse


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project dir with an empty [gateway] table; LOCKGATE_CONFIG and LOCKGATE_HOME point in."""
    (tmp_path / "lockgate.toml").write_text("[gateway]\n")
    for name in ("LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_LOGS_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCKGATE_CONFIG", str(tmp_path / "lockgate.toml"))
    monkeypatch.setenv("LOCKGATE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def workspace(root: Path) -> Workspace:
    return Workspace(
        Settings.from_env({}, home=root / "home"), project=parse(root / "lockgate.toml")
    )


def make_token(root: Path, scope: str = "run") -> str:
    opened = workspace(root)
    token = tokens.create_token(opened, f"app-{scope}", scope)
    opened.close()
    return token


def test_a_public_bind_without_allow_remote_is_refused_even_with_a_token(home):
    make_token(home)
    result = CliRunner().invoke(cli, ["gateway", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "allow_remote = true under [gateway]" in result.stderr
    assert "lockgate token create" not in result.stderr


def test_a_public_bind_without_a_token_is_refused_even_with_allow_remote(home):
    argv = ["gateway", "--host", "0.0.0.0", "--port", "1", "--allow-remote"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "lockgate token create" in result.stderr and "--allow-remote flag" not in result.stderr


def test_allow_remote_in_the_gateway_table_counts(home):
    (home / "lockgate.toml").write_text('[gateway]\nhost = "0.0.0.0"\nallow_remote = true\n')
    opened = workspace(home)
    with pytest.raises(ConfigError, match="token create"):
        Gateway(opened)
    tokens.create_token(opened, "app", "run")
    assert Gateway(opened).host == "0.0.0.0"
    with pytest.raises(ConfigError, match="--allow-remote flag"):
        Gateway(opened, allow_remote=False)  # the flag's explicit false wins over the table
    opened.close()


def test_a_public_bind_with_both_listens_everywhere_and_ignores_open(home):
    (home / "lockgate.toml").write_text("[gateway]\nopen = true\n")
    reader = make_token(home, "read")
    gateway = Listener(home, "gateway", "--host", "0.0.0.0", "--allow-remote", env={})
    try:
        gateway.wait_ready()
        assert gateway.listening() == {"0.0.0.0"}
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as http:
            # open = true is ignored off loopback: a token is needed all the same.
            assert http.get("/metrics").status_code == 401
            assert http.post("/v1/routes/bot/predict", json={"inputs": [1]}).status_code == 401
            with_token = http.get("/metrics", headers={"authorization": f"Bearer {reader}"})
            assert with_token.status_code == 200
    finally:
        gateway.stop()
    assert "[gateway] open = true is ignored: 0.0.0.0 is not a loopback address" in (
        gateway.output()
    )


def test_the_default_bind_is_loopback_only_and_open_works_there(home):
    (home / "lockgate.toml").write_text("[gateway]\nopen = true\n")
    gateway = Listener(home, "gateway", env={})
    try:
        gateway.wait_ready()
        assert gateway.listening() == {"127.0.0.1"}
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as http:
            assert http.get("/metrics").status_code == 200  # open, on loopback
    finally:
        gateway.stop()
