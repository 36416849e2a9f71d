"""System nodes, run by the coordinator: gate, register, promote, approval (canary: canary.py).

Each is a pure-ish decision over small inputs (scores are a few numbers, a
model is passed by reference and never loaded) plus reads of the registry.
The result says what to commit with the node's attempt: gate verdicts, a
model registration, an alias move; that the node waits for a person; or
that it keeps running and wants another look later (a canary watching).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lockgate.model.gates import judge, metric_values, parse_checks
from lockgate.model.graph import Node
from lockgate.model.refs import NodeRef
from lockgate.model.states import EventKind
from lockgate.ports.artifacts import ArtifactRef, ArtifactStore
from lockgate.ports.clock import Clock, SystemClock
from lockgate.ports.executor import ErrorInfo, Invocation, Load
from lockgate.ports.metadata import AliasMove, GateDecision, MetadataStore, Registration


@dataclass
class SystemResult:
    """What a system node decided.

    Attributes:
        output: the node's output on success (for gate, register and promote,
            the input passed on unchanged).
        error: why the node failed (never retried).
        waiting: an approval with no decision yet.
        gate_failed: the failure is a gate's verdict (the run ends gate_failed).
        watch: the node keeps running (holding no worker); decide it again
            after this many seconds (a canary watching its cohorts).
        events: events to append for the node (kind, payload), in order.
    """

    output: ArtifactRef | None = None
    error: ErrorInfo | None = None
    waiting: bool = False
    gate_failed: bool = False
    decisions: list[GateDecision] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    alias_moves: list[AliasMove] = field(default_factory=list)
    small_output: Any = None  # a JSON value to store as the output (approval)
    watch: float | None = None
    events: list[tuple[EventKind, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class SystemContext:
    """What system nodes may read."""

    store: MetadataStore
    artifacts: ArtifactStore
    run_id: str
    nodes: Mapping[str, Node]
    clock: Clock = field(default_factory=SystemClock)


def fail(kind: str, message: str, *, gate: bool = False) -> SystemResult:
    """A failed node: `lockgate.<kind>: message`, never retried (a gate verdict if `gate`)."""
    error = ErrorInfo(f"lockgate.{kind}", message, retryable=False, user=True)
    return SystemResult(error=error, gate_failed=gate)


def _load(ctx: SystemContext, value: Any) -> Any:
    if isinstance(value, Load):
        return ctx.artifacts.get(value.ref, trusted=True, what=value.what)
    return value


def run_gate(ctx: SystemContext, node: Node, invocation: Invocation, tr_id: int) -> SystemResult:
    """Check the scores against every threshold; all must pass."""
    (scores_in,) = invocation.args[:1]
    checks: Mapping[str, str] = invocation.kwargs["checks"]
    model: str | None = invocation.kwargs.get("model")
    scores = _load(ctx, scores_in)
    values = metric_values(scores)
    decisions = []
    for check in parse_checks(node.id, checks):
        baseline = None
        if check.alias is not None and model is not None:
            holder = ctx.store.alias_version("model", model, check.alias)
            if holder is not None:
                registered = metric_values(holder.metadata.get("scores", {}))
                baseline = (holder.version, registered.get(check.metric))
        verdict = judge(check, values.get(check.metric), baseline)
        if verdict.value is None and check.metric not in values:
            reported = sorted(k for k, v in values.items() if isinstance(v, int | float))
            reason = f"metric {check.metric!r} was not reported (reported: {reported})"
        else:
            reason = verdict.reason
        decisions.append(
            GateDecision(
                task_run_id=tr_id,
                metric=check.metric,
                op=check.op,
                expression=check.expression,
                passed=verdict.passed,
                reason=reason,
                value=verdict.value,
                threshold=verdict.threshold,
                baseline_alias=check.alias,
                baseline_version=verdict.baseline_version,
                baseline_value=verdict.baseline_value,
            )
        )
    failed = [d for d in decisions if not d.passed]
    if failed:
        result = fail(
            "GateFailed",
            f"gate {node.id!r} failed: " + "; ".join(d.reason for d in failed),
            gate=True,
        )
        result.decisions = decisions
        return result
    output = scores_in.ref if isinstance(scores_in, Load) else None
    return SystemResult(output=output, decisions=decisions, small_output=scores)


def run_register(
    ctx: SystemContext, node: Node, invocation: Invocation, tr_id: int
) -> SystemResult:
    """Record the model artifact as a version of the named model, with its scores."""
    model_in = invocation.args[0]
    if not isinstance(model_in, Load):
        return fail("RegistryError", f"node {node.id!r}: register needs a task's output as model")
    name: str = invocation.kwargs["name"]
    scores = _load(ctx, invocation.kwargs.get("scores"))
    # Gated: the scores came through a gate, or the node waited for one (after=[...]);
    # either way it runs only because that gate passed.
    source = node.kwargs.get("scores")
    upstream = [source.node] if isinstance(source, NodeRef) else []
    upstream += list(node.after)
    gated = any(ctx.nodes[name].task.spec.system == "gate" for name in upstream)
    metadata = {"scores": metric_values(scores)} if scores is not None else {}
    registration = Registration(tr_id, name, model_in.ref.sha256, metadata, gated)
    return SystemResult(output=model_in.ref, registrations=[registration])


def run_promote(ctx: SystemContext, node: Node, invocation: Invocation, tr_id: int) -> SystemResult:
    """Move the alias to this model's version, if it passed a gate."""
    model_in = invocation.args[0]
    name: str = invocation.kwargs["name"]
    alias: str = invocation.kwargs["alias"]
    if not isinstance(model_in, Load):
        return fail("RegistryError", f"node {node.id!r}: promote needs a registered model")
    version = ctx.store.version_of("model", name, model_in.ref.sha256)
    if version is None:
        return fail(
            "RegistryError",
            f"node {node.id!r}: this model is not registered as {name!r}; put "
            f"lg.register(model, name={name!r}, scores=lg.gate(...)) before lg.promote",
        )
    if not version.gated:
        return fail(
            "RegistryError",
            f"node {node.id!r}: model {name!r} version {version.version} has no passing gate; "
            "register it with scores=lg.gate(...) (or promote it by hand with "
            "`lockgate models promote --force --reason ...`)",
        )
    reason = invocation.kwargs.get("reason") or f"promoted by run {ctx.run_id}"
    move = AliasMove(
        name=name,
        alias=alias,
        action="promote",
        actor=f"run:{ctx.run_id}",
        version=version.version,
        reason=reason,
        run_id=ctx.run_id,
    )
    return SystemResult(output=model_in.ref, alias_moves=[move])


def run_approval(
    ctx: SystemContext, node: Node, invocation: Invocation, tr_id: int
) -> SystemResult:
    """Proceed on approval, fail on rejection, wait while undecided."""
    decision = next((a for a in ctx.store.approvals(ctx.run_id) if a.task_run_id == tr_id), None)
    if decision is None:
        return SystemResult(waiting=True)
    if decision.decision != "approved":
        because = f": {decision.reason}" if decision.reason else ""
        return fail("Rejected", f"{node.id!r} was rejected by {decision.by}{because}")
    return SystemResult(
        small_output={"decision": decision.decision, "by": decision.by, "reason": decision.reason}
    )


RUNNERS = {
    "gate": run_gate,
    "register": run_register,
    "promote": run_promote,
    "approval": run_approval,
}
