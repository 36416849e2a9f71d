"""The SQLite metadata store: the contract, plus SQLite's own guarantees."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from lockgate.errors import MetadataBusyError, SchemaVersionError
from lockgate.stores.metadata import connect, migrate
from lockgate.stores.metadata.schema import SCHEMA_REVISION, metadata
from lockgate.stores.metadata.sql import SqlMetadataStore
from lockgate.testing.metadata_contract import MetadataStoreContract, new_run
from lockgate.testing.route_contract import T0, assert_no_lost_update, nudge, split, together


class TestSqliteContract(MetadataStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path):
        store = SqlMetadataStore(f"sqlite:///{tmp_path / 'lockgate.db'}")
        yield store
        store.close()


def test_new_database_is_migrated_in_wal_mode_with_full_sync(tmp_path: Path):
    path = tmp_path / "nested" / "lockgate.db"
    store = SqlMetadataStore(f"sqlite:///{path}")
    store.create_run(new_run())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert (
            conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == SCHEMA_REVISION
        )
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    with store._writer.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_migrations_produce_exactly_the_declared_schema(tmp_path: Path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def _shape(path: Path) -> tuple[object, ...]:
    """Tables, columns, indexes (with partial conditions), foreign keys and the stamp."""
    with sqlite3.connect(path) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        tables = {}
        for table in sorted(names):
            columns = sorted(
                (name, kind.upper(), notnull, default, pk)
                for _, name, kind, notnull, default, pk in conn.execute(
                    f"PRAGMA table_info('{table}')"
                )
            )
            indexes = set()
            for _, name, unique, origin, partial in conn.execute(f"PRAGMA index_list('{table}')"):
                cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info('{name}')"))
                label = "auto" if name.startswith("sqlite_autoindex") else name
                indexes.add((label, unique, origin, partial, cols))
            keys = sorted(
                tuple(row[2:7]) for row in conn.execute(f"PRAGMA foreign_key_list('{table}')")
            )
            tables[table] = (columns, sorted(indexes), keys)
        where = sorted(
            row[0].split("WHERE", 1)[1].strip()
            for row in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index'")
            if row[0] and "WHERE" in row[0]
        )
        stamp = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return tables, where, stamp


def test_a_new_database_is_created_as_the_migrations_would_leave_it(tmp_path: Path):
    migrated, created = tmp_path / "migrated.db", tmp_path / "created.db"
    migrate.upgrade(sa.create_engine(f"sqlite:///{migrated}"))
    migrate.create(sa.create_engine(f"sqlite:///{created}"))
    assert _shape(created) == _shape(migrated)
    assert _shape(created)[2] == [(SCHEMA_REVISION,)]
    # A store opening the new database finds it current and uses it.
    store = SqlMetadataStore(f"sqlite:///{created}")
    store.create_run(new_run())
    assert [r.node_id for r in store.task_runs("r-1")] == ["a", "b", "c"]
    store.close()


def test_creating_leaves_a_database_that_gained_tables_alone(tmp_path: Path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE theirs (x)")
    migrate.create(sa.create_engine(f"sqlite:///{path}"))
    with sqlite3.connect(path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert names == {"theirs"}


def test_database_from_a_newer_lockgate_is_refused(tmp_path: Path):
    path = tmp_path / "newer.db"
    SqlMetadataStore(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaVersionError, match="written by a newer lockgate"):
        SqlMetadataStore(f"sqlite:///{path}")


def test_database_at_an_older_revision_asks_for_db_upgrade_and_keeps_its_rows(tmp_path: Path):
    path = tmp_path / "older.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    migrate.upgrade(engine, "0001")
    with engine.begin() as conn:  # a run as lockgate 0001 wrote it, rows in every table
        for statement in (
            "INSERT INTO pipelines (id, name, created_at) VALUES (1, 'nightly', 1.0)",
            "INSERT INTO pipeline_versions VALUES (1, 1, 'v1', '{}', 1.0)",
            "INSERT INTO runs VALUES ('r-old', 1, 1, 'succeeded', '{}', 'cli', NULL, NULL, "
            "1.0, 1.0, 2.0, 2.0, NULL)",
            "INSERT INTO artifacts VALUES ('" + "a" * 64 + "', 'json', 1, 'builtins.int', NULL, "
            "X'31', 'task', 1.0)",
            "INSERT INTO task_runs VALUES (1, 'r-old', 'a', -1, 'a', 'succeeded', 1, 1.0, 1.0, "
            "2.0, NULL, '" + "a" * 64 + "', NULL)",
            "INSERT INTO attempts VALUES (1, 1, 1, 'succeeded', 1.0, 1.0, 2.0, NULL, NULL, "
            "NULL, NULL)",
            "INSERT INTO events VALUES (1, 'r-old', 1, 1, 'task_succeeded', 2.0, '{}')",
            "INSERT INTO lineage_edges VALUES (1, 'r-old', 1, '" + "a" * 64 + "', 'produced')",
        ):
            conn.exec_driver_sql(statement)
    engine.dispose()
    with pytest.raises(SchemaVersionError) as info:
        SqlMetadataStore(f"sqlite:///{path}")
    assert "lockgate db upgrade" in str(info.value) and "0001" in str(info.value)
    # What `lockgate db upgrade` runs: lockgate's own engine, foreign keys on.
    writer, reader = connect.engines(f"sqlite:///{path}", busy_timeout=5)
    migrate.upgrade(writer)
    writer.dispose()
    reader.dispose()
    store = SqlMetadataStore(f"sqlite:///{path}")
    old = store.task_runs("r-old")[0]
    assert (old.node_id, old.state.value, old.output.inline) == ("a", "succeeded", b"1")
    assert store.attempts("r-old")[0].number == 1
    assert len(store.lineage("a" * 64)) == 1
    store.create_run(new_run(pipeline="nightly"))
    assert store.get_run("r-1").pipeline == "nightly"
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_foreign_database_is_refused(tmp_path: Path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(SchemaVersionError, match="no lockgate schema stamp"):
        SqlMetadataStore(f"sqlite:///{path}")


def test_a_held_write_lock_gives_a_clear_busy_error(tmp_path: Path):
    path = tmp_path / "busy.db"
    store = SqlMetadataStore(f"sqlite:///{path}", busy_timeout=0.2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(MetadataBusyError) as info:
            store.create_run(new_run())
        message = str(info.value)
        assert str(path) in message and "write lock" in message
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.create_run(new_run())  # nothing half-written: the same run id is still free
    assert store.get_run("r-1").pipeline == "nightly"
    store.close()


def test_opening_a_store_and_reading_never_wait_for_a_held_write_lock(tmp_path: Path):
    # Regression: the schema check on open began with BEGIN IMMEDIATE, so a read-only
    # `lockgate runs` failed with MetadataBusyError while any writer held the lock.
    path = tmp_path / "busy.db"
    SqlMetadataStore(f"sqlite:///{path}").close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        store = SqlMetadataStore(f"sqlite:///{path}", busy_timeout=0.2)
        assert store.list_runs(limit=10) == []
        with pytest.raises(MetadataBusyError):
            store.create_run(new_run())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.create_run(new_run())
    assert store.get_run("r-1").pipeline == "nightly"
    store.close()


def test_urls_are_redacted_in_messages():
    assert connect.redact("postgresql+psycopg://bob:hunter2@db/x") == (
        "postgresql+psycopg://bob:***@db/x"
    )
    assert "hunter2" not in connect.describe("postgresql+psycopg://bob:hunter2@db/x")


def test_route_writers_on_separate_stores_lose_no_update(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'lockgate.db'}"
    stores = [SqlMetadataStore(url) for _ in range(3)]
    try:
        stores[0].change_route(
            "bot", targets=split(100, 0), mirror=None, action="set", by="cli:a", at=T0
        )
        together(3, lambda i: [nudge(stores[i], f"w{i}", T0 + i) for _ in range(5)])
        assert stores[1].get_route("bot").weights == {
            "model:support-bot@3": 85.0,
            "model:support-bot@4": 15.0,
        }
        assert_no_lost_update(stores[2], 16)
    finally:
        for store in stores:
            store.close()
