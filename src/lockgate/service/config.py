"""Settings from the environment: where metadata and artifacts live.

LOCKGATE_HOME           state directory (default: ./.lockgate)
LOCKGATE_DB_URL         metadata database URL (default: SQLite file in LOCKGATE_HOME)
LOCKGATE_ARTIFACT_ROOT  artifact store root, a path or fsspec URL
                        (default: LOCKGATE_HOME/artifacts)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lockgate.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings of one lockgate installation."""

    home: Path
    db_url: str
    artifact_root: str

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, home: str | Path | None = None
    ) -> Settings:
        """Read settings from `env` (default: os.environ); `home` overrides LOCKGATE_HOME.

        Raises:
            ConfigError: a variable is set but empty.
        """
        env = os.environ if env is None else env
        for name in ("LOCKGATE_HOME", "LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT"):
            if name in env and not env[name].strip():
                raise ConfigError(f"{name} is set but empty; unset it or give it a value")
        root = Path(home if home is not None else env.get("LOCKGATE_HOME", ".lockgate"))
        root = root.expanduser().absolute()
        db_url = env.get("LOCKGATE_DB_URL") or f"sqlite:///{root / 'lockgate.db'}"
        artifact_root = env.get("LOCKGATE_ARTIFACT_ROOT") or str(root / "artifacts")
        return cls(home=root, db_url=db_url, artifact_root=artifact_root)
