"""System nodes: gate, register, promote and approval, wired like tasks, run by lockgate.

They appear in the graph like any node (so they are drawn, hashed and
skipped like tasks), but the coordinator runs them itself, because they read
and write the registry: a gate compares scores with thresholds (possibly
relative to a registry alias) and records its verdict; register records a
model version with its scores; promote moves an alias; approval waits for a
person. Everything they decide is committed with the node's result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lockgate.errors import DefinitionError, GateError, RegistryError
from lockgate.model.gates import judge, metric_values, parse_checks
from lockgate.model.policy import Resources, RetryPolicy
from lockgate.model.task import Task, TaskSpec
from lockgate.model.versions import check_name

SYSTEM_KINDS = ("gate", "register", "promote", "approval")


def _system_task(kind: str, fn: Any, name: str | None) -> Task:
    node_name = name or kind
    if not node_name.isidentifier():
        raise DefinitionError(f"{kind} name {node_name!r} must be a Python identifier")
    spec = TaskSpec(
        name=node_name,
        version=f"lockgate.{kind}/1",
        retry=RetryPolicy(),
        timeout=None,
        cache=None,
        pool=None,
        resources=Resources(),
        system=kind,
    )
    return Task(fn, spec)


def _gate(scores: Any, checks: Mapping[str, str], model: str | None = None) -> Any:
    # Outside a pipeline (a notebook, a test): absolute checks only.
    verdicts = []
    for check in parse_checks("gate", checks):
        if check.alias is not None:
            raise GateError(
                f"gate check {check.metric!r} is relative to alias {check.alias!r}, which needs "
                "the registry: use the gate inside a pipeline"
            )
        verdicts.append(judge(check, metric_values(scores).get(check.metric), None))
    failed = [v for v in verdicts if not v.passed]
    if failed:
        raise GateError("gate failed: " + "; ".join(v.reason for v in failed))
    return scores


def gate(
    scores: Any,
    checks: Mapping[str, Any],
    *,
    model: str | None = None,
    name: str | None = None,
    after: Any = (),
) -> Any:
    """A node that passes `scores` on only if every check holds.

    Args:
        scores: evaluator scores (the output of `lg.evaluate`, or a dict of metrics).
        checks: `{"metric": "OP THRESHOLD"}`; THRESHOLD is a number or
            `ALIAS [+|-] NUMBER`, relative to the model version holding that alias.
        model: the registry model whose aliases relative thresholds refer to.
        name: the node id (default `gate`, `gate_2`, ...).
        after: nodes that must finish first, without passing data.

    Returns:
        Inside a pipeline, the placeholder of the checked scores: give it to
        `lg.register(..., scores=...)` so registration runs only after a pass.

    Raises:
        DefinitionError: a malformed check, or a relative check without `model`.
    """
    label = name or "gate"
    parsed = parse_checks(label, checks)
    if any(c.alias for c in parsed) and model is None:
        raise DefinitionError(
            f"gate {label!r} compares with a registry alias "
            f"({next(c.expression for c in parsed if c.alias)!r}); say which model: "
            "lg.gate(scores, {...}, model='support-bot')"
        )
    if model is not None:
        check_name("model", model)
    return _system_task("gate", _gate, name)(scores, checks=dict(checks), model=model, after=after)


def _needs_pipeline(*_: Any, **__: Any) -> Any:
    raise RegistryError(
        "lg.register, lg.promote and lg.approval are pipeline nodes: call them inside an "
        "@lg.pipeline body (from a shell, use `lockgate models promote` / `lockgate approve`)"
    )


def register(model: Any, *, name: str, scores: Any = None, after: Any = ()) -> Any:
    """A node that records `model` as a version of registry model `name`, with its scores.

    The same content registers once (re-runs return the existing version). A
    version whose scores come through a passing `lg.gate` (or that waits for
    one with `after=[gate]`) is marked gated; only gated versions can be
    promoted without `--force`.

    Returns:
        The placeholder of the model (pass it to `lg.promote`).
    """
    check_name("model", name)
    return _system_task("register", _needs_pipeline, None)(
        model, name=name, scores=scores, after=after
    )


def promote(
    model: Any, *, name: str, alias: str, reason: str | None = None, after: Any = ()
) -> Any:
    """A node that points registry alias `alias` of model `name` at this model's version.

    Refused (the node fails) when the version was not registered through a
    passing gate. The move is recorded in the alias audit log with the run id.
    """
    check_name("model", name)
    if not isinstance(alias, str) or not alias.replace("-", "_").isidentifier():
        raise DefinitionError(f"promote: alias {alias!r} must be a name such as 'production'")
    return _system_task("promote", _needs_pipeline, None)(
        model, name=name, alias=alias, reason=reason, after=after
    )


def approval(
    message: str,
    *,
    approvers: Iterable[str] | None = None,
    name: str | None = None,
    after: Any = (),
) -> Any:
    """A node that waits, holding no worker, until someone approves or rejects it.

    `lockgate approve RUN NODE --reason ...` (or `reject`) decides; the run
    waits (state `waiting`) and survives restarts meanwhile. Rejection fails
    the node and skips everything downstream.

    Args:
        message: what is being approved, shown to approvers.
        approvers: who may decide (default: anyone).
        name: the node id (default `approval`).
        after: nodes that must finish before approval is asked for.
    """
    if not isinstance(message, str) or not message:
        raise DefinitionError("lg.approval needs a message saying what is being approved")
    who = sorted(set(approvers)) if approvers is not None else None
    if who is not None and not all(isinstance(a, str) and a for a in who):
        raise DefinitionError("lg.approval: approvers must be non-empty strings")
    return _system_task("approval", _needs_pipeline, name)(message, approvers=who, after=after)
