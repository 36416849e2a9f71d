"""Indexes for run metrics over a time window (`lockgate stats`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 07:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_finished_at"), ["finished_at"], unique=False)
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_run_resumed",
            ["run_id"],
            unique=False,
            sqlite_where=sa.text("kind = 'run_resumed'"),
            postgresql_where=sa.text("kind = 'run_resumed'"),
        )
    # Lineage walks (lineage completeness, `lockgate lineage`): the maker of an
    # artifact without reading every consumer's edge, and an artifact's versions.
    with op.batch_alter_table("lineage_edges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lineage_edges_sha256"))
        batch_op.create_index(
            batch_op.f("ix_lineage_edges_sha256_direction"), ["sha256", "direction"], unique=False
        )
    with op.batch_alter_table("artifact_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifact_versions_sha256"), ["sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("artifact_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifact_versions_sha256"))
    with op.batch_alter_table("lineage_edges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lineage_edges_sha256_direction"))
        batch_op.create_index(batch_op.f("ix_lineage_edges_sha256"), ["sha256"], unique=False)
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_run_resumed")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_finished_at"))
