"""Group fsync on SQLite: task transitions share fsyncs, nothing else waits for one.

What strace sees is the promise: with the default LOCKGATE_DB_SYNC_INTERVAL a
chain of tasks commits once per task but fsyncs its WAL a few times in all,
and the run's end fsyncs everything before the command returns; with 0 every
commit is fsynced. A commit that skipped its fsync is synced by the
background thread within the interval, and that thread also keeps the WAL
from growing without bound.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lockgate as lg
from lockgate.errors import ConfigError
from lockgate.service.config import Settings
from lockgate.stores.metadata.walsync import WalSyncer

TASKS = 60
AUTOCHECKPOINT_BYTES = 1000 * (4096 + 24)  # SQLite's default: 1,000 pages

#: Variables of the test's environment the traced process must not inherit.
_SETTINGS = ("LOCKGATE_DB_URL", "LOCKGATE_CONFIG", "LOCKGATE_DB_SYNC_INTERVAL", "LOCKGATE_HOME")

CHAIN = textwrap.dedent(
    f"""
    import sys
    import lockgate as lg

    @lg.task
    def step(previous: int) -> int:
        return previous + 1

    @lg.pipeline
    def chain():
        value = step(0)
        for _ in range({TASKS} - 1):
            value = step(value)
        return value

    result = lg.run(chain, executor="inline").raise_for_status()
    print("RESULT", result.output(), flush=True)
    """
)


def _strace() -> str:
    strace = shutil.which("strace")
    if strace is None:
        if os.environ.get("CI") == "true":
            pytest.fail("strace is not installed; CI needs it (apt install strace)")
        pytest.skip("strace is not installed")
    return strace


def _trace(tmp_path: Path, script: str, env: dict[str, str]) -> list[str]:
    """Run `script` under strace; the WAL's writes and fsyncs and stdout writes, in order."""
    source, trace = tmp_path / "script.py", tmp_path / "trace"
    source.write_text(script)
    command = [
        _strace(),
        "-f",
        "-y",
        "-o",
        str(trace),
        "-e",
        "trace=fsync,fdatasync,pwrite64,write",
        sys.executable,
        str(source),
    ]
    clean = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    result = subprocess.run(
        command, capture_output=True, text=True, env={**clean, **env}, timeout=120
    )
    if result.returncode != 0 and "ptrace" in result.stderr:
        pytest.skip(f"strace cannot trace here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr[-2000:]
    return [
        line
        for line in trace.read_text().splitlines()
        if "-wal>" in line or re.search(r"\bwrite\(1<", line)
    ]


def _wal_fsyncs(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if "sync(" in line and "-wal>" in line]


def _wal_writes(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if "pwrite64(" in line and "-wal>" in line]


def test_a_chain_shares_wal_fsyncs_and_its_end_is_synced_before_it_returns(tmp_path: Path):
    # A long interval: the background thread's fsyncs (one per interval while the
    # run goes on) would make the count depend on how busy the machine is.
    env = {"LOCKGATE_HOME": str(tmp_path / "home"), "LOCKGATE_DB_SYNC_INTERVAL": "30"}
    lines = _trace(tmp_path, CHAIN, env)
    fsyncs, writes = _wal_fsyncs(lines), _wal_writes(lines)
    # Every task commits (its attempt is queued before it runs); the fsyncs are the
    # new database's migrations, the run's creation, start and end, and checkpoints.
    assert len(writes) > TASKS
    assert len(fsyncs) < TASKS // 4, f"{len(fsyncs)} fsyncs of the WAL for {TASKS} tasks"
    # The run's end commits with a full sync: nothing is left unsynced when lg.run returns.
    result_printed = next(i for i, line in enumerate(lines) if "RESULT" in line)
    last_write = max(i for i in writes if i < result_printed)
    assert any(last_write < i < result_printed for i in fsyncs)


def test_a_zero_sync_interval_fsyncs_every_commit(tmp_path: Path):
    env = {"LOCKGATE_HOME": str(tmp_path / "home"), "LOCKGATE_DB_SYNC_INTERVAL": "0"}
    lines = _trace(tmp_path, CHAIN, env)
    assert len(_wal_fsyncs(lines)) >= TASKS


def test_the_syncer_fsyncs_a_deferred_commit_within_the_interval(tmp_path: Path):
    db = tmp_path / "x.db"
    script = textwrap.dedent(
        f"""
        import sqlite3, time
        from lockgate.stores.metadata.walsync import WalSyncer

        conn = sqlite3.connect({str(db)!r}, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        syncer = WalSyncer({str(db)!r}, 0.05)
        print("COMMIT", flush=True)
        conn.execute("INSERT INTO t VALUES (1)")
        syncer.deferred()
        time.sleep(3)  # the process is still alive: only the thread can have synced
        print("SLEPT", flush=True)
        """
    )
    lines = _trace(tmp_path, script, {})
    commit = next(i for i, line in enumerate(lines) if "COMMIT" in line)
    slept = next(i for i, line in enumerate(lines) if "SLEPT" in line)
    assert any(commit < i < slept for i in _wal_writes(lines))
    assert any(commit < i < slept for i in _wal_fsyncs(lines)), lines[commit:slept]


def test_the_syncer_does_nothing_without_a_deferred_commit_and_survives_a_missing_wal(
    tmp_path: Path,
):
    syncer = WalSyncer(str(tmp_path / "none.db"), 0.01)
    syncer.sync()  # nothing pending: no file needed
    syncer.deferred()
    syncer.close()  # the WAL never existed: nothing to sync, no error


def test_the_wal_stays_bounded_over_a_long_chain(tmp_path: Path):
    @lg.task
    def step(previous: int) -> int:
        return previous + 1

    @lg.pipeline
    def long_chain():
        value = step(0)
        for _ in range(1499):
            value = step(value)
        return value

    workspace = lg.Workspace(Settings.from_env({"LOCKGATE_HOME": str(tmp_path / "home")}))
    result = lg.run(long_chain, executor="inline", workspace=workspace).raise_for_status()
    assert result.output() == 1500
    wal = tmp_path / "home" / "lockgate.db-wal"
    # Each task's commit appends ~20 pages (~80 KiB): without checkpoints the WAL
    # would pass 100 MiB here. SQLite's own stay on; the syncer's run ahead of them.
    assert wal.stat().st_size < 2 * AUTOCHECKPOINT_BYTES, wal.stat().st_size
    with sqlite3.connect(tmp_path / "home" / "lockgate.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        done = conn.execute("SELECT count(*) FROM task_runs WHERE state = 'succeeded'")
        assert done.fetchone()[0] == 1500


@pytest.mark.parametrize(("value", "expected"), [("0", 0.0), ("0.2", 0.2), ("1", 1.0)])
def test_the_sync_interval_is_read_from_the_environment(value: str, expected: float):
    settings = Settings.from_env({"LOCKGATE_DB_SYNC_INTERVAL": value}, home="/tmp/x")
    assert settings.db_sync_interval == expected


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon", " "])
def test_a_bad_sync_interval_names_the_variable(value: str):
    with pytest.raises(ConfigError, match="LOCKGATE_DB_SYNC_INTERVAL"):
        Settings.from_env({"LOCKGATE_DB_SYNC_INTERVAL": value}, home="/tmp/x")
