"""Alembic environment: runs lockgate's migrations on a connection given by lockgate.

lockgate drives Alembic programmatically (see `stores/metadata/migrate.py`);
there is no alembic.ini. The connection arrives in `config.attributes`.
"""

from __future__ import annotations

from alembic import context

from lockgate.stores.metadata.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
