"""The peers: what each one installs, how each is configured, and the environment it runs in.

One `Peer` per framework; one `Config` per way of running it that the report
shows as a row (Dagster has two: ops and assets). Every peer gets its own
virtual environment under bench/.venvs/ with pinned versions, except lockgate
and Ray, which run in lockgate's .venv (ray is one of its extras).

Environments are built from scratch for each run: the caller's LOCKGATE_*,
PREFECT_*, DAGSTER_*, AIRFLOW_* and RAY_* variables are dropped, telemetry is
off, logs go to WARNING where the peer lets us say so, and all state lives in
the run's temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
VENVS = BENCH / ".venvs"
WORKLOADS = Path(__file__).resolve().parent / "workloads"
COMMON = ("numpy==2.4.6", "psutil==7.2.2")
DROPPED = ("LOCKGATE_", "PREFECT_", "DAGSTER_", "AIRFLOW_", "RAY_", "VIRTUAL_ENV", "PYTHON")


@dataclass(frozen=True, slots=True)
class Config:
    """One way of running a peer: a row in the report."""

    key: str  # passed to the workload script as --config
    label: str  # the row's name
    durable: str  # what survives a crash of the process
    executor: str  # where tasks run
    keeps_outputs: bool = True  # task outputs survive too (the diamond's arrays)


@dataclass(frozen=True, slots=True)
class Peer:
    """A framework to measure: its packages, its workload script, its configurations."""

    name: str
    distribution: str  # whose version the report shows
    requirements: tuple[str, ...]  # empty: runs in lockgate's .venv
    configs: tuple[Config, ...]
    env: Callable[[Path, Path | None], dict[str, str]] = field(default=lambda _w, _t: {})
    # One-time preparation into a template directory (a migrated database), copied
    # into every run's directory; reported apart from setup.
    init: Callable[[Path, Path], None] | None = None
    in_lockgate_venv: bool = False

    @property
    def script(self) -> Path:
        return WORKLOADS / f"{self.name}_workloads.py"

    @property
    def venv(self) -> Path:
        return REPO / ".venv" if self.in_lockgate_venv else VENVS / self.name

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def base_env() -> dict[str, str]:
    """The caller's environment without any orchestrator's settings; telemetry off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED)}
    env.update(DO_NOT_TRACK="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def copy_template(template: Path | None, target: Path) -> None:
    if template is not None:
        shutil.copytree(template, target)


def lockgate_env(workdir: Path, _template: Path | None) -> dict[str, str]:
    return {"LOCKGATE_HOME": str(workdir / "lockgate")}


def ray_env(workdir: Path, _template: Path | None) -> dict[str, str]:
    return {"RAY_USAGE_STATS_ENABLED": "0"}


def prefect_env(workdir: Path, template: Path | None = None) -> dict[str, str]:
    home = workdir / "prefect"
    copy_template(template, home)
    return {
        "PREFECT_HOME": str(home),  # the local server's SQLite database lives here
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
        # Its default 20 s wait for the server ran out once on this loaded 2-CPU machine.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def prefect_init(python: Path, template: Path) -> None:
    """Start the local server once so it creates and migrates its SQLite database."""
    code = (
        "from prefect import get_client\n"
        "with get_client(sync_client=True) as client:\n"
        "    client.hello()\n"
    )
    env = {**base_env(), **prefect_env(template.parent / "scratch")}
    env["PREFECT_HOME"] = str(template)
    subprocess.run([python, "-c", code], env=env, check=True, capture_output=True, timeout=300)


def dagster_env(workdir: Path, _template: Path | None) -> dict[str, str]:
    home = workdir / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {"DAGSTER_HOME": str(home)}


def airflow_env(workdir: Path, template: Path | None = None) -> dict[str, str]:
    home = workdir / "airflow"
    copy_template(template, home)
    return {
        "AIRFLOW_HOME": str(home),  # airflow.cfg and the SQLite airflow.db
        "AIRFLOW__CORE__DAGS_FOLDER": str(workdir / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "SCARF_ANALYTICS": "false",
    }


def airflow_init(python: Path, template: Path) -> None:
    """`airflow db migrate` once: a fresh SQLite metadata database to copy into each run."""
    env = {**base_env(), **airflow_env(template.parent)}
    env["AIRFLOW_HOME"] = str(template)
    airflow = python.parent / "airflow"
    subprocess.run(
        [airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600
    )


#: A commit per task transition; the WAL fsynced within 50 ms and before the run ends.
LOCKGATE_STATE = "yes: SQLite (WAL, commit per task, group fsync) + artifact files"

PEERS: tuple[Peer, ...] = (
    Peer(
        "lockgate",
        "lockgate",
        (),
        (
            Config("inline", "lockgate inline", LOCKGATE_STATE, "inline"),
            Config(
                "process",
                "lockgate process",
                LOCKGATE_STATE,
                "process pool (2)",
            ),
        ),
        env=lockgate_env,
        in_lockgate_venv=True,
    ),
    Peer(
        "prefect",
        "prefect",
        ("prefect==3.9.1",),
        (
            Config(
                "",
                "Prefect",
                "states: local server, SQLite (no fsync per commit); results not kept",
                "ThreadPoolTaskRunner",
                keeps_outputs=False,
            ),
        ),
        env=prefect_env,
        init=prefect_init,
    ),
    Peer(
        "dagster",
        "dagster",
        ("dagster==1.13.29",),
        (
            Config(
                "ops",
                "Dagster ops",
                "events: SQLite; outputs in memory",
                "in process",
                keeps_outputs=False,
            ),
            Config(
                "assets", "Dagster assets", "events: SQLite; outputs: pickle files", "in process"
            ),
        ),
        env=dagster_env,
    ),
    Peer(
        "luigi",
        "luigi",
        ("luigi==3.8.1",),
        (Config("", "Luigi", "yes: file targets (no fsync)", "local scheduler, 1 worker"),),
    ),
    Peer(
        "airflow",
        "apache-airflow",
        ("apache-airflow==3.3.2",),
        (Config("", "Airflow", "yes: SQLite metadata DB, XComs", "dag.test(), in process"),),
        env=airflow_env,
        init=airflow_init,
    ),
    Peer(
        "hamilton",
        "sf-hamilton",
        ("sf-hamilton==1.90.0",),
        (Config("", "Hamilton", "no: in memory", "default driver"),),
    ),
    Peer(
        "baseline",
        "numpy",
        (),
        (Config("", "plain Python", "no (diamond: np.save files)", "function calls"),),
        in_lockgate_venv=True,
    ),
    Peer(
        "ray",
        "ray",
        (),
        (Config("", "Ray", "no: object store in memory", "remote tasks, 2 CPUs"),),
        env=ray_env,
        in_lockgate_venv=True,
    ),
)
