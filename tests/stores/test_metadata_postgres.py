"""The PostgreSQL metadata store: the contract, plus the schema and migration path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lockgate.stores.metadata.sql import SqlMetadataStore
from lockgate.testing.metadata_contract import MetadataStoreContract


class TestPostgresContract(MetadataStoreContract):
    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[SqlMetadataStore]:
        store = SqlMetadataStore(pg_url)
        yield store
        store.close()
