"""The `lockgate` command line: exit codes, JSON output, and error messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lockgate.cli.main import cli

PIPELINES = """
import lockgate as lg

@lg.task(retries=1, retry_delay=0)
def ingest(day: str) -> list:
    return [{"day": day, "i": i} for i in range(3)]

@lg.task
def count(rows: list) -> int:
    return len(rows)

@lg.task
def explode(rows: list) -> int:
    raise ValueError("cannot featurize " + rows[0]["day"])

@lg.pipeline
def nightly(day: str = "2026-11-25", lr: float = 0.1):
    return count(ingest(day))

@lg.pipeline
def broken(day: str = "2026-11-25"):
    return count(explode(ingest(day)))


@lg.task
def needs_fix(rows: list) -> list:
    import pathlib

    if not pathlib.Path("fixed").exists():
        raise RuntimeError("not fixed yet")
    return rows


@lg.task(cache=True)
def expensive(rows: list, factor: int) -> int:
    return len(rows) * factor


@lg.pipeline
def fixable():
    return count(needs_fix(ingest("2026-11-25")))


@lg.pipeline
def cached(factor: int = 2):
    return expensive(ingest("2026-11-25"), factor)
"""


@pytest.fixture
def project(tmp_path: Path, home_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pipelines.py").write_text(PIPELINES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def last_json(text: str):
    return json.loads(text.strip().splitlines()[-1])


def test_run_succeeds_prints_the_run_id_and_exits_0(project):
    result = invoke("run", "pipelines.py:nightly", "-p", "day=2026-11-24")
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.stdout
    run_id = result.stdout.split()[1]
    assert run_id.startswith("r-")
    assert "output: 3" in result.stdout  # small JSON results are printed
    shown = last_json(invoke("show", run_id, "--json").stdout)
    assert shown["run"]["params"] == {"day": "2026-11-24", "lr": 0.1}
    assert shown["run"]["trigger"] == "cli"


def test_progress_names_every_node(project):
    result = invoke("run", "pipelines.py:nightly")
    assert "ingest running" in result.stderr and "count succeeded" in result.stderr


def test_failed_run_exits_1_and_says_what_failed(project):
    result = invoke("run", "pipelines.py:broken")
    assert result.exit_code == 1
    assert "failed" in result.stdout
    assert "ValueError: cannot featurize 2026-11-25" in result.stdout
    assert "lockgate show r-" in result.stdout


def test_run_json_ends_with_one_object_also_on_failure(project):
    ok = invoke("run", "pipelines.py:nightly", "--json")
    assert ok.exit_code == 0
    assert last_json(ok.stdout)["status"] == "succeeded"
    failed = invoke("run", "pipelines.py:broken", "--json")
    assert failed.exit_code == 1
    data = last_json(failed.stdout)
    assert data["status"] == "failed" and data["run_id"].startswith("r-")
    assert "cannot featurize" in data["error"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "pipelines.py:nightly", "-p", "epochs=3"], "no parameter 'epochs'"),
        (["run", "pipelines.py:nightly", "-p", "lr=fast"], "'lr' expects float"),
        (["run", "pipelines.py:nightly", "-p", "dayx"], "NAME=VALUE"),
        (["run", "missing.py:nightly"], "no such file"),
        (["run", "pipelines.py:nightyl"], "Did you mean 'nightly'?"),
        (["run", "pipelines.py"], "expected PATH:PIPELINE"),
        (
            ["graph", "pipelines.py:nope"],
            "Pipelines defined there: broken, cached, fixable, nightly",
        ),
        (["show", "r-does-not-exist"], "no run 'r-does-not-exist'"),
        (["artifacts", "show", "../../etc/passwd"], "not a valid artifact key"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(project, args, expected):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_definition_errors_exit_2(project):
    (project / "bad.py").write_text(
        "import lockgate as lg\n"
        "@lg.task\ndef t():\n    return [1]\n"
        "@lg.pipeline\ndef p():\n    rows = t()\n    if rows:\n        return rows\n"
    )
    result = invoke("run", "bad.py:p")
    assert result.exit_code == 2
    assert "TracingError" in result.stderr and "control flow" in result.stderr
    (project / "crash.py").write_text("import lockgate as lg\nraise RuntimeError('oops')\n")
    result = invoke("graph", "crash.py:p")
    assert result.exit_code == 2
    assert "importing" in result.stderr and "RuntimeError: oops" in result.stderr
    assert "line 2" in result.stderr


def test_duplicate_pipeline_names_exit_2(project):
    (project / "dupes.py").write_text(
        "import lockgate as lg\n"
        "@lg.task\ndef t():\n    return 1\n"
        "@lg.pipeline(name='nightly')\ndef a():\n    return t()\n"
        "@lg.pipeline(name='nightly')\ndef b():\n    return t()\n"
    )
    result = invoke("run", "dupes.py:nightly")
    assert result.exit_code == 2
    assert "DuplicatePipelineError" in result.stderr and "two pipelines named" in result.stderr


def test_runs_and_show(project):
    invoke("run", "pipelines.py:nightly")
    invoke("run", "pipelines.py:broken")
    runs = last_json(invoke("runs", "--json").stdout)
    assert [r["pipeline"] for r in runs] == ["broken", "nightly"]
    assert [r["status"] for r in runs] == ["failed", "succeeded"]
    assert (
        last_json(invoke("runs", "--json", "--status", "failed").stdout)[0]["pipeline"] == "broken"
    )
    table = invoke("runs").stdout
    assert runs[0]["run_id"] in table and runs[1]["run_id"] in table

    details = last_json(invoke("show", runs[0]["run_id"], "--json").stdout)
    nodes = {n["id"]: n for n in details["nodes"]}
    assert nodes["ingest"]["state"] == "succeeded"
    assert nodes["explode"]["state"] == "failed" and nodes["count"]["state"] == "skipped"
    attempt = nodes["ingest"]["attempts"][0]
    assert nodes["ingest"]["attempt_count"] == 1
    assert attempt["queued_at"] <= attempt["started_at"] <= attempt["finished_at"]
    assert nodes["explode"]["attempts"][0]["error"] == "ValueError: cannot featurize 2026-11-25"
    tree = invoke("show", runs[0]["run_id"][:-2]).stdout
    assert "explode" in tree and "skipped" in tree and "attempts 1" in tree


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("text", "count  <- ingest"), ("dot", '"ingest" -> "count";'), ("mermaid", "n0 --> n1")],
)
def test_graph_formats(project, fmt, expected):
    result = invoke("graph", "pipelines.py:nightly", "--format", fmt)
    assert result.exit_code == 0
    assert expected in result.stdout


def test_artifacts_list_show_get(project, tmp_path):
    run_id = last_json(invoke("run", "pipelines.py:nightly", "--json").stdout)["run_id"]
    listed = last_json(invoke("artifacts", "list", "--json").stdout)
    rows = {a["type"]: a for a in listed}
    assert set(rows) == {"builtins.list", "builtins.int"}
    assert {a["stored"] for a in listed} == {"inline"}  # small results live in the database
    assert "inline" in invoke("artifacts", "list").stdout
    rows_uri = rows["builtins.list"]["uri"]
    shown = last_json(invoke("artifacts", "show", rows_uri, "--json").stdout)
    assert shown["produced_by"] == [{"run_id": run_id, "node": "ingest", "map_index": None}]
    assert shown["consumed_by"] == [{"run_id": run_id, "node": "count", "map_index": None}]
    fetched = invoke("artifacts", "get", rows_uri)
    assert json.loads(fetched.stdout_bytes) == [
        {"day": "2026-11-25", "i": 0},
        {"day": "2026-11-25", "i": 1},
        {"day": "2026-11-25", "i": 2},
    ]
    target = tmp_path / "count.json"
    invoke("artifacts", "get", "sha256:" + rows["builtins.int"]["sha256"], "-o", str(target))
    assert target.read_text() == "3"
    missing = invoke("artifacts", "show", "0" * 64)
    assert missing.exit_code == 1 and "no artifact" in missing.stderr


def test_db_upgrade_is_idempotent(project):
    from lockgate.stores.metadata.schema import SCHEMA_REVISION

    first = invoke("db", "upgrade")
    assert first.exit_code == 0 and f"schema revision {SCHEMA_REVISION}" in first.stdout
    second = invoke("db", "upgrade")
    assert f"already at schema revision {SCHEMA_REVISION}" in second.stdout


def test_the_installed_script_exit_codes(project):
    script = Path(sys.executable).with_name("lockgate")
    ok = subprocess.run(
        [script, "run", "pipelines.py:nightly", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [script, "run", "pipelines.py:broken", "--json"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and last_json(bad.stdout)["status"] == "failed"
    usage = subprocess.run(
        [script, "run", "pipelines.py:nightly", "-p", "x=1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 2 and "no parameter 'x'" in usage.stderr


def test_resume_continues_a_failed_run_under_the_same_id(project):
    failed = invoke("run", "pipelines.py:fixable", "--json")
    run_id = last_json(failed.stdout)["run_id"]
    assert failed.exit_code == 1
    (project / "fixed").touch()
    resumed = invoke("resume", run_id[:-3], "--json")
    assert resumed.exit_code == 0, resumed.output
    assert last_json(resumed.stdout) == {
        "run_id": run_id,
        "status": "succeeded",
        "pipeline": "fixable",
        "error": None,
    }
    nodes = {n["id"]: n for n in last_json(invoke("show", run_id, "--json").stdout)["nodes"]}
    assert nodes["ingest"]["attempt_count"] == 1  # committed before the failure: not re-run
    assert [a["state"] for a in nodes["needs_fix"]["attempts"]] == ["failed", "succeeded"]
    again = invoke("resume", run_id)
    assert again.exit_code == 2 and "already succeeded" in again.stderr


def test_explain_and_no_cache_from_the_command_line(project):
    invoke("run", "pipelines.py:cached", "--executor", "inline")
    hit = last_json(invoke("run", "pipelines.py:cached", "--json").stdout)["run_id"]
    explained = invoke("explain", hit, "expensive")
    assert explained.exit_code == 0 and "hit: reused the result" in explained.stdout
    bypass = last_json(invoke("run", "pipelines.py:cached", "--no-cache", "--json").stdout)
    assert "--no-cache" in invoke("explain", bypass["run_id"], "expensive").stdout
    changed = last_json(invoke("run", "pipelines.py:cached", "-p", "factor=3", "--json").stdout)
    report = last_json(invoke("explain", changed["run_id"], "expensive", "--json").stdout)
    assert report["verdict"] == "miss"
    assert report["differences"] == ["argument 1: value 2 -> value 3"]
    shown = last_json(invoke("show", hit, "--json").stdout)
    assert {n["id"]: n["state"] for n in shown["nodes"]}["expensive"] == "cached"


def test_workers_and_executor_options_are_checked(project):
    bad = invoke("run", "pipelines.py:nightly", "--workers", "0")
    assert bad.exit_code == 2 and "--workers" in bad.output
    ok = invoke("run", "pipelines.py:nightly", "--workers", "1", "--json")
    assert ok.exit_code == 0


def test_every_command_module_is_reachable_by_name():
    # Commands in other modules load lazily by name: one missing from the map
    # would silently vanish from `lockgate --help`.
    import click

    from lockgate.cli import audit, cadences, demo, gateway, lifecycle, main, observe, routes

    modules = (audit, cadences, demo, gateway, lifecycle, observe, routes)
    defined = {c.name for m in modules for c in m.COMMANDS}
    assert defined == set(main.LAZY_COMMANDS)
    ctx = click.Context(cli)
    for name in defined:
        assert cli.get_command(ctx, name).name == name
    listed = invoke("--help").stdout
    assert all(name in listed for name in defined)
