"""Project configuration: `lockgate.toml`, found by walking up from the working directory.

`LOCKGATE_CONFIG` names the file explicitly. Without a file every setting
keeps its default. Unknown sections or keys, and values of the wrong type,
are errors that name the file and the key (syntax errors name the line too),
so a typo never silently turns a feature off.

    [openlineage]
    transport = "file"            # off (default) | console | file | http
    path = "lineage.ndjson"       # for file, relative to the config file
    url = "http://127.0.0.1:5000" # for http
    namespace = "lockgate"        # the OpenLineage job namespace
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lockgate.errors import ConfigError

FILENAME = "lockgate.toml"
TRANSPORTS = ("off", "console", "file", "http")


@dataclass(frozen=True, slots=True)
class OpenLineageSettings:
    """Where OpenLineage events go (nowhere by default)."""

    transport: str = "off"
    path: Path | None = None
    url: str | None = None
    endpoint: str = "api/v1/lineage"
    api_key: str | None = None
    namespace: str = "lockgate"

    @property
    def enabled(self) -> bool:
        """True unless the transport is off."""
        return self.transport != "off"


@dataclass(frozen=True, slots=True)
class Project:
    """A parsed `lockgate.toml` (or the defaults when there is none)."""

    path: Path | None = None
    openlineage: OpenLineageSettings = field(default_factory=OpenLineageSettings)


def find(start: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The config file: LOCKGATE_CONFIG, else the nearest lockgate.toml upwards."""
    env = os.environ if env is None else env
    explicit = env.get("LOCKGATE_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"LOCKGATE_CONFIG={explicit!r}: no such file")
        return path.resolve()
    directory = (start or Path.cwd()).resolve()
    for candidate in (directory, *directory.parents):
        path = candidate / FILENAME
        if path.is_file():
            return path
    return None


def load(start: Path | None = None, env: Mapping[str, str] | None = None) -> Project:
    """Find and parse the project's config.

    Raises:
        ConfigError: the file does not parse, or has an unknown section, key or
            a value of the wrong type; the message names the file and the key.
    """
    path = find(start, env)
    if path is None:
        return Project()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    known = {"openlineage"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{path}: unknown section [{unknown[0]}]; known sections: {', '.join(sorted(known))}"
        )
    return Project(path=path, openlineage=_openlineage(path, data.get("openlineage", {})))


def _openlineage(path: Path, section: Any) -> OpenLineageSettings:
    where = f"{path}: [openlineage]"
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a table")
    allowed = {"transport", "path", "url", "endpoint", "api_key", "namespace"}
    for key, value in section.items():
        if key not in allowed:
            raise ConfigError(
                f"{where} has unknown key {key!r}; known: {', '.join(sorted(allowed))}"
            )
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} {key} must be a non-empty string, got {value!r}")
    transport = section.get("transport", "off")
    if transport not in TRANSPORTS:
        raise ConfigError(
            f"{where} transport = {transport!r}; choose one of {', '.join(TRANSPORTS)}"
        )
    if transport == "file" and "path" not in section:
        raise ConfigError(f"{where} transport = 'file' needs path = 'lineage.ndjson'")
    if transport == "http" and "url" not in section:
        raise ConfigError(f"{where} transport = 'http' needs url = 'http://host:port'")
    file_path = None
    if "path" in section:
        file_path = Path(section["path"])
        if not file_path.is_absolute():
            file_path = path.parent / file_path
    return OpenLineageSettings(
        transport=transport,
        path=file_path,
        url=section.get("url"),
        endpoint=section.get("endpoint", "api/v1/lineage"),
        api_key=section.get("api_key"),
        namespace=section.get("namespace", "lockgate"),
    )
