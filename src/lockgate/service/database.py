"""Database maintenance use cases: schema upgrades."""

from __future__ import annotations

from lockgate.service.config import Settings


def upgrade_database(settings: Settings) -> tuple[str, str | None, str | None]:
    """Migrate the metadata database to the current schema.

    Returns:
        (where, revision before, revision after); `where` is the file or the
        redacted URL.
    """
    from lockgate.stores.metadata import connect, migrate

    writer, reader = connect.engines(settings.db_url, busy_timeout=settings.db_busy_timeout)
    try:
        before = migrate.current_revision(writer)
        migrate.upgrade(writer)
        after = migrate.current_revision(writer)
    finally:
        writer.dispose()
        reader.dispose()
    return connect.describe(settings.db_url), before, after
