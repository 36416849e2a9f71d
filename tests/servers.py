"""Start real `lockgate server` processes for tests, and stop them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A `python -m lockgate server` subprocess in its own session, with its log."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.parent / f"server-{self.port}.log"
        full_env = {
            **os.environ,
            "LOCKGATE_CONFIG": str(config),
            "LOCKGATE_HEARTBEAT_INTERVAL": "0.2",
            "LOCKGATE_HEARTBEAT_TIMEOUT": "1.5",
            **(env or {}),
        }
        # A short default drain keeps teardown quick; a test's own --drain-timeout wins.
        argv = [sys.executable, "-m", "lockgate", "server", "--port", str(self.port)]
        argv += ["--drain-timeout", "1", *args]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=config.parent,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def health(self) -> dict | None:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def wait_ready(self, timeout: float = 30.0) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}:\n{self.output()}")
            if self.health() is not None:
                return self
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
