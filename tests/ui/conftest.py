"""A real `lockgate server` on a loopback port with a temp project, and Chromium to drive it.

Chromium is Debian's (/usr/bin/chromium), driven by Playwright; nothing is
downloaded. Without it the browser tests skip locally and fail under CI=true.
`--screenshots` (declared in tests/conftest.py) saves one PNG per page under docs/img/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from uiserver import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    Console,
    Project,
    create_token,
    write_project,
)

from servers import ServerProcess


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No storage settings leak in from the environment running the tests."""
    names = ("LOCKGATE_HOME", "LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_LOGS_ROOT")
    for name in names:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def start_project(tmp_path: Path, clean_env: None) -> Iterator[Callable[..., Project]]:
    """Start a project's server: `start_project(server="open_reads = true\\n")`.

    `more_pipelines` is appended to pipelines.py; `prepare(config)` runs
    before the server starts.
    """
    running: list[ServerProcess] = []

    def start(
        server: str = "",
        more_pipelines: str = "",
        prepare: Callable[[Path], None] | None = None,
    ) -> Project:
        config = write_project(tmp_path / f"proj{len(running)}", server, more_pipelines)
        if prepare is not None:
            prepare(config)  # before the server starts: rows it must find, not launch
        token = create_token(config)
        process = ServerProcess(config)
        running.append(process)
        process.wait_ready()
        return Project(config.parent, token, process)

    yield start
    for process in running:
        process.stop()


@pytest.fixture
def project(start_project: Callable[..., Project]) -> Project:
    """A running server with reads closed (the default)."""
    return start_project()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright; skipped (or failed under CI=true) without it."""
    why = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "playwright is not installed (pip install -e '.[test]')"
    if why is None and not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        why = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need Chromium under CI: {why}")
        pytest.skip(f"browser tests skipped: {why}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[tuple[Any, Console]]:
    """A fresh browser context and page, recording console messages."""
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    console = Console()
    page.on("console", lambda message: console.messages.append(message.text))
    page.on("pageerror", lambda error: console.messages.append(f"pageerror: {error}"))
    yield page, console
    context.close()


@pytest.fixture
def shoot(request: pytest.FixtureRequest) -> Callable[[Any, str], None]:
    """`shoot(page, name)`: save docs/img/ui-NAME.png when run with --screenshots."""

    def save(page: Any, name: str) -> None:
        if request.config.getoption("--screenshots"):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"ui-{name}.png"))

    return save
