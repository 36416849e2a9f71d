"""`[gateway]` in lockgate.toml: how `lockgate gateway` listens, serves and scores.

    [gateway]
    host = "127.0.0.1"            # loopback by default; elsewhere needs allow_remote and a token
    allow_remote = false          # true: a non-loopback host is allowed (once a token exists)
    port = 8788
    open = false                  # true: predict/feedback/metrics need no token (loopback only)
    answerer = "my_llm:answer"    # serves prompt targets: answer(prompt, inputs, context=...)
    reload_interval = 0.5         # seconds between checks for route changes
    flush_interval = 0.2          # seconds between sample writes
    flush_size = 500              # samples per write at most
    queue_size = 10000            # samples (and mirror copies) waiting at most; more are dropped

    [[gateway.evaluators]]        # online evaluators: score responses without feedback
    type = "groundedness"         # a lockgate.evals built-in or "module:QualName"
    params = { threshold = 0.5 }  # its constructor's keyword arguments
    routes = ["support-bot"]      # optional: only these routes (default: every route)

Evaluators score one row per response: `inputs` and `question` (the
request's inputs), `answer` and `output` (the target's output), `context`
(the request's context). Their values go into the sample's `scores` under
the evaluator's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lockgate.errors import ConfigError

_ANSWERER = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_KEYS = {
    "host": str,
    "allow_remote": bool,
    "port": int,
    "open": bool,
    "answerer": str,
    "reload_interval": float,
    "flush_interval": float,
    "flush_size": int,
    "queue_size": int,
    "evaluators": list,
}
_EVALUATOR_KEYS = ("type", "params", "routes")


@dataclass(frozen=True, slots=True)
class EvaluatorSetting:
    """One `[[gateway.evaluators]]` table: an evaluator spec and the routes it scores."""

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    routes: tuple[str, ...] = ()

    def applies_to(self, route: str) -> bool:
        """Whether this evaluator scores responses of `route`."""
        return not self.routes or route in self.routes

    def spec(self) -> dict[str, Any]:
        """`{"type", "params"}` for `lockgate.evals.from_spec`."""
        return {"type": self.type, "params": dict(self.params)}


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """How `lockgate gateway` listens, serves prompt routes, batches samples and scores."""

    host: str = "127.0.0.1"
    port: int = 8788
    open: bool = False
    allow_remote: bool = False
    answerer: str | None = None
    reload_interval: float = 0.5
    flush_interval: float = 0.2
    flush_size: int = 500
    queue_size: int = 10_000
    evaluators: tuple[EvaluatorSetting, ...] = ()


def parse_gateway(path: Path, text: str, section: Any) -> GatewaySettings:
    """Parse the `[gateway]` table of one config file.

    Raises:
        ConfigError: an unknown key or a value of the wrong type, naming the file and key.
    """

    def fail(key: str | None, message: str) -> ConfigError:
        line = _line(text, key) if key else None
        place = f"{path}:{line}" if line else str(path)
        return ConfigError(f"{place}: [gateway]" + (f" {key}" if key else "") + f" {message}")

    if not isinstance(section, dict):
        raise fail(None, "must be a table ([gateway])")
    values: dict[str, Any] = {}
    for key, value in section.items():
        expected = _KEYS.get(key)
        if expected is None:
            raise fail(key, f"is an unknown key; known: {', '.join(sorted(_KEYS))}")
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise fail(key, f"must be {expected.__name__}, got {value!r}")
        values[key] = value
    for key in ("reload_interval", "flush_interval"):
        if key in values and not 0 < values[key] <= 60:
            raise fail(key, f"must be between 0 and 60 seconds, got {values[key]!r}")
    for key in ("flush_size", "queue_size"):
        if key in values and values[key] < 1:
            raise fail(key, f"must be at least 1, got {values[key]!r}")
    if "port" in values and not 1 <= values["port"] <= 65535:
        raise fail("port", f"must be 1..65535, got {values['port']!r}")
    if "host" in values and not values["host"]:
        raise fail("host", "must be a non-empty string")
    if "answerer" in values and not _ANSWERER.fullmatch(values["answerer"]):
        raise fail("answerer", f"must be 'module:function', got {values['answerer']!r}")
    if "evaluators" in values:
        values["evaluators"] = tuple(
            _evaluator(fail, index, table) for index, table in enumerate(values["evaluators"])
        )
    return GatewaySettings(**values)


def _evaluator(fail: Any, index: int, table: Any) -> EvaluatorSetting:
    where = f"evaluators #{index + 1}"
    if not isinstance(table, dict):
        raise fail("evaluators", "must be tables written [[gateway.evaluators]]")
    unknown = sorted(set(table) - set(_EVALUATOR_KEYS))
    if unknown:
        raise fail(None, f"{where}: unknown key(s) {unknown}; known: {', '.join(_EVALUATOR_KEYS)}")
    kind = table.get("type")
    if not isinstance(kind, str) or not kind:
        raise fail(None, f"{where}: needs type = 'groundedness' (or 'module:QualName')")
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise fail(None, f"{where}: params must be a table, got {params!r}")
    routes = table.get("routes", [])
    if not isinstance(routes, list) or not all(isinstance(r, str) and r for r in routes):
        raise fail(None, f"{where}: routes must be a list of route names, got {routes!r}")
    return EvaluatorSetting(kind, params, tuple(routes))


def _line(text: str, key: str) -> int | None:
    inside = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("["):
            inside = line.replace(" ", "") == "[gateway]"
            continue
        if inside and "=" in line and line.split("=", 1)[0].strip().strip("\"'") == key:
            return number
    return None
