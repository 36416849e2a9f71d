"""Fixtures the example tests share: a webhook receiver, and an example copied to a temp dir."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from webhook_receiver import WebhookReceiver

EXAMPLES = Path(__file__).parents[2] / "examples"
_LOCATIONS = (
    "LOCKGATE_CONFIG",
    "LOCKGATE_HOME",
    "LOCKGATE_DB_URL",
    "LOCKGATE_ARTIFACT_ROOT",
    "LOCKGATE_LOGS_ROOT",
)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """An HTTP server on 127.0.0.1 that keeps every alert POSTed to it."""
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture
def example_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """`example_copy(name)`: examples/NAME copied to tmp_path as the working directory.

    None of the caller's LOCKGATE_* location variables apply, so the copy's own
    lockgate.toml and `.lockgate/` are what the example uses, as for a user.
    """

    def copy(name: str) -> Path:
        root = tmp_path / name
        shutil.copytree(
            EXAMPLES / name, root, ignore=shutil.ignore_patterns(".lockgate", "__pycache__")
        )
        monkeypatch.chdir(root)
        for variable in _LOCATIONS:
            monkeypatch.delenv(variable, raising=False)
        return root

    return copy
