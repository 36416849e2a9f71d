"""`lockgate routes` on a real SQLite workspace with registered model versions."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from registered_models import register_versions

from lockgate.cli.main import cli
from lockgate.service.compose import Workspace


@pytest.fixture
def project(tmp_path: Path, home_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    workspace = Workspace()
    register_versions(workspace, 5)
    workspace.close()
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def as_json(*args: str):
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_set_shift_rollback_and_show_the_history(project):
    assert as_json("routes", "list") == []
    assert "no routes yet" in invoke("routes", "list").stdout
    made = invoke(
        "routes",
        "set",
        "support-bot",
        "model:support-bot@3=95",
        "model:support-bot@4=5",
        "--mirror",
        "model:support-bot@5",
        "--reason",
        "canary by hand",
    )
    assert made.exit_code == 0, made.output
    assert "route support-bot v1 (set): model:support-bot@3 95%, model:support-bot@4 5%" in (
        made.stdout
    )
    assert "(mirror model:support-bot@5)" in made.stdout
    shifted = as_json("routes", "shift", "support-bot", "model:support-bot@4=50")
    assert shifted["version"] == 2 and shifted["mirror"] == "model:support-bot@5"
    assert shifted["targets"] == [
        {"target": "model:support-bot@3", "weight": 50.0},
        {"target": "model:support-bot@4", "weight": 50.0},
    ]
    back = invoke("routes", "rollback", "support-bot", "--reason", "latency")
    assert back.exit_code == 0, back.output
    assert "v3 (rolled back): model:support-bot@3 95%" in back.stdout

    shown = as_json("routes", "show", "support-bot")
    assert shown["route"]["version"] == 3
    changes = shown["changes"]
    user = f"cli:{getpass.getuser()}"
    assert [(c["version"], c["action"], c["by"], c["reason"]) for c in changes] == [
        (3, "rollback", user, "latency"),
        (2, "shift", user, None),
        (1, "set", user, "canary by hand"),
    ]
    assert changes[0]["previous"]["targets"][1] == {
        "target": "model:support-bot@4",
        "weight": 50.0,
    }
    assert changes[2]["previous"] is None
    text = invoke("routes", "show", "support-bot").stdout
    assert "route support-bot v3" in text and "mirror model:support-bot@5" in text
    assert "rollback" in text and "latency" in text and "(created)" in text
    (listed,) = as_json("routes", "list")
    assert listed["name"] == "support-bot" and listed["updated_by"] == user
    assert "support-bot" in invoke("routes", "list").stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "nope"], 2, "no route named 'nope'"),
        (["rollback", "nope"], 2, "lockgate routes set nope"),
        (["set", "r", "model:support-bot@3=90"], 2, "weights sum to 90, not 100"),
        (["set", "r", "model:support-bot@9=100"], 2, "its latest version is 5"),
        (["set", "r", "support-bot=100"], 2, "is not model:NAME@VERSION=WEIGHT"),
        (["shift", "nope", "model:support-bot@4=5"], 2, "no route named 'nope'"),
        (["set", "r"], 2, "Missing argument"),
    ],
)
def test_bad_changes_exit_2_naming_the_fix(project, args, code, message):
    result = invoke("routes", *args)
    assert result.exit_code == code
    assert message in " ".join(result.output.split())
    assert as_json("routes", "list") == []


def test_rollback_of_a_new_route_says_there_is_nothing_to_roll_back(project):
    assert invoke("routes", "set", "r", "model:support-bot@1=100").exit_code == 0
    result = invoke("routes", "rollback", "r")
    assert result.exit_code == 2 and "RouteStateError" in result.output
    assert "no earlier state" in " ".join(result.output.split())
