"""Helpers of the browser tests: the test project's pipelines, its server, logging in."""

from __future__ import annotations

import json
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from lockgate.cli.main import cli
from servers import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"

PIPELINES = '''
import time
from pathlib import Path

import lockgate as lg

HERE = Path(__file__).parent


@lg.task
def prepare(size: int) -> list:
    return list(range(size))


@lg.task
def wait_for_go(rows: list) -> int:
    """Runs until the test creates the file `go` (so the running state can be watched)."""
    deadline = time.monotonic() + 60
    while not (HERE / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(rows)


@lg.task
def summarize(count: int) -> str:
    print(f"summarized {count} rows")
    return f"{count} rows"


@lg.pipeline
def watched(size: int = 3):
    """Prepare, wait for the go file, summarize."""
    return summarize(wait_for_go(prepare(size)))


@lg.task
def fragile_step(rows: list) -> int:
    print("looking for the file 'fixed'")
    if not (HERE / "fixed").exists():
        raise RuntimeError("the file 'fixed' is missing next to pipelines.py")
    return len(rows)


@lg.pipeline
def fragile(size: int = 2):
    """Fails until the file `fixed` exists; then a resume finishes it."""
    return summarize(fragile_step(prepare(size)))


@lg.task
def ingest(day: str) -> lg.Dataset:
    return lg.Dataset("numbers", [1.0, 2.0, 3.0, 4.0], metadata={"day": day})


@lg.task
def train(table: list) -> dict:
    return {"weight": sum(table) / len(table)}


@lg.task
def score(model: dict) -> dict:
    return {"accuracy": 0.97}


@lg.pipeline
def trainer(day: str = "2026-11-25"):
    """A tiny model through a gate into the registry, promoted to production."""
    model = train(ingest(day))
    checked = lg.gate(score(model), {"accuracy": ">= 0.9"}, model="tiny-clf")
    registered = lg.register(model, name="tiny-clf", scores=checked)
    return lg.promote(registered, name="tiny-clf", alias="production")
'''


class Project:
    """A temp project with the pipelines above, a token, and a running server."""

    def __init__(self, root: Path, token: str, server: ServerProcess) -> None:
        self.root = root
        self.token = token
        self.server = server
        self.url = server.url

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call the server's JSON API with the token."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def wait_run(self, run_id: str, states: tuple[str, ...], timeout: float = 60) -> str:
        """Poll the run until its status is one of `states`; return it."""
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = self.api("GET", f"/api/v1/runs/{run_id}")["run"]["status"]
            if status in states:
                return status
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} still {status} after {timeout} s")


def write_project(root: Path, server: str = "", more_pipelines: str = "") -> Path:
    """pipelines.py and lockgate.toml (state under root/.lockgate); returns the config."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipelines.py").write_text(textwrap.dedent(PIPELINES) + textwrap.dedent(more_pipelines))
    config = root / "lockgate.toml"
    config.write_text(
        '[project]\npipelines = ["pipelines.py"]\nhome = ".lockgate"\n\n'
        f"[server]\npoll_interval = 0.1\n{server}"
    )
    return config


def create_token(config: Path, name: str = "ui-test") -> str:
    """A token made with `lockgate token create`, as a user would."""
    env = {"LOCKGATE_CONFIG": str(config)}
    result = CliRunner().invoke(cli, ["token", "create", name], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


class Console:
    """Console messages and page errors seen by a page (CSP violations among them)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m]


def log_in(page: Any, project: Project, next_path: str = "/") -> None:
    """Log in through the login page with the project's token."""
    page.goto(f"{project.url}/login?next={next_path}")
    page.fill("input[name=token]", project.token)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{project.url}{next_path}")
