"""`lockgate demo` (what `make demo` runs): the whole story on the embedded default.

One subprocess, as a newcomer runs it: the nightly eval passes its gate, its new
transcripts version fires the index rebuild through the data sensor, the
regressed candidate is rolled back by the canary and the good one promoted,
and every run's reliability record is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LOCKGATE = str(Path(sys.executable).with_name("lockgate"))


def _demo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    return subprocess.run(
        [LOCKGATE, "demo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_demo_tells_the_whole_story_and_leaves_records_and_a_project(tmp_path: Path):
    target = tmp_path / "demo"
    done = _demo("--dir", str(target), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    runs = [(r["pipeline"], r["trigger"], r["status"]) for r in summary["runs"]]
    assert runs == [
        ("nightly_eval", "cli", "succeeded"),
        ("index_rebuild", "sensor", "succeeded"),
        ("weekly_finetune", "cli", "gate_failed"),
        ("weekly_finetune", "cli", "succeeded"),
    ]
    assert [c["decision"] for c in summary["canaries"]] == ["rollback", "promote"]
    rollback, promote = summary["canaries"]
    assert rollback["candidate"] != promote["candidate"]
    nightly_gates = [g for g in summary["gates"] if g["run_id"] == summary["runs"][0]["run_id"]]
    assert nightly_gates and all(g["passed"] for g in nightly_gates)
    (router,) = [r for r in summary["routes"] if r["name"] == "ticket-router"]
    assert router["targets"] == {promote["candidate"]: 100.0}
    model = summary["models"]["ticket-router"]
    assert f"model:ticket-router@{model['production']}" == promote["candidate"]
    # Each run's record is on disk, and the last one holds the route decision.
    records = [Path(p) for p in summary["records"]]
    assert len(records) == 4 and all(p.is_file() for p in records)
    assert "ticket-router" in records[-1].read_text()
    # The demo directory is a project `lockgate` commands (and the UI) work on.
    shown = subprocess.run(
        [LOCKGATE, "runs", "--json"],
        cwd=target,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert len(json.loads(shown.stdout)) == 4


def test_the_demo_never_overwrites_a_directory_it_did_not_make(tmp_path: Path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    done = _demo("--dir", str(mine), cwd=tmp_path)
    assert done.returncode == 2
    assert "was not made by lockgate demo" in done.stderr
    assert (mine / "notes.txt").read_text() == "keep me"


def test_without_the_examples_the_demo_says_where_to_get_them(tmp_path: Path):
    done = _demo("--dir", str(tmp_path / "d"), "--examples", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert "lacks nightly_eval, index_rebuild, weekly_finetune" in done.stderr
    assert "--examples" in done.stderr
