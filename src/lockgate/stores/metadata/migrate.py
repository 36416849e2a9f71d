"""Schema migrations: Alembic driven from code, and the check made on every open.

Opening a store reads the revision stamp with one query, in a deferred
transaction that never waits for a writer's lock; Alembic itself is
imported only when a migration actually runs (it is slow to import). A new,
empty database is created at the current revision (on SQLite straight from
the declared schema and stamped, which equals running every migration and is
much faster; on PostgreSQL by the migrations); an older one is refused with
the command that upgrades it; a newer one is refused outright.

The same migrations run on SQLite and PostgreSQL, each in one transaction
(both databases roll DDL back). Two processes opening a new database at once
take turns: a lock file beside a SQLite database, an advisory lock on
PostgreSQL; the second then finds the schema at head and does nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from lockgate.errors import SchemaVersionError
from lockgate.stores.metadata.connect import READ_ONLY
from lockgate.stores.metadata.schema import SCHEMA_REVISION
from lockgate.stores.metadata.statements import advisory_lock

MIGRATIONS = Path(__file__).with_name("migrations")


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Run every migration up to `revision` on the database behind `engine`.

    On SQLite, altering a table means copying it and dropping the original,
    which foreign keys from other tables forbid; so, as SQLite's documentation
    prescribes, foreign keys are off during the migration and
    `PRAGMA foreign_key_check` must come back empty before it commits.

    Raises:
        SchemaVersionError: the migrated data breaks a foreign key (rolled back).
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    sqlite = engine.dialect.name == "sqlite"
    with _migration_lock(engine), engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None  # a fresh connection is never detached
        if sqlite:
            raw.execute("PRAGMA foreign_keys=OFF")  # only outside a transaction
        try:
            with connection.begin():
                advisory_lock(connection, "lockgate.migrate")
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise SchemaVersionError(
                            f"migrating {engine.url.database} to {revision} would break "
                            f"foreign keys ({broken[:3]}...); nothing was changed. Please "
                            "report this with the database's schema."
                        )
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys=ON")


def create(engine: sa.Engine) -> None:
    """Create the current schema in an empty SQLite database and stamp its revision.

    What `upgrade` would leave, without Alembic: eight migrations made a new
    database's first `lockgate run` wait about a second (the test suite checks
    that both ways give the same tables, columns, indexes and foreign keys).
    A database that gained tables meanwhile (another process got the lock
    first) is left alone.
    """
    from lockgate.stores.metadata.schema import metadata

    with _migration_lock(engine), engine.connect() as connection, connection.begin():
        if sa.inspect(connection).get_table_names():
            return
        metadata.create_all(connection)
        version = sa.Table(
            "alembic_version",
            sa.MetaData(),
            sa.Column("version_num", sa.String(32), nullable=False),
            sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
        )
        version.create(connection)
        connection.execute(version.insert().values(version_num=SCHEMA_REVISION))


@contextlib.contextmanager
def _reading(engine: sa.Engine) -> Iterator[sa.Connection]:
    # A look at the schema must not queue for SQLite's write lock: a store opened
    # while another process writes (or holds the lock) would wait, or fail busy.
    with engine.connect() as connection:
        yield connection.execution_options(**{READ_ONLY: True})


def current_revision(engine: sa.Engine) -> str | None:
    """The revision stamped in the database, or None if it was never migrated."""
    with _reading(engine) as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(engine: sa.Engine, url: str) -> None:
    """Migrate a new database; refuse one at another revision.

    Raises:
        SchemaVersionError: the database is older (run `lockgate db upgrade`),
            newer than this lockgate, or holds tables that are not lockgate's.
    """
    revision = current_revision(engine)
    if revision == SCHEMA_REVISION:
        return
    if revision is None:
        with _reading(engine) as connection:
            tables = sa.inspect(connection).get_table_names()
        if tables and current_revision(engine) == SCHEMA_REVISION:
            return  # another process migrated it between our two looks
        if tables:
            raise SchemaVersionError(
                f"metadata database {url} has tables ({', '.join(sorted(tables)[:5])}) but no "
                "lockgate schema stamp; point LOCKGATE_DB_URL at an empty or lockgate database."
            )
        if engine.dialect.name == "sqlite":
            create(engine)
        else:
            upgrade(engine)
        return
    if revision in _known_revisions():
        raise SchemaVersionError(
            f"metadata database {url} is at schema revision {revision}, this lockgate needs "
            f"{SCHEMA_REVISION}; run `lockgate db upgrade` (back up the database first)."
        )
    raise SchemaVersionError(
        f"metadata database {url} is at schema revision {revision}, which this lockgate does "
        "not know: it was written by a newer lockgate. Upgrade lockgate."
    )


def _known_revisions() -> set[str]:
    return {p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("*.py")}


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[None]:
    # Two processes opening a new SQLite database at once would both migrate
    # it; a lock file beside the database serialises them.
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
