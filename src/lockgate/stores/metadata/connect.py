"""Database engines: SQLite pragmas, BEGIN IMMEDIATE for writers, redacted URLs.

SQLite runs in WAL mode with `synchronous=FULL` (a commit survives power
loss; the store relaxes it for the driver's task transitions only, see
`walsync`), foreign keys on, and a busy timeout. Writers and readers use separate
engines: writers begin with `BEGIN IMMEDIATE` so they queue for the lock up
front instead of failing halfway; readers use deferred transactions and
never block writers in WAL mode. A transaction on the writer engine that only
reads (the schema check when a store opens) asks for a deferred one with the
`READ_ONLY` execution option, so opening a store never queues for the lock.

PostgreSQL gets one engine for both, at the server's default READ COMMITTED
isolation: writers that must not interleave take row or advisory locks (see
`sql`), and connections are pinged on checkout so a restarted server costs
one failed call, not a dead pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lockgate.errors import ConfigError
from lockgate.stores.metadata.records import strict_json

#: Execution option: this SQLite transaction only reads, so it begins deferred
#: even on the writer engine and never waits for another process's write lock.
READ_ONLY = "lockgate_read_only"


def engines(url: str, *, busy_timeout: float) -> tuple[sa.Engine, sa.Engine]:
    """Build the (writer, reader) engines for `url`.

    Raises:
        ConfigError: the URL is malformed or names a database lockgate does not support.
    """
    try:
        parsed = make_url(url)
        if "\0" in url or "\0" in (parsed.database or ""):
            raise sa.exc.ArgumentError("the URL contains a NUL character")
        parsed.get_dialect()  # an unknown dialect or driver fails here, not on first use
    except sa.exc.NoSuchModuleError as exc:
        raise ConfigError(
            f"metadata database URL {redact(url)!r}: SQLAlchemy has no dialect or driver "
            f"{parsed.drivername!r}; write sqlite:////abs/path/lockgate.db or "
            "postgresql+psycopg://user@host/db"
        ) from exc
    except sa.exc.ArgumentError as exc:
        raise ConfigError(
            f"metadata database URL {redact(url)!r} is not a valid SQLAlchemy URL "
            "(examples: sqlite:////abs/path/lockgate.db, postgresql+psycopg://user@host/db)"
        ) from exc
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        engine = _postgres_engine(parsed)
        return engine, engine
    if backend != "sqlite":
        raise ConfigError(
            f"metadata database URL {redact(url)!r} names {backend!r}; lockgate stores metadata "
            "in SQLite (sqlite:////abs/path/lockgate.db) or PostgreSQL "
            "(postgresql+psycopg://user@host/db)"
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    writer = _sqlite_engine(parsed, busy_timeout, "BEGIN IMMEDIATE")
    reader = _sqlite_engine(parsed, busy_timeout, "BEGIN")
    return writer, reader


def _postgres_engine(url: sa.URL) -> sa.Engine:
    # A bare postgresql:// would pick psycopg2; lockgate[postgres] installs psycopg 3.
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    try:
        # NaN in a metric would otherwise be refused by PostgreSQL's JSON type.
        return sa.create_engine(url, pool_pre_ping=True, json_serializer=strict_json)
    except ImportError as exc:
        raise ConfigError(
            f"metadata database URL {url.render_as_string(hide_password=True)!r} needs the "
            f"{url.get_driver_name()} driver, which is not installed. lockgate uses psycopg 3: "
            "pip install 'lockgate[postgres]' and write the URL as postgresql+psycopg://..."
        ) from exc


def _sqlite_engine(url: sa.URL, busy_timeout: float, begin: str) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"timeout": busy_timeout})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that the "begin"
        # hook below decides how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        # On the DBAPI connection: exec_driver_sql's execution context costs about
        # 7 µs more here, on every task's commit.
        raw = connection.connection.driver_connection
        assert raw is not None  # a connection in use is never detached
        raw.execute("BEGIN" if read_only else begin)

    return engine


def sqlite_file(url: str) -> str | None:
    """The absolute path of a SQLite file database, else None."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    # Absolute: the WAL syncer's thread opens it later, perhaps after a chdir.
    return str(Path(parsed.database).absolute())


def redact(url: str) -> str:
    """The URL with any password replaced by `***`, safe for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparsable database URL>"


def describe(url: str) -> str:
    """The database file for SQLite, else the redacted URL."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        return redact(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return parsed.database
    return redact(url)
