"""Alert rules: the `[[alerts]]` tables of lockgate.toml, parsed and checked.

    [[alerts]]
    name = "oncall"                   # unique; part of each delivery's dedup key
    on = ["run_failed", "sla_missed"] # events: see EVENTS
    pipelines = ["nightly"]           # optional: only these pipelines
    notifier = "pagerduty"            # webhook | slack | pagerduty | command
    routing_key = "env:PD_ROUTING_KEY"
    # url = "https://events.pagerduty.com/v2/enqueue"   (the default for pagerduty)
    # command = ["/usr/local/bin/page", "--team", "ml"]  (for command)
    timeout = "10s"                   # per send
    max_attempts = 5                  # sends before a delivery is given up
    backoff = "30s"                   # first retry delay; doubles each time (capped at 1h)
    rate_limit = 20                   # deliveries per rate_window; the rest are suppressed
    rate_window = "1h"
    severity = "error"                # pagerduty: critical | error | warning | info

Secrets (`url`, `routing_key`) may be written `env:VAR`, read from the
environment only when a delivery is sent; either way they are never shown:
`repr`, errors and recorded delivery errors print `env:VAR` or `<redacted>`
(they are `lockgate.Secret`s, the type of secret pipeline parameters).
Errors name the file and line of the offending key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lockgate.errors import ConfigError, ParameterError
from lockgate.model.secrets import Secret
from lockgate.model.units import parse_duration

#: The events a rule can fire on.
EVENTS = (
    "run_failed",
    "gate_failed",
    "retry_storm",
    "sla_missed",
    "stale_input",
    "rollback",
    "gateway_load_failed",
)
NOTIFIERS = ("webhook", "slack", "pagerduty", "command")
SEVERITIES = ("critical", "error", "warning", "info")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"

_KEYS = {
    "name",
    "on",
    "pipelines",
    "notifier",
    "url",
    "routing_key",
    "command",
    "timeout",
    "max_attempts",
    "backoff",
    "rate_limit",
    "rate_window",
    "severity",
}


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One `[[alerts]]` table."""

    name: str
    on: tuple[str, ...]
    notifier: str
    pipelines: tuple[str, ...] = ()
    url: Secret | None = None
    routing_key: Secret | None = None
    command: tuple[str, ...] = ()
    timeout: float = 10.0
    max_attempts: int = 5
    backoff: float = 30.0
    rate_limit: int = 20
    rate_window: float = 3600.0
    severity: str = "error"

    def wants(self, event: str, pipeline: str | None) -> bool:
        """True when this rule fires on `event` from `pipeline`."""
        if event not in self.on:
            return False
        return not self.pipelines or pipeline is None or pipeline in self.pipelines


class _Place:
    """Line numbers of keys in the n-th `[[alerts]]` table."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def at(self, index: int, key: str | None = None) -> str:
        seen, number, inside = -1, None, False
        for line_no, raw in enumerate(self.lines, 1):
            line = raw.strip()
            if line.startswith("["):
                inside = line.replace(" ", "") == "[[alerts]]"
                if inside:
                    seen += 1
                    if seen == index and key is None:
                        number = line_no
                        break
                continue
            named = line.split("=", 1)[0].strip().strip("\"'") if "=" in line else None
            if inside and seen == index and key is not None and named == key:
                number = line_no
                break
        place = f"{self.path}:{number}" if number else str(self.path)
        return f"{place}: [[alerts]] #{index + 1}" + (f" {key}" if key else "")


def parse_alerts(path: Path, text: str, tables: Any) -> tuple[AlertRule, ...]:
    """Parse the `[[alerts]]` array of tables of one config file.

    Raises:
        ConfigError: names the file, line and key of the first problem.
    """
    place = _Place(path, text)
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{path}: alerts must be tables written [[alerts]]")
    rules: list[AlertRule] = []
    for index, table in enumerate(tables):
        rule = _rule(place, index, table)
        if any(r.name == rule.name for r in rules):
            raise ConfigError(f"{place.at(index, 'name')}: a second rule named {rule.name!r}")
        rules.append(rule)
    return tuple(rules)


def _rule(place: _Place, index: int, table: Mapping[str, Any]) -> AlertRule:
    def fail(key: str | None, message: str) -> ConfigError:
        return ConfigError(f"{place.at(index, key)}: {message}")

    for key in table:
        if key not in _KEYS:
            raise fail(key, f"unknown key {key!r}; known: {', '.join(sorted(_KEYS))}")
    for key in ("name", "on", "notifier"):
        if key not in table:
            raise fail(None, f"missing {key} = ...")
    name = table["name"]
    if not isinstance(name, str) or not name or len(name) > 100 or "|" in name:
        raise fail("name", "must be a non-empty string of at most 100 characters, without '|'")
    on = _strings(table["on"], lambda m: fail("on", m))
    unknown = [e for e in on if e not in EVENTS]
    if unknown or not on:
        raise fail("on", f"unknown event(s) {unknown or on}; choose from {', '.join(EVENTS)}")
    notifier = table["notifier"]
    if notifier not in NOTIFIERS:
        raise fail("notifier", f"{notifier!r} is not one of {', '.join(NOTIFIERS)}")
    values: dict[str, Any] = {"name": name, "on": on, "notifier": notifier}
    if "pipelines" in table:
        values["pipelines"] = _strings(table["pipelines"], lambda m: fail("pipelines", m))
    for key in ("url", "routing_key"):
        if key in table:
            if not isinstance(table[key], str) or not table[key]:
                raise fail(key, "must be a non-empty string (or 'env:VARIABLE')")
            try:
                values[key] = Secret(table[key], owner="an [[alerts]] secret")
            except ParameterError as exc:
                raise fail(key, str(exc)) from None
    if "command" in table:
        values["command"] = _strings(table["command"], lambda m: fail("command", m))
    for key in ("timeout", "backoff", "rate_window"):
        if key in table:
            try:
                seconds = parse_duration(table[key])
            except ValueError as exc:
                raise fail(key, str(exc)) from None
            if seconds <= 0:
                raise fail(key, "must be longer than 0 s")
            values[key] = seconds
    for key in ("max_attempts", "rate_limit"):
        if key in table:
            number = table[key]
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise fail(key, f"must be a whole number >= 1, got {number!r}")
            values[key] = number
    if "severity" in table and table["severity"] not in SEVERITIES:
        raise fail("severity", f"{table['severity']!r} is not one of {', '.join(SEVERITIES)}")
    if "severity" in table:
        values["severity"] = table["severity"]
    _needs(notifier, values, fail)
    return AlertRule(**values)


def _needs(notifier: str, values: Mapping[str, Any], fail: Any) -> None:
    if notifier in ("webhook", "slack") and "url" not in values:
        raise fail("notifier", f"notifier {notifier!r} needs url = 'https://...' (or 'env:VAR')")
    if notifier == "pagerduty" and "routing_key" not in values:
        raise fail("notifier", "notifier 'pagerduty' needs routing_key = 'env:VAR'")
    if notifier == "command" and not values.get("command"):
        raise fail("notifier", "notifier 'command' needs command = ['program', 'arg', ...]")
    url = values.get("url")
    literal = url.reveal() if url is not None and url.reference is None else None
    if literal is not None and not literal.startswith(("http://", "https://")):
        raise fail("url", "must start with http:// or https:// (or be 'env:VAR')")


def _strings(value: Any, fail: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail(f"must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def rules_for(rules: Sequence[AlertRule], event: str, pipeline: str | None) -> list[AlertRule]:
    """The rules that fire on `event` from `pipeline`."""
    return [rule for rule in rules if rule.wants(event, pipeline)]
