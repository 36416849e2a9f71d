"""F5: the artifact disk fills up while a task's output is being written.

Each iteration runs `a -> big -> c` as a real `lockgate run` on a SQLite home
whose artifact root is a small tmpfs, filled beforehand so that `a`'s output
fits and `big`'s (a few MB, as bytes or as a streamed numpy array) does not.
The attempt of `big` must fail with `ArtifactStoreFull` naming the node, the
run and the root; nothing partial may be visible in the store (no temp file,
no blob but whole ones); the database and `a`'s committed output stay intact.
Then the space is freed and `lockgate resume RUN` finishes the run without
executing `a` again. Sizes, the free space left and the kind of output come
from the scenario's seeded random source.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from checker import check_run

from lockgate.service.config import Settings

PIPELINE = """
import os
import pathlib

import lockgate as lg

MARKS = pathlib.Path(os.environ["CHAOS_MARKS"])


def mark(name):
    with open(MARKS / name, "a") as handle:
        handle.write("x")


@lg.task
def a() -> list:
    mark("a")
    return list(range(5000))  # about 24 KB of JSON: a blob, written before the disk fills


@lg.task
def big(values: list, size: int, kind: str):
    mark("big")
    if kind == "npy":
        import numpy as np

        return np.full(size // 8, float(len(values)))  # streamed to the store
    return bytes([len(values) % 251]) * size


@lg.task
def c(data) -> int:
    mark("c")
    return len(data)


@lg.pipeline
def chain(size: int = 3000000, kind: str = "bytes"):
    return c(big(a(), size, kind))
"""

LOCKGATE = str(Path(sys.executable).with_name("lockgate"))
MOUNT_SIZE = 8 << 20


@contextlib.contextmanager
def small_tmpfs(mountpoint: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs at `mountpoint`, unmounted afterwards.

    Skipped where mounting is not permitted, except as root under CI=true:
    there the scenario must run, so a failing mount fails the test.
    """
    mountpoint.mkdir(parents=True)
    must_run = os.environ.get("CI") == "true" and os.geteuid() == 0
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8); F5 runs as root in CI")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={MOUNT_SIZE}", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        reason = f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}"
        if must_run:
            pytest.fail(f"{reason} (CI=true and root: the disk-full scenario must run)")
        pytest.skip(reason)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(mountpoint: Path, leave: int) -> Path:
    """Write a filler file so that about `leave` bytes stay free on the mount."""
    filler = mountpoint / "filler"
    stat = os.statvfs(mountpoint)
    free = stat.f_bavail * stat.f_frsize
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return filler


def lockgate(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOCKGATE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def count(marks: Path, name: str) -> int:
    path = marks / name
    return len(path.read_text()) if path.exists() else 0


def store_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(blob files, everything else that is a file) under an artifact root."""
    blobs, other = [], []
    for path in sorted(root.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        is_blob = path.parent.parent.name == "sha256" and len(path.name) == 64
        (blobs if is_blob and path.is_file() else other).append(path)
    return blobs, other


def one_iteration(workdir: Path, mountpoint: Path, rng_pick: dict) -> tuple[list[str], object]:
    """Run, fail for lack of space, free it, resume; return (problems, verdicts)."""
    problems: list[str] = []
    expect = problems.append
    workdir.mkdir()
    (workdir / "chain.py").write_text(PIPELINE)
    marks = workdir / "marks"
    marks.mkdir()
    root = mountpoint / "artifacts"
    env = {
        **os.environ,
        "LOCKGATE_HOME": str(workdir / "home"),
        "LOCKGATE_ARTIFACT_ROOT": str(root),
        "CHAOS_MARKS": str(marks),
    }
    for name in ("LOCKGATE_DB_URL", "LOCKGATE_FAILPOINTS", "LOCKGATE_LOGS_ROOT"):
        env.pop(name, None)
    settings = Settings.from_env(env)
    size, kind, leave, executor = (rng_pick[k] for k in ("size", "kind", "leave", "executor"))
    filler = fill(mountpoint, leave)

    ran = lockgate(
        env,
        workdir,
        "run",
        "chain.py:chain",
        "-p",
        f"size={size}",
        "-p",
        f"kind={kind}",
        "--executor",
        executor,
        "--workers",
        "1",
        "--json",
    )
    if ran.returncode != 1:
        return [f"run exited {ran.returncode}, expected 1: {ran.stdout} {ran.stderr[-2000:]}"], None
    outcome = json.loads(ran.stdout)
    run_id = outcome["run_id"]
    if outcome["status"] != "failed":
        expect(f"run {run_id} ended {outcome['status']}, expected failed")

    db = sqlite3.connect(workdir / "home" / "lockgate.db")
    try:
        states = dict(
            db.execute("SELECT node_id, state FROM task_runs WHERE run_id = ?", (run_id,))
        )
        if states != {"a": "succeeded", "big": "failed", "c": "skipped"}:
            expect(f"task states after the disk filled: {states}")
        attempts = db.execute(
            "SELECT at.number, at.state, at.error_type, at.error_message FROM attempts at "
            "JOIN task_runs tr ON at.task_run_id = tr.id "
            "WHERE tr.run_id = ? AND tr.node_id = 'big'",
            (run_id,),
        ).fetchall()
        a_output = db.execute(
            "SELECT output_sha256 FROM task_runs WHERE run_id = ? AND node_id = 'a'", (run_id,)
        ).fetchone()[0]
        recorded_blobs = {
            sha for (sha,) in db.execute("SELECT sha256 FROM artifacts WHERE inline IS NULL")
        }
    finally:
        db.close()
    if len(attempts) != 1:
        expect(f"big has attempts {attempts}, expected one (retries=0)")
    else:
        _, state, error_type, message = attempts[0]
        if state != "failed" or error_type != "lockgate.errors.ArtifactStoreFull":
            expect(f"big's attempt is {state} with {error_type}, expected ArtifactStoreFull")
        wanted = f"no space left writing output of node 'big' (run {run_id}) (~"
        for part in (wanted, f"at {root};", "then resume the run"):
            if part not in (message or ""):
                expect(f"big's error {message!r} does not say {part!r}")
    if run_id not in (outcome["error"] or "") or "no space left" not in (outcome["error"] or ""):
        expect(f"the run's error does not name the run and the cause: {outcome['error']!r}")

    # Nothing partial is visible: only whole blobs, each recorded; no temp file remains.
    blobs, other = store_files(root)
    if other:
        expect(f"left in the store after the failed write: {[str(p) for p in other]}")
    for blob in blobs:
        if hashlib.sha256(blob.read_bytes()).hexdigest() != blob.name:
            expect(f"torn blob visible: {blob}")
    if {b.name for b in blobs} != recorded_blobs or a_output not in recorded_blobs:
        expect(f"blobs {[b.name[:12] for b in blobs]} are not exactly a's recorded output")
    verdict = check_run(settings, run_id, status="failed")
    problems += [f"before resume: {p}" for p in verdict.problems]

    filler.unlink()
    resumed = lockgate(env, workdir, "resume", run_id, "--executor", executor, "--json")
    if resumed.returncode != 0 or json.loads(resumed.stdout or "{}").get("status") != "succeeded":
        expect(
            f"resume after freeing space: exit {resumed.returncode}: {resumed.stdout} "
            f"{resumed.stderr[-2000:]}"
        )
    after = check_run(settings, run_id, status="succeeded")
    problems += [f"after resume: {p}" for p in after.problems]
    runs = {name: count(marks, name) for name in ("a", "big", "c")}
    if runs != {"a": 1, "big": 2, "c": 1}:
        expect(f"executions {runs}, expected a once (committed before), big twice, c once")
    verify = lockgate(env, workdir, "artifacts", "verify", "--json")
    if verify.returncode != 0:
        expect(f"artifacts verify after resume: {verify.stdout}")
    after.add(verdict)
    return problems, after


@pytest.mark.timeout(600)  # the full (make chaos) size
@pytest.mark.scenario("6. disk full while writing an artifact")
def test_disk_full_fails_cleanly_and_resume_finishes_the_run(chaos, tmp_path: Path) -> None:
    rng = chaos.rng()
    with small_tmpfs(tmp_path / "small") as mountpoint:
        for i in range(chaos.size(1, 5)):
            size = rng.randrange(2 << 20, 5 << 20)
            pick = {
                "size": size - size % 8,
                "kind": "bytes" if i == 0 else rng.choice(["bytes", "npy"]),
                # a's ~24 KB blob fits; big's output fails somewhere in its write
                "leave": rng.randrange(64 << 10, size // 2),
                "executor": "process" if i == 0 else rng.choice(["process", "inline"]),
            }
            problems, verdict = one_iteration(tmp_path / f"it{i}", mountpoint, pick)
            problems = [f"{p} ({pick})" for p in problems]
            if verdict is None:
                chaos.record(problems)
            else:
                chaos.record(problems, duplicates=verdict.duplicates, verified=verdict.verified)
            shutil.rmtree(mountpoint / "artifacts", ignore_errors=True)
            for leftover in mountpoint.iterdir():
                leftover.unlink()
    chaos.check()
