"""lockgate against other orchestrators: the same three workloads, measured in one invocation.

    make bench-peers        # or: .venv/bin/python bench/peers/run.py [--quick] [--peers a,b]

Each peer gets a virtual environment in bench/.venvs/<peer> with pinned
versions (created once, reused while its requirements are unchanged); lockgate
and Ray run in lockgate's .venv. Every measurement is a fresh process running
bench/peers/workloads/<peer>_workloads.py in a fresh temporary directory that
holds all of the peer's state, bounded by --timeout and killed with its whole
process group. Workloads (see workloads/harness.py): a chain of N no-op tasks,
a fan-out of N from one source into one sink (N = 100 and 1,000), and a
4-node diamond passing 100 MiB numpy arrays.

Figures are medians of --repeat runs, taken round-robin (every peer's first
run, then every peer's second) so that a burst of load elsewhere on the machine
lands on all of them; dirty pages are flushed (os.sync) before each run.
Per-task overhead is (run time of N tasks - run time of a 1-task chain) / N,
so start-up is reported apart, as in bench/overhead.py. A 1,000-task run whose
100-task run projects past --budget seconds is skipped, and the report says
so. Writes bench/results/peers.md and peers.json.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from catalog import COMMON, PEERS, VENVS, Config, Peer, base_env
from report import RESULTS, write_report

STARTED = time.monotonic()
WORKLOADS: tuple[tuple[str, int], ...] = (
    ("chain", 1),
    ("chain", 100),
    ("fanout", 100),
    ("diamond", 1),
    ("chain", 1000),
    ("fanout", 1000),
)


def say(message: str) -> None:
    elapsed = int(time.monotonic() - STARTED)
    print(f"[{elapsed // 60:2d}:{elapsed % 60:02d}] {message}", flush=True)


@dataclass
class Row:
    """One (peer, config): what it is, and every measurement of every workload."""

    peer: Peer
    config: Config
    version: str = ""
    init_s: float | None = None
    problem: str | None = None  # did not install / could not prepare
    runs: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    verdicts: dict[tuple[str, int], str] = field(default_factory=dict)  # why not measured

    @property
    def key(self) -> str:
        return f"{self.peer.name}/{self.config.key}" if self.config.key else self.peer.name

    def medians(self, workload: tuple[str, int]) -> dict[str, float] | None:
        good = [r for r in self.runs.get(workload, []) if r.get("ok")]
        if not good:
            return None
        keys = ("setup_s", "run_s", "peak_rss_mb")
        return {k: statistics.median(r[k] for r in good) for k in keys} | {"count": len(good)}


def ensure_venv(peer: Peer) -> str | None:
    """Create or reuse the peer's virtual environment; the reason if it would not install."""
    if peer.in_lockgate_venv:
        return None
    wanted = "\n".join((*peer.requirements, *COMMON))
    stamp = peer.venv / f".installed-{hashlib.sha256(wanted.encode()).hexdigest()[:12]}"
    if stamp.exists():
        return None
    say(f"{peer.name}: creating bench/.venvs/{peer.name} ({', '.join(peer.requirements)})")
    shutil.rmtree(peer.venv, ignore_errors=True)
    VENVS.mkdir(parents=True, exist_ok=True)
    try:
        # The interpreter lockgate's .venv was made from: every peer on the same Python.
        python = getattr(sys, "_base_executable", None) or "python3"
        subprocess.run(
            [python, "-m", "venv", str(peer.venv)], check=True, capture_output=True, timeout=120
        )
        pip = [str(peer.venv / "bin" / "pip"), "install", "-q", *peer.requirements, *COMMON]
        subprocess.run(pip, check=True, capture_output=True, text=True, timeout=900, env=base_env())
    except subprocess.CalledProcessError as exc:
        lines = (exc.stderr or exc.stdout or "").strip().splitlines()
        return f"did not install: {lines[-1] if lines else exc}"
    except subprocess.TimeoutExpired as exc:
        return f"did not install: pip ran past {exc.timeout:.0f} s"
    stamp.touch()
    return None


def version_of(peer: Peer) -> str:
    code = f"import importlib.metadata as m; print(m.version({peer.distribution!r}))"
    out = subprocess.run(
        [str(peer.python), "-c", code], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "?"


class RssSampler(threading.Thread):
    """The peak of the summed RSS of a process and all its descendants, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.done.wait(0.05):
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for process in processes:
                try:
                    total += process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.peak = max(self.peak, total)


def measure(
    row: Row, workload: str, n: int, timeout: float, template: Path | None
) -> dict[str, Any]:
    """Run one workload once in a fresh process and directory; its JSON line plus wall and RSS."""
    with tempfile.TemporaryDirectory(prefix="lgpeer-") as directory:
        workdir = Path(directory)
        env = base_env() | row.peer.env(workdir, template)
        argv = [
            str(row.peer.python),
            str(row.peer.script),
            workload,
            str(n),
            "--workdir",
            str(workdir),
        ]
        if row.config.key:
            argv += ["--config", row.config.key]
        log = workdir / "log"
        # The last run's dirty pages (100 MB arrays) would slow this one's writes and
        # fsyncs: start every run with them flushed, as bench/overhead.py does.
        os.sync()
        start = time.monotonic()
        with log.open("w") as out:
            child = subprocess.Popen(
                argv,
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            sampler = RssSampler(child.pid)
            sampler.start()
            try:
                child.wait(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                sampler.done.set()
                # The child's group: a local server, Ray's daemons, pool workers.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        wall = time.monotonic() - start
        text = log.read_text(errors="replace")
    found = [line for line in text.splitlines() if line.startswith("RESULT ")]
    if timed_out:
        result: dict[str, Any] = {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    elif not found:
        tail = " | ".join(text.strip().splitlines()[-3:])
        result = {"ok": False, "error": f"exit {child.returncode}, no result: {tail[-300:]}"}
    else:
        result = json.loads(found[-1].removeprefix("RESULT "))
    result["wall_s"] = wall
    result["peak_rss_mb"] = max(result.get("peak_rss_mb") or 0.0, sampler.peak / 2**20)
    return result


def prepare(row: Row, templates: Path) -> Path | None:
    """The peer's one-time preparation (a migrated database), timed; its template directory."""
    if row.peer.init is None:
        return None
    template = templates / row.peer.name / "home"
    if template.exists():
        return template
    template.parent.mkdir(parents=True)
    start = time.monotonic()
    row.peer.init(row.peer.python, template)
    row.init_s = time.monotonic() - start
    say(f"{row.peer.name}: one-time init {row.init_s:.1f} s")
    return template


def skip_reason(row: Row, workload: str, n: int, budget: float) -> str | None:
    """Why this run should not happen: a verdict already given, or a projection past budget."""
    if (workload, n) in row.verdicts:
        return row.verdicts[(workload, n)]
    if n < 1000:
        return None
    small, single = row.medians((workload, 100)), row.medians(("chain", 1))
    if small is None or single is None:
        return "not run: the 100-task run has not succeeded"
    per_task = max(small["run_s"] - single["run_s"], 0.0) / 100
    projected = single["run_s"] + per_task * n
    if projected > budget:
        return row.verdicts.setdefault(
            (workload, n),
            f"skipped: the 100-task run projects {projected:.0f} s, past the {budget:.0f} s budget",
        )
    return None


def rewrite_report() -> Path:
    """peers.md again from peers.json's runs and rows, as after the invocation that made them."""
    kept = json.loads((RESULTS / "peers.json").read_text())
    rows = []
    for peer in PEERS:
        for config in peer.configs:
            row = Row(peer, config)
            meta = kept["peers"].get(row.key)
            if meta is None:
                continue
            row.version, row.init_s, row.problem = meta["version"], meta["init_s"], meta["problem"]
            row.verdicts = {workload_of(k): v for k, v in meta["verdicts"].items()}
            row.runs = {workload_of(k): v for k, v in kept["runs"].get(row.key, {}).items()}
            rows.append(row)
    return write_report(
        rows,
        machine=kept["machine"],
        repeat=kept["repeat"],
        quick=kept["quick"],
        total_s=kept["total_s"],
        budget=kept["budget"],
        notes=kept["notes"],
        cli_s=kept.get("cli_s"),
        date=kept["date"],
    )


CLI_CHAIN = """\
import lockgate as lg


@lg.task
def step(previous: int) -> int:
    return previous + 1


@lg.pipeline
def chain():
    value = step(0)
    for _ in range(99):
        value = step(value)
    return value
"""


def measure_cli(repeat: int, timeout: float) -> float | None:
    """Median wall time of the whole `lockgate run` command on a 100-node chain, or None."""
    lockgate = Path(sys.executable).with_name("lockgate")
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="lgpeer-cli-") as directory:
            workdir = Path(directory)
            (workdir / "pipelines.py").write_text(CLI_CHAIN)
            env = base_env() | {"LOCKGATE_HOME": str(workdir / "home")}
            os.sync()
            start = time.monotonic()
            done = subprocess.run(
                [str(lockgate), "run", "pipelines.py:chain"],
                cwd=workdir,
                env=env,
                capture_output=True,
                timeout=timeout,
            )
            if done.returncode != 0:
                say(f"lockgate run of a 100-node chain failed: {done.stderr.decode()[-300:]}")
                return None
            times.append(time.monotonic() - start)
    return statistics.median(times)


def workload_of(text: str) -> tuple[str, int]:
    name, n = text.split()
    return name, int(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default="", help="comma-separated subset, e.g. prefect,luigi")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per run")
    parser.add_argument(
        "--budget", type=float, default=75.0, help="projected seconds per 1,000-task run"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite peers.md from the runs kept in peers.json; run nothing",
    )
    parser.add_argument(
        "--deadline", type=float, default=27.0, help="minutes: start no run after this"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 repeat, N up to 100 (for development)"
    )
    args = parser.parse_args()
    # `kill` unwinds like Ctrl-C: the running child's group is killed, temp dirs removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wanted = {p for p in args.peers.split(",") if p}
    unknown = wanted - {p.name for p in PEERS}
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; known: {', '.join(p.name for p in PEERS)}")
    peers = [p for p in PEERS if not wanted or p.name in wanted or p.name == "lockgate"]
    if args.report_only:
        say(f"wrote {rewrite_report()}")
        return
    workloads = [w for w in WORKLOADS if not (args.quick and w[1] > 100)]
    repeat = 1 if args.quick else args.repeat
    names = ", ".join(p.name for p in peers)
    say(f"peers benchmark: {names}; median of {repeat}; at most {args.timeout:.0f} s a run")
    rows: list[Row] = []
    late: set[tuple[str, str, int]] = set()  # runs not started: past the deadline
    with tempfile.TemporaryDirectory(prefix="lgpeer-templates-") as templates:
        for peer in peers:
            problem = ensure_venv(peer)
            version = version_of(peer) if problem is None else ""
            for config in peer.configs:
                rows.append(Row(peer, config, version, problem=problem))
            if problem:
                say(f"{peer.name}: {problem}")
        prepared: dict[str, Path | None] = {}
        for row in rows:
            if row.problem is None and row.peer.name not in prepared:
                try:
                    prepared[row.peer.name] = prepare(row, Path(templates))
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                    row.problem = f"could not prepare: {exc}"
            elif row.peer.name in prepared and row.init_s is None:
                row.init_s = next(r.init_s for r in rows if r.peer is row.peer)
        for rep in range(repeat):
            for row in rows:
                if row.problem:
                    continue
                for workload, n in workloads:
                    reason = skip_reason(row, workload, n, args.budget)
                    if reason:
                        continue
                    if time.monotonic() - STARTED > args.deadline * 60:
                        late.add((row.key, workload, n))
                        continue
                    result = measure(row, workload, n, args.timeout, prepared.get(row.peer.name))
                    row.runs.setdefault((workload, n), []).append(result)
                    if result.get("unsupported"):
                        row.verdicts[(workload, n)] = f"not supported: {result['unsupported']}"
                        status = "not supported"
                    elif not result["ok"]:  # tried again next round, unless it ran out of time
                        if result["error"].startswith("timed out"):
                            row.verdicts[(workload, n)] = f"failed: {result['error']}"
                        status = f"FAILED {result['error'][:120]}"
                    else:
                        status = (
                            f"setup {result['setup_s']:.2f} s, run {result['run_s']:.2f} s, "
                            f"{result['peak_rss_mb']:.0f} MB"
                        )
                    say(f"run {rep + 1}/{repeat} {row.config.label:<16} {workload} {n:<5} {status}")
    cli_s = measure_cli(repeat, args.timeout)
    if cli_s is not None:
        say(f"lockgate run of a 100-node chain (the whole command): {cli_s:.2f} s")
    total = time.monotonic() - STARTED
    if late:
        say(f"{len(late)} runs not started: past the {args.deadline:.0f} min deadline")
    machine = {
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "load_average": os.getloadavg(),
    }
    path = write_report(
        rows,
        machine=machine,
        repeat=repeat,
        quick=args.quick,
        total_s=total,
        budget=args.budget,
        notes=[f"{len(late)} runs not started: past the {args.deadline:.0f} min deadline"]
        if late
        else [],
        cli_s=cli_s,
    )
    say(f"done in {total / 60:.1f} min; wrote {path}")


if __name__ == "__main__":
    main()
