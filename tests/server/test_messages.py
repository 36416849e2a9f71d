"""Message triggers on a real redis-server, a real SQLite workspace and a real project.

Each test writes a pipelines module and a lockgate.toml to tmp_path, loads
the catalog from them as `lockgate server` does, and consumes the stream
with `StreamSource`s (its thread, or `poll()` for exact steps). "Two
servers" are two sources with different consumer names in one group; a
server that dies before acknowledging is a subprocess killed by the
`message.before_ack` failpoint.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import lockgate as lg
import redis_fixture
from lockgate.errors import ConfigError, ParameterError
from lockgate.model.states import Trigger
from lockgate.ports.metadata import RunRecord
from lockgate.service.catalog import Catalog, load_catalog
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
from lockgate.service.enqueue import enqueue
from lockgate.service.messages import StreamSource, message_sources, params_for
from lockgate.service.project import parse
from redis_fixture import free_port, start_redis, stop_redis

# tests/ is on sys.path (as for conftest.py); these make the fixtures visible here.
redis_server = redis_fixture.redis_server
redis_url = redis_fixture.redis_url

STREAM = "cache-invalidations"
GROUP = "lockgate"

PIPELINES = """
import lockgate as lg

URL = {url!r}


@lg.task
def drop_key(key: str, ttl: int) -> str:
    return f"{{key}}:{{ttl}}"


@lg.task
def note(key: str) -> str:
    return key


@lg.pipeline(triggers=[lg.on_message(URL, stream={stream!r})])
def invalidate(key: str, ttl: int = 60):
    drop_key(key, ttl)


@lg.pipeline(triggers=[lg.on_message(URL, stream={stream!r})])
def audit(key: str):
    note(key)
"""


@pytest.fixture
def project_file(tmp_path: Path, redis_url: str) -> Path:
    """A project whose two pipelines trigger on STREAM of the test's redis-server."""
    return _write_project(tmp_path / "project", redis_url)


def _write_project(root: Path, url: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipelines.py").write_text(PIPELINES.format(url=url, stream=STREAM))
    config = root / "lockgate.toml"
    config.write_text('[project]\npipelines = ["pipelines.py"]\n')
    return config


@pytest.fixture
def workspace(tmp_path: Path, project_file: Path) -> Iterator[Workspace]:
    """A SQLite workspace under tmp_path for the project."""
    ws = Workspace(Settings.from_env({}, home=tmp_path / "home"), parse(project_file))
    yield ws
    ws.close()


@pytest.fixture
def catalog(workspace: Workspace) -> Catalog:
    """The project's pipelines, loaded as the server loads them."""
    return load_catalog(workspace.project)


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    """A plain redis client: the producer, and the test's eyes on the group."""
    import redis

    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def sources() -> Iterator[list[StreamSource]]:
    """Sources to close after the test, however it ends."""
    made: list[StreamSource] = []
    yield made
    for source in made:
        source.close()


class Wakes:
    """Counts the server wake-ups a source asks for (one per run it creates)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.count += 1


def _source(
    workspace: Workspace,
    catalog: Catalog,
    made: list[StreamSource],
    consumer: str = "server-a",
    wake: Callable[[], None] | None = None,
    **options: Any,
) -> StreamSource:
    options.setdefault("block_ms", 100)
    (source,) = message_sources(workspace, catalog, consumer, wake or Wakes(), **options)
    made.append(source)
    return source


def _runs(workspace: Workspace, pipeline: str) -> list[RunRecord]:
    return workspace.metadata.list_runs(pipeline=pipeline, limit=1000)


def _wait(what: str, condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def _pending(client: Any) -> int:
    return int(client.xpending(STREAM, GROUP)["pending"])


def _create_group(client: Any) -> None:
    client.xgroup_create(STREAM, GROUP, id="$", mkstream=True)


def _key(message_id: bytes | str) -> str:
    text = message_id.decode() if isinstance(message_id, bytes) else message_id
    return f"message:{STREAM}:{text}"


# --- one message, one run per pipeline -----------------------------------------------------


def test_a_message_starts_one_run_per_pipeline_with_params_from_its_fields(
    workspace: Workspace, catalog: Catalog, client: Any, sources: list[StreamSource]
) -> None:
    wakes = Wakes()
    source = _source(workspace, catalog, sources, wake=wakes)
    source.start()
    assert source.ready.wait(10), "the source never connected"
    message_id = client.xadd(STREAM, {"key": "user:7", "ttl": "120", "sender": "billing"})

    _wait("both runs", lambda: len(_runs(workspace, "invalidate") + _runs(workspace, "audit")) == 2)
    (run,) = _runs(workspace, "invalidate")
    assert dict(run.params) == {"key": "user:7", "ttl": 120}  # parsed as int; sender ignored
    assert run.trigger == Trigger.MESSAGE.value
    assert run.trigger_key == _key(message_id)
    assert run.pipeline_ref is not None and run.pipeline_ref.endswith("pipelines.py:invalidate")
    (audit,) = _runs(workspace, "audit")
    assert dict(audit.params) == {"key": "user:7"}
    assert audit.trigger_key == _key(message_id)
    _wait("the acknowledgement", lambda: _pending(client) == 0)
    assert wakes.count == 2  # the server launches each run at once, not at its next poll


def test_a_default_fills_a_parameter_the_message_does_not_name(
    workspace: Workspace, catalog: Catalog, client: Any, sources: list[StreamSource]
) -> None:
    source = _source(workspace, catalog, sources)
    source.poll()  # connects and creates the group
    client.xadd(STREAM, {"key": "k"})
    created = source.poll()
    assert len(created) == 2
    (run,) = _runs(workspace, "invalidate")
    assert dict(run.params) == {"key": "k", "ttl": 60}


def test_field_values_are_parsed_like_command_line_values() -> None:
    @lg.pipeline
    def typed(day: dt.date, rate: float, tags: list[str], dry: bool = False) -> None:
        return None

    fields = {b"day": b"2026-11-24", b"rate": b"0.5", b"tags": b'["a", "b"]', b"other": b"\xff"}
    assert params_for(typed, fields) == {
        "day": dt.date(2026, 11, 24),
        "rate": 0.5,
        "tags": ["a", "b"],
        "dry": False,
    }
    with pytest.raises(ParameterError, match="'day' expects date"):
        params_for(typed, {b"day": b"tomorrow", b"rate": b"1", b"tags": b"[]"})
    with pytest.raises(ParameterError, match="not UTF-8"):
        params_for(typed, {b"day": b"\xff", b"rate": b"1", b"tags": b"[]"})
    with pytest.raises(ParameterError, match="this message's fields: rate, tags"):
        params_for(typed, {b"rate": b"1", b"tags": b"[]"})


def test_the_server_consumes_its_pipelines_streams_and_wakes_its_loop(
    workspace: Workspace, catalog: Catalog, client: Any
) -> None:
    from lockgate.server.daemon import Server, options_for

    server = Server(workspace, options_for(workspace, port=free_port()), catalog=catalog)
    (source,) = server.sources
    assert {e.pipeline.name for e in source.entries} == {"invalidate", "audit"}
    source.start()
    try:
        assert source.ready.wait(10)
        server.wake.clear()
        client.xadd(STREAM, {"key": "k", "ttl": "3"})
        assert server.wake.wait(10), "the run was queued but the loop was not woken"
        _wait("both runs", lambda: len(workspace.metadata.list_runs(limit=10)) == 2)
        assert {r.status.value for r in workspace.metadata.list_runs(limit=10)} == {"queued"}
    finally:
        server.stop()
    assert source._thread is not None and not source._thread.is_alive()


# --- several servers --------------------------------------------------------------------------


def test_two_servers_split_the_messages_and_each_message_runs_once(
    workspace: Workspace, catalog: Catalog, client: Any, sources: list[StreamSource]
) -> None:
    a_wakes, b_wakes = Wakes(), Wakes()
    a = _source(workspace, catalog, sources, "server-a", a_wakes, batch=2)
    b = _source(workspace, catalog, sources, "server-b", b_wakes, batch=2)
    for source in (a, b):
        source.start()
        assert source.ready.wait(10)
    ids = []
    for n in range(20):
        ids.append(client.xadd(STREAM, {"key": f"k{n}", "ttl": str(n)}))
        time.sleep(0.01)

    _wait("40 runs", lambda: len(_runs(workspace, "invalidate") + _runs(workspace, "audit")) == 40)
    _wait("every acknowledgement", lambda: _pending(client) == 0)
    for pipeline in ("invalidate", "audit"):
        keys = sorted(r.trigger_key or "" for r in _runs(workspace, pipeline))
        assert keys == sorted(_key(i) for i in ids)  # each message exactly once
    assert a_wakes.count + b_wakes.count == 40
    assert a_wakes.count > 0 and b_wakes.count > 0, (a_wakes.count, b_wakes.count)


def test_a_message_read_by_a_server_that_died_is_taken_over_and_runs_once(
    workspace: Workspace, catalog: Catalog, client: Any, sources: list[StreamSource]
) -> None:
    _create_group(client)
    message_id = client.xadd(STREAM, {"key": "k", "ttl": "5"})
    # Server A reads it and dies before recording a run or acknowledging.
    read = client.xreadgroup(GROUP, "server-a", {STREAM: ">"}, count=10)
    assert read[0][1][0][0] == message_id

    b = _source(workspace, catalog, sources, "server-b", min_idle=1.0)
    assert b.poll() == []  # pending for less than min_idle: server A may still be on it
    assert _pending(client) == 1
    time.sleep(1.1)
    created = b.poll()

    assert [r.created for r in created] == [True, True]
    assert [r.trigger_key for r in _runs(workspace, "invalidate")] == [_key(message_id)]
    assert len(_runs(workspace, "audit")) == 1
    assert _pending(client) == 0
    assert b.poll() == []


def test_a_server_killed_between_run_and_ack_leaves_the_message_to_another_without_rerun(
    workspace: Workspace,
    catalog: Catalog,
    client: Any,
    project_file: Path,
    tmp_path: Path,
    sources: list[StreamSource],
) -> None:
    _create_group(client)
    message_id = client.xadd(STREAM, {"key": "k", "ttl": "5"})
    script = tmp_path / "doomed.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from pathlib import Path
            from lockgate.service.catalog import load_catalog
            from lockgate.service.compose import Workspace
            from lockgate.service.config import Settings
            from lockgate.service.messages import message_sources
            from lockgate.service.project import parse

            project = parse(Path(sys.argv[1]))
            workspace = Workspace(Settings.from_env({}, home=Path(sys.argv[2])), project)
            (source,) = message_sources(workspace, load_catalog(project), "doomed", lambda: None)
            source.poll()
            """
        )
    )
    env = dict(os.environ, LOCKGATE_FAILPOINTS="message.before_ack:kill")
    done = subprocess.run(
        [sys.executable, str(script), str(project_file), str(workspace.settings.home)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -9, done.stderr  # SIGKILLed at the failpoint
    (run,) = _runs(workspace, "invalidate")  # its run was recorded ...
    assert run.trigger_key == _key(message_id)
    assert _pending(client) == 1  # ... but the message was never acknowledged

    b = _source(workspace, catalog, sources, "server-b", min_idle=0.05)
    time.sleep(0.1)
    assert b.poll() == []  # re-delivered: the runs exist, none is created

    assert [r.id for r in _runs(workspace, "invalidate")] == [run.id]
    assert len(_runs(workspace, "audit")) == 1
    assert _pending(client) == 0


def test_a_redelivered_message_whose_runs_exist_is_acknowledged_without_new_runs(
    workspace: Workspace, catalog: Catalog, client: Any, sources: list[StreamSource]
) -> None:
    _create_group(client)
    message_id = client.xadd(STREAM, {"key": "k", "ttl": "5"})
    client.xreadgroup(GROUP, "server-a", {STREAM: ">"}, count=10)
    first = {}
    for entry in catalog:  # server A recorded both runs, then lost its connection
        first[entry.pipeline.name] = enqueue(
            workspace,
            entry.pipeline,
            {"key": "k", **({"ttl": 5} if entry.pipeline.name == "invalidate" else {})},
            trigger=Trigger.MESSAGE,
            trigger_key=_key(message_id),
            pipeline_ref=entry.ref,
        ).run_id

    b = _source(workspace, catalog, sources, "server-b", min_idle=0.05)
    time.sleep(0.1)
    assert b.poll() == []
    assert [r.id for r in _runs(workspace, "invalidate")] == [first["invalidate"]]
    assert [r.id for r in _runs(workspace, "audit")] == [first["audit"]]
    assert _pending(client) == 0


# --- bad messages, group start, Redis failures -----------------------------------------------


def test_a_bad_message_is_dead_lettered_and_does_not_block_later_ones(
    workspace: Workspace,
    catalog: Catalog,
    client: Any,
    sources: list[StreamSource],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="lockgate.messages")
    source = _source(workspace, catalog, sources)
    source.start()
    assert source.ready.wait(10)
    bad = client.xadd(STREAM, {"key": "k1", "ttl": "soon"})  # audit can run it, invalidate not
    good = client.xadd(STREAM, {"key": "k2", "ttl": "7"})

    _wait("the good message's runs", lambda: len(_runs(workspace, "invalidate")) == 1)
    _wait("both audit runs", lambda: len(_runs(workspace, "audit")) == 2)
    _wait("every acknowledgement", lambda: _pending(client) == 0)
    (run,) = _runs(workspace, "invalidate")
    assert run.trigger_key == _key(good)
    ((_dead_id, letter),) = client.xrange(STREAM + ":dead")
    assert letter[b"lockgate.message_id"] == bad
    assert letter[b"lockgate.pipeline"] == b"invalidate"
    assert b"'ttl' expects int" in letter[b"lockgate.error"]
    assert letter[b"ttl"] == b"soon" and letter[b"key"] == b"k1"  # the original fields
    assert any("cannot start pipeline 'invalidate'" in r.getMessage() for r in caplog.records)


def test_a_new_group_starts_after_the_messages_already_in_the_stream(
    workspace: Workspace, catalog: Catalog, client: Any, sources: list[StreamSource]
) -> None:
    client.xadd(STREAM, {"key": "before-any-server", "ttl": "1"})
    source = _source(workspace, catalog, sources)
    assert source.poll() == []  # the group is created at `$`: history is not replayed
    later = client.xadd(STREAM, {"key": "after", "ttl": "1"})
    assert len(source.poll()) == 2
    assert [r.trigger_key for r in _runs(workspace, "invalidate")] == [_key(later)]


def test_messages_sent_while_no_server_runs_wait_for_the_next_one(
    workspace: Workspace, catalog: Catalog, client: Any, sources: list[StreamSource]
) -> None:
    first = _source(workspace, catalog, sources, "server-a")
    first.poll()
    first.close()
    while_down = client.xadd(STREAM, {"key": "k", "ttl": "1"})
    second = _source(workspace, catalog, sources, "server-b")
    assert len(second.poll()) == 2
    assert [r.trigger_key for r in _runs(workspace, "invalidate")] == [_key(while_down)]


def test_close_stops_promptly_and_leaves_the_group(
    workspace: Workspace, catalog: Catalog, client: Any, sources: list[StreamSource]
) -> None:
    source = _source(workspace, catalog, sources, "server-a", block_ms=500)
    source.start()
    assert source.ready.wait(10)
    names = [c["name"] for c in client.xinfo_consumers(STREAM, GROUP)]
    assert names == [b"server-a"]
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 1.5
    assert source._thread is not None and not source._thread.is_alive()
    assert client.xinfo_consumers(STREAM, GROUP) == []  # nothing pending: no stale consumer


def test_redis_down_is_logged_and_retried_until_it_is_back(
    tmp_path: Path,
    redis_server: int,
    sources: list[StreamSource],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import redis

    caplog.set_level(logging.WARNING, logger="lockgate.messages")
    port = free_port()
    config = _write_project(tmp_path / "offline", f"redis://127.0.0.1:{port}/0")
    ws = Workspace(Settings.from_env({}, home=tmp_path / "home2"), parse(config))
    try:
        source = _source(ws, load_catalog(ws.project), sources)
        source.start()

        def failures() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == "lockgate.messages"]

        _wait("a logged connection failure", lambda: bool(failures()))
        assert "retrying in" in failures()[0]
        assert source._thread is not None and source._thread.is_alive()

        process, _ = start_redis(tmp_path, port=port)  # where the source keeps knocking
        try:
            assert source.ready.wait(15), "the source did not reconnect"
            conn = redis.Redis(port=port)
            message_id = conn.xadd(STREAM, {"key": "k", "ttl": "1"})
            _wait("the run", lambda: len(_runs(ws, "invalidate")) == 1)
            assert _runs(ws, "invalidate")[0].trigger_key == _key(message_id)
            conn.close()
            source.close()
        finally:
            stop_redis(process)
    finally:
        ws.close()


def test_without_the_redis_package_on_message_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _write_project(tmp_path / "project", "redis://127.0.0.1:6379/0")
    ws = Workspace(Settings.from_env({}, home=tmp_path / "home"), parse(config))
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'lockgate\[redis\]'") as caught:
        message_sources(ws, load_catalog(ws.project), "server-a", lambda: None)
    assert "pipeline 'invalidate' triggers on_message" in str(caught.value)
    ws.close()


def test_a_project_without_message_triggers_needs_no_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "pipelines.py").write_text(
        "import lockgate as lg\n\n@lg.task\ndef t() -> int:\n    return 1\n\n"
        "@lg.pipeline\ndef plain():\n    t()\n"
    )
    (root / "lockgate.toml").write_text('[project]\npipelines = ["pipelines.py"]\n')
    ws = Workspace(Settings.from_env({}, home=tmp_path / "home3"), parse(root / "lockgate.toml"))
    monkeypatch.setitem(sys.modules, "redis", None)
    assert message_sources(ws, load_catalog(ws.project), "server-a", lambda: None) == []
    ws.close()
