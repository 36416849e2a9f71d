"""A throwaway redis-server for the test session, emptied before each test.

`redis_server` starts the installed `redis-server` on a free loopback port,
with no persistence, in a temp dir, once per session, and stops it
afterwards. `redis_url` flushes it and returns `redis://127.0.0.1:PORT/0`.
Without redis-server (or the redis package) the tests that use them skip
with the reason, except under `CI=true`, where that is a failure.

A test module uses them by binding them: `redis_url = redis_fixture.redis_url`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest


def _unavailable(reason: str) -> NoReturn:
    message = f"Redis tests need a local redis-server: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: install redis-server)")
    pytest.skip(message + " (apt-get install -y redis-server; pip install -e '.[redis]')")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(directory: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """Start redis-server in `directory`; return the process and its port once it answers.

    Args:
        directory: its working directory (and log file).
        port: where it listens (default: a free port).

    Raises:
        RuntimeError: it exited or did not answer PING within 10 s.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not on PATH")
    port = port or free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    argv += ["no", "--dir", str(directory)]
    log = (directory / "redis.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=directory)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process, port
        except OSError:
            time.sleep(0.05)
    stop_redis(process)
    text = (directory / "redis.log").read_text(errors="replace")
    raise RuntimeError(f"redis-server did not start on port {port}: {text[-2000:]}")


def stop_redis(process: subprocess.Popen[bytes]) -> None:
    """Stop a redis-server started by `start_redis` (SIGTERM, then SIGKILL)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[int]:
    """A running redis-server; yields its port on 127.0.0.1."""
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not on PATH")
    try:
        import redis  # noqa: F401
    except ImportError:
        _unavailable("the redis package is not installed")
    root = Path(tempfile.mkdtemp(prefix="lockgate-redis-"))
    try:
        try:
            process, port = start_redis(root)
        except (RuntimeError, OSError) as exc:
            _unavailable(str(exc))
        try:
            yield port
        finally:
            stop_redis(process)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: int) -> str:
    """`redis://127.0.0.1:PORT/0` on an empty server."""
    import redis

    url = f"redis://127.0.0.1:{redis_server}/0"
    client = redis.Redis.from_url(url)
    try:
        client.flushall()
    finally:
        client.close()
    return url
