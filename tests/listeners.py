"""Start `lockgate server` / `lockgate gateway` as processes, and see where they listen.

For the bind tests: a listener is checked from outside, with the addresses
its process's listening sockets are bound to (psutil, what `ss -ltn` shows)
and a real connection to 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil


def free_port() -> int:
    """A TCP port free on every address right now."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


class Listener:
    """`python -m lockgate COMMAND --port PORT ARGS...` in its own session."""

    def __init__(self, root: Path, command: str, *args: str, env: dict[str, str]) -> None:
        """Start it in `root` with `env` added to the environment."""
        self.port = free_port()
        self.log = root / f"{command}-{self.port}.log"
        argv = [sys.executable, "-m", "lockgate", command, "--port", str(self.port), *args]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=root,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def healthz(self) -> int:
        """The status of GET /healthz over a connection to 127.0.0.1."""
        url = f"http://127.0.0.1:{self.port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)

    def wait_ready(self, timeout: float = 60.0) -> Listener:
        """Wait until /healthz answers on 127.0.0.1 (fail with the log if it exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"exited {self.process.returncode}:\n{self.output()}")
            try:
                if self.healthz() == 200:
                    return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout:g} s:\n{self.output()}")

    def listening(self) -> set[str]:
        """The addresses the process listens on at its port (`ss -ltn`'s local addresses)."""
        connections = psutil.Process(self.process.pid).net_connections(kind="tcp")
        return {
            c.laddr.ip
            for c in connections
            if c.status == psutil.CONN_LISTEN and c.laddr.port == self.port
        }

    def output(self) -> str:
        """What it printed."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
