"""lockgate.toml: sections, precedence under environment variables, errors with file:line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lockgate.cli.main import cli
from lockgate.errors import ConfigError
from lockgate.service.config import Settings
from lockgate.service.project import find, load, parse

PIPELINES = """
import lockgate as lg

@lg.task
def step(x: str) -> str:
    return x

@lg.pipeline(schedule="0 2 * * *", timezone="Europe/Berlin", max_active_runs=1)
def nightly(logical_date: str = "none"):
    return step(logical_date)

@lg.pipeline(triggers=[lg.on_new_version("dataset:transcripts")])
def refresh():
    return step("x")
"""


def test_a_full_config_is_read_and_relative_paths_follow_the_file(project):
    project.write(
        PIPELINES,
        """
        [database]
        url = "sqlite:////tmp/elsewhere.db"

        [artifacts]
        root = "store"

        [server]
        port = 9000
        max_concurrent_runs = 2
        poll_interval = 0.5

        [pools]
        gpu = 1
        """,
        project='home = "state"\n',
    )
    parsed = parse(project.config)
    assert parsed.pipelines == (str(project.root / "pipelines.py"),)
    assert parsed.home == project.root / "state"
    assert parsed.artifact_root == str(project.root / "store")
    assert parsed.server.port == 9000 and parsed.server.host == "127.0.0.1"
    assert dict(parsed.pools) == {"gpu": 1}
    settings = Settings.from_env({}, project=parsed)
    assert settings.db_url == "sqlite:////tmp/elsewhere.db"
    assert settings.home == project.root / "state"
    # Environment variables win over the file.
    env = {"LOCKGATE_DB_URL": "sqlite:////tmp/env.db", "LOCKGATE_ARTIFACT_ROOT": "/tmp/a"}
    overridden = Settings.from_env(env, project=parsed)
    assert overridden.db_url == "sqlite:////tmp/env.db" and overridden.artifact_root == "/tmp/a"


def test_without_a_home_state_lives_beside_the_config(project, tmp_path, monkeypatch):
    project.write(PIPELINES)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = Settings.from_env({}, project=parse(project.config))
    assert settings.home == project.root / ".lockgate"


def test_the_config_is_found_by_walking_up(project, monkeypatch):
    project.write(PIPELINES)
    monkeypatch.delenv("LOCKGATE_CONFIG")
    deep = project.root / "a" / "b"
    deep.mkdir(parents=True)
    assert find(deep, env={}) == project.config
    with pytest.raises(ConfigError, match="no such file"):
        find(deep, env={"LOCKGATE_CONFIG": str(project.root / "missing.toml")})


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("[server]\nport = 80000\n", 5, "[server] port must be at most 65535"),
        ("[server]\nport = 'x'\n", 5, "[server] port must be a positive integer"),
        ("[server]\nhots = '0.0.0.0'\n", 5, "unknown key 'hots'"),
        ("[pools]\ngpu = 0\n", 5, "pool 'gpu' needs a whole number of slots >= 1"),
        ("[pool]\ngpu = 1\n", 4, "unknown section [pool]"),
        ("[database]\nurl = 5\n", 5, "[database] url must be a non-empty string"),
        ("[server]\nexecutor = 'dask'\n", 5, "must be one of 'process', 'inline', 'ray'"),
        ("[executor]\ndefault = 'dask'\n", 5, "default has executor 'dask'; choose one of"),
        (
            "[executor]\npipelines = { train = 'gpu' }\n",
            5,
            "pipeline 'train' has executor 'gpu'; choose one of process, inline, ray",
        ),
        ("[executor]\npipelines = 'ray'\n", 5, "must map pipeline names to executors"),
        ("[executor]\nray_adress = 'auto'\n", 5, "unknown key 'ray_adress'"),
    ],
)
def test_config_errors_name_the_file_line_and_key(project, text, line, expected):
    project.write(PIPELINES, "\n" + text)
    with pytest.raises(ConfigError) as caught:
        parse(project.config)
    message = str(caught.value)
    assert f"{project.config}:{line}" in message and expected in message


def test_a_syntax_error_names_the_line(project):
    project.write(PIPELINES, "[server\n")
    with pytest.raises(ConfigError, match=r"line 3"):
        parse(project.config)


def test_pipelines_list_shows_schedules_next_runs_and_triggers(project):
    project.write(PIPELINES)
    result = CliRunner().invoke(cli, ["pipelines", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"nightly", "refresh"}
    nightly = rows["nightly"]
    assert nightly["schedule"] == "0 2 * * *" and nightly["timezone"] == "Europe/Berlin"
    assert len(nightly["next_runs"]) == 3
    assert all(t.endswith(("+01:00", "+02:00")) and "T02:00:00" in t for t in nightly["next_runs"])
    assert nightly["max_active_runs"] == 1
    assert rows["refresh"]["triggers"] == ["new version of dataset:transcripts"]
    table = CliRunner().invoke(cli, ["pipelines", "list"])
    assert "nightly" in table.stdout and "0 2 * * * (Europe/Berlin)" in table.stdout


def test_a_listed_module_that_fails_names_the_config_entry(project):
    project.write("import lockgate as lg\nraise RuntimeError('boom')\n")
    result = CliRunner().invoke(cli, ["pipelines", "list"])
    assert result.exit_code == 2
    assert "pipelines entry" in result.stderr and "boom" in result.stderr


def test_without_a_config_pipelines_list_says_how_to_create_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOCKGATE_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["pipelines", "list"])
    assert result.exit_code == 2 and "no lockgate.toml found" in result.stderr


def test_run_by_name_finds_the_pipeline_through_the_project(project):
    project.write(PIPELINES)
    result = CliRunner().invoke(
        cli, ["run", "nightly", "-p", "logical_date=manual", "--executor", "inline", "--json"]
    )
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout.splitlines()[-1])["run_id"]
    workspace = project.workspace()
    record = workspace.metadata.get_run(run_id)
    assert record.trigger == "cli" and record.params == {"logical_date": "manual"}
    assert record.pipeline_ref == f"{project.root / 'pipelines.py'}:nightly"
    unknown = CliRunner().invoke(cli, ["run", "nighty"])
    assert unknown.exit_code == 2 and "no pipeline 'nighty'" in unknown.stderr


def test_executor_defaults_per_pipeline_and_the_ray_address_precedence(project):
    project.write(
        PIPELINES,
        '\n[executor]\ndefault = "inline"\nray_address = "10.0.0.5:6379"\n'
        'pipelines = { nightly = "ray" }\n',
    )
    parsed = parse(project.config)
    assert parsed.executor.for_pipeline("nightly") == "ray"
    assert parsed.executor.for_pipeline("refresh") == "inline"
    assert Settings.from_env({}, project=parsed).ray_address == "10.0.0.5:6379"
    env = {"LOCKGATE_RAY_ADDRESS": "ray://head:10001"}
    assert Settings.from_env(env, project=parsed).ray_address == "ray://head:10001"


# Regressions found by tests/chaos/test_fuzz_config.py.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"[project]\nhome = '\xff'\n", ":2: not UTF-8"),
        (
            b"[project]\nhome = '~nosuchuser/x'\n",
            ":2: [project] home: '~nosuchuser/x' is not a usable",
        ),
        (b'[artifacts]\nroot = "a\\u0000b"\n', ":2: [artifacts] root: 'a\\x00b' is not a usable"),
        (b"[project]\npipelines = ['~nosuchuser/p.py']\n", ":2: [project] pipelines"),
        (b"[server]\npoll_interval = nan\n", ":2: [server] poll_interval must be a positive"),
        (b"[server]\ndrain_timeout = inf\n", ":2: [server] drain_timeout must be a positive"),
    ],
)
def test_unusable_values_are_config_errors_naming_file_line_and_key(tmp_path, text, expected):
    path = tmp_path / "lockgate.toml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as caught:
        parse(path)
    assert f"{path}{expected}" in str(caught.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LOCKGATE_HOME": "~nosuchuser"}, "'~nosuchuser' cannot be used"),
        ({"LOCKGATE_HOME": "a\x00b"}, "LOCKGATE_HOME='a\\x00b' contains a NUL"),
        ({"LOCKGATE_CONFIG": "~nosuchuser/lockgate.toml"}, "LOCKGATE_CONFIG="),
        ({"LOCKGATE_CONFIG": "x" * 5000}, "LOCKGATE_CONFIG="),
    ],
)
def test_unusable_environment_values_are_config_errors(tmp_path, env, expected):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env, project=load(tmp_path, env))
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+nosuchdriver://x/y", r"has no dialect or driver 'postgresql\+nosuchdriver'"),
        ("sqlite:///a%00b", "is not a valid SQLAlchemy URL"),
    ],
)
def test_database_urls_that_cannot_load_are_config_errors(url, expected):
    from lockgate.stores.metadata.connect import engines

    with pytest.raises(ConfigError, match=expected):
        engines(url, busy_timeout=1.0)
