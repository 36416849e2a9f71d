"""Message trigger latency: from XADD to the run's start, through a real `lockgate server`.

    make bench        # or: .venv/bin/python bench/messages.py [--messages 30] [--interval 0.2]
                      #     [--isolated 5] [--executor process|inline] [--json PATH] [--strict]

Starts a throwaway redis-server and `python -m lockgate server` on a
temporary project (one pipeline with one no-op task, triggered by
`on_message`; [server] poll_interval = 1.0, max_concurrent_runs = 16), sends
one warm-up message, then two phases:

  isolated  --isolated messages 2 s apart: each run starts on an idle machine
  stream    --messages messages --interval seconds apart (the target's load)

For each message, latency is the run's `started_at` (stamped by the run's
driver subprocess) minus `time.time()` just before XADD. The target is p95
under 1 s in the stream phase; with --strict the exit status is 1 when it
is missed.

Each latency is split into stages:

  enqueue   XADD -> run recorded (created_at): the consumer's blocking read
            and `enqueue` (which runs `git` twice for the run's code version)
  launch    recorded -> the driver's first log line: the server's wake-up,
            the claim, and forking a driver from the warm forkserver
  drive     that line -> started_at: the driver opening the stores, loading
            the pipeline and its executor

Baselines, measured in the same invocation: `python -c pass` and
`python -m lockgate --version` as subprocesses (the floor for a driver that
is a fresh interpreter, as drivers were before the forkserver). Also reported:
the CPU time the server's descendants (drivers and workers) used per run,
and the machine's CPU count: together they bound
how many runs per second the server can start before runs queue.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

STREAM = "bench-invalidations"
GROUP = "lockgate"
TARGET_P95 = 1.0

PIPELINES = """
import lockgate as lg


@lg.task
def touch(key: str) -> str:
    return key


@lg.pipeline(triggers=[lg.on_message({url!r}, stream={stream!r})])
def invalidate(key: str = ""):
    touch(key)
"""

# Until `lockgate server` exists, the same Server driven directly.
SERVER_FALLBACK = """
import sys
from lockgate.server.daemon import Server, options_for
from lockgate.service.compose import Workspace
workspace = Workspace()
Server(workspace, options_for(workspace, port=int(sys.argv[1]))).serve()
"""

_DRIVER_LINE = re.compile(r"^(\S+) driving run ")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report (exit 1 with --strict if p95 misses 1 s)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between XADDs")
    parser.add_argument("--isolated", type=int, default=5, help="messages 2 s apart first")
    parser.add_argument("--executor", choices=("process", "inline"), default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 if p95 misses 1 s")
    args = parser.parse_args(argv)
    try:
        import redis
    except ImportError:
        print("needs the redis package: pip install -e '.[redis]'", file=sys.stderr)
        return 2
    if shutil.which("redis-server") is None:
        print("needs redis-server on PATH (apt-get install -y redis-server)", file=sys.stderr)
        return 2

    root = Path(tempfile.mkdtemp(prefix="lockgate-bench-messages-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        redis_port = _free_port()
        processes.append(_start_redis(root, redis_port))
        url = f"redis://127.0.0.1:{redis_port}/0"
        client = redis.Redis.from_url(url)
        # The group exists before the server does: no message can slip past it.
        client.xgroup_create(STREAM, GROUP, id="$", mkstream=True)
        port = _free_port()
        config = _write_project(root, url, port, args.executor)
        baseline = _baselines()
        server, how = _start_server(root, config, port)
        processes.append(server)
        _wait_healthy(port, server, root / "server.log")

        from lockgate.service.compose import Workspace
        from lockgate.service.project import parse

        workspace = Workspace(project=parse(config))
        cold = _send(client, workspace, 1, 0.0)[0]
        phases: dict[str, list[dict[str, float]]] = {}
        cpu: dict[str, float | None] = {}
        if args.isolated:
            phases["isolated"], cpu["isolated"] = _phase(
                client, workspace, server, args.isolated, 2.0
            )
        phases["stream"], cpu["stream"] = _phase(
            client, workspace, server, args.messages, args.interval
        )
        report = _report(phases, cpu, cold, baseline, how, args)
        if args.json is not None:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        workspace.close()
        client.close()
        return 1 if args.strict and not report["p95_under_target"] else 0
    finally:
        for process in reversed(processes):
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)


# --- the setup ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_redis(root: Path, port: int) -> subprocess.Popen[bytes]:
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(root)]
    log = (root / "redis.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server did not start; see {root / 'redis.log'}")


def _write_project(root: Path, url: str, port: int, executor: str | None) -> Path:
    (root / "pipelines.py").write_text(PIPELINES.format(url=url, stream=STREAM))
    config = root / "lockgate.toml"
    lines = [
        "[project]",
        'pipelines = ["pipelines.py"]',
        f'home = "{root / "home"}"',
        "",
        "[server]",
        f"port = {port}",
        "poll_interval = 1.0",
        "max_concurrent_runs = 16",  # the launcher's limit must not be what is measured
        "drain_timeout = 10.0",
    ]
    if executor is not None:
        lines.append(f'executor = "{executor}"')
    config.write_text("\n".join(lines) + "\n")
    return config


def _start_server(root: Path, config: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    env = dict(os.environ, LOCKGATE_CONFIG=str(config))
    for name in ("LOCKGATE_HOME", "LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT"):
        env.pop(name, None)
    has_command = (
        subprocess.run(
            [sys.executable, "-m", "lockgate", "server", "--help"],
            capture_output=True,
            env=env,
            check=False,
        ).returncode
        == 0
    )
    if has_command:
        argv = [sys.executable, "-m", "lockgate", "server", "--port", str(port)]
        how = "python -m lockgate server"
    else:
        argv = [sys.executable, "-c", SERVER_FALLBACK, str(port)]
        how = "Server(...).serve() (no `lockgate server` command yet)"
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True
    )
    return process, how


def _wait_healthy(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not answer /healthz:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- measuring -----------------------------------------------------------------------------


def _phase(
    client: Any, workspace: Any, server: subprocess.Popen[bytes], count: int, interval: float
) -> tuple[list[dict[str, float]], float | None]:
    """Send one phase's messages; return the samples and the drivers' CPU seconds per run."""
    before = _children_cpu(server)
    samples = _send(client, workspace, count, interval)
    _wait_finished(workspace)
    time.sleep(1.5)  # the launcher reaps finished drivers on its next pass
    after = _children_cpu(server)
    per_run = None if before is None or after is None else (after - before) / count
    return samples, per_run


def _children_cpu(server: subprocess.Popen[bytes]) -> float | None:
    """CPU seconds used under the server by its descendants (drivers and their workers).

    Drivers are forked from the server's forkserver, which reaps them: each
    process's own time plus the time of the children it reaped counts every
    descendant once, live or gone.
    """
    try:
        import psutil
    except ImportError:
        return None
    total = 0.0
    for process in psutil.Process(server.pid).children(recursive=True):
        try:
            t = process.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _wait_finished(workspace: Any) -> None:
    from lockgate.model.states import RunState

    open_states = (RunState.QUEUED, RunState.RUNNING)
    deadline = time.monotonic() + 120
    while any(r.status in open_states for r in workspace.metadata.list_runs(limit=10_000)):
        if time.monotonic() > deadline:
            raise RuntimeError("runs did not finish within 120 s")
        time.sleep(0.1)


def _send(client: Any, workspace: Any, count: int, interval: float) -> list[dict[str, float]]:
    """XADD `count` messages `interval` apart; return each one's stage times once started."""
    sent: dict[str, float] = {}
    for n in range(count):
        if n:
            time.sleep(interval)
        at = time.time()
        message_id = client.xadd(STREAM, {"key": f"user:{n}"})
        sent[f"message:{STREAM}:{message_id.decode()}"] = at
    deadline = time.monotonic() + 120
    while True:
        runs = {
            r.trigger_key: r
            for r in workspace.metadata.list_runs(pipeline="invalidate", limit=10_000)
            if r.trigger_key in sent and r.started_at is not None
        }
        if len(runs) == len(sent):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(runs)} of {len(sent)} runs started within 120 s")
        time.sleep(0.05)
    home = Path(workspace.settings.home)
    samples = []
    for key, at in sent.items():
        run = runs[key]
        assert run.started_at is not None
        driver = _driver_start(home / "drivers" / f"{run.id}.log")
        sample = {
            "total": run.started_at - at,
            "enqueue": run.created_at - at,
        }
        if driver is not None:
            sample["launch"] = driver - run.created_at
            sample["drive"] = run.started_at - driver
        samples.append(sample)
    return samples


def _driver_start(log: Path) -> float | None:
    """When the driver process printed its first line (None if it has not)."""
    try:
        first = log.read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    match = _DRIVER_LINE.match(first)
    if match is None:
        return None
    try:
        return dt.datetime.fromisoformat(match.group(1)).timestamp()
    except ValueError:
        return None


def _baselines(repeat: int = 5) -> dict[str, float]:
    def timed(argv: list[str]) -> Callable[[], float]:
        def once() -> float:
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            return time.perf_counter() - start

        return once

    runs = {
        "python -c pass": timed([sys.executable, "-c", "pass"]),
        "python -m lockgate --version": timed([sys.executable, "-m", "lockgate", "--version"]),
    }
    return {name: statistics.median(fn() for _ in range(repeat)) for name, fn in runs.items()}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


def _report(
    phases: dict[str, list[dict[str, float]]],
    cpu: dict[str, float | None],
    cold: dict[str, float],
    baseline: dict[str, float],
    how: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    report: dict[str, Any] = {
        "server": how,
        "executor": args.executor or "process (default)",
        "cpus": cpus,
        "cold_total_s": cold["total"],
        "baselines_s": baseline,
    }
    print(f"message trigger latency through {how}; {cpus} CPUs")
    version = baseline["python -m lockgate --version"]
    for phase, samples in phases.items():
        spacing = 2.0 if phase == "isolated" else args.interval
        print(f"\n{phase}: {len(samples)} messages {spacing:g} s apart")
        print(f"  {'stage':<10}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
        rows: dict[str, Any] = {"messages": len(samples), "interval_s": spacing}
        for stage in ("total", "enqueue", "launch", "drive"):
            values = [s[stage] for s in samples if stage in s]
            if not values:
                continue
            row = {
                "p50": statistics.median(values),
                "p95": _percentile(values, 0.95),
                "max": max(values),
            }
            rows[stage] = row
            p50, p95, top = (row[k] * 1e3 for k in ("p50", "p95", "max"))
            print(f"  {stage:<10}{p50:>10.0f}{p95:>10.0f}{top:>10.0f}")
        if len(samples) >= 10:  # runs queueing behind each other make latency grow
            head = statistics.mean(s["total"] for s in samples[:5])
            tail = statistics.mean(s["total"] for s in samples[-5:])
            rows["first5_mean"], rows["last5_mean"] = head, tail
            print(
                f"  total, first 5 / last 5 messages (mean): {head * 1e3:.0f} / {tail * 1e3:.0f} ms"
            )
        per_run = cpu.get(phase)
        if per_run:
            rows["driver_cpu_per_run_s"] = per_run
            print(
                f"  driver CPU per run: {per_run * 1e3:.0f} ms -> at most ~{cpus / per_run:.1f} "
                f"runs/s on {cpus} CPUs (this phase offers {1 / spacing:.1f}/s)"
            )
        rows["total_p50_vs_version_start"] = rows["total"]["p50"] / version
        print(
            f"  total p50 / `lockgate --version` start: {rows['total_p50_vs_version_start']:.1f}x"
        )
        report[phase] = rows
    print(f"\nfirst (cold) message: {cold['total'] * 1e3:.0f} ms")
    for name, seconds in baseline.items():
        print(f"baseline  {name}: {seconds * 1e3:.0f} ms (subprocess wall time, median)")
    p95 = report["stream"]["total"]["p95"]
    report["p95_under_target"] = ok = p95 < TARGET_P95
    print(f"stream p95 < {TARGET_P95:g} s: {'yes' if ok else 'NO'} ({p95 * 1e3:.0f} ms)")
    return report


if __name__ == "__main__":
    sys.exit(main())
