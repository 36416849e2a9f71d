"""Scenario 1: the coordinator killed with SIGKILL at random points, then recovered.

Each iteration starts one run of the 30-node pipeline (thirty.py) and kills
its coordinator: at a named failpoint (before a task starts, between an
artifact's temp write, fsync, rename and the commit, before or after a
database commit) or once a random number of nodes has started. Some
recoveries are killed too.
`lockgate recover` then finishes the run under the same id, and the checker
asserts every node committed exactly once, nothing duplicated, the record
verifies, and no user code ran without an attempt on record.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from checker import check_run
from installation import Installation

NODES = [
    "load",
    *(
        f"{name}{suffix}"
        for name in ("feature", "train", "score")
        for suffix in ["", *(f"_{k}" for k in range(2, 9))]
    ),
    *(f"pair{suffix}" for suffix in ["", "_2", "_3", "_4"]),
    "report",
]
TASK_POINTS = ["task.before_start", "task.after_return_before_commit"]
ARTIFACT_POINTS = [
    "artifact.after_tmp_write",
    "artifact.after_fsync_before_rename",
    "artifact.after_rename_before_db",
]
BLOB_NODES = ["load", "feature_7", "feature_8"]  # outputs over the inline limit: blob files
COMMIT_POINTS = ["db.before_commit", "db.after_commit_before_ack"]
TERMINAL = ("succeeded", "failed", "cancelled", "gate_failed")


def fault(rng, executor: str) -> tuple[str, dict[str, str], int | None]:
    """A description, the failpoint environment, or how many nodes start before a kill."""
    kind = rng.choice(["task", "artifact", "commit", "progress"])
    seed = str(rng.randrange(2**31))
    if kind == "task" or (kind == "artifact" and executor != "inline"):
        # On the process executor task.before_start and the artifact points fire in
        # a worker (scenario 2's fault), so only the coordinator's own point is used.
        points = TASK_POINTS if executor == "inline" else TASK_POINTS[1:]
        spec = f"{rng.choice(points)}@{rng.choice(NODES)}:kill"
    elif kind == "artifact":
        spec = f"{rng.choice(ARTIFACT_POINTS)}@{rng.choice(BLOB_NODES)}:kill"
    elif kind == "commit":
        spec = f"{rng.choice(COMMIT_POINTS)}:kill:{rng.uniform(0.01, 0.06):.4f}"
    else:
        started = rng.randint(1, len(NODES) - 1)
        return f"SIGKILL once {started} nodes started ({executor})", {}, started
    env = {"LOCKGATE_FAILPOINTS": spec, "LOCKGATE_CHAOS_SEED": seed}
    return f"{spec} seed {seed} ({executor})", env, None


@pytest.mark.scenario("1. coordinator SIGKILL, 30-node runs resumed")
@pytest.mark.timeout(3600)
def test_killed_coordinators_recover_with_every_node_committed_once(chaos, tmp_path: Path):
    site = Installation(tmp_path)
    rng = chaos.rng()
    kills = 0
    for index in range(chaos.size(short=4, full=100)):
        executor = rng.choice(["inline", "inline", "process"])
        what, env, started = fault(rng, executor)
        before = site.run_ids()
        argv = ["run", "thirty.py:thirty", "--executor", executor, "--json", "-p", f"seed={index}"]
        if started is None:
            first = site.run(*argv, **env)
            killed, stderr = first.returncode == -signal.SIGKILL, first.stderr
        else:
            marks = len(list(site.marks.iterdir()))
            process = site.start(*argv)
            # Kill at a random point of progress: once that many nodes' code has started.
            while process.poll() is None and len(list(site.marks.iterdir())) - marks < started:
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            stderr = process.communicate(timeout=60)[1]
            killed = process.returncode == -signal.SIGKILL
        kills += killed
        (run_id,) = site.run_ids() - before or {None}
        problems = []
        if run_id is None:
            # Killed before the run row committed: nothing was acknowledged, nothing to recover.
            chaos.record([] if killed else [f"{what}: no run recorded, no kill: {stderr[-800:]}"])
            continue
        if killed and site.status(run_id) not in TERMINAL:
            time.sleep(1.1)  # the heartbeat goes stale
            for attempt in range(4):
                # A quarter of the recoveries are killed as well, before a commit is acknowledged.
                recover_env = {}
                if attempt == 0 and rng.random() < 0.25:
                    recover_env = {
                        "LOCKGATE_FAILPOINTS": "db.after_commit_before_ack:kill:0.05",
                        "LOCKGATE_CHAOS_SEED": str(rng.randrange(2**31)),
                    }
                recovered = site.run("recover", "--json", "--executor", executor, **recover_env)
                if recovered.returncode != -signal.SIGKILL:
                    break
                time.sleep(1.1)
            if recovered.returncode != 0:
                problems.append(
                    f"{what}: recover exited {recovered.returncode}: {recovered.stderr[-500:]}"
                )
            elif run_id not in {o["run_id"] for o in json.loads(recovered.stdout)}:
                problems.append(f"{what}: recover did not pick up {run_id}")
        verdict = check_run(site.settings, run_id)
        executions, attempts = site.executions(run_id), site.attempts(run_id)
        problems += [f"{what}: {p}" for p in verdict.problems]
        problems += [
            f"{what}: {node} ran {n} times but has {attempts.get(node, 0)} attempts on record"
            for node, n in executions.items()
            if n > attempts.get(node, 0)
        ]
        if len(attempts) != len(NODES):
            problems.append(f"{what}: {len(attempts)} nodes recorded, expected {len(NODES)}")
        chaos.record(problems, duplicates=verdict.duplicates, verified=verdict.verified)
    chaos.check()
    assert kills >= chaos.iterations // 2, f"only {kills} of {chaos.iterations} runs were killed"
