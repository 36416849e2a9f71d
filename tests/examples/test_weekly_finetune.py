"""The weekly_finetune example end to end, as `lockgate demo` runs it: a regression, then a fix.

The example is copied into a temp dir that becomes the working directory, so
the run, the `lockgate gateway` its `live_traffic` task starts, and the alert
pass all open the same SQLite workspace. Nothing is mocked: real process
workers, a real gateway on a free 127.0.0.1 port serving the registered
scikit-learn routers, real feedback, the canary's real decisions, and the
example's own command notifier writing the page.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import lockgate as lg
from lockgate.service import record as record_service
from lockgate.service.alerts import alert_pass
from lockgate.service.loader import load_pipeline

EXAMPLE = Path(__file__).parents[2] / "examples" / "weekly_finetune"
V1, V2, V3 = (f"model:ticket-router@{n}" for n in (1, 2, 3))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "weekly_finetune"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".lockgate", "__pycache__"))
    for name in (
        "LOCKGATE_HOME",
        "LOCKGATE_DB_URL",
        "LOCKGATE_ARTIFACT_ROOT",
        "LOCKGATE_LOGS_ROOT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCKGATE_CONFIG", str(root / "lockgate.toml"))
    monkeypatch.chdir(root)
    return root


def routed(workspace: lg.Workspace) -> list[tuple[str, float]]:
    return [(t.label, t.weight) for t in workspace.metadata.get_route("ticket-router").targets]


def production(workspace: lg.Workspace) -> int | None:
    found = workspace.metadata.alias_version("model", "ticket-router", "production")
    return None if found is None else found.version


def test_a_regression_is_rolled_back_and_paged_then_a_good_candidate_is_promoted(
    project: Path,
) -> None:
    weekly_finetune = load_pipeline(f"{project / 'pipelines.py'}:weekly_finetune")
    workspace = lg.Workspace()
    try:
        # 1. The week's export swaps the returns and shipping labels.
        bad = lg.run(weekly_finetune, {"regression": True}, workspace=workspace)
        assert bad.status is lg.RunState.GATE_FAILED, bad.record.error
        assert "CanaryRolledBack" in bad.record.error and "worse than allowed" in bad.record.error
        assert routed(workspace) == [(V1, 100.0)]  # back on last week's model
        assert production(workspace) == 1  # the first week's incumbent, untouched
        candidate = workspace.metadata.resolve_version("model", "ticket-router", 2)
        # Offline, the bug is invisible: the held-out day carries the same swapped labels.
        assert candidate is not None and candidate.gated
        assert candidate.metadata["scores"]["accuracy"] == 1.0

        document = record_service.build(workspace, bad.run_id)
        (canary,) = document["canary"]
        assert canary["decision"] == "rollback" and canary["candidate"] == V2
        assert canary["percent"] == 5 and canary["metric"] == "resolved"
        assert canary["candidate_cohort"]["mean"] < canary["incumbent_cohort"]["mean"] - 0.1
        assert [c["action"] for c in document["routes"]] == [
            "set",
            "canary_start",
            "canary_rollback",
        ]
        assert {g["node"]: g["passed"] for g in document["gates"]} == {
            "incumbent_gate": True,
            "offline_gate": True,
        }
        assert document["scores"]["evaluate"]["metrics"] == {"accuracy": 1.0, "macro_f1": 1.0}
        traffic = bad.output("live_traffic")
        assert traffic["errors"] == 0 and traffic["route_states"][-1] == {V1: 100.0}
        assert traffic["models"][V2]["resolved"] < traffic["models"][V1]["resolved"]

        # The page: the example's command notifier appends it to oncall-pages.jsonl.
        assert alert_pass(workspace.metadata, workspace.project.alerts).sent == 1
        (page,) = [
            json.loads(line) for line in (project / "oncall-pages.jsonl").open() if line.strip()
        ]
        assert page["event"] == "rollback" and page["run_id"] == bad.run_id
        assert page["details"]["target"] == V2 and "worse than allowed" in page["summary"]
        (delivery,) = record_service.build(workspace, bad.run_id)["alerts"]
        assert delivery["event"] == "rollback" and delivery["status"] == "sent"

        # 2. The export is fixed: the candidate resolves more tickets than last week's model.
        good = lg.run(weekly_finetune, {"regression": False}, workspace=workspace)
        assert good.ok, good.record.error
        assert routed(workspace) == [(V3, 100.0)]
        assert production(workspace) == 3
        decided = good.output("canary")
        assert decided["decision"] == "promote" and decided["target"] == V3
        assert decided["candidate"]["n"] >= 40 and decided["incumbent"]["n"] >= 40
        assert decided["lower"] >= -0.02

        document = record_service.build(workspace, good.run_id)
        (canary,) = document["canary"]
        assert canary["decision"] == "promote" and canary["incumbents"] == [V1]
        assert [c["action"] for c in document["routes"]] == ["canary_start", "canary_promote"]
        moved = [e for e in document["registry"] if e["event"] == "alias_moved"]
        assert [(e["alias"], e["previous_version"], e["version"]) for e in moved] == [
            ("production", 1, 3)
        ]
        registered = [e for e in document["registry"] if e["event"] == "model_registered"]
        assert {(e["name"], e["version"]) for e in registered} >= {("ticket-router", 3)}
        cohorts = document["scores"]["evaluate"]["cohorts"]
        assert set(cohorts) == {"billing", "shipping", "account", "returns"}
        assert alert_pass(workspace.metadata, workspace.project.alerts).sent == 0
    finally:
        workspace.close()
