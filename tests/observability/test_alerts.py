"""Alerts end to end: real runs on SQLite, rules from a real lockgate.toml, and a real
HTTP receiver on 127.0.0.1 that records every request it gets.

Time in the alert pass is passed in (`now=`), so retries and backoff are
stepped through without sleeping.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import lockgate as lg
from lockgate.cli.main import cli
from lockgate.errors import ConfigError
from lockgate.ports.alerts import DeliveryStatus
from lockgate.service import record, registry
from lockgate.service.alertrules import AlertRule
from lockgate.service.alerts import alert_pass
from lockgate.service.compose import Workspace
from lockgate.service.project import parse
from lockgate.stores.metadata.sql import SqlMetadataStore


class Receiver:
    """An HTTP server on loopback that answers with scripted codes and keeps each request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.codes: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"try later")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def rules_from(tmp_path: Path, text: str) -> tuple[AlertRule, ...]:
    path = tmp_path / "lockgate.toml"
    path.write_text(text)
    return parse(path).alerts


# --- pipelines that produce every alertable fact ------------------------------------


@lg.task
def broken() -> int:
    raise ValueError("disk on fire")


@lg.pipeline
def failing():
    return broken()


@lg.task(retries=3, retry_delay=0)
def hopeless() -> int:
    raise ConnectionError("upstream down")


@lg.pipeline
def stormy():
    return hopeless()


@lg.task
def score() -> dict:
    return {"accuracy": 0.5}


@lg.pipeline
def gated():
    return lg.gate(score(), {"accuracy": ">= 0.9"})


@lg.task
def nap() -> int:
    time.sleep(0.05)
    return 1


@lg.pipeline(sla="10ms")
def hurried():
    return nap()


@lg.task
def produce() -> lg.Dataset:
    return lg.Dataset("events", [1, 2, 3])


@lg.pipeline
def ingest():
    return produce()


@lg.task
def total(rows: list) -> int:
    return sum(rows)


@lg.pipeline(max_input_age="1ms", on_stale_input="warn")
def lenient():
    return total(lg.Dataset.ref("events"))


@lg.task
def train(weight: float) -> dict:
    return {"weight": weight}


@lg.task
def grade(model: dict) -> dict:
    return {"accuracy": model["weight"]}


@lg.pipeline
def register(weight: float = 1.0):
    model = train(weight)
    return lg.register(model, name="ranker", scores=grade(model))


def make_every_fact(workspace: Workspace) -> dict[str, str]:
    """Run pipelines that produce each alertable event; their run ids by event."""
    runs = {}
    for event, pipeline in (
        ("run_failed", failing),
        ("retry_storm", stormy),
        ("gate_failed", gated),
        ("sla_missed", hurried),
        ("ingest", ingest),
        ("stale_input", lenient),
    ):
        runs[event] = lg.run(pipeline, executor="inline", workspace=workspace).run_id
    for weight in (1.0, 2.0):
        lg.run(register, {"weight": weight}, executor="inline", workspace=workspace)
    for version in (1, 2):
        registry.promote(workspace, "ranker", version, "production", force=True, reason="test")
    registry.rollback(workspace, "ranker", "production", actor="cli:oncall", reason="bad v2")
    return runs


EVERY = ["run_failed", "gate_failed", "retry_storm", "sla_missed", "stale_input", "rollback"]


def test_every_event_reaches_its_rules_in_each_notifiers_shape(
    workspace: Workspace, receiver: Receiver, tmp_path: Path
) -> None:
    rules = rules_from(
        tmp_path,
        f"""
[[alerts]]
name = "everything"
on = {json.dumps(EVERY)}
notifier = "webhook"
url = "{receiver.url}/hook"

[[alerts]]
name = "chat"
on = ["run_failed"]
pipelines = ["failing"]
notifier = "slack"
url = "env:SLACK_URL"

[[alerts]]
name = "pager"
on = ["sla_missed", "retry_storm"]
notifier = "pagerduty"
url = "{receiver.url}/pd"
routing_key = "env:PD_KEY"
severity = "critical"
""",
    )
    runs = make_every_fact(workspace)
    env = {"SLACK_URL": f"{receiver.url}/slack", "PD_KEY": "R0UT1NG"}
    result = alert_pass(workspace.metadata, rules, env=env)
    assert result.failed_sends == 0

    hooks = receiver.bodies("/hook")
    by_event: dict[str, list[dict[str, Any]]] = {}
    for body in hooks:
        by_event.setdefault(body["event"], []).append(body)
    # The storm's run also failed: run_failed comes once per run, from two runs.
    assert {e: len(b) for e, b in by_event.items()} == {
        "run_failed": 2,
        "gate_failed": 1,
        "retry_storm": 1,
        "sla_missed": 1,
        "stale_input": 1,
        "rollback": 1,
    }
    failed = next(b for b in by_event["run_failed"] if b["run_id"] == runs["run_failed"])
    assert set(failed) == {
        "schema",
        "rule",
        "event",
        "summary",
        "severity",
        "pipeline",
        "run_id",
        "at",
        "details",
        "dedup_key",
        "attempt",
    }
    assert failed["schema"] == "lockgate.alert/1"
    assert failed["dedup_key"] == f"everything|{runs['run_failed']}|run_failed"
    assert failed["pipeline"] == "failing" and failed["attempt"] == 1
    assert "ValueError: disk on fire" in failed["summary"]
    (storm,) = by_event["retry_storm"]
    assert (storm["run_id"], storm["details"]["node"], storm["details"]["attempt"]) == (
        runs["retry_storm"],
        "hopeless",
        3,
    )
    (gate,) = by_event["gate_failed"]
    assert gate["run_id"] == runs["gate_failed"] and "accuracy" in gate["summary"]
    (sla,) = by_event["sla_missed"]
    assert sla["run_id"] == runs["sla_missed"] and sla["details"]["finished"] is True
    (stale,) = by_event["stale_input"]
    assert stale["run_id"] == runs["stale_input"] and "dataset:events@1" in stale["summary"]
    (rollback,) = by_event["rollback"]
    assert rollback["run_id"] is None and rollback["pipeline"] is None
    assert rollback["details"] == {
        "kind": "model",
        "name": "ranker",
        "alias": "production",
        "version": 1,
        "previous_version": 2,
        "actor": "cli:oncall",
        "reason": "bad v2",
    }

    (slack,) = receiver.bodies("/slack")  # only the pipeline the rule names
    assert slack["text"].startswith("lockgate: run failed: run ")
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "context"]
    assert runs["run_failed"] in slack["blocks"][2]["elements"][0]["text"]

    pages = receiver.bodies("/pd")
    assert sorted(p["payload"]["class"] for p in pages) == ["retry_storm", "sla_missed"]
    page = next(p for p in pages if p["payload"]["class"] == "sla_missed")
    assert page["routing_key"] == "R0UT1NG" and page["event_action"] == "trigger"
    assert page["dedup_key"] == f"pager|{runs['sla_missed']}|sla_missed"
    assert page["payload"]["severity"] == "critical"
    assert page["payload"]["source"] == "lockgate/hurried"
    assert page["payload"]["custom_details"]["run_id"] == runs["sla_missed"]
    assert all(r["headers"]["Content-Type"] == "application/json" for r in receiver.requests)


def test_a_command_notifier_gets_the_alert_on_stdin(workspace: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "alert.json"
    script = f"import sys; open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())"
    rules = rules_from(
        tmp_path,
        f"""
[[alerts]]
name = "script"
on = ["run_failed"]
notifier = "command"
command = {json.dumps([sys.executable, "-c", script])}
timeout = "20s"
""",
    )
    run_id = lg.run(failing, executor="inline", workspace=workspace).run_id
    assert alert_pass(workspace.metadata, rules).sent == 1
    body = json.loads(out.read_text())
    assert (body["event"], body["run_id"], body["rule"]) == ("run_failed", run_id, "script")


def test_failed_sends_are_retried_with_growing_backoff(
    workspace: Workspace, receiver: Receiver, tmp_path: Path
) -> None:
    rules = rules_from(
        tmp_path,
        f"""
[[alerts]]
name = "flaky"
on = ["run_failed"]
notifier = "webhook"
url = "{receiver.url}/hook"
backoff = "30s"
max_attempts = 4
""",
    )
    lg.run(failing, executor="inline", workspace=workspace)
    store = workspace.metadata
    receiver.codes = [500, 500, 200]
    t0 = time.time()
    alert_pass(store, rules, now=t0)
    (first,) = store.list_alerts()
    assert (first.attempts, first.status, first.last_error) == (1, "pending", "HTTP 500: try later")
    assert first.next_at == pytest.approx(t0 + 30)
    assert alert_pass(store, rules, now=t0 + 29).sent == 0  # not due yet
    assert len(receiver.requests) == 1
    alert_pass(store, rules, now=t0 + 30)
    (second,) = store.list_alerts()
    assert second.attempts == 2 and second.next_at == pytest.approx(t0 + 30 + 60)
    assert alert_pass(store, rules, now=t0 + 90).sent == 1
    (done,) = store.list_alerts()
    assert (done.status, done.attempts) == (DeliveryStatus.SENT, 3)
    assert [r["body"]["attempt"] for r in receiver.requests] == [1, 2, 3]
    assert len({r["body"]["dedup_key"] for r in receiver.requests}) == 1


def test_a_delivery_out_of_attempts_is_given_up_and_recorded(
    workspace: Workspace, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rules = rules_from(
        tmp_path,
        """
[[alerts]]
name = "nowhere"
on = ["run_failed"]
notifier = "webhook"
url = "env:HOOK_URL"
max_attempts = 2
""",
    )
    secret_url = f"http://127.0.0.1:{port}/T0KEN-s3cret"
    run_id = lg.run(failing, executor="inline", workspace=workspace).run_id
    t0 = time.time()
    alert_pass(workspace.metadata, rules, now=t0, env={"HOOK_URL": secret_url})
    alert_pass(workspace.metadata, rules, now=t0 + 60, env={"HOOK_URL": secret_url})
    (gone,) = workspace.metadata.list_alerts()
    assert (gone.status, gone.attempts) == (DeliveryStatus.FAILED, 2)
    assert "could not connect" in (gone.last_error or "")
    shown = json.dumps(record.build(workspace, run_id)["alerts"]) + repr(rules)
    assert "T0KEN-s3cret" not in shown and "env:HOOK_URL" in repr(rules)


def test_passes_run_twice_or_racing_send_once(
    workspace: Workspace, receiver: Receiver, tmp_path: Path
) -> None:
    rules = rules_from(
        tmp_path,
        f"""
[[alerts]]
name = "once"
on = ["run_failed"]
notifier = "webhook"
url = "{receiver.url}/hook"
""",
    )
    lg.run(failing, executor="inline", workspace=workspace)
    url = workspace.settings.db_url
    stores = [SqlMetadataStore(url) for _ in range(3)]
    barrier = threading.Barrier(len(stores))

    def race(store: SqlMetadataStore) -> None:
        barrier.wait()
        alert_pass(store, rules)

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alert_pass(workspace.metadata, rules)  # and once more, later
    for store in stores:
        store.close()
    assert len(receiver.requests) == 1
    assert len(workspace.metadata.list_alerts()) == 1


def test_a_rule_over_its_rate_limit_records_suppressed_deliveries(
    workspace: Workspace, receiver: Receiver, tmp_path: Path
) -> None:
    rules = rules_from(
        tmp_path,
        f"""
[[alerts]]
name = "calm"
on = ["run_failed"]
notifier = "webhook"
url = "{receiver.url}/hook"
rate_limit = 2
rate_window = "1h"
""",
    )
    for _ in range(3):
        lg.run(failing, executor="inline", workspace=workspace)
    result = alert_pass(workspace.metadata, rules)
    assert (result.enqueued, result.suppressed, result.sent) == (3, 1, 2)
    statuses = sorted(d.status.value for d in workspace.metadata.list_alerts())
    assert statuses == ["sent", "sent", "suppressed"]
    assert len(receiver.requests) == 2


def test_the_record_lists_a_runs_deliveries(
    workspace: Workspace, receiver: Receiver, tmp_path: Path
) -> None:
    rules = rules_from(
        tmp_path,
        f"""
[[alerts]]
name = "team"
on = ["run_failed", "retry_storm"]
notifier = "webhook"
url = "{receiver.url}/hook"
""",
    )
    run_id = lg.run(stormy, executor="inline", workspace=workspace).run_id
    alert_pass(workspace.metadata, rules)
    built = record.build(workspace, run_id)
    assert [(a["rule"], a["event"], a["status"], a["attempts"]) for a in built["alerts"]] == [
        ("team", "retry_storm", "sent", 1),
        ("team", "run_failed", "sent", 1),
    ]
    assert "retry_storm via rule team: sent" in record.to_markdown(built)


def test_lockgate_run_sends_alerts_without_a_server(
    receiver: Receiver, tmp_path: Path, home_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flows.py").write_text(
        "import lockgate as lg\n\n"
        "@lg.task\ndef boom() -> int:\n    raise RuntimeError('no')\n\n"
        "@lg.pipeline\ndef nightly():\n    return boom()\n"
    )
    (tmp_path / "lockgate.toml").write_text(
        f'[[alerts]]\nname = "cli"\non = ["run_failed"]\nnotifier = "webhook"\n'
        f'url = "{receiver.url}/hook"\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCKGATE_CONFIG", str(tmp_path / "lockgate.toml"))
    done = CliRunner().invoke(cli, ["run", "flows.py:nightly", "--executor", "inline", "--json"])
    assert done.exit_code == 1, done.output
    run_id = json.loads(done.output.strip().splitlines()[-1])["run_id"]
    (body,) = receiver.bodies("/hook")
    assert (body["event"], body["run_id"]) == ("run_failed", run_id)


@pytest.mark.parametrize(
    ("table", "line", "message"),
    [
        ('on = ["run_exploded"]\nnotifier = "webhook"\nurl = "http://x"', 5, "run_exploded"),
        ('on = ["run_failed"]\nnotifier = "webhook"', 6, "needs url"),
        ('on = ["run_failed"]\nnotifier = "email"', 6, "'email' is not one of"),
        ('on = ["run_failed"]\nnotifier = "slack"\nurl = "x"\nspeed = 1', 8, "'speed'"),
        ('on = ["run_failed"]\nnotifier = "command"\ncommand = []', 6, "needs command"),
        ('on = ["run_failed"]\nnotifier = "pagerduty"\nbackoff = "soon"', 7, "not a duration"),
    ],
)
def test_config_errors_name_the_file_and_line(
    tmp_path: Path, table: str, line: int, message: str
) -> None:
    # [[alerts]] is line 3 and its name line 4; the table's keys follow.
    path = tmp_path / "lockgate.toml"
    path.write_text('[project]\n\n[[alerts]]\nname = "a"\n' + table + "\n")
    with pytest.raises(ConfigError) as caught:
        parse(path)
    assert f"{path}:{line}: [[alerts]] #1" in str(caught.value)
    assert message in str(caught.value)


def test_the_server_loop_runs_the_alert_pass(receiver: Receiver, tmp_path: Path) -> None:
    from lockgate.server.daemon import Server, options_for
    from lockgate.service.config import Settings

    (tmp_path / "flows.py").write_text(
        "import lockgate as lg\n\n"
        "@lg.task\ndef boom() -> int:\n    raise RuntimeError('no')\n\n"
        "@lg.pipeline\ndef nightly():\n    return boom()\n"
    )
    config = tmp_path / "lockgate.toml"
    config.write_text(
        '[project]\npipelines = ["flows.py"]\n\n'
        f'[[alerts]]\nname = "srv"\non = ["run_failed"]\nnotifier = "webhook"\n'
        f'url = "{receiver.url}/hook"\n'
    )
    project = parse(config)
    workspace = Workspace(Settings.from_env({}, home=tmp_path / "home"), project=project)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Server(workspace, options_for(workspace, port=port))
    try:
        pipeline = server.state.catalog.get("nightly").pipeline
        run_id = lg.run(pipeline, executor="inline", workspace=workspace).run_id
        server.loop_once()
    finally:
        server.stop()
        workspace.close()
    (body,) = receiver.bodies("/hook")
    assert (body["event"], body["run_id"], body["pipeline"]) == ("run_failed", run_id, "nightly")
