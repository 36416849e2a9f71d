"""`lockgate artifacts verify` re-hashes every recorded artifact and names the damage."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from lockgate.cli.main import cli

PIPELINE = """
import lockgate as lg


@lg.task
def big(n: int) -> bytes:
    return bytes(range(256)) * n  # well over the inline limit: a blob


@lg.task
def small(data: bytes) -> int:
    return len(data)  # a few bytes: kept inline in the database


@lg.pipeline
def two(n: int = 200):
    return small(big(n))
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LOCKGATE_HOME", str(tmp_path / "home"))
    for name in ("LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flow.py").write_text(PIPELINE)
    runner = CliRunner()
    for n in ("200", "300"):
        done = runner.invoke(cli, ["run", "flow.py:two", "-p", f"n={n}", "--executor", "inline"])
        assert done.exit_code == 0, done.output
    return tmp_path / "home"


def verify() -> tuple[int, dict]:
    done = CliRunner().invoke(cli, ["artifacts", "verify", "--json"])
    return done.exit_code, json.loads(done.stdout)


def blob_path(home: Path, sha256: str) -> Path:
    return home / "artifacts" / "sha256" / sha256[:2] / sha256


def test_a_sound_store_verifies(home: Path):
    code, report = verify()
    assert code == 0
    assert report["ok"] and report["problems"] == []
    assert report["checked"] == 4  # two blobs, two inline results


def test_corrupted_missing_and_tampered_inline_artifacts_are_each_named(home: Path):
    db = sqlite3.connect(home / "lockgate.db")
    blobs = [sha for (sha,) in db.execute("SELECT sha256 FROM artifacts WHERE inline IS NULL")]
    inline = [sha for (sha,) in db.execute("SELECT sha256 FROM artifacts WHERE inline IS NOT NULL")]
    assert len(blobs) == 2 and len(inline) == 2
    flipped, deleted = blobs
    path = blob_path(home, flipped)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    blob_path(home, deleted).unlink()
    with db:
        db.execute("UPDATE artifacts SET inline = ? WHERE sha256 = ?", (b"999", inline[0]))
    code, report = verify()
    assert code == 1 and not report["ok"]
    found = {p["uri"].rsplit("/", 1)[-1]: p for p in report["problems"]}
    assert set(found) == {flipped, deleted, inline[0]}
    assert found[flipped]["problem"] == "corrupted"
    assert found[deleted]["problem"] == "missing"
    assert found[inline[0]]["problem"] == "corrupted"
    for problem in found.values():
        (producer,) = problem["produced_by"]
        assert producer.startswith("r-") and producer.split()[1] in ("big", "small")
    table = CliRunner().invoke(cli, ["artifacts", "verify"])
    assert table.exit_code == 1
    assert f"corrupted lockgate://artifacts/sha256/{flipped}" in table.stdout
    assert f"missing lockgate://artifacts/sha256/{deleted}" in table.stdout
    assert "4 artifact(s) checked: 3 bad" in table.stdout
