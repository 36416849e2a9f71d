"""The audit part of the `MetadataStore` contract (mixed into `MetadataStoreContract`).

An entry comes back as written; a repeated request id is stored once; reads
are newest first, limited, and filtered by token; a token's creation and
revocation carry their entries in the same transaction, and a revocation
that revokes nothing writes none.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from lockgate.errors import UsageError
from lockgate.ports.metadata import AuditEntry, MetadataStore

T0 = 1_790_000_000.0


def entry(request_id: str, token: str | None = "ci", **changes: object) -> AuditEntry:  # noqa: S107
    """An API trigger by token `token` (or an anonymous refusal with token=None)."""
    made = AuditEntry(
        request_id=request_id,
        at=T0,
        channel="api",
        actor=f"api:{token}" if token else None,
        token=token,
        scope="run" if token else None,
        method="POST",
        action="/api/v1/pipelines/nightly/runs",
        target="pipeline:nightly",
        status=201 if token else 401,
        outcome="ok" if token else "refused",
        client="127.0.0.1",
    )
    return replace(made, **changes)  # type: ignore[arg-type]


class AuditStoreContract:
    """Behaviour of the audit log every metadata store must show."""

    def test_an_entry_comes_back_as_written(self, store: MetadataStore) -> None:
        assert store.record_audit(entry("r1"))
        [found] = store.audit_entries()
        assert found.id is not None
        assert replace(found, id=None) == entry("r1")

    def test_a_repeated_request_id_is_stored_once(self, store: MetadataStore) -> None:
        assert store.record_audit(entry("r1"))
        assert not store.record_audit(entry("r1", status=500, outcome="error"))
        assert [(e.request_id, e.status) for e in store.audit_entries()] == [("r1", 201)]

    def test_reads_are_newest_first_limited_and_by_token(self, store: MetadataStore) -> None:
        for index, token in enumerate(["ci", "ops", None, "ci"]):
            store.record_audit(entry(f"r{index}", token, at=T0 + index))
        assert [e.request_id for e in store.audit_entries()] == ["r3", "r2", "r1", "r0"]
        assert [e.request_id for e in store.audit_entries(limit=2)] == ["r3", "r2"]
        assert [e.request_id for e in store.audit_entries(token="ci")]  # noqa: S106 == ["r3", "r0"]
        assert store.audit_entries(token="nobody") == []  # noqa: S106

    def test_long_client_supplied_values_are_clipped(self, store: MetadataStore) -> None:
        store.record_audit(entry("r1", action="/api/" + "x" * 5000, target="run:" + "y" * 900))
        [found] = store.audit_entries()
        assert len(found.action) == 500 and found.target is not None and len(found.target) == 500

    def test_token_changes_carry_their_entry(self, store: MetadataStore) -> None:
        made = entry("c1", None, channel="cli", actor="cli:ann", action="token create")
        store.create_token("ci", "a" * 64, ["run"], T0, audit=made)
        revoked = replace(made, request_id="v1", action="token revoke")
        assert store.revoke_token("ci", T0 + 1, audit=revoked)
        again = replace(made, request_id="v2", action="token revoke")
        assert not store.revoke_token("ci", T0 + 2, audit=again)
        assert [e.request_id for e in store.audit_entries()] == ["v1", "c1"]

    def test_a_refused_token_creation_writes_no_entry(self, store: MetadataStore) -> None:
        store.create_token("ci", "a" * 64, ["run"], T0)
        with pytest.raises(UsageError):
            store.create_token("ci", "b" * 64, ["run"], T0, audit=entry("c2", None))
        assert store.audit_entries() == []
