"""Scenario 1: the coordinator killed with SIGKILL at random points, then recovered.

Each iteration starts one run of the 30-node pipeline (thirty.py) and kills
its coordinator: at a named failpoint (before a task starts, between an
artifact's temp write, fsync, rename and the commit, before or after a
database commit) or after a random delay. Some recoveries are killed too.
`lockgate recover` then finishes the run under the same id, and the checker
asserts every node committed exactly once, nothing duplicated, the record
verifies, and no user code ran without an attempt on record.
"""

from __future__ import annotations

import json
import signal
import subprocess
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
NODE_POINTS = [
    "task.before_start",
    "task.after_return_before_commit",
    "artifact.after_tmp_write",
    "artifact.after_fsync_before_rename",
    "artifact.after_rename_before_db",
]
COMMIT_POINTS = ["db.before_commit", "db.after_commit_before_ack"]
TERMINAL = ("succeeded", "failed", "cancelled", "gate_failed")


def fault(rng, executor: str) -> tuple[str, dict[str, str], float | None]:
    """A description, the failpoint environment, or a delay for a timed kill."""
    kind = rng.choice(["node", "commit", "timed"])
    seed = str(rng.randrange(2**31))
    if kind == "node":
        # On the process executor the other points fire in a worker (scenario 2's fault).
        points = NODE_POINTS if executor == "inline" else ["task.after_return_before_commit"]
        point, node = rng.choice(points), rng.choice(NODES)
        spec = f"{point}@{node}:kill"
    elif kind == "commit":
        spec = f"{rng.choice(COMMIT_POINTS)}:kill:{rng.uniform(0.005, 0.03):.4f}"
    else:
        delay = rng.uniform(0.3, 2.5)
        return f"SIGKILL after {delay:.2f} s ({executor})", {}, delay
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
        what, env, delay = fault(rng, executor)
        before = site.run_ids()
        argv = ["run", "thirty.py:thirty", "--executor", executor, "--json", "-p", f"seed={index}"]
        if delay is None:
            first = site.run(*argv, **env)
            killed, stderr = first.returncode == -signal.SIGKILL, first.stderr
        else:
            process = site.start(*argv)
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:  # still running: the moment to kill it
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
