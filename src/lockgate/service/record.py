"""The reliability record: everything about one run, assembled from stored rows.

Nothing here is stored twice: the record is built on demand from the run,
its task runs, attempts, events, consumed versions, gate decisions, registry
actions, approvals, canary decisions and the route changes they made.
`verify` recomputes the event hash chain and reports any edited, inserted or
deleted event. The JSON shape is documented in
docs/record.md (`schema`: "lockgate.record/1").
"""

from __future__ import annotations

from typing import Any

from lockgate.evals.runner import evaluate_node
from lockgate.model.chain import GENESIS, event_hash
from lockgate.model.states import EventKind
from lockgate.service.compose import Workspace
from lockgate.service.views import duration, iso, run_view

SCHEMA = "lockgate.record/1"
_REGISTRY_EVENTS = (EventKind.MODEL_REGISTERED, EventKind.ALIAS_MOVED, EventKind.VERSION_CREATED)


def verify(workspace: Workspace, run_id: str) -> dict[str, Any]:
    """Recompute the run's event chain.

    Returns:
        {"ok": bool, "events": n, "problems": [messages]}: ok is False if any
        event was edited, inserted or removed, or the trace was truncated.
    """
    chained, head, count = workspace.metadata.event_chain(run_id)
    problems = []
    previous = GENESIS
    for event, stored in chained:
        if stored is None:
            problems.append(
                f"event {event.id} ({event.kind.value}) has no hash: it was written "
                "before the chain existed or inserted by hand"
            )
            continue
        expected = event_hash(
            previous,
            event.run_id,
            event.task_run_id,
            event.attempt,
            event.kind.value,
            event.at,
            dict(event.payload),
        )
        if expected != stored:
            problems.append(
                f"event {event.id} ({event.kind.value} at {iso(event.at)}) does not match its "
                "hash: it was modified, or an event before it was removed or inserted"
            )
        previous = stored
    if count is not None and count != len(chained):
        problems.append(
            f"the run recorded {count} events but {len(chained)} are stored: "
            f"{abs(count - len(chained))} were removed or added"
        )
    if head is not None and chained and chained[-1][1] != head:
        problems.append(
            "the newest event is not the one the run recorded last: the trace was "
            "truncated or extended"
        )
    return {"ok": not problems, "events": len(chained), "problems": problems}


def build(workspace: Workspace, run_id: str) -> dict[str, Any]:
    """Assemble the reliability record of one run (see docs/record.md)."""
    store = workspace.metadata
    run = store.get_run(run_id)
    task_runs = store.task_runs(run.id)
    by_id = {t.id: t for t in task_runs}
    attempts = store.attempts(run.id)
    events = store.events(run.id)
    graph = store.run_graph(run.id)
    # `lg.evaluate(..., name="by_area")` names its node and task; the function is the same.
    evaluators = {
        n["id"]
        for n in graph["nodes"]
        if n["task"] == "evaluate" or n.get("target") == evaluate_node.target
    }
    produced = []
    for record in task_runs:
        if record.output is None:
            continue
        versions = [v.label for v in store.versions_of_artifact(record.output.sha256)]
        produced.append(
            {
                "node": record.label,
                "state": record.state.value,
                "uri": record.output.uri,
                "sha256": record.output.sha256,
                "type": record.output.type_name,
                "size": record.output.size,
                "versions": versions,
            }
        )
    scores = {}
    for record in task_runs:
        if record.node_id in evaluators and record.map_index is None and record.output is not None:
            scores[record.node_id] = workspace.artifacts.get(
                record.output, trusted=True, what=f"output of node {record.node_id!r}"
            )
    gates: dict[str, dict[str, Any]] = {}
    for decision in store.gate_decisions(run.id):
        gate = gates.setdefault(
            decision.node_id or "?", {"node": decision.node_id, "passed": True, "checks": []}
        )
        gate["passed"] = gate["passed"] and decision.passed
        gate["checks"].append(
            {
                "metric": decision.metric,
                "expression": decision.expression,
                "value": decision.value,
                "threshold": decision.threshold,
                "baseline_alias": decision.baseline_alias,
                "baseline_version": decision.baseline_version,
                "baseline_value": decision.baseline_value,
                "passed": decision.passed,
                "reason": decision.reason,
            }
        )
    registry = [
        {
            "event": e.kind.value,
            "at": iso(e.at),
            **dict(e.payload),
            "node": by_id[e.task_run_id].label if e.task_run_id in by_id else None,
        }
        for e in events
        if e.kind in _REGISTRY_EVENTS
    ]
    canaries, route_changes = _canaries(workspace, run.id, events, by_id)
    trace = [
        {
            "id": e.id,
            "at": iso(e.at),
            "kind": e.kind.value,
            "node": e.node_id + (f"[{e.map_index}]" if e.map_index is not None else "")
            if e.node_id
            else None,
            "attempt": e.attempt,
            "payload": dict(e.payload),
        }
        for e in events
    ]
    nodes = [
        {
            "node": t.label,
            "task": t.task_name,
            "state": t.state.value,
            "attempts": [
                {
                    "number": a.number,
                    "state": a.state.value,
                    "queued_at": iso(a.queued_at),
                    "started_at": iso(a.started_at),
                    "finished_at": iso(a.finished_at),
                    "queue_time_s": a.queue_time,
                    "duration_s": duration(a.started_at, a.finished_at),
                    "error": a.error.summary() if a.error else None,
                }
                for a in attempts
                if a.task_run_id == t.id
            ],
            "output": t.output.uri if t.output else None,
            "cached_from": t.cached_from,
        }
        for t in task_runs
    ]
    return {
        "schema": SCHEMA,
        "run": run_view(run, workspace.settings.heartbeat_timeout),
        "code": {
            "pipeline": run.pipeline,
            "pipeline_version": run.pipeline_version,
            "pipeline_ref": run.pipeline_ref,
            "git_sha": run.git_sha,
            "git_dirty": run.git_dirty,
        },
        "params": dict(run.params),
        "inputs": [
            {
                "ref": f"{v.kind}:{v.name}@{v.version}",
                "requested": v.requested or "latest",
                "uri": v.ref.uri,
                "sha256": v.ref.sha256,
            }
            for v in store.run_versions(run.id)
        ],
        "nodes": nodes,
        "artifacts": produced,
        "scores": scores,
        "gates": list(gates.values()),
        "registry": registry,
        "approvals": [
            {
                "node": a.node_id,
                "decision": a.decision,
                "by": a.by,
                "reason": a.reason,
                "at": iso(a.at),
            }
            for a in store.approvals(run.id)
        ],
        "canary": canaries,
        "routes": route_changes,
        "alerts": [
            {
                "rule": a.rule,
                "event": a.event,
                "status": a.status.value,
                "attempts": a.attempts,
                "summary": a.payload.get("summary"),
                "created_at": iso(a.created_at),
                "finished_at": iso(a.finished_at),
                "last_error": a.last_error,
            }
            for a in store.run_alerts(run.id)
        ],
        "trace": trace,
        "verification": verify(workspace, run.id),
    }


def _canaries(
    workspace: Workspace, run_id: str, events: list[Any], by_id: dict[int, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The run's canaries (from their events) and the route changes the run made."""
    found: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.kind not in (EventKind.CANARY_STARTED, EventKind.CANARY_DECIDED):
            continue
        node = by_id[e.task_run_id].label if e.task_run_id in by_id else "?"
        entry = found.setdefault(node, {"node": node, "decision": None})
        payload = dict(e.payload)
        if e.kind is EventKind.CANARY_STARTED:
            entry.update(
                {k: payload.get(k) for k in ("route", "mode", "candidate", "percent", "rule")},
                incumbents=payload.get("incumbents"),
                started_at=iso(e.at),
            )
        else:
            for key in ("started_at", "decided_at"):
                if isinstance(payload.get(key), int | float):
                    payload[key] = iso(payload[key])
            payload["candidate_cohort"] = payload.pop("candidate", None)
            payload["incumbent_cohort"] = payload.pop("incumbent", None)
            payload["candidate"] = payload.pop("target", entry.get("candidate"))
            entry.update(payload)
    changes = [
        {
            "route": change.route,
            "version": change.version,
            "action": change.action,
            "by": change.by,
            "reason": change.reason,
            "at": iso(change.at),
            "previous": None if change.previous is None else dict(change.previous),
            "state": dict(change.state),
        }
        for change in workspace.metadata.run_route_changes(run_id)
    ]
    return list(found.values()), changes


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def to_markdown(record: dict[str, Any]) -> str:
    """The record as a Markdown document for people."""
    run, code = record["run"], record["code"]
    lines = [
        f"# Reliability record: {run['run_id']}",
        "",
        f"- **pipeline**: {code['pipeline']} (version `{code['pipeline_version'][:12]}`)",
        f"- **status**: {run['status']}" + (f" — {run['error']}" if run["error"] else ""),
        f"- **trigger**: {run['trigger']}, created {run['created_at']}, took "
        f"{run['duration_s'] if run['duration_s'] is not None else '?'} s",
        f"- **code**: git `{code['git_sha'] or 'unknown'}`"
        + (" (uncommitted changes)" if code["git_dirty"] else ""),
        f"- **params**: `{record['params']}`",
        f"- **trace verified**: {'yes' if record['verification']['ok'] else 'NO'}"
        f" ({record['verification']['events']} events)",
        "",
    ]
    for problem in record["verification"]["problems"]:
        lines.append(f"  - {problem}")
    lines += ["## Inputs", ""]
    lines += [f"- {i['ref']} (`{i['sha256'][:12]}`)" for i in record["inputs"]] or ["- none"]
    lines += [
        "",
        "## Nodes",
        "",
        "| node | state | attempts | output |",
        "| --- | --- | --- | --- |",
    ]
    for node in record["nodes"]:
        output = f"`{node['output'][-64:][:12]}`" if node["output"] else ""
        lines.append(f"| {node['node']} | {node['state']} | {len(node['attempts'])} | {output} |")
    lines += ["", "## Artifacts", ""]
    lines += [
        f"- {a['node']}: `{a['uri']}` {a['type']}"
        + (f" = {', '.join(a['versions'])}" if a["versions"] else "")
        for a in record["artifacts"]
    ] or ["- none"]
    lines += ["", "## Scores", ""]
    for node, value in record["scores"].items():
        metrics = value.get("metrics", value) if isinstance(value, dict) else value
        lines.append(f"- {node}: `{metrics}`")
    if not record["scores"]:
        lines.append("- none")
    lines += ["", "## Gates", ""]
    for gate in record["gates"]:
        lines.append(f"- {gate['node']}: {'passed' if gate['passed'] else 'FAILED'}")
        lines += [f"  - {c['reason']}" for c in gate["checks"]]
    if not record["gates"]:
        lines.append("- none")
    lines += ["", "## Registry", ""]
    lines += [
        f"- {r['event']}: `{ {k: v for k, v in r.items() if k not in ('event', 'at')} }`"
        for r in record["registry"]
    ] or ["- none"]
    lines += ["", "## Approvals", ""]
    lines += [
        f"- {a['node']}: {a['decision']} by {a['by']} ({a['reason'] or 'no reason given'})"
        for a in record["approvals"]
    ] or ["- none"]
    lines += ["", "## Canary", ""]
    for c in record.get("canary", []):
        lines.append(
            f"- {c['node']}: {c.get('decision') or 'undecided'} {c.get('candidate')} on route "
            f"{c.get('route')} ({c.get('mode')}): {c.get('reason') or ''}"
        )
        if c.get("candidate_cohort"):
            cand, inc = c["candidate_cohort"], c["incumbent_cohort"]
            lines.append(
                f"  - {c.get('metric')}: candidate n={cand['n']} mean={_num(cand['mean'])}, "
                f"incumbent n={inc['n']} mean={_num(inc['mean'])}, difference "
                f"{_num(c.get('difference'))}, bounds [{_num(c.get('lower'))}, "
                f"{_num(c.get('upper'))}]"
            )
        lines.append(f"  - rule: {c.get('rule')}")
    if not record.get("canary"):
        lines.append("- none")
    lines += ["", "## Routes", ""]
    lines += [
        f"- {r['route']} v{r['version']}: {r['action']} by {r['by']} ({r['reason'] or ''})"
        for r in record.get("routes", [])
    ] or ["- none"]
    lines += ["", "## Alerts", ""]
    lines += [
        f"- {a['event']} via rule {a['rule']}: {a['status']} after {a['attempts']} send(s)"
        + (f" ({a['last_error']})" if a["last_error"] and a["status"] != "sent" else "")
        for a in record["alerts"]
    ] or ["- none"]
    lines += ["", "## Trace", "", "| at | event | node | attempt |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {e['at']} | {e['kind']} | {e['node'] or ''} | {e['attempt'] or ''} |"
        for e in record["trace"]
    ]
    return "\n".join(lines) + "\n"


def record(run_id: str, *, workspace: Workspace | None = None) -> dict[str, Any]:
    """The reliability record of a run, from Python (see `lockgate record`)."""
    return build(workspace or Workspace(), run_id)
