"""The alert-outbox part of the `MetadataStore` contract (mixed into `MetadataStoreContract`).

Deliveries are unique per key, rate limits suppress rather than drop, a claim
is taken by one pass only, outcomes are fenced by the attempt count, and the
alert pass's reads see events and rollbacks after a cursor that only moves on.
"""

from __future__ import annotations

from lockgate.model.states import EventKind, RunState
from lockgate.ports.alerts import DeliveryStatus, NewDelivery
from lockgate.ports.metadata import AliasMove, MetadataStore, Registration, WriteBatch

T0 = 1_790_000_000.0


def delivery(
    key: str, *, rule: str = "r", run_id: str | None = None, at: float = T0
) -> NewDelivery:
    """A delivery to enqueue in tests."""
    return NewDelivery(
        key=key,
        rule=rule,
        event="run_failed",
        run_id=run_id,
        pipeline="p",
        payload={"summary": f"about {key}", "at": at},
        created_at=at,
        next_at=at,
    )


class AlertStoreContract:
    """Behaviour of the alert outbox every metadata store must show."""

    def test_a_delivery_is_recorded_once_per_key(self, store: MetadataStore) -> None:
        first = store.enqueue_alert(delivery("r|x|run_failed"), rate_limit=None, window=60)
        assert first is not None and first.status is DeliveryStatus.PENDING
        assert first.payload["summary"] == "about r|x|run_failed"
        again = store.enqueue_alert(delivery("r|x|run_failed"), rate_limit=None, window=60)
        assert again is None
        assert [d.key for d in store.list_alerts()] == ["r|x|run_failed"]

    def test_over_the_rate_limit_deliveries_are_suppressed_not_dropped(
        self, store: MetadataStore
    ) -> None:
        made = [
            store.enqueue_alert(delivery(f"r|{i}|e", at=T0 + i), rate_limit=2, window=100)
            for i in range(4)
        ]
        assert [d.status for d in made if d] == [
            DeliveryStatus.PENDING,
            DeliveryStatus.PENDING,
            DeliveryStatus.SUPPRESSED,
            DeliveryStatus.SUPPRESSED,
        ]
        assert made[2] is not None and "rate limit" in (made[2].last_error or "")
        # Another rule has its own budget; the window slides.
        other = store.enqueue_alert(delivery("o|0|e", rule="o"), rate_limit=2, window=100)
        later = store.enqueue_alert(delivery("r|9|e", at=T0 + 150), rate_limit=2, window=100)
        assert other is not None and other.status is DeliveryStatus.PENDING
        assert later is not None and later.status is DeliveryStatus.PENDING
        assert [d.key for d in store.due_alerts(T0 + 150)] == ["r|0|e", "o|0|e", "r|1|e", "r|9|e"]

    def test_a_claim_is_taken_once_and_outcomes_are_fenced(self, store: MetadataStore) -> None:
        store.enqueue_alert(delivery("k"), rate_limit=None, window=60)
        (due,) = store.due_alerts(T0)
        assert store.claim_alert(due, at=T0, lease_until=T0 + 60)
        assert not store.claim_alert(due, at=T0, lease_until=T0 + 60)
        assert store.due_alerts(T0 + 10) == []
        store.finish_alert(
            due.id, attempt=1, at=T0 + 1, sent=False, error="HTTP 500", next_at=T0 + 5
        )
        store.finish_alert(due.id, attempt=1, at=T0 + 2, sent=True)  # a repeat: ignored
        (again,) = store.due_alerts(T0 + 5)
        assert (again.attempts, again.last_error, again.next_at) == (1, "HTTP 500", T0 + 5)
        assert store.claim_alert(again, at=T0 + 5, lease_until=T0 + 65)
        store.finish_alert(again.id, attempt=2, at=T0 + 6, sent=True)
        (done,) = store.list_alerts()
        assert (done.status, done.attempts, done.finished_at) == (DeliveryStatus.SENT, 2, T0 + 6)

    def test_a_delivery_out_of_attempts_is_failed(self, store: MetadataStore) -> None:
        store.enqueue_alert(delivery("k"), rate_limit=None, window=60)
        (due,) = store.due_alerts(T0)
        assert store.claim_alert(due, at=T0, lease_until=T0 + 60)
        store.finish_alert(due.id, attempt=1, at=T0 + 1, sent=False, error="refused")
        (done,) = store.list_alerts()
        assert (done.status, done.last_error, done.next_at) == (
            DeliveryStatus.FAILED,
            "refused",
            None,
        )
        assert store.due_alerts(T0 + 10_000) == []

    def test_alert_reads_follow_cursors(self, store: MetadataStore) -> None:
        from lockgate.testing.metadata_contract import new_run

        run_id = "r-alerts"
        store.create_run(new_run(run_id, pipeline="demo"))
        store.set_run_state(run_id, RunState.FAILED, T0 + 5, error="boom")
        store.record_event(run_id, EventKind.SLA_MISSED, T0 + 6, payload={"sla_s": 1.0})
        assert store.alert_cursor("events") is None
        start = store.alert_start(T0 + 5)
        found, reached = store.alert_events(
            start["events"], [EventKind.RUN_FAILED, EventKind.SLA_MISSED]
        )
        assert [(e.kind, e.payload.get("error"), p) for e, p in found] == [
            (EventKind.RUN_FAILED, "boom", "demo"),
            (EventKind.SLA_MISSED, None, "demo"),
        ]
        page, _ = store.alert_events(start["events"], [EventKind.RUN_FAILED], limit=1)
        assert len(page) == 1
        store.advance_alert_cursor("events", reached)
        store.advance_alert_cursor("events", reached - 1)  # never moves back
        assert store.alert_cursor("events") == reached
        assert store.alert_events(reached, [EventKind.RUN_FAILED])[0] == []

    def test_rollbacks_are_read_after_a_cursor(self, store: MetadataStore) -> None:
        from lockgate.testing.metadata_contract import new_run, ref, succeed

        a, b = store.create_run(new_run("r-m", nodes=[("a", "a"), ("b", "b")]))
        for node, content in ((a, "w1"), (b, "w2")):
            assert succeed(store, "r-m", node, ref(content))
            store.commit(
                "r-m",
                WriteBatch(
                    at=T0 + 4,
                    registrations=[Registration(node.id, "m", ref(content).sha256, {}, False)],
                ),
            )
        store.move_alias(
            AliasMove(name="m", alias="prod", action="promote", actor="t", version=1), T0
        )
        store.move_alias(
            AliasMove(name="m", alias="prod", action="promote", actor="t", version=2), T0
        )
        store.move_alias(
            AliasMove(name="m", alias="prod", action="rollback", actor="t", version=1), T0 + 1
        )
        moves, reached = store.alias_rollbacks(0)
        assert [(m.name, m.version, m.previous_version, m.action) for m in moves] == [
            ("m", 1, 2, "rollback")
        ]
        assert store.alias_rollbacks(reached)[0] == []

    def test_run_alerts_lists_a_runs_deliveries(self, store: MetadataStore) -> None:
        from lockgate.testing.metadata_contract import new_run

        run_id = "r-listed"
        store.create_run(new_run(run_id))
        store.enqueue_alert(delivery("a|r|e", run_id=run_id), rate_limit=None, window=60)
        store.enqueue_alert(delivery("b|r|e", rule="b", run_id=run_id), rate_limit=None, window=60)
        store.enqueue_alert(delivery("a|other|e"), rate_limit=None, window=60)
        assert [d.rule for d in store.run_alerts(run_id)] == ["r", "b"]
