"""The PostgreSQL metadata store: the contract, plus what only a server with many writers shows.

Every test gets its own empty database (`pg_url`, tests/postgres.py). Writers
here are threads with their own connections: each blocks on the server's
locks exactly as separate processes would (tests/stores/test_metadata_races.py
runs real processes).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from lockgate.errors import ConfigError, MetadataError, SchemaVersionError
from lockgate.model.states import AttemptState, RunState, TaskState
from lockgate.ports.metadata import (
    AliasMove,
    ArtifactRecord,
    AttemptResult,
    QueueItem,
    Registration,
    WriteBatch,
)
from lockgate.service.config import Settings
from lockgate.service.database import upgrade_database
from lockgate.stores.metadata import connect, migrate
from lockgate.stores.metadata.schema import SCHEMA_REVISION, metadata
from lockgate.stores.metadata.sql import SqlMetadataStore
from lockgate.testing.metadata_contract import (
    T0,
    MetadataStoreContract,
    new_run,
    ref,
    verify_chain,
)
from lockgate.testing.route_contract import assert_no_lost_update, nudge, split


class TestPostgresContract(MetadataStoreContract):
    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[SqlMetadataStore]:
        store = SqlMetadataStore(pg_url)
        yield store
        store.close()


@pytest.fixture
def store(pg_url: str) -> Iterator[SqlMetadataStore]:
    store = SqlMetadataStore(pg_url)
    yield store
    store.close()


def _admin(url: str) -> str:
    """A libpq URL for psycopg from a SQLAlchemy one."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def _together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..count-1) on threads released at once; re-raise the first failure."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


# --- schema and migrations -----------------------------------------------------------


def test_migrations_produce_exactly_the_declared_schema(pg_url: str):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = sa.create_engine(pg_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        kinds = dict(
            conn.execute(
                sa.text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'runs'"
                )
            ).all()
        )
    engine.dispose()
    assert diff == []
    assert kinds["created_at"] == "double precision" and kinds["git_dirty"] == "boolean"
    assert kinds["params"] == "json"


def test_db_upgrade_migrates_an_older_database_and_keeps_its_rows(pg_url: str, tmp_path: Path):
    engine = sa.create_engine(pg_url)
    migrate.upgrade(engine, "0001")
    sha = "a" * 64
    with engine.begin() as conn:  # a run as lockgate 0001 wrote it, rows in every table
        for statement in (
            "INSERT INTO pipelines (name, created_at) VALUES ('nightly', 1.0)",
            "INSERT INTO pipeline_versions (pipeline_id, version, graph, created_at) "
            "VALUES (1, 'v1', '{}', 1.0)",
            "INSERT INTO runs (id, pipeline_id, pipeline_version_id, status, params, trigger, "
            "git_dirty, created_at, started_at, finished_at, heartbeat_at) VALUES ('r-old', 1, "
            "1, 'succeeded', '{}', 'cli', false, 1.0, 1.0, 2.0, 2.0)",
            "INSERT INTO artifacts VALUES ('" + sha + "', 'json', 1, 'builtins.int', NULL, "
            "'\\x31', 'task', 1.0)",
            "INSERT INTO task_runs (run_id, node_id, map_index, task_name, state, attempts, "
            "queued_at, started_at, finished_at, output_sha256) VALUES ('r-old', 'a', -1, 'a', "
            "'succeeded', 1, 1.0, 1.0, 2.0, '" + sha + "')",
            "INSERT INTO attempts (task_run_id, number, state, queued_at, started_at, "
            "finished_at, error_user) VALUES (1, 1, 'succeeded', 1.0, 1.0, 2.0, NULL)",
            "INSERT INTO events (run_id, task_run_id, attempt, kind, at, payload) "
            "VALUES ('r-old', 1, 1, 'task_succeeded', 2.0, '{}')",
            "INSERT INTO lineage_edges (run_id, task_run_id, sha256, direction) "
            "VALUES ('r-old', 1, '" + sha + "', 'produced')",
        ):
            conn.exec_driver_sql(statement)
    engine.dispose()
    with pytest.raises(SchemaVersionError) as info:
        SqlMetadataStore(pg_url)
    assert "lockgate db upgrade" in str(info.value) and "0001" in str(info.value)

    # What `lockgate db upgrade` runs, with LOCKGATE_DB_URL pointing at the server.
    settings = Settings.from_env({"LOCKGATE_DB_URL": pg_url}, home=tmp_path / "home")
    where, before, after = upgrade_database(settings)
    assert (before, after) == ("0001", SCHEMA_REVISION) and "127.0.0.1" in where

    store = SqlMetadataStore(pg_url)
    old = store.task_runs("r-old")[0]
    assert old.output is not None
    assert (old.node_id, old.state, old.output.inline) == ("a", TaskState.SUCCEEDED, b"1")
    assert store.attempts("r-old")[0].number == 1
    assert len(store.lineage(sha)) == 1
    assert store.get_run("r-old").git_dirty is False
    # New rows get fresh ids after the migrated ones (the sequences survived).
    (record,) = store.create_run(new_run(pipeline="nightly", nodes=[("a", "a")]))
    assert record.id == 2 and store.get_run("r-1").pipeline == "nightly"
    store.close()


def test_a_database_with_foreign_tables_is_refused(pg_url: str):
    with psycopg.connect(_admin(pg_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id integer)")
    with pytest.raises(SchemaVersionError, match="no lockgate schema stamp"):
        SqlMetadataStore(pg_url)


def test_processes_opening_a_new_database_at_once_migrate_it_once(pg_url: str):
    stores = _together(6, lambda _: SqlMetadataStore(pg_url))
    try:
        stores[0].create_run(new_run())
        assert all(s.get_run("r-1").pipeline == "nightly" for s in stores)
    finally:
        for opened in stores:
            opened.close()
    engine = sa.create_engine(pg_url)
    assert migrate.current_revision(engine) == SCHEMA_REVISION
    engine.dispose()


def test_database_urls():
    writer, reader = connect.engines("postgresql://bob:hunter2@db.example/x", busy_timeout=1)
    assert writer is reader and writer.url.drivername == "postgresql+psycopg"
    writer.dispose()
    with pytest.raises(ConfigError, match=r"SQLite .* or PostgreSQL"):
        connect.engines("mysql://bob@db.example/x", busy_timeout=1)
    with pytest.raises(ConfigError, match="psycopg2 driver") as info:
        connect.engines("postgresql+psycopg2://bob:hunter2@db.example/x", busy_timeout=1)
    assert "hunter2" not in str(info.value)


# --- errors ----------------------------------------------------------------------------


def test_an_unreachable_server_is_a_metadata_error_naming_it(pg_server: str):
    # Port 1 on loopback: nothing listens there.
    url = "postgresql+psycopg://bob:hunter2@127.0.0.1:1/lockgate?connect_timeout=2"
    with pytest.raises(MetadataError, match=r"127\.0\.0\.1:1") as info:
        SqlMetadataStore(url)
    assert "hunter2" not in str(info.value)


def test_a_value_over_a_column_limit_is_a_metadata_error(store: SqlMetadataStore):
    with pytest.raises(MetadataError, match="refused a value"):
        store.create_run(new_run(pipeline="p" * 201))
    store.create_run(new_run())  # the writer connection is usable afterwards
    assert store.get_run("r-1").pipeline == "nightly"


def test_a_lost_connection_fails_one_write_and_the_next_reconnects(
    store: SqlMetadataStore, pg_url: str
):
    records = store.create_run(new_run())
    writes: list[Callable[[int], None]] = [
        lambda i: store.heartbeat("r-1", T0 + i),  # through SQLAlchemy
        lambda i: store.commit(  # straight on the driver's cursor (statements.Raw)
            "r-1", WriteBatch(at=T0 + i, queues=[QueueItem(records[i].id, 1)])
        ),
    ]
    for write in writes:
        with psycopg.connect(_admin(pg_url), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        assert killed  # the store's writer connection was among them
        failures = []
        for i in range(3):
            try:
                write(i)
            except MetadataError as exc:
                failures.append(str(exc))
        assert len(failures) <= 1 and all("127.0.0.1" in f for f in failures)
    # A failed commit wrote nothing; the ones after it did.
    states = [r.state for r in store.task_runs("r-1")]
    assert states.count(TaskState.QUEUED) == 3 - len(failures)
    assert states[1:] == [TaskState.QUEUED] * 2
    assert store.get_run("r-1").heartbeat_at == T0 + 2


# --- many writers at once -----------------------------------------------------------------


def test_concurrent_event_writers_never_fork_a_run_chain(store: SqlMetadataStore):
    nodes = [(f"n{i}", "work") for i in range(8)]
    records = store.create_run(new_run(nodes=nodes))

    def write(i: int) -> None:
        for j in range(10):
            store.set_run_state("r-1", RunState.RUNNING, T0 + i + j / 100)
        store.set_task_state("r-1", [records[i].id], TaskState.SKIPPED, T0 + 50, reason="x")

    _together(8, write)
    assert verify_chain(store, "r-1") == 1 + 8 * 10 + 8


def test_concurrent_commits_of_one_run_apply_each_fence_once(store: SqlMetadataStore):
    # Two coordinators (a resumed run's old and new owner) commit the same results.
    records = store.create_run(new_run(nodes=[(f"n{i}", "work") for i in range(20)]))
    store.commit("r-1", WriteBatch(at=T0, queues=[QueueItem(r.id, 1) for r in records]))
    results = [
        AttemptResult(r.id, 1, AttemptState.SUCCEEDED, TaskState.SUCCEEDED, T0 + 1, T0 + 0.5)
        for r in records
    ]

    def commit(i: int) -> bool:
        ordered = results if i % 2 else list(reversed(results))  # opposite row orders
        try:
            store.commit("r-1", WriteBatch(at=T0 + 1, finishes=ordered))
        except MetadataError as exc:
            assert "taken the run over" in str(exc)
            return False
        return True

    assert sorted(_together(4, commit)) == [False, False, False, True]
    assert {r.state for r in store.task_runs("r-1")} == {TaskState.SUCCEEDED}
    verify_chain(store, "r-1")


def test_concurrent_registrations_number_versions_without_gaps(store: SqlMetadataStore):
    runs = [store.create_run(new_run(f"r-{i}", nodes=[("reg", "register")])) for i in range(6)]
    for i in range(6):
        store.add_artifact(ArtifactRecord(ref(f"model-{i}"), T0))

    def register(i: int) -> None:
        task_run = runs[i][0]
        item = Registration(task_run.id, "churn", ref(f"model-{i}").sha256, {"auc": 0.9}, True)
        store.commit(f"r-{i}", WriteBatch(at=T0 + i, registrations=[item]))

    _together(6, register)
    versions = store.list_versions("model", "churn")
    assert sorted(v.version for v in versions) == [1, 2, 3, 4, 5, 6]
    assert len({v.ref.sha256 for v in versions}) == 6

    def promote(i: int) -> int | None:
        move = AliasMove("churn", "prod", "promote", f"cli:user{i}", version=i + 1)
        return store.move_alias(move, T0 + 100 + i)

    _together(6, promote)
    log = store.alias_events("model", "churn", "prod")
    assert len(log) == 6 and log[0].previous_version is None
    # Serialised moves: each one's "previous" is what the move before it set.
    assert all(e.previous_version == before.version for before, e in itertools.pairwise(log))
    current = store.alias_version("model", "churn", "prod")
    assert current is not None and current.version == log[-1].version


def test_concurrent_resumes_take_a_run_over_once(store: SqlMetadataStore):
    store.create_run(new_run())
    store.set_run_state("r-1", RunState.FAILED, T0)

    def resume(i: int) -> bool:
        try:
            store.resume_run("r-1", by=f"cli{i}", at=T0 + 10, stale_before=T0 + 5)
        except MetadataError:
            raise
        except Exception:
            return False
        return True

    outcomes = _together(4, resume)
    resumed = [e for e in store.events("r-1") if e.kind.value == "run_resumed"]
    # The first takes it over; the rest see a live run (fresh heartbeat) and are refused.
    assert outcomes.count(True) == 1 and len(resumed) == 1
    verify_chain(store, "r-1")


def test_concurrent_first_uses_of_a_pool_create_it_once(store: SqlMetadataStore):
    runs = [store.create_run(replace(new_run(f"r-{i}"), status=RunState.RUNNING)) for i in range(6)]
    for i in range(6):
        store.heartbeat(f"r-{i}", T0)
    took = _together(6, lambda i: store.acquire_slot("gpu", 2, runs[i][0].id, f"r-{i}", T0, T0 - 1))
    assert sorted(took) == [False, False, False, False, True, True]


def test_route_writers_on_separate_stores_lose_no_update(pg_url: str):
    # Separate store instances are separate connection pools, as separate servers
    # (or a CLI beside a canary step) would be.
    stores = [SqlMetadataStore(pg_url) for _ in range(4)]
    try:
        stores[0].change_route(
            "bot", targets=split(100, 0), mirror=None, action="set", by="cli:a", at=T0
        )
        _together(4, lambda i: [nudge(stores[i], f"w{i}", T0 + i) for _ in range(5)])
        assert stores[1].get_route("bot").weights == {
            "model:support-bot@3": 80.0,
            "model:support-bot@4": 20.0,
        }
        assert_no_lost_update(stores[2], 21)
        # And blind writers (no expected version) are serialized into one history.
        _together(
            4,
            lambda i: [
                stores[i].change_route(
                    "bot", targets=split(90, 10), mirror=None, action="shift", by="x", at=T0
                )
                for _ in range(5)
            ],
        )
        assert_no_lost_update(stores[3], 41)
    finally:
        for store in stores:
            store.close()
