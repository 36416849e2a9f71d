"""Run lifecycle use cases: resume (here or through a server's queue), recover
orphaned runs, cancel.

Resume takes a run over in one transaction (see `MetadataStore.resume_run`)
and drives what did not commit; nodes with a committed result are never
executed again. A run is orphaned when it claims to be running but its
coordinator's heartbeat is older than `LOCKGATE_HEARTBEAT_TIMEOUT`.

A run started with a literal value for a secret parameter recorded only
`<secret>`: resuming it needs the value again (`lockgate resume RUN -p
NAME=VALUE`), and a server cannot resume it at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lockgate.engine.coordinator import format_age
from lockgate.engine.listener import RunListener
from lockgate.errors import (
    LockgateError,
    NodeNotFoundError,
    ParameterError,
    RunStateError,
    SecretUnavailableError,
)
from lockgate.model.params import unavailable_secrets
from lockgate.model.pipeline import Pipeline
from lockgate.model.secrets import MARKER
from lockgate.model.states import RunState, TaskState, Trigger
from lockgate.ports.metadata import Approval, RunRecord
from lockgate.service.compose import Workspace
from lockgate.service.loader import load_pipeline
from lockgate.service.runs import RunResult, coordinator, lineage_listener, read_run


def pipeline_for(record: RunRecord, pipeline: Pipeline | None) -> Pipeline:
    """The run's pipeline: `pipeline` if given, else loaded from the recorded ref.

    Raises:
        RunStateError: it cannot be loaded again, or its code changed since the run.
    """
    if pipeline is None:
        if not record.pipeline_ref:
            raise RunStateError(
                f"run {record.id} ran a pipeline defined where lockgate cannot load it again "
                "(inside a function or an interactive session); resume it from Python with "
                f"lg.resume({record.id!r}, pipeline=<the pipeline>)."
            )
        pipeline = load_pipeline(record.pipeline_ref)
    if pipeline.name != record.pipeline or pipeline.version != record.pipeline_version:
        where = record.pipeline_ref or "the given pipeline"
        restore = f" (git checkout {record.git_sha})" if record.git_sha else ""
        raise RunStateError(
            f"run {record.id} ran pipeline {record.pipeline!r} version "
            f"{record.pipeline_version[:12]}, but {where} is now {pipeline.name!r} version "
            f"{pipeline.version[:12]}: the code changed since the run. Resume re-executes the "
            f"recorded version only: restore that code{restore} or start a new run."
        )
    return pipeline


def refuse_stale_inputs(
    workspace: Workspace, record: RunRecord, pipeline: Pipeline, now: float
) -> None:
    """Refuse to resume a run whose pinned inputs are now older than `max_input_age`.

    A resume keeps the versions the run started with, so without this a run
    that failed for a stale input (or that waited long enough) would go on to
    consume exactly the stale data the guard is there to keep out.
    `on_stale_input="warn"` pipelines are not refused.

    Raises:
        RunStateError: an input is too old; says how to get a fresh run.
    """
    limit = pipeline.options.max_input_age
    if limit is None or pipeline.options.on_stale_input != "fail":
        return
    stale = []
    for used in workspace.metadata.run_versions(record.id):
        found = workspace.metadata.resolve_version(used.kind, used.name, used.version)
        if found is not None and now - found.created_at > limit:
            age = format_age(now - found.created_at)
            stale.append(f"{used.kind}:{used.name}@{used.version} ({age} old)")
    if stale:
        raise RunStateError(
            f"run {record.id} consumes {', '.join(stale)}, older than the pipeline's "
            f"max_input_age ({format_age(limit)}); a resume keeps the versions a run started "
            "with, so it would run on stale data: produce a fresh version, then start a new "
            f"run (lockgate run {record.pipeline})"
        )


def secret_params(
    record: RunRecord, pipeline: Pipeline, given: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The run's parameters as recorded, with secret parameters given again.

    Args:
        record: the run.
        pipeline: its pipeline.
        given: values for its secret parameters (the value, or `env:VAR`);
            other parameters keep the values the run was created with.

    Raises:
        ParameterError: `given` names a parameter that is not a secret one.
        SecretUnavailableError: a secret given as a literal when the run
            started is not given again.
    """
    params = pipeline.params_from_json(record.params)
    specs = {spec.name: spec for spec in pipeline.params}
    for name, value in (given or {}).items():
        spec = specs.get(name)
        if spec is None or spec.kind != "secret":
            secret = [s.name for s in pipeline.params if s.kind == "secret"]
            raise ParameterError(
                f"run {record.id} keeps the parameters it was created with; only secret "
                f"parameters can be given again, and {name!r} is not one (its secret "
                f"parameters: {', '.join(secret) or 'none'})"
            )
        params[name] = spec.coerce(pipeline.name, value)
    missing = unavailable_secrets(params)
    if missing:
        names = ", ".join(repr(n) for n in missing)
        flags = " ".join(f"-p {n}=VALUE" for n in missing)
        values = ", ".join(f"{n!r}: ..." for n in missing)
        raise SecretUnavailableError(
            f"run {record.id} was started with a literal value for secret parameter(s) "
            f"{names}, which lockgate never stores; pass it again: `lockgate resume "
            f"{record.id} {flags}` or lg.resume({record.id!r}, params={{{values}}}) (the "
            "value, or env:VAR to read it from the workers' environment)"
        )
    return params


def resume_run(
    workspace: Workspace,
    run_id: str,
    *,
    pipeline: Pipeline | None = None,
    by: Trigger = Trigger.CLI,
    executor: str | None = None,
    workers: int | None = None,
    no_cache: bool = False,
    listener: RunListener | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> RunResult:
    """Continue a failed, cancelled or orphaned run under the same id.

    Args:
        workspace: the installation holding the run.
        run_id: the run (or a unique prefix).
        pipeline: the pipeline object; default: load it from the ref recorded
            with the run.
        by: who resumes, recorded in the `run_resumed` event.
        executor: where the remaining tasks run.
        workers: process pool size.
        no_cache: execute remaining nodes even when a cached result matches.
        listener: progress display.
        secrets: values of secret parameters, needed for those the run was
            started with as literals (lockgate stored only `<secret>`).

    Raises:
        RunStateError: the run succeeded, is still driven by a live coordinator,
            its code changed since it ran, or it would consume an input older
            than the pipeline's `max_input_age`.
        SecretUnavailableError: a secret started as a literal is not in `secrets`.
    """
    listener = lineage_listener(workspace, listener)
    record = workspace.metadata.get_run(run_id)
    target = pipeline_for(record, pipeline)
    refuse_stale_inputs(workspace, record, target, time.time())
    params = secret_params(record, target, secrets)
    # The executor first: one that cannot start (Ray unreachable, a store its
    # workers cannot reach) must fail before the run is taken over.
    runner = workspace.executor(executor, workers=workers, pipeline=target.name)
    try:
        now = time.time()
        records = workspace.metadata.resume_run(
            record.id,
            by=by.value,
            at=now,
            stale_before=now - workspace.settings.heartbeat_timeout,
        )
        coordinator(workspace, runner, listener).drive(target, params, record.id, records, no_cache)
    finally:
        runner.close()
    return read_run(workspace, record.id)


def queue_resume(
    workspace: Workspace, run_id: str, *, by: Trigger, actor: str | None = None
) -> RunRecord:
    """Put a failed, cancelled or orphaned run back in the queue, under the same id.

    What did not commit is reset as by `resume_run`, but nothing is driven
    here: the run is `queued` again and a `lockgate server` claims it and
    drives it (nodes with a committed result are not executed again).

    Args:
        workspace: the installation holding the run.
        run_id: the run (or a unique prefix).
        by: the channel the request came through.
        actor: who resumes (`api:<token name>`), recorded in the `run_resumed`
            event instead of the bare channel.

    Raises:
        RunStateError: the run succeeded, is still driven by a live coordinator,
            or ran a pipeline a server cannot load again.
        SecretUnavailableError: it was started with a literal secret value, which
            a server cannot read back.
    """
    record = workspace.metadata.get_run(run_id)
    literal = sorted(n for n, v in record.params.items() if v == MARKER)
    if literal:
        flags = " ".join(f"-p {n}=VALUE" for n in literal)
        raise SecretUnavailableError(
            f"run {record.id} was started with a literal value for secret parameter(s) "
            f"{', '.join(repr(n) for n in literal)}, which lockgate never stores, so a "
            f"server cannot resume it; resume it here: `lockgate resume {record.id} {flags}`"
        )
    if not record.pipeline_ref:
        raise RunStateError(
            f"run {record.id} ran a pipeline defined where lockgate cannot load it again "
            "(inside a function or an interactive session), so a server cannot drive it; "
            f"resume it from Python with lg.resume({record.id!r}, pipeline=<the pipeline>)."
        )
    now = time.time()
    workspace.metadata.resume_run(
        record.id,
        by=actor or by.value,
        at=now,
        stale_before=now - workspace.settings.heartbeat_timeout,
        queue=True,
    )
    return workspace.metadata.get_run(record.id)


@dataclass(frozen=True, slots=True)
class Recovery:
    """What `recover` did with one orphaned run."""

    run_id: str
    result: RunResult | None
    error: str | None


def orphaned_runs(workspace: Workspace) -> list[RunRecord]:
    """Runs that claim to be running but whose coordinator stopped beating."""
    now = time.time()
    timeout = workspace.settings.heartbeat_timeout
    running = workspace.metadata.list_runs(limit=10_000, status=RunState.RUNNING)
    return sorted((r for r in running if r.stale(now, timeout)), key=lambda r: r.created_at)


def recover_runs(
    workspace: Workspace,
    *,
    executor: str | None = None,
    workers: int | None = None,
    listener_for: Callable[[RunRecord], RunListener | None] = lambda _: None,
) -> list[Recovery]:
    """Resume every orphaned run, oldest first; one failure does not stop the rest."""
    outcomes = []
    for record in orphaned_runs(workspace):
        try:
            result = resume_run(
                workspace,
                record.id,
                by=Trigger.RECOVER,
                executor=executor,
                workers=workers,
                listener=listener_for(record),
            )
        except LockgateError as exc:
            outcomes.append(Recovery(record.id, None, f"{type(exc).__name__}: {exc}"))
        else:
            outcomes.append(Recovery(record.id, result, None))
    return outcomes


def cancel_run(
    workspace: Workspace, run_id: str, *, by: Trigger = Trigger.CLI, actor: str | None = None
) -> RunRecord:
    """Cancel a run.

    A run driven by a live coordinator is flagged; the coordinator stops its
    workers and records the cancellation within a second. A run nobody drives
    (queued, or orphaned) is cancelled here and now. `actor` (`api:<token
    name>`), when given, is recorded as who cancelled instead of the channel `by`.

    Raises:
        RunStateError: the run already ended.
    """
    store = workspace.metadata
    now = time.time()
    who = actor or by.value
    record = store.request_cancel(run_id, by=who, at=now)
    if record.status is RunState.QUEUED or record.stale(now, workspace.settings.heartbeat_timeout):
        reason = f"cancelled by {who} (no coordinator was driving the run)"
        open_ids = [r.id for r in store.task_runs(record.id) if not r.state.terminal]
        store.set_task_state(record.id, open_ids, TaskState.CANCELLED, now, reason=reason)
        store.set_run_state(record.id, RunState.CANCELLED, now, error=reason)
    return store.get_run(record.id)


def resume(
    run_id: str,
    *,
    pipeline: Pipeline | None = None,
    executor: str | None = None,
    workers: int | None = None,
    cache: bool = True,
    workspace: Workspace | None = None,
    listener: RunListener | None = None,
    params: Mapping[str, Any] | None = None,
) -> RunResult:
    """Resume a failed, cancelled or orphaned run from Python, under the same id.

    Nodes that committed a result are not executed again. `pipeline` is needed
    only when the run's pipeline was defined where lockgate cannot import it
    again (inside a function); otherwise it is loaded from the recorded ref.
    `params` gives secret parameters again (`{"api_key": "..."}`): a run
    started with a literal secret value needs it, since lockgate never stored it.

    Raises:
        RunStateError: the run succeeded, is still being driven, or its code changed.
        SecretUnavailableError: a literal secret the run started with is not given again.
    """
    return resume_run(
        workspace or Workspace(),
        run_id,
        pipeline=pipeline,
        by=Trigger.PYTHON,
        executor=executor,
        workers=workers,
        no_cache=not cache,
        listener=listener,
        secrets=params,
    )


def cancel(run_id: str, *, workspace: Workspace | None = None) -> RunRecord:
    """Cancel a run from Python (see `lockgate cancel`)."""
    return cancel_run(workspace or Workspace(), run_id, by=Trigger.PYTHON)


def decide_approval(
    workspace: Workspace,
    run_id: str,
    node: str,
    *,
    approve: bool,
    by: str,
    reason: str | None = None,
    proceed: bool = True,
    executor: str | None = None,
    workers: int | None = None,
    listener: RunListener | None = None,
) -> RunRecord | RunResult:
    """Approve or reject the approval node `node` of a run, then let the run go on.

    A run that stopped to wait (status `waiting`) is resumed here unless
    `proceed` is False; a run still driven by a live coordinator picks the
    decision up within a second.

    Raises:
        NodeNotFoundError: the run has no such node, or it is not an approval.
        RunStateError: the node is not waiting, was already decided, or `by` is
            not one of its approvers.
    """
    store = workspace.metadata
    run = store.get_run(run_id)
    graph = {n["id"]: n for n in store.run_graph(run.id)["nodes"]}
    spec = graph.get(node)
    if spec is None or not str(spec["task_version"]).startswith("lockgate.approval/"):
        approvals = sorted(
            n for n, s in graph.items() if str(s["task_version"]).startswith("lockgate.approval/")
        )
        raise NodeNotFoundError(
            f"run {run.id} has no approval node {node!r}; its approval nodes: "
            f"{', '.join(approvals) or 'none'}"
        )
    record = next(r for r in store.task_runs(run.id) if r.node_id == node and r.map_index is None)
    if record.state is not TaskState.WAITING:
        raise RunStateError(
            f"node {node!r} of run {run.id} is {record.state.value}, not waiting for approval"
        )
    approvers = spec["kwargs"].get("approvers")
    if approvers and by not in approvers:
        raise RunStateError(
            f"{by!r} may not decide {node!r}: its approvers are {', '.join(approvers)} "
            "(pass --as NAME)"
        )
    store.record_approval(
        Approval(
            run.id, record.id, node, "approved" if approve else "rejected", by, reason, time.time()
        )
    )
    if proceed and store.get_run(run.id).status is RunState.WAITING:
        return resume_run(
            workspace, run.id, by=Trigger.CLI, executor=executor, workers=workers, listener=listener
        )
    return store.get_run(run.id)
