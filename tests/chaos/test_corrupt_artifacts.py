"""F6: stored artifacts are corrupted behind lockgate's back.

Each iteration runs `b(make(0), make(1), make(2), make(3))` as a real
`lockgate run` on a SQLite home; every `make` returns a list big enough to be
stored as a blob (over the 16 KiB inline limit), and `b` is told to fail, so
the run ends failed with its four producers committed. Then a random,
non-empty subset of the blobs is damaged (one byte flipped, truncated,
deleted, or replaced by a symlink to a file elsewhere holding the same
bytes) and the scenario pins what lockgate does:

- `lockgate artifacts verify --json` exits 1 and names exactly the damaged
  blobs: `missing` for a deleted one, `corrupted` for the rest (a symlink is
  never followed, so it is corrupt even with the right bytes behind it);
- `lockgate resume RUN` (and `--no-cache`) does not heal: the producers'
  results are committed, so `b` is refused on reading its first damaged
  input, once (no retry, although `b` has retries left), with an error
  naming the input's URI; `b`'s code never runs, so the bad bytes never
  reach it;
- a new `lockgate run --no-cache` re-executes the producers, whose identical
  bytes replace the damaged blobs; `verify` is clean again and resuming the
  first run now succeeds (pinned in the first iteration). The checker passes
  for both runs.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from checker import check_run
from click.testing import CliRunner

from lockgate.cli.main import cli
from lockgate.service.config import Settings
from lockgate.stores.artifacts import DEFAULT_INLINE_LIMIT

PIPELINE = """
import os
import pathlib

import lockgate as lg

MARKS = pathlib.Path(os.environ["CHAOS_MARKS"])


def mark(name):
    with open(MARKS / name, "a") as handle:
        handle.write("x")


@lg.task
def make(i: int, n: int) -> list:
    mark(f"make{i}")
    return list(range(i * 1000000, i * 1000000 + n + i))


@lg.task(retries=1, retry_delay=0)
def b(x0: list, x1: list, x2: list, x3: list) -> int:
    mark("b")
    if (MARKS / "fail_b").exists():
        raise RuntimeError("b was told to fail")
    return sum(x0) + sum(x1) + sum(x2) + sum(x3)


@lg.pipeline
def fan(n: int = 3000):
    return b(make(0, n), make(1, n), make(2, n), make(3, n))
"""

PRODUCERS = ("make", "make_2", "make_3", "make_4")  # node ids, in b's argument order
DAMAGE = ("flip", "truncate", "delete", "symlink")
LOCKGATE = str(Path(sys.executable).with_name("lockgate"))


def lockgate(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOCKGATE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def count(marks: Path, name: str) -> int:
    path = marks / name
    return len(path.read_text()) if path.exists() else 0


def damage(blob: Path, how: str, rng: random.Random, elsewhere: Path) -> None:
    """Corrupt one blob file in place (as root; blobs are read-only to their owner)."""
    data = blob.read_bytes()
    if how == "symlink":
        elsewhere.write_bytes(data)  # the right bytes, but behind a link
        blob.unlink()
        blob.symlink_to(elsewhere)
        return
    if how == "delete":
        blob.unlink()
        return
    blob.chmod(0o644)
    if how == "flip":
        position = rng.randrange(len(data))
        changed = bytearray(data)
        changed[position] ^= 1 << rng.randrange(8)
        blob.write_bytes(bytes(changed))
    else:
        blob.write_bytes(data[: rng.randrange(len(data))])


def verify(workdir: Path, env: dict[str, str]) -> tuple[int, dict]:
    """`lockgate artifacts verify --json`, in this process (it spares an interpreter start)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        patch.setenv("LOCKGATE_HOME", env["LOCKGATE_HOME"])
        for name in ("LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_CONFIG"):
            patch.delenv(name, raising=False)
        done = CliRunner().invoke(cli, ["artifacts", "verify", "--json"])
    return done.exit_code, json.loads(done.stdout)


def b_attempts(db_path: Path, run_id: str) -> list[tuple]:
    db = sqlite3.connect(db_path)
    try:
        return db.execute(
            "SELECT at.number, at.state, at.error_type, at.error_message FROM attempts at "
            "JOIN task_runs tr ON at.task_run_id = tr.id "
            "WHERE tr.run_id = ? AND tr.node_id = 'b' ORDER BY at.number",
            (run_id,),
        ).fetchall()
    finally:
        db.close()


def one_iteration(
    workdir: Path, rng: random.Random, *, first_iteration: bool
) -> tuple[list[str], int, int]:
    """Run, damage, verify, resume (refused), heal, resume; (problems, duplicates, verified)."""
    problems: list[str] = []
    expect = problems.append
    workdir.mkdir()
    (workdir / "flow.py").write_text(PIPELINE)
    marks = workdir / "marks"
    marks.mkdir()
    (marks / "fail_b").touch()
    home = workdir / "home"
    env = {**os.environ, "LOCKGATE_HOME": str(home), "CHAOS_MARKS": str(marks)}
    for name in ("LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_FAILPOINTS"):
        env.pop(name, None)
    settings = Settings.from_env(env)
    # about 5 bytes of JSON per number: every output is a blob, never inline
    n = rng.randrange(DEFAULT_INLINE_LIMIT // 4, 40000)
    run = ("flow.py:fan", "-p", f"n={n}", "--executor", "inline", "--json")

    first = lockgate(env, workdir, "run", *run)
    if first.returncode != 1:
        return [f"first run exited {first.returncode}: {first.stdout} {first.stderr[-2000:]}"], 0, 0
    run_id = json.loads(first.stdout)["run_id"]
    db = sqlite3.connect(home / "lockgate.db")
    try:
        outputs = dict(
            db.execute("SELECT node_id, output_sha256 FROM task_runs WHERE run_id = ?", (run_id,))
        )
        inline = {
            sha for (sha,) in db.execute("SELECT sha256 FROM artifacts WHERE inline IS NOT NULL")
        }
    finally:
        db.close()
    shas = [outputs.get(node) for node in PRODUCERS]
    if None in shas or set(shas) & inline or len(set(shas)) != 4:
        return [f"producers' outputs are not four distinct blobs: {outputs}"], 0, 0

    chosen = sorted(rng.sample(range(4), rng.randint(1, 4)))
    damaged = {shas[i]: rng.choice(DAMAGE) for i in chosen}
    for sha, how in damaged.items():
        blob = home / "artifacts" / "sha256" / sha[:2] / sha
        damage(blob, how, rng, workdir / f"copy-{sha[:12]}")
    label = {sha[:12]: how for sha, how in damaged.items()}

    # verify names exactly the damaged blobs, each with the right kind, and exits 1
    code, report = verify(workdir, env)
    found = {p["uri"].rsplit("/", 1)[-1]: p["problem"] for p in report["problems"]}
    wanted = {sha: "missing" if how == "delete" else "corrupted" for sha, how in damaged.items()}
    if code != 1 or report["ok"] or found != wanted:
        expect(f"verify exited {code} and found {found}, expected {wanted} ({label})")

    # resuming does not heal: b is refused on its first damaged input, once, without running
    (marks / "fail_b").unlink()
    b_before = count(marks, "b")
    first_bad = shas[chosen[0]]
    uri = f"lockgate://artifacts/sha256/{first_bad}"
    error_type = (
        "lockgate.errors.ArtifactNotFoundError"
        if damaged[first_bad] == "delete"
        else "lockgate.errors.ArtifactCorrupted"
    )
    attempts_before = len(b_attempts(home / "lockgate.db", run_id))
    # --no-cache (what docs/failures.md once suggested) heals nothing either; pinned once
    for flags in ((), ("--no-cache",)) if first_iteration else ((),):
        resumed = lockgate(env, workdir, "resume", run_id, "--executor", "inline", "--json", *flags)
        outcome = json.loads(resumed.stdout or "{}")
        if resumed.returncode != 1 or outcome.get("status") != "failed":
            expect(f"resume {flags} over damaged inputs: {resumed.stdout} {resumed.stderr[-1000:]}")
        attempts = b_attempts(home / "lockgate.db", run_id)
        attempts_before += 1
        if len(attempts) != attempts_before:
            expect(f"resume {flags}: b has {len(attempts)} attempts, expected {attempts_before}")
        _, state, kind, message = attempts[-1]
        prefix = f"cannot load input of node 'b' (run {run_id}): "
        if state != "failed" or kind != error_type or not (message or "").startswith(prefix):
            expect(
                f"resume {flags}: b's attempt is {state} {kind}: {message!r}, expected "
                f"{error_type} starting {prefix!r} ({label})"
            )
        if uri not in (message or "") or uri not in (outcome.get("error") or ""):
            expect(f"resume {flags}: the error does not name {uri}: {message!r}")
    if count(marks, "b") != b_before:
        expect("b's code ran although an input was damaged")
    if [count(marks, f"make{i}") for i in range(4)] != [1, 1, 1, 1]:
        expect("a resume executed a committed producer again")
    stale = check_run(settings, run_id, status="failed")
    torn = {sha for sha, how in damaged.items() if how in ("flip", "truncate")}
    expected_blob_problems = {
        p
        for p in stale.problems
        if "does not hash to its name" in p and p.split("/")[-1].split()[0] in torn
    }
    if set(stale.problems) != expected_blob_problems or len(expected_blob_problems) != len(torn):
        expect(
            f"checker before healing: {stale.problems}, expected exactly the torn {sorted(torn)}"
        )

    # a new run re-executes the producers; their bytes replace the damaged blobs
    heal = lockgate(env, workdir, "run", *run[:-1], "--no-cache", "--json")
    healed = json.loads(heal.stdout or "{}")
    if heal.returncode != 0 or healed.get("status") != "succeeded":
        return [*problems, f"healing run: {heal.stdout} {heal.stderr[-2000:]}"], 0, 0
    code, report = verify(workdir, env)
    if code != 0 or not report["ok"]:
        expect(f"verify after the healing run exited {code}: {report}")
    for sha in damaged:
        blob = home / "artifacts" / "sha256" / sha[:2] / sha
        if blob.is_symlink() or not blob.is_file():
            expect(f"blob {sha[:12]} ({label[sha[:12]]}) is still not a regular file")
    status = "failed"
    if first_iteration:  # once is enough to pin it; it keeps the short run short
        resumed = lockgate(env, workdir, "resume", run_id, "--executor", "inline", "--json")
        status = json.loads(resumed.stdout or "{}").get("status", "")
        if resumed.returncode != 0 or status != "succeeded":
            expect(f"resume after healing: {resumed.stdout} {resumed.stderr[-1000:]}")
    verdict = check_run(settings, run_id, status=status)
    verdict.add(check_run(settings, healed["run_id"], status="succeeded"))
    problems += verdict.problems
    return problems, verdict.duplicates, verdict.verified


@pytest.mark.timeout(1200)  # the full (make chaos) size
@pytest.mark.scenario("7. corrupted artifacts: detected, verified, never read")
def test_corrupted_blobs_are_found_refused_on_read_and_healed_by_a_new_run(
    chaos, tmp_path: Path
) -> None:
    rng = chaos.rng()
    for i in range(chaos.size(2, 20)):
        problems, duplicates, verified = one_iteration(
            tmp_path / f"it{i}", rng, first_iteration=i == 0
        )
        chaos.record(problems, duplicates=duplicates, verified=verified)
        shutil.rmtree(tmp_path / f"it{i}", ignore_errors=True)
    chaos.check()
