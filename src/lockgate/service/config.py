"""Settings: where state lives and how liveness is judged.

Environment variables win over `lockgate.toml` ([project] home, [database]
url, [artifacts] root), which wins over the defaults below.

LOCKGATE_HOME                 state directory (default: ./.lockgate)
LOCKGATE_DB_URL               metadata database URL (default: SQLite file in LOCKGATE_HOME)
LOCKGATE_ARTIFACT_ROOT        artifact store root, a path or fsspec URL
                              (default: LOCKGATE_HOME/artifacts)
LOCKGATE_LOGS_ROOT            captured task output (default: LOCKGATE_HOME/logs)
LOCKGATE_DB_BUSY_TIMEOUT      seconds a SQLite writer waits for another's write lock
                              before failing with MetadataBusyError (default 30)
LOCKGATE_DB_SYNC_INTERVAL     at most how many seconds a run's task transitions wait
                              for their (shared) fsync on SQLite; 0 fsyncs every
                              commit (default 0.05, see docs/failures.md)
LOCKGATE_HEARTBEAT_INTERVAL   seconds between a coordinator's heartbeats (default 5)
LOCKGATE_HEARTBEAT_TIMEOUT    a running run whose heartbeat is older is stale:
                              its coordinator is presumed dead (default 30)
LOCKGATE_RAY_ADDRESS          the Ray cluster of `--executor ray`: auto, HOST:PORT or
                              ray://HOST:PORT (default: [executor] ray_address, else
                              a Ray instance started on this machine for each run)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lockgate.errors import ConfigError
from lockgate.service.project import Project

_VARIABLES = (
    "LOCKGATE_HOME",
    "LOCKGATE_DB_URL",
    "LOCKGATE_ARTIFACT_ROOT",
    "LOCKGATE_LOGS_ROOT",
    "LOCKGATE_DB_BUSY_TIMEOUT",
    "LOCKGATE_DB_SYNC_INTERVAL",
    "LOCKGATE_HEARTBEAT_INTERVAL",
    "LOCKGATE_HEARTBEAT_TIMEOUT",
    "LOCKGATE_RAY_ADDRESS",
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings of one lockgate installation."""

    home: Path
    db_url: str
    artifact_root: str
    logs_root: str
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 30.0
    ray_address: str | None = None
    db_busy_timeout: float = 30.0
    db_sync_interval: float = 0.05

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        home: str | Path | None = None,
        project: Project | None = None,
    ) -> Settings:
        """Read settings from `env` (default: os.environ), then `project`'s config.

        `home` overrides both LOCKGATE_HOME and the config's [project] home.

        Raises:
            ConfigError: a variable is set but empty or not a valid number, or the
                heartbeat timeout is not longer than the interval.
        """
        env = os.environ if env is None else env
        for name in _VARIABLES:
            if name in env and not env[name].strip():
                raise ConfigError(f"{name} is set but empty; unset it or give it a value")
            if "\0" in env.get(name, ""):
                raise ConfigError(f"{name}={env[name]!r} contains a NUL character")
        project = project or Project()
        if home is None:
            home = env.get("LOCKGATE_HOME") or project.home
        if home is None:
            # With a config file, state lives beside it wherever the command runs.
            home = project.path.parent / ".lockgate" if project.path else ".lockgate"
        try:
            root = Path(home).expanduser().absolute()
        except RuntimeError as exc:  # ~nobody: no such user
            raise ConfigError(f"the state directory {str(home)!r} cannot be used: {exc}") from None
        interval = _seconds(env, "LOCKGATE_HEARTBEAT_INTERVAL", 5.0)
        timeout = _seconds(env, "LOCKGATE_HEARTBEAT_TIMEOUT", 30.0)
        if timeout <= interval:
            raise ConfigError(
                f"LOCKGATE_HEARTBEAT_TIMEOUT ({timeout:g} s) must be longer than "
                f"LOCKGATE_HEARTBEAT_INTERVAL ({interval:g} s), or live runs look dead"
            )
        return cls(
            home=root,
            db_url=(
                env.get("LOCKGATE_DB_URL") or project.db_url or f"sqlite:///{root / 'lockgate.db'}"
            ),
            artifact_root=(
                env.get("LOCKGATE_ARTIFACT_ROOT")
                or project.artifact_root
                or str(root / "artifacts")
            ),
            logs_root=env.get("LOCKGATE_LOGS_ROOT") or str(root / "logs"),
            heartbeat_interval=interval,
            heartbeat_timeout=timeout,
            ray_address=env.get("LOCKGATE_RAY_ADDRESS") or project.executor.ray_address,
            db_busy_timeout=_seconds(env, "LOCKGATE_DB_BUSY_TIMEOUT", 30.0),
            db_sync_interval=_seconds(env, "LOCKGATE_DB_SYNC_INTERVAL", 0.05, zero=True),
        )


def _seconds(env: Mapping[str, str], name: str, default: float, *, zero: bool = False) -> float:
    if name not in env:
        return default
    try:
        value = float(env[name])
    except ValueError:
        raise ConfigError(f"{name}={env[name]!r} is not a number of seconds") from None
    if zero and value == 0:
        return value
    if not math.isfinite(value) or value <= 0:
        kind = "zero or a positive" if zero else "a positive"
        raise ConfigError(f"{name}={env[name]!r} must be {kind} number of seconds")
    return value
