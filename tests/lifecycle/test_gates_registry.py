"""Gates, the model registry, promotion, rollback and approvals, end to end on SQLite."""

from __future__ import annotations

import pytest

import lockgate as lg
from lockgate.errors import DefinitionError, RegistryError, RunStateError, UsageError
from lockgate.model.states import EventKind, RunState, TaskState
from lockgate.service import registry
from lockgate.service.lifecycle import decide_approval

quality = {"accuracy": 0.95, "auc": 0.9, "weights": [1.0, 2.0]}


@lg.task
def train() -> dict:
    return {"weights": list(quality["weights"])}  # read at run time, not at trace time


@lg.task
def score(model: dict) -> dict:
    return {"accuracy": quality["accuracy"], "auc": quality["auc"]}


@lg.pipeline
def ship():
    model = train()
    checked = lg.gate(
        score(model), {"accuracy": ">= 0.9", "auc": ">= production - 0.05"}, model="support-bot"
    )
    registered = lg.register(model, name="support-bot", scores=checked)
    return lg.promote(registered, name="support-bot", alias="production")


@pytest.fixture(autouse=True)
def _reset():
    quality.update(accuracy=0.95, auc=0.9, weights=[1.0, 2.0])


def run(workspace, pipeline=ship):
    return lg.run(pipeline, workspace=workspace, executor="inline")


def production(workspace):
    return workspace.metadata.alias_version("model", "support-bot", "production")


def test_a_passing_gate_registers_and_promotes(workspace):
    result = run(workspace)
    assert result.ok, result.record.error
    version = production(workspace)
    assert version.version == 1 and version.gated and version.aliases == ("production",)
    assert version.metadata == {"scores": {"accuracy": 0.95, "auc": 0.9}}
    decisions = workspace.metadata.gate_decisions(result.run_id)
    assert [(d.metric, d.passed) for d in decisions] == [("accuracy", True), ("auc", True)]
    assert "no model version holds alias 'production' yet" in decisions[1].reason
    (audit,) = workspace.metadata.alias_events("model", "support-bot")
    assert (audit.action, audit.version, audit.previous_version) == ("promote", 1, None)
    assert audit.actor == f"run:{result.run_id}" and audit.run_id == result.run_id
    kinds = [e.kind for e in workspace.metadata.events(result.run_id)]
    for kind in (EventKind.GATE_PASSED, EventKind.MODEL_REGISTERED, EventKind.ALIAS_MOVED):
        assert kind in kinds


def test_a_failed_gate_stops_registration_and_promotion(workspace):
    quality["accuracy"] = 0.81
    result = run(workspace)
    assert result.status is RunState.GATE_FAILED
    assert result.nodes["gate"].state is TaskState.FAILED
    assert result.nodes["register"].state is TaskState.SKIPPED
    assert result.nodes["promote"].state is TaskState.SKIPPED
    assert "accuracy 0.81 fails >= 0.9" in result.record.error
    assert workspace.metadata.list_versions("model") == []
    assert production(workspace) is None
    failed = [
        e for e in workspace.metadata.events(result.run_id) if e.kind is EventKind.GATE_FAILED
    ]
    assert failed[0].payload["checks"][0]["passed"] is False


def test_relative_thresholds_compare_with_the_alias_version(workspace):
    run(workspace)  # v1 in production with auc 0.9
    quality.update(auc=0.8, weights=[3.0])  # worse than production by more than 0.05
    worse = run(workspace)
    assert worse.status is RunState.GATE_FAILED
    auc = next(d for d in workspace.metadata.gate_decisions(worse.run_id) if d.metric == "auc")
    assert (auc.baseline_alias, auc.baseline_version, auc.baseline_value) == ("production", 1, 0.9)
    assert auc.threshold == pytest.approx(0.85) and not auc.passed
    quality.update(auc=0.88, weights=[4.0])  # within 0.05 of production
    better = run(workspace)
    assert better.ok
    assert production(workspace).version == 2


def test_a_metric_the_scores_lack_fails_the_gate_closed(workspace):
    @lg.pipeline(name="ship")
    def missing():
        model = train()
        checked = lg.gate(score(model), {"f1": ">= 0.5"})
        return lg.register(model, name="support-bot", scores=checked)

    result = run(workspace, missing)
    assert result.status is RunState.GATE_FAILED
    (decision,) = workspace.metadata.gate_decisions(result.run_id)
    assert decision.reason == "metric 'f1' was not reported (reported: ['accuracy', 'auc'])"
    assert workspace.metadata.list_versions("model") == []


def test_malformed_gates_are_definition_errors():
    with pytest.raises(DefinitionError, match="is not OP THRESHOLD"):
        lg.gate({"a": 1}, {"a": "about 0.9"})
    with pytest.raises(DefinitionError, match="say which model"):

        @lg.pipeline
        def p():
            return lg.gate(score(train()), {"accuracy": ">= production"})

        _ = p.graph
    with pytest.raises(lg.errors.GateError, match=r"accuracy 0\.5 fails >= 0\.9"):
        lg.gate({"accuracy": 0.5}, {"accuracy": ">= 0.9"})
    assert lg.gate({"metrics": {"accuracy": 0.95}}, {"accuracy": 0.9}) == {
        "metrics": {"accuracy": 0.95}
    }


def test_promotion_needs_a_passing_gate_unless_forced_and_rollback_restores(workspace):
    @lg.pipeline(name="ship")
    def ungated():
        model = train()
        return lg.register(model, name="support-bot", scores=score(model))

    run(workspace)  # v1 promoted by the pipeline
    quality["weights"] = [9.0]
    run(workspace, ungated)  # v2 registered without a gate
    v2 = workspace.metadata.resolve_version("model", "support-bot", 2)
    assert v2.gated is False
    with pytest.raises(RegistryError, match="no passing gate"):
        registry.promote(workspace, "support-bot", 2, "production")
    assert production(workspace).version == 1  # nothing moved
    with pytest.raises(UsageError, match="--force needs --reason"):
        registry.promote(workspace, "support-bot", 2, "production", force=True)
    previous = registry.promote(
        workspace,
        "support-bot",
        2,
        "production",
        force=True,
        reason="hotfix approved by on-call",
        actor="cli:alice",
    )
    assert previous == 1 and production(workspace).version == 2
    forced = workspace.metadata.alias_events("model", "support-bot")[-1]
    assert forced.forced and forced.reason == "hotfix approved by on-call"
    was, now = registry.rollback(workspace, "support-bot", "production", actor="cli:bob")
    assert (was, now) == (2, 1) and production(workspace).version == 1
    log = workspace.metadata.alias_events("model", "support-bot", "production")
    assert [(e.action, e.version, e.previous_version) for e in log] == [
        ("promote", 1, None),
        ("promote", 2, 1),
        ("rollback", 1, 2),
    ]
    with pytest.raises(RegistryError, match="has no version 7"):
        registry.promote(workspace, "support-bot", 7, "production")
    with pytest.raises(RegistryError, match="no alias 'staging'"):
        registry.rollback(workspace, "support-bot", "staging")


def test_registering_after_a_gate_counts_as_gated(workspace):
    @lg.pipeline(name="ship")
    def ordered():
        model = train()
        passed = lg.gate(score(model), {"accuracy": ">= 0.9"})
        registered = lg.register(model, name="support-bot", after=[passed])
        return lg.promote(registered, name="support-bot", alias="production")

    result = run(workspace, ordered)
    assert result.ok, result.record.error
    assert production(workspace).gated is True


def test_promote_in_a_pipeline_refuses_an_ungated_model(workspace):
    @lg.pipeline(name="ship")
    def sneaky():
        model = train()
        registered = lg.register(model, name="support-bot")
        return lg.promote(registered, name="support-bot", alias="production")

    result = run(workspace, sneaky)
    assert result.status is RunState.FAILED
    assert "has no passing gate" in result.nodes["promote"].error
    assert production(workspace) is None


@lg.pipeline
def reviewed():
    model = train()
    checked = lg.gate(score(model), {"accuracy": ">= 0.9"})
    registered = lg.register(model, name="support-bot", scores=checked)
    ok = lg.approval("promote support-bot to production", approvers=["alice"], after=[registered])
    return lg.promote(registered, name="support-bot", alias="production").after(ok)


def test_an_approval_pauses_the_run_until_someone_decides(workspace):
    waiting = run(workspace, reviewed)
    assert waiting.status is RunState.WAITING
    assert waiting.nodes["approval"].state is TaskState.WAITING
    assert waiting.nodes["promote"].state is TaskState.PENDING
    assert "lockgate approve" in waiting.record.error
    assert production(workspace) is None
    with pytest.raises(RunStateError, match="its approvers are alice"):
        decide_approval(workspace, waiting.run_id, "approval", approve=True, by="mallory")
    with pytest.raises(lg.errors.NodeNotFoundError, match="approval nodes: approval"):
        decide_approval(workspace, waiting.run_id, "train", approve=True, by="alice")
    done = decide_approval(
        workspace,
        waiting.run_id,
        "approval",
        approve=True,
        by="alice",
        reason="eval looks good",
        executor="inline",
    )
    assert done.ok and done.run_id == waiting.run_id
    assert production(workspace).version == 1
    (decision,) = workspace.metadata.approvals(waiting.run_id)
    assert (decision.decision, decision.by, decision.reason) == (
        "approved",
        "alice",
        "eval looks good",
    )
    with pytest.raises(RunStateError, match="not waiting"):
        decide_approval(workspace, waiting.run_id, "approval", approve=False, by="alice")


def test_a_rejection_fails_the_node_and_skips_promotion(workspace):
    waiting = run(workspace, reviewed)
    done = decide_approval(
        workspace,
        waiting.run_id,
        "approval",
        approve=False,
        by="alice",
        reason="not during the freeze",
        executor="inline",
    )
    assert done.status is RunState.FAILED
    assert "rejected by alice: not during the freeze" in done.record.error
    assert done.nodes["promote"].state is TaskState.SKIPPED
    assert production(workspace) is None
