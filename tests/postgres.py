"""A throwaway PostgreSQL 15 cluster for the test session, and a fresh database per test.

`pg_server` starts a cluster from the installed binaries (initdb as the
`postgres` user, trust auth, no fsync, TCP on a free loopback port, its socket
in the temp dir) once per session and removes it afterwards. `pg_url` creates
an empty database for one test and returns its SQLAlchemy URL, so tests never
see each other's rows. Without PostgreSQL the tests that use them skip with
the reason, except under `CI=true`, where a missing service is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

_SU_USER = "postgres"


def _pg_bin() -> Path:
    """LOCKGATE_TEST_PG_BIN, else PostgreSQL 15's binaries, else the newest installed."""
    if os.environ.get("LOCKGATE_TEST_PG_BIN"):
        return Path(os.environ["LOCKGATE_TEST_PG_BIN"])
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    preferred = Path("/usr/lib/postgresql/15/bin")
    if (preferred / "initdb").exists() or not installed:
        return preferred
    return installed[-1].parent


def _unavailable(reason: str) -> NoReturn:
    message = f"PostgreSQL tests need a local PostgreSQL 15: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: .ci/run installs postgresql-15)")
    pytest.skip(message + " (apt-get install -y postgresql-15)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb refuses to run as root, so the cluster belongs to the `postgres` user.
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", _SU_USER, "--", *argv]


def _run(argv: list[str]) -> None:
    done = subprocess.run(
        _as_postgres(argv), capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed: {done.stderr.strip() or done.stdout}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A running PostgreSQL cluster; yields `postgresql+psycopg://postgres@127.0.0.1:PORT/`."""
    pg_bin = _pg_bin()
    if not (pg_bin / "initdb").exists() or not (pg_bin / "pg_ctl").exists():
        _unavailable(f"no initdb/pg_ctl in {pg_bin}")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install -e '.[postgres]')")
    root = Path(tempfile.mkdtemp(prefix="lockgate-pg-"))
    data, log = root / "data", root / "server.log"
    if os.geteuid() == 0:
        shutil.chown(root, user=_SU_USER)
    started = False
    try:
        port = _free_port()
        initdb = [str(pg_bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
        _run([*initdb, "--no-sync", "-E", "UTF8"])
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
        options += " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        pg_ctl = [str(pg_bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log)]
        _run([*pg_ctl, "-w", "-t", "30", "start"])
        started = True
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        _unavailable(f"the throwaway cluster did not start: {exc}\n{tail}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/"
    finally:
        if started:
            subprocess.run(
                _as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database on `pg_server`, dropped after the test."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = pg_server.replace("postgresql+psycopg://", "postgresql://") + "postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server + name
    with psycopg.connect(admin, autocommit=True) as conn:
        # FORCE: a test that failed may have left a store (or a child process) connected.
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
