"""`[openlineage]` in lockgate.toml: off by default, errors that name the file, transports.

A config mistake stops a run before it is created; a transport that fails at
run time never changes the run's outcome.
"""

from __future__ import annotations

import builtins
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import lockgate as lg
from lockgate.errors import ConfigError
from lockgate.service.project import parse


@lg.task
def one() -> int:
    return 1


@lg.task
def plus(x: int) -> int:
    return x + 1


@lg.pipeline
def tiny():
    return plus(one())


def run(workspace: Any) -> lg.RunResult:
    return lg.run(tiny, workspace=workspace, executor="inline")


@pytest.fixture
def no_openlineage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import openlineage...` fail, as if the [lineage] extra were not installed."""
    real = builtins.__import__

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "openlineage" or name.startswith("openlineage."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('transport = "kafka"', "transport = 'kafka'; choose one of off, console, file, http"),
        ('transport = "file"', "transport = 'file' needs path"),
        ('transport = "http"', "transport = 'http' needs url"),
    ],
)
def test_a_bad_section_is_a_config_error_naming_the_file(workspace, configure, section, expected):
    config = configure(f"[openlineage]\n{section}\n")
    with pytest.raises(ConfigError, match=expected) as caught:
        run(workspace)
    assert str(config) in str(caught.value)
    assert workspace.metadata.list_runs() == []  # nothing started


def test_lineage_without_the_extra_installed_says_how_to_install_it(
    workspace, configure, no_openlineage
):
    config = configure('[openlineage]\ntransport = "file"\npath = "lineage.ndjson"\n')
    with pytest.raises(ConfigError) as caught:
        run(workspace)
    message = str(caught.value)
    assert str(config) in message and "pip install 'lockgate[lineage]'" in message
    assert workspace.metadata.list_runs() == []


def test_lineage_is_off_by_default_and_needs_no_extra(workspace, configure, no_openlineage):
    configure("# no [openlineage] section\n")
    assert run(workspace).ok  # openlineage is never imported
    configure('[openlineage]\ntransport = "off"\n')
    assert run(workspace).ok


def test_a_failing_transport_does_not_change_the_outcome(workspace, configure, caplog):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configure(f'[openlineage]\ntransport = "http"\nurl = "http://127.0.0.1:{port}"\n')
    with caplog.at_level(logging.WARNING, logger="lockgate.service.openlineage"):
        result = run(workspace)
    assert result.ok and result.output() == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "lockgate.service.openlineage"]
    assert any("START event for tiny was not sent" in w for w in warnings)
    assert any("6 of 6 events for run" in w for w in warnings)


def test_the_console_transport_prints_each_event(workspace, configure, capsys, schemas):
    configure('[openlineage]\ntransport = "console"\nnamespace = "ml-team"\n')
    assert run(workspace).ok
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    assert [(e["eventType"], e["job"]["name"]) for e in events] == [
        ("START", "tiny"),
        ("START", "tiny.one"),
        ("COMPLETE", "tiny.one"),
        ("START", "tiny.plus"),
        ("COMPLETE", "tiny.plus"),
        ("COMPLETE", "tiny"),
    ]
    for event in events:
        schemas.validate(event)
        assert event["job"]["namespace"] == "ml-team"


@pytest.mark.parametrize("written", ["s3cret", "env:LINEAGE_KEY"])
def test_the_http_transport_posts_each_event_with_the_api_key(
    workspace, configure, schemas, monkeypatch, written
):
    monkeypatch.setenv("LINEAGE_KEY", "s3cret")
    received: list[tuple[str, str | None, dict[str, Any]]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Authorization"], json.loads(body)))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = configure(
            "[openlineage]\n"
            'transport = "http"\n'
            f'url = "http://127.0.0.1:{server.server_address[1]}"\n'
            'endpoint = "lineage/events"\n'
            f'api_key = "{written}"\n'
        )
        assert "s3cret" not in repr(parse(config).openlineage)  # printed settings hide it
        assert run(workspace).ok
    finally:
        server.shutdown()
        server.server_close()
    assert [(path, auth) for path, auth, _ in received] == [
        ("/lineage/events", "Bearer s3cret")
    ] * 6
    for *_, event in received:
        schemas.validate(event)
