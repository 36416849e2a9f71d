"""A project with real runs in a temp SQLite database, and the server's app over it.

`api` builds the real app (`create_app`) on a `ServerState` like the one
`lockgate server` makes, minus the scheduler loop: runs are made by running
the project's pipelines inline, so every endpoint has real rows to read.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import lockgate as lg
from lockgate.server.api import create_app
from lockgate.server.state import ServerState
from lockgate.service import tokens
from lockgate.service.catalog import Catalog, load_catalog
from lockgate.service.compose import Workspace
from lockgate.service.launcher import Launcher
from lockgate.service.project import parse

PIPELINES = '''
import time
from pathlib import Path

import lockgate as lg

HERE = Path(__file__).parent


@lg.task
def prepare(size: int) -> list:
    print(f"preparing {size} rows")
    return list(range(size))


@lg.task
def summarize(rows: list) -> str:
    print(f"summarized {len(rows)} rows")
    return f"{len(rows)} rows"


@lg.pipeline
def nightly(size: int = 3):
    """Prepare rows, then summarize them."""
    return summarize(prepare(size))


@lg.task(retries=1, retry_delay=0)
def fragile_step(rows: list) -> int:
    print("looking for the file 'fixed'")
    if not (HERE / "fixed").exists():
        raise RuntimeError("the file 'fixed' is missing")
    return len(rows)


@lg.pipeline
def fragile(size: int = 2):
    """Fails (after one retry) until the file `fixed` exists."""
    return fragile_step(prepare(size))


@lg.task
def wait_for_go() -> int:
    """Prints, waits for the file `go` next to pipelines.py, prints again."""
    print("first line", flush=True)
    deadline = time.monotonic() + 60
    while not (HERE / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("second line", flush=True)
    return 2


@lg.pipeline
def waiter():
    """Runs until the test creates the file `go`."""
    return wait_for_go()


@lg.task
def blob() -> bytes:
    return b"\\x00raw bytes\\xff"


@lg.pipeline
def raw():
    """Produces a bytes artifact."""
    return blob()


@lg.task
def ingest() -> lg.Dataset:
    return lg.Dataset("numbers", [1.0, 2.0, 3.0], metadata={"day": "2026-11-25"})


@lg.task
def train(table: list, scale: float) -> dict:
    return {"weight": scale * sum(table) / len(table)}


@lg.task
def score(model: dict) -> dict:
    return {"accuracy": 0.97}


@lg.pipeline
def trainer(scale: float = 1.0):
    """A tiny model through a gate into the registry."""
    model = train(ingest(), scale)
    checked = lg.gate(score(model), {"accuracy": ">= 0.9"}, model="tiny-clf")
    return lg.register(model, name="tiny-clf", scores=checked)
'''


@dataclass
class Api:
    """The app under test, its workspace and catalog, and tokens of each scope."""

    root: Path
    workspace: Workspace
    catalog: Catalog
    state: ServerState
    client: TestClient
    tokens: dict[str, str]

    def headers(self, scope: str = "admin") -> dict[str, str]:
        """Authorization for a token of `scope`."""
        return {"Authorization": f"Bearer {self.tokens[scope]}"}

    def get(self, path: str, scope: str = "read", **kwargs: object) -> object:
        """GET with a token of `scope`."""
        return self.client.get(path, headers=self.headers(scope), **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, body: object = None, scope: str = "run") -> object:
        """POST JSON with a token of `scope`."""
        return self.client.post(path, json=body, headers=self.headers(scope))

    def run(self, pipeline: str, **params: object) -> lg.RunResult:
        """Run one of the project's pipelines to its end, inline."""
        entry = self.catalog.get(pipeline)
        return lg.run(entry.pipeline, params, workspace=self.workspace, executor="inline")


def write_project(root: Path, server: str = "") -> Path:
    """pipelines.py and lockgate.toml (state under root/.lockgate); the config's path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipelines.py").write_text(textwrap.dedent(PIPELINES))
    config = root / "lockgate.toml"
    config.write_text(
        f'[project]\npipelines = ["pipelines.py"]\nhome = ".lockgate"\n\n[server]\n{server}'
    )
    return config


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No storage settings leak in from the environment running the tests."""
    for name in (
        "LOCKGATE_HOME",
        "LOCKGATE_DB_URL",
        "LOCKGATE_ARTIFACT_ROOT",
        "LOCKGATE_LOGS_ROOT",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_api(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Api]]:
    """`make_api(server="open_reads = true\\n", host="127.0.0.1")`: a fresh project's app."""
    made: list[Api] = []

    def make(server: str = "", host: str = "127.0.0.1") -> Api:
        root = tmp_path / f"proj{len(made)}"
        config = write_project(root, server)
        monkeypatch.setenv("LOCKGATE_CONFIG", str(config))
        monkeypatch.chdir(root)
        workspace = Workspace(project=parse(config))
        catalog = load_catalog(workspace.project)
        launcher = Launcher(workspace, claimer="test", max_concurrent=1)
        state = ServerState(workspace, catalog, "test-server", launcher, host=host)
        client = TestClient(create_app(state), base_url="http://127.0.0.1")
        client.__enter__()
        scoped = {s: tokens.create_token(workspace, f"t-{s}", s) for s in tokens.SCOPES}
        api = Api(root, workspace, catalog, state, client, scoped)
        made.append(api)
        return api

    yield make
    for api in made:
        api.client.__exit__(None, None, None)
        api.workspace.close()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    """A project's app with reads closed (the default)."""
    return make_api()
