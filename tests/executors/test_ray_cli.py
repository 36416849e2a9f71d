"""`lockgate run --executor ray` from the command line: join a cluster, survive the coordinator.

A coordinator killed with SIGKILL in the middle of a Ray run leaves the run
orphaned; `lockgate recover --executor ray` finishes it under the same id,
executing only what had not committed. A Ray instance lockgate starts itself
listens on loopback only.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from s3_fixture import s3_client, split_s3_url
from servers import ServerProcess

pytestmark = pytest.mark.usefixtures("ray_address")

LOCKGATE = str(Path(sys.executable).with_name("lockgate"))

PIPELINE = """
import os
import pathlib
import time

import lockgate as lg

MARKS = pathlib.Path(os.environ["RAY_MARKS"])


def mark(name):
    with open(MARKS / name, "a") as handle:
        handle.write("x")


@lg.task
def a() -> list:
    mark("a")
    return list(range(5000))


@lg.task
def b(values: list) -> int:
    mark("b")
    if len((MARKS / "b").read_text()) == 1:
        time.sleep(120)  # the coordinator is killed meanwhile
    return sum(values)


@lg.task
def c(value: int) -> int:
    mark("c")
    return value + 1


@lg.pipeline
def chain():
    return c(b(a()))
"""


@pytest.fixture
def project(tmp_path: Path) -> dict:
    (tmp_path / "chain.py").write_text(PIPELINE)
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {
        **os.environ,
        "LOCKGATE_HOME": str(tmp_path / "home"),
        "LOCKGATE_HEARTBEAT_INTERVAL": "0.2",
        "LOCKGATE_HEARTBEAT_TIMEOUT": "1",
        # Read where the pipeline file loads; the task carries the value to Ray
        # (user code is pickled by value), so the cluster needs no variable.
        "RAY_MARKS": str(marks),
    }
    for name in ("LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_RAY_ADDRESS"):
        env.pop(name, None)
    return {"dir": tmp_path, "env": env, "marks": marks}


def lockgate(project: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOCKGATE, *args],
        cwd=project["dir"],
        env=project["env"],
        capture_output=True,
        text=True,
        timeout=180,
    )


def count(project: dict, name: str) -> int:
    path = project["marks"] / name
    return len(path.read_text()) if path.exists() else 0


def test_a_killed_coordinator_is_recovered_on_ray_without_redoing_committed_work(
    project: dict, ray_address: str
):
    coordinator = subprocess.Popen(
        [LOCKGATE, "run", "chain.py:chain", "--executor", "ray", "--ray-address", ray_address],
        cwd=project["dir"],
        env=project["env"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    while count(project, "b") == 0:
        assert coordinator.poll() is None, coordinator.stderr.read().decode()
        assert time.monotonic() < deadline, "task b never started on Ray"
        time.sleep(0.1)
    coordinator.kill()
    coordinator.wait()
    time.sleep(1.5)  # the run's heartbeat goes stale

    recovered = lockgate(
        project, "recover", "--executor", "ray", "--ray-address", ray_address, "--json"
    )
    assert recovered.returncode == 0, recovered.stderr
    (row,) = json.loads(recovered.stdout)
    assert row["status"] == "succeeded"
    assert (count(project, "a"), count(project, "b"), count(project, "c")) == (1, 2, 1)

    db = sqlite3.connect(project["dir"] / "home" / "lockgate.db")
    attempts = db.execute(
        "SELECT t.node_id, a.number, a.state FROM attempts a "
        "JOIN task_runs t ON t.id = a.task_run_id WHERE t.run_id = ? ORDER BY t.node_id, a.number",
        (row["run_id"],),
    ).fetchall()
    by_node: dict[str, list[tuple[int, str]]] = {}
    for node, number, state in attempts:
        by_node.setdefault(node, []).append((number, state))
    assert by_node["a"] == [(1, "succeeded")]
    assert [n for n, _ in by_node["b"]] == [1, 2]
    assert by_node["b"][-1][1] == "succeeded"
    assert by_node["c"] == [(1, "succeeded")]
    shown = json.loads(lockgate(project, "show", row["run_id"], "--json").stdout)
    assert shown["run"]["status"] == "succeeded"


def test_a_malformed_ray_address_is_refused_before_a_run_is_recorded(project: dict):
    result = lockgate(project, "run", "chain.py:chain", "--executor", "ray", "--ray-address", "x")
    assert result.returncode == 2
    assert "Ray address 'x' is not one of: auto, HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr
    runs = lockgate(project, "runs", "--json")
    assert json.loads(runs.stdout) == []


LISTENERS = """
import functools, json, sys
import psutil
from lockgate.executors.ray import RayExecutor
from lockgate.stores.artifacts import open_artifact_store

root = sys.argv[1]
executor = RayExecutor(functools.partial(open_artifact_store, root), artifact_root=root, num_cpus=1)
me = psutil.Process()
pids = {me.pid} | {p.pid for p in me.children(recursive=True)}
names = sorted({p.name() for p in me.children(recursive=True)})
listening = sorted(
    {c.laddr.ip for c in psutil.net_connections("inet") if c.status == "LISTEN" and c.pid in pids}
)
executor.close()
print(json.dumps({"listening": listening, "processes": names}))
"""


def test_a_ray_instance_started_by_lockgate_listens_on_loopback_only(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    result = subprocess.run(
        [sys.executable, "-c", LISTENERS, str(tmp_path / "artifacts")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert "gcs_server" in seen["processes"] and "raylet" in seen["processes"]
    assert seen["listening"]
    for ip in seen["listening"]:
        address = ipaddress.ip_address(ip)
        mapped = getattr(address, "ipv4_mapped", None)
        assert (mapped or address).is_loopback, f"Ray listens on {ip}"


FAN = """
import numpy as np

import lockgate as lg


@lg.task
def make(n: int) -> list:
    return list(range(n))


@lg.task
def block(i: int) -> np.ndarray:
    return np.full(100_000, i, dtype=np.int64)  # 800 KB: a blob on S3, not inline


@lg.task
def total(blocks: list) -> int:
    return int(sum(b.sum() for b in blocks))


@lg.pipeline
def fan(n: int = 8):
    return total(block.map(make(n)))
"""


def test_ray_workers_read_and_write_artifacts_on_s3(tmp_path: Path, s3_root: str):
    (tmp_path / "fan.py").write_text(FAN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "LOCKGATE_"))}
    env |= {"LOCKGATE_HOME": str(tmp_path / "home"), "LOCKGATE_ARTIFACT_ROOT": s3_root}
    # No --ray-address: the CLI starts a Ray instance, whose workers inherit
    # the standard AWS variables the way workers on a cluster's nodes have them.
    done = subprocess.run(
        [LOCKGATE, "run", "fan.py:fan", "--executor", "ray", "--workers", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert " succeeded" in done.stdout
    assert f"output: {sum(i * 100_000 for i in range(8))}" in done.stdout
    bucket, prefix = split_s3_url(s3_root)
    keys = [
        item["Key"]
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    ]
    blobs = [key for key in keys if key.startswith(f"{prefix}/sha256/")]
    assert len(blobs) >= 8, keys  # every block was written to S3 by a Ray worker
    assert not (tmp_path / "home" / "artifacts").exists()


WHERE = """
import lockgate as lg


@lg.task
def cluster() -> str:
    import ray  # this task runs inside a Ray worker: it is connected

    return ray.get_runtime_context().gcs_address


@lg.pipeline
def where():
    return cluster()
"""


def test_a_server_launches_runs_on_the_ray_cluster_it_was_given(tmp_path: Path, ray_address: str):
    (tmp_path / "where.py").write_text(WHERE)
    config = tmp_path / "lockgate.toml"
    config.write_text('[project]\npipelines = ["where.py"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKGATE_", "RAY_"))}
    env["LOCKGATE_CONFIG"] = str(config)
    token = subprocess.run(
        [LOCKGATE, "token", "create", "ci", "--scope", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    server = ServerProcess(
        config, "--executor", "ray", "--ray-address", ray_address, env=env
    ).wait_ready()
    try:
        request = urllib.request.Request(
            f"{server.url}/api/v1/pipelines/where/runs",
            data=b"{}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            run_id = json.loads(response.read())["run_id"]
        deadline = time.monotonic() + 120
        while True:
            shown = json.loads(lockgate_in(tmp_path, env, "show", run_id, "--json").stdout)
            if shown["run"]["status"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.3)
        assert shown["run"]["status"] == "succeeded", server.output()
        value = lockgate_in(tmp_path, env, "artifacts", "get", shown["nodes"][0]["output"])
        assert json.loads(value.stdout) == ray_address  # a worker of the cluster it was given
    finally:
        server.stop()


def lockgate_in(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOCKGATE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
