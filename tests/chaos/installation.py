"""Drive real `lockgate` commands against one installation in a temp dir."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import sqlalchemy as sa

from lockgate.service.config import Settings

LOCKGATE = str(Path(sys.executable).with_name("lockgate"))
PIPELINE = Path(__file__).with_name("thirty.py")


class Installation:
    """A LOCKGATE_HOME (SQLite unless `db_url`) with pipeline files beside it.

    `files` maps file names to pipeline source (default: the 30-node thirty.py);
    `env` overrides the environment every command gets (fast heartbeats by
    default, so a killed coordinator's run goes stale within a second).
    """

    def __init__(
        self,
        root: Path,
        *,
        db_url: str | None = None,
        files: dict[str, str] | None = None,
        **env: str,
    ) -> None:
        self.root = root
        self.marks = root / "marks"
        self.marks.mkdir(parents=True, exist_ok=True)
        for name, source in (files or {"thirty.py": PIPELINE.read_text()}).items():
            (root / name).write_text(source)
        self.tag = uuid.uuid4().hex  # finds this installation's processes
        self.env = {**os.environ}
        for name in (
            "LOCKGATE_DB_URL",
            "LOCKGATE_ARTIFACT_ROOT",
            "LOCKGATE_LOGS_ROOT",
            "LOCKGATE_FAILPOINTS",
            "LOCKGATE_DB_BUSY_TIMEOUT",
            "LOCKGATE_CONFIG",
        ):
            self.env.pop(name, None)
        self.env.update(
            {
                "LOCKGATE_HOME": str(root / "home"),
                "LOCKGATE_HEARTBEAT_INTERVAL": "0.2",
                "LOCKGATE_HEARTBEAT_TIMEOUT": "1",
                "CHAOS_MARKS": str(self.marks),
                "LOCKGATE_TEST_TAG": self.tag,
                **env,
            }
        )
        if db_url:
            self.env["LOCKGATE_DB_URL"] = db_url
        self.db = root / "home" / "lockgate.db"

    @property
    def settings(self) -> Settings:
        """The installation's resolved settings (for the checker)."""
        return Settings.from_env(self.env)

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        """Run `lockgate ARGS` to completion with extra environment `env`."""
        return subprocess.run(
            [LOCKGATE, *args],
            cwd=self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        """Start `lockgate ARGS` in the background."""
        return subprocess.Popen(
            [LOCKGATE, *args],
            cwd=self.root,
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run_ids(self) -> set[str]:
        """Every run recorded so far."""
        engine = sa.create_engine(self.settings.db_url)
        try:
            with engine.connect() as conn:
                return {r for (r,) in conn.execute(sa.text("SELECT id FROM runs"))}
        except sa.exc.OperationalError:
            return set()  # no database yet
        finally:
            engine.dispose()

    def status(self, run_id: str) -> str:
        """The run's recorded status."""
        engine = sa.create_engine(self.settings.db_url)
        try:
            with engine.connect() as conn:
                query = sa.text("SELECT status FROM runs WHERE id = :r")
                return str(conn.execute(query, {"r": run_id}).scalar_one())
        finally:
            engine.dispose()

    def executions(self, run_id: str) -> dict[str, int]:
        """How many times each node's user code started in `run_id` (marker bytes)."""
        return {
            path.name.split(".", 1)[1]: len(path.read_text())
            for path in self.marks.glob(f"{run_id}.*")
        }

    def attempts(self, run_id: str) -> dict[str, int]:
        """How many attempts each node of `run_id` has on record."""
        engine = sa.create_engine(self.settings.db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "SELECT t.node_id, count(a.id) FROM task_runs t LEFT JOIN attempts a "
                        "ON a.task_run_id = t.id WHERE t.run_id = :r GROUP BY t.node_id"
                    ),
                    {"r": run_id},
                )
                return {node: n for node, n in rows}
        finally:
            engine.dispose()
