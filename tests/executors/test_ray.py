"""The Ray executor on a real local Ray cluster: the executor contract, and whole runs.

Retries, timeouts, caching and commits stay lockgate's: a Ray worker killed
mid-task is a failed attempt that is retried, a timeout kills the worker, and
a run records the same thing on Ray as on the process executor.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import lockgate as lg
from lockgate.errors import ExecutorError, SharedStoreRequiredError
from lockgate.executors.ray import RayExecutor, check_shared_store, validate_address
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
from lockgate.service.project import Project, parse
from lockgate.service.views import run_details
from lockgate.stores.artifacts import open_artifact_store
from lockgate.testing.executor_contract import ExecutorContract

pytestmark = pytest.mark.usefixtures("ray_address")


class TestRayExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, artifact_root: str) -> Iterator[RayExecutor]:
        executor = RayExecutor(
            functools.partial(open_artifact_store, artifact_root), artifact_root=artifact_root
        )
        yield executor
        executor.close()


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory tasks write marker files to (Ray workers inherit the variable)."""
    path = tmp_path / "marks"
    path.mkdir()
    return path


# --- pipelines --------------------------------------------------------------------


@lg.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@lg.task
def square(x: int) -> int:
    return x * x


@lg.task
def total(values: list[int]) -> int:
    return sum(values)


@lg.pipeline
def fan(n: int = 200):
    return total(square.map(numbers(n)))


@lg.task(retries=1)
def crash_once(marks: str) -> int:
    """Attempt 1 reports its pid and waits to be killed; attempt 2 returns."""
    pid_file = Path(marks, "pid")
    if lg.current().attempt == 1:
        pid_file.write_text(str(os.getpid()))
        time.sleep(120)
    return os.getpid()


@lg.pipeline
def crashes(marks: str):
    return crash_once(marks)


@lg.task(timeout=1)
def hang(marks: str) -> int:
    Path(marks, "pid").write_text(str(os.getpid()))
    time.sleep(120)
    return 0


@lg.pipeline
def hangs(marks: str):
    return hang(marks)


@lg.task(resources={"cpu": 2, "special": 1})
def assigned() -> dict[str, float]:
    import ray

    return dict(ray.get_runtime_context().get_assigned_resources())


@lg.pipeline
def placed():
    return assigned()


@lg.task(resources={"gpu": 1})
def needs_gpu() -> int:
    return 1


@lg.pipeline
def gpu_job():
    return needs_gpu()


@lg.task
def on_ray() -> bool:
    import sys

    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


@lg.pipeline
def where():
    return on_ray()


@lg.task(retries=2)
def flaky(x: int, marks: str) -> int:
    """Fails the first time for odd items, deterministically across executors."""
    flag = Path(marks, f"flaky-{x}")
    if x % 2 and not flag.exists():
        flag.touch()
        raise ValueError(f"first try of {x}")
    return x + 1


@lg.task(cache=True)
def cached_sum(values: list[int]) -> int:
    return sum(values)


@lg.task
def broken(value: int) -> int:
    raise KeyError(f"no key {value}")


@lg.pipeline
def mixed(marks: str, n: int = 6):
    items = numbers(n)
    bumped = flaky.map(items, marks=marks)
    return cached_sum(bumped), broken(total(items))


def _workspace(tmp_path: Path, name: str = "home") -> Workspace:
    return Workspace(Settings.from_env({}, home=tmp_path / name))


# --- whole runs ---------------------------------------------------------------------


def test_a_fan_out_of_200_tasks_succeeds_with_one_attempt_each(tmp_path: Path):
    workspace = _workspace(tmp_path)
    result = lg.run(fan, {"n": 200}, executor="ray", workspace=workspace)
    assert result.ok, result.record.error
    assert result.output("total") == sum(x * x for x in range(200))
    items = result.nodes["square"].items
    assert len(items) == 200
    assert {item.state.value for item in items} == {"succeeded"}
    assert {item.attempts for item in items} == {1}


def test_a_killed_ray_worker_is_a_failed_attempt_and_is_retried(tmp_path: Path, marks: Path):
    def kill_when_running() -> None:
        pid_file = marks / "pid"
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_when_running)
    killer.start()
    workspace = _workspace(tmp_path)
    result = lg.run(crashes, {"marks": str(marks)}, executor="ray", workspace=workspace)
    killer.join()
    assert result.ok, result.record.error
    assert result.output("crash_once") != int((marks / "pid").read_text())
    (node,) = run_details(workspace, result.run_id)["nodes"]
    first, second = node["attempts"]
    assert (first["state"], first["error_type"]) == ("failed", "lockgate.WorkerCrashed")
    assert "died" in first["error"]
    assert second["state"] == "succeeded"


def test_a_timeout_kills_the_ray_worker_and_fails_the_attempt(tmp_path: Path, marks: Path):
    workspace = _workspace(tmp_path)
    result = lg.run(hangs, {"marks": str(marks)}, executor="ray", workspace=workspace)
    assert result.status.value == "failed"
    (node,) = run_details(workspace, result.run_id)["nodes"]
    (attempt,) = node["attempts"]
    assert attempt["error_type"] == "lockgate.Timeout"
    assert attempt["error"] == "Timeout: timed out after 1 s"
    pid = int((marks / "pid").read_text())
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"Ray worker {pid} still runs the timed-out task"
        time.sleep(0.1)


def test_task_resources_become_ray_resources(tmp_path: Path):
    result = lg.run(placed, executor="ray", workspace=_workspace(tmp_path))
    assert result.ok, result.record.error
    assert result.output("assigned") == {"CPU": 2.0, "special": 1.0}


def test_a_task_that_asks_for_more_than_the_cluster_has_fails_at_once(tmp_path: Path):
    workspace = _workspace(tmp_path)
    result = lg.run(gpu_job, executor="ray", workspace=workspace)
    assert result.status.value == "failed"
    (node,) = run_details(workspace, result.run_id)["nodes"]
    (attempt,) = node["attempts"]
    assert attempt["error_type"] == "lockgate.Unschedulable"
    assert "asks for 1 GPU on one machine, but no node" in attempt["error"]
    assert "(the most any node has: 0 GPU)" in attempt["error"]


def _comparable(details: dict[str, Any]) -> dict[str, Any]:
    """A run's record without what differs between any two runs (ids, times)."""
    volatile = {"queued_at", "started_at", "finished_at", "queue_time_s", "duration_s"}
    run = details["run"]
    nodes = [
        {
            **{k: v for k, v in node.items() if k != "attempts"},
            "attempts": [
                {k: v for k, v in a.items() if k not in volatile} for a in node["attempts"]
            ],
        }
        for node in details["nodes"]
    ]
    return {
        "status": run["status"],
        "params": run["params"],
        "error": run["error"],
        "warnings": run["warnings"],
        "nodes": sorted(
            nodes, key=lambda n: (n["id"], -1 if n["map_index"] is None else n["map_index"])
        ),
    }


def test_a_run_records_the_same_on_ray_as_on_the_process_executor(tmp_path: Path):
    records = {}
    events = {}
    marks = tmp_path / "marks"
    for executor in ("process", "ray"):
        shutil.rmtree(marks, ignore_errors=True)
        marks.mkdir()
        workspace = _workspace(tmp_path, executor)
        result = lg.run(mixed, {"marks": str(marks)}, executor=executor, workspace=workspace)
        assert result.status.value == "failed"
        records[executor] = _comparable(run_details(workspace, result.run_id))
        events[executor] = sorted(e.kind.value for e in workspace.metadata.events(result.run_id))
    assert records["ray"] == records["process"]
    assert events["ray"] == events["process"]
    flaky_items = [
        n for n in records["ray"]["nodes"] if n["id"] == "flaky" and n["map_index"] is not None
    ]
    assert [len(n["attempts"]) for n in flaky_items] == [1, 2, 1, 2, 1, 2]


@lg.task(pool="gpu")
def pooled(i: int) -> int:
    time.sleep(0.3)
    return i


@lg.pipeline
def sweep():
    return [pooled(i) for i in range(4)]


def test_a_pool_of_one_slot_runs_one_task_at_a_time_on_ray(tmp_path: Path):
    workspace = Workspace(
        Settings.from_env({}, home=tmp_path / "home"), project=Project(pools={"gpu": 1})
    )
    result = lg.run(sweep, executor="ray", workspace=workspace)
    assert result.ok, result.record.error
    spans = sorted(
        (a.started_at, a.finished_at) for a in workspace.metadata.attempts(result.run_id)
    )
    assert len(spans) == 4
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, spans  # the cluster has 2 CPUs; the pool allows 1


def test_a_cached_result_is_reused_on_ray_without_executing(tmp_path: Path, marks: Path):
    workspace = _workspace(tmp_path)
    params = {"marks": str(marks), "n": 4}
    first = lg.run(mixed, params, executor="ray", workspace=workspace)
    again = lg.run(mixed, params, executor="ray", workspace=workspace)
    assert again.output("cached_sum") == first.output("cached_sum") == 1 + 2 + 3 + 4
    (node,) = [n for n in run_details(workspace, again.run_id)["nodes"] if n["id"] == "cached_sum"]
    assert (node["state"], node["attempts"]) == ("cached", [])


def test_lockgate_toml_picks_ray_for_one_pipeline(tmp_path: Path):
    config = tmp_path / "lockgate.toml"
    config.write_text('[executor]\ndefault = "process"\npipelines = { where = "ray" }\n')
    project = parse(config)
    workspace = Workspace(Settings.from_env({}, home=tmp_path / "home"), project)
    assert lg.run(where, workspace=workspace).output("on_ray") is True
    # An explicit executor wins over the configured one.
    assert lg.run(where, executor="process", workspace=workspace).output("on_ray") is False


# --- refusals -------------------------------------------------------------------------


def test_a_memory_store_is_refused_before_anything_runs(tmp_path: Path):
    settings = Settings.from_env({"LOCKGATE_ARTIFACT_ROOT": "memory://lg"}, home=tmp_path)
    workspace = Workspace(settings)
    with pytest.raises(SharedStoreRequiredError, match="cannot reach it"):
        lg.run(where, executor="ray", workspace=workspace)
    assert workspace.metadata.list_runs() == []


def test_a_refused_resume_does_not_take_the_run_over(tmp_path: Path):
    settings = Settings.from_env({"LOCKGATE_ARTIFACT_ROOT": "memory://lg-resume"}, home=tmp_path)
    workspace = Workspace(settings)
    broken_run = lg.run(
        mixed, {"marks": str(tmp_path), "n": 2}, executor="inline", workspace=workspace
    )
    assert broken_run.status.value == "failed"
    before = [e.kind.value for e in workspace.metadata.events(broken_run.run_id)]
    with pytest.raises(SharedStoreRequiredError):
        lg.resume(broken_run.run_id, executor="ray", workspace=workspace)
    assert workspace.metadata.get_run(broken_run.run_id).status.value == "failed"
    assert [e.kind.value for e in workspace.metadata.events(broken_run.run_id)] == before


def test_a_local_disk_store_is_refused_for_a_cluster_with_nodes_elsewhere():
    with pytest.raises(SharedStoreRequiredError) as raised:
        check_shared_store(
            "/srv/lockgate/artifacts",
            address="10.0.0.5:6379",
            client=False,
            nodes=["10.0.0.5", "10.0.0.6", "192.0.2.7"],
            here={"192.0.2.7", "127.0.0.1"},
        )
    message = str(raised.value)
    assert "has nodes on 10.0.0.5, 10.0.0.6" in message
    assert "s3://" in message
    with pytest.raises(SharedStoreRequiredError, match="Ray Client"):
        check_shared_store(
            "file:///srv/a", address="ray://h:10001", client=True, nodes=[], here=set()
        )
    # An object store is reachable from anywhere; a one-machine cluster shares the disk.
    check_shared_store(
        "s3://bucket/lg", address="10.0.0.5:6379", client=True, nodes=["10.0.0.5"], here=set()
    )
    check_shared_store(
        "/srv/a", address=None, client=False, nodes=["192.0.2.7"], here={"192.0.2.7"}
    )


@pytest.mark.parametrize("address", ["nonsense", "host:", ":6379", "ray://h:99999", "h:p"])
def test_a_malformed_ray_address_names_the_accepted_forms(address: str):
    with pytest.raises(ExecutorError, match=r"auto, HOST:PORT .* ray://HOST:PORT"):
        validate_address(address)


def test_good_ray_addresses_pass():
    for address in (None, "auto", "10.0.0.5:6379", "ray://head.internal:10001"):
        assert validate_address(address) == address
