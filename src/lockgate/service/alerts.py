"""The alert pass: find alertable facts in stored rows, enqueue deliveries, send due ones.

One pass reads the events (and alias rollbacks) written since its cursor,
turns each alertable one into a fact, enqueues one delivery per matching
rule (unique per rule, subject and event: a run that fails twice, or two
passes or servers finding the same failure, alert once), then sends the
deliveries that are due. A failed send is retried with exponential backoff
(`backoff`, doubling, at most `MAX_BACKOFF`) up to `max_attempts` sends.

Facts:

| event | from |
| --- | --- |
| `run_failed` | a `run_failed` event |
| `gate_failed` | a `gate_failed` event (or `run_gate_failed`) |
| `retry_storm` | a `task_retrying` event of an attempt > `STORM_RETRIES` (a third retry) |
| `sla_missed` | an `sla_missed` event (`@lg.pipeline(sla=...)`) |
| `stale_input` | a `run_warning` about a stale input, or a run failed for one |
| `rollback` | an alias move with action `rollback` (not tied to a pipeline), or a |
| | `canary_decided` event with decision `rollback` (a canary rolled its route back) |
| `gateway_load_failed` | the gateway could not load a route's target (`enqueue_fact`) |

The gateway keeps serving a route's previous targets when it cannot load new
ones, and enqueues `gateway_load_failed` itself (it is not an event of a run).

The first pass on a database starts `horizon` seconds back, so turning
alerts on does not page about last year's failures. `lockgate server` runs a
pass every loop; `lockgate run`/`resume` run one when their run ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.model.states import EventKind
from lockgate.ports.alerts import DeliveryStatus, NewDelivery
from lockgate.ports.metadata import AliasEvent, EventRecord, MetadataStore
from lockgate.service.alertrules import AlertRule, rules_for
from lockgate.service.notifiers import send

log = logging.getLogger("lockgate.alerts")

#: More retries than this on one task is a retry storm.
STORM_RETRIES = 2
#: The longest wait between two sends of one delivery.
MAX_BACKOFF = 3600.0
#: How far back the first pass on a database looks.
HORIZON = 3600.0

_KINDS = (
    EventKind.RUN_FAILED,
    EventKind.RUN_GATE_FAILED,
    EventKind.GATE_FAILED,
    EventKind.TASK_RETRYING,
    EventKind.SLA_MISSED,
    EventKind.RUN_WARNING,
    EventKind.CANARY_DECIDED,
)


@dataclass(frozen=True, slots=True)
class Fact:
    """Something alertable: one event about one subject (a run, or an alias move)."""

    event: str
    subject: str
    run_id: str | None
    pipeline: str | None
    summary: str
    details: Mapping[str, Any]
    at: float


@dataclass(slots=True)
class PassResult:
    """What one pass did (for logs and tests)."""

    facts: int = 0
    enqueued: int = 0
    suppressed: int = 0
    sent: int = 0
    failed_sends: int = 0


def alert_pass(
    store: MetadataStore,
    rules: Sequence[AlertRule],
    *,
    now: float | None = None,
    env: Mapping[str, str] | None = None,
    horizon: float = HORIZON,
    send_limit: int = 50,
) -> PassResult:
    """Enqueue deliveries for new facts, then send the due ones.

    Args:
        store: the metadata store holding events and the outbox.
        rules: the project's `[[alerts]]` rules (none: nothing happens).
        now: the time (tests pass one to step through retries without sleeping).
        env: where `env:VAR` secrets are read (default: the process environment).
        horizon: how far back the first pass on a database looks, in seconds.
        send_limit: the most deliveries sent in one pass.
    """
    result = PassResult()
    if not rules:
        return result
    now = time.time() if now is None else now
    for fact in collect(store, now - horizon):
        result.facts += 1
        for rule in rules_for(rules, fact.event, fact.pipeline):
            created = store.enqueue_alert(
                _delivery(rule, fact, now), rate_limit=rule.rate_limit, window=rule.rate_window
            )
            if created is None:
                continue
            result.enqueued += 1
            if created.status is DeliveryStatus.SUPPRESSED:
                result.suppressed += 1
                log.warning("alert %s suppressed by its rule's rate limit", created.key)
    by_name = {rule.name: rule for rule in rules}
    for delivery in store.due_alerts(now, limit=send_limit):
        found = by_name.get(delivery.rule)
        lease = now + (found.timeout * 2 if found else 0.0) + 60.0
        if not store.claim_alert(delivery, at=now, lease_until=lease):
            continue  # another pass (or server) is sending it
        attempt = delivery.attempts + 1
        if found is None:
            store.finish_alert(
                delivery.id,
                attempt=attempt,
                at=now,
                sent=False,
                error=f"rule {delivery.rule!r} is no longer in lockgate.toml",
            )
            continue
        rule = found
        outcome = send(rule, delivery, env)
        if outcome.ok:
            result.sent += 1
            store.finish_alert(delivery.id, attempt=attempt, at=now, sent=True)
            continue
        result.failed_sends += 1
        retry_at = None
        if attempt < rule.max_attempts:
            retry_at = now + min(rule.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
        log.warning(
            "alert %s (rule %s) send %d failed: %s%s",
            delivery.key,
            rule.name,
            attempt,
            outcome.error,
            "" if retry_at else "; giving up",
        )
        store.finish_alert(
            delivery.id,
            attempt=attempt,
            at=now,
            sent=False,
            error=outcome.error,
            next_at=retry_at,
        )
    return result


def collect(store: MetadataStore, start_at: float) -> Iterator[Fact]:
    """The facts written since the pass's cursors, advancing them as it goes."""
    start: dict[str, int] | None = None
    for source in ("events", "alias_events"):
        position = store.alert_cursor(source)
        if position is None:
            start = start or store.alert_start(start_at)
            position = start[source]
        while True:
            if source == "events":
                rows, reached = store.alert_events(position, _KINDS)
                for event, pipeline in rows:
                    yield from _from_event(event, pipeline)
            else:
                moves, reached = store.alias_rollbacks(position)
                yield from (_from_rollback(move) for move in moves)
            # Advanced only once the consumer took (and enqueued) every fact of the
            # page: a pass that dies first reads them again, and their keys dedupe.
            store.advance_alert_cursor(source, reached)
            if reached == position:
                break
            position = reached


def _from_event(event: EventRecord, pipeline: str) -> list[Fact]:
    run = event.run_id
    payload = event.payload

    def fact(kind: str, summary: str, **details: Any) -> Fact:
        return Fact(kind, run, run, pipeline, summary, details, event.at)

    kind = event.kind
    if kind is EventKind.RUN_FAILED:
        error = str(payload.get("error") or "no error recorded")
        found = [fact("run_failed", f"run {run} of {pipeline} failed: {error}", error=error)]
        if error.startswith("stale input"):
            summary = f"run {run} of {pipeline} failed: {error}"
            found.append(fact("stale_input", summary, error=error))
        return found
    if kind is EventKind.GATE_FAILED:
        checks = payload.get("checks") or []
        reasons = "; ".join(str(c.get("reason")) for c in checks if not c.get("passed"))
        return [
            fact(
                "gate_failed",
                f"gate {event.node_id} failed in run {run} of {pipeline}: {reasons or 'failed'}",
                node=event.node_id,
                checks=checks,
            )
        ]
    if kind is EventKind.RUN_GATE_FAILED:
        error = str(payload.get("error") or "a gate failed")
        return [fact("gate_failed", f"run {run} of {pipeline} ended gate_failed: {error}")]
    if kind is EventKind.TASK_RETRYING:
        if (event.attempt or 0) <= STORM_RETRIES:
            return []
        error = str(payload.get("error") or "")
        node = event.node_id if event.map_index is None else f"{event.node_id}[{event.map_index}]"
        return [
            fact(
                "retry_storm",
                f"task {node} of run {run} ({pipeline}) has failed {event.attempt} attempts "
                f"and is retrying again: {error}",
                node=node,
                attempt=event.attempt,
                error=error,
            )
        ]
    if kind is EventKind.SLA_MISSED:
        sla = float(payload.get("sla_s", 0))
        state = "finished late" if payload.get("finished") else "is still not finished"
        return [
            fact(
                "sla_missed",
                f"run {run} of {pipeline} missed its SLA of {sla:g} s: it {state}",
                sla_s=sla,
                finished=bool(payload.get("finished")),
            )
        ]
    if kind is EventKind.CANARY_DECIDED:
        return _from_canary(event, pipeline)
    message = str(payload.get("message") or "")
    if kind is EventKind.RUN_WARNING and message.startswith("stale input"):
        return [fact("stale_input", f"run {run} of {pipeline}: {message}", message=message)]
    return []


def _from_canary(event: EventRecord, pipeline: str) -> list[Fact]:
    payload = event.payload
    if payload.get("decision") != "rollback":
        return []
    route, target = payload.get("route"), payload.get("target")
    summary = (
        f"route {route}: canary {event.node_id} of run {event.run_id} ({pipeline}) rolled back "
        f"{target}: {payload.get('reason')}"
    )
    keys = ("route", "target", "mode", "metric", "reason", "rule", "candidate", "incumbent")
    details = {k: payload.get(k) for k in keys}
    details.update(node=event.node_id, lower=payload.get("lower"), upper=payload.get("upper"))
    subject = f"canary-{event.run_id}-{event.node_id}"
    return [Fact("rollback", subject, event.run_id, pipeline, summary, details, event.at)]


def _from_rollback(move: AliasEvent) -> Fact:
    summary = (
        f"{move.kind} {move.name}: alias {move.alias} rolled back to version {move.version} "
        f"(was {move.previous_version}) by {move.actor}"
        + (f": {move.reason}" if move.reason else "")
    )
    return Fact(
        "rollback",
        f"alias-{move.id}",
        move.run_id,
        None,
        summary,
        {
            "kind": move.kind,
            "name": move.name,
            "alias": move.alias,
            "version": move.version,
            "previous_version": move.previous_version,
            "actor": move.actor,
            "reason": move.reason,
        },
        move.at,
    )


def _delivery(rule: AlertRule, fact: Fact, now: float) -> NewDelivery:
    return NewDelivery(
        key=f"{rule.name}|{fact.subject}|{fact.event}",
        rule=rule.name,
        event=fact.event,
        run_id=fact.run_id,
        pipeline=fact.pipeline,
        payload={
            "summary": fact.summary,
            "severity": rule.severity,
            "at": fact.at,
            "details": dict(fact.details),
        },
        created_at=now,
        next_at=now,
    )


def enqueue_fact(
    store: MetadataStore, rules: Sequence[AlertRule], fact: Fact, *, now: float | None = None
) -> int:
    """Enqueue one delivery per matching rule for a fact that is not a stored event.

    The gateway's `gateway_load_failed` is found in a serving process, not in
    the event chain, so the gateway enqueues it here; the next alert pass (of
    any `lockgate server`, or the gateway's own) sends it. The delivery key is
    `rule|subject|event`, as for every fact, so the same subject alerts once.

    Returns:
        How many deliveries were created (0: no rule wants it, or already enqueued).
    """
    now = time.time() if now is None else now
    created = 0
    for rule in rules_for(rules, fact.event, fact.pipeline):
        delivery = store.enqueue_alert(
            _delivery(rule, fact, now), rate_limit=rule.rate_limit, window=rule.rate_window
        )
        created += delivery is not None
    return created


def run_alert_pass(store: MetadataStore, rules: Sequence[AlertRule]) -> PassResult | None:
    """One pass for the server loop or the CLI: problems are logged, never raised."""
    if not rules:
        return None
    try:
        return alert_pass(store, rules)
    except Exception:  # alerts must never break the loop or the command that ran the run
        log.exception("the alert pass failed")
        return None
