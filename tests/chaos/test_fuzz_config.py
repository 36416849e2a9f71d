"""Fuzz: lockgate.toml and the LOCKGATE_* environment.

Hypothesis writes valid config files from the documented sections, then
mutates them: TOML syntax damage, values of the wrong type, unknown sections
and keys (a `schedule` or `timezone` among them: lockgate.toml has no cron
settings, so those are unknown keys), numbers out of range, bad URLs and
paths, huge strings, NUL and other control characters, non-UTF-8 bytes. The
property: loading succeeds, or raises `ConfigError` naming the file (with the
line where the mutated key sits on one) and the key; never another exception.
Environment variables get the same treatment, naming the variable. A few cases
go through the CLI (click's runner, and a subprocess for two) to show exit
code 2 and no traceback.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from lockgate.cli.main import cli
from lockgate.errors import ConfigError
from lockgate.service.config import _VARIABLES, Settings
from lockgate.service.project import Project, load, parse

# --- valid files ---------------------------------------------------------------

NAME = st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True)
POSITIVE = st.integers(1, 64)
SECONDS = st.floats(0.01, 3600, allow_nan=False)

# section -> key -> (kind, strategy of valid values)
SECTIONS: dict[str, dict[str, tuple[str, st.SearchStrategy[Any]]]] = {
    "project": {
        "pipelines": (
            "list",
            st.lists(
                st.sampled_from(["pipelines.py", "team.pipes", "a/b.py"]), min_size=1, max_size=3
            ),
        ),
        "home": ("str", st.sampled_from([".lockgate", "state", "/tmp/lockgate-fuzz-home"])),
    },
    "database": {
        "url": (
            "str",
            st.sampled_from(["sqlite:////tmp/fuzz.db", "postgresql+psycopg://lg@127.0.0.1/lg"]),
        ),
    },
    "artifacts": {
        "root": ("str", st.sampled_from(["artifacts", "/srv/artifacts", "s3://bucket/lg"]))
    },
    "server": {
        "host": ("str", st.sampled_from(["127.0.0.1", "localhost", "::1"])),
        "port": ("int", st.integers(1, 65535)),
        "max_concurrent_runs": ("int", POSITIVE),
        "poll_interval": ("float", SECONDS),
        "drain_timeout": ("float", SECONDS),
        "executor": ("str", st.sampled_from(["process", "inline", "ray"])),
        "workers": ("int", POSITIVE),
        "open_reads": ("bool", st.booleans()),
        "allowed_hosts": (
            "list",
            st.lists(st.sampled_from(["lockgate.internal", "ml.example"]), max_size=2),
        ),
    },
    "executor": {
        "default": ("str", st.sampled_from(["process", "inline", "ray"])),
        "ray_address": ("str", st.sampled_from(["auto", "127.0.0.1:6379", "ray://head:10001"])),
        "pipelines": (
            "table",
            st.dictionaries(NAME, st.sampled_from(["process", "inline", "ray"]), max_size=2),
        ),
    },
    "pools": {},  # names are free: filled in by `valid_config`
    "openlineage": {
        "transport": ("str", st.just("http")),
        "url": ("str", st.sampled_from(["http://127.0.0.1:5000", "https://lineage.example"])),
        "namespace": ("str", st.sampled_from(["lockgate", "ml"])),
        "path": ("str", st.just("lineage.ndjson")),
    },
    "gateway": {
        "host": ("str", st.just("127.0.0.1")),
        "port": ("int", st.integers(1, 65535)),
        "open": ("bool", st.booleans()),
        "answerer": ("str", st.sampled_from(["my_llm:answer", "pkg.mod:Answer.call"])),
        "reload_interval": ("float", st.floats(0.01, 60)),
        "flush_interval": ("float", st.floats(0.01, 60)),
        "flush_size": ("int", POSITIVE),
        "queue_size": ("int", POSITIVE),
    },
}
ALERT_KEYS: dict[str, tuple[str, st.SearchStrategy[Any]]] = {
    "name": ("str", NAME),
    "on": (
        "list",
        st.lists(
            st.sampled_from(["run_failed", "sla_missed", "gate_failed"]), min_size=1, max_size=2
        ),
    ),
    "notifier": ("str", st.just("command")),
    "command": ("list", st.just(["/usr/local/bin/page", "--team", "ml"])),
    "timeout": ("str", st.sampled_from(["10s", "1m", "500ms"])),
    "max_attempts": ("int", POSITIVE),
    "rate_limit": ("int", POSITIVE),
    "severity": ("str", st.sampled_from(["critical", "error", "warning", "info"])),
}


def toml_value(value: Any) -> str:
    """A TOML literal for the JSON-like values the generator uses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # A TOML basic string: JSON's escapes, but astral characters written as
        # themselves (TOML has no surrogate-pair escapes) and DEL escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }"
    raise AssertionError(f"no TOML for {value!r}")


@dataclass
class Entry:
    section: str  # "alerts" for the n-th [[alerts]] table
    key: str
    kind: str
    value: Any


@dataclass
class Config:
    entries: list[Entry]
    extra: list[tuple[str, list[str]]]  # (header, lines) added by mutations

    def render(self) -> tuple[str, dict[int, int]]:
        """The file text, and entry index -> its line number."""
        lines: list[str] = []
        where: dict[int, int] = {}
        current = None
        for index, entry in enumerate(self.entries):
            header = "[[alerts]]" if entry.section.startswith("alerts#") else f"[{entry.section}]"
            if entry.section != current:
                lines += ["", header]
                current = entry.section
            lines.append(f"{entry.key} = {toml_value(entry.value)}")
            where[index] = len(lines)
        for header, body in self.extra:
            lines += ["", header, *body]
        return "\n".join(lines) + "\n", where


@st.composite
def valid_config(draw: st.DrawFn) -> Config:
    entries: list[Entry] = []
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), unique=True, min_size=1)):
        keys = SECTIONS[section]
        if section == "pools":
            for name in draw(st.lists(NAME, unique=True, min_size=1, max_size=3)):
                entries.append(Entry("pools", name, "int", draw(POSITIVE)))
            continue
        chosen = draw(st.lists(st.sampled_from(sorted(keys)), unique=True, min_size=1))
        if section == "openlineage":
            chosen = sorted({*chosen, "transport", "url"})  # http needs its url
        for key in chosen:
            kind, values = keys[key]
            entries.append(Entry(section, key, kind, draw(values)))
    names = draw(st.lists(NAME, unique=True, max_size=2))
    for n, name in enumerate(names):
        for key in (
            "name",
            "on",
            "notifier",
            "command",
            *draw(st.lists(st.sampled_from(sorted(ALERT_KEYS)), unique=True, max_size=3)),
        ):
            if any(e.section == f"alerts#{n}" and e.key == key for e in entries):
                continue
            kind, values = ALERT_KEYS[key]
            entries.append(Entry(f"alerts#{n}", key, kind, name if key == "name" else draw(values)))
    return Config(entries, [])


# --- mutations -----------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=5)  # TOML-encodable
WRONG: dict[str, st.SearchStrategy[Any]] = {
    "str": st.one_of(st.integers(), st.booleans(), st.just([1, 2]), st.just({"a": 1}), st.just("")),
    "int": st.one_of(TEXT, st.booleans(), st.just(1.5), st.just([1])),
    "float": st.one_of(TEXT, st.booleans(), st.just([0.5])),
    "bool": st.one_of(st.sampled_from(["true", "yes", ""]), st.integers(0, 1)),
    "list": st.one_of(TEXT, st.integers(), st.just([1, 2]), st.just([""])),
    "table": st.one_of(TEXT, st.integers(), st.just([1])),
}
OUT_OF_RANGE: dict[str, list[Any]] = {
    "int": [0, -1, -(2**63), 70000, 2**63 - 1],
    "float": [0.0, -1.0, float("nan"), float("inf"), float("-inf")],
}
ODD_STRINGS = st.one_of(
    st.text(min_size=0, max_size=40),
    st.sampled_from(
        ["\x00", "a\x00b", "~nosuchuser/x", "~", "\u202e", "é", "\U0001f600", "..", "/"]
    ),
    st.integers(5000, 100_000).map(lambda n: "x" * n),
    st.sampled_from(
        [
            "not a url",
            "http://",
            "ftp://x",
            "postgresql+nosuchdriver://x/y",
            "sqlite:///a%00b",
            "mysql://x/y",
            "://",
            "env:",
        ]
    ),
)


@dataclass
class Mutated:
    kind: str
    text: str | bytes
    key: str | None  # the key the message must name
    line: int | None  # the line the message must name
    must_fail: bool


@st.composite
def mutated(draw: st.DrawFn) -> Mutated:
    config = draw(valid_config())
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "syntax",
                "type",
                "unknown key",
                "unknown section",
                "range",
                "odd string",
                "bytes",
            ]
        )
    )
    text, where = config.render()
    if kind == "valid":
        return Mutated(kind, text, None, None, False)
    if kind == "syntax":
        position = draw(st.integers(0, len(text)))
        junk = draw(
            st.sampled_from(
                ["[", "]", "=", '"', "'", "{", "\n=", "[[", "\\", "\x00", "\x7f", "key"]
            )
        )
        cut = draw(st.integers(0, 3))
        return Mutated(kind, text[:position] + junk + text[position + cut :], None, None, False)
    if kind == "bytes":
        position = draw(st.integers(0, len(text)))
        raw = text.encode()
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xef\xbb\xbf"]))
        return Mutated(kind, raw[:position] + junk + raw[position:], None, None, False)
    # An out-of-range value needs an entry that has a range: pick one when there is.
    ranged = [i for i, e in enumerate(config.entries) if e.kind in OUT_OF_RANGE]
    if kind == "range" and ranged:
        index = draw(st.sampled_from(ranged))
    else:
        index = draw(st.integers(0, len(config.entries) - 1))
    entry = config.entries[index]
    if kind == "unknown key":
        key = draw(st.sampled_from(["typo", "schedule", "timezone", "hots", "prot", "cron"]))
        entry.key = key if entry.section != "pools" else entry.key
        if entry.section == "pools":  # any name is a pool: break its value instead
            entry.value = "two"
        text, where = config.render()
        return Mutated(kind, text, entry.key, where[index], True)
    if kind == "unknown section":
        section = draw(
            st.sampled_from(["bogus", "pool", "schedule", "cron", "Server", "project.extra"])
        )
        config.extra.append((f"[{section}]", ['timezone = "Europe/Berln"']))
        text, _ = config.render()
        return Mutated(kind, text, section.split(".")[-1], None, True)
    if kind == "type":
        entry.value = draw(WRONG[entry.kind].filter(lambda v: v != entry.value))
        text, where = config.render()
        return Mutated(kind, text, entry.key, where[index], True)
    if kind == "range" and entry.kind in OUT_OF_RANGE:
        entry.value = draw(st.sampled_from(OUT_OF_RANGE[entry.kind]))
        text, where = config.render()
        return Mutated(kind, text, entry.key, where[index], _out_of_range(entry))
    # odd strings anywhere a string goes: may load, must not crash
    if entry.kind == "str":
        entry.value = draw(ODD_STRINGS)
    elif entry.kind == "list":
        entry.value = [draw(ODD_STRINGS)]
    else:
        entry.value = draw(ODD_STRINGS)
    text, where = config.render()
    return Mutated("odd string", text, entry.key, where[index], False)


def _out_of_range(entry: Entry) -> bool:
    value = entry.value
    if entry.key == "port":
        return not 1 <= value <= 65535
    if entry.section == "gateway" and entry.key.endswith("interval"):
        return not 0 < value <= 60
    return not value > 0 or (isinstance(value, float) and not math.isfinite(value))


def check_file(path: Path, case: Mutated) -> list[str]:
    """Write and parse one file; what is wrong with the outcome."""
    if isinstance(case.text, bytes):
        path.write_bytes(case.text)
    else:
        path.write_text(case.text, encoding="utf-8", errors="surrogatepass")
    label = f"{case.kind} ({case.key}, line {case.line})"
    try:
        project = parse(path)
    except ConfigError as exc:
        message = str(exc)
        problems = []
        if str(path) not in message:
            problems.append(f"{label}: the error does not name the file: {message[:300]}")
        if case.must_fail and case.key and case.key not in message:
            problems.append(f"{label}: the error does not name {case.key!r}: {message[:300]}")
        if (
            case.must_fail
            and case.line
            and case.kind != "unknown section"
            and f"{path}:{case.line}" not in message
        ):
            problems.append(f"{label}: the error does not name line {case.line}: {message[:300]}")
        return problems
    except Exception as exc:
        return [f"{label}: {type(exc).__name__} escaped: {str(exc)[:300]}"]
    if case.must_fail:
        return [f"{label}: accepted:\n{case.text!r:.500}"]
    if not isinstance(project, Project):
        return [f"{label}: parse returned {project!r}"]
    return []


@pytest.mark.scenario("fuzz: lockgate.toml")
def test_config_files_load_or_fail_naming_the_file_line_and_key(chaos, tmp_path):
    path = tmp_path / "lockgate.toml"
    kinds: dict[str, int] = {}

    @settings(
        max_examples=chaos.size(300, 3000),
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
    @seed(chaos.seed)
    @given(case=mutated())
    def prop(case: Mutated) -> None:
        kinds[case.kind] = kinds.get(case.kind, 0) + 1
        chaos.record(check_file(path, case))

    prop()
    chaos.check()
    assert len(kinds) == 8, f"some mutation kinds never ran: {kinds}"


# --- environment ---------------------------------------------------------------

ENV_VALUES = st.one_of(
    ODD_STRINGS,
    st.sampled_from(
        ["", " ", "0", "-1", "5", "30", "1e400", "nan", "inf", "-inf", "1e-9", "0x10", "\u0661"]
    ),
    st.floats().map(repr),
)


@pytest.mark.scenario("fuzz: lockgate.toml")
def test_environment_variables_load_or_fail_naming_the_variable(chaos, tmp_path):
    names = [*_VARIABLES, "LOCKGATE_CONFIG"]

    @settings(
        max_examples=chaos.size(200, 2000),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @seed(chaos.seed)
    @given(env=st.dictionaries(st.sampled_from(names), ENV_VALUES, min_size=1, max_size=3))
    def prop(env: dict[str, str]) -> None:
        problems = []
        try:
            project = load(tmp_path, env)
            settings_ = Settings.from_env(env, project=project)
        except ConfigError as exc:
            if not any(name in str(exc) for name in env) and "state directory" not in str(exc):
                problems.append(f"{_short(env)}: the error names no variable: {str(exc)[:300]}")
        except Exception as exc:
            problems.append(f"{_short(env)}: {type(exc).__name__} escaped: {str(exc)[:300]}")
        else:
            if not settings_.home.is_absolute() or "\x00" in str(settings_.home):
                problems.append(f"{_short(env)}: home {settings_.home!r}")
            if not (0 < settings_.heartbeat_interval < settings_.heartbeat_timeout < math.inf):
                problems.append(f"{_short(env)}: heartbeats {settings_}")
            if not 0 <= settings_.db_sync_interval < math.inf:
                problems.append(f"{_short(env)}: sync interval {settings_.db_sync_interval}")
        chaos.record(problems)

    prop()
    chaos.check()


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) < 200 else text[:200] + "..."


# --- the CLI -------------------------------------------------------------------

CLI_CASES: list[tuple[str, bytes, str]] = [
    ("syntax", b"[server\nport = 1\n", "line 1"),
    ("type", b"[server]\nport = 'x'\n", "port"),
    ("unknown key", b"[server]\nschedule = '0 2 * * *'\n", "schedule"),
    ("unknown section", b"[cron]\ntimezone = 'Europe/Berln'\n", "[cron]"),
    ("range", b"[server]\npoll_interval = nan\n", "poll_interval"),
    ("not UTF-8", b"[project]\nhome = '\xff'\n", "UTF-8"),
    ("bad path", b"[project]\nhome = '~nosuchuser/x'\n", "home"),
    ("NUL", b'[artifacts]\nroot = "a\\u0000b"\n', "root"),
    ("bad URL", b'[database]\nurl = "postgresql+nosuchdriver://x/y"\n', "nosuchdriver"),
]


@pytest.mark.scenario("fuzz: lockgate.toml")
def test_the_cli_exits_2_without_a_traceback(chaos, tmp_path):
    for label, text, expected in CLI_CASES:
        path = tmp_path / f"{label.replace(' ', '_')}.toml"
        path.write_bytes(text)
        env = {"LOCKGATE_CONFIG": str(path), "LOCKGATE_HOME": str(tmp_path / "home")}
        result = CliRunner().invoke(cli, ["runs"], env=env)
        problems = []
        if result.exit_code != 2 or not isinstance(result.exception, SystemExit | None):
            problems.append(f"{label}: exit {result.exit_code}, {result.exception!r}")
        if "ConfigError" not in result.stderr or expected not in result.stderr:
            problems.append(f"{label}: stderr {result.stderr[:300]!r}")
        chaos.record(problems)
    for name, value in [("LOCKGATE_HEARTBEAT_TIMEOUT", "soon"), ("LOCKGATE_HOME", "~nosuchuser")]:
        result = CliRunner().invoke(cli, ["runs"], env={name: value, "LOCKGATE_CONFIG": ""})
        problems = []
        if result.exit_code != 2 or "ConfigError" not in result.stderr:
            problems.append(f"{name}={value!r}: exit {result.exit_code}, {result.stderr[:300]!r}")
        chaos.record(problems)
    chaos.check()


@pytest.mark.scenario("fuzz: lockgate.toml")
def test_the_lockgate_command_exits_2_without_a_traceback(chaos, tmp_path):
    # The real process: what a user sees, stderr included (two fixed cases; slow).
    for label, text, expected in [CLI_CASES[0], CLI_CASES[5]]:
        path = tmp_path / "lockgate.toml"
        path.write_bytes(text)
        env = {**os.environ, "LOCKGATE_CONFIG": str(path), "LOCKGATE_HOME": str(tmp_path / "home")}
        done = subprocess.run(
            [sys.executable, "-m", "lockgate", "runs"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        problems = []
        if done.returncode != 2:
            problems.append(f"{label}: exit {done.returncode}")
        if (
            "Traceback" in done.stderr
            or expected not in done.stderr
            or str(path) not in done.stderr
        ):
            problems.append(f"{label}: stderr {done.stderr[-500:]!r}")
        chaos.record(problems)
    chaos.check()
