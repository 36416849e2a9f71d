"""F8/F9 at the level of a whole run: hung, out-of-memory and crashing tasks.

One pipeline on the process executor holds four independent tasks:

- `hung` (timeout=1 s) ignores SIGTERM, starts grandchildren and sleeps forever;
- `hog` (`resources={"memory": "256MiB"}`) allocates far more than that;
- `flaky` (retries=1) calls `os._exit(3)` on its first attempt, then succeeds;
- `healthy` just returns.

Each iteration runs it as a real `lockgate run`, every process it starts
tagged with an environment variable. The run must end failed (because of
`hung` and `hog`) with each attempt's recorded error saying what happened
(`timed out after 1 s`, `exceeded memory limit 256 MiB`, `worker exited
with code 3`); `flaky` and `healthy` succeed; no tagged process survives
(the grandchildren of the hung task included; a zombie counts as dead, since
this container's init does not reap orphans); and the checker passes for a
failed run. How many grandchildren, how many workers and how big the
allocations are come from the scenario's seeded random source.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from checker import check_run

from lockgate.service.config import Settings

PIPELINE = """
import os
import pathlib
import signal
import subprocess
import time

import lockgate as lg

MARKS = pathlib.Path(os.environ["CHAOS_MARKS"])


def mark(name):
    with open(MARKS / name, "a") as handle:
        handle.write("x")


@lg.task(timeout=1)
def hung(children: int) -> None:
    mark("hung")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pids = [os.getpid()]
    for _ in range(children):
        pids.append(subprocess.Popen(["sleep", "1000"]).pid)
    (MARKS / "hung.pids").write_text(" ".join(map(str, pids)))
    while True:
        time.sleep(0.05)


@lg.task(resources={"memory": "256MiB"})
def hog(chunk_mib: int) -> int:
    mark("hog")
    chunks = []
    for _ in range(16384 // chunk_mib):  # up to 16 GiB of address space
        chunks.append(bytes(chunk_mib * 2**20))
    return len(chunks)


@lg.task(retries=1, retry_delay=0)
def flaky() -> str:
    mark("flaky")
    if lg.current().attempt == 1:
        os._exit(3)
    return "recovered"


@lg.task
def healthy() -> int:
    mark("healthy")
    return 42


@lg.pipeline
def faults(children: int = 1, chunk_mib: int = 64):
    return [hung(children), hog(chunk_mib), flaky(), healthy()]
"""

LOCKGATE = str(Path(sys.executable).with_name("lockgate"))


def tagged(tag: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment carries `tag`."""
    found = []
    for process in psutil.process_iter():
        try:
            if (
                process.environ().get("LOCKGATE_TEST_TAG") == tag
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def attempts_by_node(db_path: Path, run_id: str) -> tuple[dict[str, str], dict[str, list[tuple]]]:
    db = sqlite3.connect(db_path)
    try:
        states = dict(
            db.execute("SELECT node_id, state FROM task_runs WHERE run_id = ?", (run_id,))
        )
        attempts: dict[str, list[tuple]] = {}
        for node, number, state, kind, message in db.execute(
            "SELECT tr.node_id, at.number, at.state, at.error_type, at.error_message "
            "FROM attempts at JOIN task_runs tr ON at.task_run_id = tr.id "
            "WHERE tr.run_id = ? ORDER BY tr.node_id, at.number",
            (run_id,),
        ):
            attempts.setdefault(node, []).append((number, state, kind, message))
    finally:
        db.close()
    return states, attempts


def one_iteration(workdir: Path, rng: random.Random) -> tuple[list[str], int, int]:
    problems: list[str] = []
    expect = problems.append
    workdir.mkdir()
    (workdir / "faults.py").write_text(PIPELINE)
    marks = workdir / "marks"
    marks.mkdir()
    tag = uuid.uuid4().hex
    env = {
        **os.environ,
        "LOCKGATE_HOME": str(workdir / "home"),
        "CHAOS_MARKS": str(marks),
        "LOCKGATE_TEST_TAG": tag,
    }
    for name in ("LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_FAILPOINTS"):
        env.pop(name, None)
    children, chunk, workers = rng.randint(1, 3), rng.choice([16, 64, 256]), rng.randint(2, 4)
    pick = f"children={children} chunk_mib={chunk} workers={workers}"

    started = time.monotonic()
    ran = subprocess.run(
        [
            LOCKGATE,
            "run",
            "faults.py:faults",
            "-p",
            f"children={children}",
            "-p",
            f"chunk_mib={chunk}",
            "--executor",
            "process",
            "--workers",
            str(workers),
            "--json",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - started
    if ran.returncode != 1:
        return [f"run exited {ran.returncode} ({pick}): {ran.stdout} {ran.stderr[-2000:]}"], 0, 0
    run_id = json.loads(ran.stdout)["run_id"]
    if json.loads(ran.stdout)["status"] != "failed":
        expect(f"run ended {ran.stdout}, expected failed")
    if took > 60:
        expect(f"the run took {took:.0f} s: a hung task was not cut off")

    states, attempts = attempts_by_node(workdir / "home" / "lockgate.db", run_id)
    wanted_states = {
        "hung": "failed",
        "hog": "failed",
        "flaky": "succeeded",
        "healthy": "succeeded",
    }
    if states != wanted_states:
        expect(f"task states {states}, expected {wanted_states}")

    def check(node: str, wanted: list[tuple[str, str | None, str | None]]) -> None:
        found = attempts.get(node, [])
        shown = [(s, k, m) for _, s, k, m in found]
        if len(found) != len(wanted):
            expect(f"{node}: attempts {shown}, expected {len(wanted)}")
            return
        for (_, state, kind, message), (w_state, w_kind, w_start) in zip(
            found, wanted, strict=True
        ):
            if state != w_state or kind != w_kind or not (message or "").startswith(w_start or ""):
                expect(
                    f"{node}: attempt {(state, kind, message)!r}, expected "
                    f"{w_state} {w_kind} starting {w_start!r}"
                )

    check("hung", [("timed_out", "lockgate.Timeout", "timed out after 1 s")])
    check("hog", [("failed", "MemoryError", "exceeded memory limit 256 MiB")])
    check(
        "flaky",
        [
            ("failed", "lockgate.WorkerCrashed", "worker exited with code 3"),
            ("succeeded", None, None),
        ],
    )
    check("healthy", [("succeeded", None, None)])
    hung_message = (attempts.get("hung") or [(0, "", "", "")])[0][3]
    if hung_message != "timed out after 1 s":
        expect(f"hung's error is {hung_message!r}, expected exactly 'timed out after 1 s'")

    # nothing the run started outlives it: workers, the hung task, its grandchildren
    pids = [int(p) for p in (marks / "hung.pids").read_text().split()]
    if len(pids) != children + 1:
        expect(f"hung recorded pids {pids}, expected itself and {children} children")
    deadline = time.monotonic() + 5
    while (survivors := tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if survivors or any(alive(pid) for pid in pids):
        alive_ones = [p.pid for p in survivors] + [p for p in pids if alive(p)]
        expect(f"processes survived the run: {sorted(set(alive_ones))}")
        for process in survivors:  # don't leak them into the next test
            process.kill()

    verdict = check_run(Settings.from_env(env), run_id, status="failed")
    return (
        [f"{p} ({pick})" for p in problems + verdict.problems],
        verdict.duplicates,
        verdict.verified,
    )


@pytest.mark.timeout(600)  # the full (make chaos) size
@pytest.mark.scenario("8. hung, out-of-memory and os._exit tasks")
def test_hung_oom_and_crashing_tasks_fail_cleanly_beside_a_healthy_sibling(
    chaos, tmp_path: Path
) -> None:
    rng = chaos.rng()
    for i in range(chaos.size(1, 5)):
        problems, duplicates, verified = one_iteration(tmp_path / f"it{i}", rng)
        chaos.record(problems, duplicates=duplicates, verified=verified)
    chaos.check()
