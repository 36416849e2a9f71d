"""Project configuration: `lockgate.toml`, found by walking up from the working directory.

`LOCKGATE_CONFIG` names the file explicitly. Without a file every setting
keeps its default. Unknown sections or keys, and values of the wrong type,
are errors that name the file, the line and the key, so a typo never
silently turns a feature off. Relative paths are relative to the file.

    [project]
    pipelines = ["pipelines.py", "my_team.pipelines"]  # files or importable modules
    home = ".lockgate"            # state directory (LOCKGATE_HOME wins)

    [database]
    url = "postgresql+psycopg://lockgate@127.0.0.1/lockgate"   # LOCKGATE_DB_URL wins

    [artifacts]
    root = "/srv/lockgate/artifacts"                          # LOCKGATE_ARTIFACT_ROOT wins

    [server]
    host = "127.0.0.1"            # a non-loopback host needs allow_remote and an API token
    allow_remote = false          # true: a non-loopback host is allowed (once a token exists)
    port = 8787
    max_concurrent_runs = 4       # runs this server drives at once
    poll_interval = 1.0           # seconds between scheduler/launcher passes
    drain_timeout = 60            # SIGTERM: seconds running runs get to finish
    executor = "process"          # how launched runs execute their tasks ([executor] default)
    workers = 2                   # process pool size per run

    [executor]
    default = "process"           # process | inline | ray (the --executor flag wins)
    ray_address = "auto"          # where `ray` runs tasks (LOCKGATE_RAY_ADDRESS wins);
                                  # unset: a Ray instance started on this machine per run
    pipelines = { train = "ray" } # per-pipeline defaults, over `default`

    [pools]
    gpu = 1                       # @lg.task(pool="gpu"): one at a time, across runs

    [openlineage]
    transport = "file"            # off (default) | console | file | http
    path = "lineage.ndjson"       # for file
    url = "http://127.0.0.1:5000" # for http
    namespace = "lockgate"        # the OpenLineage job namespace

    [[alerts]]                    # repeat for more rules; see service/alertrules.py
    name = "oncall"
    on = ["run_failed", "sla_missed"]
    notifier = "slack"
    url = "env:SLACK_WEBHOOK_URL"

    [gateway]                     # `lockgate gateway`; see service/gatewayconfig.py
    port = 8788
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lockgate.errors import ConfigError
from lockgate.model.secrets import Secret
from lockgate.service.alertrules import AlertRule, parse_alerts
from lockgate.service.gatewayconfig import GatewaySettings, parse_gateway

FILENAME = "lockgate.toml"
TRANSPORTS = ("off", "console", "file", "http")
#: Where tasks can run: a pool of worker processes, the coordinator's thread, a Ray cluster.
EXECUTORS = ("process", "inline", "ray")
DEFAULT_EXECUTOR = "process"


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """Which executor runs a pipeline's tasks when the command does not say.

    Attributes:
        default: for every pipeline without an entry in `pipelines`.
        ray_address: the Ray cluster `ray` uses (None: start one per run here).
        pipelines: pipeline name -> executor.
    """

    default: str = DEFAULT_EXECUTOR
    ray_address: str | None = None
    pipelines: Mapping[str, str] = field(default_factory=dict)

    def for_pipeline(self, pipeline: str | None) -> str:
        """The configured executor of `pipeline` (its own entry, else the default)."""
        return self.pipelines.get(pipeline or "", self.default)


@dataclass(frozen=True, slots=True)
class OpenLineageSettings:
    """Where OpenLineage events go (nowhere by default)."""

    transport: str = "off"
    path: Path | None = None
    url: str | None = None
    endpoint: str = "api/v1/lineage"
    api_key: Secret | None = None  # a literal or `env:VAR`, revealed only for the transport
    namespace: str = "lockgate"

    @property
    def enabled(self) -> bool:
        """True unless the transport is off."""
        return self.transport != "off"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How `lockgate server` listens and launches runs."""

    host: str = "127.0.0.1"
    port: int = 8787
    max_concurrent_runs: int = 4
    poll_interval: float = 1.0
    drain_timeout: float = 60.0
    executor: str | None = None  # None: [executor] default / per-pipeline entries
    workers: int | None = None
    # Reads (GET) without a token, honoured only while bound to loopback.
    open_reads: bool = False
    # Host names the API answers besides localhost, 127.0.0.1 and [::1] (DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()
    # A non-loopback host is refused unless this (or --allow-remote) and a token exist.
    allow_remote: bool = False


@dataclass(frozen=True, slots=True)
class Project:
    """A parsed `lockgate.toml` (or the defaults when there is none).

    Attributes:
        pipelines: where pipelines are defined: .py files (absolute) or module names.
        home, db_url, artifact_root: storage settings (environment variables win).
    """

    path: Path | None = None
    pipelines: tuple[str, ...] = ()
    home: Path | None = None
    db_url: str | None = None
    artifact_root: str | None = None
    server: ServerSettings = field(default_factory=ServerSettings)
    pools: Mapping[str, int] = field(default_factory=dict)
    openlineage: OpenLineageSettings = field(default_factory=OpenLineageSettings)
    alerts: tuple[AlertRule, ...] = ()
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)


def find(start: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The config file: LOCKGATE_CONFIG, else the nearest lockgate.toml upwards."""
    env = os.environ if env is None else env
    explicit = env.get("LOCKGATE_CONFIG")
    if explicit:
        try:
            path = Path(explicit).expanduser()
            found = path.is_file()
        except (RuntimeError, OSError, ValueError) as exc:  # ~nobody, too long, NUL
            raise ConfigError(f"LOCKGATE_CONFIG={explicit!r} is not a usable path: {exc}") from None
        if not found:
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
            a value of the wrong type; the message names the file, line and key.
    """
    path = find(start, env)
    if path is None:
        return Project()
    return parse(path)


def parse(path: Path) -> Project:
    """Parse one config file (see the module docstring for its sections)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start}); "
            "TOML files are UTF-8: re-save the file in that encoding"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    where = _Where(path, text)
    known = {
        "project",
        "database",
        "artifacts",
        "server",
        "pools",
        "openlineage",
        "alerts",
        "gateway",
        "executor",
    }
    for name, section in data.items():
        if name not in known:
            raise ConfigError(
                f"{where.at(name)}: unknown section [{name}]; known sections: "
                f"{', '.join(sorted(known))}"
            )
        if name == "alerts":
            continue  # an array of tables ([[alerts]]), checked by parse_alerts
        if not isinstance(section, dict):
            raise ConfigError(f"{where.at(name)}: {name} must be a table ([{name}])")
    project = _section(where, data, "project", {"pipelines": list, "home": str})
    database = _section(where, data, "database", {"url": str})
    artifacts = _section(where, data, "artifacts", {"root": str})
    server = _server(where, data)
    pipelines = []
    for entry in project.get("pipelines", []):
        if not isinstance(entry, str) or not entry:
            raise ConfigError(
                f"{where.at('project', 'pipelines')}: [project] pipelines must list files "
                f"(pipelines.py) or module names (my_team.pipelines), got {entry!r}"
            )
        pipelines.append(_pipeline_source(path, entry, where.at("project", "pipelines")))
    return Project(
        path=path,
        pipelines=tuple(pipelines),
        home=(
            _relative(path, project["home"], where.at("project", "home"))
            if "home" in project
            else None
        ),
        db_url=database.get("url"),
        artifact_root=(
            str(_relative(path, artifacts["root"], where.at("artifacts", "root")))
            if "root" in artifacts and "://" not in artifacts["root"]
            else artifacts.get("root")
        ),
        server=server,
        pools=_pools(where, data.get("pools", {})),
        openlineage=_openlineage(path, where, data.get("openlineage", {})),
        alerts=parse_alerts(path, text, data.get("alerts", [])),
        gateway=parse_gateway(path, text, data.get("gateway", {})),
        executor=_executor(where, data.get("executor", {})),
    )


class _Where:
    """Names a key's place in the file: `path:LINE [section] key`."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line(self, section: str, key: str | None = None) -> int | None:
        current = None
        for number, raw in enumerate(self.lines, 1):
            line = raw.strip()
            if line.startswith("[") and not line.startswith("[["):
                current = line.strip("[]").strip()
                if key is None and current == section:
                    return number
            elif key is not None and current == section:
                name = line.split("=", 1)[0].strip().strip('"').strip("'")
                if "=" in line and name == key:
                    return number
        return None

    def at(self, section: str, key: str | None = None) -> str:
        number = self.line(section, key)
        place = f"{self.path}:{number}" if number else str(self.path)
        return f"{place}: [{section}]" + (f" {key}" if key else "")


def _section(where: _Where, data: Mapping[str, Any], name: str, keys: dict[str, type]) -> Any:
    section = data.get(name, {})
    for key, value in section.items():
        if key not in keys:
            raise ConfigError(
                f"{where.at(name, key)}: unknown key {key!r}; known: {', '.join(sorted(keys))}"
            )
        expected = keys[key]
        if not isinstance(value, expected) or isinstance(value, bool) or value in ("", []):
            what = "a non-empty list" if expected is list else "a non-empty string"
            raise ConfigError(f"{where.at(name, key)} must be {what}, got {value!r}")
    return section


def _number(where: _Where, section: str, key: str, value: Any, *, integer: bool) -> Any:
    kinds = (int,) if integer else (int, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, kinds)
        or not math.isfinite(value)
        or value <= 0
    ):
        what = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{where.at(section, key)} must be {what}, got {value!r}")
    return value


def _server(where: _Where, data: Mapping[str, Any]) -> ServerSettings:
    section = data.get("server", {})
    defaults = ServerSettings()
    values: dict[str, Any] = {}
    integers = {"port", "max_concurrent_runs", "workers"}
    numbers = {"poll_interval", "drain_timeout"}
    strings = {"host", "executor"}
    flags = {"open_reads", "allow_remote"}
    lists = {"allowed_hosts"}
    for key, value in section.items():
        if key in flags:
            if not isinstance(value, bool):
                raise ConfigError(f"{where.at('server', key)} must be true or false")
            values[key] = value
        elif key in lists:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(
                    f"{where.at('server', key)} must be a list of host names, "
                    'e.g. ["lockgate.internal"]'
                )
            values[key] = tuple(value)
        elif key in integers:
            values[key] = _number(where, "server", key, value, integer=True)
        elif key in numbers:
            values[key] = float(_number(where, "server", key, value, integer=False))
        elif key in strings:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where.at('server', key)} must be a non-empty string")
            values[key] = value
        else:
            known = ", ".join(sorted(integers | numbers | strings | flags | lists))
            raise ConfigError(f"{where.at('server', key)}: unknown key {key!r}; known: {known}")
    if values.get("port", defaults.port) > 65535:
        raise ConfigError(f"{where.at('server', 'port')} must be at most 65535")
    if values.get("executor", "process") not in EXECUTORS:
        raise ConfigError(
            f"{where.at('server', 'executor')} must be one of {', '.join(map(repr, EXECUTORS))}"
        )
    return ServerSettings(**values)


def _executor(where: _Where, section: Mapping[str, Any]) -> ExecutorSettings:
    allowed = ("default", "ray_address", "pipelines")
    for key, value in section.items():
        if key not in allowed:
            raise ConfigError(
                f"{where.at('executor', key)}: unknown key {key!r}; known: {', '.join(allowed)}"
            )
        if key != "pipelines" and (not isinstance(value, str) or not value):
            raise ConfigError(f"{where.at('executor', key)} must be a non-empty string")
    pipelines = section.get("pipelines", {})
    if not isinstance(pipelines, dict):
        raise ConfigError(
            f"{where.at('executor', 'pipelines')} must map pipeline names to executors, "
            'e.g. pipelines = { train = "ray" }'
        )
    choices = {"default": section.get("default", DEFAULT_EXECUTOR), **pipelines}
    for name, executor in choices.items():
        if executor not in EXECUTORS:
            key = "default" if name == "default" else "pipelines"
            what = "default" if name == "default" else f"pipeline {name!r}"
            raise ConfigError(
                f"{where.at('executor', key)}: {what} has executor {executor!r}; choose one of "
                f"{', '.join(EXECUTORS)}"
            )
    return ExecutorSettings(
        default=choices["default"],
        ray_address=section.get("ray_address"),
        pipelines=dict(pipelines),
    )


def _pools(where: _Where, section: Mapping[str, Any]) -> dict[str, int]:
    pools = {}
    for name, slots in section.items():
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise ConfigError(
                f"{where.at('pools', name)}: pool {name!r} needs a whole number of slots "
                f">= 1 (e.g. {name} = 1), got {slots!r}"
            )
        pools[name] = slots
    return pools


def _relative(path: Path, value: str, place: str) -> Path:
    """`value` as a path; a relative one is relative to the config file (`place` names it)."""
    try:
        if "\0" in value:
            raise ValueError("it contains a NUL character")
        target = Path(value).expanduser()
        return target if target.is_absolute() else (path.parent / target).resolve()
    except (RuntimeError, OSError, ValueError) as exc:  # ~nobody, too long, NUL
        raise ConfigError(f"{place}: {value!r} is not a usable path: {exc}") from None


def _pipeline_source(path: Path, entry: str, place: str) -> str:
    """A file entry made absolute; a module name kept as it is."""
    if entry.endswith(".py") or "/" in entry:
        return str(_relative(path, entry, place))
    return entry


def _openlineage(path: Path, where: _Where, section: Any) -> OpenLineageSettings:
    allowed = {"transport", "path", "url", "endpoint", "api_key", "namespace"}
    _section(where, {"openlineage": section}, "openlineage", dict.fromkeys(allowed, str))
    transport = section.get("transport", "off")
    if transport not in TRANSPORTS:
        raise ConfigError(
            f"{where.at('openlineage', 'transport')} = {transport!r}; choose one of "
            f"{', '.join(TRANSPORTS)}"
        )
    if transport == "file" and "path" not in section:
        raise ConfigError(
            f"{where.at('openlineage', 'transport')} = 'file' needs path = 'lineage.ndjson'"
        )
    if transport == "http" and "url" not in section:
        raise ConfigError(
            f"{where.at('openlineage', 'transport')} = 'http' needs url = 'http://host:port'"
        )
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
        api_key=Secret(section["api_key"], owner="[openlineage] api_key")
        if "api_key" in section
        else None,
        namespace=section.get("namespace", "lockgate"),
    )
